// The disk class's userspace mechanism proven in the guest, with nothing but
// its library (daemon/classes/block/): for each disk (ata_piix, ahci,
// virtio_blk) a single-path multipath map with queue_if_no_path is created,
// ext4 made and mounted on it, three writers started (block-writer.ts), and
// the disk's driver restarted with a plain sysfs unbind + bind of its restart
// unit; the disk is found again under the unit, checked to be the same disk,
// the map reloaded onto it and resumed --noflush, and the settings changed
// beforehand written back. Then every acknowledged write is checked on disk,
// SQLite's integrity_check, e2fsck -fn, the kernel log and the mount's
// read-write state. The control does the same restart under the same writers
// with ext4 straight on a disk and must show the failure.
// Prints `BLOCK_RESULT <json>` for test/vm/classes/block/dm-mechanism.test.ts.
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { Dmsetup, defaultMapName, noLivePath, singlePathTable } from '../../../daemon/classes/block/dm-map.js';
import {
  applyDiskSettings,
  bindUnit,
  disksUnder,
  listDiskNames,
  parseMountinfo,
  readDisk,
  readDeviceBlocked,
  readDiskSettings,
  readIoCounters,
  restartUnitOf,
  unbindUnit,
  type DiskSettings,
  type RestartUnit,
  type SettingResult,
} from '../../../daemon/classes/block/block-sysfs.js';
import { releaseBlockedDisk } from '../../../daemon/classes/block/blocked-device-release.js';
import { IoStallDetector, diskIoOf } from '../../../daemon/classes/block/io-stall-detector.js';
import { readDiskIdentity, sameDisk, type DiskIdentity, type SameDiskVerdict } from '../../../daemon/classes/block/disk-identity.js';
import type { WriterSummary } from './block-writer.js';
import { startWriters, stopWriters, upperErrors, verifyData, warmUp } from './block-writer-run.js';

const WRITE_BEFORE_MS = 1000;
const WRITE_AFTER_MS = 2500;
const UNBOUND_MS = 1000;
const dm = new Dmsetup();

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const log = (msg: string): void => console.error(`[block ${((performance.now() / 1000) | 0).toString().padStart(4)}s] ${msg}`);

async function dmesgLines(): Promise<string[]> {
  return (await execa('dmesg', [])).stdout.split('\n');
}

/**
 * The library's watch for a map waiting on its idle SCSI disk's device_blocked
 * count (blocked-device-release.ts), run as the daemon's detector runs it:
 * a kernel deadlock, not the restart, that would hang the writers.
 */
function startReleaseWatch(map: string, disk: string): { follow: (d: string | null) => void; releases: () => number; stop: () => Promise<void> } {
  let watched: string[] = [disk];
  let releases = 0;
  const det = new IoStallDetector({
    disks: () => watched,
    read: async (d) => {
      const c = await readIoCounters(d);
      const { status } = await dm.multipathStatus({ name: map });
      return diskIoOf(c, noLivePath(status), await readDeviceBlocked(d));
    },
    // Stalls are not this script's business: the restart is its own.
    thresholdMs: () => Number.MAX_SAFE_INTEGER,
    onReport: () => undefined,
    logger: { log: (_p, m) => log(`release watch: ${m}`) },
    releaseBlocked: (d) => {
      releases++;
      return releaseBlockedDisk(d);
    },
  });
  det.start();
  return { follow: (d) => void (watched = d === null ? [] : [d]), releases: () => releases, stop: () => det.stop() };
}

/** Polls until the unit has a disk again whose size reads non-zero. */
async function waitForDisk(unit: RestartUnit, timeoutMs: number): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    for (const d of await disksUnder(unit.sysfsPath)) {
      const size = Number(readFileSync(`/sys/block/${d}/size`, 'utf8'));
      if (size > 0 && existsSync(`/dev/${d}`)) return d;
    }
    if (Date.now() > until) throw new Error(`no disk came back under ${unit.sysfsPath} in ${timeoutMs} ms`);
    await sleep(100);
  }
}

function mountOptions(mountPoint: string): string | null {
  const m = parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8')).find((e) => e.mountPoint === mountPoint);
  return m ? `${m.options} ${m.superOptions}` : null;
}

/** Settings an administrator would have made, different from each disk's defaults. */
async function customise(disk: string): Promise<void> {
  const current = await readDiskSettings(disk);
  const wanted: DiskSettings = { 'queue/read_ahead_kb': '512', 'queue/max_sectors_kb': '64', 'queue/rq_affinity': '2', 'queue/nomerges': '1' };
  if (current['queue/scheduler'] === 'mq-deadline') {
    wanted['queue/scheduler'] = 'kyber';
    wanted['queue/iosched/write_lat_nsec'] = '7000000';
  } else {
    wanted['queue/scheduler'] = 'mq-deadline';
    wanted['queue/iosched/fifo_batch'] = '8';
  }
  if ('device/timeout' in current) wanted['device/timeout'] = '45';
  if ('device/eh_timeout' in current) wanted['device/eh_timeout'] = '7';
  const results = await applyDiskSettings(disk, wanted);
  const bad = results.filter((r) => r.outcome === 'failed' || r.outcome === 'skipped');
  if (bad.length > 0) throw new Error(`could not customise ${disk}: ${JSON.stringify(bad)}`);
}

/** The disk the map NAME protects, as the listing of every map (addressed by device number) says; null if it protects none. */
async function protectingDisk(name: string): Promise<string | null> {
  const all = await dm.protectingMaps();
  return all.find((p) => p.map.info.name === name)?.disk ?? null;
}

export interface MappedRun {
  disk: string;
  driver: string;
  unit: RestartUnit;
  map: string;
  identityBefore: DiskIdentity;
  newDisk: string;
  devtBefore: string;
  devtAfter: string;
  verdict: SameDiskVerdict;
  unbindMs: number;
  bindMs: number;
  foundMs: number;
  windowMs: number;
  protectedBefore: string | null;
  protectedAfter: string | null;
  pathStateAfter: string;
  settingsBefore: DiskSettings;
  settingsFresh: DiskSettings;
  settingsReplay: SettingResult[];
  settingsAfter: DiskSettings;
  writers: Record<string, { acked: number; longestStallMs: number; error: WriterSummary['error']; hung: boolean }>;
  missing: Record<string, number[]>;
  integrity: string;
  mountOptionsDuring: string | null;
  mountOptionsAfter: string | null;
  fsck: { exitCode: number; output: string };
  kernelErrors: string[];
  pathMessages: string[];
  /** Times the release watch freed the disk from a map waiting on its device_blocked count. */
  releases: number;
}

async function mappedRun(disk: string): Promise<MappedRun> {
  const unit = await restartUnitOf(disk);
  const identityBefore = await readDiskIdentity(disk);
  const name = defaultMapName(identityBefore);
  const devtBefore = (await readDisk(disk)).devt;
  log(`${unit.driver}: ${disk} (${devtBefore}) unit ${unit.bus}:${unit.device}, map ${name}`);
  // As udev rules or an administrator would have at boot, before the map
  // stacks the disk's queue limits (max_sectors_kb).
  await customise(disk);
  const info = await dm.create(name, singlePathTable(identityBefore.sectors, devtBefore));
  const protectedBefore = await protectingDisk(name);
  const mnt = `/run/block-test/${name}`;
  mkdirSync(mnt, { recursive: true });
  await execa('mkfs.ext4', ['-q', '-F', `/dev/mapper/${name}`]);
  await execa('mount', [`/dev/mapper/${name}`, mnt]);
  const settingsBefore = await readDiskSettings(disk);
  const logStart = (await dmesgLines()).length;

  const writers = startWriters(mnt, name);
  const watch = startReleaseWatch(name, disk);
  try {
    return await restartUnderWriters(disk, unit, name, mnt, writers, watch, identityBefore, devtBefore, info.blockDevice, protectedBefore, settingsBefore, logStart);
  } catch (err) {
    await watch.stop();
    // Say where the disk's I/O stands, then let go of everything this run
    // holds: the map fails what it queues, so the writers end and the guest
    // reports the failure instead of hanging until the rig kills it.
    const state = await ioState(disk, name);
    // One read straight to the disk: if the map waits on a SCSI device_blocked
    // count that only the disk's own dispatches bring down, this frees it.
    const acked = (): string => writers.procs.map((p) => `${p.mode}=${existsSync(p.ackLog) ? readFileSync(p.ackLog, 'utf8').split('\n').length - 1 : 0}`).join(' ');
    const before = acked();
    await execa('dd', [`if=/dev/${disk}`, 'of=/dev/null', 'bs=4096', 'count=1', 'iflag=direct'], { reject: false, timeout: 10_000 });
    await sleep(3000);
    const kick = `after one direct read of ${disk}: device_blocked ${existsSync(`/sys/block/${disk}/device/device_blocked`) ? readFileSync(`/sys/block/${disk}/device/device_blocked`, 'utf8').trim() : 'none'}, acks ${before} -> ${acked()}`;
    await releaseRun(name, mnt, writers);
    throw new Error(`${(err as Error).message}\n${kick}\n${state}`, { cause: err });
  }
}

/** The block layer's view of DISK and its map NAME, for a failure's message. */
async function ioState(disk: string, name: string): Promise<string> {
  const read = (path: string): string => {
    try {
      return readFileSync(path, 'utf8').trim();
    } catch (err) {
      return `(${(err as Error).message})`;
    }
  };
  const out: string[] = [
    `${disk} inflight (read write): ${read(`/sys/block/${disk}/inflight`)}`,
    `${disk} stat: ${read(`/sys/block/${disk}/stat`)}`,
    `${disk} device_blocked: ${read(`/sys/block/${disk}/device/device_blocked`)}`,
  ];
  const status = await execa('dmsetup', ['status', name], { reject: false, all: true });
  out.push(`dmsetup status ${name}: ${status.all ?? ''}`);
  await execa('mount', ['-t', 'debugfs', 'none', '/sys/kernel/debug'], { reject: false });
  const dmName = (await execa('dmsetup', ['info', '-c', '--noheadings', '-o', 'blkdevname', name], { reject: false })).stdout.trim();
  for (const dev of [disk, dmName]) {
    const dbg = `/sys/kernel/debug/block/${dev}`;
    if (dev === '' || !existsSync(dbg)) continue;
    out.push(`${dev} inflight: ${read(`/sys/block/${dev}/inflight`)}`);
    const files = (await execa('find', [dbg, '-maxdepth', '2', '-type', 'f'], { reject: false })).stdout.split('\n');
    for (const f of files.filter((f) => /\/(state|requeue_list|busy|dispatch|dispatch_busy|flags|tags|sched_tags|run|active|async_depth|\w+_tokens|cur_domain|batching|kcq\d*)$/.test(f))) {
      out.push(`${f.slice(dbg.length - dev.length)}: ${read(f).split('\n').slice(0, 8).join(' | ')}`);
    }
  }
  // Where the blocked tasks wait: their stacks into the kernel log.
  try {
    writeFileSync('/proc/sys/kernel/sysrq', '1');
    writeFileSync('/proc/sysrq-trigger', 'w');
  } catch {
    out.push('(no sysrq: blocked tasks not dumped)');
  }
  await sleep(500);
  out.push('kernel log, last 120 lines:', ...(await dmesgLines()).slice(-120));
  return out.join('\n');
}

/** Fails the map's queued I/O, kills the writers and unmounts: the end of a failed run. */
async function releaseRun(name: string, mnt: string, writers: ReturnType<typeof startWriters>): Promise<void> {
  await dm.failIfNoPath(name).catch(() => undefined);
  await stopWriters(writers, 10_000);
  await execa('umount', ['-l', mnt], { reject: false });
}

async function restartUnderWriters(
  disk: string,
  unit: RestartUnit,
  name: string,
  mnt: string,
  writers: ReturnType<typeof startWriters>,
  watch: ReturnType<typeof startReleaseWatch>,
  identityBefore: DiskIdentity,
  devtBefore: string,
  mapDevice: string,
  protectedBefore: string | null,
  settingsBefore: DiskSettings,
  logStart: number,
): Promise<MappedRun> {
  await warmUp(writers, 5);
  await sleep(WRITE_BEFORE_MS);
  const t0 = performance.now();
  watch.follow(null);
  await unbindUnit(unit);
  const unbindMs = performance.now() - t0;
  const mountOptionsDuring = mountOptions(mnt);
  await sleep(UNBOUND_MS);
  const tb = performance.now();
  await bindUnit(unit);
  const bindMs = performance.now() - tb;
  const newDisk = await waitForDisk(unit, 60_000);
  const foundMs = performance.now() - t0;
  const identityAfter = await readDiskIdentity(newDisk);
  const verdict = sameDisk(identityBefore, identityAfter);
  if (!verdict.same) throw new Error(`${newDisk} is not ${disk}: ${verdict.notes.join('; ')}`);
  const devtAfter = (await readDisk(newDisk)).devt;
  // The settings go back before the reload: the reload stacks the new path's
  // queue limits into the map, and a path limit lowered after it (here
  // max_sectors_kb) makes every larger clone fail in blk_insert_cloned_request
  // ("over max size limit"), a path error that dm-mpath requeues forever.
  const settingsFresh = await readDiskSettings(newDisk);
  const settingsReplay = await applyDiskSettings(newDisk, settingsBefore);
  const settingsAfter = await readDiskSettings(newDisk);
  await dm.repoint(name, identityAfter.sectors, devtAfter);
  watch.follow(newDisk);
  const windowMs = performance.now() - t0;
  log(`${unit.driver}: ${newDisk} (${devtAfter}) back, map resumed after ${windowMs.toFixed(0)} ms`);
  const status = await dm.multipathStatus({ name });
  const protectedAfter = await protectingDisk(name);

  await sleep(WRITE_AFTER_MS);
  const summaries = await stopWriters(writers, 45_000);
  await watch.stop();
  const hung = Object.entries(summaries).filter(([, v]) => v.hung).map(([k]) => k);
  if (hung.length > 0) throw new Error(`${unit.driver}: writers ${hung.join(', ')} still blocked 45 s after the map resumed; status ${JSON.stringify(status.status)}`);
  const acks = Object.fromEntries(Object.entries(summaries).map(([k, v]) => [k, v.acks]));
  const { missing, integrity } = verifyData(mnt, acks);
  const mountOptionsAfter = mountOptions(mnt);
  await execa('umount', [mnt]);
  const fsck = await execa('e2fsck', ['-fn', `/dev/mapper/${name}`], { reject: false, all: true });
  const lines = (await dmesgLines()).slice(logStart);
  await dm.remove(name);
  return {
    disk,
    driver: unit.driver,
    unit,
    map: name,
    identityBefore,
    newDisk,
    devtBefore,
    devtAfter,
    verdict,
    unbindMs,
    bindMs,
    foundMs,
    windowMs,
    protectedBefore,
    protectedAfter,
    pathStateAfter: status.status.paths.map((p) => `${p.devt} ${p.state} ${p.failCount}`).join(','),
    settingsBefore,
    settingsFresh,
    settingsReplay,
    settingsAfter,
    writers: Object.fromEntries(
      Object.entries(summaries).map(([k, v]) => [k, { acked: v.acked, longestStallMs: v.longestStallMs, error: v.error, hung: v.hung }]),
    ),
    missing,
    integrity,
    mountOptionsDuring,
    mountOptionsAfter,
    fsck: { exitCode: fsck.exitCode ?? -1, output: fsck.all ?? '' },
    kernelErrors: upperErrors(lines, mapDevice),
    pathMessages: lines.filter((l) => /Failing path|queue_if_no_path|offline|I\/O error/.test(l)).slice(0, 20),
    releases: watch.releases(),
  };
}

export interface ControlRun {
  disk: string;
  driver: string;
  newDisk: string;
  windowMs: number;
  writers: Record<string, { acked: number; error: WriterSummary['error']; hung: boolean }>;
  mountOptionsAfter: string | null;
  kernelErrors: string[];
}

/** The same restart with ext4 straight on the disk: must fail. */
async function controlRun(disk: string): Promise<ControlRun> {
  const unit = await restartUnitOf(disk);
  const mnt = `/run/block-test/control-${disk}`;
  mkdirSync(mnt, { recursive: true });
  await execa('mkfs.ext4', ['-q', '-F', `/dev/${disk}`]);
  await execa('mount', [`/dev/${disk}`, mnt]);
  const logStart = (await dmesgLines()).length;
  log(`control ${unit.driver}: ext4 straight on ${disk}`);
  const writers = startWriters(mnt, `control-${disk}`);
  await warmUp(writers, 5);
  await sleep(WRITE_BEFORE_MS);
  const t0 = performance.now();
  await unbindUnit(unit);
  await sleep(UNBOUND_MS);
  await bindUnit(unit);
  const newDisk = await waitForDisk(unit, 60_000);
  const windowMs = performance.now() - t0;
  await sleep(WRITE_AFTER_MS);
  const summaries = await stopWriters(writers, 30_000);
  const mountOptionsAfter = mountOptions(mnt);
  await execa('umount', ['-l', mnt], { reject: false });
  const lines = (await dmesgLines()).slice(logStart);
  return {
    disk,
    driver: unit.driver,
    newDisk,
    windowMs,
    writers: Object.fromEntries(Object.entries(summaries).map(([k, v]) => [k, { acked: v.acked, error: v.error, hung: v.hung }])),
    mountOptionsAfter,
    kernelErrors: lines.filter((l) => /EXT4-fs|I\/O error|offline|read-only|Aborting journal/.test(l)).slice(0, 20),
  };
}

for (const mod of ['ata_piix', 'ahci', 'virtio_blk', 'sd_mod', 'dm-multipath', 'kyber-iosched']) await execa('modprobe', [mod]);
const until = Date.now() + 30_000;
let disks: string[] = [];
while ((disks = await listDiskNames()).length < 3 && Date.now() < until) await sleep(200);
const byDriver = new Map<string, string>();
for (const d of disks) byDriver.set((await restartUnitOf(d)).driver, d);
log(`disks: ${[...byDriver].map(([k, v]) => `${v}=${k}`).join(' ')} (udev sync: ${dm.udevSync()})`);

const only = process.argv.slice(2);
const mapped: MappedRun[] = [];
const failures: string[] = [];
for (const driver of ['ata_piix', 'ahci', 'virtio_blk']) {
  if (only.length > 0 && !only.includes(driver)) continue;
  const disk = byDriver.get(driver);
  if (disk === undefined) {
    failures.push(`no ${driver} disk`);
    continue;
  }
  try {
    mapped.push(await mappedRun(disk));
  } catch (err) {
    failures.push(`${driver}: ${(err as Error).stack ?? String(err)}`);
  }
}
const controls: ControlRun[] = [];
for (const driver of ['ata_piix', 'virtio_blk']) {
  if (only.length > 0 && !only.includes(driver)) continue;
  // After its mapped run the disk has a new name: find it under the unit again.
  const first = byDriver.get(driver);
  if (first === undefined) continue;
  try {
    const unit = await restartUnitOf(mapped.find((m) => m.driver === driver)?.newDisk ?? first);
    const [disk] = await disksUnder(unit.sysfsPath);
    if (disk === undefined) throw new Error(`no disk under ${unit.sysfsPath}`);
    controls.push(await controlRun(disk));
  } catch (err) {
    failures.push(`control ${driver}: ${(err as Error).stack ?? String(err)}`);
  }
}
for (const m of mapped) {
  const stall = Math.max(...Object.values(m.writers).map((w) => w.longestStallMs));
  log(`${m.driver}: window ${m.windowMs.toFixed(0)} ms (unbind ${m.unbindMs.toFixed(0)}, back after ${m.foundMs.toFixed(0)}), longest writer stall ${stall} ms, device_blocked releases ${m.releases}`);
}
for (const c of controls) {
  log(`control ${c.driver}: ${Object.entries(c.writers).map(([k, w]) => `${k} ${w.error ? w.error.message : 'no error'}`).join('; ')}; mount ${c.mountOptionsAfter}`);
}
console.log(`BLOCK_RESULT ${JSON.stringify({ mapped, controls, failures })}`);
