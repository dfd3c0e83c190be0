// The disk class end to end, in the guest: shadowd puts each scratch disk
// under a map of its own (CreateMap=yes), the disk applications (compiler,
// encoder, database) run on ext4 made on that map, and mid-run the disk's
// driver fails (a fault injected through shadowctl). shadowd must detect it,
// restart the controller's driver, find the disk again, point the map at it
// and put its settings back, with no application seeing an error.
// A driver named with --late-driver is loaded only once shadowd is ready: its
// disks (their serials given with --late) appear while shadowd runs, and
// CreateMap=yes in the driver's section must put them under a map then.
// With --lost SERIAL, last: that disk's PCI controller is kept from binding
// again (driver_override), a manual recovery restarts its driver, and a
// direct write to its map once the disk is gone must be held, then fail once
// LostDiskHoldMs (LOST_HOLD_MS here) has run out, with the journal saying why:
// shadowd never holds a lost disk's I/O for ever.
//   node block-recovery-scenario.js --inputs DIR --run SERIAL:FAULT [--run ...] [--late-driver MODULE --late SERIAL ...] [--lost SERIAL]
// Prints `BLOCK_RECOVERY_RESULT <json>` per run for
// test/vm/classes/block/recovery-apps.test.ts.
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
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

const { values } = parseArgs({ options: { inputs: { type: 'string' }, run: { type: 'string', multiple: true, default: [] }, 'late-driver': { type: 'string' }, late: { type: 'string', multiple: true, default: [] }, lost: { type: 'string' } } });
const late = values['late-driver'];
const runDir = process.env['SHADOWD_RUNDIR'];
const runs = values.run.map((r) => {
  const [serial, fault] = r.split(':');
  return { serial: serial ?? '', fault: fault ?? '' };
});
if (!values.inputs || runs.length === 0 || !runDir || runs.some((r) => !/^[\w-]+$/.test(r.serial) || !/^[a-z-]+$/.test(r.fault)) || (late !== undefined && !/^\w+$/.test(late)) || (late === undefined) !== (values.late.length === 0) || (values.lost !== undefined && !runs.some((r) => r.serial === values.lost))) {
  console.error('usage: block-recovery-scenario.js --inputs DIR --run SERIAL:FAULT [--run ...] [--late-driver MODULE --late SERIAL ...] [--lost SERIAL] (with $SHADOWD_RUNDIR set; --lost names a disk of a --run)');
  process.exit(2);
}

/** How long the scenario waits for shadowd's recovery to end after the fault. */
const RECOVERY_WAIT_MS = 240_000;
/** LostDiskHoldMs for every disk: longer than a healthy restart here would be a weaker test of "never while shadowd still recovers it". */
const LOST_HOLD_MS = 10_000;

const t0 = Date.now();
const note = (text: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);

for (const m of ['ata_piix', 'ahci', 'virtio_blk', 'sd_mod', 'ext4', 'dm-multipath']) if (m !== late) await execa('modprobe', [m]);
await loadHelper(true);
const inputs = loadDiskAppsInputs(values.inputs);
const refDir = mkdtempSync('/dev/shm/disk-apps-ref-');
const reference = await computeDiskAppsReference(inputs, refDir);
await execa('rm', ['-rf', refDir]);
note(`reference on tmpfs: build ${reference.compiler.ms} ms, encode ${reference.encoder.ms} ms`);

// Every disk of the runs there now gets CreateMap=yes in its own section; the late driver's, in the driver's.
const disks = new Map<string, DiskRef>();
for (const r of runs) if (!values.late.includes(r.serial)) disks.set(r.serial, await waitForDisk(r.serial, 30_000));
const work = mkdtempSync('/tmp/block-recovery-');
const config = join(work, 'shadowd.conf');
const sections = [`[Class block]\nLostDiskHoldMs=${LOST_HOLD_MS}\n`, ...[...disks.values()].map((d) => `[Device block:${d.name}]\nCreateMap=yes\n`)];
if (late) sections.push(`[Driver ${late}]\nCreateMap=yes\n`);
writeFileSync(config, sections.join('\n'));
let daemonLog = '';
const started = await startShadowd(work, (t) => (daemonLog += t), ['--allow-faults', '--config', config, '--log-level', 'debug']);
note(`shadowd ready in ${started.readyMs} ms`);
if (late) {
  await execa('modprobe', [late]);
  note(`loaded ${late} after shadowd started`);
  for (const r of runs) if (!disks.has(r.serial)) disks.set(r.serial, await waitForDisk(r.serial, 30_000));
}
const ctl = shadowctlFor(work);
const mapOf = (name: string, timeoutMs: number): Promise<string> => mapOfDisk(ctl, name, timeoutMs, () => daemonLog.slice(-3000));

export interface LostDiskResult {
  disk: string;
  map: string;
  holdMs: number;
  recover: { exitCode: number | undefined; output: string };
  /** The direct write issued once the disk was gone: still running (held) 500 ms later, then failed; endedAfterMs counts from its start. */
  write: { exitCode: number | undefined; stderr: string; heldAt500Ms: boolean; endedAfterMs: number };
  /** dmsetup table of the map afterwards. */
  table: string;
  daemonLog: string;
}

export interface BlockRecoveryResult extends DiskAppsRunResult {
  fault: FaultReport | null;
  map: string;
  history: unknown;
  statusAfter: StatusRow | null;
  /** read_ahead_kb set to 1024 before the run, as read on the disk after it. */
  readAheadAfter: string;
  daemonLog: string;
}

/** Each run's map, by serial. */
const maps = new Map<string, string>();
for (const { serial, fault } of runs) {
  const disk = disks.get(serial)!;
  const map = await mapOf(disk.name, 60_000);
  maps.set(serial, map);
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
if (values.lost) {
  const map = maps.get(values.lost)!;
  const row = await rowOfMap(ctl, map);
  if (!row?.bus || !/^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/.test(row.bus)) throw new Error(`--lost ${values.lost}: no disk on a PCI controller shows map ${map}: ${JSON.stringify(row)}`);
  const logFrom = daemonLog.length;
  // The controller's driver will not bind again: the disk does not come back.
  writeFileSync(`/sys/bus/pci/devices/${row.bus}/driver_override`, 'none');
  const recover = ctl('recover', `block:${row.name}`);
  // A write issued once the driver has let go of the disk: the map must hold it, then fail it.
  const gone = Date.now() + 120_000;
  while (existsSync(`/sys/block/${row.name}`) && Date.now() < gone) await new Promise((r) => setTimeout(r, 50));
  const t = Date.now();
  const write = execa('dd', ['if=/dev/zero', `of=/dev/mapper/${map}`, 'bs=4096', 'count=1', 'seek=64', 'oflag=direct'], { reject: false });
  // A path that is gone fails a write in milliseconds unless the map holds it.
  await new Promise((r) => setTimeout(r, 500));
  const heldAt500Ms = write.exitCode === null;
  const w = await write;
  const writeMs = Date.now() - t;
  const rec = await recover;
  const table = await execa('dmsetup', ['table', map], { reject: false });
  const result: LostDiskResult = {
    disk: row.name,
    map,
    holdMs: LOST_HOLD_MS,
    recover: { exitCode: rec.exitCode, output: `${rec.stdout}${rec.stderr}`.trim() },
    write: { exitCode: w.exitCode, stderr: w.stderr.trim(), heldAt500Ms, endedAfterMs: writeMs },
    table: table.stdout.trim(),
    daemonLog: daemonLog.slice(logFrom),
  };
  console.log(`LOST_DISK_RESULT ${JSON.stringify(result)}`);
}
started.daemon.kill('SIGTERM');
await started.daemon;
note('done');
