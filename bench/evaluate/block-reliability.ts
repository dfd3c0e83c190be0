// The disk rows of the reliability table: the runs the disk tests make
// (test/vm/classes/block/disk-apps-runs.ts): without shadowd the
// controller's driver departs mid-run (unbind, bind); with shadowd each
// disk gets its fault under shadowd's map. Both on the first kernel asked
// for: the disk class runs on 6.1 in CI (6.12's fast teardown is open).
import { buildHelperModule } from '../../test/vm/rig/kmod-build.js';
import type { KernelSeries } from '../../test/vm/rig/cache-paths.js';
import { CONTROL_DISKS, RECOVERY_DISKS, runDiskAppsControl, runDiskAppsRecovery } from '../../test/vm/classes/block/disk-apps-runs.js';
import { blockOutcomes } from './block-outcomes.js';
import { systemCrash } from './outcome.js';
import { timingsFromHistory } from './recovery-times.js';
import type { ClassRuns } from './class-runs.js';

export async function blockReliability(kernels: readonly KernelSeries[], log: (line: string) => void): Promise<ClassRuns> {
  const kernel = kernels[0]!;
  const out: ClassRuns = { outcomes: [], recoveries: [] };
  log(`block, without shadowd on ${kernel}: ${CONTROL_DISKS.map(([, d]) => `${d} unbind+bind`).join(', ')}`);
  const control = await runDiskAppsControl(log, kernel);
  const controlCrash = systemCrash(control.guest);
  for (const [, driver] of CONTROL_DISKS) {
    out.outcomes.push(...blockOutcomes(control.results.get(`${driver}/control`), { driver, kernel, fault: 'unbind+bind', mode: 'without shadowd', crash: controlCrash }));
  }
  log(`  guest ${(control.guest.totalMs / 1000).toFixed(0)} s${controlCrash ? `; ${controlCrash}` : ''}`);
  await buildHelperModule((l) => log(`kmod: ${l}`), kernel);
  log(`block, with shadowd on ${kernel}: ${RECOVERY_DISKS.map(([, d, f]) => `${d} ${f}`).join(', ')}`);
  const rec = await runDiskAppsRecovery(log, kernel);
  const crash = systemCrash(rec.guest);
  for (const [, driver, fault] of RECOVERY_DISKS) {
    const res = rec.results.get(driver);
    out.outcomes.push(...blockOutcomes(res, { driver, kernel, fault, mode: 'with shadowd', crash }));
    out.recoveries.push(...timingsFromHistory(res?.history, { cls: 'block', driver, kernel, fault }));
  }
  log(`  guest ${(rec.guest.totalMs / 1000).toFixed(0)} s${crash ? `; ${crash}` : ''}`);
  return out;
}
