// The kernel log detector: who a recorded kernel report is blamed on, the
// device list of every class, and the watcher's handling of the
// record stream (a scripted stand-in for /dev/kmsg; the real one is read in
// the guest by test/vm/kernel-log-watch.test.ts).
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FailureReport } from '../../../daemon/core/failure-report.js';
import { NET_DECLARATION } from '../../../daemon/classes/net/net-declaration.js';
import { parseKernelFaults, splitKmsgText, type KernelLogRule } from '../../../daemon/core/kernel-faults.js';
import { attributeFault, KernelLogWatch, KMSG_OVERRUN, type ClassDevice, type KmsgSource, type SelfFault } from '../../../daemon/core/kernel-log-watch.js';
import type { LogFields, Priority } from '../../../daemon/service/log.js';

const fixture = (name: string): string[] => splitKmsgText(readFileSync(new URL(`../../fixtures/kmsg/${name}.kmsg`, import.meta.url), 'utf8'));
const RULES = NET_DECLARATION.kernelLogRules;
const fault = (name: string) => parseKernelFaults(fixture(name), RULES)[0]!;

// As in the recording guest: e1000 and pcnet32, plus a device without a driver.
const DEVICES: ClassDevice[] = [
  { cls: 'net', name: 'eth0', driver: 'e1000', module: 'e1000' },
  { cls: 'net', name: 'eth1', driver: 'pcnet32', module: 'pcnet32' },
  { cls: 'net', name: 'lo', driver: null, module: null },
];
const BOOT = 1_700_000_000_000;
/** The records renumbered from `first` on, as if the kernel had logged them then. */
const renumber = (records: string[], first: number): string[] => records.map((r, i) => r.replace(/^(\d+),\d+,/, `$1,${first + i},`));
const seqOf = (record: string): number => Number(record.split(',')[1]);

describe('attributing a kernel report', () => {
  const opts = { detectedAt: BOOT + 70_000, bootWallMs: BOOT };

  it('a TX watchdog report goes to the device it names, dated from when the queue stopped', () => {
    expect(attributeFault(fault('tx-timeout'), DEVICES, opts)).toEqual({
      kind: 'reports',
      reports: [
        {
          cls: 'net',
          device: 'eth0',
          kind: 'tx-timeout',
          driver: 'e1000',
          detail: 'NETDEV WATCHDOG: eth0 (e1000): transmit queue 0 timed out 8244 ms',
          detectedAt: BOOT + 70_000,
          since: Math.round(BOOT + 52927.966 - 8244),
        },
      ],
    });
  });

  it('a report blamed on a module goes to every device that module drives', () => {
    const out = attributeFault(fault('ring-warn'), DEVICES, opts);
    expect(out).toMatchObject({ kind: 'reports', reports: [{ device: 'eth1', kind: 'warn', driver: 'pcnet32', since: Math.round(BOOT + 59119.185) }] });
    const two = [...DEVICES, { cls: 'net', name: 'eth2', driver: 'pcnet32', module: 'pcnet32' }];
    expect(attributeFault(fault('ring-warn'), two, opts)).toMatchObject({ kind: 'reports', reports: [{ device: 'eth1' }, { device: 'eth2' }] });
  });

  it('matches the module, not the driver name, when they differ', () => {
    const devs = [{ cls: 'net', name: 'enp1s0', driver: 'e1000e-pci', module: 'pcnet32' }];
    expect(attributeFault(fault('ring-warn'), devs, opts)).toMatchObject({ kind: 'reports', reports: [{ device: 'enp1s0', driver: 'pcnet32' }] });
  });

  it('a watchdog report for a device not (or no longer) listed keeps the kernel\'s driver name', () => {
    expect(attributeFault(fault('tx-timeout'), [], opts)).toMatchObject({ kind: 'reports', reports: [{ device: 'eth0', driver: 'e1000' }] });
  });

  it("leaves alone a watchdog report about another namespace's device of the same name: the bus it names is not ours", () => {
    const atBus = (bus: string): ClassDevice[] => DEVICES.map((d) => (d.name === 'eth0' ? { ...d, bus } : d));
    // The kernel names eth0 at 0000:00:04.0: ours is there.
    expect(attributeFault(fault('tx-timeout'), atBus('0000:00:04.0'), opts)).toMatchObject({ kind: 'reports', reports: [{ device: 'eth0' }] });
    // A container's eth0 is another NIC (moved into its namespace) or a virtual device with no bus at all.
    expect(attributeFault(fault('tx-timeout'), atBus('0000:00:09.0'), opts)).toEqual({
      kind: 'ignored',
      why: "kernel tx-timeout report names eth0 at 0000:00:04.0, but the eth0 shadowd watches is at 0000:00:09.0: another namespace's device of that name",
    });
    const veth = parseKernelFaults(['2,1,5,-;eth0: NETDEV WATCHDOG: CPU: 1: transmit queue 0 timed out 5004 ms'], RULES)[0]!;
    expect(attributeFault(veth, atBus('0000:00:04.0'), opts)).toMatchObject({ kind: 'ignored', why: expect.stringContaining('names eth0 with no bus device') as unknown });
    // A class that does not say where its devices are keeps the name's word.
    expect(attributeFault(veth, DEVICES, opts)).toMatchObject({ kind: 'reports', reports: [{ device: 'eth0' }] });
  });

  it("blames a module on the devices of every class it drives, each named with its class", () => {
    const mixed: ClassDevice[] = [...DEVICES, { cls: 'sound', name: 'card0', driver: 'pcnet32', module: 'pcnet32' }];
    expect(attributeFault(fault('ring-warn'), mixed, opts)).toMatchObject({
      kind: 'reports',
      reports: [
        { cls: 'net', device: 'eth1' },
        { cls: 'sound', device: 'card0' },
      ],
    });
    // A class rule's report names its own class's device, not another class's of the same name.
    const clash: ClassDevice[] = [{ cls: 'sound', name: 'eth0', driver: 'snd_x', module: 'snd_x' }];
    expect(attributeFault(fault('tx-timeout'), clash, opts)).toMatchObject({ kind: 'reports', reports: [{ cls: 'net', device: 'eth0', driver: 'e1000' }] });
  });

  it('leaves alone a report in a module that drives no network device, and core-only reports', () => {
    expect(attributeFault(fault('warn'), DEVICES, opts)).toEqual({
      kind: 'ignored',
      why: 'kernel warn in module fault_fixture, which drives no device shadowd watches',
    });
    expect(attributeFault({ ...fault('ring-warn'), module: null }, DEVICES, opts)).toMatchObject({ kind: 'ignored', why: expect.stringMatching(/core kernel code/) as string });
  });

  it("a class rule's report that names no device it could resolve is logged, never recovered", () => {
    const rules: KernelLogRule[] = [{ cls: 'fake', kind: 'gave-up', line: (t) => (t.startsWith('port7: ') ? { device: null, driverName: null, startedMsBefore: 0, detail: `port7 (no device on it now): ${t}` } : null) }];
    const [f] = parseKernelFaults(['4,10,5000000,-;port7: gave up'], rules);
    expect(f).toMatchObject({ cls: 'fake', kind: 'gave-up', device: null });
    expect(attributeFault(f!, [...DEVICES, { cls: 'fake', name: 'f0', driver: 'fk', module: 'fk' }], opts)).toEqual({
      kind: 'ignored',
      why: 'kernel gave-up report (fake class) names no fake device that exists now',
    });
  });

  it('a report blamed on our own module is a self fault, never a device failure', () => {
    const out = attributeFault(fault('oops'), DEVICES, { ...opts, selfModule: 'fault_fixture' });
    expect(out.kind).toBe('self');
    const self = (out as { fault: SelfFault }).fault;
    expect(self).toMatchObject({ kind: 'oops', driver: 'fault_fixture', detectedAt: BOOT + 70_000 });
    expect(self.lines).toContain('Oops: 0000 [#1] PREEMPT SMP NOPTI');
  });
});

/** Stands in for /dev/kmsg: hands out queued records one read at a time. */
class ScriptedKmsg implements KmsgSource {
  queue: (string | typeof KMSG_OVERRUN | Error)[] = [];
  closed = false;
  read(): string | typeof KMSG_OVERRUN | null {
    const next = this.queue.shift();
    if (next instanceof Error) throw next;
    return next ?? null;
  }
  close(): void {
    this.closed = true;
  }
}


describe('the kernel log watch', () => {
  let kmsg: ScriptedKmsg;
  let reports: FailureReport[];
  let selfFaults: SelfFault[];
  let logs: { priority: Priority; message: string; fields?: LogFields }[];
  let clock: number;
  let watch: KernelLogWatch;

  beforeEach(() => {
    vi.useFakeTimers();
    kmsg = new ScriptedKmsg();
    reports = [];
    selfFaults = [];
    logs = [];
    clock = BOOT + 100_000;
  });
  afterEach(() => {
    watch?.stop();
    vi.useRealTimers();
  });

  function startWatch(extra: { selfModule?: string; repeatMs?: number } = {}): void {
    watch = new KernelLogWatch({
      logger: { log: (priority, message, fields) => void logs.push({ priority, message, fields }) },
      onReport: (r) => reports.push(r),
      onSelfFault: (f) => selfFaults.push(f),
      source: () => kmsg,
      devices: () => Promise.resolve(DEVICES),
      rules: RULES,
      now: () => clock,
      monotonicMs: () => clock,
      pollMs: 100,
      settleMs: 500,
      ...extra,
    });
    watch.start();
  }

  async function tick(ms = 100): Promise<void> {
    clock += ms;
    vi.advanceTimersByTime(ms);
    await watch.settled();
  }

  it('skips what the log held before it started, then reports what comes', async () => {
    kmsg.queue.push(...fixture('ring-warn'), ...fixture('tx-timeout'));
    startWatch();
    await tick();
    expect(reports).toEqual([]);
    expect(logs[0]?.message).toBe(`watching the kernel log (skipped the ${fixture('ring-warn').length + 4} records already in it)`);

    // The device list and the kernel time of the records: eth0's queue stopped 8244 ms before the
    // watchdog line, which was the last record read, at `clock`.
    kmsg.queue.push(...renumber(fixture('tx-timeout'), seqOf(fixture('tx-timeout').at(-1)!) + 1).slice(0, 2));
    await tick();
    expect(reports).toEqual([
      {
        cls: 'net',
        device: 'eth0',
        kind: 'tx-timeout',
        driver: 'e1000',
        detail: 'NETDEV WATCHDOG: eth0 (e1000): transmit queue 0 timed out 8244 ms',
        detectedAt: clock,
        since: clock - 8244,
        restartsBefore: [],
      },
    ]);
    expect(logs.slice(1)).toMatchObject([{ priority: 'warning', message: 'eth0: kernel tx-timeout: NETDEV WATCHDOG: eth0 (e1000): transmit queue 0 timed out 8244 ms' }]);
  });

  it('reports a WARN once its end line is read, and logs the ones it leaves alone', async () => {
    startWatch();
    kmsg.queue.push(...fixture('ring-warn'), ...fixture('warn'));
    await tick();
    expect(reports.map((r) => [r.device, r.kind, r.driver])).toEqual([['eth1', 'warn', 'pcnet32']]);
    expect(logs.filter((l) => l.priority === 'notice').map((l) => l.message)).toEqual([
      expect.stringMatching(/^kernel warn in module fault_fixture, which drives no device shadowd watches; not recovering: WARNING: CPU/) as string,
    ]);
    expect(watch.stats).toMatchObject({ faults: 2, reports: 1, lost: 0 });
  });

  it('completes a report without an end line after the settle time', async () => {
    startWatch();
    kmsg.queue.push(...fixture('ring-warn').filter((r) => !r.includes('end trace')));
    await tick();
    await tick(300);
    expect(reports).toEqual([]);
    await tick(200);
    expect(reports.map((r) => r.device)).toEqual(['eth1']);
  });

  it('sends a report on its own module to onSelfFault and logs it at err with the kernel\'s report', async () => {
    startWatch({ selfModule: 'fault_fixture' });
    kmsg.queue.push(...fixture('oops'));
    await tick();
    expect(reports).toEqual([]);
    expect(selfFaults).toMatchObject([{ kind: 'oops', driver: 'fault_fixture' }]);
    const err = logs.find((l) => l.priority === 'err');
    expect(err?.message).toMatch(/^the kernel reported a oops in shadowd's own module fault_fixture \(a bug in shadowd; no recovery is attempted\): BUG: kernel NULL/);
    expect(String(err?.fields?.['SHADOWD_KERNEL_REPORT'])).toContain('RIP: 0010:fault_fixture_init+0x54/0x1000 [fault_fixture]');
  });

  it('logs records the kernel overwrote before they were read, and goes on', async () => {
    startWatch();
    const records = fixture('ring-warn');
    const trace = records.findIndex((r) => r.endsWith(';Call Trace:'));
    // The WARNING line was read, then the kernel overwrote 500 records and the register dump: the
    // reader resumes at the oldest record kept, the call trace.
    kmsg.queue.push(...records.slice(0, 2), KMSG_OVERRUN);
    const tail = renumber(records.slice(trace), seqOf(records[trace]!) + 500);
    kmsg.queue.push(...tail, ...renumber(fixture('tx-timeout'), seqOf(tail.at(-1)!) + 1));
    await tick();
    await tick(500);
    expect(logs.filter((l) => l.message.startsWith('the kernel log overran'))).toMatchObject([
      { priority: 'warning', message: `the kernel log overran: ${500 + trace - 2} records were overwritten before shadowd read them; a failure among them goes unseen here` },
    ]);
    expect(watch.stats.lost).toBe(500 + trace - 2);
    expect(reports.map((r) => r.kind)).toEqual(['warn', 'tx-timeout']);
  });

  it('folds repeats for the same device and kind within repeatMs', async () => {
    startWatch({ repeatMs: 1000 });
    const n = fixture('ring-warn').length;
    const again = (i: number): string[] => renumber(fixture('ring-warn'), 1000 + i * n);
    kmsg.queue.push(...again(0), ...again(1), ...again(2));
    await tick();
    expect(reports).toHaveLength(1);
    await tick(1000);
    kmsg.queue.push(...again(3));
    await tick();
    expect(reports).toHaveLength(2);
    expect(logs.some((l) => l.message === 'eth1: 2 more kernel warn report(s) folded into the previous one')).toBe(true);
  });

  it("tells each report which of the helper's restarts the log showed before its line (late evidence of a failure being recovered)", async () => {
    startWatch();
    const watchdog = fixture('tx-timeout')[1]!;
    const helper = (seq: number, text: string): string => `6,${seq},52900000,-;${text}`;
    // A watchdog line, then the helper's restart (as when the log is read after the restart began).
    kmsg.queue.push(watchdog.replace(/^(\d+),\d+,/, '$1,2000,'), helper(2001, 'shadow_helper: recovery r1: restarting net:eth0'));
    await tick(2000);
    // The restart's line, then a watchdog line: after it. A user's line (facility 1) that mimics the helper is not one.
    kmsg.queue.push(helper(2002, 'shadow_helper: recovery r2: restarting net:eth0'), `14,2003,52900000,-;shadow_helper: recovery r3: restarting net:eth0`, watchdog.replace(/^(\d+),\d+,\d+,/, '$1,2004,52990000,'));
    await tick(2000);
    expect(reports.map((r) => r.restartsBefore)).toEqual([[], ['r1', 'r2']]);
  });

  it('stops watching, with an err line, when the log cannot be read', async () => {
    startWatch();
    kmsg.queue.push(Object.assign(new Error('EIO: i/o error, read'), { code: 'EIO' }));
    await tick();
    expect(logs.at(-1)).toMatchObject({ priority: 'err', message: 'reading the kernel log failed, no longer watching it: EIO: i/o error, read' });
    expect(kmsg.closed).toBe(true);
  });
});
