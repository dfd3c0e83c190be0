// The helper's guard holding a failed call, in the kernel log: the sound
// class's rules for core/kernel-faults.ts. While the daemon holds a card
// (card-hold.ts), a prepare or a hw_params its driver fails with EIO or
// ETIMEDOUT is not handed to the application: the helper keeps the caller
// waiting for a restart of the card and says so, naming the entry point
// (kmod/PROTOCOL.md, `hold`). A start (trigger) failed so is taken as done,
// the stream waiting, still, for the restart:
//
//   shadow_helper: sound:card0: prepare of pcmC0D0p failed: error -5; the caller waits up to 5000 ms for a restart
//   shadow_helper: sound:card0: hw_params of pcmC0D0p failed: error -5; the caller waits up to 5000 ms for a restart
//   shadow_helper: sound:card0: trigger of pcmC0D0p failed: error -5; the stream waits up to 5000 ms for a restart
//
// A failing entry point is a driver failure the stream's position does not
// show: the stream never starts (a failed hw_params is often the first sign
// of a card that failed while nothing played). The recovery that follows
// ends the wait. Each entry point is its own failure kind, so that a
// recovery's trigger in the history says which call failed.
import type { KernelLogRule, RuleMatch } from '../../core/kernel-faults.js';

export const PREPARE_FAILED = 'prepare-failed';
export const HW_PARAMS_FAILED = 'hw-params-failed';
export const START_FAILED = 'start-failed';

/** The entry points the guard holds, as its line names them. */
export type HeldEntry = 'prepare' | 'hw_params' | 'trigger';

/** One held call as the helper's line gives it. */
export interface HeldCall {
  card: string;
  entry: HeldEntry;
  /** The PCM device, as under /dev/snd: pcmC0D0p. */
  pcm: string;
  /** The driver's error, negative: -5. */
  error: number;
  holdMs: number;
}

const HELD = /^shadow_helper: sound:(card\d+): (prepare|hw_params|trigger) of (pcmC\d+D\d+[pc]) failed: error (-\d+); the (caller|stream) waits up to (\d+) ms for a restart$/;

/** The guard's line read, or null when the record is not one. */
export function parseHeldCall(raw: string): HeldCall | null {
  const m = HELD.exec(raw.trimEnd());
  // The caller of prepare and hw_params waits; a start is taken as done and its stream waits.
  if (!m || (m[2] === 'trigger') !== (m[5] === 'stream')) return null;
  return { card: m[1]!, entry: m[2] as HeldEntry, pcm: m[3]!, error: Number(m[4]), holdMs: Number(m[6]) };
}

/** Per entry point: the failure kind it is reported as, and what the driver failed to do, for the history. */
const ENTRIES: Record<HeldEntry, { kind: string; failed: (c: HeldCall) => string }> = {
  prepare: { kind: PREPARE_FAILED, failed: (c) => `the driver failed to prepare ${c.pcm} (error ${c.error})` },
  hw_params: { kind: HW_PARAMS_FAILED, failed: (c) => `the driver failed to set up ${c.pcm}'s hardware parameters (hw_params, error ${c.error})` },
  trigger: { kind: START_FAILED, failed: (c) => `the driver failed to start ${c.pcm} (trigger, error ${c.error})` },
};

function heldRule(entry: HeldEntry): KernelLogRule {
  const { kind, failed } = ENTRIES[entry];
  return {
    cls: 'sound',
    kind,
    line(raw: string): RuleMatch | null {
      const c = parseHeldCall(raw);
      if (c?.entry !== entry) return null;
      return {
        device: c.card,
        driverName: null,
        startedMsBefore: 0,
        detail: `${failed(c)}; the helper holds ${entry === 'trigger' ? 'the stream as started' : "the application's call"} up to ${c.holdMs} ms for the restart`,
      };
    },
  };
}

export const PREPARE_HELD_RULE = heldRule('prepare');
export const HW_PARAMS_HELD_RULE = heldRule('hw_params');
export const START_HELD_RULE = heldRule('trigger');
/** Every entry point the guard holds: the class's kernel log rules. */
export const HELD_CALL_RULES: readonly KernelLogRule[] = [PREPARE_HELD_RULE, HW_PARAMS_HELD_RULE, START_HELD_RULE];
/** Their failure kinds, in the same order. */
export const HELD_CALL_KINDS = [PREPARE_FAILED, HW_PARAMS_FAILED, START_FAILED] as const;
