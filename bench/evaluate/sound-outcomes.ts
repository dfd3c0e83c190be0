// The sound applications' outcomes (the seed's mp3 player, audio recorder,
// speech synthesizer and game; aplay and mpg123 both stand in for the mp3
// player), each read from one run of the sound scenarios and its audio
// proof (test/vm/classes/sound/sound-apps-runs.ts). A player's run:
// - app crash: it exited with an error, or was killed (at the deadline, or so
//   that the driver's unbind could finish);
// - app break: it exited 0, but the audio QEMU recorded does not prove its
//   source played (proof.ts under the tests' criteria, proof-criteria.ts:
//   one gap at most, whatever source it lost, nothing else lost but 50 ms at
//   the ends, no repeated, stale or garbage audio, no level change but the
//   game's mixer step), or its source is nowhere in the recording. A run
//   through a stall (lost-irq, fail-stop) whose recording repeats the stale
//   ring before detection is a break, whatever the tests' weaker stall
//   criterion says (reported in the evidence);
// - works: exit 0 and the whole proof passed.
// The recorder (its card records a silent backend: only its length can be
// judged): a crash as above; a break when it exited 0 with a recording cut
// short or missing; works when it recorded the length asked for. The game
// with shadowd: a break too when the volume it set before the fault was not
// its card's when it ended (the recovery lost it).
// A guest that crashed is a system crash for every run (outcome.ts
// systemCrash); a run that did not happen as planned (no result, no fault
// went in, no recording of its card) is 'no result', said why.
import { proofFailures, type Interval, type ProofReport } from '../../test/vm/audio/proof.js';
import type { SoundRecoveryRun } from '../../test/vm/guest/sound-recovery-scenario.js';
import { RECORD_SECONDS, type SoundAppResult } from '../../test/vm/sound-apps/apps.js';
import { EDGE_LOST_MS, expectedLevelSteps, RECORDED_WITHIN_MS, recoveryCriteria, STALL_LOST_MS, STALLS } from '../../test/vm/classes/sound/proof-criteria.js';
import type { AppNotRun, AppOutcome } from './outcome.js';
import { SEED_RELIABILITY } from './seed-figures.js';

export interface SoundRunContext {
  driver: string;
  kernel: string;
  fault: string;
  mode: AppOutcome['mode'];
  /** Set when the guest run was a system crash (outcome.ts systemCrash). */
  crash: string | null;
}

/** What was seen of a run's audio: its proof (undefined: its source is nowhere in the recording), and whether its card was recorded at all. */
export interface SoundAudio {
  proof: ProofReport | undefined;
  recorded: boolean;
}

/** The seed's application each program of the scenarios stands in for (shared/design.md). */
export const SOUND_SEED_APPS: Readonly<Record<string, { app: string; program: string }>> = {
  aplay: { app: 'mp3 player', program: 'aplay -D hw' },
  'aplay-hw': { app: 'mp3 player', program: 'aplay -D hw' },
  mpg123: { app: 'mp3 player', program: 'mpg123' },
  espeak: { app: 'speech synthesizer', program: 'espeak-ng' },
  game: { app: 'game', program: 'mmap game (alsa-lib)' },
  arecord: { app: 'audio recorder', program: 'arecord' },
  'arecord-hw': { app: 'audio recorder', program: 'arecord' },
};

interface Ended {
  exitCode: number | null | undefined;
  signal: string | null;
  timedOut: boolean;
  stderr: string;
  /** Why the scenario killed it, when it did. */
  killedFor?: string;
}

type Verdict = [AppOutcome['outcome'], string];

const f0 = (ms: number): string => ms.toFixed(0);
const lastLine = (text: string): string => text.trim().split('\n').at(-1)?.trim() ?? '';
const total = (xs: readonly Interval[]): number => xs.reduce((a, x) => a + x.captureEndMs - x.captureStartMs, 0);

function seedApp(app: string): { app: string; program: string } {
  return SOUND_SEED_APPS[app] ?? { app, program: app };
}

/** How a run that did not exit 0 ended, or null when it did. */
function crashed(e: Ended): string | null {
  if (e.timedOut) return 'killed at the scenario\'s deadline';
  if (e.exitCode === 0) return null;
  const how = e.exitCode === null || e.exitCode === undefined ? `killed${e.signal ? ` (${e.signal})` : ''}${e.killedFor ? ` ${e.killedFor}` : ''}` : `exit ${e.exitCode}`;
  const said = lastLine(e.stderr);
  return said ? `${how}: ${said}` : how;
}

function played(a: SoundAudio): string {
  if (!a.recorded) return 'its card has no recording';
  return a.proof ? `played ${f0(a.proof.sourceCoveredMs)} of ${f0(a.proof.sourceActiveMs)} ms of its source` : 'its source is nowhere in the recording';
}

/** What keeps the proof from passing, in a few words: the proof's own failures, with the repeats and garbage summed up. */
export function proofFindings(r: ProofReport, failures: readonly string[]): string {
  const parts = failures.filter((f) => !f.startsWith('repeated:') && !f.startsWith('garbage:'));
  if (r.repeats.length > 0) parts.push(`${f0(total(r.repeats))} ms of repeated (stale) audio in ${r.repeats.length} piece${r.repeats.length === 1 ? '' : 's'} from capture ${f0(r.repeats[0]!.captureStartMs)} ms`);
  if (r.garbage.length > 0) parts.push(`${f0(total(r.garbage))} ms of garbage in ${r.garbage.length} piece${r.garbage.length === 1 ? '' : 's'}`);
  return parts.join('; ');
}

/** A player's verdict from how it ended and its audio judged under the tests' criteria. */
function judgePlayer(app: string, driver: string, ended: Ended, audio: SoundAudio, stall: boolean): Verdict {
  const crash = crashed(ended);
  if (crash) return ['app crash', `${crash}; ${played(audio)}`];
  if (!audio.recorded) return ['no result', 'exit 0, but its card has no recording to prove its audio'];
  const r = audio.proof;
  if (!r || r.segments.length === 0) return ['app break', `exit 0 but its source is nowhere in the recording${r ? ` (${f0(r.sourceActiveMs)} ms of sound)` : ''}`];
  const steps = expectedLevelSteps(app, driver);
  const failures = proofFailures(r, { ...recoveryCriteria(r), ...(steps ? { expectedLevelSteps: steps } : {}) });
  const gap = r.gaps[0];
  const gapText = r.gaps.length === 0 ? 'no gap' : r.gaps.length === 1 && gap ? `one gap of ${f0(gap.captureGapMs)} ms, ${f0(Math.max(0, gap.sourceLostMs))} ms of source lost there` : `${r.gaps.length} gaps`;
  if (failures.length === 0) return ['works', `exit 0; the whole source played in order (${f0(r.sourceCoveredMs)} of ${f0(r.sourceActiveMs)} ms), ${gapText}`];
  let evidence = `exit 0 but the audio is not proven: ${proofFindings(r, failures)}`;
  if (stall) {
    // The tests' weaker criterion for a stall (recovery-apps.test.ts): the source played to its end, no more than a stall's worth lost.
    const endLost = r.sourceMs - Math.max(...r.segments.map((g) => g.sourceEndMs));
    const holds = endLost <= EDGE_LOST_MS && r.missingMs <= STALL_LOST_MS;
    evidence += `; the tests' weaker stall criterion (played to its end, at most ${STALL_LOST_MS} ms lost: ${f0(r.missingMs)} ms lost, ${f0(Math.max(0, endLost))} ms of the end missing) ${holds ? 'holds' : 'fails too'}`;
  }
  return ['app break', evidence];
}

/** A recorder's verdict from how it ended and its recording's length against the `wantMs` asked for. */
function judgeRecorder(ended: Ended, recordedMs: number | null, wantMs: number): Verdict {
  const crash = crashed(ended);
  const rec = recordedMs === null ? 'no recording' : `recorded ${f0(recordedMs)} of ${wantMs} ms`;
  if (crash) return ['app crash', `${crash}; ${rec}`];
  if (recordedMs === null || Math.abs(recordedMs - wantMs) >= RECORDED_WITHIN_MS) return ['app break', `exit 0 but ${rec}`];
  return ['works', `exit 0, ${rec} (the card records a silent backend: its length is judged, not its content)`];
}

function outcome(app: string, ctx: SoundRunContext, judge: () => Verdict): AppOutcome {
  const base = { ...seedApp(app), cls: 'sound', driver: ctx.driver, kernel: ctx.kernel, fault: ctx.fault, mode: ctx.mode };
  if (ctx.crash) return { ...base, outcome: 'system crash', evidence: ctx.crash };
  const [o, evidence] = judge();
  return { ...base, outcome: o, evidence };
}

/** One application's run without shadowd (guest/sound-control.ts, its `control` run); `res` undefined when the scenario gave no result for it. */
export function soundControlOutcome(app: string, res: SoundAppResult | undefined, audio: SoundAudio, ctx: SoundRunContext): AppOutcome {
  return outcome(app, ctx, (): Verdict => {
    if (!res) return ['no result', 'the scenario printed no result for this application on this card'];
    if (!res.fault) return ['no result', 'no fault went in: the stream was never seen running'];
    const ended: Ended = { exitCode: res.exitCode, signal: res.signal, timedOut: res.timedOut, stderr: res.stderrTail, ...(res.fault.appKilledForUnbind ? { killedFor: 'so that the unbind could finish' } : {}) };
    if (app === 'arecord') return judgeRecorder(ended, res.recordedMs, RECORD_SECONDS * 1000);
    return judgePlayer(app, ctx.driver, ended, audio, false);
  });
}

/** One application's run through a fault with shadowd (guest/sound-recovery-scenario.ts); `run` undefined when the scenario gave none. */
export function soundRecoveryOutcome(app: string, run: SoundRecoveryRun | undefined, audio: SoundAudio, ctx: SoundRunContext): AppOutcome {
  return outcome(app, ctx, (): Verdict => {
    if (!run) return ['no result', 'the scenario printed no result for this run'];
    if (run.faultAtMs < 0) return ['no result', 'no fault went in (the stream was never seen draining)'];
    const recs = run.recoveries;
    const recovered = recs.length === 0
      ? run.clearedByHand ? 'no recovery (the drain ended first; the card recovered by hand after)' : 'no recovery followed'
      : `recovered by ${recs.map((x) => `${x.trigger ?? '?'} (${x.result ?? 'no result'})`).join(', ')}${run.recoveredAfterMs === null ? '' : ` ${run.recoveredAfterMs} ms after the fault`}`;
    const ended: Ended = { exitCode: run.exitCode, signal: null, timedOut: false, stderr: run.stderr };
    if (run.recording) {
      const [o, evidence] = judgeRecorder(ended, run.recording.recordedMs, run.recording.askedMs);
      return [o, `${recovered}; ${evidence}`];
    }
    const [o, evidence] = judgePlayer(app, ctx.driver, ended, audio, STALLS.has(ctx.fault));
    const m = run.mixer;
    if (m && o !== 'app crash' && (m.set === null || m.after !== m.set)) {
      return ['app break', `${recovered}; its volume lost: it set ${m.element} to ${m.set ?? 'nothing'}, which was ${m.after ?? 'unreadable'} when it ended; ${evidence}`];
    }
    return [o, `${recovered}; ${evidence}${m ? `; ${m.element} kept at the ${m.set} it set` : ''}`];
  });
}

/** The seed's sound applications with no run in a mode among `outcomes`, each with its reason from `why` (by mode, then application), or a general one. */
export function soundAppsNotRun(outcomes: readonly AppOutcome[], why: Partial<Record<AppOutcome['mode'], Record<string, string>>>): AppNotRun[] {
  const modes: AppOutcome['mode'][] = ['without shadowd', 'with shadowd'];
  return SEED_RELIABILITY.filter((a) => a.cls === 'sound').flatMap((a) =>
    modes
      .filter((mode) => !outcomes.some((o) => o.cls === 'sound' && o.app === a.app && o.mode === mode))
      .map((mode) => ({ cls: 'sound', app: a.app, mode, why: why[mode]?.[a.app] ?? `the sound scenarios ran it ${mode} on no driver` })),
  );
}
