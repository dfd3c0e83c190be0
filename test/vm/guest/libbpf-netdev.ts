// Run in the guest: the network class's taps twice side by side, the
// precompiled CO-RE object (netdev-class.bpf.o) under taps-loader and
// bpf/netdev-class.bt under bpftrace (tap-side-by-side.ts), over the same
// configuration session on an e1000 NIC: its driver loaded if it is not
// (register), its address and MTU set while down (mac, mtu), brought up
// (open, notifier, carrier_on), MTU changes, IPv4 and IPv6 addresses and
// multicast addresses (ip maddr: mc_add_global, mc_del_global; rtnl_hint),
// ethtool sets over netlink (-K, -G, -C, -s msglvl, -s wol, -A:
// ethtool_nl_set, ethtool_notify, features) and over the ioctl (from perl:
// ethtool 6.1 has no switch to leave netlink; SRINGPARAM, SCOALESCE,
// SMSGLVL, NWAY_RST, and a SMSGLVL for no device: ethtool_ioctl), a
// request for no device (the sync marker's own command: ethtool_nl_nodev),
// a packet socket's memberships (PACKET_MR_PROMISC, _ALLMULTI, _MULTICAST,
// _UNICAST, dropped by its close: promisc, allmulti, mc_add, mc_del,
// uc_add, uc_del), ip link promisc and allmulticast (flags, rx_mode),
// static FDB entries (bridge fdb ... self: uc_add_excl, mc_add_excl),
// txqueuelen, a VLAN device (register without a parent, vlan_add, vlan_del,
// unregister), a rename, a qdisc added and deleted (rtnl_hint group 4), and
// the NIC's PCI function unbound from e1000 and bound again (unregister,
// register, carrier_off), then brought up again. 8021q is loaded before
// either tap starts.
// Prints `LIBBPF_NETDEV_RESULT <json>`: each tool's times, peak memory and
// records, the records that differ once ts= is set aside, the steps run
// (each with whether it succeeded), and the device.
// usage: node dist/test/vm/guest/libbpf-netdev.js LOADER OBJECT PROGRAM
import { existsSync, readdirSync, readFileSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { execa } from 'execa';
import { NET_SYNC_MARKER, SYNC_MARKER_DEVICE } from '../../../daemon/classes/net/net-declaration.js';
import { printResult, SideBySide, sleep } from './tap-side-by-side.js';

const [loader, object, program] = process.argv.slice(2);
if (!loader || !object || !program) throw new Error('usage: libbpf-netdev.js LOADER OBJECT PROGRAM');

const DRIVER = 'e1000';
/** The settings the session makes (the values record-netdev.sh uses on e1000). */
const ADDRESS = '52:54:00:5a:de:01';
const RING_NL = 512;
const RING_IOCTL = 256;
const VLAN_ID = 5;
const RENAMED = 'shd0';
/** A static FDB entry of each kind: ndo_dflt_fdb_add takes a unicast one with dev_uc_add_excl, a multicast one with dev_mc_add_excl. */
const FDB_UNICAST = '02:54:00:12:34:aa';
const FDB_MULTICAST = '01:00:5e:01:02:05';

const run = new SideBySide(NET_SYNC_MARKER);

/** One step of the session: its command line, and whether it exited 0 (a step that may fail is not a failure). */
interface Step {
  step: string;
  ok: boolean;
}
const steps: Step[] = [];

async function step(argv: string[], opts: { mayFail?: boolean } = {}): Promise<boolean> {
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, timeout: 30_000 });
  const ok = r.exitCode === 0;
  steps.push({ step: argv.join(' '), ok });
  if (!opts.mayFail) run.check(ok, `${argv.join(' ')} exited ${String(r.exitCode)}: ${r.stderr}`);
  return ok;
}

/** The interface e1000 drives and its PCI function, once it is there. */
async function waitNic(timeoutMs = 30_000): Promise<{ dev: string; pci: string } | null> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    for (const dev of readdirSync('/sys/class/net')) {
      try {
        if (basename(readlinkSync(`/sys/class/net/${dev}/device/driver`)) !== DRIVER) continue;
        return { dev, pci: basename(realpathSync(`/sys/class/net/${dev}/device`)) };
      } catch {
        continue;
      }
    }
    if (Date.now() >= deadline) return null;
    await sleep(100);
  }
}

async function waitCarrier(dev: string, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    try {
      if (readFileSync(`/sys/class/net/${dev}/carrier`, 'utf8').trim() === '1') return true;
    } catch {
      // Down: no carrier to read yet.
    }
    await sleep(100);
  }
  return false;
}

/**
 * SIOCETHTOOL from perl (record-netdev.sh's): read a setting, change it,
 * write it back. WHAT: rings VALUE (SRINGPARAM), coalesce (SCOALESCE),
 * msglvl VALUE (SMSGLVL), nway (NWAY_RST). Prints "CMD errno=N".
 */
const ETHTOOL_IOCTL = `
use strict; use Socket;
my ($dev, $what, $val) = @ARGV;
socket(my $s, AF_INET, SOCK_DGRAM, 0) or die "socket: $!";
sub call { ioctl($s, 0x8946, pack("a16 P", $dev, $_[0])) ? 0 : $! + 0 }
if ($what eq "rings") {
  my $b = pack("L9", 0x10); my $e = call($b); die "GRINGPARAM errno=$e\\n" if $e;
  my @v = unpack("L9", $b); $v[0] = 0x11; $v[5] = $val; $b = pack("L9", @v);
  print "SRINGPARAM errno=", call($b), "\\n";
} elsif ($what eq "coalesce") {
  my $b = pack("L23", 0x0e); call($b);
  my @v = unpack("L23", $b); $v[0] = 0x0f; $b = pack("L23", @v);
  print "SCOALESCE errno=", call($b), "\\n";
} elsif ($what eq "msglvl") {
  my $b = pack("L2", 0x08, $val); print "SMSGLVL errno=", call($b), "\\n";
} elsif ($what eq "nway") {
  my $b = pack("L2", 0x09, 0); print "NWAY_RST errno=", call($b), "\\n";
}`;

/**
 * A packet socket's memberships on an interface (struct packet_mreq:
 * ifindex, type, address length, address): PACKET_MR_PROMISC (1),
 * PACKET_MR_ALLMULTI (2), PACKET_MR_MULTICAST (0) of 01:00:5e:01:02:04,
 * PACKET_MR_UNICAST (3) of 02:54:00:12:34:99, each taken by
 * PACKET_ADD_MEMBERSHIP (SOL_PACKET 263, 1), all dropped when the socket
 * closes.
 */
const PACKET_MEMBERSHIPS = `
use strict;
my ($ifindex) = @ARGV;
socket(my $s, 17, 3, 0) or die "socket: $!";
sub member { my ($type, @addr) = @_; my $a = pack("C*", @addr);
  setsockopt($s, 263, 1, pack("i S S a8", $ifindex, $type, length($a), $a)) or die "membership $type: $!"; }
member(1); member(2); member(0, 0x01, 0x00, 0x5e, 0x01, 0x02, 0x04); member(3, 0x02, 0x54, 0x00, 0x12, 0x34, 0x99);
close($s);`;

await execa('modprobe', ['8021q']);
// Both taps attach before anything of the session, so a driver loaded here is seen registering.
await run.start('libbpf', loader, object);
await run.start('bpftrace', 'bpftrace', program);
let nic: { dev: string; pci: string } | null = null;
if (await run.open()) {
  if (!(await waitNic(0))) await step(['modprobe', DRIVER]);
  nic = await waitNic();
  if (run.check(nic !== null, `no ${DRIVER} interface`)) {
    const { dev, pci } = nic!;
    const ip = (...args: string[]): Promise<boolean> => step(['ip', ...args]);
    const ethtool = (...args: string[]): Promise<boolean> => step(['ethtool', ...args], { mayFail: true });
    const ioctl = (...args: string[]): Promise<boolean> => step(['perl', '-e', ETHTOOL_IOCTL, ...args]);

    // Down: the address and the MTU.
    await ip('link', 'set', 'dev', dev, 'down');
    await ip('link', 'set', 'dev', dev, 'address', ADDRESS);
    await ip('link', 'set', 'dev', dev, 'mtu', '1400');
    // Up.
    await ip('link', 'set', 'dev', dev, 'up');
    run.check(await waitCarrier(dev), `${dev}: no carrier after up`);
    await ip('link', 'set', 'dev', dev, 'mtu', '1280');
    await ip('link', 'set', 'dev', dev, 'mtu', '1500');
    // Addresses and multicast addresses.
    await ip('addr', 'add', '10.0.2.15/24', 'dev', dev);
    await ip('-6', 'addr', 'add', 'fd00:5a::15/64', 'dev', dev, 'nodad');
    await ip('maddr', 'add', '01:00:5e:01:02:03', 'dev', dev);
    await ip('maddr', 'del', '01:00:5e:01:02:03', 'dev', dev);
    // ethtool over netlink (e1000 refuses the coalesce set on the emulated 82540).
    await ethtool('-K', dev, 'rx-all', 'on');
    await ethtool('-K', dev, 'rx-all', 'off');
    await ethtool('-G', dev, 'rx', String(RING_NL));
    await ethtool('-C', dev, 'rx-usecs', '10');
    await ethtool('-s', dev, 'msglvl', '0x5');
    await ethtool('-s', dev, 'wol', 'd');
    await ethtool('-A', dev, 'autoneg', 'off', 'rx', 'off', 'tx', 'off');
    await waitCarrier(dev);
    // ethtool over the ioctl, and one for no device (ifindex=0, ret=-19).
    await ioctl(dev, 'rings', String(RING_IOCTL));
    await ioctl(dev, 'coalesce');
    await ioctl(dev, 'msglvl', '0x3');
    await ioctl(dev, 'nway');
    await ioctl('nosuchnic0', 'msglvl', '0x3');
    await sleep(500);
    run.check(await waitCarrier(dev), `${dev}: no carrier after the ethtool sets`);
    // The sync marker's command within the session: a request for no device.
    await ethtool('-s', SYNC_MARKER_DEVICE, 'msglvl', '0');
    // A packet socket's memberships, and the administrative flags.
    const ifindex = readFileSync(`/sys/class/net/${dev}/ifindex`, 'utf8').trim();
    await step(['perl', '-e', PACKET_MEMBERSHIPS, ifindex]);
    await ip('link', 'set', 'dev', dev, 'promisc', 'on');
    await ip('link', 'set', 'dev', dev, 'promisc', 'off');
    await ip('link', 'set', 'dev', dev, 'allmulticast', 'on');
    await ip('link', 'set', 'dev', dev, 'allmulticast', 'off');
    // Static FDB entries on the NIC itself.
    await step(['bridge', 'fdb', 'add', FDB_UNICAST, 'dev', dev, 'self', 'permanent'], { mayFail: true });
    await step(['bridge', 'fdb', 'add', FDB_MULTICAST, 'dev', dev, 'self', 'permanent'], { mayFail: true });
    await step(['bridge', 'fdb', 'del', FDB_UNICAST, 'dev', dev, 'self'], { mayFail: true });
    await step(['bridge', 'fdb', 'del', FDB_MULTICAST, 'dev', dev, 'self'], { mayFail: true });
    await ip('link', 'set', 'dev', dev, 'txqueuelen', '500');
    await ip('link', 'set', 'dev', dev, 'txqueuelen', '1000');
    // A VLAN device on the NIC.
    await ip('link', 'add', 'link', dev, 'name', `${dev}.${VLAN_ID}`, 'type', 'vlan', 'id', String(VLAN_ID));
    await ip('link', 'del', `${dev}.${VLAN_ID}`);
    // A qdisc added and deleted.
    await step(['tc', 'qdisc', 'add', 'dev', dev, 'root', 'handle', '1:', 'prio'], { mayFail: true });
    await step(['tc', 'qdisc', 'del', 'dev', dev, 'root'], { mayFail: true });
    // A rename, there and back.
    await ip('link', 'set', 'dev', dev, 'down');
    await ip('link', 'set', 'dev', dev, 'name', RENAMED);
    await ip('link', 'set', 'dev', RENAMED, 'name', dev);
    await ip('link', 'set', 'dev', dev, 'up');
    run.check(await waitCarrier(dev), `${dev}: no carrier after the rename`);
    // The driver's unbind unregisters the device; the bind registers it again.
    const driverDir = `/sys/bus/pci/drivers/${DRIVER}`;
    writeFileSync(`${driverDir}/unbind`, pci);
    steps.push({ step: `unbind ${pci}`, ok: true });
    writeFileSync(`${driverDir}/bind`, pci);
    steps.push({ step: `bind ${pci}`, ok: true });
    const back = await waitNic();
    if (run.check(back !== null && existsSync(`/sys/class/net/${back.dev}`), `${pci}: no interface after the bind`)) {
      nic = back;
      await ip('link', 'set', 'dev', back!.dev, 'up');
      run.check(await waitCarrier(back!.dev), `${back!.dev}: no carrier after the bind`);
    }
    // Records of the last step's workers (linkwatch, IPv6 autoconfiguration) before the closing markers.
    await sleep(1000);
  }
}
await run.close();
printResult('LIBBPF_NETDEV_RESULT', { ...run.result(), steps, nic });
