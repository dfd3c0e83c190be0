// The disk applications on each scratch disk of the guest, in turn: ext4
// straight on the disk (no map, no shadowd); first a run without a fault
// (the checker must pass), then the control: the same apps with the disk's
// controller driver failing mid-run (a real departure: unbind then bind of
// the restart unit), which must show the failure.
//   node scenario.js --inputs DIR --serial shadowd-disk0 [--serial ...] [--runs nofault,control]
// Prints `DISK_APPS_RESULT <json>` per run for test/vm/classes/block/apps-control.test.ts.
import { mkdirSync, mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { computeDiskAppsReference, startDiskApps, verifyDiskApps, type DiskAppsFailure, type DiskAppsOutcome, type DiskAppsProgress } from './apps.js';
import { unbindBindFault, waitForDisk, type DiskFault, type DiskRef, type FaultReport } from './disks.js';
import { loadDiskAppsInputs } from './inputs.js';

const { values } = parseArgs({
  options: {
    inputs: { type: 'string' },
    serial: { type: 'string', multiple: true, default: [] },
    runs: { type: 'string', default: 'nofault,control' },
  },
});
const runDir = process.env['SHADOWD_RUNDIR'];
const runs = values.runs.split(',');
if (!values.inputs || values.serial.length === 0 || !runDir || runs.some((r) => r !== 'nofault' && r !== 'control')) {
  console.error('usage: scenario.js --inputs DIR --serial SERIAL [--serial ...] [--runs nofault,control] (with $SHADOWD_RUNDIR set)');
  process.exit(2);
}

export interface RunResult {
  serial: string;
  driver: string;
  run: 'nofault' | 'control';
  diskBefore: string;
  diskAfter: string | null;
  progressAtFault: DiskAppsProgress | null;
  fault: FaultReport | null;
  faultAtMs: number | null;
  outcome: DiskAppsOutcome;
  failures: DiskAppsFailure[];
  verifyMs: number;
}

const t0 = Date.now();
const note = (text: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);

for (const m of ['ata_piix', 'ahci', 'virtio_blk', 'sd_mod', 'ext4']) await execa('modprobe', [m]);
const inputs = loadDiskAppsInputs(values.inputs);
const refDir = mkdtempSync('/dev/shm/disk-apps-ref-');
const reference = await computeDiskAppsReference(inputs, refDir);
await execa('rm', ['-rf', refDir]);
note(
  `reference on tmpfs: build ${reference.compiler.ms} ms (${Object.keys(reference.compiler.outputs).length} outputs, ${reference.compiler.steps} steps), ` +
    `encode ${reference.encoder.ms} ms (${reference.encoder.bytes} bytes)`,
);
console.log(`DISK_APPS_REFERENCE ${JSON.stringify({ compilerMs: reference.compiler.ms, outputs: Object.keys(reference.compiler.outputs).length, steps: reference.compiler.steps, encoderMs: reference.encoder.ms, flacBytes: reference.encoder.bytes })}`);

async function oneRun(serial: string, run: 'nofault' | 'control', fault: DiskFault | null): Promise<RunResult> {
  const disk: DiskRef = await waitForDisk(serial, 30_000);
  const mnt = `/mnt/disk-apps-${serial}-${run}`;
  mkdirSync(mnt, { recursive: true });
  await execa('mkfs.ext4', ['-q', '-F', disk.devPath]);
  await execa('mount', ['-t', 'ext4', disk.devPath, mnt]);
  note(`${serial} (${disk.name}, ${disk.unit.driver} on ${disk.unit.bus} ${disk.unit.id}) ${run}: ext4 mounted at ${mnt}`);
  const apps = await startDiskApps({ dir: mnt, runDir: join(runDir!, 'disk-apps', `${serial}-${run}`), inputs, reference, log: note });
  let progressAtFault: DiskAppsProgress | null = null;
  let report: FaultReport | null = null;
  let faultAtMs: number | null = null;
  let after: DiskRef = disk;
  if (fault) {
    progressAtFault = await apps.underWay();
    faultAtMs = progressAtFault.elapsedMs;
    note(`${serial}: fault at ${faultAtMs} ms into the run: ${JSON.stringify(progressAtFault)}`);
    report = await fault(disk);
    note(`${serial}: fault done: ${JSON.stringify(report.steps)}`);
    after = await waitForDisk(serial, 60_000, disk.name);
    note(`${serial}: the disk is back as ${after.name}`);
  }
  const outcome = await apps.finish();
  const v0 = Date.now();
  const failures = await verifyDiskApps({ outcome, inputs, reference, device: after.devPath });
  const result: RunResult = {
    serial,
    driver: disk.unit.driver,
    run,
    diskBefore: disk.name,
    diskAfter: fault ? after.name : null,
    progressAtFault,
    fault: report,
    faultAtMs,
    outcome,
    failures,
    verifyMs: Date.now() - v0,
  };
  note(`${serial} ${run}: ${failures.length} failures; apps ${JSON.stringify(Object.values(outcome.apps).map((a) => [a.app, a.exitCode, a.durationMs, a.longestStallMs]))}`);
  console.log(`DISK_APPS_RESULT ${JSON.stringify(result)}`);
  return result;
}

for (const serial of values.serial) {
  for (const run of runs as ('nofault' | 'control')[]) {
    await oneRun(serial, run, run === 'control' ? unbindBindFault(1000) : null);
  }
}
note('done');
