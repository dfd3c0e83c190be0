// Planning a card's mixer replay: what differs, matched by element id and
// set by today's numid; only elements the daemon can set; after a restart,
// only those nobody changed since it began or wrote while the card was held.
import { describe, expect, it } from 'vitest';
import { planMixer, planRestartMixer, type MixerEntry } from '../../../../daemon/classes/sound/mixer-replay.js';
import { control } from './fake-sound-system.js';

const entry = (key: string, value: MixerEntry['value'], seq: number): MixerEntry => ({ key, value, seq });

describe('mixer replay plan', () => {
  const live = [
    control(7, 'Master Playback Volume', ['0', '0']),
    control(8, 'Master Playback Switch', ['off', 'off'], { type: 'BOOLEAN' }),
    control(9, 'Level Meter', ['3'], { access: 'r--v----' }),
    control(10, 'PCM Volume', ['5', '5'], { index: 1 }),
  ];

  it('sets every element that differs, by the numid it has now', () => {
    const entries = [
      entry("mixer/MIXER:'Master Playback Volume'", ['20', '20'], 3),
      entry("mixer/MIXER:'Master Playback Switch'", ['off', 'off'], 4),
      entry("mixer/MIXER:'Level Meter'", ['9'], 5),
      entry("mixer/MIXER:'PCM Volume',index=1", ['6', '6'], 6),
      entry("mixer/MIXER:'Gone Volume'", ['1'], 7),
      entry('pcm0p/sub0', { state: 'RUNNING' }, 8),
      entry("mixer/MIXER:'PCM Volume'", ['1', '1', '1'], 9),
    ];
    expect(planMixer(entries, live)).toEqual([
      { key: "mixer/MIXER:'Master Playback Volume'", numid: 7, values: ['20', '20'] },
      { key: "mixer/MIXER:'PCM Volume',index=1", numid: 10, values: ['6', '6'] },
    ]);
  });

  it('after a restart leaves what changed since the mark as the card has it', () => {
    const entries = [entry("mixer/MIXER:'Master Playback Volume'", ['20', '20'], 3), entry("mixer/MIXER:'PCM Volume',index=1", ['6', '6'], 12)];
    expect(planRestartMixer(entries, live, 10)).toEqual({
      steps: [{ key: "mixer/MIXER:'Master Playback Volume'", numid: 7, values: ['20', '20'] }],
      left: ["mixer/MIXER:'PCM Volume',index=1"],
    });
    // Written while the card was held, not read yet: left too.
    expect(planRestartMixer(entries, live, 10, new Set(["mixer/MIXER:'Master Playback Volume'"]))).toEqual({
      steps: [],
      left: ["mixer/MIXER:'Master Playback Volume'", "mixer/MIXER:'PCM Volume',index=1"],
    });
  });

  it('ignores a shadow value that is not a list of values', () => {
    expect(planMixer([entry("mixer/MIXER:'Master Playback Volume'", null, 1), entry("mixer/MIXER:'Master Playback Switch'", [1, 2], 2)], live)).toEqual([]);
  });
});
