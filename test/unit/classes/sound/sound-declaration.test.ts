// The sound class's declaration: the helper's contract (names, faults,
// steps, reply field), its sync marker (a refused write the taps print,
// which no card's event can be taken for) and its stall setting.
import { describe, expect, it } from 'vitest';
import { cardName, cardNumber } from '../../../../daemon/classes/sound/card-name.js';
import { SOUND_DECLARATION, SOUND_SYNC_MARKER } from '../../../../daemon/classes/sound/sound-declaration.js';
import { parseTapRecord } from '../../../../daemon/core/tap-record.js';

describe('the sound class declaration', () => {
  it('is the helper\'s contract', () => {
    expect(SOUND_DECLARATION).toMatchObject({
      id: 'sound',
      title: 'sound',
      noun: 'sound card',
      faults: ['lost-irq', 'fail-stop', 'fail-prepare'],
      restartSteps: ['mixer', 'streams', 'open'],
      restartFields: ['card'],
      failureKinds: ['stream-stall', 'prepare-failed', 'hw-params-failed', 'start-failed'],
      tapModules: ['snd', 'snd-pcm'],
    });
  });

  it('names its devices card0 to card31, as /sys/class/sound does', () => {
    for (const ok of ['card0', 'card9', 'card10', 'card29', 'card31']) expect(SOUND_DECLARATION.names.valid(ok), ok).toBe(true);
    for (const bad of ['', 'card', 'card32', 'card07', 'card-1', 'Card0', 'card0 ', 'pcmC0D0p', 'controlC0']) expect(SOUND_DECLARATION.names.valid(bad), bad).toBe(false);
    expect(cardNumber('card31')).toBe(31);
    expect(() => cardNumber('card32')).toThrow('"card32" is not a sound card name (card0 to card31)');
    expect(cardName(3)).toBe('card3');
    expect(() => cardName(32)).toThrow('32 is not a sound card number (0 to 31)');
  });

  it('runs its marker as a refused one-byte write to /proc/asound/version, and knows it by that', () => {
    expect(SOUND_SYNC_MARKER.argv).toEqual(['dd', 'if=/dev/zero', 'of=/proc/asound/version', 'bs=1', 'count=1', 'conv=notrunc', 'status=none']);
    const rec = (body: string) => parseTapRecord(`${body} kthread=0 pid=9 ts=1 comm=dd`);
    expect(SOUND_SYNC_MARKER.isMarker(rec('ev=info_write attr=version parent=asound ret=-5'))).toBe(true);
    expect(SOUND_SYNC_MARKER.isMarker(rec('ev=info_write attr=prealloc parent=sub0 ret=-22'))).toBe(false);
    expect(SOUND_SYNC_MARKER.isMarker(rec('ev=card_disconnect card=0'))).toBe(false);
  });

  it('holds a card 5 s by default, up to the helper\'s 60 s, 0 for the kernel\'s own wait', () => {
    const s = SOUND_DECLARATION.settings.find((x) => x.key === 'HoldMs')!;
    expect(s.default).toBe(5000);
    expect(s.parse('0')).toEqual({ value: 0 });
    expect(s.parse('60001')).toMatchObject({ error: expect.stringContaining('from 0 to 60000') as string });
  });

  it('takes a stall threshold from 200 ms, 500 ms by default: detection under a second', () => {
    const s = SOUND_DECLARATION.settings.find((x) => x.key === 'StallThresholdMs')!;
    expect(s.default).toBe(500);
    expect(s.parse('500')).toEqual({ value: 500 });
    expect(s.parse('100')).toMatchObject({ error: expect.stringContaining('from 200 to 600000') as string });
  });
});
