// `npm run build:taps`: builds the precompiled taps prototype (bpf/libbpf/:
// a CO-RE object per class, NAME.bpf.c → NAME.bpf.o, and taps-loader) into
// bpf/libbpf/build/ and holds its C to checkpatch --strict. Exits 1 with the reason on any failure.
//   node dist/test/vm/rig/taps-build-main.js [--btf KERNEL_IMAGE] [--no-checkpatch]
// --btf: the kernel whose BTF makes vmlinux.h (default: the cached 6.1 guest
// kernel's vmlinux; `npm run kernel` caches it).
import { parseArgs } from 'node:util';
import { buildTaps } from './taps-build.js';

const log = (line: string): void => console.log(`taps: ${line}`);
try {
  const { values } = parseArgs({ options: { btf: { type: 'string' }, 'no-checkpatch': { type: 'boolean' } } });
  const built = await buildTaps(log, { btf: values.btf, skipCheckpatch: values['no-checkpatch'] });
  log(`loader ${built.loader}, objects ${Object.values(built.objects).join(', ')}`);
} catch (err) {
  console.error(`taps: FAILED: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
