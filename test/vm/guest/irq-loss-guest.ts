// Run in the guest: the lost interrupt detector (daemon/core/irq-loss-detector.ts)
// on the real kernel's sysfs, over an e1000 and a pcnet32 (both INTx), with
// the helper's lost-irq fault (the function's INTx masked in its PCI command
// register, the device still raising it). Prints one JSON object:
//   - quiet: 8 s of flood pings on both NICs and an MTU change (a driver
//     reset) with no fault: every report here is a false alarm;
//   - e1000: lost-irq, then an MTU change (the fault campaign's case: the
//     driver resets with its interrupts gone, never sees its link come back,
//     has no carrier and nothing queued: the network class's detectors see
//     nothing), with pings going on;
//   - pcnet32: lost-irq under pings (a NIC that mostly receives);
// each with the time from the fault to the report.
// usage: node dist/test/vm/guest/irq-loss-guest.js
import { execa } from 'execa';
import { readNetDevices } from '../../../daemon/classes/net/net-sysfs.js';
import type { FailureReport } from '../../../daemon/core/failure-report.js';
import { IrqLossDetector, type IrqDevice } from '../../../daemon/core/irq-loss-detector.js';
import { pciFunctionOf, readInterruptSample } from '../../../daemon/core/pci-interrupt.js';
import type { Logger } from '../../../daemon/service/log.js';
import { nicSubnet } from '../rig/devices.js';
import { helperCommand, interfaceOf, loadHelper, waitForCarrier } from './nic-setup.js';

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const step = (what: string): void => console.error(`[irq-loss] ${what}`);

await loadHelper(true);
await execa('modprobe', ['e1000']);
await execa('modprobe', ['pcnet32']);
const e1000 = await interfaceOf('e1000');
const pcnet = await interfaceOf('pcnet32');
const nets = [
  { dev: e1000, subnet: nicSubnet(0) },
  { dev: pcnet, subnet: nicSubnet(1) },
];
for (const { dev, subnet } of nets) {
  await execa('ip', ['link', 'set', dev, 'up']);
  await execa('ip', ['addr', 'add', `${subnet.prefix}.15/24`, 'dev', dev]);
  await waitForCarrier(dev, 15_000);
}
const devices: IrqDevice[] = (await readNetDevices()).filter((d) => d.name === e1000 || d.name === pcnet).map((d) => ({ cls: 'net', name: d.name, driver: d.driver, bus: d.bus ?? '' }));
const lines: Record<string, unknown> = {};
const shared: Record<string, boolean> = {};
for (const d of devices) {
  const fn = await pciFunctionOf(d.bus);
  const sample = fn ? await readInterruptSample(fn) : null;
  lines[d.name] = { fn, sample };
  shared[d.name] = (sample?.actions.length ?? 0) > 1;
}
step(`devices ${JSON.stringify(lines, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);

const reports: (FailureReport & { phase: string })[] = [];
const logs: string[] = [];
let phase = 'quiet';
const logger: Logger = { log: (p, m) => void logs.push(`${p} ${m}`) };
const det = new IrqLossDetector({
  devices: () => devices,
  held: () => false,
  functionOf: (bus) => pciFunctionOf(bus),
  sample: (fn) => readInterruptSample(fn),
  onReport: (f) => {
    reports.push({ ...f, phase });
    step(`report ${f.device}: ${f.detail}`);
  },
  logger,
});
det.start();

const ping = (dev: string, gw: string, args: string[]) => execa('ping', ['-q', '-I', dev, ...args, gw], { reject: false });
async function waitReport(dev: string, ms: number): Promise<FailureReport | null> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) {
    const r = reports.find((x) => x.device === dev && x.phase === phase);
    if (r) return r;
  }
  return null;
}

step('quiet: flood pings on both NICs, an MTU change, no fault');
const floods = nets.map(({ dev, subnet }) => ping(dev, subnet.gateway, ['-f', '-w', '8']));
await sleep(3000);
await execa('ip', ['link', 'set', e1000, 'mtu', '1400']);
await waitForCarrier(e1000, 15_000);
const floodResults = await Promise.all(floods);
await sleep(1500);

phase = 'e1000';
step('e1000: lost-irq, then an MTU change');
const e1000Ping = ping(e1000, nets[0]!.subnet.gateway, ['-i', '0.2', '-w', '15']);
await sleep(1000);
const e1000Inject = await helperCommand(`inject net:${e1000} lost-irq`);
const e1000At = Date.now();
await execa('ip', ['link', 'set', e1000, 'mtu', '1300']);
const e1000Report = await waitReport(e1000, 12_000);
const e1000Carrier = (await execa('cat', [`/sys/class/net/${e1000}/carrier`], { reject: false })).stdout.trim();
const e1000Clear = await helperCommand(`inject net:${e1000} clear`);
await e1000Ping;
// The driver's link comes back with its interrupts: one more reset raises the link change again.
await execa('ip', ['link', 'set', e1000, 'mtu', '1500']);
await waitForCarrier(e1000, 15_000);

phase = 'pcnet32';
step('pcnet32: lost-irq under pings');
const pcnetPing = ping(pcnet, nets[1]!.subnet.gateway, ['-i', '0.2', '-w', '15']);
await sleep(1000);
const pcnetInject = await helperCommand(`inject net:${pcnet} lost-irq`);
const pcnetAt = Date.now();
const pcnetReport = await waitReport(pcnet, 12_000);
const pcnetClear = await helperCommand(`inject net:${pcnet} clear`);
await pcnetPing;
await sleep(1500);
await det.stop();

console.log(
  JSON.stringify({
    devices: { e1000, pcnet },
    shared,
    quiet: { floods: floodResults.map((r) => r.stdout.split('\n').filter((l) => l.includes('packets')).join(' ')) },
    e1000: { inject: e1000Inject, clear: e1000Clear, carrierAfterReset: e1000Carrier, latencyMs: e1000Report ? e1000Report.detectedAt - e1000At : null },
    pcnet: { inject: pcnetInject, clear: pcnetClear, latencyMs: pcnetReport ? pcnetReport.detectedAt - pcnetAt : null },
    reports,
    logs,
  }),
);
