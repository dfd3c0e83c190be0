// `npm run kernel` (and the first step of `npm run prepare-guest`): fill (or
// confirm) the guest kernel cache for every series the rig boots, or one:
//   node dist/test/vm/rig/kernel-cache-main.js [--kernel 6.1|6.12|all]
// The series guests boot (SHADOWD_GUEST_KERNEL, default 6.1) must be cached or
// this exits 1; another series that cannot be cached is a warning, so a
// machine without Debian's 6.12 packages still runs the 6.1 guests (the demo;
// the tests run some cases on 6.12 too: test/vm/rig/kernel-rows.ts).
import { parseArgs } from 'node:util';
import { isKernelSeries, KERNEL_SERIES, selectedKernelSeries, type KernelSeries } from './cache-paths.js';
import { ensureKernelCache } from './kernel-cache.js';

const log = (line: string): void => console.log(`kernel-cache: ${line}`);
try {
  const { values } = parseArgs({ options: { kernel: { type: 'string', default: 'all' } } });
  if (values.kernel !== 'all' && !isKernelSeries(values.kernel)) {
    throw new Error(`--kernel ${values.kernel}: expected ${KERNEL_SERIES.join(', ')} or all`);
  }
  const selected = selectedKernelSeries();
  const wanted: readonly KernelSeries[] = values.kernel === 'all' ? KERNEL_SERIES : [values.kernel];
  log(`caching the guest kernels ${wanted.join(' and ')} (guests boot ${selected}: SHADOWD_GUEST_KERNEL)`);
  for (const series of wanted) {
    const started = performance.now();
    try {
      await ensureKernelCache(log, series);
    } catch (err) {
      if (series === selected || values.kernel !== 'all') throw err;
      log(
        `WARNING: guest kernel ${series} is not cached (guests boot ${selected}, so the demo runs, but the tests that also run on ${series} will fail): ` +
          (err instanceof Error ? err.message : String(err)),
      );
      continue;
    }
    log(`guest kernel ${series}: ready in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
} catch (err) {
  console.error(`kernel-cache: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
