// The helper's `periods` reply, read strictly: the running streams'
// interrupt positions, or an error for anything else (the detector then
// judges the card by its positions alone).
import { describe, expect, it } from 'vitest';
import { parsePeriods, PeriodsReplyError } from '../../../../daemon/classes/sound/period-positions.js';

describe('periods reply', () => {
  it('reads each running substream and its interrupt position', () => {
    expect([...parsePeriods('periods sound:card0 running=2 pcm0p/sub0=341145 pcm1c/sub3=0', 'card0')]).toEqual([
      ['pcm0p/sub0', 341145n],
      ['pcm1c/sub3', 0n],
    ]);
    expect(parsePeriods('periods sound:card12 running=0', 'card12').size).toBe(0);
    // A reply the helper cut short lists what fitted and says so.
    expect(parsePeriods('periods sound:card0 running=1 cut=1 pcm0p/sub0=7', 'card0').get('pcm0p/sub0')).toBe(7n);
    // Positions wrap at the stream's boundary, far beyond 2^53.
    expect(parsePeriods('periods sound:card0 running=1 pcm0p/sub0=9223372036854775807', 'card0').get('pcm0p/sub0')).toBe(9223372036854775807n);
  });

  it.each([
    ['another card', 'periods sound:card1 running=0'],
    ['another verb', 'held sound:card0 ms=5000 substreams=2'],
    ['no count', 'periods sound:card0 pcm0p/sub0=1'],
    ['a count that does not match', 'periods sound:card0 running=2 pcm0p/sub0=1'],
    ['a malformed substream', 'periods sound:card0 running=1 pcm0x/sub0=1'],
    ['a path in the name', 'periods sound:card0 running=1 ../../etc=1'],
    ['a negative position', 'periods sound:card0 running=1 pcm0p/sub0=-1'],
    ['a substream twice', 'periods sound:card0 running=2 pcm0p/sub0=1 pcm0p/sub0=2'],
    ['a huge number', `periods sound:card0 running=1 pcm0p/sub0=${'9'.repeat(40)}`],
    ['nothing', ''],
  ])('refuses %s', (_what, payload) => {
    expect(() => parsePeriods(payload, 'card0')).toThrow(PeriodsReplyError);
  });
});
