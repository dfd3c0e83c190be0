// The sound rows of the reliability table: the runs the sound tests make
// (test/vm/classes/sound/sound-apps-runs.ts), each classified from its exit
// and the audio QEMU recorded (sound-outcomes.ts). Without shadowd: each
// card's PCI device unbound and bound again under aplay, mpg123, espeak-ng,
// the mmap game and arecord (ES1370, AC97, HDA). With shadowd: aplay,
// espeak-ng, the mmap game and arecord (on a second card of each driver)
// on ES1370 and AC97 through lost-irq, fail-stop and fail-prepare, and
// aplay through a fail-stop and a lost-irq in its drain.
// The scenario's manual `shadowctl recover` is no fault and counts in no
// row (its proof is logged). Both on the first kernel asked for: the sound
// tests run on 6.1.
import { buildHelperModule } from '../../test/vm/rig/kmod-build.js';
import type { KernelSeries } from '../../test/vm/rig/cache-paths.js';
import { proofFailures } from '../../test/vm/audio/proof.js';
import { PLAY_APPS } from '../../test/vm/sound-apps/apps.js';
import { recoveryRunKey } from '../../test/vm/sound-apps/recovery-inputs.js';
import { recoveryCriteria } from '../../test/vm/classes/sound/proof-criteria.js';
import {
  CONTROL_CARDS,
  DRAIN_FAULTS,
  RECOVERY_APPS,
  RECOVERY_CARDS,
  RECOVERY_FAULTS,
  RECOVERY_MORE_APPS,
  RECOVERY_RUN_CASES,
  removeSoundFiles,
  runSoundAppsControl,
  runSoundAppsRecovery,
} from '../../test/vm/classes/sound/sound-apps-runs.js';
import { proofFindings, soundAppsNotRun, soundControlOutcome, soundRecoveryOutcome } from './sound-outcomes.js';
import { systemCrash } from './outcome.js';
import { timingsFromHistory } from './recovery-times.js';
import type { ClassRuns } from './class-runs.js';

export async function soundReliability(kernels: readonly KernelSeries[], log: (line: string) => void): Promise<ClassRuns> {
  const kernel = kernels[0]!;
  const out: ClassRuns = { outcomes: [], recoveries: [] };
  const controlApps = [...PLAY_APPS, 'arecord'];
  log(`sound, without shadowd on ${kernel}: ${CONTROL_CARDS.map(([, d]) => d).join(', ')} unbind+bind under ${controlApps.join(', ')}`);
  const control = await runSoundAppsControl(kernel);
  try {
    const crash = systemCrash(control.guest);
    for (const [card, [, driver]] of CONTROL_CARDS.entries()) {
      const ctx = { driver, kernel, fault: 'unbind+bind', mode: 'without shadowd' as const, crash };
      for (const app of PLAY_APPS) {
        if (app === 'arecord') continue;
        const res = control.results.get(`${card}/${app}/control`);
        const recorded = control.captures[card] !== undefined;
        out.outcomes.push(soundControlOutcome(app, res, { proof: res && recorded ? control.proof(card, app, 'control') : undefined, recorded }, ctx));
      }
      // The recorders are the cards after the players, on silent backends.
      out.outcomes.push(soundControlOutcome('arecord', control.results.get(`${card + CONTROL_CARDS.length}/arecord/control`), { proof: undefined, recorded: false }, ctx));
    }
    log(`  guest ${(control.guest.totalMs / 1000).toFixed(0)} s${crash ? `; ${crash}` : ''}`);
  } finally {
    await removeSoundFiles(control.dirs);
  }

  await buildHelperModule((l) => log(`kmod: ${l}`), kernel);
  log(`sound, with shadowd on ${kernel}: ${RECOVERY_CARDS.map(([, d]) => d).join(', ')}: ${[...RECOVERY_APPS, ...RECOVERY_MORE_APPS].join(', ')} through ${RECOVERY_FAULTS.join(', ')}; aplay-hw through ${DRAIN_FAULTS.map((f) => `${f}@drain`).join(', ')}`);
  const rec = await runSoundAppsRecovery(kernel);
  try {
    const crash = systemCrash(rec.guest);
    for (const [app, driver, fault] of RECOVERY_RUN_CASES) {
      const run = rec.result?.runs.find((r) => r.driver === driver && r.app === app && r.fault === fault);
      const audio = { proof: rec.proofs.get(recoveryRunKey(driver, app, fault)), recorded: rec.captures.has(driver) };
      out.outcomes.push(soundRecoveryOutcome(app, run, audio, { driver, kernel, fault, mode: 'with shadowd', crash }));
      out.recoveries.push(...timingsFromHistory({ recoveries: run?.recoveries ?? [] }, { cls: 'sound', driver, kernel, fault }));
    }
    const manualKey = recoveryRunKey(RECOVERY_CARDS[0]![1], 'aplay-hw', 'manual');
    const manual = rec.proofs.get(manualKey);
    const manualFailures = manual ? proofFailures(manual, recoveryCriteria(manual)) : null;
    log(`  ${manualKey} (a manual recover, no fault: in no row): aplay exit ${rec.result?.manual.player?.exitCode ?? '-'}, audio ${manualFailures === null ? 'not found' : manualFailures.length === 0 ? 'proven' : `not proven: ${proofFindings(manual!, manualFailures)}`}`);
    log(`  guest ${(rec.guest.totalMs / 1000).toFixed(0)} s${crash ? `; ${crash}` : ''}${rec.result && rec.result.problems.length > 0 ? `; the scenario's problems: ${rec.result.problems.join(' | ')}` : ''}`);
  } finally {
    await removeSoundFiles(rec.dirs);
  }
  out.notRun = soundAppsNotRun(out.outcomes, {});
  return out;
}
