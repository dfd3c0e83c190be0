// The network rows of the paper's evaluation, in the guest: a remote copy (a
// large download from the host's loopback, checksummed), a remote window (an
// interactive TCP session) and a packet sniffer run on each NIC while a fault
// is injected into its driver mid-transfer.
//   --mode control   no shadowd: the fault is injected through the helper
//                    module and nothing recovers the driver;
//   --mode shadowd   shadowd runs, the fault is injected with shadowctl and
//                    shadowd must detect it and recover the device.
// Several NICs share one guest (one boot, and in shadowd mode one start of
// the daemon, whose taps take most of a minute to attach under TCG): NIC i
// of the guest is on its own user network, nicSubnet(i) (the rig's
// nicSubnets), so each is configured with addresses and routes of its own,
// all before shadowd starts, as an administrator would. Each NIC's
// applications run against that NIC's forwards. With --parallel (the
// control) the NICs' runs go at once: nothing recovers them, and each run
// is mostly waiting for the copy to give up; without it (shadowd) one after
// another, so that each recovery is timed on an otherwise quiet guest.
// Prints one `SCENARIO_RESULT <json>` line per NIC (with `error` if its run threw) for
// test/vm/classes/net/recovery-apps.test.ts.
//   usage: recovery-scenario.js --mode control|shadowd [--parallel] --blob-port P --echo-port P --nic DRIVER:FAULT...
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa, type ResultPromise } from 'execa';
import { snapshotDevice } from '../../../daemon/classes/net/netdev-snapshot.js';
import { nicSubnet, type NicSubnet } from '../rig/devices.js';
import { repoPath } from '../rig/repo-path.js';
import { DRIVER_SETTINGS, helperCommand, interfaceOf, loadHelper, settle, waitForCarrier } from './nic-setup.js';
import { shadowdEnv, startShadowd } from './shadowd-process.js';

const { values } = parseArgs({
  options: {
    mode: { type: 'string' },
    parallel: { type: 'boolean', default: false },
    nic: { type: 'string', multiple: true, default: [] },
    'blob-port': { type: 'string' },
    'echo-port': { type: 'string' },
  },
});
const mode = values.mode;
const nics = values.nic.map((n) => {
  const [driver = '', fault = ''] = n.split(':');
  return { driver, fault };
});
if (
  nics.length === 0 ||
  nics.some((n) => !(n.driver in DRIVER_SETTINGS) || !n.fault) ||
  new Set(nics.map((n) => n.driver)).size !== nics.length ||
  (mode !== 'control' && mode !== 'shadowd') ||
  !values['blob-port'] ||
  !values['echo-port']
) {
  console.error('usage: recovery-scenario.js --mode control|shadowd [--parallel] --blob-port P --echo-port P --nic DRIVER:FAULT... (drivers of nic-setup.ts DRIVER_SETTINGS, each once, in the order of the guest\'s NICs)');
  process.exit(2);
}
const work = mkdtempSync('/tmp/shadowd-scenario-');
const env = shadowdEnv(work);
const t0 = Date.now();
/** The fault is injected once this much of the 24 MB copy arrived. */
const MID_TRANSFER_BYTES = 4 * 1024 * 1024;
const at = (): number => Date.now() - t0;
const note = (text: string): void => console.log(`[${(at() / 1000).toFixed(1)} s] ${text}`);
/** Helper commands one at a time, whichever NIC's run sends them. */
let helperQueue: Promise<unknown> = Promise.resolve();
const helper = (command: string): Promise<string> => {
  const reply = helperQueue.then(() => helperCommand(command));
  helperQueue = reply.catch(() => undefined);
  return reply;
};

for (const { driver } of nics) await execa('modprobe', [driver]);
await loadHelper(true);
const devices: { driver: string; fault: string; dev: string; subnet: NicSubnet; ifindexBefore: number }[] = [];
for (const [i, { driver, fault }] of nics.entries()) {
  const dev = await interfaceOf(driver);
  const subnet = nicSubnet(i);
  const ifindexBefore = Number(readFileSync(`/sys/class/net/${dev}/ifindex`, 'utf8'));
  for (const argv of DRIVER_SETTINGS[driver]!(dev, subnet)) await execa(argv[0]!, argv.slice(1));
  devices.push({ driver, fault, dev, subnet, ifindexBefore });
}
for (const { driver, dev } of devices) {
  await waitForCarrier(dev, 15_000);
  note(`${driver} ${dev} configured and up`);
}

let daemonLog = '';
let daemon: ResultPromise | null = null;
if (mode === 'shadowd') {
  // The class's own detectors are what this scenario proves: the core's lost interrupt detector (slower, and proven by
  // test/vm/core/irq-loss.test.ts) is off, so a lost-irq fault is the TX stall detector's to see.
  const config = join(work, 'shadowd.conf');
  writeFileSync(config, '[Class net]\nLostIrqMs=0\n');
  const started = await startShadowd(work, (t) => (daemonLog += t), ['--allow-faults', '--config', config]);
  daemon = started.daemon;
  note(`shadowd ready after ${started.readyMs} ms`);
}

/** One NIC's run: the applications, the fault mid-copy, what became of them; prints its SCENARIO_RESULT. */
async function scenario({ driver, fault, dev, subnet, ifindexBefore }: (typeof devices)[number]): Promise<void> {
  await settle(dev);
  const before = await snapshotDevice(dev);

  // The applications, started before the fault.
  const capture = join(work, `capture-${dev}.txt`);
  const sniffer = execa('sh', ['-c', `exec tcpdump -i ${dev} -n -tt -l > ${capture} 2>${capture}.err`], { reject: false });
  const window = execa('node', [repoPath('dist/test/vm/guest/remote-window.js'), '--host', subnet.forwardAddr, '--port', values['echo-port']!, '--give-up', '25000'], { reject: false });
  // Rate-limited so the fault lands mid-transfer; a copy that stalls 20 s
  // fails. The fault waits for the copy to be under way, not for a clock:
  // programs start slowly and unevenly under emulation.
  const hash = createHash('sha256');
  let copiedBytes = 0;
  const copyStart = Date.now();
  const copy = execa('curl', ['-sS', '--limit-rate', '2M', '--speed-limit', '1000', '--speed-time', '20', `http://${subnet.forwardAddr}:${values['blob-port']}/blob`], {
    reject: false,
    buffer: { stdout: false },
    encoding: 'buffer',
  });
  copy.stdout?.on('data', (d: Buffer) => {
    hash.update(d);
    copiedBytes += d.length;
  });
  for (let waited = 0; copiedBytes < MID_TRANSFER_BYTES; waited += 100) {
    if (copy.exitCode !== null || waited > 60_000) throw new Error(`${dev}: the copy did not get under way: ${copiedBytes} bytes after ${waited} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const faultAt = Date.now();
  const bytesAtFault = copiedBytes;
  // The copy's progress after the fault, every 5 s: a slow device is told
  // from a recovery that left it slower than before (rate before the fault).
  const progress: [number, number][] = [];
  const tick = setInterval(() => progress.push([Date.now() - faultAt, copiedBytes]), 5000);
  note(`injecting ${fault} into ${driver} ${dev}`);
  const inject =
    mode === 'shadowd'
      ? (await execa('node', [repoPath('dist/cli/shadowctl.js'), 'inject', dev, fault], { reject: false, env, all: true })).all
      : await helper(`inject net:${dev} ${fault}`);
  note(`${dev} inject: ${inject}`);

  const copied = await copy;
  clearInterval(tick);
  const copiedSha256 = hash.digest('hex');
  note(`${dev} copy ended: ${copiedBytes} bytes, exit ${copied.exitCode}, sha256 ${copiedSha256} ${Buffer.from(copied.stderr).toString().trim()}`);
  await new Promise((r) => setTimeout(r, 2000));
  window.kill('SIGTERM');
  const windowResult = await window;
  await waitForCarrier(dev, 10_000).catch(() => undefined);
  const snifferAlive = sniffer.exitCode === null;
  // Packets captured after the fault show that the sniffer still sees the device.
  const capturedAfter = readFileSync(capture, 'utf8')
    .split('\n')
    .filter((l) => Number(l.split(' ')[0]) * 1000 > faultAt).length;
  sniffer.kill('SIGTERM');
  await sniffer;

  let history: unknown = null;
  let after = null;
  if (mode === 'shadowd') {
    await settle(dev);
    after = await snapshotDevice(dev);
    const h = await execa('node', [repoPath('dist/cli/shadowctl.js'), 'history', dev, '--json'], { reject: false, env });
    history = h.exitCode === 0 ? (JSON.parse(h.stdout) as unknown) : h.stderr;
  }
  const txstat = await helper(`txstat net:${dev}`);
  note(`${driver} ${dev} done`);
  console.log(
    `SCENARIO_RESULT ${JSON.stringify({
      driver,
      dev,
      mode,
      fault,
      ifindexBefore,
      ifindexAfter: Number(readFileSync(`/sys/class/net/${dev}/ifindex`, 'utf8')),
      copy: { exitCode: copied.exitCode, bytes: copiedBytes, sha256: copiedSha256, stderr: Buffer.from(copied.stderr).toString().trim(), ms: Date.now() - faultAt, bytesAtFault, msToFault: faultAt - copyStart, progress },
      window: windowResult.stdout.trim() ? (JSON.parse(windowResult.stdout.trim().split('\n').at(-1)!) as unknown) : { error: windowResult.stderr },
      sniffer: { aliveAfter: snifferAlive, capturedAfterFault: capturedAfter },
      txstat,
      before: before.keys,
      after: after?.keys ?? null,
      history,
      daemonLog: mode === 'shadowd' ? daemonLog.split('\n').slice(-60).join('\n') : '',
    })}`,
  );
}

/** A NIC whose run throws reports the error as its result: the other NICs' runs go on, and their tests stand on their own. */
async function scenarioOrError(d: (typeof devices)[number]): Promise<void> {
  try {
    await scenario(d);
  } catch (err) {
    note(`${d.driver} ${d.dev} failed: ${String(err)}`);
    console.log(`SCENARIO_RESULT ${JSON.stringify({ driver: d.driver, dev: d.dev, error: err instanceof Error ? (err.stack ?? err.message) : String(err), daemonLog: daemonLog.split('\n').slice(-60).join('\n') })}`);
  }
}
if (values.parallel) await Promise.all(devices.map(scenarioOrError));
else for (const d of devices) await scenarioOrError(d);
if (daemon) {
  daemon.kill('SIGTERM');
  await daemon;
}
// A run that threw may have left its applications running.
process.exit(0);
