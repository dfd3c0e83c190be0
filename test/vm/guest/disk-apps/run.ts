// One run of the disk applications on one scratch disk, with or without a
// fault mid-run: make the filesystem, start the apps, wait until all three
// are under way, inject the fault (pluggable), let them finish and check the
// proof. Used by scenario.ts for the control; the same function runs the
// scenario with the helper's inject and with shadowd, through `fault` and
// `stack` (where the filesystem sits: straight on the disk, or on a map).
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { startDiskApps, verifyDiskApps, type DiskAppsFailure, type DiskAppsOutcome, type DiskAppsProgress, type DiskAppsReference, type UnderWayOptions } from './apps.js';
import { waitForDisk, type DiskFault, type DiskRef, type FaultReport } from './disks.js';
import type { DiskAppsInputs } from './inputs.js';

/** Where the filesystem lives on the disk. */
export interface DiskStack {
  /** The block device to make the filesystem on and mount (e.g. a dm map over disk). */
  device(disk: DiskRef): Promise<string>;
  /** The device to check with e2fsck afterwards; `after` is the disk as found once the fault is over (null without a fault). */
  deviceAfter(disk: DiskRef, after: DiskRef | null, device: string): Promise<string>;
  /** Devices below the filesystem's whose failed requests are expected (a map's paths); see verifyDiskApps. */
  requestErrorsExpectedOn?(disk: DiskRef, after: DiskRef | null): string[];
}

/** ext4 straight on the disk: after a driver restart the disk has a new node, and that is what e2fsck checks. */
export const PLAIN_DISK: DiskStack = {
  device: (disk) => Promise.resolve(disk.devPath),
  deviceAfter: (_disk, after, device) => Promise.resolve(after?.devPath ?? device),
};

export interface DiskAppsRunOptions {
  serial: string;
  /** Names the mount point and the run's folder: nofault, control, shadowd... */
  label: string;
  inputs: DiskAppsInputs;
  reference: DiskAppsReference;
  /** Off the disk under test (the guest's $SHADOWD_RUNDIR); the ack log goes under it. */
  runDir: string;
  /** null: no fault. */
  fault: DiskFault | null;
  stack?: DiskStack;
  underWay?: UnderWayOptions;
  log?: (line: string) => void;
}

export interface DiskAppsRunResult {
  serial: string;
  driver: string;
  run: string;
  diskBefore: string;
  /** The disk's node once the fault was over, or null without a fault. */
  diskAfter: string | null;
  device: string;
  progressAtFault: DiskAppsProgress | null;
  fault: FaultReport | null;
  faultAtMs: number | null;
  outcome: DiskAppsOutcome;
  failures: DiskAppsFailure[];
  verifyMs: number;
}

export async function runDiskAppsOnDisk(opts: DiskAppsRunOptions): Promise<DiskAppsRunResult> {
  const log = opts.log ?? (() => undefined);
  const stack = opts.stack ?? PLAIN_DISK;
  const disk = await waitForDisk(opts.serial, 30_000);
  const device = await stack.device(disk);
  const mnt = `/mnt/disk-apps-${opts.serial}-${opts.label}`;
  mkdirSync(mnt, { recursive: true });
  await execa('mkfs.ext4', ['-q', '-F', device]);
  await execa('mount', ['-t', 'ext4', device, mnt]);
  log(`${opts.serial} (${disk.name}, ${disk.unit.driver} on ${disk.unit.bus} ${disk.unit.id}) ${opts.label}: ext4 on ${device} mounted at ${mnt}`);
  const apps = await startDiskApps({ dir: mnt, runDir: join(opts.runDir, 'disk-apps', `${opts.serial}-${opts.label}`), inputs: opts.inputs, reference: opts.reference, log });
  let progressAtFault: DiskAppsProgress | null = null;
  let report: FaultReport | null = null;
  let after: DiskRef | null = null;
  if (opts.fault) {
    progressAtFault = await apps.underWay(opts.underWay);
    log(`${opts.serial}: fault at ${progressAtFault.elapsedMs} ms into the run: ${JSON.stringify(progressAtFault)}`);
    report = await opts.fault(disk);
    log(`${opts.serial}: fault done: ${JSON.stringify(report.steps)}`);
    // The disk found again after the restart: a new gendisk (larger diskseq),
    // under a new name or the old one.
    after = await waitForDisk(opts.serial, 60_000, disk);
    log(`${opts.serial}: the disk is back as ${after.name} (diskseq ${after.diskseq}, was ${disk.name} ${disk.diskseq})`);
  }
  const outcome = await apps.finish();
  const v0 = Date.now();
  const checkDevice = await stack.deviceAfter(disk, after, device);
  const failures = await verifyDiskApps({
    outcome,
    inputs: opts.inputs,
    reference: opts.reference,
    device: checkDevice,
    requestErrorsExpectedOn: stack.requestErrorsExpectedOn?.(disk, after) ?? [],
  });
  log(
    `${opts.serial} ${opts.label}: ${failures.length} failures; apps ` +
      JSON.stringify(Object.values(outcome.apps).map((a) => [a.app, a.exitCode, a.durationMs, a.longestStallMs])),
  );
  return {
    serial: opts.serial,
    driver: disk.unit.driver,
    run: opts.label,
    diskBefore: disk.name,
    diskAfter: after?.name ?? null,
    device: checkDevice,
    progressAtFault,
    fault: report,
    faultAtMs: progressAtFault?.elapsedMs ?? null,
    outcome,
    failures,
    verifyMs: Date.now() - v0,
  };
}
