// The network rows of the reliability table: the scenario the recovery test
// runs (test/vm/classes/net/recovery-scenario-run.ts), without shadowd on the
// first kernel and with it on every kernel asked for, each NIC with its
// fault, every application classified from what it did (net-outcomes.ts).
import { buildHelperModule } from '../../test/vm/rig/kmod-build.js';
import type { KernelSeries } from '../../test/vm/rig/cache-paths.js';
import { serveEcho, serveRandomBlob } from '../../test/vm/rig/loopback-server.js';
import { runRecoveryScenario, scenarioNics, type ScenarioMode } from '../../test/vm/classes/net/recovery-scenario-run.js';
import { netOutcomes } from './net-outcomes.js';
import { systemCrash } from './outcome.js';
import { timingsFromHistory } from './recovery-times.js';
import type { ClassRuns } from './class-runs.js';

export async function netReliability(kernels: readonly KernelSeries[], log: (line: string) => void): Promise<ClassRuns> {
  const nics = scenarioNics();
  const blob = await serveRandomBlob(24 * 1024 * 1024);
  const echo = await serveEcho();
  const out: ClassRuns = { outcomes: [], recoveries: [] };
  try {
    // The control injects its faults through the helper too.
    for (const k of kernels) await buildHelperModule((l) => log(`kmod: ${l}`), k);
    const runs: [ScenarioMode, KernelSeries][] = [['control', kernels[0]!], ...kernels.map((k): [ScenarioMode, KernelSeries] => ['shadowd', k])];
    for (const [mode, kernel] of runs) {
      log(`net, ${mode === 'control' ? 'without' : 'with'} shadowd on ${kernel}: ${nics.map(([, d, f]) => `${d} ${f}`).join(', ')}`);
      const { guest, results } = await runRecoveryScenario({ mode, kernel, nics, blob, echo });
      const crash = systemCrash(guest);
      for (const [, driver, fault] of nics) {
        const res = results.get(driver);
        out.outcomes.push(...netOutcomes(res, { driver, kernel, fault, mode: mode === 'control' ? 'without shadowd' : 'with shadowd', sha256: blob.sha256, crash }));
        if (mode === 'shadowd') out.recoveries.push(...timingsFromHistory(res?.history, { cls: 'net', driver, kernel, fault }));
      }
      log(`  guest ${(guest.totalMs / 1000).toFixed(0)} s${crash ? `; ${crash}` : ''}`);
    }
  } finally {
    await blob.close();
    await echo.close();
  }
  return out;
}
