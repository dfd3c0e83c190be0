// The TX watchdog tracepoint's tap event (recorded in the guest by
// test/vm/guest/record-kmsg.sh) through the tap reader, the reducer and the
// ingest to a failure report; and the detectors started together.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBpftraceLine } from '../../../daemon/core/bpftrace-output.js';
import { startDetectors, txTimeoutFromTap } from '../../../daemon/core/detectors.js';
import type { FailureReport } from '../../../daemon/core/failure-report.js';
import { Ingest } from '../../../daemon/core/ingest.js';
import type { LogFields, Priority } from '../../../daemon/service/log.js';
import { reduceEvent } from '../../../daemon/classes/net/netdev-reducer.js';
import type { TapEvent } from '../../../daemon/core/tap-record.js';

const TAP_FIXTURE = new URL('../../fixtures/kmsg/xmit-timeout-tap.jsonl', import.meta.url).pathname;
const FAKE = new URL('../fake/bpftrace.sh', import.meta.url).pathname;
const recorded = readFileSync(TAP_FIXTURE, 'utf8').trim();

function recordedEvent(): TapEvent {
  const m = parseBpftraceLine(recorded);
  if (m.kind !== 'event') throw new Error(`fixture did not parse: ${JSON.stringify(m)}`);
  return m.event;
}

describe('the TX watchdog tap', () => {
  it('reads the recorded ev=xmit_timeout record: a name and driver, no ifindex', () => {
    expect(recordedEvent()).toEqual({
      call: 'xmit_timeout',
      nums: { queue: 0, kthread: 1 },
      masks: {},
      strs: { name: 'eth0', driver: 'e1000' },
      pid: 0,
      tsNs: 52979137270n,
      comm: 'swapper/1',
    });
  });

  it('changes nothing in the shadow and is a tx-timeout failure of the device it names', () => {
    expect(reduceEvent(recordedEvent())).toEqual([]);
    expect(txTimeoutFromTap(recordedEvent(), 1234)).toEqual({
      device: 'eth0',
      kind: 'tx-timeout',
      detail: 'kernel TX watchdog: transmit queue 0 timed out (driver e1000)',
      detectedAt: 1234,
    });
    const mtu: TapEvent = { call: 'mtu', nums: { ifindex: 2, mtu: 1400, ret: 0 }, masks: {}, strs: { name: 'eth0' }, pid: 1, tsNs: 1n, comm: 'ip' };
    expect(txTimeoutFromTap(mtu, 1)).toBeNull();
  });

  it('is handed on by the ingest at once, and still goes into the batch', async () => {
    const timeouts: TapEvent[] = [];
    const batches: TapEvent[][] = [];
    const dir = mkdtempSync(join(tmpdir(), 'detectors-'));
    const program = join(dir, 'out.jsonl');
    writeFileSync(program, `{"type": "attached_probes", "data": {"probes": 49}}\n${recorded}\n`);
    const ingest = new Ingest({
      program,
      bpftrace: FAKE,
      probesLive: () => Promise.resolve(),
      logger: { log: () => undefined },
      onEvents: (b) => batches.push(b),
      onGap: () => undefined,
      onTxTimeout: (e) => timeouts.push(e),
    });
    await ingest.start();
    await new Promise((r) => setTimeout(r, 200));
    await ingest.stop();
    rmSync(dir, { recursive: true, force: true });
    expect(timeouts).toEqual([recordedEvent()]);
    expect(batches.flat()).toEqual([recordedEvent()]);
  });
});

describe('startDetectors', () => {
  it('wires the stall poller, the tap and the kernel log to one report function, and stops them', async () => {
    const reports: FailureReport[] = [];
    const logs: { priority: Priority; message: string; fields?: LogFields }[] = [];
    let polls = 0;
    const detectors = startDetectors({
      logger: { log: (priority, message, fields) => void logs.push({ priority, message, fields }) },
      report: (f) => reports.push(f),
      devices: () => ['eth0'],
      txstat: () => {
        polls++;
        return Promise.resolve('ifindex=2 state=passive running=1 carrier=1 queues=1 stopped=1 stalled_ms=1500 watchdog_ms=5000 tx_packets=9 timeouts=0');
      },
      stall: { pollMs: 20 },
      kernelLog: { source: () => ({ read: () => null, close: () => undefined }) },
      now: () => 5000,
    });
    expect(detectors.kernelLog).not.toBeNull();
    detectors.onTapEvent(recordedEvent());
    await new Promise((r) => setTimeout(r, 100));
    await detectors.stop();
    const after = polls;
    await new Promise((r) => setTimeout(r, 60));
    expect(polls).toBe(after);
    expect(reports.map((r) => [r.device, r.kind])).toEqual([
      ['eth0', 'tx-timeout'],
      ['eth0', 'tx-stall'],
    ]);
    expect(reports[1]).toMatchObject({ since: 3500, detectedAt: 5000 });
  });

  it('runs without the kernel log when it cannot be opened, saying so at err', async () => {
    const logs: { priority: Priority; message: string }[] = [];
    const detectors = startDetectors({
      logger: { log: (priority, message) => void logs.push({ priority, message }) },
      report: () => undefined,
      devices: () => [],
      kernelLog: {
        source: () => {
          throw Object.assign(new Error("EACCES: permission denied, open '/dev/kmsg'"), { code: 'EACCES' });
        },
      },
    });
    expect(detectors.kernelLog).toBeNull();
    expect(detectors.stall).toBeNull();
    expect(logs).toEqual([
      { priority: 'err', message: "cannot watch the kernel log, so oops, BUG and WARN reports go unseen: EACCES: permission denied, open '/dev/kmsg'" },
    ]);
    await detectors.stop();
  });
});
