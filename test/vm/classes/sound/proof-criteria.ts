// What the sound tests hold a run's audio to (audio/proof.ts ProofCriteria),
// shared by the tests (apps-control.test.ts, recovery-apps.test.ts) and by
// `npm run evaluate`'s classification (bench/evaluate/sound-outcomes.ts).
// Pure: no guest, no file.
import type { ProofCriteria, ProofReport } from '../../audio/proof.js';
import { GAME_MIXER_AT_MS } from '../../sound-apps/apps.js';

/**
 * Sound the proof lets go at the source's head and tail, outside the
 * recovery's gap: without any fault the emulated cards lose that much
 * under TCG (measured in apps-control: ES1370 the last 20 ms of espeak-ng,
 * HDA the last 40 ms of an aplay). The recovery's one gap may lose source
 * (the audio queued in the buffer when the driver failed), reported.
 */
export const EDGE_LOST_MS = 50;

/**
 * Source a stall may lose in all: what was queued in the ring when the
 * driver stopped, about a buffer (aplay's is 371 ms on ES1370; lost in the
 * guest: 0-190 ms).
 */
export const STALL_LOST_MS = 400;

/** The faults that stall a stream (the card's DMA loops on meanwhile): the full proof is open for them. */
export const STALLS: ReadonlySet<string> = new Set(['lost-irq', 'fail-stop', 'fail-stop@drain', 'lost-irq@drain']);

/** The criteria for a run with a recovery: one gap at most, whatever source it lost, and nothing else lost. */
export function recoveryCriteria(r: ProofReport): ProofCriteria {
  const gapLost = r.gaps.length === 1 ? Math.max(0, r.gaps[0]!.sourceLostMs) : 0;
  return { maxGaps: 1, maxLostMs: gapLost + EDGE_LOST_MS };
}

/**
 * The level steps a run's source is meant to show. The game turns the
 * volume down from 100 % to GAME_MIXER_PERCENT when it has written
 * GAME_MIXER_AT_MS of its source; what is written leads what is heard by up
 * to its 0.5 s buffer. QEMU's AC97 and HDA models apply the mixer (about
 * -2 dB): the level must step there and nowhere else. QEMU's ES1370 model
 * ignores the mixer: no step at all. Undefined: none.
 */
export function expectedLevelSteps(app: string, driver: string): ProofCriteria['expectedLevelSteps'] {
  return app === 'game' && driver !== 'snd_ens1370' ? [{ atSourceMs: GAME_MIXER_AT_MS - 350, toleranceMs: 450 }] : undefined;
}

/** How far arecord's recording may be from the length asked for (RECORD_SECONDS) without a fault. */
export const RECORDED_WITHIN_MS = 50;
