// The snapshot reader on the query tools' output recorded in the guest
// (test/fixtures/snapshot). The tool runner is replaced by the recordings:
// this isolates the reading logic; the guest tests run the real tools.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ALL_GROUPS, ipv6Groups, isEui64LinkLocal, SnapshotError, snapshotDevice, type RunTool } from '../../../../daemon/classes/net/netdev-snapshot.js';

function recording(file: string): { stdout: string; stderr: string; exitCode: number } {
  const text = readFileSync(new URL(`../../../fixtures/snapshot/${file}.txt`, import.meta.url), 'utf8');
  const m = /\nexit=(\d+)\n$/.exec(text) ?? /^exit=(\d+)\n$/.exec(text);
  if (!m) throw new Error(`${file}: no exit line`);
  const out = text.slice(0, m.index + (m[0].startsWith('\n') ? 1 : 0));
  const exitCode = Number(m[1]);
  return exitCode === 0 ? { stdout: out, stderr: '', exitCode } : { stdout: '', stderr: out, exitCode };
}

/** Answers each query with the recording the guest made for `driver`. */
function recorded(driver: string): RunTool {
  return (file, args) => {
    const a = args.join(' ');
    const name =
      file === 'tc' ? 'tc-qdisc'
      : file === 'bridge' ? 'bridge-fdb'
      : file === 'ip' && a.includes('type vlan') ? 'ip-vlan'
      : file === 'ip' ? (a.includes(' -6 route') || a.startsWith('-json -6') ? 'ip-route6' : `ip-${args.find((x) => ['link', 'addr', 'route', 'neigh', 'maddr'].includes(x))}`)
      : args[0] === '--json' ? `ethtool-${args[1]!.slice(1)}`
      : args[0] === '--show-priv-flags' ? 'ethtool-priv'
      : args[0]!.startsWith('-') ? `ethtool-${args[0]!.slice(1)}`
      : 'ethtool';
    if (name === 'ip-vlan') return Promise.resolve(recording('ip-vlan'));
    if (name === 'tc-qdisc') return Promise.resolve({ stdout: '[{"kind":"fq_codel","handle":"0:","root":true,"refcnt":2,"options":{"limit":10240}}]', stderr: '', exitCode: 0 });
    return Promise.resolve(recording(`${driver}-${name}`));
  };
}

describe('device snapshot', () => {
  it('runs no tool with a name that ethtool would read as an option, or that is no interface name', async () => {
    for (const name of ['-h', '--help', '-s', '..', 'a/b', 'x'.repeat(16)]) {
      const calls: string[][] = [];
      const run: RunTool = (file, args) => {
        calls.push([file, ...args]);
        return Promise.resolve({ stdout: '', stderr: 'not reached', exitCode: 1 });
      };
      await expect(snapshotDevice(name, ALL_GROUPS, run), name).rejects.toThrow(SnapshotError);
      expect(calls, name).toEqual([]);
    }
  });

  it('keeps no group whose query prints more than TOOL_OUTPUT_LIMIT, and says which', async () => {
    const base = recorded('e1000');
    const run: RunTool = (file, args) => (file === 'ip' && args.includes('route') ? Promise.resolve({ stdout: '', stderr: '', exitCode: null, overflow: true }) : base(file, args));
    const snap = await snapshotDevice('eth0', ALL_GROUPS, run);
    expect(snap.keys.routes).toBeNull();
    expect(snap.oversized).toEqual([{ group: 'route', what: 'ip route' }]);
    expect(snap.keys.mtu).toBe((await snapshotDevice('eth0', ALL_GROUPS, base)).keys.mtu);
    // Without the link itself there is no snapshot.
    const noLink: RunTool = (file, args) => (file === 'ip' && args.includes('link') && !args.includes('type') ? Promise.resolve({ stdout: '', stderr: '', exitCode: null, overflow: true }) : base(file, args));
    await expect(snapshotDevice('eth0', ALL_GROUPS, noLink)).rejects.toThrow(/cannot read eth0: ip link printed more than/);
  });

  it('reads an e1000 configured in the guest, key by key', async () => {
    const snap = await snapshotDevice('eth0', ALL_GROUPS, recorded('e1000'));
    expect(snap.identity).toEqual({ ifindex: 2, name: 'eth0', bus: '0000:00:04.0' });
    expect(snap.keys).toMatchObject({
      admin_up: true,
      mtu: 1500,
      mac: '52:54:00:12:34:56',
      txqueuelen: 1000,
      alias: null,
      altnames: [],
      master: null,
      promisc_flag: false,
      promiscuity: 0,
      ipv4: [{ address: '10.0.2.15/24', label: 'eth0' }],
      // SLAAC's fec0:: address and the EUI-64 link-local are the kernel's, not configuration.
      ipv6: [],
      routes: [{ dst: '192.0.2.0/24', gateway: '10.0.2.2' }],
      neighbours: [{ dst: '10.0.2.77', lladdr: '02:00:00:00:00:77' }],
      multicast: ['01:00:5e:00:00:42'],
      unicast: ['02:00:00:00:11:22'],
      vlans: [
        { name: 'eth0.5', protocol: '802.1Q', id: 5 },
        { name: 'eth0.7', protocol: '802.1ad', id: 7 },
      ],
      qdisc: { kind: 'fq_codel', handle: '0:', options: { limit: 10240 } },
      rings: { rx: 256, rx_mini: null, rx_jumbo: null, tx: 256 },
      pause: { autonegotiate: true, rx: true, tx: true },
      link_settings: { autoneg: true, advertised: ['10baseT/Half', '10baseT/Full', '100baseT/Half', '100baseT/Full', '1000baseT/Full'] },
      wol: 'd',
      msglvl: 7,
      // e1000 has no coalescing or channel settings: no value, not an error.
      coalesce: null,
      channels: null,
      private_flags: null,
    });
    const features = snap.keys.features as Record<string, boolean>;
    expect(features['tx-tcp-segmentation']).toBe(true);
    expect(features['rx-checksumming']).toBe(false);
    expect(features).not.toHaveProperty('tx-checksum-ipv4'); // fixed on e1000
  });

  it.each(['pcnet32', 'e100'])('reads %s with the same code', async (driver) => {
    const snap = await snapshotDevice('eth0', ALL_GROUPS, recorded(driver));
    expect(snap.keys.ipv4).toEqual([{ address: '10.0.2.15/24', label: 'eth0' }]);
    expect(snap.keys.rings).toMatchObject({ rx: expect.any(Number) as number });
    expect(snap.keys.multicast).toEqual(['01:00:5e:00:00:42']);
  });

  it('reads only the groups asked for', async () => {
    const snap = await snapshotDevice('eth0', ['rings'], recorded('e1000'));
    expect(Object.keys(snap.keys)).toEqual(['rings']);
  });

  it('fails clearly when a tool fails for another reason than an unsupported query', async () => {
    const broken: RunTool = () => Promise.resolve({ stdout: '', stderr: 'Device "eth9" does not exist.', exitCode: 1 });
    await expect(snapshotDevice('eth9', ['link'], broken)).rejects.toThrow(new SnapshotError('ip link for eth9 failed (exit 1): Device "eth9" does not exist.'));
    const garbage: RunTool = () => Promise.resolve({ stdout: '<html>', stderr: '', exitCode: 0 });
    await expect(snapshotDevice('eth0', ['link'], garbage)).rejects.toThrow('ip link: output is not JSON');
  });
});

describe('IPv6 addresses', () => {
  it('expands compressed forms', () => {
    expect(ipv6Groups('fe80::ff:fe00:a01')).toEqual([0xfe80, 0, 0, 0, 0, 0xff, 0xfe00, 0xa01]);
    expect(ipv6Groups('2001:db8::15')).toEqual([0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x15]);
    expect(ipv6Groups('::1')).toEqual([0, 0, 0, 0, 0, 0, 0, 1]);
    expect(ipv6Groups('1:2:3:4:5:6:7:8')).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(ipv6Groups('1::2::3')).toBeNull();
    expect(ipv6Groups('1:2:3')).toBeNull();
    expect(ipv6Groups('g::1')).toBeNull();
  });

  it('recognises the link-local address the kernel derived from the MAC', () => {
    expect(isEui64LinkLocal('fe80::5054:ff:fe12:3456', '52:54:00:12:34:56')).toBe(true);
    // A locally administered MAC flips the universal/local bit to zero: the leading group vanishes.
    expect(isEui64LinkLocal('fe80::ff:fe00:a01', '02:00:00:00:0a:01')).toBe(true);
    expect(isEui64LinkLocal('fe80::1', '02:00:00:00:0a:01')).toBe(false);
    expect(isEui64LinkLocal('fe80::ff:fe00:a01', null)).toBe(false);
  });
});
