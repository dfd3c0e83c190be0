// The network class taps (bpf/netdev-class.bt) on each NIC of the paper's
// evaluation that QEMU emulates: test/vm/guest/record-netdev.sh attaches them,
// loads the driver and drives a configuration session from several processes,
// and this test checks what the taps saw: every line parses, every probe
// attached, each call shows up with the device's ifindex and name and the
// arguments the session used, and a ping flood plus a UDP burst add nothing
// (no tap is on the packet path). One guest runs the three NICs' sessions one
// after another under one bpftrace (its attach costs most of a minute under
// TCG); each NIC's checks read its own session, cut out of the log by its
// markers, and stay a test of their own.
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { NET_SYNC_MARKER } from '../../../../daemon/classes/net/net-declaration.js';
import { parseBpftraceLine } from '../../../../daemon/core/bpftrace-output.js';
import type { TapEvent } from '../../../../daemon/core/tap-record.js';
import { selectedKernelSeries } from '../../rig/cache-paths.js';
import { assertGuestOk, runInGuest } from '../../rig/guest.js';
import type { NicPreset } from '../../rig/devices.js';
import { repoPath } from '../../rig/repo-path.js';

const SCRIPT = repoPath('test', 'vm', 'guest', 'record-netdev.sh');
const PROGRAM = repoPath('bpf', 'netdev-class.bt');

interface Nic {
  preset: NicPreset;
  driver: string;
  /** Whether the driver takes a 9000-byte MTU (e1000 does jumbo frames). */
  jumbo: boolean;
  /** Whether the session really resizes the rx ring (see record-netdev.sh for pcnet32). */
  ringResize: boolean;
  /** Whether rx-all is in the driver's hw_features. */
  rxAll: boolean;
  nwayRet: 'ok' | 'refused';
  /**
   * Whether the driver has the coalesce operations: e1000's refuse the
   * emulated 82540 (-EOPNOTSUPP from the set); pcnet32 and e100 have none, so
   * 6.12's validator refuses the request before any ethnl_set_coalesce.
   */
  coalesceOps: boolean;
}

const NICS: Nic[] = [
  { preset: 'e1000', driver: 'e1000', jumbo: true, ringResize: true, rxAll: true, nwayRet: 'ok', coalesceOps: true },
  { preset: 'pcnet', driver: 'pcnet32', jumbo: false, ringResize: false, rxAll: false, nwayRet: 'refused', coalesceOps: false },
  { preset: 'i82559er', driver: 'e100', jumbo: false, ringResize: true, rxAll: true, nwayRet: 'ok', coalesceOps: false },
];

/**
 * Debian's 6.1 or 6.12 (SHADOWD_GUEST_KERNEL). In 6.12 ethtool netlink sets
 * other than features go through ethnl_default_set_doit(): a request the
 * driver cannot take is refused by its validator before any ethnl_set_*, and
 * a set returns 1 when it changed something (bpf/netdev-class.bt).
 */
const KERNEL = selectedKernelSeries();

// enum netdev_cmd, ETHTOOL_MSG_* (user and kernel), ETHTOOL_* ioctl commands in 6.1 and 6.12.
const NETDEV = { UP: 1, DOWN: 2, CHANGE: 4, REGISTER: 5, UNREGISTER: 6, CHANGEMTU: 7, CHANGEADDR: 8, GOING_DOWN: 10, CHANGENAME: 11 };
const NL_SET = { FEATURES: 12, RINGS: 16, COALESCE: 20 };
const NTF = { DEBUG: 8, FEATURES: 13, RINGS: 17 };
const IOCTL = { SMSGLVL: 0x08, NWAY_RST: 0x09, SCOALESCE: 0x0f, SRINGPARAM: 0x11 };
const IFF_PROMISC = 0x100n;
const IFF_ALLMULTI = 0x200n;
const EOPNOTSUPP = -95;

/** kfunc/kretfunc attach points, tracepoints and BEGIN/END blocks of the program, comments left out. */
async function programShape(): Promise<{ attachPoints: number; tracepoints: number; specials: number }> {
  const text = (await readFile(PROGRAM, 'utf8')).replace(/\/\/.*$/gm, '');
  return {
    attachPoints: (text.match(/\bk(?:ret)?func:vmlinux:\w+/g) ?? []).length,
    tracepoints: (text.match(/^tracepoint:\w+:\w+/gm) ?? []).length,
    specials: (text.match(/^(?:BEGIN|END)\b/gm) ?? []).length,
  };
}

interface Recording {
  stdout: Map<string, string>;
  /** The driver's session: its load marker to its end marker. */
  events: TapEvent[];
  /** Of the whole log (every session's). */
  malformed: string[];
  probes: number | undefined;
  lost: number;
  /** Marker qlen for each phase name. */
  marks: Map<string, number>;
  final: { link: { ifindex: number; ifname: string; address: string; mtu: number; txqlen: number; promiscuity: number }[] };
  totalMs: number;
}

const isMarker = (e: TapEvent): boolean => e.call === 'txqueuelen' && e.strs['name'] === 'lo';

/** Boot, the taps' attach, and three sessions. */
const GUEST_TIMEOUT_MS = 300_000;

/** One guest records every NIC's session; the recordings by driver. */
async function recordAll(): Promise<Map<string, Recording>> {
  const r = await runInGuest({
    command: ['sh', SCRIPT, ...NICS.map((n) => n.driver)],
    devices: NICS.map((n) => n.preset),
    timeoutMs: GUEST_TIMEOUT_MS,
    keepRunDir: true,
  });
  try {
    assertGuestOk(r, `record-netdev.sh ${NICS.map((n) => n.driver).join(' ')}`);
    const runDir = r.runDir!;
    const lines = (await readFile(join(runDir, 'taps.jsonl'), 'utf8')).split('\n').filter((l) => l.trim() !== '');
    const stdout = new Map(r.stdout.split('\n').flatMap((l) => (/^[a-z0-9_]+=/.test(l) ? [[l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]] : [])));
    const all: TapEvent[] = [];
    const malformed: string[] = [];
    let probes: number | undefined;
    let lost = 0;
    for (const line of lines) {
      const m = parseBpftraceLine(line);
      if (m.kind === 'malformed') malformed.push(`${m.reason}: ${line}`);
      else if (m.kind === 'attached') probes = m.probes;
      else if (m.kind === 'lost') lost += m.count;
      else if (m.kind === 'event') all.push(m.event);
    }
    const recordings = new Map<string, Recording>();
    for (const nic of NICS) {
      const marks = new Map<string, number>();
      for (const line of (await readFile(join(runDir, `${nic.driver}-marks.txt`), 'utf8')).split('\n')) {
        const mm = /^phase=(\S+) marker=(\d+)$/.exec(line);
        if (mm) marks.set(mm[1]!, Number(mm[2]));
      }
      const at = (phase: string): number => all.findIndex((e) => isMarker(e) && e.nums['qlen'] === marks.get(phase));
      const [from, to] = [at('load'), at('end')];
      if (from < 0 || to < from) throw new Error(`${nic.driver}: its load and end markers are not in the log`);
      recordings.set(nic.driver, {
        stdout: new Map([...stdout, ['dev', stdout.get(`dev_${nic.driver}`) ?? '']]),
        events: all.slice(from, to + 1),
        malformed,
        probes,
        lost,
        marks,
        final: JSON.parse(await readFile(join(runDir, `${nic.driver}-final.json`), 'utf8')) as Recording['final'],
        totalMs: r.totalMs,
      });
    }
    return recordings;
  } finally {
    if (r.runDir) await rm(r.runDir, { recursive: true, force: true });
  }
}

let recordings: Promise<Map<string, Recording>> | undefined;
async function record(nic: Nic): Promise<Recording> {
  recordings ??= recordAll();
  const rec = (await recordings).get(nic.driver);
  if (!rec) throw new Error(`no recording of ${nic.driver}`);
  return rec;
}

/** The events between a phase's marker and the next marker. */
function phase(rec: Recording, name: string): TapEvent[] {
  const qlen = rec.marks.get(name);
  if (qlen === undefined) throw new Error(`no phase ${name}`);
  const start = rec.events.findIndex((e) => isMarker(e) && e.nums['qlen'] === qlen);
  if (start < 0) throw new Error(`marker ${qlen} (${name}) is not in the log`);
  const end = rec.events.findIndex((e, i) => i > start && isMarker(e));
  return rec.events.slice(start + 1, end < 0 ? undefined : end);
}

const show = (e: TapEvent): string => JSON.stringify(e, (_k, v: unknown) => (typeof v === 'bigint' ? `0x${v.toString(16)}` : v));

const calls = (evs: TapEvent[], call: string, ifindex?: number): TapEvent[] =>
  evs.filter((e) => e.call === call && (ifindex === undefined || e.nums['ifindex'] === ifindex));

describe.each(NICS)('network class taps: $preset (driver $driver)', (nic) => {
  it('record the session with the device, its arguments and results, and nothing per packet', async () => {
    const rec = await record(nic);
    const shape = await programShape();

    // Every line parses, nothing was lost, every probe attached.
    expect(rec.malformed).toEqual([]);
    expect(rec.lost).toBe(0);
    expect(rec.probes).toBe(shape.attachPoints + shape.tracepoints + shape.specials);
    expect(rec.stdout.get('links')).toBe(String(shape.attachPoints));
    expect(rec.stdout.get('malformed')).toBe('0');
    const dev = rec.stdout.get('dev')!;
    expect(dev).toMatch(/^eth\d+$/);
    // The sync marker's request names no device; every other request of the session names the NIC or lo.
    const marker = phase(rec, 'sync-marker');
    for (const e of rec.events) {
      expect(e.pid).toBeGreaterThanOrEqual(0);
      expect(e.tsNs).toBeGreaterThan(0n);
      if (e.call !== 'rtnl_hint' && !marker.includes(e)) {
        expect(e.nums['ifindex'], show(e)).toBeGreaterThan(0);
        expect(e.strs['name'], show(e)).toMatch(/^[^\s/:]+$/);
      }
    }
    expect(rec.events.length).toBeGreaterThan(100);

    // Register: the driver's device, with its driver and PCI address.
    const load = phase(rec, 'load');
    const [reg] = calls(load, 'register').filter((e) => e.strs['driver'] === nic.driver);
    expect(reg, 'register event').toBeDefined();
    const ifindex = reg!.nums['ifindex']!;
    expect(reg!.strs['name']).toBe(dev);
    expect(reg!.strs['bus']).toMatch(/^0000:00:[0-9a-f]{2}\.\d$/);
    expect(reg!.strs['addr']).toMatch(/^52:54:00(:[0-9a-f]{2}){3}$/);
    expect(reg!.nums['ret']).toBe(0);
    expect(reg!.comm).toBe('modprobe');
    expect(calls(load, 'notifier', ifindex).map((e) => e.nums['event'])).toContain(NETDEV.REGISTER);
    expect(calls(load, 'features', ifindex).length).toBeGreaterThan(0);
    const baseFeatures = calls(load, 'features', ifindex).at(-1)!.masks['features']!;

    // MAC and MTU while down.
    const down = phase(rec, 'down-config');
    expect(calls(down, 'mac', ifindex).map((e) => [e.strs['addr'], e.nums['ret'], e.comm])).toEqual([['52:54:00:5a:de:01', 0, 'ip']]);
    expect(calls(down, 'mtu', ifindex).map((e) => [e.nums['mtu'], e.nums['ret']])).toEqual([[1400, 0]]);
    expect(calls(down, 'notifier', ifindex).map((e) => e.nums['event'])).toEqual(expect.arrayContaining([NETDEV.CHANGEADDR, NETDEV.CHANGEMTU]));

    // Open.
    const open = phase(rec, 'open');
    expect(calls(open, 'open', ifindex).map((e) => [e.nums['ret'], e.comm])).toEqual([[0, 'ip']]);
    expect(calls(open, 'flags', ifindex)[0]!.masks['flags']! & 1n).toBe(1n);
    expect(calls(open, 'notifier', ifindex).map((e) => e.nums['event'])).toContain(NETDEV.UP);

    // MTU while up, including one the driver (or the core's range check) refuses.
    const mtu = calls(phase(rec, 'mtu'), 'mtu', ifindex).map((e) => [e.nums['mtu'], e.nums['ret']! < 0 ? 'refused' : e.nums['ret']]);
    expect(mtu).toEqual([[1280, 0], [9000, nic.jumbo ? 0 : 'refused'], [1500, 0]]);

    // Multicast list: `ip maddr` goes through the _global variants.
    const addrs = phase(rec, 'addresses');
    expect(calls(addrs, 'mc_add_global', ifindex).map((e) => [e.strs['addr'], e.nums['ret']])).toEqual([
      ['01:00:5e:01:02:03', 0],
      ['33:33:00:00:5a:01', 0],
    ]);
    expect(calls(addrs, 'mc_del_global', ifindex).map((e) => [e.strs['addr'], e.nums['ret']])).toEqual([['01:00:5e:01:02:03', 0]]);
    // The IPv6 address joins its solicited-node group through the kernel's own dev_mc_add.
    expect(calls(addrs, 'mc_add', ifindex).map((e) => e.strs['addr'])).toContain('33:33:ff:00:00:15');
    expect(calls(addrs, 'rx_mode', ifindex).length).toBeGreaterThanOrEqual(3);
    expect(calls(addrs, 'rtnl_hint').map((e) => e.nums['group'])).toEqual(expect.arrayContaining([5, 7, 9]));

    // ethtool over netlink: features, rings, an unsupported coalesce, msglvl.
    const nl = phase(rec, 'ethtool-netlink');
    const nlSet = (msg: number): TapEvent[] => calls(nl, 'ethtool_nl_set', ifindex).filter((e) => e.nums['msg'] === msg);
    // 6.1's sets notify before they return; 6.12's generic handler notifies after the set returned 1 (features: before, on both).
    const notifiesAfter = (set: TapEvent): boolean => KERNEL !== '6.1' && set.nums['msg'] !== NL_SET.FEATURES;
    const notified = (set: TapEvent, msg: number): boolean =>
      calls(nl, 'ethtool_notify', ifindex).some(
        (n) => n.pid === set.pid && n.nums['msg'] === msg && (notifiesAfter(set) ? n.tsNs > set.tsNs : n.tsNs < set.tsNs),
      );
    const featureSets = nlSet(NL_SET.FEATURES);
    expect(featureSets).toHaveLength(2);
    const featureEvents = calls(nl, 'features', ifindex).filter((e) => e.comm === 'ethtool');
    if (nic.rxAll) {
      expect(featureSets.every((s) => s.nums['ret'] === 0 && notified(s, NTF.FEATURES))).toBe(true);
      expect(featureEvents.map((e) => e.nums['ret'])).toEqual([1, 1]);
      expect(featureEvents[0]!.masks['features']).not.toBe(baseFeatures);
      expect(featureEvents[1]!.masks['features']).toBe(baseFeatures);
    } else {
      // Nothing to change: the core recomputes, reports no change, notifies nothing.
      expect(featureEvents.every((e) => e.nums['ret'] === 0 && e.masks['features'] === baseFeatures)).toBe(true);
      expect(featureSets.some((s) => notified(s, NTF.FEATURES))).toBe(false);
    }
    const [rings] = nlSet(NL_SET.RINGS);
    expect(rings!.nums['ret']).toBe(KERNEL === '6.1' || !nic.ringResize ? 0 : 1);
    expect(rings!.comm).toBe('ethtool');
    // A netlink set that changes nothing does not notify (pcnet32 writes its size back).
    expect(notified(rings!, NTF.RINGS)).toBe(nic.ringResize);
    expect(nlSet(NL_SET.COALESCE).map((e) => e.nums['ret'])).toEqual(KERNEL === '6.1' || nic.coalesceOps ? [EOPNOTSUPP] : []);
    expect(calls(nl, 'ethtool_notify', ifindex).filter((e) => e.nums['msg'] === NTF.DEBUG)).toHaveLength(1);

    // ethtool over the ioctl: sets notify like netlink; NWAY_RST never does.
    const io = phase(rec, 'ethtool-ioctl');
    const ioctls = calls(io, 'ethtool_ioctl', ifindex);
    expect(ioctls.map((e) => e.nums['cmd'])).toEqual([IOCTL.SRINGPARAM, IOCTL.SCOALESCE, IOCTL.SMSGLVL, IOCTL.NWAY_RST]);
    expect(ioctls.every((e) => e.comm === 'perl')).toBe(true);
    const [sring, scoal, smsg, nway] = ioctls;
    expect([sring!.nums['ret'], scoal!.nums['ret'], smsg!.nums['ret']]).toEqual([0, EOPNOTSUPP, 0]);
    const ioNotify = calls(io, 'ethtool_notify', ifindex);
    expect(ioNotify.filter((n) => n.pid === sring!.pid).map((n) => n.nums['msg'])).toEqual([NTF.RINGS]);
    expect(ioNotify.filter((n) => n.pid === smsg!.pid).map((n) => n.nums['msg'])).toEqual([NTF.DEBUG]);
    expect(ioNotify.filter((n) => n.pid === scoal!.pid || n.pid === nway!.pid)).toEqual([]);
    expect(nic.nwayRet === 'ok' ? nway!.nums['ret'] === 0 : nway!.nums['ret']! < 0).toBe(true);

    // The sync marker: one record the marker's own ethtool prints for no
    // device, in the NIC's namespace (6.1 goes on to print its refused set
    // with ifindex=0; 6.12 stops at the header), and nothing else.
    const markers = marker.filter((e) => NET_SYNC_MARKER.isMarker(e));
    expect(markers.map((e) => [e.call, e.nums['ret'], e.comm])).toEqual([['ethtool_nl_nodev', -19, 'ethtool']]);
    expect(markers[0]!.nums['netns']).toBe(reg!.nums['netns']);
    expect(marker.filter((e) => e.pid === markers[0]!.pid && e !== markers[0]).map((e) => [e.call, e.nums['ifindex']])).toEqual(
      KERNEL === '6.1' ? [['ethtool_nl_set', 0]] : [],
    );

    // tcpdump takes and drops a promiscuity reference.
    const td = calls(phase(rec, 'tcpdump'), 'promisc', ifindex);
    expect(td.map((e) => [e.nums['inc'], e.nums['promisc'], e.nums['ret'], e.comm])).toEqual([
      [1, 1, 0, 'tcpdump'],
      [-1, 0, 0, 'tcpdump'],
    ]);
    expect(td[0]!.masks['flags']! & IFF_PROMISC).toBe(IFF_PROMISC);
    expect(td[1]!.masks['flags']! & IFF_PROMISC).toBe(0n);

    // The administrative flags come through ev=flags, not the reference count.
    const pr = phase(rec, 'promisc');
    expect(calls(pr, 'promisc', ifindex)).toEqual([]);
    expect(calls(pr, 'flags', ifindex).map((e) => [e.masks['gflags']! & (IFF_PROMISC | IFF_ALLMULTI), e.nums['ret']])).toEqual([
      [IFF_PROMISC, 0],
      [0n, 0],
      [IFF_ALLMULTI, 0],
      [0n, 0],
    ]);
    expect(calls(pr, 'rx_mode', ifindex).some((e) => e.nums['allmulti'] === 1)).toBe(true);

    expect(calls(phase(rec, 'txqueuelen'), 'txqueuelen', ifindex).map((e) => [e.nums['qlen'], e.nums['ret']])).toEqual([
      [500, 0],
      [1000, 0],
    ]);

    // A VLAN on top takes a filter entry and registers its own device (no parent, no driver=).
    const vlan = phase(rec, 'vlan');
    expect(calls(vlan, 'vlan_add', ifindex).filter((e) => e.nums['vid'] === 5).map((e) => [e.masks['proto'], e.nums['ret']])).toEqual([[0x8100n, 0]]);
    expect(calls(vlan, 'vlan_del', ifindex).filter((e) => e.nums['vid'] === 5)).toHaveLength(1);
    const vreg = calls(vlan, 'register').find((e) => e.strs['name'] === `${dev}.5`);
    expect(vreg).toBeDefined();
    expect(vreg!.strs['driver']).toBeUndefined();

    // Close (the notifier's DOWN), rename and back, reopen.
    const rn = phase(rec, 'rename');
    const notes = calls(rn, 'notifier', ifindex).map((e) => e.nums['event']);
    expect(notes.indexOf(NETDEV.GOING_DOWN)).toBeLessThan(notes.indexOf(NETDEV.DOWN));
    expect(notes.filter((n) => n === NETDEV.CHANGENAME)).toHaveLength(2);
    expect(calls(rn, 'rename', ifindex).map((e) => [e.strs['name'], e.strs['newname'], e.nums['ret']])).toEqual([
      [dev, 'shd0', 0],
      ['shd0', dev, 0],
    ]);
    expect(calls(rn, 'open', ifindex).map((e) => e.nums['ret'])).toEqual([0]);

    // The data path: 1000 echoes and 20000 datagrams add no tap event for the
    // device beyond link state and rx mode, and barely any at all.
    const traffic = phase(rec, 'traffic');
    const linkState = (e: TapEvent): boolean =>
      e.call === 'carrier_on' || e.call === 'carrier_off' || e.call === 'rx_mode' || (e.call === 'notifier' && e.nums['event'] === NETDEV.CHANGE);
    expect(traffic.length).toBeLessThan(30);
    expect(traffic.filter((e) => e.nums['ifindex'] === ifindex && !linkState(e))).toEqual([]);
    expect(traffic.filter((e) => e.nums['ifindex'] === ifindex).length).toBeLessThanOrEqual(4);

    // Carrier records only real changes (e100's watchdog calls netif_carrier_on every 2 s).
    const carrier = rec.events.filter((e) => e.nums['ifindex'] === ifindex && (e.call === 'carrier_on' || e.call === 'carrier_off'));
    carrier.forEach((e, i) => {
      if (i > 0) expect(e.call, `carrier event ${i}`).not.toBe(carrier[i - 1]!.call);
    });

    // The log agrees with what `ip` reports at the end of the session.
    const link = rec.final.link[0]!;
    expect(link.ifindex).toBe(ifindex);
    expect(link.ifname).toBe(dev);
    expect(link.address).toBe('52:54:00:5a:de:01');
    expect(link.mtu).toBe(1500);
    expect(link.txqlen).toBe(1000);
    expect(link.promiscuity).toBe(0);

    // Driver restart: unregister, then a fresh register of the same PCI device.
    const reload = phase(rec, 'reload');
    expect(calls(reload, 'unregister', ifindex).map((e) => [e.nums['queued'], e.comm])).toEqual([[0, 'modprobe']]);
    const gone = calls(reload, 'notifier', ifindex).map((e) => e.nums['event']);
    expect(gone).toEqual(expect.arrayContaining([NETDEV.DOWN, NETDEV.UNREGISTER]));
    const [rereg] = calls(reload, 'register').filter((e) => e.strs['driver'] === nic.driver);
    expect(rereg).toBeDefined();
    expect(rereg!.strs['bus']).toBe(reg!.strs['bus']);
    expect(rereg!.nums['ifindex']).not.toBe(ifindex);

    console.log(
      `${nic.driver}: ${rec.events.length} tap events, attach ${rec.stdout.get('attach_s')} s, guest (all NICs) ${(rec.totalMs / 1000).toFixed(1)} s, ` +
        `traffic phase ${traffic.length} events (${traffic.filter((e) => e.nums['ifindex'] === ifindex).length} for ${dev})`,
    );
  }, GUEST_TIMEOUT_MS + 30_000);
});
