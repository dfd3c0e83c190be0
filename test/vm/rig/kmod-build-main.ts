// `npm run kmod`: build kmod/ for the cached guest kernel, then hold all of the
// project's kernel C to checkpatch --strict. Exits 1 with the reason on any failure.
//   node dist/test/vm/rig/kmod-build-main.js [--kernel 6.1|6.12|all]
// Default: the kernel guests boot (SHADOWD_GUEST_KERNEL, else 6.1); 6.1 builds
// in kmod/, 6.12 in a copy under its cache folder.
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { isKernelSeries, KERNEL_SERIES, selectedKernelSeries, type KernelSeries } from './cache-paths.js';
import { buildHelperModule, checkpatchDir, KERNEL_C_DIRS } from './kmod-build.js';
import { repoPath } from './repo-path.js';

const log = (line: string): void => console.log(`kmod: ${line}`);
try {
  const { values } = parseArgs({ options: { kernel: { type: 'string' } } });
  const choice = values.kernel ?? selectedKernelSeries();
  if (choice !== 'all' && !isKernelSeries(choice)) throw new Error(`--kernel ${choice}: expected ${KERNEL_SERIES.join(', ')} or all`);
  const kernels: readonly KernelSeries[] = choice === 'all' ? KERNEL_SERIES : [choice];
  for (const kernel of kernels) await buildHelperModule(log, kernel);
  for (const dir of KERNEL_C_DIRS) {
    const check = await checkpatchDir(repoPath(dir));
    log(
      `checkpatch --strict --no-tree: 0 errors, 0 warnings, 0 checks in ${check.files.map((f) => basename(f)).join(', ')} ` +
        `(${check.lines} lines)`,
    );
  }
} catch (err) {
  console.error(`kmod: FAILED: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}
