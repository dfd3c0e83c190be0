// The detectors started together: the kernel log for every class, and each
// class's own detectors, all reporting to one function and stopped together.
import { describe, expect, it } from 'vitest';
import type { ClassDetectors } from '../../../daemon/core/device-class.js';
import { startDetectors } from '../../../daemon/core/detectors.js';
import type { FailureReport } from '../../../daemon/core/failure-report.js';
import type { LogFields, Priority } from '../../../daemon/service/log.js';
import type { TapEvent } from '../../../daemon/core/tap-record.js';

const event: TapEvent = { call: 'jam', nums: {}, masks: {}, strs: { name: 'dev0' }, pid: 1, tsNs: 1n, comm: 'x' };

describe('startDetectors', () => {
  it("starts each class's detectors and the kernel log with one report function, and stops them", async () => {
    const reports: FailureReport[] = [];
    const logs: { priority: Priority; message: string; fields?: LogFields }[] = [];
    let polls = 0;
    let stopped = 0;
    let timer: NodeJS.Timeout | undefined;
    const report = (f: FailureReport): number => reports.push(f);
    const fake = (): ClassDetectors => {
      // A poller of its own, as the network class's stall detector is.
      timer = setInterval(() => {
        polls++;
        if (polls === 2) report({ cls: 'fake', device: 'dev0', kind: 'fake-stall', detail: 'stuck', detectedAt: 5000, since: 3500 });
      }, 10);
      return {
        onTapEvent: (e) => report({ cls: 'fake', device: e.strs['name'] ?? '?', kind: 'fake-jam', detail: e.call, detectedAt: 5000 }),
        stop: () => {
          clearInterval(timer);
          stopped++;
          return Promise.resolve();
        },
      };
    };
    const detectors = startDetectors({
      logger: { log: (priority, message, fields) => void logs.push({ priority, message, fields }) },
      report,
      devices: () => Promise.resolve([]),
      rules: [],
      classes: new Map([['fake', fake]]),
      kernelLog: { source: () => ({ read: () => null, close: () => undefined }) },
      now: () => 5000,
    });
    expect(detectors.kernelLog).not.toBeNull();
    detectors.classes.get('fake')?.onTapEvent?.(event);
    await new Promise((r) => setTimeout(r, 100));
    await detectors.stop();
    const after = polls;
    await new Promise((r) => setTimeout(r, 60));
    expect(polls).toBe(after);
    expect(stopped).toBe(1);
    expect(reports.map((r) => [r.cls, r.device, r.kind])).toEqual([
      ['fake', 'dev0', 'fake-jam'],
      ['fake', 'dev0', 'fake-stall'],
    ]);
    expect(reports[1]).toMatchObject({ since: 3500, detectedAt: 5000 });
  });

  it("runs without the kernel log when it cannot be opened, saying so at err; a class whose detectors fail to start is left out", async () => {
    const logs: { priority: Priority; message: string }[] = [];
    const detectors = startDetectors({
      logger: { log: (priority, message) => void logs.push({ priority, message }) },
      report: () => undefined,
      devices: () => Promise.resolve([]),
      rules: [],
      classes: new Map([
        [
          'broken',
          () => {
            throw new Error('no helper');
          },
        ],
      ]),
      kernelLog: {
        source: () => {
          throw Object.assign(new Error("EACCES: permission denied, open '/dev/kmsg'"), { code: 'EACCES' });
        },
      },
    });
    expect(detectors.kernelLog).toBeNull();
    expect(detectors.classes.size).toBe(0);
    expect(logs).toEqual([
      { priority: 'err', message: "cannot watch the kernel log, so oops, BUG and WARN reports go unseen: EACCES: permission denied, open '/dev/kmsg'" },
      { priority: 'err', message: "cannot start the broken class's detectors: no helper" },
    ]);
    await detectors.stop();
  });
});
