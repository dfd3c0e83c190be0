// The disk class's own failure detector: polls the counters the kernel keeps
// for each disk (/sys/block/X/inflight and the completions in
// /sys/block/X/stat) and reports a disk with I/O in flight and no completion
// for as long as the threshold; and reports a protecting map that failed its
// disk's path (the driver failed an I/O, and the map now holds the disk's
// I/O until a path comes back).
//
// Why no false alarms: an idle disk has nothing in flight. A saturated disk
// completes requests all the time: every completion resets the clock. A slow
// disk completes slowly, but completes: only a disk whose requests stop
// coming back at all, for seconds, reaches the threshold. The counters are
// the block layer's own, read only while the daemon polls (a read of two
// small sysfs files per disk per period), so nothing is added to the I/O path.
//
// It also watches for the one hang that is no driver's failure: a map waiting
// on a SCSI disk's device_blocked count with nothing in flight, which a read
// of the disk ends (blocked-device-release.ts).
import type { FailureReport } from '../../core/failure-report.js';
import { handOnReport } from '../../core/report-handoff.js';
import type { Logger } from '../../service/log.js';
import { BLOCKED_IDLE_MS, BlockedIdleWatch } from './blocked-device-release.js';
import type { IoCounters } from './block-sysfs.js';
import { PollLoop } from '../../core/poll-loop.js';

/** One poll of a disk. */
export interface DiskIo {
  /** Requests in flight in the driver (reads + writes). */
  inflight: number;
  /** Requests completed since boot (reads + writes + discards + flushes). */
  completed: number;
  /** The protecting map has failed the disk's path (null: no map, or not known). */
  pathFailed: boolean | null;
  /** The SCSI device_blocked count, read for a disk under a map (null or absent: none). */
  deviceBlocked?: number | null;
}

/** One poll of a disk from its block-layer counters, its map's path state and its SCSI device_blocked count. */
export function diskIoOf(c: IoCounters, pathFailed: boolean | null, deviceBlocked: number | null): DiskIo {
  return {
    inflight: c.inflightReads + c.inflightWrites,
    completed: c.readsCompleted + c.writesCompleted + c.discardsCompleted + c.flushesCompleted,
    pathFailed,
    deviceBlocked,
  };
}

export interface IoStallDeps {
  /** The disks to watch now: present, driver running. */
  disks: () => readonly string[];
  read: (disk: string) => Promise<DiskIo>;
  thresholdMs: (disk: string) => number;
  onReport: (r: FailureReport) => void;
  logger: Logger;
  /** Default 250 ms: a stall is seen within a quarter second of its threshold. */
  intervalMs?: number;
  now?: () => number;
  /** The driver of a disk, for the report. */
  driverOf?: (disk: string) => string | null;
  /** Sends a disk the read that ends a map's wait on its device_blocked (blocked-device-release.ts); absent: never. */
  releaseBlocked?: (disk: string) => Promise<void>;
}

interface Track {
  completed: number;
  /** When the disk last completed something or had nothing in flight. */
  progressAt: number;
  reported: boolean;
  pathReported: boolean;
  blocked: BlockedIdleWatch;
}

export class IoStallDetector {
  private readonly tracks = new Map<string, Track>();
  private readonly loop: PollLoop;
  private readonly now: () => number;

  constructor(private readonly deps: IoStallDeps) {
    this.now = deps.now ?? Date.now;
    this.loop = new PollLoop(() => this.poll(), deps.intervalMs ?? 250);
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One round over every disk (exported for tests through start()'s timer or called directly). */
  async poll(): Promise<void> {
    const disks = new Set(this.deps.disks());
    for (const name of this.tracks.keys()) if (!disks.has(name)) this.tracks.delete(name);
    for (const disk of disks) {
      let io: DiskIo;
      try {
        io = await this.deps.read(disk);
      } catch {
        // Gone between the list and the read, or its driver is away: the next round sees.
        this.tracks.delete(disk);
        continue;
      }
      // A round reads the disks one after the other, and a read may run
      // dmsetup: a disk whose restart began meanwhile has left the list, and
      // what the read saw (the map failing the path of the disk its driver
      // let go of) is the restart, not a failure.
      if (!this.deps.disks().includes(disk)) {
        this.tracks.delete(disk);
        continue;
      }
      this.observe(disk, io);
    }
  }

  private observe(disk: string, io: DiskIo): void {
    const now = this.now();
    const t = this.tracks.get(disk);
    if (!t) {
      this.tracks.set(disk, { completed: io.completed, progressAt: now, reported: false, pathReported: false, blocked: new BlockedIdleWatch() });
      return;
    }
    if (t.blocked.observe({ deviceBlocked: io.deviceBlocked ?? null, inflight: io.inflight, mappedLive: io.pathFailed === false }, now)) this.release(disk, io.deviceBlocked ?? 0);
    if (io.pathFailed === true && !t.pathReported) {
      t.pathReported = true;
      this.report(disk, 'path-failed', 'the protecting map failed the disk\'s path: the driver failed an I/O, and the map holds the disk\'s I/O', now, now);
    } else if (io.pathFailed === false) {
      t.pathReported = false;
    }
    if (io.inflight === 0 || io.completed !== t.completed) {
      t.completed = io.completed;
      t.progressAt = now;
      t.reported = false;
      return;
    }
    const stalled = now - t.progressAt;
    const threshold = this.deps.thresholdMs(disk);
    if (!t.reported && stalled >= threshold) {
      t.reported = true;
      this.report(disk, 'io-stall', `${io.inflight} request(s) in flight and none completed for ${stalled} ms (threshold ${threshold} ms)`, now, t.progressAt);
    }
  }

  /** Not a driver failure: the map waits on a count only the disk's own dispatches lower (blocked-device-release.ts). */
  private release(disk: string, count: number): void {
    const release = this.deps.releaseBlocked;
    if (!release) return;
    this.deps.logger.log('notice', `${disk}: its map's I/O has waited ${BLOCKED_IDLE_MS} ms on the SCSI device_blocked count (${count}) with nothing in flight; one read of the disk releases it`, {
      SHADOWD_CLASS: 'block',
      SHADOWD_DEVICE: disk,
      SHADOWD_COMPONENT: 'detector',
    });
    release(disk).catch((err: unknown) => {
      this.deps.logger.log('err', `${disk}: the release read failed: ${err instanceof Error ? err.message : String(err)}`, { SHADOWD_CLASS: 'block', SHADOWD_DEVICE: disk });
    });
  }

  private report(disk: string, kind: string, detail: string, now: number, since: number): void {
    this.deps.logger.log('warning', `${disk}: ${kind}: ${detail}`, { SHADOWD_CLASS: 'block', SHADOWD_DEVICE: disk, SHADOWD_COMPONENT: 'detector' });
    const driver = this.deps.driverOf?.(disk) ?? undefined;
    const report: FailureReport = { cls: 'block', device: disk, kind, detail, detectedAt: now, since, ...(driver ? { driver } : {}) };
    void handOnReport(() => this.deps.onReport(report), { logger: this.deps.logger, what: kind, fields: { SHADOWD_COMPONENT: 'detector' } });
  }
}
