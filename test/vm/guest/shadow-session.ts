// Run in the guest, as root, for test/vm/classes/net/netdev-shadow.test.ts: starts shadowd
// on a freshly loaded NIC driver, configures the interface the way
// administrators and applications do, from several processes (kill -9 of the
// daemon in the middle), and prints one JSON object with what shadowd holds
// and what the tools report, for the host to compare key by key.
// All the drivers' devices are configured side by side, watched by one shadowd.
// Then another network namespace (what any user makes with `unshare -rn` on
// Debian) holds devices with the NICs' very ifindexes and names, which are
// configured, renamed and deleted: shadowd must leave its NICs' shadows alone.
// usage: node dist/test/vm/guest/shadow-session.js DRIVER...
import { mkdtempSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import { snapshotDevice, ALL_GROUPS } from '../../../daemon/classes/net/netdev-snapshot.js';
import type { ShowResult, StatusResult } from '../../../daemon/control/control-protocol.js';
import { repoPath } from '../rig/repo-path.js';
import { shadowdEnv, startShadowd } from './shadowd-process.js';

const drivers = process.argv.slice(2);
if (drivers.length === 0) throw new Error('usage: shadow-session.js DRIVER...');

const work = mkdtempSync('/tmp/shadowd-session-');
const env = shadowdEnv(work);
const steps: { argv: string[]; exitCode: number | undefined; stderr: string }[] = [];
const sessionStart = Date.now();
/** Where the session is, on stderr: the guest's story if it hangs or times out. */
const phase = (what: string): void => void process.stderr.write(`[${((Date.now() - sessionStart) / 1000).toFixed(1)} s] ${what}\n`);
/** perl -e MTU_TOGGLER DEV N: N SIOCSIFMTU ioctls alternating 1500 and 1400. */
const MTU_TOGGLER = `use Socket;
socket(my $s, AF_INET, SOCK_DGRAM, 0) or die "socket: $!";
my ($dev, $n) = @ARGV;
for my $i (1 .. $n) {
  ioctl($s, 0x8922, pack("a16 i x20", $dev, $i % 2 ? 1500 : 1400)) or die "SIOCSIFMTU: $!";
}`;

async function sh(argv: string[], mayFail = false): Promise<string> {
  const r = await execa(argv[0]!, argv.slice(1), { reject: false, env });
  steps.push({ argv, exitCode: r.exitCode, stderr: r.stderr.trim() });
  if (r.exitCode !== 0 && !mayFail) throw new Error(`${argv.join(' ')} failed (${String(r.exitCode)}): ${r.stderr}`);
  return r.stdout;
}

async function ctl<T>(...args: string[]): Promise<T> {
  return JSON.parse(await sh(['node', repoPath('dist/cli/shadowctl.js'), ...args, '--json'])) as T;
}

let daemon: ResultPromise | null = null;
let daemonLog = '';
async function startDaemon(): Promise<number> {
  const started = await startShadowd(work, (text) => (daemonLog += text), ['--log-level', 'debug']);
  daemon = started.daemon;
  return started.readyMs;
}
/** The daemon's peak resident memory so far (VmHWM), in kB. */
async function daemonPeakRssKb(): Promise<number> {
  const status = await sh(['cat', `/proc/${daemon?.pid}/status`]);
  return Number(/^VmHWM:\s+(\d+) kB$/m.exec(status)?.[1]);
}
async function killDaemon(signal: 'SIGKILL' | 'SIGTERM'): Promise<void> {
  daemon?.kill(signal);
  await daemon;
  daemon = null;
}
/** Waits until shadowd has applied everything the taps reported: no new events, no re-read pending. */
async function settle(): Promise<void> {
  let last = -1;
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const s = await ctl<StatusResult>('status');
    if (s.taps.events === last && s.pendingReads === 0) return;
    last = s.taps.events;
  }
  throw new Error('shadowd did not settle within 50 s');
}

for (const d of drivers) await sh(['modprobe', d]);
/** interface name → its driver, for every NIC the drivers created. */
const devs = new Map<string, string>();
for (const name of (await sh(['ls', '/sys/class/net'])).split('\n')) {
  const drv = name && name !== 'lo' ? (await sh(['readlink', `/sys/class/net/${name}/device/driver`], true)).split('/').pop() : undefined;
  if (drv) devs.set(name, drv);
}
if (devs.size !== drivers.length) throw new Error(`expected ${drivers.length} interfaces, found ${[...devs.keys()].join(', ')}`);
const each = async (step: (dev: string, i: number) => Promise<unknown>): Promise<void> => {
  let i = 0;
  for (const dev of devs.keys()) await step(dev, i++);
};
const showAll = async (): Promise<Record<string, ShowResult>> => {
  const out: Record<string, ShowResult> = {};
  for (const dev of devs.keys()) out[dev] = await ctl<ShowResult>('show', dev);
  return out;
};

// Configured before shadowd starts: the start-up snapshot must pick this up.
await each((dev) => sh(['ip', 'link', 'set', dev, 'mtu', '1400']));
phase('starting shadowd');
const readyMs = await startDaemon();
phase(`shadowd ready in ${readyMs} ms`);

// A burst of MTU changes on one device (down, so the driver does not reset the
// NIC each time), through the ioctl an old tool would use: the shadow must end
// with the last value in its one MTU entry. Even count: ends on 1400. Each
// change costs the emulated kernel about 40 ms with or without shadowd, so the
// 100,000-change check runs on the host (test/unit/netdev-shadow.test.ts).
const TOGGLES = 200;
const [burstDev] = devs.keys();
const burstStarted = Date.now();
await sh(['perl', '-e', MTU_TOGGLER, burstDev!, String(TOGGLES)]);
await settle();
const burstMs = Date.now() - burstStarted;
phase(`MTU burst applied in ${burstMs} ms`);
const burstEvents = (await ctl<StatusResult>('status')).taps.events;

await each(async (dev, i) => {
  await sh(['ip', 'link', 'set', dev, 'address', `02:00:00:00:0a:0${i + 1}`]);
  await sh(['ip', 'link', 'set', dev, 'up']);
  await sh(['ip', 'addr', 'add', `10.0.${2 + i}.15/24`, 'dev', dev]);
  await sh(['ip', 'addr', 'add', `2001:db8:${i}::15/64`, 'dev', dev, 'nodad']);
  await sh(['ip', 'route', 'add', `192.0.${2 + i}.0/24`, 'via', `10.0.${2 + i}.2`, 'dev', dev]);
  await sh(['ip', 'neigh', 'add', `10.0.${2 + i}.77`, 'lladdr', '02:00:00:00:00:77', 'dev', dev, 'nud', 'permanent']);
  await sh(['ip', 'maddr', 'add', '01:00:5e:00:00:42', 'dev', dev]);
  await sh(['bridge', 'fdb', 'add', '02:00:00:00:11:22', 'dev', dev, 'self', 'permanent']);
  await sh(['ip', 'link', 'add', 'link', dev, 'name', `${dev}.5`, 'type', 'vlan', 'id', '5']);
  await sh(['ethtool', '-K', dev, 'gro', 'off']);
  const rings = (await snapshotDevice(dev, ['rings'])).keys.rings as { rx: number | null } | null;
  // pcnet32 frees its old rings with interrupts off when they are resized, which
  // the kernel WARNs about (a bug of the driver's: kernel/dma/mapping.c:533).
  if (rings?.rx && devs.get(dev) !== 'pcnet32') await sh(['ethtool', '-G', dev, 'rx', String(rings.rx > 64 ? rings.rx / 2 : rings.rx * 2)]);
  await sh(['ethtool', '-C', dev, 'rx-usecs', '10'], true); // none of these drivers coalesces: refused
  await sh(['ethtool', '-s', dev, 'msglvl', '0x3'], true);
});

// The daemon dies mid-run: what it saw must survive, what happens while it is down must be caught up.
await settle();
const beforeKill = await showAll();
phase('configured; kill -9 of shadowd');
await killDaemon('SIGKILL');
await each(async (dev) => {
  await sh(['ip', 'link', 'set', dev, 'txqueuelen', '500']);
  await sh(['ip', 'link', 'set', dev, 'alias', 'uplink']);
});
const restartMs = await startDaemon();
phase(`shadowd back in ${restartMs} ms`);
const afterRestart = await showAll();

await each(async (dev) => {
  await sh(['tc', 'qdisc', 'replace', 'dev', dev, 'root', 'tbf', 'rate', '1mbit', 'burst', '32kbit', 'latency', '400ms']);
  await sh(['ip', 'link', 'set', dev, 'allmulticast', 'on']);
});
const sniffers = new Map<string, number | undefined>();
const tcpdumps = [...devs.keys()].map((dev) => {
  const p = execa('tcpdump', ['-i', dev, '-w', '/dev/null'], { reject: false });
  sniffers.set(dev, p.pid);
  return p;
});
await new Promise((r) => setTimeout(r, 2500));
await settle();
const whileSniffing = await showAll();
for (const p of tcpdumps) p.kill('SIGTERM');
await Promise.all(tcpdumps);
await settle();
const beforeNamespace = await showAll();

// Another namespace: a dummy device for each NIC,
// with its ifindex and name, configured with values used nowhere else, renamed
// and deleted. One shell runs it all inside the namespace.
await sh(['modprobe', 'dummy', 'numdummies=0']);
const links = JSON.parse(await sh(['ip', '-json', 'link', 'show'])) as { ifindex: number; ifname: string }[];
const twins = links.filter((l) => devs.has(l.ifname)).map((l) => ({ name: l.ifname, ifindex: l.ifindex }));
const NS_MTU = 1280;
const NS_ALIAS = 'container';
const NS_QLEN = 77;
const inNamespace = twins.flatMap(({ name, ifindex }) => [
  `ip link add ${name} index ${ifindex} type dummy`,
  `ip -json link show ${name}`,
  `ip link set ${name} mtu ${NS_MTU} address 02:00:00:00:0e:0${ifindex} txqueuelen ${NS_QLEN} alias ${NS_ALIAS}`,
  `ip link set ${name} up promisc on allmulticast on`,
  `ip addr add 10.99.${ifindex}.1/24 dev ${name}`,
  `ip route add 198.51.100.0/24 via 10.99.${ifindex}.2 dev ${name}`,
  `ip neigh add 10.99.${ifindex}.9 lladdr 02:00:00:00:00:99 dev ${name} nud permanent`,
  `ip link set ${name} down`,
  `ip link set ${name} name ns${ifindex}`,
  `ip link del ns${ifindex}`,
]);
// An unprivileged user would run `unshare -rn`; the guest runs its command in a
// chroot, where the kernel refuses a new user namespace (EPERM), so root makes
// the network namespace: what the taps and shadowd see of it is the same.
phase('another network namespace');
const nsOut = await sh(['unshare', '--net', 'sh', '-ec', inNamespace.join('\n')]);
/** What the namespace's devices were: the proof the ifindexes and names collided. */
const nsTwins = nsOut.split('\n').filter((l) => l.startsWith('[')).flatMap((l) => JSON.parse(l) as { ifindex: number; ifname: string }[]).map((l) => ({ name: l.ifname, ifindex: l.ifindex }));
await settle();
const final = await showAll();
phase('final reads');
const status = await ctl<StatusResult>('status');
const truth: Record<string, unknown> = {};
const ipLink: Record<string, unknown> = {};
await each(async (dev) => {
  truth[dev] = (await snapshotDevice(dev, ALL_GROUPS)).keys;
  ipLink[dev] = JSON.parse(await sh(['ip', '-json', '-details', 'link', 'show', 'dev', dev])) as unknown;
});
const peakRssKb = await daemonPeakRssKb();
await killDaemon('SIGTERM');

console.log(
  JSON.stringify({
    devices: Object.fromEntries(devs),
    readyMs,
    restartMs,
    burstDev,
    burstMs,
    burstEvents,
    toggles: TOGGLES,
    peakRssKb,
    sniffers: Object.fromEntries(sniffers),
    beforeKill,
    afterRestart,
    whileSniffing,
    final,
    status,
    truth,
    ipLink,
    namespace: { twins, nsTwins, values: { mtu: NS_MTU, alias: NS_ALIAS, txqueuelen: NS_QLEN }, before: beforeNamespace },
    steps,
    daemonLog,
  }),
);
