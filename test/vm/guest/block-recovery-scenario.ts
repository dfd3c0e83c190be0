// The disk class end to end, in the guest: shadowd puts each scratch disk
// under a map of its own (CreateMap=yes), the disk applications (compiler,
// encoder, database) run on ext4 made on that map, and mid-run the disk's
// driver fails (a fault injected through shadowctl). shadowd must detect it,
// restart the controller's driver, find the disk again, point the map at it
// and put its settings back, with no application seeing an error.
//   node block-recovery-scenario.js --inputs DIR --run SERIAL:FAULT [--run ...]
// Prints `BLOCK_RECOVERY_RESULT <json>` per run for
// test/vm/classes/block/recovery-apps.test.ts.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { computeDiskAppsReference } from './disk-apps/apps.js';
import { waitForDisk, type DiskFault, type DiskRef, type FaultReport } from './disk-apps/disks.js';
import { runDiskAppsOnDisk, type DiskAppsRunResult, type DiskStack } from './disk-apps/run.js';
import { loadDiskAppsInputs } from './disk-apps/inputs.js';
import { loadHelper } from './nic-setup.js';
import { startShadowd } from './shadowd-process.js';
import { mapOf as mapOfDisk, rowOfMap, shadowctlFor, type StatusRow } from './block-shadowctl.js';

const { values } = parseArgs({ options: { inputs: { type: 'string' }, run: { type: 'string', multiple: true, default: [] } } });
const runDir = process.env['SHADOWD_RUNDIR'];
const runs = values.run.map((r) => {
  const [serial, fault] = r.split(':');
  return { serial: serial ?? '', fault: fault ?? '' };
});
if (!values.inputs || runs.length === 0 || !runDir || runs.some((r) => !/^[\w-]+$/.test(r.serial) || !/^[a-z-]+$/.test(r.fault))) {
  console.error('usage: block-recovery-scenario.js --inputs DIR --run SERIAL:FAULT [--run ...] (with $SHADOWD_RUNDIR set)');
  process.exit(2);
}

/** How long the scenario waits for shadowd's recovery to end after the fault. */
const RECOVERY_WAIT_MS = 240_000;

const t0 = Date.now();
const note = (text: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);

for (const m of ['ata_piix', 'ahci', 'virtio_blk', 'sd_mod', 'ext4', 'dm-multipath']) await execa('modprobe', [m]);
await loadHelper(true);
const inputs = loadDiskAppsInputs(values.inputs);
const refDir = mkdtempSync('/dev/shm/disk-apps-ref-');
const reference = await computeDiskAppsReference(inputs, refDir);
await execa('rm', ['-rf', refDir]);
note(`reference on tmpfs: build ${reference.compiler.ms} ms, encode ${reference.encoder.ms} ms`);

// Every disk of the runs gets CreateMap=yes in its own section.
const disks = new Map<string, DiskRef>();
for (const r of runs) disks.set(r.serial, await waitForDisk(r.serial, 30_000));
const work = mkdtempSync('/tmp/block-recovery-');
const config = join(work, 'shadowd.conf');
writeFileSync(config, [...disks.values()].map((d) => `[Device block:${d.name}]\nCreateMap=yes\n`).join('\n'));
let daemonLog = '';
const started = await startShadowd(work, (t) => (daemonLog += t), ['--allow-faults', '--config', config, '--log-level', 'debug']);
note(`shadowd ready in ${started.readyMs} ms`);
const ctl = shadowctlFor(work);
const mapOf = (name: string, timeoutMs: number): Promise<string> => mapOfDisk(ctl, name, timeoutMs, () => daemonLog.slice(-3000));

export interface BlockRecoveryResult extends DiskAppsRunResult {
  fault: FaultReport | null;
  map: string;
  history: unknown;
  statusAfter: StatusRow | null;
  /** read_ahead_kb set to 1024 before the run, as read on the disk after it. */
  readAheadAfter: string;
  daemonLog: string;
}

for (const { serial, fault } of runs) {
  const disk = disks.get(serial)!;
  const map = await mapOf(disk.name, 60_000);
  // A setting an administrator made, which the restart loses and the replay puts back.
  writeFileSync(`/sys/block/${disk.name}/queue/read_ahead_kb`, '1024');
  const logFrom = daemonLog.length;
  const onMap: DiskStack = {
    device: () => Promise.resolve(`/dev/mapper/${map}`),
    deviceAfter: (_d, _a, device) => Promise.resolve(device),
    // The failed driver's requests fail on the old disk: the map takes them as path errors and holds them.
    requestErrorsExpectedOn: (d, after) => [d.name, ...(after ? [after.name] : [])],
  };
  const injectFault: DiskFault = async (d) => {
    const t = Date.now();
    const r = await ctl('inject', `block:${d.name}`, fault);
    const reply = `${r.stdout}${r.stderr}`.trim();
    if (r.exitCode !== 0) throw new Error(`shadowctl inject block:${d.name} ${fault} failed: ${reply}`);
    const steps = [{ what: `shadowctl inject block:${d.name} ${fault}: ${reply}`, ms: Date.now() - t }];
    // shadowd detects the failure and recovers on its own: wait for its recovery to end.
    const w = Date.now();
    for (;;) {
      const h = await ctl('history', `block:${d.name}`, '--json');
      const recs = h.exitCode === 0 ? (JSON.parse(h.stdout) as { recoveries: { result: string | null }[] }).recoveries : [];
      const ended = recs.length > 0 && recs.every((x) => x.result !== null && x.result !== 'in-progress');
      if (ended || Date.now() - w > RECOVERY_WAIT_MS) {
        steps.push({ what: ended ? `shadowd's recoveries: ${recs.map((x) => x.result).join(', ')}` : `no recovery of shadowd ended within ${RECOVERY_WAIT_MS / 1000} s`, ms: Date.now() - w });
        return { kind: `shadowd ${fault}`, steps };
      }
      await new Promise((res) => setTimeout(res, 500));
    }
  };
  const run = await runDiskAppsOnDisk({ serial, label: `shadowd-${fault}`, inputs, reference, runDir, fault: injectFault, stack: onMap, log: note });
  const history = await ctl('history', `block:${disk.name}`, '--json');
  const after = await rowOfMap(ctl, map);
  const readAheadAfter = after ? (await execa('cat', [`/sys/block/${after.name}/queue/read_ahead_kb`], { reject: false })).stdout.trim() : '';
  const result: BlockRecoveryResult = {
    ...run,
    map,
    history: history.exitCode === 0 ? (JSON.parse(history.stdout) as unknown) : history.stderr,
    statusAfter: after,
    readAheadAfter,
    daemonLog: daemonLog.slice(logFrom),
  };
  console.log(`BLOCK_RECOVERY_RESULT ${JSON.stringify(result)}`);
}
started.daemon.kill('SIGTERM');
await started.daemon;
note('done');
