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

/** The actions one event asks of the shadow; an event about a failed call changes nothing. */
export function reduceEvent(e: TapEvent): ShadowAction[] {
  const n = e.nums;
  switch (e.call) {
    case 'mtu':
      return ok(e) && n['mtu'] !== undefined ? [{ kind: 'set', key: 'mtu', value: n['mtu'] }] : [];
    case 'mac':
      return ok(e) && e.strs['addr'] ? [{ kind: 'set', key: 'mac', value: e.strs['addr'] }] : [];
    case 'txqueuelen':
      return ok(e) && n['qlen'] !== undefined ? [{ kind: 'set', key: 'txqueuelen', value: n['qlen'] }] : [];
    case 'flags': {
      const dev = e.masks['devflags'];
      const g = e.masks['gflags'];
      if (!ok(e) || dev === undefined || g === undefined) return [];
      return [
        { kind: 'set', key: 'admin_up', value: (dev & IFF_UP) !== 0n },
        { kind: 'set', key: 'promisc_flag', value: (g & IFF_PROMISC) !== 0n },
        { kind: 'set', key: 'allmulti_flag', value: (g & IFF_ALLMULTI) !== 0n },
        { kind: 'refresh', groups: ['link'] },
      ];
    }
    case 'open':
      // Opening attaches the default qdisc, which no rtnetlink message announces.
      return ok(e) ? [{ kind: 'refresh', groups: ['link', 'qdisc'] }] : [];
    case 'promisc':
    case 'allmulti': {
      const inc = n['inc'];
      if (!ok(e) || (inc !== 1 && inc !== -1)) return [];
      const count = n[e.call];
      const key = e.call === 'promisc' ? 'promiscuity' : 'allmulti';
      return [
        { kind: 'holder', holder: key, delta: inc },
        ...(count !== undefined ? [{ kind: 'set' as const, key, value: count }] : []),
      ];
    }
    case 'uc_add':
    case 'uc_add_excl':
    case 'uc_del':
      return ok(e) ? [{ kind: 'refresh', groups: ['uc'] }] : [];
    case 'mc_add':
    case 'mc_add_excl':
    case 'mc_add_global':
    case 'mc_del':
    case 'mc_del_global':
      return ok(e) ? [{ kind: 'refresh', groups: ['maddr'] }] : [];
    case 'features':
      // ret: 1 changed, 0 unchanged, -1 the driver refused.
      return (n['ret'] ?? 0) === 1 ? [{ kind: 'refresh', groups: ['features'] }] : [];
    case 'ethtool_notify': {
      const group = ETHTOOL_MSG_GROUPS[n['msg'] ?? -1];
      return group ? [{ kind: 'refresh', groups: [group] }] : [];
    }
    case 'ethtool_ioctl':
      return ok(e) && (n['ifindex'] ?? 0) > 0 ? [{ kind: 'refresh', groups: ETHTOOL_GROUPS }] : [];
    case 'notifier': {
      const event = n['event'] ?? 0;
      if (event === NETDEV_REGISTER) return [{ kind: 'registered', driver: null, bus: null }];
      if (event === NETDEV_UNREGISTER) return [{ kind: 'unregistered' }];
      if (event === NETDEV_FEAT_CHANGE) return [{ kind: 'refresh', groups: ['features'] }];
      return LINK_NOTIFIER_EVENTS.has(event) ? [{ kind: 'refresh', groups: ['link'] }] : [];
    }
    case 'register':
      return ok(e) ? [{ kind: 'registered', driver: e.strs['driver'] ?? null, bus: e.strs['bus'] ?? null }] : [];
    case 'unregister':
      return [{ kind: 'unregistered' }];
    case 'rename': {
      const newName = e.strs['newname'];
      return ok(e) && newName && newName !== e.strs['name'] ? [{ kind: 'renamed', newName }] : [];
    }
    case 'vlan_add':
    case 'vlan_del':
      // VID 0 is the filter 8021q adds to every device it sees (priority tags), not a VLAN.
      return ok(e) && (n['vid'] ?? 0) !== 0 ? [{ kind: 'refresh', groups: ['vlan'] }] : [];
    case 'rtnl_hint': {
      const groups = RTNL_GROUPS[n['group'] ?? -1];
      return groups ? [{ kind: 'refresh-all', groups }] : [];
    }
    case 'xmit_timeout':
      // A failure, not configuration: the detectors take it (Ingest's onTxTimeout).
      return [];
    default:
      // rx_mode, ethtool_nl_set, carrier_*: derived state, covered by the events above, or link state (not configuration).
      return [];
  }
}
