// The helper module's restart on one real NIC driver, in the guest, without
// the daemon: what the kernel side alone keeps and replays.
//   1. preserve: a configured device with a packet sniffer on it is restarted;
//      ifindex, every shadow key (ip, tc, bridge, ethtool) and the sniffer
//      must survive, and traffic must pass after;
//   1b. reload: the same with the driver's whole module unloaded and loaded
//      again in between (the module's sysfs node is a new one after); and a
//      module that will not unload leaves a plain restart, said so;
//   1c. hang: transmits hang and the kernel's TX watchdog has the driver
//      reset itself (ndo_tx_timeout) at least once before the restart, and
//      every period meanwhile: neither may wedge the other;
//   2. concurrent: another process changes and queries the device in a loop
//      while it is restarted again and again; every change must be accepted,
//      the last one must be in force at the end, and nothing may deadlock;
//   3. park: a fault that makes the driver's open fail on every restart
//      leaves the device parked (same ifindex, nothing calls the driver),
//      the parked device cannot be moved to another network namespace, and
//      a restart once the fault is gone brings it back;
//   4. filters: a peer NIC of another driver on the same segment, in its own
//      namespace (receive-filters.ts), sends to a joined and an unjoined
//      multicast group and to a foreign MAC, and resolves the device's IPv6
//      address, before and after restarts, promiscuous and not; then the
//      device, passive again, can move namespace;
//   5. netns: back in the initial namespace and up, the device is restarted
//      again and again while another task tries to move it to another
//      namespace whenever the helper says it is restarting: each try made
//      while the device is held fails (EINVAL), one that lands once the
//      restart is over (passive) moves it and it is moved back, every
//      restart succeeds, and the kernel never reports the device
//      unregistered under a restart.
// Prints `RESTART_RESULT <json>` for test/vm/classes/net/helper-restart.test.ts.
import { existsSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { openHelper } from '../../../daemon/core/helper-client.js';
import { snapshotDevice } from '../../../daemon/classes/net/netdev-snapshot.js';
import { PEER_NS, PROBE_COUNT, probe, setupPeer, type FilterProbe } from './receive-filters.js';
import { DRIVER_SETTINGS, hasMsglvl, helperCommand, interfaceOf, loadHelper, ringOps, settle, startConfigLoop, waitForCarrier } from './nic-setup.js';

const driver = process.argv[2] ?? '';
const peerDriver = process.argv[3] ?? '';
if (!(driver in DRIVER_SETTINGS) || !(peerDriver in DRIVER_SETTINGS) || peerDriver === driver) {
  console.error('usage: restart-check.js DRIVER PEER_DRIVER (two drivers of nic-setup.ts DRIVER_SETTINGS)');
  process.exit(2);
}
const RESTARTS_UNDER_LOAD = 6;

await execa('modprobe', [driver]);
await execa('modprobe', [peerDriver]);
await loadHelper(true);
const dev = await interfaceOf(driver);
const peer = await interfaceOf(peerDriver);
const ifindex = (): number => Number(readFileSync(`/sys/class/net/${dev}/ifindex`, 'utf8'));
const ifindexBefore = ifindex();
for (const argv of DRIVER_SETTINGS[driver]!(dev)) await execa(argv[0]!, argv.slice(1));
await execa('ip', ['addr', 'add', '2001:db8::15/64', 'dev', dev]);
await execa('ip', ['neigh', 'add', '10.0.2.99', 'lladdr', '02:00:00:00:00:99', 'dev', dev, 'nud', 'permanent']);
const segment = await setupPeer(dev, peer);
await settle(dev);

// 1. preserve
const sniffer = execa('tcpdump', ['-i', dev, '-n', '-tt', '-l'], { reject: false, buffer: true });
await new Promise((r) => setTimeout(r, 1500));
const before = await snapshotDevice(dev);
const restartedAt = Date.now() / 1000;
const reply = await helperCommand(`restart net:${dev} check1`);
await settle(dev);
const after = await snapshotDevice(dev);
const ping = await execa('busybox', ['ping', '-c', '3', '-W', '2', '10.0.2.2'], { reject: false });
const snifferAlive = sniffer.exitCode === null;
sniffer.kill('SIGTERM');
const captured = (await sniffer).stdout.split('\n').filter((l) => Number(l.split(' ')[0]) > restartedAt).length;

// 1b. reload the driver's module (the helper reloads only a PCI device's driver)
/** The bus of the device (pci, or virtio for virtio_net) and its driver's module, as the kernel names it (ne2k_pci for the driver ne2k-pci). */
const bus = basename(readlinkSync(`/sys/class/net/${dev}/device/subsystem`));
const module = basename(readlinkSync(`/sys/class/net/${dev}/device/driver/module`));
const moduleNode = (): number => statSync(`/sys/module/${module}`).ino;
const transmitted = (r: { stdout: string; stderr: string }): string => r.stdout.split('\n').find((l) => l.includes('packets transmitted')) ?? r.stderr;
const reloadCheck = async (): Promise<Record<string, unknown>> => {
  if (bus !== 'pci') return { bus, device: basename(readlinkSync(`/sys/class/net/${dev}/device`)), reply: await helperCommand(`restart net:${dev} reload1 reload`) };
  const moduleNodeBefore = moduleNode();
  const before = await snapshotDevice(dev);
  const reply = await helperCommand(`restart net:${dev} reload1 reload`);
  await settle(dev);
  const moduleNodeAfter = moduleNode();
  const after = await snapshotDevice(dev);
  const ping = await execa('busybox', ['ping', '-c', '3', '-W', '2', '10.0.2.2'], { reject: false });
  // A module that will not unload (here modprobe's own configuration refuses it):
  // the restart goes on as a plain one, and the kernel log says why.
  const refuse = `/etc/modprobe.d/shadowd-test-${module}.conf`;
  writeFileSync(refuse, `remove ${module} /bin/false\n`);
  const stuckNode = moduleNode();
  const stuckReply = await helperCommand(`restart net:${dev} reload2 reload`);
  rmSync(refuse);
  await settle(dev);
  const stuckLog = (await execa('dmesg')).stdout.split('\n').filter((l) => l.includes('recovery reload2:'));
  const stuckPing = await execa('busybox', ['ping', '-c', '3', '-W', '2', '10.0.2.2'], { reject: false });
  return {
    bus,
    reply,
    moduleNodeBefore,
    moduleNodeAfter,
    ifindex: ifindex(),
    before: before.keys,
    after: after.keys,
    ping: transmitted(ping),
    refused: { reply: stuckReply, sameModule: moduleNode() === stuckNode, log: stuckLog, ping: transmitted(stuckPing) },
  };
};
const reload = await reloadCheck();

// 1c. the driver's own reset beside a restart: transmits hang, the kernel's
// TX watchdog has the driver reset itself (ndo_tx_timeout) at least once,
// and goes on doing so every watchdog period while the device is restarted.
const txstat = async (): Promise<Record<string, number>> =>
  Object.fromEntries(
    (await helperCommand(`txstat net:${dev}`))
      .split(' ')
      .slice(1)
      .map((f) => [f.split('=')[0]!, Number(f.split('=')[1])]),
  );
const hangBefore = await txstat();
const hangInject = await helperCommand(`inject net:${dev} tx-hang`);
// One packet is enough: it stays queued and the queue stopped.
await execa('busybox', ['ping', '-c', '1', '-W', '1', '10.0.2.2'], { reject: false });
const hangWaitMs = 3 * (hangBefore['watchdog_ms'] ?? 5000) + 5000;
let hangStat = await txstat();
for (const until = Date.now() + hangWaitMs; hangStat['timeouts']! <= hangBefore['timeouts']! && Date.now() < until; hangStat = await txstat()) {
  await new Promise((r) => setTimeout(r, 50));
}
const hangReply = await helperCommand(`restart net:${dev} hang1`);
await settle(dev);
const hangPing = await execa('busybox', ['ping', '-c', '3', '-W', '2', '10.0.2.2'], { reject: false });
const hangAfter = await txstat();

// 2. concurrent configuration during repeated restarts
// pcnet32's ring resize WARNs on 6.1 (nic-setup.ts), virtio_net's takes only
// powers of two (the loop's 160 gets ENOMEM); other drivers' ring operations
// are found by asking.
const rings = await ringOps(dev);
const msglvl = await hasMsglvl(dev);
const loop = startConfigLoop(dev, { rings: rings.set && driver !== 'pcnet32' && driver !== 'virtio_net', ringQuery: rings.get, msglvl });
const underLoad: string[] = [];
for (let i = 0; i < RESTARTS_UNDER_LOAD; i++) {
  underLoad.push(await helperCommand(`restart net:${dev} load${i}`));
  await new Promise((r) => setTimeout(r, 700));
}
const concurrent = await loop.stop();
await waitForCarrier(dev, 15_000);
const final = await snapshotDevice(dev, ['link', 'rings', 'settings']);

// 3. park on a fault that comes back with every restart
const inject = await helperCommand(`inject net:${dev} fail-open sticky`);
const parkedReply = await helperCommand(`restart net:${dev} sticky1`);
const parkedStat = await helperCommand(`txstat net:${dev}`);
const ifindexParked = ifindex();
const parkedMove = await execa('ip', ['link', 'set', dev, 'netns', PEER_NS], { reject: false });
const parkedStayed = existsSync(`/sys/class/net/${dev}`);
const clear = await helperCommand(`inject net:${dev} clear`);
const backReply = await helperCommand(`restart net:${dev} back1`);
await settle(dev);
const pingBack = await execa('busybox', ['ping', '-c', '3', '-W', '2', '10.0.2.2'], { reject: false });

// 4. receive filters across restarts, then a namespace move once passive
const filters: { label: string; reply: string | null; probe: FilterProbe }[] = [];
/** Probes the filters after a restart (ID) or a promiscuity change (on/off), or as they are. */
const look = async (label: string, change: { restart: string } | { promisc: 'on' | 'off' } | null): Promise<void> => {
  let reply: string | null = null;
  if (change && 'restart' in change) reply = await helperCommand(`restart net:${dev} ${change.restart}`);
  if (change && 'promisc' in change) await execa('ip', ['link', 'set', dev, 'promisc', change.promisc]);
  if (change) await settle(dev);
  filters.push({ label, reply, probe: await probe(dev, peer, segment) });
};
await look('before', null);
await look('restarted', { restart: 'filters1' });
await look('promisc', { promisc: 'on' });
await look('promisc restarted', { restart: 'filters2' });
await look('promisc off', { promisc: 'off' });
segment.listener.close();
await segment.sender.close();
await segment.capture?.stop();
const ifindexEnd = ifindex();
const passiveMove = await execa('ip', ['link', 'set', dev, 'netns', PEER_NS], { reject: false });
const movedAway = !existsSync(`/sys/class/net/${dev}`);

// 5. namespace moves tried while restarts run
await execa('ip', ['-n', PEER_NS, 'link', 'set', dev, 'netns', '1']);
await execa('ip', ['link', 'set', dev, 'up']);
writeFileSync('/dev/kmsg', 'restart-check: namespace moves under restarts\n');
const present = (): boolean => existsSync(`/sys/class/net/${dev}`);
/**
 * One `ip -force -batch -` for all the tries: a spawned ip per try takes
 * longer under emulation than virtio_net is held. Each try is followed by a
 * command that always fails: its "Command failed -:N" says the try is done,
 * and the try's own line number among the failures says whether it failed.
 */
const mover = execa('ip', ['-force', '-batch', '-'], { stdin: 'pipe', stdout: 'ignore', stderr: 'pipe', buffer: false, reject: false });
const moverFailed = new Map<number, string>();
const moverWaits = new Map<number, () => void>();
let moverText: string[] = [];
createInterface({ input: mover.stderr }).on('line', (l) => {
  const n = /^Command failed -:(\d+)$/.exec(l)?.[1];
  if (!n) return void moverText.push(l);
  moverFailed.set(Number(n), moverText.join(' '));
  moverText = [];
  moverWaits.get(Number(n))?.();
});
let moverLine = 0;
const tryMove = async (): Promise<{ exitCode: number; stderr: string }> => {
  const line = ++moverLine;
  const mark = ++moverLine;
  const marked = new Promise<void>((r) => moverWaits.set(mark, r));
  mover.stdin.write(`link set dev ${dev} netns ${PEER_NS}\nlink show dev shmark-none\n`);
  await marked;
  const err = moverFailed.get(line);
  return err === undefined ? { exitCode: 0, stderr: '' } : { exitCode: 1, stderr: err };
};
const poller = await openHelper();
const netnsRuns: { reply: string; polls: number; tries: { exitCode: number; stderr: string; moved: boolean; back: boolean }[] }[] = [];
for (let i = 0; i < RESTARTS_UNDER_LOAD; i++) {
  let done = false;
  const restart = helperCommand(`restart net:${dev} netns${i}`).finally(() => {
    done = true;
  });
  const run = { reply: '', polls: 0, tries: [] as (typeof netnsRuns)[number]['tries'] };
  while (!done) {
    // Tried only while the helper holds the device: one between restarts would
    // move it before the next restart looks it up (which then finds no device).
    run.polls++;
    const stat = await poller.request(`txstat net:${dev}`);
    if (!stat.ok || !/ state=restarting /.test(` ${stat.payload} `)) {
      await new Promise((r) => setTimeout(r, 1));
      continue;
    }
    const move = await tryMove();
    const moved = !present();
    let back = false;
    if (moved) {
      back = (await execa('ip', ['-n', PEER_NS, 'link', 'set', dev, 'netns', '1'], { reject: false })).exitCode === 0 && present();
      await execa('ip', ['link', 'set', dev, 'up'], { reject: false });
    }
    run.tries.push({ ...move, moved, back });
  }
  run.reply = await restart;
  netnsRuns.push(run);
}
await poller.close();
mover.stdin.end();
await mover;
const kernelLog = (await execa('dmesg')).stdout.split('\n');
const netnsLog = kernelLog
  .slice(kernelLog.findLastIndex((l) => l.includes('restart-check: namespace moves under restarts')))
  .filter((l) => /unregistered during a restart|\bBUG\b|WARNING:|\bOops\b|KASAN|general protection/.test(l));

console.log(
  `RESTART_RESULT ${JSON.stringify({
    driver,
    module,
    dev,
    msglvl,
    preserve: {
      reply,
      ifindexBefore,
      ifindexAfter: ifindexEnd,
      before: before.keys,
      after: after.keys,
      ping: ping.stdout.split('\n').find((l) => l.includes('packets transmitted')) ?? ping.stderr,
      sniffer: { alive: snifferAlive, capturedAfter: captured },
    },
    reload,
    hang: {
      inject: hangInject,
      watchdogMs: hangBefore['watchdog_ms'],
      timeoutsBefore: hangBefore['timeouts'],
      timeoutsAtRestart: hangStat['timeouts'],
      timeoutsAfter: hangAfter['timeouts'],
      reply: hangReply,
      ping: hangPing.stdout.split('\n').find((l) => l.includes('packets transmitted')) ?? hangPing.stderr,
    },
    concurrent: {
      replies: underLoad,
      iterations: concurrent.iterations,
      failures: concurrent.failures,
      stuck: concurrent.stuck,
      last: concurrent.last,
      final: { mtu: final.keys.mtu, txqueuelen: final.keys.txqueuelen, msglvl: final.keys.msglvl, rings: final.keys.rings },
    },
    filters: { runs: filters, sent: PROBE_COUNT, passiveMove: { exitCode: passiveMove.exitCode, stderr: passiveMove.stderr.trim(), movedAway } },
    netns: { runs: netnsRuns, ifindex: ifindex(), log: netnsLog },
    park: {
      inject,
      reply: parkedReply,
      txstat: parkedStat,
      ifindex: ifindexParked,
      clear,
      move: { exitCode: parkedMove.exitCode, stderr: parkedMove.stderr.trim(), stayed: parkedStayed },
      back: backReply,
      ping: pingBack.stdout.split('\n').find((l) => l.includes('packets transmitted')) ?? pingBack.stderr,
    },
  })}`,
);
