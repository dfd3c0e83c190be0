// What the sound control scenario (guest/sound-control.ts) runs and reports,
// shared with the host test that reads its results.
import type { SoundRun } from './inputs.js';

export type SoundApp = 'aplay' | 'mpg123' | 'espeak' | 'game' | 'arecord';
export const PLAY_APPS: readonly SoundApp[] = ['aplay', 'mpg123', 'espeak', 'game'];
export const RECORD_SECONDS = 6;
export const FAULT_AFTER_MS = 2500;
export const GAME_MIXER_AT_MS = 1500;
/** From the scenario's 100 %: about -2 dB on AC97 and HDA (QEMU's ES1370 model ignores the mixer). */
export const GAME_MIXER_PERCENT = 80;

export interface SoundFault {
  /** App start to the stream being seen RUNNING. */
  runningAfterMs: number;
  /** App start to the unbind's start. */
  atMs: number;
  /** How long the unbind took (it waits for the card's files to close). */
  unbindMs: number;
  /** Whether the unbind waited past UNBIND_PATIENCE_MS and the app was killed to finish it. */
  appKilledForUnbind: boolean;
  bindMs: number;
  /** Bind to the card's control device being back. */
  cardBackMs: number | null;
}

export interface SoundAppResult {
  /** Index among the rig's sound presets (= its recording's index). */
  card: number;
  alsaCard: number;
  driver: string;
  pci: string;
  app: SoundApp;
  run: SoundRun;
  argv: string[];
  exitCode: number | null;
  signal: string | null;
  /** Killed by the scenario because it did not exit in time. */
  timedOut: boolean;
  durationMs: number;
  stdoutTail: string;
  stderrTail: string;
  fault: SoundFault | null;
  /** arecord: the recording's length. */
  recordedMs: number | null;
  /** game: the mixer element it set. */
  mixerElement: string | null;
}
