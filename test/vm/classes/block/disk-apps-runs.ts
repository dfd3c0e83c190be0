// The guest runs of the disk applications (guest/disk-apps/): without
// shadowd (guest/disk-apps/scenario.ts: on each disk a run without a fault,
// then the control, the controller's driver departing mid-run) and with it
// (guest/block-recovery-scenario.ts: each disk under shadowd's map, a fault
// injected into its driver). Shared by the tests (apps-control.test.ts,
// recovery-apps.test.ts), which assert on the results, and by
// `npm run evaluate`, which classifies them.
import { runInGuest, type GuestResult } from '../../rig/guest.js';
import type { DiskPreset } from '../../rig/devices.js';
import type { KernelSeries } from '../../rig/cache-paths.js';
import { repoPath } from '../../rig/repo-path.js';
import { ensureDiskAppsInputs } from '../../guest/disk-apps/inputs.js';
import type { DiskAppsRunResult } from '../../guest/disk-apps/run.js';
import type { BlockRecoveryResult, LostDiskResult } from '../../guest/block-recovery-scenario.js';

/** In preset order: the disks' serials are shadowd-disk0.. in this order. */
export const CONTROL_DISKS: [DiskPreset, string][] = [
  ['piix-ide', 'ata_piix'],
  ['ahci', 'ahci'],
  ['virtio-blk', 'virtio_blk'],
];

/**
 * In preset order (serials shadowd-disk0..), each with the fault it gets
 * with shadowd: a fail-stop (every command fails in the driver) on
 * ata_piix, a disk-side error (the SCSI device offline) on ahci, lost
 * interrupts on virtio_blk; one fault per driver keeps the run short while
 * every fault meets every application. Lost interrupts on an ATA disk are
 * left out: with a cache flush in flight, libata's own error handler
 * retries the flush (15 + 15 + 30 s) before the unbind can finish, longer
 * than a test should take; docs/disks.md says so.
 */
export const RECOVERY_DISKS: [DiskPreset, string, string][] = [
  ['piix-ide', 'ata_piix', 'fail-stop'],
  ['ahci', 'ahci', 'disk-error'],
  ['virtio-blk', 'virtio_blk', 'lost-irq'],
];

export const CONTROL_TIMEOUT_MS = 780_000;
export const RECOVERY_TIMEOUT_MS = 900_000;

const serial = (n: number): string => `shadowd-disk${n}`;
const lines = (stdout: string, tag: string): string[] => stdout.split('\n').filter((l) => l.startsWith(`${tag} `)).map((l) => l.slice(tag.length + 1));

/**
 * The disk whose applications also run once without a fault (and must pass
 * the checker) before its control: the checker can pass on a bare disk. With
 * shadowd (runDiskAppsRecovery) the checker passes on every driver.
 */
export const NOFAULT_DISK = CONTROL_DISKS[0]!;

/** Without shadowd: the first disk's `nofault` run, then each disk's `control` run, by `DRIVER/RUN`. */
export async function runDiskAppsControl(log: (line: string) => void, kernel?: KernelSeries): Promise<{ guest: GuestResult; results: Map<string, DiskAppsRunResult> }> {
  const inputs = await ensureDiskAppsInputs((l) => log(`inputs: ${l}`));
  const guest = await runInGuest({
    ...(kernel ? { kernel } : {}),
    command: [
      'node', repoPath('dist/test/vm/guest/disk-apps/scenario.js'), '--inputs', inputs.dir,
      '--run', `${serial(CONTROL_DISKS.indexOf(NOFAULT_DISK))}:nofault`,
      ...CONTROL_DISKS.flatMap((_, n) => ['--run', `${serial(n)}:control`]),
    ],
    devices: CONTROL_DISKS.map(([p]) => p),
    diskMiB: 128,
    timeoutMs: CONTROL_TIMEOUT_MS,
  });
  const results = lines(guest.stdout, 'DISK_APPS_RESULT').map((l) => JSON.parse(l) as DiskAppsRunResult);
  return { guest, results: new Map(results.map((r) => [`${r.driver}/${r.run}`, r])) };
}

/**
 * With shadowd: each disk's run through its fault, by driver, and the lost
 * disk's (a disk that does not come back: its held I/O fails once the hold
 * runs out). virtio_blk is loaded once shadowd runs: its disk must get its
 * map when it appears.
 */
export async function runDiskAppsRecovery(log: (line: string) => void, kernel?: KernelSeries): Promise<{ guest: GuestResult; results: Map<string, BlockRecoveryResult>; lost: LostDiskResult | null }> {
  const inputs = await ensureDiskAppsInputs((l) => log(`inputs: ${l}`));
  const guest = await runInGuest({
    ...(kernel ? { kernel } : {}),
    command: [
      'node', repoPath('dist/test/vm/guest/block-recovery-scenario.js'), '--inputs', inputs.dir,
      ...RECOVERY_DISKS.flatMap(([, , fault], n) => ['--run', `${serial(n)}:${fault}`]),
      '--late-driver', 'virtio_blk', '--late', serial(2), '--lost', serial(0),
    ],
    devices: RECOVERY_DISKS.map(([p]) => p),
    diskMiB: 128,
    timeoutMs: RECOVERY_TIMEOUT_MS,
  });
  const results = lines(guest.stdout, 'BLOCK_RECOVERY_RESULT').map((l) => JSON.parse(l) as BlockRecoveryResult);
  const lost = lines(guest.stdout, 'LOST_DISK_RESULT')[0];
  return { guest, results: new Map(results.map((r) => [r.driver, r])), lost: lost === undefined ? null : (JSON.parse(lost) as LostDiskResult) };
}
