// The ethtool text parsers on output recorded in the guest from e1000, pcnet32
// and e100 (test/fixtures/snapshot, written by test/vm/guest/record-snapshot.sh).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  EthtoolParseError,
  parseChannels,
  parseCoalesce,
  parseLinkSettings,
  parsePrivFlags,
  parseRings,
} from '../../../../daemon/classes/net/ethtool-text.js';

/** A recorded command's output, without the `exit=N` line the recorder appends. */
function recorded(name: string): string {
  const text = readFileSync(new URL(`../../../fixtures/snapshot/${name}.txt`, import.meta.url), 'utf8');
  return text.replace(/exit=\d+\n$/, '');
}

describe('ethtool text output', () => {
  it('reads the current ring sizes of each driver', () => {
    expect(parseRings(recorded('e1000-ethtool-g'))).toEqual({ rx: 256, rx_mini: null, rx_jumbo: null, tx: 256 });
    expect(parseRings(recorded('pcnet32-ethtool-g'))).toEqual({ rx: 32, rx_mini: null, rx_jumbo: null, tx: 16 });
    expect(parseRings(recorded('e100-ethtool-g'))).toEqual({ rx: 256, rx_mini: null, rx_jumbo: null, tx: 128 });
  });

  it('reads link settings, Wake-on-LAN and the message level', () => {
    expect(parseLinkSettings(recorded('e1000-ethtool'))).toEqual({
      autoneg: true,
      speed: 1000,
      duplex: 'Full',
      advertised: ['10baseT/Half', '10baseT/Full', '100baseT/Half', '100baseT/Full', '1000baseT/Full'],
      wol: 'd',
      msglvl: 7,
    });
    const e100 = parseLinkSettings(recorded('e100-ethtool'));
    expect(e100).toMatchObject({ autoneg: true, speed: 100, duplex: 'Full', wol: 'd', msglvl: 7 });
    expect(e100.advertised).toHaveLength(4);
    expect(parseLinkSettings(recorded('pcnet32-ethtool'))).toMatchObject({ speed: expect.any(Number) as number });
  });

  it('reads coalescing and channel output of the kind other drivers print', () => {
    const coalesce = [
      'Coalesce parameters for eth0:',
      'Adaptive RX: on  TX: n/a',
      'stats-block-usecs:\tn/a',
      'sample-interval:\tn/a',
      'rx-usecs:\t3',
      'rx-frames:\t0',
      'tx-usecs:\tn/a',
    ].join('\n');
    expect(parseCoalesce(coalesce)).toEqual({ 'adaptive-rx': true, 'rx-usecs': 3, 'rx-frames': 0 });
    const channels = [
      'Channel parameters for eth0:',
      'Pre-set maximums:',
      'RX:\t\tn/a', 'TX:\t\tn/a', 'Other:\t\t1', 'Combined:\t8',
      'Current hardware settings:',
      'RX:\t\tn/a', 'TX:\t\tn/a', 'Other:\t\t1', 'Combined:\t4',
    ].join('\n');
    expect(parseChannels(channels)).toEqual({ rx: null, tx: null, other: 1, combined: 4 });
  });

  it('reads private flags', () => {
    expect(parsePrivFlags('Private flags for eth0:\nlegacy-rx     : off\nvf-true-promisc-support: on\n')).toEqual({
      'legacy-rx': false,
      'vf-true-promisc-support': true,
    });
    expect(() => parsePrivFlags('Private flags for eth0:\nx: maybe')).toThrow('neither on nor off');
  });

  it('refuses output it does not understand, with the reason', () => {
    expect(() => parseRings('netlink error: Operation not supported')).toThrow(EthtoolParseError);
    expect(() => parseRings('Ring parameters for eth0:\nCurrent hardware settings:\nRX:\t\tlots')).toThrow('is not a number');
    expect(() => parseLinkSettings('Settings for eth0:\nstray line')).toThrow('unexpected line');
    expect(() => parseCoalesce('Coalesce parameters for eth0:\nAdaptive RX: maybe')).toThrow('adaptive');
    expect(() => parseLinkSettings('')).toThrow('no "Settings for DEV" section');
  });
});
