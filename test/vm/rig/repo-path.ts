// Absolute paths inside the repository, the same on the host and in the guest
// (the guest sees the host root at the same place), from source or from dist/.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

function findRepoRoot(start: string): string {
  for (let dir = start; ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'kmod'))) return dir;
    if (dirname(dir) === dir) throw new Error(`no shadowd repository above ${start}`);
  }
}

export const REPO_ROOT = findRepoRoot(import.meta.dirname);

export function repoPath(...parts: string[]): string {
  return join(REPO_ROOT, ...parts);
}
