// What each network class tap event (bpf/netdev-class.bt) means for the
// shadow. The tap says who changed what and when; where the event carries the
// new value itself (MTU, MAC, flags, queue length) the shadow takes it, and
// for the rest (ethtool groups, features, address lists, stack state) it asks
// for a re-read of that key group with the administrator's tools.
import type { JsonValue, KeyGroup } from './netdev-snapshot.js';
import type { HolderKind } from '../../core/shadow-store.js';
import type { TapEvent } from '../../core/tap-record.js';

export type ShadowAction =
  /** Set a key to a value the event carries. */
  | { kind: 'set'; key: string; value: JsonValue }
  /** Re-read these key groups of the device. */
  | { kind: 'refresh'; groups: KeyGroup[] }
  /** Re-read these groups of every watched device (rtnetlink hints name no device). */
  | { kind: 'refresh-all'; groups: KeyGroup[] }
  /** A process took (+1) or released (-1) a promiscuity / allmulti reference. */
  | { kind: 'holder'; holder: HolderKind; delta: number }
  | { kind: 'registered'; driver: string | null; bus: string | null }
  | { kind: 'unregistered' }
  | { kind: 'renamed'; newName: string };

const IFF_UP = 0x1n;
const IFF_PROMISC = 0x100n;
const IFF_ALLMULTI = 0x200n;

/** enum netdev_cmd values that change what the link group reads. */
const NETDEV_UP = 1;
const NETDEV_DOWN = 2;
const NETDEV_CHANGE = 4;
const NETDEV_REGISTER = 5;
const NETDEV_UNREGISTER = 6;
const NETDEV_CHANGEMTU = 7;
const NETDEV_CHANGEADDR = 8;
const NETDEV_FEAT_CHANGE = 12;
const NETDEV_CHANGEUPPER = 22;
const NETDEV_CHANGE_TX_QUEUE_LEN = 33;
const LINK_NOTIFIER_EVENTS = new Set([NETDEV_UP, NETDEV_DOWN, NETDEV_CHANGE, NETDEV_CHANGEMTU, NETDEV_CHANGEADDR, NETDEV_CHANGEUPPER, NETDEV_CHANGE_TX_QUEUE_LEN]);

/** ETHTOOL_MSG_*_NTF and the matching ETHTOOL_MSG_*_SET → the key group holding that setting. */
const ETHTOOL_MSG_GROUPS: Record<number, KeyGroup> = {
  3: 'settings', // LINKINFO
  5: 'settings', // LINKMODES
  8: 'settings', // DEBUG (message level)
  10: 'settings', // WOL
  12: 'features', // FEATURES_SET
  13: 'features', // FEATURES_NTF
  14: 'privflags', // PRIVFLAGS_SET
  15: 'privflags', // PRIVFLAGS_NTF
  16: 'rings', // RINGS_SET
  17: 'rings', // RINGS_NTF
  18: 'channels', // CHANNELS_SET
  19: 'channels', // CHANNELS_NTF
  20: 'coalesce', // COALESCE_SET
  21: 'coalesce', // COALESCE_NTF
  22: 'pause', // PAUSE_SET
  23: 'pause', // PAUSE_NTF
};
/** An ethtool ioctl set may touch any of these, and some never notify: re-read them all. */
const ETHTOOL_GROUPS: KeyGroup[] = ['settings', 'features', 'privflags', 'rings', 'channels', 'coalesce', 'pause'];

/** RTNLGRP_* → the stack-state groups an rtnetlink broadcast may have changed. */
const RTNL_GROUPS: Record<number, KeyGroup[]> = {
  1: ['link'], // LINK
  3: ['neigh'], // NEIGH
  4: ['qdisc'], // TC
  5: ['addr', 'maddr'], // IPV4_IFADDR
  7: ['route'], // IPV4_ROUTE
  9: ['addr', 'maddr'], // IPV6_IFADDR
  11: ['route'], // IPV6_ROUTE
};

const ok = (e: TapEvent): boolean => (e.nums['ret'] ?? 0) === 0;

/** What one tap event asks of the shadow; an event about a failed call changes nothing. */
export type EventReducer = (e: TapEvent) => ShadowAction[];

function holder(e: TapEvent): ShadowAction[] {
  const n = e.nums;
  const inc = n['inc'];
  if (!ok(e) || (inc !== 1 && inc !== -1)) return [];
  const count = n[e.call];
  const key = e.call === 'promisc' ? 'promiscuity' : 'allmulti';
  return [
    { kind: 'holder', holder: key, delta: inc },
    ...(count !== undefined ? [{ kind: 'set' as const, key, value: count }] : []),
  ];
}

const ucList: EventReducer = (e) => (ok(e) ? [{ kind: 'refresh', groups: ['uc'] }] : []);
const mcList: EventReducer = (e) => (ok(e) ? [{ kind: 'refresh', groups: ['maddr'] }] : []);
// VID 0 is the filter 8021q adds to every device it sees (priority tags), not a VLAN.
const vlan: EventReducer = (e) => (ok(e) && (e.nums['vid'] ?? 0) !== 0 ? [{ kind: 'refresh', groups: ['vlan'] }] : []);

/**
 * Every tap event the shadow takes something from, with what it takes. An
 * event the taps print must be here or in NOT_REDUCED
 * (test/unit/classes/tap-contract.test.ts holds the three lists and the
 * program to each other).
 */
export const REDUCERS: ReadonlyMap<string, EventReducer> = new Map<string, EventReducer>([
  ['mtu', (e) => (ok(e) && e.nums['mtu'] !== undefined ? [{ kind: 'set', key: 'mtu', value: e.nums['mtu'] }] : [])],
  ['mac', (e) => (ok(e) && e.strs['addr'] ? [{ kind: 'set', key: 'mac', value: e.strs['addr'] }] : [])],
  ['txqueuelen', (e) => (ok(e) && e.nums['qlen'] !== undefined ? [{ kind: 'set', key: 'txqueuelen', value: e.nums['qlen'] }] : [])],
  ['flags', (e) => {
    const dev = e.masks['devflags'];
    const g = e.masks['gflags'];
    if (!ok(e) || dev === undefined || g === undefined) return [];
    return [
      { kind: 'set', key: 'admin_up', value: (dev & IFF_UP) !== 0n },
      { kind: 'set', key: 'promisc_flag', value: (g & IFF_PROMISC) !== 0n },
      { kind: 'set', key: 'allmulti_flag', value: (g & IFF_ALLMULTI) !== 0n },
      { kind: 'refresh', groups: ['link'] },
    ];
  }],
  // Opening attaches the default qdisc, which no rtnetlink message announces.
  ['open', (e) => (ok(e) ? [{ kind: 'refresh', groups: ['link', 'qdisc'] }] : [])],
  ['promisc', holder],
  ['allmulti', holder],
  ['uc_add', ucList],
  ['uc_add_excl', ucList],
  ['uc_del', ucList],
  ['mc_add', mcList],
  ['mc_add_excl', mcList],
  ['mc_add_global', mcList],
  ['mc_del', mcList],
  ['mc_del_global', mcList],
  // ret: 1 changed, 0 unchanged, -1 the driver refused.
  ['features', (e) => ((e.nums['ret'] ?? 0) === 1 ? [{ kind: 'refresh', groups: ['features'] }] : [])],
  ['ethtool_notify', (e) => {
    const group = ETHTOOL_MSG_GROUPS[e.nums['msg'] ?? -1];
    return group ? [{ kind: 'refresh', groups: [group] }] : [];
  }],
  ['ethtool_ioctl', (e) => (ok(e) && (e.nums['ifindex'] ?? 0) > 0 ? [{ kind: 'refresh', groups: ETHTOOL_GROUPS }] : [])],
  ['notifier', (e) => {
    const event = e.nums['event'] ?? 0;
    if (event === NETDEV_REGISTER) return [{ kind: 'registered', driver: null, bus: null }];
    if (event === NETDEV_UNREGISTER) return [{ kind: 'unregistered' }];
    if (event === NETDEV_FEAT_CHANGE) return [{ kind: 'refresh', groups: ['features'] }];
    // Taking a device down or changing its address flushes its neighbours,
    // permanent ones too, and only the kernel's own neighbour notifications say
    // so: those the taps leave out (bpf/netdev-class.bt, rtnl_hint).
    if (event === NETDEV_DOWN || event === NETDEV_CHANGEADDR) return [{ kind: 'refresh', groups: ['link', 'neigh'] }];
    return LINK_NOTIFIER_EVENTS.has(event) ? [{ kind: 'refresh', groups: ['link'] }] : [];
  }],
  ['register', (e) => (ok(e) ? [{ kind: 'registered', driver: e.strs['driver'] ?? null, bus: e.strs['bus'] ?? null }] : [])],
  ['unregister', () => [{ kind: 'unregistered' }]],
  ['rename', (e) => {
    const newName = e.strs['newname'];
    return ok(e) && newName && newName !== e.strs['name'] ? [{ kind: 'renamed', newName }] : [];
  }],
  ['vlan_add', vlan],
  ['vlan_del', vlan],
  ['rtnl_hint', (e) => {
    const groups = RTNL_GROUPS[e.nums['group'] ?? -1];
    return groups ? [{ kind: 'refresh-all', groups }] : [];
  }],
]);

/** The events REDUCERS handles. */
export const REDUCED_EVENTS: ReadonlySet<string> = new Set(REDUCERS.keys());

/** Why the shadow takes nothing from a tap event: it is no configuration ('ignored'), or another part of the class takes it ('elsewhere'). */
export interface NotReduced {
  kind: 'ignored' | 'elsewhere';
  why: string;
}

/** Tap events the shadow takes nothing from, on purpose. reduceEvent returns no action for them. */
export const NOT_REDUCED: ReadonlyMap<string, NotReduced> = new Map<string, NotReduced>([
  ['rx_mode', { kind: 'ignored', why: 'derived state: the driver applying address lists and filter flags that uc_*, mc_*, flags, promisc and allmulti already report' }],
  ['carrier_on', { kind: 'ignored', why: 'link state, not configuration: nothing replays a carrier' }],
  ['carrier_off', { kind: 'ignored', why: 'link state, not configuration: nothing replays a carrier' }],
  ['ethtool_nl_set', { kind: 'ignored', why: 'a set that changed something also prints ethtool_notify, which is reduced' }],
  ['ethtool_nl_nodev', { kind: 'elsewhere', why: "a request that named no device: the taps runner's sync barrier (NET_SYNC_MARKER)" }],
  ['xmit_timeout', { kind: 'elsewhere', why: 'a failure, not configuration: the TX timeout detector (tx-timeout.ts) takes it' }],
]);

/** The actions one event asks of the shadow; an event about a failed call, or one the shadow takes nothing from (NOT_REDUCED, unknown), changes nothing. */
export function reduceEvent(e: TapEvent): ShadowAction[] {
  return REDUCERS.get(e.call)?.(e) ?? [];
}
