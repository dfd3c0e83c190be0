// The kernel's TX watchdog as the network class's taps see it: the tracepoint's
// tap event (recorded in the guest by test/vm/guest/record-kmsg.sh) through
// the tap reader, the reducer and the ingest to a failure report (tx-timeout.ts).
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseBpftraceLine } from '../../../../daemon/core/bpftrace-output.js';
import { Ingest } from '../../../../daemon/core/ingest.js';
import { NET_SYNC_MARKER } from '../../../../daemon/classes/net/net-declaration.js';
import { reduceEvent } from '../../../../daemon/classes/net/netdev-reducer.js';
import { handleTapTimeout, txTimeoutFromTap } from '../../../../daemon/classes/net/tx-timeout.js';
import type { TapTimeoutVerdict } from '../../../../daemon/classes/net/stall-detector.js';
import type { FailureReport } from '../../../../daemon/core/failure-report.js';
import type { TapEvent } from '../../../../daemon/core/tap-record.js';

const TAP_FIXTURE = new URL('../../../fixtures/kmsg/xmit-timeout-tap.jsonl', import.meta.url).pathname;
const FAKE = new URL('../../fake/bpftrace.sh', import.meta.url).pathname;
const recorded = readFileSync(TAP_FIXTURE, 'utf8').trim();

function recordedEvent(): TapEvent {
  const m = parseBpftraceLine(recorded);
  if (m.kind !== 'event') throw new Error(`fixture did not parse: ${JSON.stringify(m)}`);
  return m.event;
}

describe('the TX watchdog tap as the network class handles it', () => {
  async function handled(verdict: TapTimeoutVerdict, driverOf: (name: string) => string | null | undefined = () => 'e1000'): Promise<{ reports: FailureReport[]; logs: string[]; asked: string[] }> {
    const reports: FailureReport[] = [];
    const logs: string[] = [];
    const asked: string[] = [];
    await handleTapTimeout(recordedEvent(), {
      driverOf,
      verdict: (device) => {
        asked.push(device);
        return Promise.resolve(verdict);
      },
      report: (r) => void reports.push(r),
      logger: { log: (p, m) => void logs.push(`${p} ${m}`) },
      now: () => 5,
    });
    return { reports, logs, asked };
  }

  it("reports it when the helper's count of the watched device grew", async () => {
    const r = await handled({ kind: 'new' });
    expect(r.reports).toMatchObject([{ device: 'eth0', kind: 'tx-timeout', detectedAt: 5 }]);
    expect(r.logs).toEqual(['warning eth0: tx-timeout: kernel TX watchdog: transmit queue 0 timed out (driver e1000)']);
  });

  it('does nothing more when a poll reported it already', async () => {
    expect(await handled({ kind: 'seen' })).toEqual({ reports: [], logs: [], asked: ['eth0'] });
  });

  it("logs why not when the count says it was another namespace's device", async () => {
    const r = await handled({ kind: 'not-ours', why: 'because' });
    expect(r.reports).toEqual([]);
    expect(r.logs).toEqual(["notice eth0: not recovering on the taps' TX watchdog record: because"]);
  });

  it('does not ask the helper when the name or driver is not the watched device\'s', async () => {
    const r = await handled({ kind: 'new' }, () => undefined);
    expect(r.asked).toEqual([]);
    expect(r.reports).toEqual([]);
    expect(r.logs).toEqual(["notice eth0: not recovering: the kernel's TX watchdog timed out on eth0, which shadowd does not watch"]);
  });
});

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
    expect(txTimeoutFromTap(recordedEvent(), 1234, (name) => (name === 'eth0' ? 'e1000' : undefined))).toEqual({
      kind: 'report',
      report: {
        cls: 'net',
        device: 'eth0',
        kind: 'tx-timeout',
        detail: 'kernel TX watchdog: transmit queue 0 timed out (driver e1000)',
        detectedAt: 1234,
      },
    });
    const mtu: TapEvent = { call: 'mtu', nums: { ifindex: 2, mtu: 1400, ret: 0 }, masks: {}, strs: { name: 'eth0' }, pid: 1, tsNs: 1n, comm: 'ip' };
    expect(txTimeoutFromTap(mtu, 1, () => 'e1000')).toBeNull();
  });

  it("leaves another namespace's device of the same name alone: the driver it names is not our device's", () => {
    const timeout = (driver: string): TapEvent => ({ ...recordedEvent(), strs: { name: 'eth0', driver } });
    const ours = (name: string): string | null | undefined => (name === 'eth0' ? 'e1000' : undefined);
    // A container's veth or dummy named eth0 has no bus device, so no driver.
    const veth = txTimeoutFromTap(timeout(''), 1, ours);
    expect(veth).toMatchObject({ kind: 'ignored', device: 'eth0' });
    expect(veth?.kind === 'ignored' && veth.why).toMatch(/eth0 with no driver, but the eth0 shadowd watches has driver e1000: another namespace/);
    expect(txTimeoutFromTap(timeout('virtio_net'), 1, ours)).toMatchObject({ kind: 'ignored' });
    // A device shadowd does not watch, or one of ours with no driver bound.
    expect(txTimeoutFromTap(timeout('e1000'), 1, () => undefined)).toMatchObject({ kind: 'ignored', why: expect.stringContaining('does not watch') as unknown });
    expect(txTimeoutFromTap(timeout('e1000'), 1, () => null)).toMatchObject({ kind: 'ignored' });
  });

  it('is handed on by the ingest at once, and still goes into the batch', async () => {
    const timeouts: TapEvent[] = [];
    const batches: TapEvent[][] = [];
    const dir = mkdtempSync(join(tmpdir(), 'detectors-'));
    const program = join(dir, 'out.jsonl');
    writeFileSync(program, `{"type": "attached_probes", "data": {"probes": 49}}\n${recorded}\n`);
    const ingest = new Ingest({
      marker: NET_SYNC_MARKER,
      program,
      bpftrace: FAKE,
      probesLive: () => Promise.resolve(),
      logger: { log: () => undefined },
      onEvents: (b) => batches.push(b),
      onGap: () => undefined,
      onEvent: (e) => (e.call === 'xmit_timeout' ? timeouts.push(e) : undefined),
    });
    await ingest.start();
    await new Promise((r) => setTimeout(r, 200));
    await ingest.stop();
    rmSync(dir, { recursive: true, force: true });
    expect(timeouts).toEqual([recordedEvent()]);
    expect(batches.flat()).toEqual([recordedEvent()]);
  });
});

