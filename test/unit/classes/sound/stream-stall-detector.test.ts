// The stream stall detector on injected status reads and a fake clock: a
// RUNNING stream whose position freezes is reported once after the
// threshold (and never before two periods); a paused, draining, idle or
// XRUN stream, and a card shadowd holds, are not.
import { describe, expect, it } from 'vitest';
import type { PcmStatus } from '../../../../daemon/classes/sound/proc-asound.js';
import { StreamStallDetector, type WatchedStream } from '../../../../daemon/classes/sound/stream-stall-detector.js';
import type { FailureReport } from '../../../../daemon/core/failure-report.js';

function rig(periodMs: number | null = 100, irq: { count: bigint; shared: boolean } | null = null) {
  let now = 0;
  let status: PcmStatus = { state: 'RUNNING', ownerPid: 300, hwPtr: 0n };
  let interrupts = irq;
  let watched: WatchedStream[] = [{ card: 'card0', key: 'pcm0p/sub0', periodMs }];
  const reports: FailureReport[] = [];
  let reads = 0;
  const det = new StreamStallDetector({
    streams: () => watched,
    read: () => {
      reads++;
      return Promise.resolve({ ...status });
    },
    interrupts: () => Promise.resolve(interrupts ? { ...interrupts, lines: [10] } : null),
    thresholdMs: () => 500,
    onReport: (r) => reports.push(r),
    logger: { log: () => undefined },
    driverOf: () => 'snd_ens1370',
    now: () => now,
  });
  /** Polls every 100 ms for `ms`, the position moving by `step` frames and the card's interrupts by `irqs` each poll. */
  const run = async (ms: number, step = 0n, irqs = 0n): Promise<void> => {
    for (let t = 0; t < ms; t += 100) {
      await det.poll();
      now += 100;
      if (status.hwPtr !== null) status = { ...status, hwPtr: status.hwPtr + step };
      if (interrupts) interrupts = { ...interrupts, count: interrupts.count + irqs };
    }
  };
  return {
    det,
    reports,
    run,
    reads: () => reads,
    set: (s: Partial<PcmStatus>) => (status = { ...status, ...s }),
    setShared: (shared: boolean) => (interrupts = interrupts ? { ...interrupts, shared } : null),
    watch: (w: WatchedStream[]) => (watched = w),
  };
}

describe('stream stall detector', () => {
  it('reports a RUNNING stream whose position froze, once, after the threshold, with when it began', async () => {
    const r = rig();
    await r.run(2000, 4800n);
    expect(r.reports).toEqual([]);
    await r.run(400);
    expect(r.reports).toEqual([]);
    await r.run(1000);
    expect(r.reports).toHaveLength(1);
    expect(r.reports[0]).toMatchObject({ cls: 'sound', device: 'card0', kind: 'stream-stall', driver: 'snd_ens1370', since: 2000 });
    expect(r.reports[0]!.detectedAt - r.reports[0]!.since!).toBe(500);
    expect(r.reports[0]!.detail).toMatch(/^pcm0p\/sub0 is RUNNING and its hardware position stayed at 96000 for 500 ms \(threshold 500 ms\)$/);
    // Moving again, then frozen again: a second stall is a second report.
    await r.run(300, 10n);
    await r.run(700);
    expect(r.reports).toHaveLength(2);
  });

  it('waits at least two periods of the stream', async () => {
    const r = rig(400);
    await r.run(200, 10n);
    await r.run(700);
    expect(r.reports).toEqual([]);
    await r.run(200);
    expect(r.reports).toHaveLength(1);
    expect(r.reports[0]!.detail).toContain('(threshold 800 ms)');
  });

  it('never reports a paused, draining, prepared, suspended or XRUN stream, nor a closed one', async () => {
    for (const state of ['PAUSED', 'DRAINING', 'PREPARED', 'SUSPENDED', 'XRUN', 'SETUP'] as const) {
      const r = rig();
      r.set({ state });
      await r.run(3000);
      expect(r.reports, state).toEqual([]);
    }
    const r = rig();
    r.set({ state: null, hwPtr: null });
    await r.run(3000);
    expect(r.reports).toEqual([]);
  });

  it('starts over after a pause: the time paused does not count', async () => {
    const r = rig();
    await r.run(300, 10n);
    r.set({ state: 'PAUSED' });
    await r.run(2000);
    r.set({ state: 'RUNNING' });
    await r.run(400);
    expect(r.reports).toEqual([]);
    await r.run(200);
    expect(r.reports).toHaveLength(1);
  });

  it('reads nothing when no stream runs, and drops a card shadowd takes hold of', async () => {
    const r = rig();
    r.watch([]);
    await r.run(1000);
    expect(r.reads()).toBe(0);
    r.watch([{ card: 'card0', key: 'pcm0p/sub0', periodMs: 100 }]);
    await r.run(400);
    // The card is held (its restart began): no longer in the list; a frozen stream is not reported.
    r.watch([]);
    await r.run(2000);
    expect(r.reports).toEqual([]);
  });

  it('reports a stream whose position moves but whose card stopped interrupting (lost interrupts), once', async () => {
    const r = rig(100, { count: 1000n, shared: false });
    await r.run(1000, 4800n, 2n);
    expect(r.reports).toEqual([]);
    await r.run(400, 4800n);
    expect(r.reports).toEqual([]);
    await r.run(300, 4800n);
    expect(r.reports).toHaveLength(1);
    expect(r.reports[0]!.detail).toMatch(/^pcm0p\/sub0 is RUNNING and its card raised no interrupt while the position moved to \d+ for 500 ms \(threshold 500 ms\)$/);
    await r.run(1000, 4800n);
    expect(r.reports).toHaveLength(1);
    // Interrupting again, then silent again: a second report.
    await r.run(300, 4800n, 2n);
    await r.run(700, 4800n);
    expect(r.reports).toHaveLength(2);
  });

  it('does not judge by interrupts a card whose line another device shares, or that never interrupted (no period wakeups)', async () => {
    const shared = rig(100, { count: 1000n, shared: true });
    await shared.run(500, 4800n, 2n);
    await shared.run(3000, 4800n);
    expect(shared.reports).toEqual([]);
    const quiet = rig(100, { count: 1000n, shared: false });
    await quiet.run(3000, 4800n);
    expect(quiet.reports).toEqual([]);
  });
});
