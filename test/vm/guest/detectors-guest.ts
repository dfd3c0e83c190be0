// Run in the guest: the failure detectors on the real kernel. Starts the taps
// (bpf/netdev-class.bt through the daemon's Ingest) and the detectors on
// /dev/kmsg and sysfs, then makes the kernel fail in the ways they watch for,
// and prints what they reported as one JSON object:
//   - a WARN in a module before the watch starts (must not be reported);
//   - the kernel log overrun while the watcher cannot read (a flood of
//     user records while the event loop is blocked);
//   - a TX timeout on the e1000 interface (the fault fixture's mode=txstop):
//     reported from the kernel log and from the tracepoint, the latter as the
//     network class handles it (handleTapTimeout): only once the helper's
//     count of the interface's own timeouts grew, which the kernel does
//     before it fires the tracepoint (dev_watchdog() in
//     net/sched/sch_generic.c) and which this run shows;
//   - a WARN in core code called by pcnet32 (ethtool -G, see record-kmsg.sh);
//   - a WARN in a module that drives no network device (logged, not reported).
// usage: node dist/test/vm/guest/detectors-guest.js FAULT_FIXTURE_KO HELPER_KO
import { execFileSync } from 'node:child_process';
import { execa } from 'execa';
import { startDetectors, type Detectors } from '../../../daemon/core/detectors.js';
import type { FailureReport } from '../../../daemon/core/failure-report.js';
import { NET_DECLARATION } from '../../../daemon/classes/net/net-declaration.js';
import { readNetDevices } from '../../../daemon/classes/net/net-sysfs.js';
import { helperTxstat, StallDetector, type TapTimeoutVerdict } from '../../../daemon/classes/net/stall-detector.js';
import { handleTapTimeout } from '../../../daemon/classes/net/tx-timeout.js';
import { openHelper } from '../../../daemon/core/helper-client.js';
import { loadHelperDeps } from './helper-deps.js';
import { Ingest } from '../../../daemon/core/ingest.js';
import type { SelfFault } from '../../../daemon/core/kernel-log-watch.js';
import type { Logger } from '../../../daemon/service/log.js';
import { repoPath } from '../rig/repo-path.js';

const [ko, helperKo] = process.argv.slice(2);
if (!ko || !helperKo) throw new Error('usage: detectors-guest.js FAULT_FIXTURE_KO HELPER_KO');

const mono = (): number => Number(process.hrtime.bigint() / 1000n) / 1000;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
async function waitFor(what: string, ok: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

loadHelperDeps(helperKo);
await execa('insmod', [helperKo]);
await execa('modprobe', ['e1000']);
await execa('modprobe', ['pcnet32']);
const before = await readNetDevices();
/** The devices of this namespace by name, with their drivers: what the class's shadow knows. */
const watchedDrivers = new Map(before.map((d) => [d.name, d.driver]));
const eth = before.find((d) => d.driver === 'e1000')?.name;
const pcnet = before.find((d) => d.driver === 'pcnet32')?.name;
if (!eth || !pcnet) throw new Error(`no e1000 or pcnet32 interface: ${JSON.stringify(before)}`);
await execa('ip', ['link', 'set', eth, 'up']);
await waitFor(`carrier on ${eth}`, () => execFileSync('cat', [`/sys/class/net/${eth}/carrier`]).toString().trim() === '1', 10_000);

// Already in the log when the watch starts: not to be reported.
await execa('insmod', [ko, 'mode=warn']);
await execa('rmmod', ['fault_fixture']);

const logs: { priority: string; message: string }[] = [];
const logger: Logger = { log: (priority, message) => void logs.push({ priority, message }) };
const reports: (FailureReport & { mono: number })[] = [];
const selfFaults: SelfFault[] = [];
const tapTs: number[] = [];
let detectors: Detectors | null = null;
const report = (r: FailureReport): number => reports.push({ ...r, mono: mono() });
// The network class's stall detector over the real helper, polled by hand (once before the
// fault, below) so that the tap's record alone decides, as it does when it comes first.
const helperClient = await openHelper();
const stall = new StallDetector({ txstat: helperTxstat(() => Promise.resolve(helperClient)), devices: () => [eth], onReport: () => undefined, logger });
const verdicts: TapTimeoutVerdict[] = [];
const ingest = new Ingest({
  program: repoPath('bpf', 'netdev-class.bt'),
  marker: NET_DECLARATION.syncMarker,
  logger,
  onEvents: () => undefined,
  onGap: () => undefined,
  // The network class's tap detector, as net-class.ts runs it.
  onEvent: (e) => {
    if (e.call === 'xmit_timeout') tapTs.push(Number(e.tsNs / 1000n) / 1000);
    void handleTapTimeout(e, {
      driverOf: (name) => watchedDrivers.get(name),
      verdict: async (device) => {
        const v = await stall.tapTimeout(device);
        verdicts.push(v);
        return v;
      },
      report,
      logger,
    });
  },
});
const probes = await ingest.start();
const startedAt = Date.now();
detectors = startDetectors({
  logger,
  report,
  onSelfFault: (f) => selfFaults.push(f),
  devices: async () => (await readNetDevices()).map((d) => ({ ...d, cls: 'net' })),
  rules: NET_DECLARATION.kernelLogRules,
  classes: new Map(),
  kernelLog: {},
});

// More than the kernel's 128 KiB log buffer while this process cannot read it.
execFileSync('sh', ['-c', `i=0; while [ $i -lt 2500 ]; do echo "<6>shadowd-flood $i ${'x'.repeat(100)}" > /dev/kmsg; i=$((i + 1)); done`]);
await waitFor('the overrun to be noticed', () => logs.some((l) => l.message.startsWith('the kernel log overran')), 5000);

await stall.pollOnce();
const txstopAt = mono();
await execa('insmod', [ko, 'mode=txstop', `ifname=${eth}`]);
await waitFor('two tx-timeout reports', () => reports.filter((r) => r.kind === 'tx-timeout').length >= 2, 30_000);
await execa('rmmod', ['fault_fixture']);

const ring = (await execa('ethtool', ['-g', pcnet])).stdout.match(/RX:\s+(\d+)/g)?.at(-1)?.match(/\d+/)?.[0];
await execa('ethtool', ['-G', pcnet, 'rx', String(Math.max(4, Number(ring) / 2))]);
await waitFor('a warn report', () => reports.some((r) => r.kind === 'warn'), 10_000);

await execa('insmod', [ko, 'mode=warn']);
await waitFor('the ignored WARN', () => logs.some((l) => l.message.includes('module fault_fixture, which drives no device shadowd watches')), 10_000);
await execa('rmmod', ['fault_fixture']);

const stats = { ...detectors.kernelLog?.stats };
await detectors.stop();
await ingest.stop();
await helperClient.close();
console.log(
  JSON.stringify({
    probes,
    devices: { eth, pcnet },
    startedAt,
    txstopAt,
    tapTs,
    verdicts,
    reports,
    selfFaults,
    stats,
    logs,
  }),
);
