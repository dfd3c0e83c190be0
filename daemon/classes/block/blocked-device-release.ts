// Releases a SCSI disk whose protecting map waits on it for ever although the
// disk is idle: a deadlock between dm-multipath and the SCSI midlayer that
// shadowd's maps would otherwise bring to every NCQ SATA disk (kernel 6.1,
// seen under the ahci driver in the guest; drivers/md/dm-mpath.c,
// drivers/scsi/scsi_lib.c).
//
// - When libata cannot take a command yet (a non-NCQ command such as a cache
//   flush while NCQ commands are active, ata_std_qc_defer()), the SCSI
//   midlayer sets the device's `device_blocked` count (3) and hands the
//   request back. The count only comes down as the disk's own queue tries to
//   dispatch again (scsi_dev_queue_ready()).
// - A request-based map's clone handed back that way is freed, and the
//   original waits in the map's queue, which asks the path whether it is busy
//   before each try (multipath_busy() -> scsi_mq_lld_busy() ->
//   scsi_device_is_busy(), true while device_blocked > 0).
// - So the map never sends the disk a request, the disk never tries a
//   dispatch, and device_blocked never comes down: the filesystem on the map
//   hangs with nothing in flight on the disk (no stall to detect, no error).
//
// One read sent straight to the disk ends it: its dispatch attempts count
// device_blocked down to 0, and the map's next try goes through. The read is
// 4 KiB at offset 0 with O_DIRECT (through `dd`, which aligns the buffer), so
// it only reads. The watch below asks for it once a disk has been seen
// blocked and idle for a second; the block layer's own retry of a blocked
// device takes milliseconds.
import { runProgram, type ProgramResult } from '../../core/run-program.js';
import { validateDiskName } from './block-sysfs.js';

/** How long a protected disk must stay blocked with nothing in flight before it is released. */
export const BLOCKED_IDLE_MS = 1000;

/** What the watch needs to know of one poll of a disk. */
export interface BlockedSample {
  /** The SCSI device's device_blocked count (null: not a SCSI disk, or unreadable). */
  deviceBlocked: number | null;
  /** Requests in flight in the driver. */
  inflight: number;
  /** Whether a map protects the disk through a live path (only then can the deadlock happen). */
  mappedLive: boolean;
}

/**
 * Decides, poll by poll, when a disk needs the release: blocked, idle and
 * under a live map for BLOCKED_IDLE_MS, then again every BLOCKED_IDLE_MS while
 * it stays so. Pure; one per disk.
 */
export class BlockedIdleWatch {
  private since: number | null = null;

  /** Whether to release the disk now. */
  observe(s: BlockedSample, now: number): boolean {
    if (!s.mappedLive || s.inflight !== 0 || s.deviceBlocked === null || s.deviceBlocked <= 0) {
      this.since = null;
      return false;
    }
    if (this.since === null) {
      this.since = now;
      return false;
    }
    if (now - this.since < BLOCKED_IDLE_MS) return false;
    this.since = now;
    return true;
  }
}

/** The argv of the release read of DISK (validated: a name from sysfs, never a path). */
export function releaseReadArgv(disk: string): string[] {
  return [`if=/dev/${validateDiskName(disk)}`, 'of=/dev/null', 'bs=4096', 'count=1', 'iflag=direct', 'status=none'];
}

/** Sends DISK the release read; rejects when dd fails, saying how. */
export async function releaseBlockedDisk(disk: string, run: (file: string, args: readonly string[], timeoutMs?: number) => Promise<ProgramResult> = runProgram): Promise<void> {
  const r = await run('dd', releaseReadArgv(disk), 10_000);
  if (r.exitCode !== 0) throw new Error(`dd exited ${r.exitCode ?? 'by a signal'}: ${r.stderr.trim()}`);
}
