// The sound class's kernel log rule: the helper's guard holding a prepare
// the driver failed (kmod/sh_sound_ops.c prints the line).
import { describe, expect, it } from 'vitest';
import { PREPARE_HELD_RULE } from '../../../../daemon/classes/sound/prepare-held-log.js';

describe('PREPARE_HELD_RULE', () => {
  it('names the card and what failed, as the helper prints it', () => {
    expect(PREPARE_HELD_RULE.line!('shadow_helper: sound:card1: prepare of pcmC1D0p failed: error -5; the caller waits up to 5000 ms for a restart')).toEqual({
      device: 'card1',
      driverName: null,
      startedMsBefore: 0,
      detail: 'the driver failed to prepare pcmC1D0p (error -5); the helper holds the application\'s call up to 5000 ms for the restart',
    });
    expect(PREPARE_HELD_RULE.line!('shadow_helper: sound:card12: prepare of pcmC12D3c failed: error -110; the caller waits up to 60000 ms for a restart\n')?.device).toBe('card12');
  });

  it('matches nothing else', () => {
    for (const other of [
      'shadow_helper: sound:card0: fault fail-prepare injected',
      'shadow_helper: recovery r1: sound:card0 restarted in 33 ms (mixer:skip,streams:ok,open:skip)',
      'snd_hda_intel 0000:00:04.0: IRQ timing workaround is activated for card #0. Suggest a bigger bdl_pos_adj.',
      'fake: shadow_helper: sound:card0: prepare of pcmC0D0p failed: error -5; the caller waits up to 5000 ms for a restart',
      'shadow_helper: sound:card0: prepare of pcmC0D0p failed: error -5',
    ]) expect(PREPARE_HELD_RULE.line!(other), other).toBeNull();
  });
});
