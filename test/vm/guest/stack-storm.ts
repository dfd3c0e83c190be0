// Run in the guest, as root, for test/vm/classes/net/stack-storm.test.ts: what
// a large routing table and an ARP storm from the LAN cost shadowd. A NIC
// watched by shadowd gets 100,000 routes (one `ip -batch`, as a script or a
// routing daemon would), then a peer NIC on the same segment, in a network
// namespace of its own, floods it with ARP requests from random senders for
// 20 s; meanwhile an administrator adds a permanent neighbour. Afterwards the
// routes are flushed and one is added. It prints one JSON object: the CPU
// time and peak memory of the daemon and its bpftrace per phase, what the
// storm did to the NIC's neighbour table, and what the shadow holds.
// usage: node dist/test/vm/guest/stack-storm.js DRIVER PEER_DRIVER
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import type { ShowResult, StatusResult } from '../../../daemon/control/control-protocol.js';
import { repoPath } from '../rig/repo-path.js';
import { interfaceOf, waitForCarrier } from './nic-setup.js';
import { shadowdEnv, startShadowd } from './shadowd-process.js';

const [driver, peerDriver] = process.argv.slice(2);
if (!driver || !peerDriver) throw new Error('usage: stack-storm.js DRIVER PEER_DRIVER');

const ROUTES = 100_000;
const STORM_S = 20;
const NS = 'stormpeer';
const DEV_V4 = '192.168.88.1';
const PEER_V4 = '192.168.88.2';
const NEIGHBOUR = { dst: '192.168.88.77', lladdr: '02:00:00:00:88:77' };
const LAST_ROUTE = '192.0.2.0/24';
/**
 * perl -e ARP_FLOOD IFINDEX TARGET SECONDS: broadcast ARP requests for TARGET,
 * each from a random sender (address 192.168.x.y, x in 100..227; random
 * locally administered MAC), on a raw packet socket (AF_PACKET 17,
 * ETH_P_ARP), for SECONDS; prints how many it sent. Perl is on every Debian
 * system; Node has no raw sockets.
 */
const ARP_FLOOD = `use Socket;
my ($ifindex, $target, $seconds) = @ARGV;
socket(my $s, 17, SOCK_RAW, unpack("S", pack("n", 0x0806))) or die "socket: $!";
my $to = pack("S n i S C C a8", 17, 0x0806, $ifindex, 0, 0, 6, "\\xff" x 6);
my $tpa = inet_aton($target);
my ($n, $end) = (0, time + $seconds);
while (time < $end) {
  for (1 .. 200) {
    my $mac = pack("C6", 2, map { int(rand(256)) } 1 .. 5);
    my $spa = pack("C4", 192, 168, 100 + int(rand(128)), 1 + int(rand(254)));
    my $frame = pack("a6 a6 n n n C C n a6 a4 a6 a4", "\\xff" x 6, $mac, 0x0806, 1, 0x0800, 6, 4, 1, $mac, $spa, "\\0" x 6, $tpa);
    send($s, $frame, 0, $to) or die "send: $!";
    $n++;
  }
}
print "$n\\n";`;

const started = Date.now();
const phase = (what: string): void => void process.stderr.write(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${what}\n`);
const work = mkdtempSync('/tmp/shadowd-storm-');
const env = shadowdEnv(work);
const ip = (...args: string[]) => execa('ip', args);

async function ctl<T>(...args: string[]): Promise<T> {
  return JSON.parse((await execa('node', [repoPath('dist/cli/shadowctl.js'), ...args, '--json'], { env })).stdout) as T;
}

/** CPU seconds (user + system) a process has used, from /proc/PID/stat. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\) /s, '').split(' ');
  // After the comm: state is field 3; utime and stime are fields 14 and 15.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}
const peakRssKb = (pid: number): number => Number(/^VmHWM:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

/** The process running the daemon's taps (its child): bpftrace, or taps-loader. */
function bpftraceOf(daemonPid: number): number {
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const comm = /\((.*)\)/s.exec(stat)?.[1];
      const ppid = Number(stat.replace(/^.*\) /s, '').split(' ')[1]);
      if ((comm === 'bpftrace' || comm === 'taps-loader') && ppid === daemonPid) return Number(d);
    } catch {
      // gone meanwhile
    }
  }
  throw new Error(`no bpftrace or taps-loader under shadowd ${daemonPid}`);
}

/** Waits until shadowd has applied everything the taps reported: no new events, no re-read pending. */
async function settle(): Promise<number> {
  const t0 = Date.now();
  let last = -1;
  for (let i = 0; i < 240; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const s = await ctl<StatusResult>('status');
    if (s.taps.events === last && s.pendingReads === 0) return Date.now() - t0;
    last = s.taps.events;
  }
  throw new Error('shadowd did not settle within 120 s');
}

interface Cost {
  wallS: number;
  daemonCpuS: number;
  bpftraceCpuS: number;
  /** Tap events the daemon took in. */
  events: number;
}

let daemon: ResultPromise | null = null;
let daemonLog = '';
try {
  await execa('modprobe', [driver]);
  await execa('modprobe', [peerDriver]);
  const dev = await interfaceOf(driver);
  const peer = await interfaceOf(peerDriver);
  await ip('netns', 'add', NS);
  await ip('link', 'set', peer, 'netns', NS);
  await ip('-n', NS, 'link', 'set', peer, 'up');
  await ip('-n', NS, 'addr', 'add', `${PEER_V4}/16`, 'dev', peer);
  await ip('link', 'set', dev, 'up');
  await ip('addr', 'add', `${DEV_V4}/16`, 'dev', dev);
  await waitForCarrier(dev, 15_000);
  const peerIfindex = Number((await ip('-n', NS, '-json', 'link', 'show', 'dev', peer)).stdout.match(/"ifindex":(\d+)/)?.[1]);

  // STORM_CPU_PROFILE=1 (with the rig's --keep): the daemon writes a V8 CPU profile into the run folder's prof/ when it stops.
  const profile = process.env['STORM_CPU_PROFILE'] === '1' ? ['--cpu-prof', `--cpu-prof-dir=${join(process.env['SHADOWD_RUNDIR'] ?? work, 'prof')}`] : [];
  phase('starting shadowd');
  const s = await startShadowd(work, (t) => (daemonLog += t), [], undefined, profile);
  daemon = s.daemon;
  const daemonPid = daemon.pid!;
  const bpftracePid = bpftraceOf(daemonPid);
  await settle();

  const measure = async (what: string, body: () => Promise<void>): Promise<Cost> => {
    phase(what);
    const e0 = (await ctl<StatusResult>('status')).taps.events;
    const d0 = cpuSeconds(daemonPid);
    const b0 = cpuSeconds(bpftracePid);
    const t0 = Date.now();
    await body();
    const cost = { wallS: (Date.now() - t0) / 1000, daemonCpuS: cpuSeconds(daemonPid) - d0, bpftraceCpuS: cpuSeconds(bpftracePid) - b0 };
    return { ...cost, events: (await ctl<StatusResult>('status')).taps.events - e0 };
  };

  const idle = await measure('idle', () => new Promise((r) => setTimeout(r, 10_000)));

  // 100,000 host routes on the NIC, as a script or a routing daemon adds them, then until the shadow has settled.
  const batch = join(work, 'routes.batch');
  const lines: string[] = [];
  for (let i = 0; i < ROUTES; i++) lines.push(`route add 10.${i >> 16}.${(i >> 8) & 255}.${i & 255}/32 dev ${dev} proto static`);
  writeFileSync(batch, `${lines.join('\n')}\n`);
  let routeAddS = 0;
  let routeSettleS = 0;
  const routes = await measure('adding routes', async () => {
    const t0 = Date.now();
    await ip('-batch', batch);
    routeAddS = (Date.now() - t0) / 1000;
    routeSettleS = (await settle()) / 1000;
  });
  const routeCount = (await execa('sh', ['-c', `ip -4 route show dev ${dev} | wc -l`])).stdout.trim();
  const afterRoutes = await ctl<ShowResult>('show', dev);

  // The ARP storm; an administrator adds a permanent neighbour in the middle of it.
  const neighbourCounts: number[] = [];
  let sent = 0;
  const rx0 = Number(readFileSync(`/sys/class/net/${dev}/statistics/rx_packets`, 'utf8'));
  const storm = await measure('ARP storm', async () => {
    const flood = execa('ip', ['netns', 'exec', NS, 'perl', '-e', ARP_FLOOD, String(peerIfindex), DEV_V4, String(STORM_S)]);
    const sampler = setInterval(() => {
      void execa('ip', ['-4', 'neigh', 'show', 'dev', dev]).then((r) => neighbourCounts.push(r.stdout.split('\n').filter(Boolean).length));
    }, 2000);
    await new Promise((r) => setTimeout(r, (STORM_S / 2) * 1000));
    await ip('neigh', 'add', NEIGHBOUR.dst, 'lladdr', NEIGHBOUR.lladdr, 'dev', dev, 'nud', 'permanent');
    sent = Number((await flood).stdout.trim());
    clearInterval(sampler);
  });
  const rxDuringStorm = Number(readFileSync(`/sys/class/net/${dev}/statistics/rx_packets`, 'utf8')) - rx0;
  const stormSettleS = (await settle()) / 1000;
  const afterStorm = await ctl<ShowResult>('show', dev);

  // The table is flushed (100,000 deletions announced) and one route is added.
  const cleanup = await measure('flushing routes', async () => {
    await ip('route', 'flush', 'dev', dev, 'proto', 'static');
    await ip('route', 'add', LAST_ROUTE, 'via', PEER_V4, 'dev', dev);
    await settle();
  });
  const final = await ctl<ShowResult>('show', dev);
  const status = await ctl<StatusResult>('status');

  console.log(JSON.stringify({
    dev,
    routes: ROUTES,
    routeCount: Number(routeCount),
    routeAddS,
    routeSettleS,
    sent,
    rxDuringStorm,
    neighbourCounts,
    stormSettleS,
    cost: { idle, routes, storm, cleanup },
    peakRssKb: { daemon: peakRssKb(daemonPid), bpftrace: peakRssKb(bpftracePid) },
    alive: daemon.exitCode === null,
    afterRoutes,
    afterStorm,
    final,
    status,
    neighbour: NEIGHBOUR,
    lastRoute: LAST_ROUTE,
    daemonLog,
  }));
} catch (err) {
  process.stderr.write(`--- shadowd log ---\n${daemonLog}\n`);
  throw err;
} finally {
  // Not daemon.kill(): execa would SIGKILL it 5 s later, before a CPU profile is written.
  if (daemon?.pid !== undefined) process.kill(daemon.pid, 'SIGTERM');
  await daemon;
  phase('done');
}
