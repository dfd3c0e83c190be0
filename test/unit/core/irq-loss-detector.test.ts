// The lost interrupt detector's judgement, on samples a test gives it and a
// clock it moves: what is a lost interrupt (pending, nothing handled, for
// the threshold, on a device that worked), and each case that is not.
import { describe, expect, it } from 'vitest';
import type { FailureReport } from '../../../daemon/core/failure-report.js';
import { IrqLossDetector, LOST_IRQ_KIND, type IrqDevice } from '../../../daemon/core/irq-loss-detector.js';
import type { InterruptSample } from '../../../daemon/core/pci-interrupt.js';

/** The wall clock's reading at monotonic 0. */
const WALL = 1_700_000_000_000;

function rig(devices: IrqDevice[]) {
  let now = 0;
  const samples = new Map<string, InterruptSample | null>();
  const held = new Set<string>();
  const reports: FailureReport[] = [];
  const logs: string[] = [];
  const det = new IrqLossDetector({
    devices: () => devices,
    held: (cls, name) => held.has(`${cls}:${name}`),
    functionOf: (bus) => Promise.resolve(bus.startsWith('0000:') ? `/sys/devices/pci0000:00/${bus}` : null),
    sample: (fn) => Promise.resolve(samples.get(fn.slice(fn.lastIndexOf('/') + 1)) ?? null),
    onReport: (f) => void reports.push(f),
    logger: { log: (_p, m) => void logs.push(m) },
    thresholdMs: 1000,
    now: () => now,
    wallNow: () => WALL + now,
  });
  /** One round at time t with the function's sample. */
  const at = async (t: number, bus: string, pending: boolean, count: number, actions = ['eth0']) => {
    now = t;
    samples.set(bus, { irq: 11, pending, count: BigInt(count), actions });
    await det.round();
  };
  return { det, samples, held, reports, logs, at, setNow: (t: number) => (now = t) };
}

const nic: IrqDevice = { cls: 'net', name: 'eth0', driver: 'e1000', bus: '0000:00:03.0' };

describe('lost interrupt detector', () => {
  it('reports a device that worked, then asserts its interrupt with none handled for the threshold, once', async () => {
    const r = rig([nic]);
    await r.at(0, nic.bus, false, 100);
    await r.at(250, nic.bus, true, 140); // handled: it works
    for (let t = 500; t <= 1250; t += 250) await r.at(t, nic.bus, true, 140); // pending, nothing handled since 500
    expect(r.reports).toEqual([]);
    await r.at(1500, nic.bus, true, 140);
    expect(r.reports).toHaveLength(1);
    expect(r.reports[0]).toMatchObject({ cls: 'net', device: 'eth0', kind: LOST_IRQ_KIND, driver: 'e1000', since: WALL + 500, detectedAt: WALL + 1500 });
    expect(r.reports[0]!.detail).toMatch(/0000:00:03\.0 has asserted its interrupt \(IRQ 11\) for 1000 ms and none was handled/);
    await r.at(1750, nic.bus, true, 140);
    expect(r.reports).toHaveLength(1);
    // Handled again, then lost again: a new report.
    await r.at(2000, nic.bus, false, 141);
    for (let t = 2250; t <= 3250; t += 250) await r.at(t, nic.bus, true, 141);
    expect(r.reports).toHaveLength(2);
  });

  it('wants four samples in a row, not only the time: two samples far apart (a suspend, a stalled daemon) are no stall', async () => {
    const r = rig([nic]);
    await r.at(0, nic.bus, false, 1);
    await r.at(250, nic.bus, true, 2);
    await r.at(500, nic.bus, true, 2);
    await r.at(60_000, nic.bus, true, 2);
    await r.at(60_250, nic.bus, true, 2);
    expect(r.reports).toEqual([]);
    await r.at(60_500, nic.bus, true, 2);
    expect(r.reports).toHaveLength(1);
  });

  it('judges a shared line (another driver may hold it disabled for a while) only after three times the threshold, and not a device whose status was never seen clear', async () => {
    const shared = ['eth0', 'snd_ens1370'];
    const r = rig([nic]);
    await r.at(0, nic.bus, false, 1, shared);
    await r.at(250, nic.bus, true, 2, shared);
    for (let t = 500; t <= 3250; t += 250) await r.at(t, nic.bus, true, 2, shared);
    expect(r.reports).toEqual([]);
    await r.at(3500, nic.bus, true, 2, shared);
    expect(r.reports.map((f) => f.detail)).toEqual([expect.stringMatching(/\(IRQ 11, shared with 1 other handler\(s\)\) for 3000 ms/) as string]);
    const s = rig([nic]);
    await s.at(0, nic.bus, true, 1);
    await s.at(250, nic.bus, true, 2);
    for (let t = 500; t <= 5000; t += 250) await s.at(t, nic.bus, true, 2);
    expect(s.reports).toEqual([]);
  });

  it('reports nothing when a recovery of the device began while the round read the function', async () => {
    const r = rig([nic]);
    await r.at(0, nic.bus, false, 1);
    await r.at(250, nic.bus, true, 2);
    for (let t = 500; t <= 1250; t += 250) await r.at(t, nic.bus, true, 2);
    r.samples.set(nic.bus, { irq: 11, pending: true, count: 2n, actions: ['eth0'] });
    r.setNow(1500);
    const sample = r.samples.get(nic.bus)!;
    // The recovery takes the device between the round's held check and its report.
    r.det['deps'].sample = () => {
      r.held.add('net:eth0');
      return Promise.resolve(sample);
    };
    await r.det.round();
    expect(r.reports).toEqual([]);
  });

  it('does not report a busy device whose interrupts are pending at every sample but handled between them', async () => {
    const r = rig([nic]);
    for (let t = 0, n = 0; t <= 5000; t += 250, n += 37) await r.at(t, nic.bus, true, n);
    expect(r.reports).toEqual([]);
  });

  it('does not report a device never seen handling an interrupt, nor a line with no handler', async () => {
    const r = rig([nic]);
    for (let t = 0; t <= 5000; t += 250) await r.at(t, nic.bus, true, 7);
    expect(r.reports).toEqual([]);
    const p = rig([nic]);
    await p.at(0, nic.bus, false, 1);
    await p.at(250, nic.bus, false, 2, []);
    for (let t = 500; t <= 5000; t += 250) await p.at(t, nic.bus, true, 2, []);
    expect(p.reports).toEqual([]);
  });

  it('leaves a held device alone and judges it afresh once released: it must work again before it can fail', async () => {
    const r = rig([nic]);
    await r.at(0, nic.bus, false, 1);
    await r.at(250, nic.bus, true, 2);
    r.held.add('net:eth0');
    for (let t = 500; t <= 3000; t += 250) await r.at(t, nic.bus, true, 2);
    expect(r.reports).toEqual([]);
    r.held.clear();
    for (let t = 3250; t <= 6000; t += 250) await r.at(t, nic.bus, true, 2);
    expect(r.reports).toEqual([]);
  });

  it('reports once per class for the devices of one function (a controller with two disks), naming the first', async () => {
    const disks: IrqDevice[] = [
      { cls: 'block', name: 'sda', driver: 'ata_piix', bus: '0000:00:01.1' },
      { cls: 'block', name: 'sdb', driver: 'ata_piix', bus: '0000:00:01.1' },
    ];
    const r = rig(disks);
    await r.at(0, '0000:00:01.1', false, 1);
    await r.at(250, '0000:00:01.1', true, 5);
    for (let t = 500; t <= 1500; t += 250) await r.at(t, '0000:00:01.1', true, 5);
    expect(r.reports.map((f) => f.device)).toEqual(['sda']);
  });

  it('does not watch a unit off PCI or a function with no interrupt to watch (MSI)', async () => {
    const r = rig([{ cls: 'sound', name: 'card0', driver: 'snd_dummy', bus: 'snd_dummy.0' }, nic]);
    r.samples.set(nic.bus, null);
    await r.det.round();
    r.setNow(5000);
    await r.det.round();
    expect(r.reports).toEqual([]);
  });

  it("judges each function by its device's own threshold, and not at all at 0 (LostIrqMs=0)", async () => {
    const thresholds: Record<string, number> = { eth0: 0 };
    let now = 0;
    const sample = { irq: 11, pending: false, count: 1n, actions: ['eth0'] };
    const reports: FailureReport[] = [];
    const det = new IrqLossDetector({
      devices: () => [nic],
      held: () => false,
      functionOf: (bus) => Promise.resolve(`/sys/devices/pci0000:00/${bus}`),
      sample: () => Promise.resolve({ ...sample }),
      onReport: (f) => void reports.push(f),
      logger: { log: () => undefined },
      thresholdMs: (d) => thresholds[d.name] ?? 1000,
      now: () => now,
      wallNow: () => now,
    });
    // Learnt, seen working, then pending with nothing handled for 4.5 s.
    const run = async (from: number) => {
      sample.pending = false;
      now = from;
      await det.round();
      sample.count += 1n;
      now = from + 250;
      await det.round();
      sample.pending = true;
      for (now = from + 500; now <= from + 5000; now += 250) await det.round();
    };
    await run(0);
    expect(reports).toEqual([]);
    thresholds['eth0'] = 3000;
    await run(10_000);
    expect(reports.map((f) => f.detectedAt)).toEqual([13_500]);
  });

  it('takes a changed IRQ line (a driver bound again) as a new function to learn', async () => {
    const r = rig([nic]);
    await r.at(0, nic.bus, false, 1);
    await r.at(250, nic.bus, true, 9);
    r.samples.set(nic.bus, { irq: 10, pending: true, count: 500n, actions: ['eth0'] });
    r.setNow(500);
    await r.det.round();
    for (let t = 750; t <= 3000; t += 250) await r.at(t, nic.bus, true, 500); // irq 11 again: learnt afresh
    expect(r.reports).toEqual([]);
  });
});
