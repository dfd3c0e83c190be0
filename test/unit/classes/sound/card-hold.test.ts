import { describe, expect, it } from 'vitest';
import { CardHold } from '../../../../daemon/classes/sound/card-hold.js';

describe('CardHold', () => {
  it('holds each card with its setting and logs the helper\'s reply; a refusal is logged, not thrown', async () => {
    const sent: string[] = [];
    const logs: [string, string][] = [];
    const hold = new CardHold({
      command: (line) => {
        sent.push(line);
        return line.includes('card1') ? Promise.reject(new Error('ENODEV no sound card sound:card1')) : Promise.resolve(`held ${line.split(' ')[1]!} ms=4000 substreams=2`);
      },
      holdMs: (card) => (card === 'card0' ? 4000 : 100),
      logger: { log: (level, msg) => logs.push([level, msg]) },
    });
    await hold.holdAll(['card0', 'card1']);
    expect(sent).toEqual(['hold sound:card0 4000', 'hold sound:card1 100']);
    expect(logs[0]).toEqual(['info', 'card0: held sound:card0 ms=4000 substreams=2: a stalled stream or a failed prepare waits up to 4000 ms for a restart']);
    expect(logs[1]![0]).toBe('warning');
    expect(logs[1]![1]).toMatch(/^card1: cannot hold the card's streams for a restart \(ENODEV no sound card sound:card1\)/);
  });
});
