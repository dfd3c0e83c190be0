// The stream stall detector on injected status reads and a fake clock: a
// RUNNING stream whose position freezes is reported once after the
// threshold (and never before two periods), and so is a playback stream
// whose drain stops moving; a paused, idle or XRUN stream, a capture's
// drain, a drain that plays to its end, and a card shadowd holds, are not.
import { describe, expect, it } from 'vitest';
import type { PcmStatus } from '../../../../daemon/classes/sound/proc-asound.js';
import { isWatchedState, StreamStallDetector, type WatchedStream } from '../../../../daemon/classes/sound/stream-stall-detector.js';
import type { FailureReport } from '../../../../daemon/core/failure-report.js';

/** `irq`: the stream's position at its last period interrupt, as the helper reports it (null: no helper answer). */
function rig(periodMs: number | null = 100, irq: bigint | null = null, key = 'pcm0p/sub0') {
  let now = 0;
  let status: PcmStatus = { state: 'RUNNING', ownerPid: 300, hwPtr: 0n };
  let irqPos = irq;
  let watched: WatchedStream[] = [{ card: 'card0', key, periodMs }];
  const reports: FailureReport[] = [];
  let reads = 0;
  const det = new StreamStallDetector({
    streams: () => watched,
    read: () => {
      reads++;
      return Promise.resolve({ ...status });
    },
    periods: () => Promise.resolve(irqPos === null ? null : new Map([[key, irqPos]])),
    thresholdMs: () => 500,
    onReport: (r) => reports.push(r),
    logger: { log: () => undefined },
    driverOf: () => 'snd_ens1370',
    now: () => now,
  });
  /** Polls every 100 ms for `ms`, the position moving by `step` frames and the interrupt position by `irqs` each poll. */
  const run = async (ms: number, step = 0n, irqs = 0n): Promise<void> => {
    for (let t = 0; t < ms; t += 100) {
      await det.poll();
      now += 100;
      if (status.hwPtr !== null) status = { ...status, hwPtr: status.hwPtr + step };
      if (irqPos !== null) irqPos += irqs;
    }
  };
  return {
    det,
    reports,
    run,
    reads: () => reads,
    set: (s: Partial<PcmStatus>) => (status = { ...status, ...s }),
    setIrq: (v: bigint | null) => (irqPos = v),
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

  it('never reports a paused, prepared, suspended or XRUN stream, nor a closed one', async () => {
    for (const state of ['PAUSED', 'PREPARED', 'SUSPENDED', 'XRUN', 'SETUP'] as const) {
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

  it('reports a stream whose position moves but whose period interrupts stopped (lost interrupts), once', async () => {
    const r = rig(100, 0n);
    await r.run(1000, 4800n, 4800n);
    expect(r.reports).toEqual([]);
    await r.run(400, 4800n);
    expect(r.reports).toEqual([]);
    await r.run(300, 4800n);
    expect(r.reports).toHaveLength(1);
    expect(r.reports[0]!.detail).toMatch(/^pcm0p\/sub0 is RUNNING and its period interrupts stopped \(the last at position \d+\) while the position moved to \d+ for 500 ms \(threshold 500 ms\)$/);
    await r.run(1000, 4800n);
    expect(r.reports).toHaveLength(1);
    // Interrupting again, then silent again: a second report.
    await r.run(300, 4800n, 4800n);
    await r.run(700, 4800n);
    expect(r.reports).toHaveLength(2);
  });

  it('judges by interrupts from the start a stream the helper lists (one started after the card lost them), but not one it leaves out or a round it did not answer', async () => {
    const quiet = rig(100, 0n);
    await quiet.run(400, 4800n);
    expect(quiet.reports).toEqual([]);
    await quiet.run(300, 4800n);
    expect(quiet.reports).toHaveLength(1);
    // Not listed: set up without period interrupts (a sound server's timer-scheduled stream).
    const timer = rig(100, null);
    await timer.run(3000, 4800n);
    expect(timer.reports).toEqual([]);
    const unanswered = rig(100, 0n);
    await unanswered.run(300, 4800n, 4800n);
    unanswered.setIrq(null);
    await unanswered.run(3000, 4800n);
    expect(unanswered.reports).toEqual([]);
    // Without any helper answer the position alone judges.
    await timer.run(1000);
    expect(timer.reports).toHaveLength(1);
  });

  it('reports a playback stream whose drain stopped moving, as a running one, with when it began', async () => {
    const r = rig();
    await r.run(1000, 4800n);
    // The application drains the end of its stream; the fault lands in the drain.
    r.set({ state: 'DRAINING' });
    await r.run(300, 4800n);
    expect(r.reports).toEqual([]);
    await r.run(400);
    expect(r.reports).toEqual([]);
    await r.run(200);
    expect(r.reports).toHaveLength(1);
    expect(r.reports[0]).toMatchObject({ cls: 'sound', device: 'card0', kind: 'stream-stall', since: 1300 });
    expect(r.reports[0]!.detail).toMatch(/^pcm0p\/sub0 is DRAINING and its hardware position stayed at \d+ for 500 ms \(threshold 500 ms\)$/);
  });

  it('reports a draining stream that stalled while it still ran, from when it stalled', async () => {
    const r = rig();
    await r.run(1000, 4800n);
    await r.run(300);
    r.set({ state: 'DRAINING' });
    await r.run(200);
    expect(r.reports).toEqual([]);
    await r.run(100);
    expect(r.reports).toHaveLength(1);
    expect(r.reports[0]!.since).toBe(1000);
    expect(r.reports[0]!.detail).toMatch(/^pcm0p\/sub0 is DRAINING /);
  });

  it('reports a draining stream whose period interrupts stopped while its position moves', async () => {
    const r = rig(100, 0n);
    await r.run(1000, 4800n, 4800n);
    r.set({ state: 'DRAINING' });
    await r.run(400, 4800n);
    expect(r.reports).toEqual([]);
    await r.run(200, 4800n);
    expect(r.reports).toHaveLength(1);
    expect(r.reports[0]!.detail).toMatch(/^pcm0p\/sub0 is DRAINING and its period interrupts stopped/);
  });

  it('never reports a drain that plays to its end, nor one started from a prepared stream that plays', async () => {
    const r = rig(100, 0n);
    await r.run(1000, 4800n, 4800n);
    r.set({ state: 'DRAINING' });
    // A healthy drain moves, position and interrupts, until the core ends it.
    await r.run(500, 4800n, 4800n);
    r.set({ state: 'SETUP' });
    await r.run(3000);
    expect(r.reports).toEqual([]);
    const fromPrepared = rig();
    fromPrepared.set({ state: 'DRAINING' });
    await fromPrepared.run(400, 4800n);
    fromPrepared.set({ state: 'SETUP' });
    await fromPrepared.run(3000);
    expect(fromPrepared.reports).toEqual([]);
  });

  it('never reports a capture stream that drains (its drain stopped the DMA)', async () => {
    const r = rig(100, 0n, 'pcm0c/sub0');
    await r.run(1000, 4800n, 4800n);
    expect(r.reports).toEqual([]);
    r.set({ state: 'DRAINING' });
    await r.run(3000);
    expect(r.reports).toEqual([]);
  });

  it('watches RUNNING streams and DRAINING playback streams, nothing else', () => {
    expect(isWatchedState('pcm0p/sub0', 'RUNNING')).toBe(true);
    expect(isWatchedState('pcm0c/sub0', 'RUNNING')).toBe(true);
    expect(isWatchedState('pcm0p/sub0', 'DRAINING')).toBe(true);
    expect(isWatchedState('pcm0c/sub0', 'DRAINING')).toBe(false);
    for (const state of ['PAUSED', 'PREPARED', 'SETUP', 'OPEN', 'XRUN', 'SUSPENDED', null]) expect(isWatchedState('pcm0p/sub0', state), String(state)).toBe(false);
    expect(isWatchedState('bogus', 'DRAINING')).toBe(false);
  });
});
