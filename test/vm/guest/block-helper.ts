// Runs inside the guest, as root, for test/vm/kmod/block-helper.test.ts: loads
// the three disk drivers (ata_piix, ahci, virtio_blk) and the helper module
// (allow_faults=1), finds each disk by its serial (shadowd-diskN), and drives
// the helper's block class on every one of them for real: plain and reload
// restarts, each fault's effect and a restart with each fault active, a
// sticky fault coming back, bad input, a fault on a disk being removed, and
// rmmod with faults active; then a dm-multipath map over the PIIX disk keeps
// a writer going across a restart under lost-irq, after fail-stop was cycled
// on that disk under a map with ext4 and fsync writers (a helper that
// quiesced the queue for the swap left mq-deadline counting flush clones it
// never completed: the dd_exit_sched WARN at the disk's removal,
// fail-stop-flush-cycles.ts). Data written before is read back after every
// restart. Then the disk class's kernel log rule on a real
// give-up of libata's error handler (the AHCI disk under lost-irq), and on
// a restart, whose unload prints the same "disable device" for a disk
// already gone (on 6.1; 6.12's unload prints none). Prints one "BLOCK_RESULT <json>" line; exits 1 listing what
// went wrong.
//   node dist/test/vm/guest/block-helper.js --ko PATH [--no-teardown-run]
//     [--dm-only [--scsi-timeout S]]  (only the dm writer on each ATA disk, SCSI timeout S, default 30)
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { release } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { loadHelperDeps } from './helper-deps.js';
import { failStopFlushCycles, type FlushCycleRecord } from './fail-stop-flush-cycles.js';
import { execa, type ResultPromise } from 'execa';
import { BLOCK_DECLARATION } from '../../../daemon/classes/block/block-declaration.js';
import type { FailureReport } from '../../../daemon/core/failure-report.js';
import { KernelLogWatch } from '../../../daemon/core/kernel-log-watch.js';

const HELPER = '/dev/shadow_helper';
const MiB = 1024 * 1024;
/** Where each disk's pattern lives (MiB), clear of the partition table the test writes at sector 0. */
const DATA_AT_MIB = 1;
const DATA_MIB = 1;
/** fail-stop cycles on the PIIX disk under a map (about 0.6 s each): a helper that quiesced the queue leaked a count every 2 to 5 of them (10 to 12 in 25 to 60). */
const FLUSH_CYCLES = 25;

interface Disk {
  name: string;
  serial: string;
  sectors: number;
  devt: string;
  sysfs: string;
}
interface DiskSpec {
  serial: string;
  driver: string;
  scsi: boolean;
  pci: boolean;
}
const SPECS: readonly DiskSpec[] = [
  { serial: 'shadowd-disk0', driver: 'ata_piix', scsi: true, pci: true },
  { serial: 'shadowd-disk1', driver: 'ahci', scsi: true, pci: true },
  { serial: 'shadowd-disk2', driver: 'virtio_blk', scsi: false, pci: false },
];

export interface RestartRecord {
  disk: string;
  what: string;
  reply: string;
  releaseMs: number;
  totalMs: number;
  steps: string;
  unit: string;
  reappearMs: number;
  newName: string;
  sameSize: boolean;
  dataOk: boolean;
}
export interface Result {
  version?: string;
  disks: Record<string, { name: string; unit?: string; sectors: number }>;
  restarts: RestartRecord[];
  faults: Record<string, Record<string, string>>;
  badInput: Record<string, string>;
  fuzz?: Record<string, number>;
  removal?: { replies: Record<string, number>; rebound: boolean };
  rmmod?: { rmmod: boolean; readsAfter: Record<string, boolean> };
  dm?: Record<string, unknown>;
  /** fail-stop cycled on the PIIX disk under a map with ext4 and fsync writers, before the dm run. */
  flushCycles?: FlushCycleRecord;
  noTeardown?: Record<string, unknown>;
  /** The kernel log rule (eh-gave-up-log.ts) over a restart of the PIIX unit, then over libata giving up on the AHCI disk. */
  ehGaveUp?: EhGaveUpRecord;
  /** --dm-only: one dm run per ATA disk, keyed by driver. */
  dmOnly?: Record<string, Record<string, unknown>>;
  failures: string[];
}
export interface EhGaveUpRecord {
  /** What the watch reported during a plain restart of the PIIX unit (nothing), and the notices it logged instead. */
  restartReports: FailureReport[];
  restartNotices: string[];
  ahci: string;
  scsiTimeoutS: number;
  /** From the read's start to the first report; -1 if none came. */
  reportAfterMs: number;
  reports: FailureReport[];
  readExit: number | undefined;
  readStderr: string;
}
const result: Result = { disks: {}, restarts: [], faults: {}, badInput: {}, failures: [] };

function fail(what: string): void {
  result.failures.push(what);
  console.error(`FAIL ${what}`);
}
function check(ok: boolean, what: string): boolean {
  if (!ok) fail(what);
  return ok;
}

/** One command, one reply: a fresh descriptor each time, as a CLI would. */
function helper(command: string): string {
  const fd = openSync(HELPER, 'r+');
  try {
    writeSync(fd, command);
    const buf = Buffer.alloc(1024);
    let out = '';
    for (;;) {
      const n = readSync(fd, buf, 0, buf.length, null);
      if (n === 0) break;
      out += buf.toString('latin1', 0, n);
    }
    return out.trim();
  } finally {
    closeSync(fd);
  }
}

function field(reply: string, key: string): string {
  const m = new RegExp(`(?:^| )${key}=(\\S+)`).exec(reply);
  return m?.[1] ?? '';
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'latin1').trim();
  } catch {
    return undefined;
  }
}

/** A disk's serial: virtio's own attribute, or the SCSI VPD page 0x80 (ATA's serial through SAT). */
function serialOf(name: string): string | undefined {
  const own = readText(`/sys/block/${name}/serial`);
  if (own) return own;
  try {
    const page = readFileSync(`/sys/block/${name}/device/vpd_pg80`);
    return page.subarray(4, 4 + (page[3] ?? 0)).toString('latin1').trim();
  } catch {
    return undefined;
  }
}

function listDisks(): Disk[] {
  const disks: Disk[] = [];
  for (const name of readdirSync('/sys/block')) {
    if (name.startsWith('dm-') || name.startsWith('loop')) continue;
    const serial = serialOf(name);
    const sectors = Number(readText(`/sys/block/${name}/size`) ?? '0');
    const devt = readText(`/sys/block/${name}/dev`) ?? '';
    if (serial && sectors > 0 && existsSync(`/dev/${name}`)) {
      disks.push({ name, serial, sectors, devt, sysfs: readlinkSync(`/sys/block/${name}`) });
    }
  }
  return disks;
}

/**
 * A disk under @unit whatever its state: one whose sticky fault came back
 * at once may not even tell its serial (virtio asks the device) or size
 * (SCSI revalidates through the failed queue).
 */
async function waitDiskUnder(unit: string, timeoutMs: number): Promise<string | undefined> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    for (const name of readdirSync('/sys/block')) {
      if (readlinkSync(`/sys/block/${name}`).includes(`/${unit}/`) && existsSync(`/dev/${name}`)) return name;
    }
    if (performance.now() > end) return undefined;
    await sleep(100);
  }
}

/** Waits for the disk with @serial (not named @notName) to be there, as the daemon will. */
async function waitDisk(serial: string, timeoutMs: number, notName?: string): Promise<Disk | undefined> {
  const end = performance.now() + timeoutMs;
  for (;;) {
    const d = listDisks().find((x) => x.serial === serial && x.name !== notName);
    if (d) return d;
    if (performance.now() > end) return undefined;
    await sleep(100);
  }
}

function runDir(): string {
  const dir = process.env['SHADOWD_RUNDIR'];
  if (!dir) throw new Error('SHADOWD_RUNDIR is not set: run through the guest rig');
  return dir;
}

async function dd(args: string[]): Promise<{ ok: boolean; stderr: string; code: number | undefined }> {
  const r = await execa('dd', args, { reject: false });
  return { ok: r.exitCode === 0, stderr: r.stderr, code: r.exitCode };
}

const patterns = new Map<string, string>();
async function writePattern(disk: Disk): Promise<boolean> {
  const file = join(runDir(), `pattern-${disk.serial}`);
  writeFileSync(file, randomBytes(DATA_MIB * MiB));
  patterns.set(disk.serial, file);
  const r = await dd([`if=${file}`, `of=/dev/${disk.name}`, 'bs=64k', `seek=${DATA_AT_MIB * 16}`, 'oflag=direct', 'conv=fsync,notrunc']);
  return check(r.ok, `write pattern to ${disk.name}: ${r.stderr}`);
}
async function patternOk(disk: Disk): Promise<boolean> {
  const file = patterns.get(disk.serial);
  if (!file) return false;
  const out = join(runDir(), `readback-${disk.serial}`);
  const r = await dd([`if=/dev/${disk.name}`, `of=${out}`, 'bs=64k', `skip=${DATA_AT_MIB * 16}`, `count=${DATA_MIB * 16}`, 'iflag=direct']);
  return r.ok && readFileSync(out).equals(readFileSync(file));
}
async function readWorks(name: string): Promise<{ ok: boolean; stderr: string }> {
  const r = await dd([`if=/dev/${name}`, 'of=/dev/null', 'bs=4k', 'count=4', 'iflag=direct']);
  return { ok: r.ok, stderr: r.stderr.split('\n')[0] ?? '' };
}
/** Reads the disk completed (the first field of its stat). */
function readsDone(name: string): number {
  return Number((readText(`/sys/block/${name}/stat`) ?? '0').split(/\s+/)[0]);
}
function inflight(name: string): number {
  const [r = '0', w = '0'] = (readText(`/sys/block/${name}/inflight`) ?? '0 0').split(/\s+/);
  return Number(r) + Number(w);
}

let recoveryId = 0;
/** Restarts @disk's unit, waits for the disk to come back and checks it. */
async function restart(disk: Disk, what: string, opts: { reload?: boolean } = {}): Promise<Disk> {
  const id = `b${++recoveryId}`;
  const reply = helper(`restart block:${disk.name} ${id}${opts.reload ? ' reload' : ''}`);
  const t0 = performance.now();
  const rec: RestartRecord = {
    disk: disk.serial,
    what,
    reply,
    releaseMs: Number(field(reply, 'release_ms')),
    totalMs: Number(field(reply, 'total_ms')),
    steps: field(reply, 'steps'),
    unit: field(reply, 'unit'),
    reappearMs: -1,
    newName: '',
    sameSize: false,
    dataOk: false,
  };
  result.restarts.push(rec);
  if (!check(reply.startsWith(`ok restarted block:${disk.name} id=${id} unit=`), `${what} on ${disk.name}: ${reply}`)) return disk;
  const back = await waitDisk(disk.serial, 30_000);
  if (!check(back !== undefined, `${what}: ${disk.serial} did not come back`) || !back) return disk;
  rec.reappearMs = Math.round(performance.now() - t0);
  rec.newName = back.name;
  rec.sameSize = back.sectors === disk.sectors;
  rec.dataOk = await patternOk(back);
  check(rec.sameSize, `${what}: ${disk.serial} came back with ${back.sectors} sectors, not ${disk.sectors}`);
  check(rec.dataOk, `${what}: ${disk.serial}'s data differs after the restart`);
  return back;
}

/** A raw read that stays in flight while interrupts are lost, and completes once they are back. */
async function lostIrq(disk: Disk, faults: Record<string, string>): Promise<void> {
  faults['inject'] = helper(`inject block:${disk.name} lost-irq`);
  if (!check(faults['inject'] === `ok injected block:${disk.name} lost-irq`, `lost-irq on ${disk.name}: ${faults['inject']}`)) return;
  const reader = execa('dd', [`if=/dev/${disk.name}`, 'of=/dev/null', 'bs=4k', 'count=1', `skip=${4096 + recoveryId}`, 'iflag=direct'], { reject: false });
  let done = false;
  void reader.then(() => {
    done = true;
  });
  await sleep(500);
  const samples: number[] = [];
  for (let i = 0; i < 10; i++) {
    samples.push(inflight(disk.name));
    await sleep(150);
  }
  faults['inflightWhileLost'] = samples.join(',');
  faults['doneWhileLost'] = String(done);
  check(samples.every((n) => n > 0) && !done, `lost-irq on ${disk.name}: I/O did not stay in flight (${samples.join(',')}, done ${done})`);
  const t0 = performance.now();
  faults['clear'] = helper(`inject block:${disk.name} clear`);
  const r = await Promise.race([reader, sleep(15_000).then(() => undefined)]);
  faults['completedAfterClearMs'] = String(Math.round(performance.now() - t0));
  check(r !== undefined && r.exitCode === 0, `lost-irq on ${disk.name}: the read did not complete after clear (${r?.stderr ?? 'still running'})`);
  faults['inflightAfter'] = String(inflight(disk.name));
}

async function failStop(disk: Disk, faults: Record<string, string>): Promise<void> {
  faults['inject'] = helper(`inject block:${disk.name} fail-stop`);
  const r = await readWorks(disk.name);
  faults['read'] = r.ok ? 'ok' : r.stderr;
  check(!r.ok && /Input\/output error/.test(r.stderr), `fail-stop on ${disk.name}: read gave ${faults['read']}`);
  faults['clear'] = helper(`inject block:${disk.name} clear`);
  faults['clearAgain'] = helper(`inject block:${disk.name} clear`);
  const after = await readWorks(disk.name);
  check(after.ok, `fail-stop on ${disk.name}: read after clear: ${after.stderr}`);
  faults['readAfterClear'] = after.ok ? 'ok' : after.stderr;
}

/** A reader with the disk open before the fault: an offline SCSI device refuses new opens (ENXIO). */
async function diskError(disk: Disk, faults: Record<string, string>): Promise<void> {
  const before = readsDone(disk.name);
  const reader: ResultPromise = execa('dd', [`if=/dev/${disk.name}`, 'of=/dev/null', 'bs=512', 'iflag=direct'], { reject: false });
  // The fault comes once the reader has the disk open and reads.
  for (let i = 0; i < 100 && readsDone(disk.name) < before + 20; i++) await sleep(50);
  faults['inject'] = helper(`inject block:${disk.name} disk-error`);
  const r = await Promise.race([reader, sleep(60_000).then(() => undefined)]);
  const line = typeof r?.stderr === 'string' ? (r.stderr.split('\n')[0] ?? '') : 'still running';
  faults['read'] = line;
  check(r !== undefined && r.exitCode !== 0 && /Input\/output error/.test(line), `disk-error on ${disk.name}: the reader got ${line}`);
  faults['clear'] = helper(`inject block:${disk.name} clear`);
  const after = await readWorks(disk.name);
  faults['readAfterClear'] = after.ok ? 'ok' : after.stderr;
  check(after.ok, `disk-error on ${disk.name}: read after clear: ${after.stderr}`);
}

function bad(key: string, command: string, expect: RegExp): void {
  const reply = helper(command);
  result.badInput[key] = reply;
  check(expect.test(reply), `${command} answered ${reply}`);
}

/**
 * Random block-class lines against the real disks, their partition and the
 * dm device: every one gets a protocol reply (never a restart: the ids are
 * malformed), and every disk is cleared afterwards.
 */
function fuzzBlock(names: readonly string[]): void {
  let seed = 0x5eed;
  // xorshift32: the same lines every run.
  const rand = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const pick = <T>(list: readonly T[]): T => list[rand(list.length)] as T;
  const noise = ['', '.', '..', 'a/b', 'sd', 'x'.repeat(31), 'x'.repeat(32), 'sda:1', 'SDA', '-', 'sticky', 'reload', 'clear'];
  const counts: Record<string, number> = {};
  for (let i = 0; i < 600; i++) {
    const ref = rand(4) === 0 ? `block:${pick(noise)}` : `block:${pick(names)}`;
    const line = pick([
      () => `inject ${ref} ${pick(['lost-irq', 'fail-stop', 'disk-error', 'clear', 'bogus', 'tx-hang', 'LOST-IRQ'])}${pick(['', ' sticky', ' x', ' sticky sticky'])}`,
      () => `restart ${ref} ${pick(['bad!id', 'a.b', 'x'.repeat(33), ''])}${pick(['', ' reload', ' x'])}`,
      () => `park ${ref} ${pick(['r/1', '*'])}`,
      () => `${pick(['txstat', 'stage'])} ${ref}${pick(['', ' clear', ' msglvl 1'])}`,
    ])();
    const reply = helper(line.trimEnd());
    const key = reply.split(' ').slice(0, 2).join(' ');
    counts[key] = (counts[key] ?? 0) + 1;
    if (!/^(ok (injected|cleared) |err E[A-Z]+ )/.test(reply)) fail(`fuzz: ${line} answered ${reply}`);
  }
  for (const name of names) helper(`inject block:${name} clear`);
  result.fuzz = counts;
}

/** An MBR with one partition at 2 MiB, so that the disk has a partition to refuse. */
async function partition(disk: Disk): Promise<boolean> {
  const mbr = Buffer.alloc(512);
  const entry = 446;
  mbr[entry + 4] = 0x83;
  mbr.writeUInt32LE(4096, entry + 8);
  mbr.writeUInt32LE(4096, entry + 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  const file = join(runDir(), 'mbr');
  writeFileSync(file, mbr);
  const w = await dd([`if=${file}`, `of=/dev/${disk.name}`, 'bs=512', 'count=1', 'oflag=direct', 'conv=notrunc']);
  const r = await execa('blockdev', ['--rereadpt', `/dev/${disk.name}`], { reject: false });
  return check(w.ok && r.exitCode === 0 && existsSync(`/sys/block/${disk.name}/${disk.name}1`), `partition on ${disk.name}: ${w.stderr} ${r.stderr}`);
}

function dmsetup(args: string[]): Promise<{ exitCode?: number; stderr: string; stdout: string }> {
  return execa('dmsetup', args, { reject: false, env: { DM_DISABLE_UDEV: '1' } });
}

/**
 * dm-multipath over the PIIX disk: a writer keeps writing through the map
 * while interrupts are lost and the unit restarts; the map is switched to
 * the disk found again (reload + resume --noflush) and the data checked.
 */
/** The kernel's SCSI command timeout unless someone set another. */
const DEFAULT_SCSI_TIMEOUT_S = 30;
/** The release of a hung ATA disk with the fast teardown: seconds (about 5.5 s measured on 6.1 and 6.12 with ata_piix). */
const FAST_RELEASE_MS = 25_000;

async function dmRun(disk: Disk, key: string, scsiTimeoutS = 5): Promise<Disk> {
  const out: Record<string, unknown> = {};
  if (key === 'dm' || key === 'noTeardown') result[key] = out;
  else (result.dmOnly ??= {})[key] = out;
  const map = `shadowmp-${key}`;
  const table = (devt: string): string => `0 ${disk.sectors} multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 ${devt} 1`;
  const c = await dmsetup(['create', map, '--table', table(disk.devt)]);
  if (!check(c.exitCode === 0, `dmsetup create: ${c.stderr}`)) return disk;
  // The SCSI timeout bounds how long a command lost with its interrupt waits.
  writeFileSync(`/sys/block/${disk.name}/device/timeout`, String(scsiTimeoutS));
  out['scsiTimeoutS'] = scsiTimeoutS;
  const file = join(runDir(), `dm-pattern-${key}`);
  const WRITE_MIB = 8;
  writeFileSync(file, randomBytes(WRITE_MIB * MiB));
  const t0 = performance.now();
  const writer = execa('dd', [`if=${file}`, `of=/dev/mapper/${map}`, 'bs=4k', `seek=${8 * 256}`, 'oflag=direct', 'conv=notrunc,fsync'], { reject: false });
  let writerDone = false;
  void writer.then(() => {
    writerDone = true;
  });
  await sleep(800);
  out['inject'] = helper(`inject block:${disk.name} lost-irq`);
  await sleep(1500);
  out['inflightBeforeRestart'] = inflight(disk.name);
  out['writerDoneBeforeRestart'] = writerDone;
  const reply = helper(`restart block:${disk.name} dm-${key}`);
  out['reply'] = reply;
  out['releaseMs'] = Number(field(reply, 'release_ms'));
  check(reply.startsWith(`ok restarted block:${disk.name} `), `dm restart: ${reply}`);
  const back = await waitDisk(disk.serial, 30_000, disk.name);
  if (!check(back !== undefined, 'dm: the disk did not come back') || !back) return disk;
  out['newDisk'] = `${back.name} ${back.devt}`;
  const rl = await dmsetup(['reload', map, '--table', table(back.devt)]);
  const rs = await dmsetup(['resume', '--noflush', map]);
  check(rl.exitCode === 0 && rs.exitCode === 0, `dm switch: ${rl.stderr} ${rs.stderr}`);
  const w = await Promise.race([writer, sleep(120_000).then(() => undefined)]);
  out['writerMs'] = Math.round(performance.now() - t0);
  out['writerExit'] = w?.exitCode ?? 'still running';
  check(w !== undefined && w.exitCode === 0, `dm writer: ${w?.stderr ?? 'still running'}`);
  const readBack = join(runDir(), `dm-readback-${key}`);
  const r = await dd([`if=/dev/${back.name}`, `of=${readBack}`, 'bs=4k', `skip=${8 * 256}`, `count=${WRITE_MIB * 256}`, 'iflag=direct']);
  out['dataOk'] = r.ok && readFileSync(readBack).equals(readFileSync(file));
  check(out['dataOk'] === true, 'dm: the data written across the restart differs');
  const status = await dmsetup(['status', map]);
  out['status'] = status.stdout.trim();
  await dmsetup(['remove', map]);
  return back;
}

/** Inject on a disk while its driver unbinds under it: replies, never an oops. */
async function removal(disk: Disk, unit: string, driver: string): Promise<void> {
  const replies: Record<string, number> = {};
  const unbind = writeFile(`/sys/bus/pci/drivers/${driver}/unbind`, unit);
  let finished = false;
  void unbind.then(() => {
    finished = true;
  }, () => {
    finished = true;
  });
  for (let i = 0; i < 400 && !finished; i++) {
    const fault = ['fail-stop', 'lost-irq', 'disk-error', 'clear'][i % 4] ?? 'clear';
    const reply = helper(`inject block:${disk.name} ${fault}`);
    const key = reply.split(' ').slice(0, 2).join(' ');
    replies[key] = (replies[key] ?? 0) + 1;
    await sleep(5);
  }
  await unbind.catch((e: unknown) => fail(`unbind ${unit}: ${String(e)}`));
  const afterGone = helper(`inject block:${disk.name} fail-stop`);
  replies[afterGone.split(' ').slice(0, 2).join(' ')] = (replies[afterGone.split(' ').slice(0, 2).join(' ')] ?? 0) + 1;
  await writeFile(`/sys/bus/pci/drivers/${driver}/bind`, unit);
  const back = await waitDisk(disk.serial, 30_000);
  result.removal = { replies, rebound: back !== undefined };
  check(back !== undefined, `${disk.serial} did not come back after a manual rebind`);
  check(/^err ENODEV /.test(afterGone), `inject on a removed disk answered ${afterGone}`);
}

/**
 * The disk class's kernel log rule (eh-gave-up-log.ts) on the real kernel, in
 * a KernelLogWatch as shadowd runs it. First a plain restart of the PIIX
 * unit: its unload prints "ataN.00: disable device" once the disk is gone,
 * which must be logged, not reported. Then lost interrupts on the AHCI disk
 * with a read in flight: after the SCSI timeout libata's error handler
 * resets the link and times out IDENTIFY (5 + 10 + 30 s), then gives up:
 * "ataN.00: disable device", which must be reported for that disk. Its
 * unit is restarted after, which brings the disk back.
 */
async function ehGaveUp(piixDisk: Disk, ahciDisk: Disk): Promise<[Disk, Disk]> {
  const scsiTimeoutS = 5;
  const rec: EhGaveUpRecord = { restartReports: [], restartNotices: [], ahci: ahciDisk.name, scsiTimeoutS, reportAfterMs: -1, reports: [], readExit: undefined, readStderr: '' };
  result.ehGaveUp = rec;
  let reports = rec.restartReports;
  let notices = rec.restartNotices;
  const watch = new KernelLogWatch({
    logger: { log: (_prio, message) => (message.includes('names no block device') ? notices.push(message) : undefined) },
    onReport: (r) => reports.push(r),
    onSelfFault: (f) => fail(`kernel log: a fault in the helper: ${f.detail}`),
    devices: () => Promise.resolve(listDisks().map((d) => ({ cls: 'block', name: d.name, driver: null, module: null }))),
    rules: BLOCK_DECLARATION.kernelLogRules,
  });
  watch.start();
  try {
    const piix = await restart(piixDisk, 'under the kernel log watch');
    await sleep(1000);
    await watch.settled();
    check(rec.restartReports.length === 0, `a restart was reported as a failure: ${JSON.stringify(rec.restartReports)}`);
    // 6.1's libata prints "disable device" for each device as the port unloads
    // (ata_eh_unload() → ata_dev_disable()); 6.12's disables them silently (ata_eh_dev_disable()).
    if (release().startsWith('6.1.')) {
      check(rec.restartNotices.some((n) => /ata\d+\.00 \(no disk on it now\): ata\d+\.00: disable device/.test(n)), `no notice of the unload's "disable device": ${JSON.stringify(rec.restartNotices)}`);
    } else {
      check(rec.restartNotices.length === 0, `notices of a restart on ${release()}, whose unload prints no "disable device": ${JSON.stringify(rec.restartNotices)}`);
    }
    reports = rec.reports;
    notices = [];
    writeFileSync(`/sys/block/${ahciDisk.name}/device/timeout`, String(scsiTimeoutS));
    const inject = helper(`inject block:${ahciDisk.name} lost-irq`);
    if (!check(inject === `ok injected block:${ahciDisk.name} lost-irq`, `lost-irq on ${ahciDisk.name}: ${inject}`)) return [piix, ahciDisk];
    const t0 = performance.now();
    const reader = execa('dd', [`if=/dev/${ahciDisk.name}`, 'of=/dev/null', 'bs=4k', 'count=1', `skip=${4 * 256}`, 'iflag=direct'], { reject: false });
    while (rec.reports.length === 0 && performance.now() - t0 < 180_000) await sleep(200);
    if (rec.reports.length > 0) rec.reportAfterMs = Math.round(performance.now() - t0);
    const r = await Promise.race([reader, sleep(30_000).then(() => undefined)]);
    rec.readExit = r?.exitCode;
    rec.readStderr = r?.stderr.split('\n')[0] ?? 'still running';
    await watch.settled();
    check(rec.reports.length > 0 && rec.reports.every((x) => x.device === ahciDisk.name && x.kind === 'eh-gave-up'), `libata's give-up on ${ahciDisk.name}: ${JSON.stringify(rec.reports)}`);
    const ahci = await restart(ahciDisk, 'after libata gave up');
    return [piix, ahci];
  } finally {
    watch.stop();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      ko: { type: 'string' },
      'no-teardown-run': { type: 'boolean', default: false },
      'dm-only': { type: 'boolean', default: false },
      'scsi-timeout': { type: 'string', default: '30' },
    },
  });
  if (!values.ko) throw new Error('--ko PATH is required');
  for (const mod of ['ata_piix', 'ahci', 'virtio_blk', 'sd_mod', 'dm-multipath']) {
    await execa('modprobe', [mod]);
  }
  // A reload runs modprobe from init's root, the rig's initramfs: give it the kernel's own helper.
  const modprobe = readFileSync('/proc/sys/kernel/modprobe', 'utf8').trim();
  loadHelperDeps(values.ko);
  await execa('insmod', [values.ko, 'allow_faults=1', `modprobe=${modprobe}`]);
  result.version = helper('version');
  check(/ classes=net,block,sound$/.test(result.version), `version: ${result.version}`);

  const disks: Disk[] = [];
  for (const spec of SPECS) {
    const d = await waitDisk(spec.serial, 30_000);
    if (!d) throw new Error(`no disk with serial ${spec.serial}: ${JSON.stringify(listDisks())}`);
    disks.push(d);
    result.disks[spec.serial] = { name: d.name, sectors: d.sectors };
    await writePattern(d);
  }
  const [piix, ahci, virtio] = disks as [Disk, Disk, Disk];
  const specOf = (d: Disk): DiskSpec => SPECS.find((s) => s.serial === d.serial) as DiskSpec;
  if (values['dm-only']) {
    // Only the dm writer under lost-irq, on each ATA disk, at the given SCSI timeout (measurements).
    for (const d of [piix, ahci]) await dmRun(d, specOf(d).driver, Number(values['scsi-timeout']));
    return;
  }

  // Bad input first, while every disk runs its driver.
  await partition(virtio);
  const dm = await dmsetup(['create', 'shadowlin', '--table', `0 2048 linear ${virtio.devt} 8192`]);
  check(dm.exitCode === 0, `dmsetup create linear: ${dm.stderr}`);
  const dmName = readdirSync('/sys/block').find((n) => n.startsWith('dm-')) ?? 'dm-0';
  bad('partition', `restart block:${virtio.name}1 p1`, new RegExp(`^err ENODEV block:${virtio.name}1 is a partition: name its whole disk$`));
  bad('partitionInject', `inject block:${virtio.name}1 fail-stop`, /^err ENODEV .* is a partition/);
  bad('dm', `restart block:${dmName} d1`, new RegExp(`^err ENODEV block:${dmName} has no driver under it`));
  bad('dmInject', `inject block:${dmName} lost-irq`, /^err ENODEV .*has no driver under it/);
  bad('nosuch', 'restart block:sdzz n1', /^err ENODEV no disk block:sdzz$/);
  bad('empty', 'restart block: e1', /^err EINVAL 'block:' is not a valid disk name/);
  bad('dotdot', 'inject block:.. fail-stop', /^err EINVAL .*not a valid disk name/);
  bad('slash', 'inject block:a/b fail-stop', /^err EINVAL .*not a valid disk name/);
  bad('long', `inject block:${'a'.repeat(32)} fail-stop`, /^err EINVAL /);
  bad('colon', 'inject block:sd:a fail-stop', /^err EINVAL .*not a valid disk name/);
  bad('class', `restart blk:${virtio.name} c1`, /^err EINVAL unknown device class "blk" \(classes: net,block,sound\)$/);
  bad('fault', `inject block:${virtio.name} bogus`, /^err EINVAL unknown block fault 'bogus' \(lost-irq, fail-stop, disk-error, clear\)$/);
  bad('option', `inject block:${virtio.name} fail-stop forever`, /^err EINVAL the only option is 'sticky'/);
  bad('clearSticky', `inject block:${virtio.name} clear sticky`, /^err EINVAL /);
  bad('txstat', `txstat block:${virtio.name}`, /^err EOPNOTSUPP block devices have no txstat command$/);
  bad('reloadVirtio', `restart block:${virtio.name} v1 reload`, /^err EOPNOTSUPP a reload needs a PCI device \(virtio\d+ is on virtio\)$/);
  bad('clearIdle', `inject block:${virtio.name} clear`, new RegExp(`^ok cleared block:${virtio.name}$`));
  fuzzBlock(disks.map((d) => d.name).concat(`${virtio.name}1`, dmName));
  await dmsetup(['remove', 'shadowlin']);

  // Restarts: plain, reload, then with each fault active.
  const current = new Map<string, Disk>(disks.map((d) => [d.serial, d]));
  for (const d0 of [piix, ahci, virtio]) {
    let d = current.get(d0.serial) as Disk;
    const spec = specOf(d);
    d = await restart(d, 'plain');
    const last = result.restarts.at(-1);
    if (last) {
      result.disks[d.serial] = { ...result.disks[d.serial], name: d.name, sectors: d.sectors, unit: last.unit };
      check(last.steps === (spec.scsi ? 'teardown:ok,open:skip' : 'teardown:skip,open:skip'), `plain restart steps ${last.steps}`);
      check(field(last.reply, 'disks') === '1', `disks= in ${last.reply}`);
    }
    if (spec.pci) {
      d = await restart(d, 'reload', { reload: true });
      const rec = result.restarts.at(-1);
      check(rec !== undefined && field(rec.reply, 'module') === spec.driver && rec.steps === 'teardown:ok,reload:ok,open:skip', `reload of ${spec.driver}: ${rec?.reply ?? ''}`);
    }
    current.set(d.serial, d);
  }
  for (const d0 of [piix, ahci, virtio]) {
    let d = current.get(d0.serial) as Disk;
    const faults: Record<string, Record<string, string>> = { lostIrq: {}, failStop: {}, diskError: {} };
    await lostIrq(d, faults['lostIrq'] as Record<string, string>);
    await failStop(d, faults['failStop'] as Record<string, string>);
    await diskError(d, faults['diskError'] as Record<string, string>);
    for (const fault of ['lost-irq', 'fail-stop', 'disk-error']) {
      const reply = helper(`inject block:${d.name} ${fault}`);
      check(reply === `ok injected block:${d.name} ${fault}`, `inject ${fault} before a restart: ${reply}`);
      d = await restart(d, `with ${fault}`);
      const r = await readWorks(d.name);
      check(r.ok, `after a restart with ${fault}, ${d.name} does not read: ${r.stderr}`);
    }
    for (const [k, v] of Object.entries(faults)) result.faults[`${d.serial} ${k}`] = v;
    current.set(d.serial, d);
  }

  // A sticky fault comes back on the fresh disk: synchronously added (virtio) or later (ahci).
  for (const serial of [virtio.serial, ahci.serial]) {
    let d = current.get(serial) as Disk;
    const unit = result.disks[serial]?.unit ?? '';
    const faults: Record<string, string> = {};
    faults['inject'] = helper(`inject block:${d.name} fail-stop sticky`);
    const reply = helper(`restart block:${d.name} s${serial.slice(-1)}`);
    faults['restart'] = reply.split(' ').slice(0, 3).join(' ');
    check(reply.startsWith('ok restarted'), `restart with a sticky fault: ${reply}`);
    const name = await waitDiskUnder(unit, 30_000);
    if (check(name !== undefined, `no disk under ${unit} after a restart with a sticky fault`) && name) {
      // The fault is applied as the disk is added (ATA adds it after the probe returned).
      await sleep(500);
      const r = await readWorks(name);
      const size = Number(readText(`/sys/block/${name}/size`) ?? '0');
      faults['readAfterRestart'] = r.ok ? `ok, ${size} sectors` : r.stderr;
      check(!r.ok || size === 0, `sticky fail-stop did not come back on ${name}: ${faults['readAfterRestart']}`);
      faults['clear'] = helper(`inject block:${name} clear`);
      // What the driver saw while failing stays (a SCSI disk revalidated to 0 sectors): restart again.
      const again = helper(`restart block:${name} t${serial.slice(-1)}`);
      faults['restartAfterClear'] = again.split(' ').slice(0, 3).join(' ');
      const back = await waitDisk(serial, 30_000, again.startsWith('ok') ? undefined : name);
      if (check(back !== undefined, `${serial} did not come back after clearing its sticky fault`) && back) {
        d = back;
        const ok = (await readWorks(d.name)).ok && (await patternOk(d));
        faults['readAfterClear'] = String(ok);
        check(ok, `after clearing the sticky fault ${d.name} does not read back its data`);
      }
    }
    result.faults[`${serial} sticky`] = faults;
    current.set(serial, d);
  }

  // A fault injected while the disk is being removed under it.
  const ahciNow = current.get(ahci.serial) as Disk;
  const ahciUnit = result.disks[ahci.serial]?.unit ?? '';
  await removal(ahciNow, ahciUnit, 'ahci');
  const ahciBack = await waitDisk(ahci.serial, 30_000);
  if (ahciBack) current.set(ahci.serial, ahciBack);

  // fail-stop cycles with flushes through a map: mq-deadline must count every
  // request it took in as completed (else dmRun's restart WARNs removing the disk).
  const piixNow = current.get(piix.serial) as Disk;
  const cycles = await failStopFlushCycles({ disk: piixNow, cycles: FLUSH_CYCLES, helper, workDir: runDir() });
  result.flushCycles = cycles;
  for (const f of cycles.failures) fail(`fail-stop flush cycles: ${f}`);
  check(cycles.queuedAfter === '0 0 0', `fail-stop flush cycles: mq-deadline on ${piixNow.name} still counts requests queued with no I/O left (rt be idle: ${cycles.queuedAfter}): requests went into its scheduler without its data`);
  // ext4 went over the disk's pattern.
  await writePattern(piixNow);

  // dm-multipath across a restart under lost-irq, at the kernel's default SCSI
  // timeout: the fast teardown makes the release of the hung PIIX disk take
  // seconds, not the timeout and error handling (on 6.12 the cache type
  // write freezes the queue, which waited for the hung write: 189 s).
  const dmDisk = await dmRun(piixNow, 'dm', DEFAULT_SCSI_TIMEOUT_S);
  current.set(piix.serial, dmDisk);
  const dmRelease = Number(result.dm?.['releaseMs']);
  check(dmRelease < FAST_RELEASE_MS, `dm: the release of the hung PIIX disk took ${dmRelease} ms at a ${DEFAULT_SCSI_TIMEOUT_S} s SCSI timeout (fast teardown: under ${FAST_RELEASE_MS} ms)`);
  if (values['no-teardown-run']) {
    writeFileSync('/sys/module/shadow_helper/parameters/fast_teardown', 'N');
    current.set(piix.serial, await dmRun(current.get(piix.serial) as Disk, 'noTeardown'));
    writeFileSync('/sys/module/shadow_helper/parameters/fast_teardown', 'Y');
  }

  // The kernel log rule over a restart, then over libata giving up on a disk.
  const [piixAfter, ahciAfter] = await ehGaveUp(current.get(piix.serial) as Disk, current.get(ahci.serial) as Disk);
  current.set(piix.serial, piixAfter);
  current.set(ahci.serial, ahciAfter);

  // rmmod with faults active: they are lifted on the way out.
  const v = current.get(virtio.serial) as Disk;
  const a = current.get(ahci.serial) as Disk;
  const injected = [helper(`inject block:${v.name} fail-stop`), helper(`inject block:${a.name} lost-irq`)];
  check(injected.every((r) => r.startsWith('ok injected')), `inject before rmmod: ${injected.join('; ')}`);
  const rm = await execa('rmmod', ['shadow_helper'], { reject: false });
  const readsAfter: Record<string, boolean> = {};
  for (const d of [v, a, current.get(piix.serial) as Disk]) readsAfter[d.name] = (await readWorks(d.name)).ok;
  result.rmmod = { rmmod: rm.exitCode === 0, readsAfter };
  check(rm.exitCode === 0, `rmmod with faults active: ${rm.stderr}`);
  check(Object.values(readsAfter).every(Boolean), `reads after rmmod: ${JSON.stringify(readsAfter)}`);
}

try {
  await main();
} catch (e) {
  fail(`exception: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}`);
}
console.log(`BLOCK_RESULT ${JSON.stringify(result)}`);
process.exit(result.failures.length ? 1 : 0);
