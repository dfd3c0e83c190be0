// The disk applications' outcomes (the seed's compiler, encoder and
// database), read from one disk's run of the disk-apps proof
// (test/vm/guest/disk-apps/apps.ts verifyDiskApps): an application crashed
// when it exited with an error (or was killed at the deadline); it broke
// when it exited 0 but its data is not what a run without a fault makes
// (outputs differ or are missing, acknowledged transactions lost, the
// database's integrity check failing) or the filesystem under it was damaged
// (read-only, e2fsck not clean, cannot be mounted again); otherwise it works.
import type { AppName } from '../../test/vm/guest/disk-apps/apps.js';
import type { DiskAppsRunResult } from '../../test/vm/guest/disk-apps/run.js';
import type { AppOutcome, Outcome } from './outcome.js';

export interface BlockRunContext {
  driver: string;
  kernel: string;
  fault: string;
  mode: AppOutcome['mode'];
  crash: string | null;
}

const APPS: readonly [AppName, string][] = [
  ['compiler', 'make -j2'],
  ['encoder', 'sox'],
  ['database', 'sqlite (better-sqlite3)'],
];

export function blockOutcomes(res: Pick<DiskAppsRunResult, 'outcome' | 'failures'> | undefined, ctx: BlockRunContext): AppOutcome[] {
  return APPS.map(([app, program]): AppOutcome => {
    const base = { app, program, cls: 'block', driver: ctx.driver, kernel: ctx.kernel, fault: ctx.fault, mode: ctx.mode };
    if (ctx.crash) return { ...base, outcome: 'system crash', evidence: ctx.crash };
    if (!res) return { ...base, outcome: 'no result', evidence: 'the scenario printed no result for this disk' };
    const a = res.outcome.apps[app];
    const own = res.failures.filter((f) => f.area === app).map((f) => f.what);
    const fs = res.failures.filter((f) => f.area === 'filesystem').map((f) => `filesystem ${f.what}`);
    let outcome: Outcome = 'works';
    if (a.exitCode !== 0 || a.error) outcome = 'app crash';
    else if (own.length > 0 || fs.length > 0) outcome = 'app break';
    const evidence = outcome === 'works' ? `exit 0 in ${(a.durationMs / 1000).toFixed(1)} s, data checked, longest stall ${(a.longestStallMs / 1000).toFixed(1)} s` : [...own, ...fs].join('; ') || `exit ${a.exitCode ?? a.signal}`;
    return { ...base, outcome, evidence };
  });
}
