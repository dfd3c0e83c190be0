// What the network class is, without starting anything: the names, taps,
// faults, restart steps, failure and holder kinds and configuration keys that
// the configuration parser, the control and helper protocols and the CLI read
// (core/device-class.ts, ClassDeclaration). Its runtime is net-class.ts.
import { fileURLToPath } from 'node:url';
import type { ClassDeclaration, SyncMarker } from '../../core/device-class.js';
import { integerSetting } from '../../core/setting-values.js';
import type { TapEvent } from '../../core/tap-record.js';
import { INTERFACE_NAME } from './interface-name.js';
import { TX_WATCHDOG_LOG } from './tx-watchdog-log.js';

/**
 * The helper's network faults (kmod/PROTOCOL.md `inject`). lost-irq masks the
 * device's PCI INTx: its interrupts are lost.
 */
export const NET_FAULTS = ['tx-hang', 'fail-stop', 'fail-open', 'fail-mtu', 'fail-mac', 'fail-features', 'fail-rings', 'lost-irq'] as const;

/** The helper's replay steps after a network driver restart, in the order it runs them. */
export const NET_RESTART_STEPS = ['name', 'mac', 'mtu', 'features', 'vlan', 'rings', 'msglvl', 'pause', 'privflags', 'open'] as const;

/** Failures only the network class's detectors report: the kernel's TX watchdog, and shadowd's own transmit stall detector. */
export const NET_FAILURE_KINDS = ['tx-timeout', 'tx-stall'] as const;

/** References processes hold on a NIC: packet sockets' promiscuity and all-multicast counts. */
export const NET_HOLDER_KINDS = ['promiscuity', 'allmulti'] as const;
export type NetHolderKind = (typeof NET_HOLDER_KINDS)[number];

/** Every ev= that bpf/netdev-class.bt prints (test/unit/classes/tap-contract.test.ts holds the two to each other). */
export const NET_TAP_EVENTS = [
  'open', 'notifier', 'mtu', 'mac', 'flags', 'promisc', 'allmulti', 'rx_mode', 'txqueuelen',
  'uc_add', 'uc_add_excl', 'uc_del', 'mc_add', 'mc_add_excl', 'mc_add_global', 'mc_del', 'mc_del_global',
  'features', 'ethtool_notify', 'ethtool_nl_set', 'ethtool_nl_nodev', 'ethtool_ioctl', 'register', 'unregister', 'rename',
  'carrier_on', 'carrier_off', 'vlan_add', 'vlan_del', 'rtnl_hint', 'xmit_timeout',
] as const;

/**
 * An interface name no device can have (the kernel refuses ':' in names). An
 * ethtool netlink request naming it fails in ethnl_parse_header_dev_get()
 * with ENODEV, which the taps print as ev=ethtool_nl_nodev
 * (bpf/netdev-class.bt): the marker the taps runner's sync barrier waits for.
 * That function parses every request's header, whatever the kernel does next:
 * 6.1's ethnl_set_debug() calls it first thing, 6.12's generic
 * ethnl_default_set_doit() calls it and never reaches ethnl_set_debug() for a
 * missing device. An ethtool without netlink sends the ioctl instead, printed
 * as ev=ethtool_ioctl with ifindex=0 (ret=-19).
 */
export const SYNC_MARKER_DEVICE = 'shadowd:sync';
export const NET_SYNC_MARKER: SyncMarker = {
  argv: ['ethtool', '-s', SYNC_MARKER_DEVICE, 'msglvl', '0'],
  isMarker: (e: TapEvent) => e.call === 'ethtool_nl_nodev' || (e.call === 'ethtool_ioctl' && e.nums['ifindex'] === 0),
};

export const STALL_THRESHOLD_KEY = 'StallThresholdMs';

export const NET_DECLARATION: ClassDeclaration = {
  id: 'net',
  title: 'network',
  noun: 'network device',
  names: INTERFACE_NAME,
  // dist/daemon/classes/net/ → the checkout's bpf/.
  tapProgram: fileURLToPath(new URL('../../../../bpf/netdev-class.bt', import.meta.url)),
  tapEvents: NET_TAP_EVENTS,
  syncMarker: NET_SYNC_MARKER,
  faults: NET_FAULTS,
  restartSteps: NET_RESTART_STEPS,
  restartFields: ['ifindex'],
  failureKinds: NET_FAILURE_KINDS,
  holderKinds: NET_HOLDER_KINDS,
  settings: [
    {
      key: STALL_THRESHOLD_KEY,
      parse: integerSetting(100, 600_000),
      default: 1000,
      doc: 'a transmit queue stopped this long with packets waiting (or bytes in flight with no completion) counts as a failure',
    },
  ],
  attrs: ['ifindex'],
  kernelLogRules: [TX_WATCHDOG_LOG],
  parkedAs: 'no carrier (operationally down, its addresses and routes kept); nothing calls into its driver',
};
