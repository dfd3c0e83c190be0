// The guest half of bench/recovery-timeline.ts: on one NIC, with a 20 Hz ping
// to the QEMU gateway as the packet probe, measures in one run
//   bare     a plain unbind + bind of the device, then the least set-up that
//            passes a packet again (up, address): restores nothing else and
//            saves no application;
//   reset    the driver's own TX-timeout reset: a transmit hang that the
//            reset cures (tx-hang-reset), detected by the kernel's watchdog;
//   shadowd  a transmit hang (tx-hang) detected and recovered by shadowd.
// "service" is when the first probe reply arrives after the outage.
// Prints `TIMELINE_RESULT <json>`.
import { readlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { mkdtempSync } from 'node:fs';
import { execa } from 'execa';
import { repoPath } from '../rig/repo-path.js';
import { DRIVER_SETTINGS, helperCommand, interfaceOf, loadHelper, settle, startPingProbe, txTimeouts, type PingReply } from './nic-setup.js';
import { shadowdEnv, startShadowd } from './shadowd-process.js';

const driver = process.argv[2] ?? '';
if (!(driver in DRIVER_SETTINGS)) {
  console.error('usage: recovery-timeline.js e1000|pcnet32|e100 [--baseline-only]');
  process.exit(2);
}
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

await execa('modprobe', [driver]);
await loadHelper(true);
let dev = await interfaceOf(driver);
const configure = async (): Promise<void> => {
  for (const argv of DRIVER_SETTINGS[driver]!(dev)) await execa(argv[0]!, argv.slice(1), { reject: false });
  await settle(dev);
};
await configure();

// The probe: iputils ping prints each reply with its receive time (-D) and
// round trip. Service is back when a reply arrives: probes sent during an
// outage may be held (by the neighbour layer, waiting for ARP) and answered
// all at once when the device works again, so the time a reply arrives is
// what counts, not the time its probe was sent.
const probe = startPingProbe('10.0.2.2', 0.05);
const replies = probe.replies;
/** When the first reply arrives after `t` for a probe that `counts`. */
const firstReply = async (t: number, counts: (r: PingReply) => boolean, timeoutMs = 60_000): Promise<number> => {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const hit = replies.find((r) => r.received > t && counts(r));
    if (hit) return hit.received;
    if (Date.now() > until) throw new Error(`no probe answered within ${timeoutMs} ms after the reference point`);
    await sleep(20);
  }
};
/** The device is broken at `t`: any reply after it is service. */
const firstReplyAfter = (t: number): Promise<number> => firstReply(t, () => true);
/**
 * The device is gone once `gone` (the unbind returned): a reply counts only
 * if its probe was sent after that or was held through the outage (a round
 * trip far beyond the link's). A probe that left between `t` and `gone`, on
 * the old device, proves nothing about the rebound one.
 */
const HELD_MS = 100;
const firstReplyAfterOutage = (t: number, gone: number): Promise<number> => firstReply(t, (r) => r.sent >= gone || r.received - r.sent > HELD_MS);
await firstReplyAfter(Date.now());

const ROUNDS = 3;

// bare: unbind + bind, then up and an address.
async function bareRebind(): Promise<{ ms: number }> {
  const pci = basename(readlinkSync(`/sys/class/net/${dev}/device`));
  const drvDir = `/sys/bus/pci/drivers/${basename(readlinkSync(`/sys/class/net/${dev}/device/driver`))}`;
  await sleep(1000);
  const start = Date.now();
  writeFileSync(join(drvDir, 'unbind'), pci);
  const gone = Date.now();
  writeFileSync(join(drvDir, 'bind'), pci);
  dev = await interfaceOf(driver);
  await execa('ip', ['link', 'set', dev, 'up']);
  await execa('ip', ['addr', 'add', '10.0.2.15/24', 'dev', dev]);
  const end = await firstReplyAfterOutage(start, gone);
  await configure();
  return { ms: end - start };
}

// reset: the kernel's watchdog notices, the driver resets itself.
const timeouts = async (): Promise<number> => (await txTimeouts(dev)) ?? NaN;
async function driverReset(): Promise<{ detectionMs: number; serviceMs: number }> {
  const before = await timeouts();
  await sleep(1000);
  const fault = Date.now();
  const reply = await helperCommand(`inject net:${dev} tx-hang-reset`);
  if (!reply.startsWith('ok ')) throw new Error(`inject tx-hang-reset: ${reply}`);
  let watchdogAt = 0;
  while (!watchdogAt) {
    if ((await timeouts()) > before) watchdogAt = Date.now();
    else if (Date.now() - fault > 30_000) throw new Error('the kernel watchdog did not fire within 30 s');
    else await sleep(25);
  }
  const end = await firstReplyAfter(watchdogAt);
  await helperCommand(`inject net:${dev} clear`);
  await settle(dev);
  return { detectionMs: watchdogAt - fault, serviceMs: end - watchdogAt };
}

const bare: { ms: number }[] = [];
const reset: { detectionMs: number; serviceMs: number }[] = [];
for (let i = 0; i < ROUNDS; i++) {
  bare.push(await bareRebind());
  reset.push(await driverReset());
}
if (process.argv[3] === '--baseline-only') {
  await probe.stop();
  console.log(`TIMELINE_RESULT ${JSON.stringify({ driver, dev, bare, reset, shadowd: [] })}`);
  process.exit(0);
}

// shadowd: detection and recovery by the daemon. ROUNDS stays within the
// default policy (3 recoveries per 10 minutes).
const work = mkdtempSync('/tmp/shadowd-timeline-');
const env = shadowdEnv(work);
let log = '';
const started = await startShadowd(work, (t) => (log += t), ['--allow-faults']);
const shadowctl = (...args: string[]) => execa('node', [repoPath('dist/cli/shadowctl.js'), ...args], { env, reject: false, all: true });
interface Recovery {
  id: string;
  result: string;
  startedAt: number;
  phases: Record<string, unknown>;
}
async function shadowdRecovery(): Promise<{ detectionMs: number; serviceMs: number; recovery: Recovery }> {
  await settle(dev);
  await sleep(1000);
  const asked = Date.now();
  const inject = await shadowctl('inject', dev, 'tx-hang');
  if (inject.exitCode !== 0) throw new Error(`shadowctl inject: ${inject.all}\n${log.slice(-3000)}`);
  // Wait for the device to pass packets again without asking shadowd:
  // a shadowctl every 100 ms would load the emulated CPUs the restart runs on.
  const injected = Date.now();
  await firstReply(injected, (r) => r.sent >= injected || r.received - r.sent > HELD_MS);
  await sleep(8000); // the recovery's replay check ends after the service is back
  const h = await shadowctl('history', dev, '--json');
  const rec = h.exitCode === 0 ? (JSON.parse(h.stdout) as { recoveries: Recovery[] }).recoveries.find((r) => r.startedAt >= asked) : undefined;
  if (!rec || rec.result !== 'recovered') throw new Error(`no successful recovery recorded: ${JSON.stringify(rec)} ${h.all}\n${log.slice(-3000)}`);
  // Detection latency is counted from the stall's start, which the detector knows.
  const end = await firstReplyAfter(rec.startedAt);
  return { detectionMs: Number(rec.phases['detect']), serviceMs: end - rec.startedAt, recovery: rec };
}
const shadowd: { detectionMs: number; serviceMs: number; recovery: Recovery }[] = [];
for (let i = 0; i < ROUNDS; i++) shadowd.push(await shadowdRecovery());
started.daemon.kill('SIGTERM');
await started.daemon;
await probe.stop();
console.log(`TIMELINE_RESULT ${JSON.stringify({ driver, dev, shadowdReadyMs: started.readyMs, bare, reset, shadowd })}`);
