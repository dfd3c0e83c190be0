// `npm run kmod`: build kmod/ for the cached guest kernel, then hold all of the
// project's kernel C to checkpatch --strict. Exits 1 with the reason on any failure.
import { basename } from 'node:path';
import { buildHelperModule, checkpatchDir, KERNEL_C_DIRS } from './kmod-build.js';
import { repoPath } from './repo-path.js';

const log = (line: string): void => console.log(`kmod: ${line}`);
try {
  await buildHelperModule(log);
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
