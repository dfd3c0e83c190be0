// Replay plans on recorded devices: the shadow and the device "now" are what
// netdev-snapshot's readers make of real ip / ethtool / tc / bridge output
// recorded in the guest (test/fixtures/replay, test/fixtures/netdev). The
// runner is replaced where a step's failure is the point; the guest is where
// the commands themselves run.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseChannels, parseCoalesce, parseRings } from '../../../../daemon/classes/net/ethtool-text.js';
import { codelMicros, planReplay, planReplayWithGaps, planRestartReplay, runReplay, type ReplayStep, type RunProgram } from '../../../../daemon/classes/net/netdev-replay.js';
import {
  addrKeys,
  ALL_GROUPS,
  featureSettings,
  linkKeys,
  maddrKeys,
  pauseSettings,
  routeEntries,
  snapshotDevice,
  type DeviceSnapshot,
  type JsonValue,
} from '../../../../daemon/classes/net/netdev-snapshot.js';
import { ShadowStore, SNAPSHOT_ACTOR } from '../../../../daemon/core/shadow-store.js';
import { recorded } from '../../fake/recorded-tools.js';

const snapshot = (name: string): Promise<DeviceSnapshot> => snapshotDevice('eth0', ALL_GROUPS, recorded(name));

/** A recorded tool output in test/fixtures/replay/NAME.txt, without its exit line. */
const toolOutput = (name: string): string =>
  readFileSync(new URL(`../../../fixtures/replay/${name}.txt`, import.meta.url), 'utf8').replace(/exit=\d+\n$/, '');

/**
 * The shadow of a recorded session's end (test/fixtures/netdev/DRIVER-final.json,
 * read with netdev-snapshot's own readers): the keys that recording has. It
 * has no ethtool settings, neighbour, fdb, VLAN or qdisc query, and IPv4
 * routes only (its IPv6 ones were the kernel's).
 */
function finalShadow(driver: string): Record<string, JsonValue> {
  interface Final {
    link: unknown;
    addr: unknown;
    maddr: unknown;
    route: unknown;
    ethtool: Record<string, unknown>;
  }
  const f = JSON.parse(readFileSync(new URL(`../../../fixtures/netdev/${driver}-final.json`, import.meta.url), 'utf8')) as Final;
  const text = (opt: string): string | null => {
    const v = f.ethtool[opt] as { text?: string };
    return typeof v.text === 'string' ? v.text : null;
  };
  const link = linkKeys(JSON.stringify(f.link));
  const unsupported = (t: string | null): boolean => t !== null && /Operation not supported/.test(t);
  return {
    ...link.keys,
    ...addrKeys(JSON.stringify(f.addr), typeof link.keys['mac'] === 'string' ? link.keys['mac'] : null),
    ...maddrKeys(JSON.stringify(f.maddr)),
    routes: routeEntries(JSON.stringify(f.route)),
    features: featureSettings(JSON.stringify(f.ethtool['-k'])),
    pause: unsupported(text('-a')) ? null : pauseSettings(JSON.stringify(f.ethtool['-a'])),
    rings: { ...parseRings(text('-g')!) },
    coalesce: unsupported(text('-c')) ? null : parseCoalesce(text('-c')!),
  };
}

const argvs = (steps: ReplayStep[]): string[][] => steps.map((s) => s.argv);

describe('planReplay on recorded devices', () => {
  it('e1000: the end of the recorded session, onto the same NIC freshly loaded', async () => {
    const shadow = finalShadow('e1000');
    const fresh = await snapshot('e1000-fresh');
    const { steps, gaps } = planReplayWithGaps(shadow, fresh);
    // The MTU (1500), queue length, features, pause and rings were back at the driver's defaults by then.
    expect(steps).toEqual([
      { key: 'mac', argv: ['ip', 'link', 'set', 'dev', 'eth0', 'address', '52:54:00:5a:de:01'] },
      { key: 'admin_up', argv: ['ip', 'link', 'set', 'dev', 'eth0', 'up'] },
      { key: 'ipv4', argv: ['ip', 'addr', 'add', '10.0.2.15/24', 'dev', 'eth0'] },
      { key: 'routes', argv: ['ip', 'route', 'add', '10.99.0.0/16', 'via', '10.0.2.2', 'dev', 'eth0'] },
      { key: 'multicast', argv: ['ip', 'maddr', 'add', '33:33:00:00:5a:01', 'dev', 'eth0'] },
    ]);
    // The SLAAC address and the link-local derived from the MAC are the kernel's: not replayed.
    expect(shadow['ipv6']).toEqual([]);
    expect(gaps).toEqual([]);
  });

  it('e1000: every configured key, onto the same NIC freshly loaded, in dependency order', async () => {
    const shadow = (await snapshot('e1000-configured')).keys;
    const fresh = await snapshot('e1000-fresh');
    const { steps, gaps } = planReplayWithGaps(shadow, fresh);
    expect(argvs(steps)).toEqual([
      // Address and MTU while the device is down, then what the driver is opened with.
      ['ip', 'link', 'set', 'dev', 'eth0', 'address', '02:00:00:00:0a:01'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'mtu', '1400'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'txqueuelen', '500'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'alias', 'uplink'],
      ['ip', 'link', 'property', 'add', 'dev', 'eth0', 'altname', 'uplink0'],
      ['ethtool', '-K', 'eth0', 'generic-receive-offload', 'off'],
      ['ethtool', '-G', 'eth0', 'rx', '128'],
      ['ethtool', '-s', 'eth0', 'msglvl', '3'],
      ['ip', 'link', 'add', 'link', 'eth0', 'name', 'eth0.5', 'type', 'vlan', 'protocol', '802.1Q', 'id', '5'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'up'],
      ['ethtool', '-s', 'eth0', 'autoneg', 'on', 'advertise', '10baseT/Half', 'off', '10baseT/Full', 'off'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'promisc', 'on'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'allmulticast', 'on'],
      ['ip', 'addr', 'add', '10.0.2.15/24', 'dev', 'eth0'],
      ['ip', 'addr', 'add', '10.0.2.16/24', 'dev', 'eth0', 'label', 'eth0:1'],
      ['ip', '-6', 'addr', 'add', '2001:db8::15/64', 'dev', 'eth0'],
      ['ip', 'route', 'add', '192.0.2.0/24', 'via', '10.0.2.2', 'dev', 'eth0'],
      ['ip', '-6', 'route', 'add', '2001:db8:5::/64', 'via', '2001:db8::2', 'metric', '1024', 'dev', 'eth0'],
      ['ip', 'neigh', 'replace', '10.0.2.77', 'lladdr', '02:00:00:00:00:77', 'dev', 'eth0', 'nud', 'permanent'],
      ['ip', 'maddr', 'add', '01:00:5e:00:00:42', 'dev', 'eth0'],
      ['bridge', 'fdb', 'add', '02:00:00:00:11:22', 'dev', 'eth0', 'self', 'permanent'],
      ['tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', 'handle', '8001:', 'tbf', 'rate', '125000bps', 'burst', '4096', 'latency', '400000us'],
    ]);
    // e1000 kept its pause settings and has no coalescing, channels or private flags: nothing for them.
    expect(steps.map((s) => s.key)).not.toEqual(expect.arrayContaining(['pause', 'coalesce', 'channels', 'private_flags', 'promiscuity']));
    expect(gaps).toEqual([]);
  });

  it('pcnet32: nothing for what the driver has not got (pause) or was not changed (rings, link settings)', async () => {
    const shadow = (await snapshot('pcnet32-configured')).keys;
    expect(shadow['pause']).toBeNull();
    const keys = planReplay(shadow, await snapshot('pcnet32-fresh')).map((s) => s.key);
    expect(keys).not.toContain('pause');
    expect(keys).not.toContain('rings');
    expect(keys).not.toContain('link_settings');
    expect(keys.slice(0, 6)).toEqual(['mac', 'mtu', 'txqueuelen', 'alias', 'altnames', 'features']);
  });

  it('e100: the same plan shape from the same code', async () => {
    const steps = planReplay((await snapshot('e100-configured')).keys, await snapshot('e100-fresh'));
    expect(steps.find((s) => s.key === 'rings')?.argv).toEqual(['ethtool', '-G', 'eth0', 'rx', '128']);
    expect(steps.findIndex((s) => s.key === 'admin_up')).toBeLessThan(steps.findIndex((s) => s.key === 'link_settings'));
    expect(steps.findIndex((s) => s.key === 'mtu')).toBeLessThan(steps.findIndex((s) => s.key === 'admin_up'));
  });

  it.each(['e1000', 'pcnet32', 'e100'])('%s: a shadow equal to the device gives an empty plan', async (driver) => {
    for (const state of ['fresh', 'configured']) {
      const now = await snapshot(`${driver}-${state}`);
      expect(planReplayWithGaps(now.keys, now)).toEqual({ steps: [], gaps: [] });
    }
  });

  it('takes the shadow as the store keeps it (entries through SQLite), with the same result', async () => {
    const configured = await snapshot('e1000-configured');
    const store = new ShadowStore(':memory:');
    store.upsertDevice({ id: 'bus:0000:00:04.0', cls: 'net', name: 'eth0', driver: 'e1000', bus: '0000:00:04.0', attrs: { ifindex: 2 } }, 1);
    for (const [key, value] of Object.entries(configured.keys)) store.setEntry('bus:0000:00:04.0', key, value ?? null, SNAPSHOT_ACTOR, 1);
    const entries = store.entries('bus:0000:00:04.0');
    store.close();
    const fresh = await snapshot('e1000-fresh');
    expect(planReplay(entries, fresh)).toEqual(planReplay(configured.keys, fresh));
    expect(planReplay(entries, configured)).toEqual([]);
  });

  it('pcnet32: what the shadow has not got goes first, routes before addresses, down before the address change', async () => {
    const { steps, gaps } = planReplayWithGaps((await snapshot('pcnet32-fresh')).keys, await snapshot('pcnet32-configured'));
    expect(argvs(steps)).toEqual([
      ['ip', 'route', 'del', '192.0.2.0/24', 'via', '10.0.2.2', 'dev', 'eth0'],
      ['ip', '-6', 'route', 'del', '2001:db8:5::/64', 'via', '2001:db8::2', 'metric', '1024', 'dev', 'eth0'],
      ['ip', 'neigh', 'del', '10.0.2.77', 'dev', 'eth0'],
      ['ip', '-6', 'addr', 'del', '2001:db8::15/64', 'dev', 'eth0'],
      // The secondary before its primary, which would take it along.
      ['ip', 'addr', 'del', '10.0.2.16/24', 'dev', 'eth0'],
      ['ip', 'addr', 'del', '10.0.2.15/24', 'dev', 'eth0'],
      ['ip', 'maddr', 'del', '01:00:5e:00:00:42', 'dev', 'eth0'],
      ['bridge', 'fdb', 'del', '02:00:00:00:11:22', 'dev', 'eth0', 'self'],
      // pcnet32 changes its address only while down.
      ['ip', 'link', 'set', 'dev', 'eth0', 'down'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'address', '52:54:00:12:34:56'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'mtu', '1500'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'txqueuelen', '1000'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'alias', ''],
      ['ethtool', '-K', 'eth0', 'generic-receive-offload', 'on'],
      ['ethtool', '-s', 'eth0', 'msglvl', '7'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'promisc', 'off'],
      ['ip', 'link', 'set', 'dev', 'eth0', 'allmulticast', 'off'],
    ]);
    expect(gaps).toEqual([
      { key: 'altnames', reason: '"uplink0" is not in the shadow; left in place' },
      { key: 'vlans', reason: '{"name":"eth0.5","protocol":"802.1Q","id":5} is not in the shadow; left in place' },
      { key: 'qdisc', reason: 'the shadow has no root qdisc (the device had not been opened); tbf is left' },
    ]);
  });
});

describe('planReplay, key by key', () => {
  /** The freshly loaded e1000 with some keys replaced. */
  const now = async (keys: Record<string, JsonValue>): Promise<DeviceSnapshot> => {
    const fresh = await snapshot('e1000-fresh');
    return { identity: fresh.identity, keys: { ...fresh.keys, ...keys } };
  };

  it('coalescing and channels, in the names ethtool -C and -L take (virtio_net recordings)', async () => {
    const coalesce = parseCoalesce(toolOutput('virtio_net-ethtool-c'));
    const channels = { ...parseChannels(toolOutput('virtio_net-ethtool-l')) };
    expect(coalesce).toEqual({ 'adaptive-rx': false, 'rx-usecs': 0, 'rx-frames': 1, 'tx-usecs': 0, 'tx-frames': 1 });
    const current = await now({ coalesce, channels });
    // `ethtool -c` prints rx-frame-low, `ethtool -C` takes rx-frames-low.
    const shadow = { coalesce: { ...coalesce, 'adaptive-rx': true, 'rx-frames': 32, 'rx-frame-low': 4, 'CQE mode': 1 }, channels: { ...channels, combined: 2 } };
    const { steps, gaps } = planReplayWithGaps(shadow, current);
    expect(argvs(steps)).toEqual([
      ['ethtool', '-C', 'eth0', 'adaptive-rx', 'on', 'rx-frames', '32', 'rx-frames-low', '4'],
      ['ethtool', '-L', 'eth0', 'combined', '2'],
    ]);
    expect(gaps).toEqual([{ key: 'coalesce', reason: 'coalescing parameter CQE mode = 1 has no ethtool -C form' }]);
  });

  it('rings, pause, private flags, forced link settings and Wake-on-LAN', async () => {
    const current = await now({ private_flags: { 'legacy-rx': false, 'disable-fw-lldp': false } });
    const shadow = {
      rings: { rx: 512, rx_mini: null, rx_jumbo: null, tx: 1024 },
      pause: { autonegotiate: false, rx: true, tx: true },
      private_flags: { 'legacy-rx': true, 'disable-fw-lldp': false },
      link_settings: { autoneg: false, speed: 100, duplex: 'Full' },
      wol: 'g',
    };
    expect(argvs(planReplay(shadow, current))).toEqual([
      ['ethtool', '-G', 'eth0', 'rx', '512', 'tx', '1024'],
      ['ethtool', '-A', 'eth0', 'autoneg', 'off'],
      ['ethtool', '--set-priv-flags', 'eth0', 'legacy-rx', 'on'],
      ['ethtool', '-s', 'eth0', 'autoneg', 'off', 'speed', '100', 'duplex', 'full'],
      ['ethtool', '-s', 'eth0', 'wol', 'g'],
    ]);
  });

  it('a key the driver has no value for now is set in full; one the shadow has none for is left', async () => {
    const rings = { rx: 512, rx_mini: null, rx_jumbo: null, tx: 256 };
    expect(argvs(planReplay({ rings }, await now({ rings: null })))).toEqual([['ethtool', '-G', 'eth0', 'rx', '512', 'tx', '256']]);
    expect(planReplay({ rings: null, coalesce: null, private_flags: null }, await now({ rings }))).toEqual([]);
  });

  it('skips the link-local address the kernel derived from the old MAC', async () => {
    // The address changed while up: the kernel kept fe80:: of the first MAC, so the shadow read it as configured.
    const shadow = { mac: '02:00:00:00:0a:01', ipv6: ['2001:db8::15/64', 'fe80::5054:ff:fe12:3456/64'] };
    const current = await now({ ipv6: ['fe80::1/64', 'fe80::ff:fe00:a01/64'] });
    expect(argvs(planReplay(shadow, current))).toEqual([
      ['ip', 'link', 'set', 'dev', 'eth0', 'address', '02:00:00:00:0a:01'],
      // fe80::1 is not in the shadow but is left: another link-local is the kernel's own too.
      ['ip', '-6', 'addr', 'add', '2001:db8::15/64', 'dev', 'eth0'],
    ]);
  });

  it('addresses: an alias label follows the current name; a label-only difference is reported, not re-applied', async () => {
    const shadow = { ipv4: [{ address: '10.0.2.15/24', label: 'wan0' }, { address: '10.0.2.16/24', label: 'wan0:1' }] };
    const { steps, gaps } = planReplayWithGaps(shadow, await now({ ipv4: [{ address: '10.0.2.15/24', label: 'eth0' }] }));
    expect(argvs(steps)).toEqual([['ip', 'addr', 'add', '10.0.2.16/24', 'dev', 'eth0', 'label', 'eth0:1']]);
    expect(gaps).toEqual([{ key: 'ipv4', reason: '10.0.2.15/24 has label eth0, wan0 in the shadow' }]);
  });

  it('routes: directly connected first; neighbours replaced; one without a link-layer address reported', async () => {
    const shadow: Record<string, JsonValue> = {
      routes: [
        { dst: '10.99.0.0/16', gateway: '10.0.2.2', metric: 50, protocol: 'static' },
        { dst: '172.16.0.0/12', scope: 'link' },
        { dst: 'default', gateway: 'fe80::2', metric: 1024 },
      ],
      neighbours: [
        { dst: '10.0.2.77', lladdr: '02:00:00:00:00:77' },
        { dst: '10.0.2.78', lladdr: null },
      ],
    };
    const current = await now({ neighbours: [{ dst: '10.0.2.77', lladdr: '02:00:00:00:00:99' }] });
    const { steps, gaps } = planReplayWithGaps(shadow, current);
    expect(argvs(steps)).toEqual([
      ['ip', 'route', 'add', '172.16.0.0/12', 'scope', 'link', 'dev', 'eth0'],
      ['ip', 'route', 'add', '10.99.0.0/16', 'via', '10.0.2.2', 'metric', '50', 'proto', 'static', 'dev', 'eth0'],
      ['ip', '-6', 'route', 'add', 'default', 'via', 'fe80::2', 'metric', '1024', 'dev', 'eth0'],
      ['ip', 'neigh', 'replace', '10.0.2.77', 'lladdr', '02:00:00:00:00:77', 'dev', 'eth0', 'nud', 'permanent'],
    ]);
    expect(gaps).toEqual([{ key: 'neighbours', reason: 'permanent neighbour 10.0.2.78 has no link-layer address' }]);
  });

  it('routes too many to keep (null): left as they are, with the reason', async () => {
    const current = await now({ routes: [{ dst: '10.99.0.0/16', gateway: '10.0.2.2' }] });
    const { steps, gaps } = planReplayWithGaps({ routes: null }, current);
    expect(argvs(steps)).toEqual([]);
    expect(gaps).toEqual([{ key: 'routes', reason: 'the routing table was too large for the shadow to keep; its routes are left as they are' }]);
  });

  it('master, and the promiscuity counts no tool sets', async () => {
    expect(argvs(planReplay({ master: 'br0', promiscuity: 3, allmulti: 2 }, await now({})))).toEqual([['ip', 'link', 'set', 'dev', 'eth0', 'master', 'br0']]);
    expect(argvs(planReplay({ master: null }, await now({ master: 'br0' })))).toEqual([['ip', 'link', 'set', 'dev', 'eth0', 'nomaster']]);
  });

  describe('root qdisc', () => {
    const tbf = { kind: 'tbf', handle: '8001:', options: { rate: 125000, burst: 4096, lat: 400000 } };
    const defaultQdisc = { kind: 'fq_codel', handle: '0:', options: { limit: 10240, flows: 1024, quantum: 1514, target: 4999, interval: 99999, memory_limit: 33554432, ecn: true, drop_batch: 64 } };
    const plan = async (want: JsonValue, have: JsonValue): Promise<{ steps: string[][]; gaps: string[] }> => {
      const r = planReplayWithGaps({ qdisc: want }, await now({ qdisc: have }));
      return { steps: argvs(r.steps), gaps: r.gaps.map((g) => g.reason) };
    };

    it('the kernel default comes back by deleting what replaced it', async () => {
      expect(await plan(defaultQdisc, tbf)).toEqual({ steps: [['tc', 'qdisc', 'del', 'dev', 'eth0', 'root']], gaps: [] });
      // Never opened: opening attaches the default.
      expect(await plan(defaultQdisc, null)).toEqual({ steps: [], gaps: [] });
    });

    it('fq_codel times are given so that they read back the same (1024 ns units)', async () => {
      // `tc ... fq_codel target 5ms` reads back 4998: giving 4998us would read back 4997.
      expect(codelMicros(4998)).toBe(4999);
      expect(codelMicros(4999)).toBe(5000);
      expect(codelMicros(99998)).toBe(99999);
      // Every value the kernel can show: given back, it shows the same.
      const drift: number[] = [];
      for (let units = 0; units < 100_000; units++) {
        const shown = Math.floor((units * 128) / 125);
        if (Math.floor((Math.floor((codelMicros(shown) * 125) / 128) * 128) / 125) !== shown) drift.push(shown);
      }
      expect(drift).toEqual([]);
      const fq = { kind: 'fq_codel', handle: '8002:', options: { ...defaultQdisc.options, target: 4998, interval: 99998, ce_threshold: 1999 } };
      expect((await plan(fq, defaultQdisc)).steps).toEqual([
        ['tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', 'handle', '8002:', 'fq_codel', 'flows', '1024', 'limit', '10240', 'quantum', '1514',
          'target', '4999us', 'interval', '99999us', 'ce_threshold', '2000us', 'memory_limit', '33554432', 'drop_batch', '64', 'ecn'],
      ]);
      // The same fq_codel with other settings is changed in place, without the flow count the kernel will not change.
      const older = { ...fq, options: { ...fq.options, limit: 5000, ecn: false } };
      expect((await plan(fq, older)).steps[0]).not.toContain('flows');
      // A different flow count needs a new qdisc.
      expect((await plan(fq, { ...fq, options: { ...fq.options, flows: 64 } })).steps.map((s) => s.slice(0, 4))).toEqual([
        ['tc', 'qdisc', 'del', 'dev'],
        ['tc', 'qdisc', 'replace', 'dev'],
      ]);
    });

    it('another kind under the same handle is deleted first (tc: "Invalid qdisc name")', async () => {
      const pfifo = { kind: 'pfifo', handle: '8001:', options: { limit: 100 } };
      expect((await plan(pfifo, tbf)).steps).toEqual([
        ['tc', 'qdisc', 'del', 'dev', 'eth0', 'root'],
        ['tc', 'qdisc', 'replace', 'dev', 'eth0', 'root', 'handle', '8001:', 'pfifo', 'limit', '100'],
      ]);
    });

    it('reports what tc cannot be given back', async () => {
      expect(await plan({ kind: 'tbf', handle: '8001:', options: { rate: 125000, burst: 4096, minburst: 1540, lat: 400000 } }, tbf)).toEqual({
        steps: [],
        gaps: ['tbf options {"rate":125000,"burst":4096,"minburst":1540,"lat":400000} cannot be given back to tc (minburst)'],
      });
      expect((await plan({ kind: 'htb', handle: '1:', options: { r2q: 10, default: '0x1' } }, tbf)).gaps).toEqual(['replaying a htb root qdisc is not supported']);
    });
  });

  it('reports keys it does not know and values of an unexpected shape', async () => {
    const { steps, gaps } = planReplayWithGaps({ mtu: 'big', ipv4: 'none', carrier: true }, await now({}));
    expect(steps).toEqual([]);
    expect(gaps).toEqual([
      { key: 'mtu', reason: 'unexpected shadow value "big"' },
      { key: 'ipv4', reason: 'unexpected shadow value "none"' },
      { key: 'carrier', reason: 'not a configuration key replay knows' },
    ]);
  });
});

describe('planRestartReplay: after a restart, what the restart lost and nothing else', () => {
  const ID = 'bus:0000:00:04.0';
  /** The recorded configured e1000 as the shadow keeps it, and the store's change counter as the restart was sent. */
  async function storeBeforeRestart(): Promise<{ store: ShadowStore; mark: number; configured: DeviceSnapshot }> {
    const configured = await snapshot('e1000-configured');
    const store = new ShadowStore(':memory:');
    store.upsertDevice({ id: ID, cls: 'net', name: 'eth0', driver: 'e1000', bus: '0000:00:04.0', attrs: { ifindex: 2 } }, 1);
    for (const [key, value] of Object.entries(configured.keys)) store.setEntry(ID, key, value ?? null, SNAPSHOT_ACTOR, 1);
    return { store, mark: store.changes, configured };
  }

  it('leaves what someone set during the recovery, even where the shadow is behind the device, and puts back what the restart reset', async () => {
    const { store, mark, configured } = await storeBeforeRestart();
    // During the recovery a loop set the MTU, the queue length and the message level; the shadow has seen some of it.
    const ip = { pid: 700, comm: 'ip' };
    store.setEntry(ID, 'mtu', 1401, ip, 2);
    store.setEntry(ID, 'txqueuelen', 505, ip, 2);
    store.setEntry(ID, 'msglvl', 5, { pid: 701, comm: 'ethtool' }, 2);
    // The device after the restart: the loop's newer MTU and queue length, and the fresh driver's own link
    // settings and GRO, which its probe reset (the helper replays neither).
    const fresh = await snapshot('e1000-fresh');
    const after: DeviceSnapshot = {
      identity: configured.identity,
      keys: { ...configured.keys, mtu: 1402, txqueuelen: 506, msglvl: 5, features: fresh.keys.features!, link_settings: fresh.keys.link_settings! },
    };
    const entries = store.entries(ID);
    store.close();
    const plan = planRestartReplay(entries, after, mark);
    expect(plan.steps).toEqual([
      { key: 'features', argv: ['ethtool', '-K', 'eth0', 'generic-receive-offload', 'off'] },
      { key: 'link_settings', argv: ['ethtool', '-s', 'eth0', 'autoneg', 'on', 'advertise', '10baseT/Half', 'off', '10baseT/Full', 'off'] },
    ]);
    expect(plan.left).toEqual(['mtu', 'txqueuelen']);
    // The whole shadow (shadowctl replay) would have put the MTU and queue length back to what the shadow had seen.
    expect(planReplay(entries, after).filter((st) => st.key === 'mtu' || st.key === 'txqueuelen').map((st) => st.argv.join(' '))).toEqual([
      'ip link set dev eth0 mtu 1401',
      'ip link set dev eth0 txqueuelen 505',
    ]);
  });

  it('nothing when the restart kept everything; the whole plan when nothing changed in the shadow and the device lost it all', async () => {
    const { store, mark, configured } = await storeBeforeRestart();
    const entries = store.entries(ID);
    store.close();
    expect(planRestartReplay(entries, configured, mark)).toEqual({ steps: [], gaps: [], left: [] });
    const fresh = await snapshot('e1000-fresh');
    const plan = planRestartReplay(entries, fresh, mark);
    expect(plan.steps).toEqual(planReplay(entries, fresh));
    expect(plan.left).toEqual([]);
    // With a mark from before everything (the shadow could not catch up), every key counts as changed: nothing is written.
    expect(planRestartReplay(entries, fresh, 0)).toMatchObject({ steps: [], gaps: [] });
  });
});

describe('runReplay', () => {
  const plan: ReplayStep[] = [
    { key: 'mtu', argv: ['ip', 'link', 'set', 'dev', 'eth0', 'mtu', '1400'] },
    { key: 'coalesce', argv: ['ethtool', '-C', 'eth0', 'rx-usecs', '10'] },
    { key: 'features', argv: ['ethtool', '-K', 'eth0', 'highdma', 'on', 'generic-receive-offload', 'off'] },
    { key: 'features', argv: ['ethtool', '-K', 'eth0', 'highdma', 'on'] },
    { key: 'admin_up', argv: ['ip', 'link', 'set', 'dev', 'eth0', 'up'] },
    { key: 'ipv4', argv: ['ip', 'addr', 'add', '10.0.2.15/24', 'dev', 'eth0'] },
  ];

  it('runs every step once, in order, reports the ones the driver refused and goes on', async () => {
    const calls: string[][] = [];
    // What e1000 and ethtool 6.1 answered in the guest to these commands.
    const run: RunProgram = (file, args) => {
      calls.push([file, ...args]);
      const cmd = [file, ...args].join(' ');
      if (cmd.startsWith('ethtool -C')) return Promise.resolve({ stdout: '', stderr: 'netlink error: Operation not supported\n', exitCode: 1 });
      if (cmd === 'ethtool -K eth0 highdma on generic-receive-offload off') {
        return Promise.resolve({ stdout: 'Actual changes:\nhighdma: off [requested on]\nrx-gro: off\n', stderr: '', exitCode: 0 });
      }
      if (cmd === 'ethtool -K eth0 highdma on') {
        return Promise.resolve({ stdout: 'Actual changes:\nhighdma: off [requested on]\n', stderr: 'Could not change any device features\n', exitCode: 1 });
      }
      if (file === 'ip' && args[0] === 'addr') return Promise.reject(new Error('spawn ip EAGAIN'));
      return Promise.resolve({ stdout: '', stderr: '', exitCode: 0 });
    };
    const report = await runReplay('eth0', plan, run);
    expect(calls).toEqual(plan.map((s) => s.argv));
    expect(report).toEqual({
      device: 'eth0',
      steps: [
        { key: 'mtu', argv: plan[0]!.argv, ok: true },
        { key: 'coalesce', argv: plan[1]!.argv, ok: false, error: 'exit 1: netlink error: Operation not supported' },
        { key: 'features', argv: plan[2]!.argv, ok: false, error: 'the driver did not apply highdma: off [requested on]' },
        { key: 'features', argv: plan[3]!.argv, ok: false, error: 'exit 1: Could not change any device features; the driver did not apply highdma: off [requested on]' },
        { key: 'admin_up', argv: plan[4]!.argv, ok: true },
        { key: 'ipv4', argv: plan[5]!.argv, ok: false, error: 'could not run ip: spawn ip EAGAIN' },
      ],
    });
  });

  it('runs no step for a device whose name a program could read as an option', async () => {
    const calls: string[][] = [];
    const run: RunProgram = (file, args) => {
      calls.push([file, ...args]);
      return Promise.resolve({ stdout: '', stderr: '', exitCode: 0 });
    };
    const report = await runReplay('-h', [{ key: 'coalesce', argv: ['ethtool', '-C', '-h', 'rx-usecs', '10'] }], run);
    expect(calls).toEqual([]);
    expect(report.steps).toEqual([{ key: 'coalesce', argv: ['ethtool', '-C', '-h', 'rx-usecs', '10'], ok: false, error: expect.stringMatching(/^not run: .*starts with '-'/) as unknown }]);
  });

  it('runs real programs by default, argv only', async () => {
    const report = await runReplay('eth0', [
      { key: 'a', argv: ['true'] },
      { key: 'b', argv: ['sh', '-c', 'echo "refused; not a shell string" >&2; exit 3'] },
      { key: 'c', argv: ['/nonexistent/shadowd-tool'] },
      { key: 'd', argv: [] },
    ]);
    expect(report.steps.map((s) => [s.ok, s.error])).toEqual([
      [true, undefined],
      [false, 'exit 3: refused; not a shell string'],
      [false, expect.stringMatching(/^\/nonexistent\/shadowd-tool did not run to completion: .*ENOENT/) as unknown],
      [false, 'empty command'],
    ]);
  });
});

describe('replay with names from the shadow', () => {
  it('plans no VLAN whose name ip could not take as a name', async () => {
    const fresh = await snapshot('e1000-fresh');
    const { steps, gaps } = planReplayWithGaps({ vlans: [{ name: '-h', protocol: '802.1Q', id: 5 }] }, fresh);
    expect(steps).toEqual([]);
    expect(gaps.map((g) => g.key)).toEqual(['vlans']);
  });
});
