// The disk applications on scratch disks of the guest, one run after the
// other: ext4 straight on the disk (no map, no shadowd); a run without a
// fault (nofault: the checker must pass) or the control: the same apps with
// the disk's controller driver failing mid-run (a real departure: unbind
// then bind of the restart unit), which must show the failure.
//   node scenario.js --inputs DIR --run shadowd-disk0:nofault --run shadowd-disk0:control [--run ...]
// Prints `DISK_APPS_REFERENCE <json>` once and `DISK_APPS_RESULT <json>`
// (a DiskAppsRunResult) per run for test/vm/classes/block/apps-control.test.ts.
import { mkdtempSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { computeDiskAppsReference } from './apps.js';
import { unbindBindFault } from './disks.js';
import { loadDiskAppsInputs } from './inputs.js';
import { runDiskAppsOnDisk } from './run.js';

const { values } = parseArgs({
  options: {
    inputs: { type: 'string' },
    run: { type: 'string', multiple: true, default: [] },
  },
});
const runDir = process.env['SHADOWD_RUNDIR'];
const runs = values.run.map((r) => /^([\w-]+):(nofault|control)$/.exec(r));
if (!values.inputs || runs.length === 0 || !runDir || runs.some((r) => r === null)) {
  console.error('usage: scenario.js --inputs DIR --run SERIAL:nofault|control [--run ...] (with $SHADOWD_RUNDIR set)');
  process.exit(2);
}

const t0 = Date.now();
const note = (text: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);

for (const m of ['ata_piix', 'ahci', 'virtio_blk', 'sd_mod', 'ext4']) await execa('modprobe', [m]);
const inputs = loadDiskAppsInputs(values.inputs);
// The reference, once per boot, on a tmpfs: what every run must reproduce.
const refDir = mkdtempSync('/dev/shm/disk-apps-ref-');
const reference = await computeDiskAppsReference(inputs, refDir);
await execa('rm', ['-rf', refDir]);
note(
  `reference on tmpfs: build ${reference.compiler.ms} ms (${Object.keys(reference.compiler.outputs).length} outputs, ${reference.compiler.steps} steps), ` +
    `encode ${reference.encoder.ms} ms (${reference.encoder.bytes} bytes)`,
);
console.log(
  `DISK_APPS_REFERENCE ${JSON.stringify({ compilerMs: reference.compiler.ms, outputs: Object.keys(reference.compiler.outputs).length, steps: reference.compiler.steps, encoderMs: reference.encoder.ms, flacBytes: reference.encoder.bytes })}`,
);

for (const [, serial, run] of runs as RegExpExecArray[]) {
  const result = await runDiskAppsOnDisk({ serial: serial!, label: run!, inputs, reference, runDir, fault: run === 'control' ? unbindBindFault(1000) : null, log: note });
  console.log(`DISK_APPS_RESULT ${JSON.stringify(result)}`);
}
note('done');
