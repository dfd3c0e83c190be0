import { describe, expect, it } from 'vitest';
import { soundAppsNotRun, soundControlOutcome, soundRecoveryOutcome, type SoundAudio, type SoundRunContext } from '../../../../bench/evaluate/sound-outcomes.js';
import type { AppOutcome } from '../../../../bench/evaluate/outcome.js';
import type { Gap, ProofReport, Segment } from '../../../vm/audio/proof.js';
import type { SoundRecoveryRun } from '../../../vm/guest/sound-recovery-scenario.js';
import type { SoundAppResult } from '../../../vm/sound-apps/apps.js';

const seg = (sourceStartMs: number, sourceEndMs: number, captureStartMs: number): Segment => ({ sourceStartMs, sourceEndMs, captureStartMs, captureEndMs: captureStartMs + sourceEndMs - sourceStartMs, gainDb: 0, score: 0.97 });
const gap = (over: Partial<Gap> = {}): Gap => ({ atSourceMs: 3000, atCaptureMs: 4000, sourceLostMs: 100, captureGapMs: 900, captureSilentMs: 200, levelChangeDb: 0, ...over });

/** A proof of an 8 s source whose sound is 50-8050 ms, found whole in the capture at 1 s; `over` changes what was found. */
function proof(over: Partial<ProofReport> = {}): ProofReport {
  return {
    sourceMs: 8100, captureMs: 60_000, sourceActiveMs: 8000, sourceCoveredMs: 8000, missingHeadMs: 0, missingTailMs: 0, missingMs: 0,
    segments: [seg(50, 8050, 1000)], gaps: [], outOfOrder: 0, repeats: [], garbage: [], gainDb: -0.2, levelSteps: [], windowMs: [1000, 9500],
    ...over,
  };
}
/** The recording of a stall: the source broke off at 3 s, 100 ms of it lost, and resumed 900 ms later in the capture. */
const stalled = (over: Partial<ProofReport> = {}): ProofReport => proof({ sourceCoveredMs: 7900, missingMs: 100, segments: [seg(50, 3000, 1000), seg(3100, 8050, 4900)], gaps: [gap()], ...over });
/** The source stops at the fault and never comes back. */
const cut = (): ProofReport => proof({ sourceCoveredMs: 2600, missingMs: 5400, missingTailMs: 5400, segments: [seg(50, 2650, 1000)] });
const heard = (p: ProofReport | undefined): SoundAudio => ({ proof: p, recorded: true });

const control: SoundRunContext = { driver: 'snd_intel8x0', kernel: '6.1', fault: 'unbind+bind', mode: 'without shadowd', crash: null };
function appResult(app: SoundAppResult['app'], over: Partial<SoundAppResult> = {}): SoundAppResult {
  return {
    card: 1, alsaCard: 1, driver: 'snd_intel8x0', pci: '0000:00:05.0', app, run: 'control', argv: [], exitCode: 0, signal: null, timedOut: false, durationMs: 9000,
    stdoutTail: '', stderrTail: '', fault: { runningAfterMs: 300, atMs: 2800, unbindMs: 300, appKilledForUnbind: false, bindMs: 400, cardBackMs: 500 }, recordedMs: null, mixerElement: null,
    ...over,
  };
}

const rec: SoundRunContext = { driver: 'snd_ens1370', kernel: '6.1', fault: 'lost-irq', mode: 'with shadowd', crash: null };
function recoveryRun(over: Partial<SoundRecoveryRun> = {}): SoundRecoveryRun {
  return {
    card: 'card0', driver: 'snd_ens1370', app: 'aplay-hw', fault: 'lost-irq', exitCode: 0, stderr: '', recoveries: [{ id: 'r1', result: 'recovered', trigger: 'stream-stall' }], recoveredAfterMs: 1400,
    source: 'snd_ens1370/aplay-hw/lost-irq', recording: null, mixer: null, afterFault: null, appMs: 9500, faultAtMs: 2300, when: 'mid', clearedByHand: false,
    ...over,
  };
}
const verdict = (o: AppOutcome): string => `${o.app} (${o.program}): ${o.outcome}`;

describe('soundControlOutcome (without shadowd)', () => {
  it('a player that exits with an error crashed, whatever it played; one killed so that the unbind could finish too', () => {
    const o = soundControlOutcome('aplay', appResult('aplay', { exitCode: 1, stderrTail: 'aplay: pcm_write:2127: write error: No such device\n' }), heard(cut()), control);
    expect(verdict(o)).toBe('mp3 player (aplay -D hw): app crash');
    expect(o.evidence).toBe('exit 1: aplay: pcm_write:2127: write error: No such device; played 2600 of 8000 ms of its source');
    const killed = soundControlOutcome('mpg123', appResult('mpg123', { exitCode: null, signal: 'SIGKILL', fault: { ...appResult('mpg123').fault!, appKilledForUnbind: true } }), heard(cut()), control);
    expect(verdict(killed)).toBe('mp3 player (mpg123): app crash');
    expect(killed.evidence).toMatch(/^killed \(SIGKILL\) so that the unbind could finish; played 2600/);
    expect(soundControlOutcome('game', appResult('game', { exitCode: null, signal: 'SIGKILL', timedOut: true }), heard(cut()), control).evidence).toMatch(/^killed at the scenario's deadline/);
    expect(soundControlOutcome('aplay', appResult('aplay', { exitCode: 1 }), { proof: undefined, recorded: false }, control)).toMatchObject({ outcome: 'app crash', evidence: 'exit 1; its card has no recording' });
  });

  it('a player that exits 0 over lost audio broke: the audio proof says what was lost', () => {
    const o = soundControlOutcome('espeak', appResult('espeak'), heard(cut()), control);
    expect(verdict(o)).toBe('speech synthesizer (espeak-ng): app break');
    expect(o.evidence).toMatch(/^exit 0 but the audio is not proven: 5400 ms of the source's sound never played/);
    // Its source nowhere in a recording that exists is a break too.
    expect(soundControlOutcome('espeak', appResult('espeak'), heard(undefined), control)).toMatchObject({ outcome: 'app break', evidence: 'exit 0 but its source is nowhere in the recording' });
  });

  it('works only when it exits 0 and the whole proof passes; the game\'s mixer step is expected on AC97 and HDA, not on ES1370', () => {
    expect(soundControlOutcome('aplay', appResult('aplay'), heard(proof()), control).outcome).toBe('works');
    const step = proof({ levelSteps: [{ atSourceMs: 1200, fromDb: -0.1, toDb: -2.2 }] });
    expect(soundControlOutcome('game', appResult('game'), heard(step), control)).toMatchObject({ app: 'game', outcome: 'works' });
    const es = soundControlOutcome('game', appResult('game', { driver: 'snd_ens1370' }), heard(step), { ...control, driver: 'snd_ens1370' });
    expect(es.outcome).toBe('app break');
    expect(es.evidence).toMatch(/unexpected level step at 1200 ms/);
    const level = soundControlOutcome('aplay', appResult('aplay'), heard(stalled({ gaps: [gap({ levelChangeDb: -6 })] })), control);
    expect(level).toMatchObject({ outcome: 'app break' });
    expect(level.evidence).toMatch(/the level changed by -6.0 dB across the gap/);
  });

  it('the recorder: an error exit crashed, a recording cut short broke, the length asked for works', () => {
    expect(verdict(soundControlOutcome('arecord', appResult('arecord', { exitCode: 1, stderrTail: 'arecord: read error: No such device', recordedMs: 2600 }), { proof: undefined, recorded: false }, control))).toBe('audio recorder (arecord): app crash');
    const short = soundControlOutcome('arecord', appResult('arecord', { recordedMs: 2600 }), { proof: undefined, recorded: false }, control);
    expect(short).toMatchObject({ outcome: 'app break', evidence: 'exit 0 but recorded 2600 of 6000 ms' });
    expect(soundControlOutcome('arecord', appResult('arecord', { recordedMs: null }), { proof: undefined, recorded: false }, control).outcome).toBe('app break');
    expect(soundControlOutcome('arecord', appResult('arecord', { recordedMs: 5990 }), { proof: undefined, recorded: false }, control).outcome).toBe('works');
  });

  it('a guest crash is a system crash; a run that did not happen as planned is no result, said why', () => {
    expect(soundControlOutcome('aplay', appResult('aplay'), heard(proof()), { ...control, crash: 'kernel: Kernel panic' })).toMatchObject({ outcome: 'system crash', evidence: 'kernel: Kernel panic' });
    expect(soundControlOutcome('aplay', undefined, heard(undefined), control).outcome).toBe('no result');
    expect(soundControlOutcome('aplay', appResult('aplay', { fault: null }), heard(proof()), control)).toMatchObject({ outcome: 'no result', evidence: expect.stringMatching(/no fault went in/) as unknown });
    expect(soundControlOutcome('aplay', appResult('aplay'), { proof: undefined, recorded: false }, control)).toMatchObject({ outcome: 'no result', evidence: expect.stringMatching(/no recording/) as unknown });
  });
});

describe('soundRecoveryOutcome (with shadowd)', () => {
  it('a run without a stall works when it exits 0 and the whole source plays in order', () => {
    const o = soundRecoveryOutcome('aplay-hw', recoveryRun({ fault: 'fail-prepare', recoveries: [{ id: 'r2', result: 'recovered', trigger: 'prepare-failed' }] }), heard(proof()), { ...rec, fault: 'fail-prepare' });
    expect(verdict(o)).toBe('mp3 player (aplay -D hw): works');
    expect(o.evidence).toMatch(/^recovered by prepare-failed \(recovered\) 1400 ms after the fault; exit 0; the whole source played in order \(8000 of 8000 ms\), no gap$/);
    expect(soundRecoveryOutcome('espeak', recoveryRun({ app: 'espeak' }), heard(stalled()), rec)).toMatchObject({ app: 'speech synthesizer', outcome: 'works' });
  });

  it('a stall whose recording replays the stale ring is a break, not works, even where the tests\' weaker stall criterion holds', () => {
    const o = soundRecoveryOutcome('aplay-hw', recoveryRun(), heard(stalled({ repeats: [{ captureStartMs: 4000, captureEndMs: 4500, sourceMs: 2630, score: 0.95 }, { captureStartMs: 4500, captureEndMs: 4700, sourceMs: 2630, score: 0.9 }] })), rec);
    expect(o.outcome).toBe('app break');
    expect(o.evidence).toContain('700 ms of repeated (stale) audio in 2 pieces from capture 4000 ms');
    expect(o.evidence).toMatch(/weaker stall criterion .* holds$/);
    const lost = soundRecoveryOutcome('aplay-hw', recoveryRun(), heard(stalled({ missingMs: 600, gaps: [gap({ sourceLostMs: 100 })], garbage: [{ captureStartMs: 4000, captureEndMs: 4100, rmsDb: -20, bestScore: 0.3 }] })), rec);
    expect(lost.outcome).toBe('app break');
    expect(lost.evidence).toMatch(/600 ms of the source's sound never played.*100 ms of garbage in 1 piece.*fails too$/);
    // Outside a stall the weaker criterion is not mentioned.
    const prepare = soundRecoveryOutcome('aplay-hw', recoveryRun({ fault: 'fail-prepare' }), heard(proof({ outOfOrder: 1 })), { ...rec, fault: 'fail-prepare' });
    expect(prepare.outcome).toBe('app break');
    expect(prepare.evidence).not.toMatch(/stall criterion/);
  });

  it('an error exit or a kill is a crash; no fault, no run or a guest crash are said as such', () => {
    expect(soundRecoveryOutcome('aplay-hw', recoveryRun({ exitCode: 1, stderr: 'aplay: write error' }), heard(stalled()), rec)).toMatchObject({ outcome: 'app crash', evidence: expect.stringMatching(/exit 1: aplay: write error/) as unknown });
    expect(soundRecoveryOutcome('aplay-hw', recoveryRun({ exitCode: undefined }), heard(stalled()), rec).evidence).toMatch(/; killed; played/);
    expect(soundRecoveryOutcome('aplay-hw', recoveryRun({ faultAtMs: -1, fault: 'fail-stop@drain', when: 'drain' }), heard(proof()), { ...rec, fault: 'fail-stop@drain' }).outcome).toBe('no result');
    expect(soundRecoveryOutcome('aplay-hw', undefined, heard(undefined), rec).outcome).toBe('no result');
    expect(soundRecoveryOutcome('aplay-hw', recoveryRun(), heard(proof()), { ...rec, crash: 'the guest stopped answering (timed out)' }).outcome).toBe('system crash');
  });

  it('the recorder is judged by its recording\'s length against what it asked for, its card having no audio to prove', () => {
    const recorder = (over: Partial<SoundRecoveryRun>): SoundRecoveryRun => recoveryRun({ app: 'arecord-hw', source: null, ...over });
    const none = { proof: undefined, recorded: false };
    const ok = soundRecoveryOutcome('arecord-hw', recorder({ recording: { askedMs: 8000, recordedMs: 7990 } }), none, rec);
    expect(verdict(ok)).toBe('audio recorder (arecord): works');
    expect(ok.evidence).toMatch(/^recovered by stream-stall \(recovered\) 1400 ms after the fault; exit 0, recorded 7990 of 8000 ms/);
    expect(soundRecoveryOutcome('arecord-hw', recorder({ recording: { askedMs: 8000, recordedMs: 5000 } }), none, rec)).toMatchObject({ outcome: 'app break', evidence: expect.stringMatching(/exit 0 but recorded 5000 of 8000 ms$/) as unknown });
    expect(soundRecoveryOutcome('arecord-hw', recorder({ recording: { askedMs: 8000, recordedMs: null } }), none, rec).outcome).toBe('app break');
    expect(soundRecoveryOutcome('arecord-hw', recorder({ exitCode: 1, stderr: 'arecord: read error', recording: { askedMs: 8000, recordedMs: 3000 } }), none, rec)).toMatchObject({ outcome: 'app crash', evidence: expect.stringMatching(/exit 1: arecord: read error; recorded 3000 of 8000 ms$/) as unknown });
  });

  it('a game whose volume the recovery lost is a break however its audio played; kept, it is said so', () => {
    const game = (mixer: SoundRecoveryRun['mixer']): SoundRecoveryRun => recoveryRun({ app: 'game', fault: 'fail-prepare', mixer });
    const ctx = { ...rec, fault: 'fail-prepare' };
    const kept = soundRecoveryOutcome('game', game({ element: 'PCM', set: 25, after: 25 }), heard(proof()), ctx);
    expect(verdict(kept)).toBe('game (mmap game (alsa-lib)): works');
    expect(kept.evidence).toMatch(/; PCM kept at the 25 it set$/);
    const lost = soundRecoveryOutcome('game', game({ element: 'PCM', set: 25, after: 31 }), heard(proof()), ctx);
    expect(lost.outcome).toBe('app break');
    expect(lost.evidence).toMatch(/its volume lost: it set PCM to 25, which was 31 when it ended/);
    expect(soundRecoveryOutcome('game', game({ element: 'PCM', set: null, after: 31 }), heard(proof()), ctx).outcome).toBe('app break');
    // A crash stays a crash.
    expect(soundRecoveryOutcome('game', { ...game({ element: 'PCM', set: 25, after: 31 }), exitCode: 1 }, heard(proof()), ctx).outcome).toBe('app crash');
  });

  it('a drain that ended before any recovery is said so', () => {
    const o = soundRecoveryOutcome('aplay-hw', recoveryRun({ fault: 'lost-irq@drain', when: 'drain', recoveries: [], recoveredAfterMs: null, clearedByHand: true }), heard(proof()), { ...rec, fault: 'lost-irq@drain' });
    expect(o).toMatchObject({ outcome: 'works' });
    expect(o.evidence).toMatch(/^no recovery \(the drain ended first/);
  });
});

describe('soundAppsNotRun', () => {
  it('names each of the seed\'s sound applications with no run in a mode, with its reason or a general one', () => {
    const ran = (app: string, mode: AppOutcome['mode']): AppOutcome => ({ app, program: 'p', cls: 'sound', driver: 'd', kernel: '6.1', fault: 'f', mode, outcome: 'works', evidence: '' });
    const outcomes = [
      ...['mp3 player', 'audio recorder', 'speech synthesizer', 'game'].map((a) => ran(a, 'without shadowd')),
      ran('mp3 player', 'with shadowd'),
      ran('speech synthesizer', 'with shadowd'),
      // Another class's application of the same name does not count.
      { ...ran('game', 'with shadowd'), cls: 'net' },
    ];
    expect(soundAppsNotRun(outcomes, { 'with shadowd': { game: 'no game yet' } })).toEqual([
      { cls: 'sound', app: 'audio recorder', mode: 'with shadowd', why: 'the sound scenarios ran it with shadowd on no driver' },
      { cls: 'sound', app: 'game', mode: 'with shadowd', why: 'no game yet' },
    ]);
  });
});
