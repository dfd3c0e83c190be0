// How long a map holds the I/O of a disk whose driver shadowd restarts. The
// map holds it from the moment the restart begins; normally the disk is back
// and linked within seconds. A disk that is not found again (the driver did
// not come back, or another disk did) is never written to, and holding its
// I/O for ever would be worse than the failure: writers hang, a filesystem
// cannot be unmounted, a shutdown waits. So the hold is bounded by policy
// (LostDiskHoldMs, counted from the restart's start, and never ending while
// shadowd is still recovering the controller): when it runs out with the
// disk still not back, the map is told to fail what it holds, and the
// applications see the I/O errors they would have seen without shadowd,
// with a journal line that says why. 0 holds until someone acts.
import type { Logger } from '../../service/log.js';
import { diskId, type DiskFacts } from './disk-shadow.js';

export interface LostDiskHoldDeps {
  /** The policy's hold for this disk, in ms; 0: for ever. */
  holdMs(disk: DiskFacts): number;
  /** Whether shadowd is still recovering the disk's controller: the hold does not end meanwhile. */
  busy(disk: DiskFacts): boolean;
  /** Makes the map fail what it holds; returns the command run. */
  failHeldIo(map: string): Promise<string[]>;
  logger: Logger;
  setTimer?: (fn: () => void, ms: number) => { cancel(): void };
}

/** How often an expired hold looks again while shadowd is still recovering the controller. */
const BUSY_RECHECK_MS = 1000;

export class LostDiskHold {
  private readonly timers = new Map<string, { cancel(): void }>();
  private readonly setTimer: NonNullable<LostDiskHoldDeps['setTimer']>;

  constructor(private readonly deps: LostDiskHoldDeps) {
    this.setTimer =
      deps.setTimer ??
      ((fn, ms) => {
        const t = setTimeout(fn, ms);
        t.unref();
        return { cancel: () => clearTimeout(t) };
      });
  }

  /** The restart of a disk under a map begins: its hold's clock starts (once: a retry does not restart it). */
  begin(disk: DiskFacts): void {
    const ms = this.deps.holdMs(disk);
    const id = diskId(disk);
    if (!disk.map || ms === 0 || this.timers.has(id)) return;
    this.arm(id, disk, disk.map, ms, ms);
  }

  /** The disk is linked to its map again: its hold ends without failing anything. */
  back(disk: DiskFacts): void {
    const id = diskId(disk);
    this.timers.get(id)?.cancel();
    this.timers.delete(id);
  }

  /** For the report of a disk not back: what its map does with its I/O. */
  says(disk: DiskFacts): string | null {
    if (!disk.map) return null;
    const ms = this.deps.holdMs(disk);
    if (ms === 0) return `map ${disk.map} holds ${disk.name}'s I/O until the disk is back or someone acts (LostDiskHoldMs=0)`;
    return `map ${disk.map} holds ${disk.name}'s I/O until ${ms} ms after the restart began (LostDiskHoldMs), then fails it unless the disk is back`;
  }

  /** Holds still running (tests). */
  pending(): number {
    return this.timers.size;
  }

  private arm(id: string, disk: DiskFacts, map: string, inMs: number, holdMs: number): void {
    this.timers.set(id, this.setTimer(() => void this.expire(id, disk, map, holdMs), inMs));
  }

  private async expire(id: string, disk: DiskFacts, map: string, ms: number): Promise<void> {
    if (this.deps.busy(disk)) return this.arm(id, disk, map, BUSY_RECHECK_MS, ms);
    this.timers.delete(id);
    const fields = { SHADOWD_CLASS: 'block', SHADOWD_DEVICE: disk.name, SHADOWD_DRIVER: disk.driver ?? '' };
    try {
      const argv = await this.deps.failHeldIo(map);
      this.deps.logger.log(
        'err',
        `${disk.name}: not back ${ms} ms after its driver's restart began: map ${map} now fails the I/O it held (${argv.join(' ')}); applications see I/O errors, as without shadowd`,
        fields,
      );
    } catch (err) {
      this.deps.logger.log('err', `${disk.name}: not back ${ms} ms after its driver's restart began, and map ${map} could not be made to fail the I/O it holds: ${err instanceof Error ? err.message : String(err)}`, fields);
    }
  }
}
