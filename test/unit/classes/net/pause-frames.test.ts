// Reading the PAUSE frames a NIC received from `ethtool --json -I -a`
// (pause-frames.ts): a driver that counts them, one that does not, and
// answers that are not what ethtool prints.
import { describe, expect, it } from 'vitest';
import { parseRxPauseFrames } from '../../../../daemon/classes/net/pause-frames.js';

describe('parseRxPauseFrames', () => {
  it('reads the count of a driver that keeps the standard pause statistics', () => {
    const text = JSON.stringify([{ ifname: 'eth0', autonegotiate: true, rx: true, tx: true, statistics: { tx_pause_frames: 3, rx_pause_frames: 123456 } }]);
    expect(parseRxPauseFrames(text)).toBe(123456n);
  });

  it('is null for a driver that does not count them (no statistics, or no rx count)', () => {
    expect(parseRxPauseFrames(JSON.stringify([{ ifname: 'eth0', autonegotiate: true, rx: true, tx: true }]))).toBeNull();
    expect(parseRxPauseFrames(JSON.stringify([{ ifname: 'eth0', statistics: { tx_pause_frames: 1 } }]))).toBeNull();
  });

  it('rejects what is not one device with a count', () => {
    expect(() => parseRxPauseFrames('Pause parameters for eth0:')).toThrow(/not JSON/);
    expect(() => parseRxPauseFrames('[]')).toThrow(/one device/);
    expect(() => parseRxPauseFrames('[1]')).toThrow(/one device/);
    expect(() => parseRxPauseFrames(JSON.stringify([{ statistics: 5 }]))).toThrow(/not an object/);
    for (const bad of [-1, 1.5, '7', 2 ** 60, null]) {
      expect(() => parseRxPauseFrames(JSON.stringify([{ statistics: { rx_pause_frames: bad } }]))).toThrow(/not a count/);
    }
  });
});
