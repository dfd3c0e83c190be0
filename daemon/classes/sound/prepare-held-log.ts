// The helper's guard holding a failed prepare, in the kernel log: the sound
// class's rule for core/kernel-faults.ts. While the daemon holds a card
// (card-hold.ts), a prepare its driver fails with EIO or ETIMEDOUT is not
// handed to the application: the helper keeps the caller waiting for a
// restart of the card and says so (kmod/PROTOCOL.md, `hold`):
//
//   shadow_helper: sound:card0: prepare of pcmC0D0p failed: error -5; the caller waits up to 5000 ms for a restart
//
// A failing entry point is a driver failure the stream's position does not
// show: the stream never starts. The recovery that follows ends the wait.
import type { KernelLogRule, RuleMatch } from '../../core/kernel-faults.js';

export const PREPARE_FAILED = 'prepare-failed';

const HELD = /^shadow_helper: sound:(card\d+): prepare of (pcmC\d+D\d+[pc]) failed: error (-\d+); the caller waits up to (\d+) ms for a restart$/;

export const PREPARE_HELD_RULE: KernelLogRule = {
  cls: 'sound',
  kind: PREPARE_FAILED,
  line(raw: string): RuleMatch | null {
    const m = HELD.exec(raw.trimEnd());
    if (!m) return null;
    return {
      device: m[1]!,
      driverName: null,
      startedMsBefore: 0,
      detail: `the driver failed to prepare ${m[2]!} (error ${m[3]!}); the helper holds the application's call up to ${m[4]!} ms for the restart`,
    };
  },
};
