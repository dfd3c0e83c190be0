// The sound applications without shadowd, proven by the audio: on each sound
// class driver (snd-ens1370, snd-intel8x0, snd-hda-intel) an audio player
// (aplay), an mp3 player (mpg123), a speech synthesizer (espeak-ng) and a
// game (the mmap client, which changes the mixer volume mid-run) play to the
// card, and arecord records from a second card of the same driver (QEMU's
// wav backend, which records what each playing card outputs, has no input).
// First without a fault: every app exits 0 and the proof library finds each
// source whole and in order in QEMU's recording (so the proof can pass here).
// Then the control: mid-run the card's PCI device is unbound from its driver
// and bound again; the failure must show: in the audio (the source stops),
// and in the applications.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeProof, proofFailures, type ProofCriteria, type ProofReport } from '../../audio/proof.js';
import { assertGuestOk } from '../../rig/guest.js';
import { PLAY_APPS, RECORD_SECONDS, type SoundApp, type SoundAppResult } from '../../sound-apps/apps.js';
import type { SoundRun } from '../../sound-apps/inputs.js';
import { expectedLevelSteps, RECORDED_WITHIN_MS } from './proof-criteria.js';
import { CONTROL_CARDS as DRIVERS, CONTROL_TIMEOUT_MS as GUEST_TIMEOUT_MS, removeSoundFiles, runSoundAppsControl, type SoundControlRuns } from './sound-apps-runs.js';

/**
 * Without a fault the emulated devices still drop a little under TCG on a
 * loaded host (measured: HDA lost the last 40 ms of an aplay; in another
 * run 3 dropouts of 50 ms each in aplay and in mpg123 on HDA; ES1370 the
 * last 20 ms of espeak-ng). The no-fault proof allows that much and nothing
 * else: no garbage, no repeat, no level step but the game's.
 */
const NOFAULT_LOST_MS = 200;
const NOFAULT_DROPOUTS = 3;
/**
 * Known gaps of the emulation, not of shadowd (docs/sound-proof.md): espeak-ng
 * through a plug to QEMU's AC97 comes out garbled and partly reordered
 * without any fault (4 of 4 runs), and on ES1370 it dropped pieces in one
 * run of 4. Their no-fault proof is printed, not asserted; their exit status
 * is, and so is their control.
 */
const NOFAULT_PROOF_KNOWN_GAPS = new Set(['espeak/snd_intel8x0', 'espeak/snd_ens1370']);

describe('sound applications without shadowd: they play, and a driver restart breaks them (the control)', () => {
  const results = new Map<string, SoundAppResult>();
  let runs: SoundControlRuns | undefined;
  let stdout = '';

  beforeAll(async () => {
    runs = await runSoundAppsControl();
    const r = runs.guest;
    stdout = r.stdout;
    console.log(`guest: ${(r.totalMs / 1000).toFixed(0)} s in all; recordings in ${runs.captureDir} (kept with SHADOWD_KEEP_SOUND=1)\n${r.stdout.split('\n').filter((l) => !l.startsWith('SOUND_APP_RESULT ')).join('\n')}`);
    assertGuestOk(r, 'sound control scenario');
    for (const [key, res] of runs.results) results.set(key, res);
  }, GUEST_TIMEOUT_MS + 120_000);

  // SHADOWD_KEEP_SOUND=1 keeps the inputs and QEMU's recordings (about 40 MB) for a look.
  afterAll(async () => {
    await removeSoundFiles(runs?.dirs ?? []);
  });

  function result(card: number, app: SoundApp, run: SoundRun): SoundAppResult {
    const r = results.get(`${card}/${app}/${run}`);
    expect(r, `no ${run} result for ${app} on card ${card} in:\n${stdout}`).toBeDefined();
    return r!;
  }

  /** Where the app's source is in its card's recording (other apps played before and after it). */
  function proof(card: number, app: Exclude<SoundApp, 'arecord'>, run: SoundRun): ProofReport {
    const r = runs!.proof(card, app, run);
    expect(r, `no recording of card ${card}`).toBeDefined();
    return r!;
  }

  const playCases = DRIVERS.flatMap(([preset, driver], card) => PLAY_APPS.map((app) => [app, preset, driver, card] as const));

  it.each(playCases)('without a fault, %s on %s (%s) plays its whole source, and the recording proves it', (app, _p, driver, card) => {
    const res = result(card, app, 'nofault');
    const r = proof(card, app as Exclude<SoundApp, 'arecord'>, 'nofault');
    const criteria: ProofCriteria = { maxGaps: NOFAULT_DROPOUTS, maxLostMs: NOFAULT_LOST_MS };
    // The game's mixer change: a level step on AC97 and HDA, none on ES1370 (proof-criteria.ts).
    const steps = expectedLevelSteps(app, driver);
    if (steps) criteria.expectedLevelSteps = steps;
    console.log(`${driver} ${app} no fault: exit ${res.exitCode}, ${(res.durationMs / 1000).toFixed(1)} s${res.mixerElement ? `, mixer ${res.mixerElement}` : ''}\n${describeProof(r, criteria)}`);
    expect(res.exitCode, res.stderrTail).toBe(0);
    if (NOFAULT_PROOF_KNOWN_GAPS.has(`${app}/${driver}`)) {
      console.log(`${driver} ${app} no fault: proof not asserted (a known gap of the emulation): ${proofFailures(r, criteria).join('; ') || 'it passed this time'}`);
      return;
    }
    expect(proofFailures(r, criteria)).toEqual([]);
  });

  it.each(DRIVERS.map(([p, d], k) => [p, d, k + DRIVERS.length] as const))('without a fault on %s (%s) arecord records the requested length', (_p, driver, card) => {
    const res = result(card, 'arecord', 'nofault');
    console.log(`${driver} arecord no fault: exit ${res.exitCode}, recorded ${res.recordedMs?.toFixed(0)} ms of ${RECORD_SECONDS * 1000}; ${res.stderrTail.trim()}`);
    expect(res.exitCode, res.stderrTail).toBe(0);
    expect(res.recordedMs).not.toBeNull();
    expect(Math.abs(res.recordedMs! - RECORD_SECONDS * 1000)).toBeLessThan(RECORDED_WITHIN_MS);
  });

  it.each(playCases)('control: the driver restarts under %s on %s (%s), and the recording shows the failure', (app, _p, driver, card) => {
    const res = result(card, app, 'control');
    const r = proof(card, app as Exclude<SoundApp, 'arecord'>, 'control');
    const f = res.fault;
    console.log(
      `${driver} ${app} control: exit ${res.exitCode ?? res.signal}, stderr ${JSON.stringify(res.stderrTail.trim().split('\n').slice(-2).join(' | '))}; ` +
        (f ? `stream running after ${f.runningAfterMs.toFixed(0)} ms, unbind at ${f.atMs.toFixed(0)} ms took ${f.unbindMs.toFixed(0)} ms${f.appKilledForUnbind ? ' (app killed)' : ''}, bind ${f.bindMs.toFixed(0)} ms, card back after ${f.cardBackMs?.toFixed(0)} ms` : 'no fault injected') +
        `\n${describeProof(r, { maxGaps: 1 })}`,
    );
    // The fault landed mid-run: the stream ran, and the source had begun to play.
    expect(f, 'the stream never ran, so no fault was injected').not.toBeNull();
    expect(r.segments.length, 'none of the source was played before the fault').toBeGreaterThan(0);
    expect(f!.cardBackMs, 'the card did not come back after the bind').not.toBeNull();
    // The failure shows in the audio: most of the source never played.
    expect(r.missingMs).toBeGreaterThan(1000);
    expect(proofFailures(r, { maxGaps: 1 }).length).toBeGreaterThan(0);
  });

  it.each(DRIVERS.map(([p, d], k) => [p, d, k + DRIVERS.length] as const))('control: on %s (%s) the driver restarts under arecord, and the recording is cut short or fails', (_p, driver, card) => {
    const res = result(card, 'arecord', 'control');
    console.log(`${driver} arecord control: exit ${res.exitCode ?? res.signal}, recorded ${res.recordedMs?.toFixed(0)} ms of ${RECORD_SECONDS * 1000}; ${res.stderrTail.trim().split('\n').slice(-1).join('')}`);
    expect(res.fault).not.toBeNull();
    expect(res.exitCode !== 0 || (res.recordedMs ?? 0) < RECORD_SECONDS * 1000 - 500).toBe(true);
  });

  it('reports each application\'s fate in the control (an error exit, or an exit 0 over lost audio)', () => {
    const fates = [...results.values()].filter((r) => r.run === 'control').map((r) => `${r.driver} ${r.app}: exit ${r.exitCode ?? r.signal}`);
    console.log(fates.join('\n'));
    expect(fates.length).toBe(DRIVERS.length * (PLAY_APPS.length + 1));
  });
});
