// The helper's `stage` lines from shadows read out of real ip / ethtool output
// recorded in the guest (test/fixtures/replay), against the grammar of
// kmod/PROTOCOL.md and the client's own line check.
import { describe, expect, it } from 'vitest';
import { parsePrivFlags } from '../../../../daemon/classes/net/ethtool-text.js';
import { checkHelperCommand, HelperError } from '../../../../daemon/core/helper-client.js';
import { ALL_GROUPS, snapshotDevice, type JsonValue } from '../../../../daemon/classes/net/netdev-snapshot.js';
import { isStageCommand, privFlagsMask, stagedPayload, stagingCommands } from '../../../../daemon/classes/net/netdev-staging.js';
import { ShadowStore, SNAPSHOT_ACTOR } from '../../../../daemon/core/shadow-store.js';
import { recorded } from '../../fake/recorded-tools.js';

const shadowOf = async (name: string): Promise<Record<string, JsonValue>> => (await snapshotDevice('eth0', ALL_GROUPS, recorded(name))).keys;

/** The command grammar of kmod/PROTOCOL.md for `stage`. */
const STAGE_LINE = /^stage [^ ]{1,15} (clear|rings \d+ \d+ \d+ \d+|msglvl \d+|pause [01] [01] [01]|privflags \d+)$/;

/**
 * `ethtool --show-priv-flags` as ethtool 6.1 prints it (name padded, ": ",
 * on/off), with the flag names of i40e's table in their bit order: none of the
 * guest's NICs has private flags to record.
 */
const I40E_PRIV_FLAGS = `Private flags for eth0:
MFP                   : off
total-port-shutdown   : on
LinkPolling           : off
flow-director-atr     : on
veb-stats             : off
hw-atr-eviction       : off
link-down-on-close    : off
legacy-rx             : on
disable-source-pruning: off
disable-fw-lldp       : off
rs-fec                : off
base-r-fec            : off
vf-vlan-pruning       : off
`;

describe('stagingCommands on recorded devices', () => {
  it('e1000: clear, then rings (n/a as 0), message level and pause', async () => {
    const lines = stagingCommands('eth0', await shadowOf('e1000-configured'));
    expect(lines).toEqual(['stage net:eth0 clear', 'stage net:eth0 rings 128 0 0 256', 'stage net:eth0 msglvl 3', 'stage net:eth0 pause 1 1 1']);
    for (const line of lines) {
      expect(line).toMatch(STAGE_LINE);
      expect(() => checkHelperCommand(line)).not.toThrow();
    }
  });

  it('pcnet32 and e100: no pause line for drivers without pause settings', async () => {
    expect(stagingCommands('eth0', await shadowOf('pcnet32-configured'))).toEqual(['stage net:eth0 clear', 'stage net:eth0 rings 32 0 0 16', 'stage net:eth0 msglvl 3']);
    expect(stagingCommands('eth0', await shadowOf('e100-fresh'))).toEqual(['stage net:eth0 clear', 'stage net:eth0 rings 256 0 0 128', 'stage net:eth0 msglvl 7']);
  });

  it('takes the store entries as they come back from SQLite', async () => {
    const shadow = await shadowOf('e1000-configured');
    const store = new ShadowStore(':memory:');
    store.upsertDevice({ id: 'bus:0000:00:04.0', cls: 'net', name: 'eth0', driver: 'e1000', bus: '0000:00:04.0', attrs: { ifindex: 2 } }, 1);
    for (const [key, value] of Object.entries(shadow)) store.setEntry('bus:0000:00:04.0', key, value, SNAPSHOT_ACTOR, 1);
    expect(stagingCommands('eth0', store.entries('bus:0000:00:04.0'))).toEqual(stagingCommands('eth0', shadow));
    store.close();
  });

  it('an empty shadow stages only the clear', () => {
    expect(stagingCommands('wan0', {})).toEqual(['stage net:wan0 clear']);
    expect(stagingCommands('wan0', { rings: null, msglvl: null, pause: null, private_flags: null })).toEqual(['stage net:wan0 clear']);
  });

  it('skips values the helper would refuse', () => {
    expect(stagingCommands('eth0', { rings: { rx: 2 ** 21, rx_mini: null, rx_jumbo: null, tx: 256 }, msglvl: -1, pause: { autonegotiate: true, rx: 'yes', tx: false } })).toEqual([
      'stage net:eth0 clear',
    ]);
  });

  it('refuses a name that is not an interface name', () => {
    expect(stagingCommands('abcdefghijklmno', {})).toEqual(['stage net:abcdefghijklmno clear']);
    for (const bad of ['', 'abcdefghijklmnop', 'eth 0', 'eth0\n', 'a/b', 'eth0:1', '..', 'ethé']) {
      expect(() => stagingCommands(bad, {}), JSON.stringify(bad)).toThrow(HelperError);
    }
  });
});

describe('private flags', () => {
  it('become the bitmask in the order ethtool lists them, after a trip through the store', () => {
    const flags = parsePrivFlags(I40E_PRIV_FLAGS);
    const store = new ShadowStore(':memory:');
    store.upsertDevice({ id: 'bus:0000:3b:00.0', cls: 'net', name: 'eth0', driver: 'i40e', bus: '0000:3b:00.0', attrs: { ifindex: 4 } }, 1);
    store.setEntry('bus:0000:3b:00.0', 'private_flags', flags, SNAPSHOT_ACTOR, 1);
    const entries = store.entries('bus:0000:3b:00.0');
    store.close();
    // total-port-shutdown is bit 1, flow-director-atr bit 3, legacy-rx bit 7.
    expect(stagingCommands('eth0', entries)).toEqual(['stage net:eth0 clear', `stage net:eth0 privflags ${(1 << 1) | (1 << 3) | (1 << 7)}`]);
  });

  it('are not staged when their order or word is unknown', () => {
    expect(privFlagsMask({ legacy: true, '0': true })).toBeNull(); // JavaScript moves "0" first
    expect(privFlagsMask(Object.fromEntries(Array.from({ length: 33 }, (_, i) => [`flag${i}`, true])))).toBeNull();
    expect(privFlagsMask({ a: true, b: 'on' })).toBeNull();
    expect(privFlagsMask({})).toBeNull();
    expect(privFlagsMask(null)).toBeNull();
    // All 32 on: the whole unsigned word, not a negative number.
    expect(privFlagsMask(Object.fromEntries(Array.from({ length: 32 }, (_, i) => [`flag${i}`, true])))).toBe(0xffff_ffff);
  });
});

describe('stage commands', () => {
  it.each(['stage net:eth0 rings 256 0 0 256', 'stage net:eth0 msglvl 7', 'stage net:eth0 pause 1 0 1', 'stage net:eth0 privflags 0', 'stage net:eth0 clear'])('accepts %j', (c) => {
    expect(isStageCommand(c, 'eth0')).toBe(true);
  });

  it.each([
    'stage net:eth1 clear',
    'stage net:eth0',
    'stage net:eth0 rings 256 0 0',
    'stage net:eth0 rings 256 0 0 256 1',
    'stage net:eth0 rings -1 0 0 256',
    'stage net:eth0 pause 2 0 0',
    'stage net:eth0 msglvl 0x7',
    'stage net:eth0 wol g',
    'stage net:eth0  clear',
    'stage net:eth0 clear\n',
    'restart net:eth0 r1',
    'inject net:eth0 tx-hang',
  ])('refuses %j', (c) => {
    expect(isStageCommand(c, 'eth0')).toBe(false);
  });

  it('knows the reply each stage command gets', () => {
    expect(stagedPayload('stage net:eth0 rings 256 0 0 256')).toBe('staged net:eth0 rings');
    expect(stagedPayload('stage net:eth0 clear')).toBe('staged net:eth0 clear');
  });
});
