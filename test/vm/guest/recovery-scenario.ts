// The network rows of the paper's evaluation, in the guest, on one NIC: a
// remote copy (a large download from the host's loopback, checksummed), a
// remote window (an interactive TCP session) and a packet sniffer run while a
// fault is injected into the driver mid-transfer.
//   --mode control   no shadowd: the fault is injected through the helper
//                    module and nothing recovers the driver;
//   --mode shadowd   shadowd runs, the fault is injected with shadowctl and
//                    shadowd must detect it and recover the device.
// Prints `SCENARIO_RESULT <json>` for test/vm/classes/net/recovery-apps.test.ts.
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa, type ResultPromise } from 'execa';
import { snapshotDevice } from '../../../daemon/classes/net/netdev-snapshot.js';
import { repoPath } from '../rig/repo-path.js';
import { DRIVER_SETTINGS, helperCommand, interfaceOf, loadHelper, settle, waitForCarrier } from './nic-setup.js';
import { shadowdEnv, startShadowd } from './shadowd-process.js';

const { values } = parseArgs({
  options: {
    driver: { type: 'string' },
    mode: { type: 'string' },
    fault: { type: 'string', default: 'tx-hang' },
    'blob-url': { type: 'string' },
    'echo-port': { type: 'string' },
    'echo-host': { type: 'string', default: '10.0.2.100' },
  },
});
const driver = values.driver ?? '';
const mode = values.mode;
if (!(driver in DRIVER_SETTINGS) || (mode !== 'control' && mode !== 'shadowd') || !values['blob-url'] || !values['echo-port']) {
  console.error('usage: recovery-scenario.js --driver e1000|pcnet32|e100 --mode control|shadowd --blob-url URL --echo-port PORT');
  process.exit(2);
}
const work = mkdtempSync('/tmp/shadowd-scenario-');
const env = shadowdEnv(work);
const t0 = Date.now();
/** The fault is injected once this much of the 24 MB copy arrived. */
const MID_TRANSFER_BYTES = 4 * 1024 * 1024;
const at = (): number => Date.now() - t0;
const note = (text: string): void => console.log(`[${(at() / 1000).toFixed(1)} s] ${text}`);

await execa('modprobe', [driver]);
await loadHelper(true);
const dev = await interfaceOf(driver);
const ifindexBefore = Number(readFileSync(`/sys/class/net/${dev}/ifindex`, 'utf8'));
for (const argv of DRIVER_SETTINGS[driver]!(dev)) await execa(argv[0]!, argv.slice(1));
await waitForCarrier(dev, 15_000);
note(`${driver} ${dev} configured and up`);

let daemonLog = '';
let daemon: ResultPromise | null = null;
if (mode === 'shadowd') {
  const started = await startShadowd(work, (t) => (daemonLog += t), ['--allow-faults']);
  daemon = started.daemon;
  note(`shadowd ready after ${started.readyMs} ms`);
}
await settle(dev);
const before = await snapshotDevice(dev);

// The applications, started before the fault.
const capture = join(work, 'capture.txt');
const sniffer = execa('sh', ['-c', `exec tcpdump -i ${dev} -n -tt -l > ${capture} 2>${capture}.err`], { reject: false });
const window = execa('node', [repoPath('dist/test/vm/guest/remote-window.js'), '--host', values['echo-host'], '--port', values['echo-port'], '--give-up', '25000'], { reject: false });
// Rate-limited so the fault lands mid-transfer; a copy that stalls 20 s fails.
// Rate-limited so the fault lands mid-transfer; a copy that stalls 20 s
// fails. The fault waits for the copy to be under way, not for a clock:
// programs start slowly and unevenly under emulation.
const hash = createHash('sha256');
let copiedBytes = 0;
const copy = execa('curl', ['-sS', '--limit-rate', '2M', '--speed-limit', '1000', '--speed-time', '20', values['blob-url']], { reject: false, buffer: { stdout: false }, encoding: 'buffer' });
copy.stdout?.on('data', (d: Buffer) => {
  hash.update(d);
  copiedBytes += d.length;
});
for (let waited = 0; copiedBytes < MID_TRANSFER_BYTES; waited += 100) {
  if (copy.exitCode !== null || waited > 60_000) throw new Error(`the copy did not get under way: ${copiedBytes} bytes after ${waited} ms`);
  await new Promise((r) => setTimeout(r, 100));
}
const faultAt = Date.now();
note(`injecting ${values.fault} into ${dev}`);
const inject =
  mode === 'shadowd'
    ? (await execa('node', [repoPath('dist/cli/shadowctl.js'), 'inject', dev, values.fault], { reject: false, env, all: true })).all
    : await helperCommand(`inject net:${dev} ${values.fault}`);
note(`inject: ${inject}`);

const copied = await copy;
const copiedSha256 = hash.digest('hex');
note(`copy ended: ${copiedBytes} bytes, exit ${copied.exitCode}, sha256 ${copiedSha256} ${Buffer.from(copied.stderr).toString().trim()}`);
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
  daemon?.kill('SIGTERM');
  await daemon;
}
const txstat = await helperCommand(`txstat net:${dev}`);
console.log(
  `SCENARIO_RESULT ${JSON.stringify({
    driver,
    dev,
    mode,
    fault: values.fault,
    ifindexBefore,
    ifindexAfter: Number(readFileSync(`/sys/class/net/${dev}/ifindex`, 'utf8')),
    copy: { exitCode: copied.exitCode, bytes: copiedBytes, sha256: copiedSha256, stderr: Buffer.from(copied.stderr).toString().trim(), ms: Date.now() - faultAt },
    window: windowResult.stdout.trim() ? (JSON.parse(windowResult.stdout.trim().split('\n').at(-1)!) as unknown) : { error: windowResult.stderr },
    sniffer: { aliveAfter: snifferAlive, capturedAfterFault: capturedAfter },
    txstat,
    before: before.keys,
    after: after?.keys ?? null,
    history,
    daemonLog: mode === 'shadowd' ? daemonLog.split('\n').slice(-60).join('\n') : '',
  })}`,
);
