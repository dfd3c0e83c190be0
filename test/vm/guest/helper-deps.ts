// The modules the helper module links against (the sound core, for its
// sound class), loaded before an insmod of the built helper: insmod does not
// load them, as modprobe does for an installed module.
import { execFileSync } from 'node:child_process';

export function loadHelperDeps(ko: string): void {
  const deps = execFileSync('modinfo', ['-F', 'depends', ko], { encoding: 'utf8' });
  for (const dep of deps.split(',').map((d) => d.trim()).filter(Boolean)) execFileSync('modprobe', [dep]);
}
