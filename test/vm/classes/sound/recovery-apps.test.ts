// The sound class end to end with shadowd, in a real 6.1 guest with two of
// the class's drivers (snd-ens1370, snd-intel8x0), in one boot: shadowd runs
// as a user would run it (taps, shadow, detectors, the helper); a player,
// the speech synthesizer and the game (alsa-lib mmap, its volume turned down
// before the fault) each play on each card, and the recorder records on a
// second card of each driver, while a fault is injected (lost-irq,
// fail-stop, fail-prepare), and aplay starts on a card that fail-stopped
// while idle. shadowd must detect each failure on its own (a stalled stream;
// a prepare or hw_params the helper holds) and recover the card, every
// application must exit 0, the game's volume must still be what it set,
// and the recording must have the length asked for. A manual `shadowctl
// recover` under a playing player, and status/show/history of the cards. The
// guest side is guest/sound-recovery-scenario.ts.
//
// Proof of sound, not of exit codes: every run plays a source of its own
// (sound-apps/recovery-inputs.ts), QEMU's wav backend records what each card
// played, and the proof library (audio/proof.ts) must find each run's source
// in its card's recording whole and in order, with one gap at most (the
// recovery's; its length reported), no repeated or garbage audio and the
// level unchanged (but for the game's volume step, on the cards whose QEMU
// model applies the mixer: one step; a step back at a stall's recovery is
// QEMU's AC97 model, see docs/sound-proof.md, reported with the stall's
// other findings, not asserted). The recorder's card records a silent
// backend: its recording's length shows it recorded to its end (arecord
// counts frames, and recovers from the overrun the stall gives it); what it
// recorded cannot be checked.
// Repeats and garbage are looked for from the run's first
// sound to where the card's next run begins: what a card plays after a
// source's end (a stale ring looping on) counts too. The control (the same
// applications without shadowd, which fail) is apps-control.test.ts.
//
// Not yet met, and so not asserted (issue 11; docs/sound-proof.md has the
// figures): under a stall (lost-irq, fail-stop, mid-stream or in a drain)
// the card's DMA loops over its ring until shadowd takes the card, so the
// recording repeats 0.1-1.3 s of stale audio before the recovery's gap, and
// espeak-ng through dmix shows short out-of-order fragments there. For those
// runs the test holds what does hold: the source is in the recording, played
// to its end after the recovery, with no more of it lost than one stall's
// worth (STALL_LOST_MS); the proof's verdict is printed in full. The runs
// without a stall (fail-prepare, the manual recover) must pass the whole
// proof.
import { existsSync, statSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeProof, proofFailures, type ProofCriteria, type ProofReport } from '../../audio/proof.js';
import { assertGuestOk } from '../../rig/guest.js';
import { buildHelperModule } from '../../rig/kmod-build.js';
import { recoveryRunKey } from '../../sound-apps/recovery-inputs.js';
import { EDGE_LOST_MS, expectedLevelSteps, RECORDED_WITHIN_MS, recoveryCriteria, STALL_LOST_MS, STALLS } from './proof-criteria.js';
import {
  DRAIN_FAULTS,
  RECOVERY_CARDS as DRIVERS,
  RECOVERY_CASES as CASES,
  RECOVERY_RUN_CASES as runCases,
  RECOVERY_SCRIPT as SCRIPT,
  RECOVERY_SCRIPT_SOURCE as SOURCE,
  RECOVERY_TIMEOUT_MS as GUEST_TIMEOUT_MS,
  removeSoundFiles,
  runSoundAppsRecovery,
  type SoundRecoveryResult as Result,
  type SoundRecoveryRuns,
} from './sound-apps-runs.js';

/** The trigger each fault that stalls nothing must be detected by (the others: stream-stall). */
const TRIGGER: Record<string, string> = { 'fail-prepare': 'prepare-failed', 'fail-stop@idle': 'hw-params-failed' };

describe('sound applications with shadowd: a driver failure is detected, the card recovered, the applications go on, and the audio proves it', () => {
  let runs: SoundRecoveryRuns | undefined;

  beforeAll(async () => {
    if (!existsSync(SCRIPT) || statSync(SCRIPT).mtimeMs < statSync(SOURCE).mtimeMs) {
      throw new Error(`${SCRIPT} is missing or older than ${SOURCE}: run \`npx tsc -p tsconfig.json\` first`);
    }
    await buildHelperModule((line) => console.log(`kmod: ${line}`));
    runs = await runSoundAppsRecovery();
    const guest = runs.guest;
    console.log(`guest: ${(guest.totalMs / 1000).toFixed(0)} s; recordings in ${runs.captureDir} (kept with SHADOWD_KEEP_SOUND=1)\n${guest.stdout.split('\n').filter((l) => !l.startsWith('SOUND_RECOVERY ')).join('\n')}`);
  }, GUEST_TIMEOUT_MS + 300_000);

  // SHADOWD_KEEP_SOUND=1 keeps the sources and QEMU's recordings for a look.
  afterAll(async () => {
    await removeSoundFiles(runs?.dirs ?? []);
  });

  function result(): Result {
    expect(runs?.result, `no SOUND_RECOVERY line in:\n${runs?.guest.stdout}\n${runs?.guest.stderr}`).toBeDefined();
    return runs!.result!;
  }

  /** Where the run's own source is in its card's recording (the card's other runs played before and after it). */
  function proof(driver: string, key: string): ProofReport {
    expect(runs?.captures.get(driver), `no recording of the ${driver} card`).toBeDefined();
    const r = runs!.proofs.get(key);
    expect(r, `${key}: its source is nowhere in the ${driver} card's recording`).toBeDefined();
    return r!;
  }

  it('recovers ens1370 and intel8x0 under aplay, espeak-ng, the mmap game and arecord from every fault', () => {
    const r = result();
    for (const run of r.runs) {
      const rec = run.recoveries.map((x) => `${x.result} (${x.trigger ?? '?'}, detect ${(x['phases'] as { detect?: number } | undefined)?.detect ?? '-'} ms, restart ${(x['phases'] as { restart?: number } | undefined)?.restart ?? '-'} ms)`).join(', ');
      console.log(`${run.driver} ${run.app} ${run.fault}: exit ${run.exitCode}, fault at ${run.faultAtMs} ms of ${run.appMs} ms, kernel then: ${run.afterFault ?? '-'}; recoveries ${rec || 'none'}${run.clearedByHand ? ' (the drain ended first; recovered by hand after)' : ''}, recovered ${run.recoveredAfterMs ?? '-'} ms after the fault`);
    }
    expect(r.problems).toEqual([]);
    assertGuestOk(runs!.guest, 'sound recovery scenario');
    expect(r.cards.map((c) => c.driver).sort()).toEqual(['snd_ens1370', 'snd_intel8x0']);
    expect(r.runs).toHaveLength(r.cards.length * (CASES.length + DRAIN_FAULTS.length));
    for (const run of r.runs) {
      expect(run.exitCode, `${run.driver} ${run.app} ${run.fault}: ${run.stderr}`).toBe(0);
      if (run.when === 'drain') {
        // The fault went in during the drain; a frozen position there is a stall like any other.
        expect(run.faultAtMs, `${run.driver} ${run.fault}: no fault went in`).toBeGreaterThanOrEqual(0);
        if (run.fault === 'fail-stop@drain' || run.recoveries.length > 0) {
          expect(run.recoveries.length, `${run.driver} ${run.fault}`).toBeGreaterThan(0);
          for (const x of run.recoveries) expect(x.result, `${run.driver} ${run.fault} ${x.id}`).toBe('recovered');
          expect(run.recoveries[0]!.trigger, `${run.driver} ${run.fault}`).toBe('stream-stall');
        }
        continue;
      }
      expect(run.exitCode, `${run.driver} ${run.app} ${run.fault}: ${run.stderr}`).toBe(0);
      expect(run.recoveries.length, `${run.driver} ${run.app} ${run.fault}`).toBeGreaterThan(0);
      for (const x of run.recoveries) expect(x.result, `${run.driver} ${run.app} ${run.fault} ${x.id}`).toBe('recovered');
      // Detected by the sound class's own detectors, not by hand.
      expect(run.recoveries[0]!.trigger, `${run.driver} ${run.app} ${run.fault}`).toBe(TRIGGER[run.fault] ?? 'stream-stall');
      // The recorder recorded what it was asked for, the recovery's gap filled by its own recovery from the overrun.
      if (run.app === 'arecord-hw') {
        expect(run.recording, `${run.driver} arecord ${run.fault}`).not.toBeNull();
        expect(Math.abs((run.recording!.recordedMs ?? -1e9) - run.recording!.askedMs), `${run.driver} arecord ${run.fault}: recorded ${run.recording!.recordedMs} of ${run.recording!.askedMs} ms`).toBeLessThan(RECORDED_WITHIN_MS);
      }
      // The game's volume, set before the fault, is still what it set.
      if (run.app === 'game') {
        expect(run.mixer?.set, `${run.driver} game ${run.fault}: it never set its volume`).toEqual(expect.any(Number));
        expect(run.mixer?.after, `${run.driver} game ${run.fault}: ${run.mixer?.element}`).toBe(run.mixer?.set);
      }
    }
    expect(r.manual.recover?.exitCode).toBe(0);
    expect(r.manual.recover?.output).toMatch(/^sound:card0: recovered in \d+ ms/);
    expect(r.manual.player?.exitCode).toBe(0);
  });

  const describeRun = (r: ProofReport, criteria: ProofCriteria, what: string): void => {
    const gap = r.gaps[0];
    console.log(`${what}: ${gap ? `gap of ${gap.captureGapMs.toFixed(0)} ms (${gap.captureSilentMs.toFixed(0)} ms silent) at source ${gap.atSourceMs.toFixed(0)} ms, source lost ${gap.sourceLostMs.toFixed(0)} ms` : 'no gap'}\n${describeProof(r, criteria)}`);
  };

  /** The players' runs (the recorder's has no source to find). */
  const played = runCases.filter(([app]) => app !== 'arecord-hw');
  /** The tests' criteria for a player's run: the game's volume step where the card's model applies it. */
  const criteriaFor = (r: ProofReport, app: string, driver: string): ProofCriteria => {
    const steps = expectedLevelSteps(app, driver);
    return { ...recoveryCriteria(r), ...(steps ? { expectedLevelSteps: steps } : {}) };
  };

  it.each(played.filter(([, , f]) => !STALLS.has(f)))('%s on %s through %s: the recording holds its whole source, in order, one gap at most', (app, driver, fault) => {
    const r = proof(driver, recoveryRunKey(driver, app, fault));
    const criteria = criteriaFor(r, app, driver);
    describeRun(r, criteria, `${driver} ${app} ${fault}`);
    expect(proofFailures(r, criteria)).toEqual([]);
  });

  it.each(played.filter(([, , f]) => STALLS.has(f)))('%s on %s through %s: the recording holds its source played to its end, no more than a stall\'s worth lost (repeats: open)', (app, driver, fault) => {
    const r = proof(driver, recoveryRunKey(driver, app, fault));
    const criteria = criteriaFor(r, app, driver);
    describeRun(r, criteria, `${driver} ${app} ${fault}`);
    const lastEnd = Math.max(...r.segments.map((g) => g.sourceEndMs));
    expect(r.sourceMs - lastEnd, 'the end of the source is not in the recording').toBeLessThanOrEqual(EDGE_LOST_MS);
    expect(r.missingMs, `${r.missingMs.toFixed(0)} ms of the source never played`).toBeLessThanOrEqual(STALL_LOST_MS);
  });

  it('aplay under a manual `shadowctl recover`: the recording holds its whole source, in order, one gap at most', () => {
    const driver = DRIVERS[0]![1];
    const r = proof(driver, recoveryRunKey(driver, 'aplay-hw', 'manual'));
    const criteria = recoveryCriteria(r);
    console.log(`${driver} aplay-hw manual recover:\n${describeProof(r, criteria)}`);
    expect(proofFailures(r, criteria)).toEqual([]);
  });
});
