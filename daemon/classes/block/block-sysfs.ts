// The disk class's view of sysfs: the whole disks and who holds or mounts
// them, the restart unit of a disk (the bus device whose driver is restarted,
// and which disks are under it after), the per-disk settings a driver restart
// loses and that the class replays, and the I/O counters a stall detector
// reads. Everything takes the sysfs root as a parameter so unit tests run on
// fixture trees captured from the guest (test/fixtures/block/).
import { constants } from 'node:fs';
import { open, readdir, realpath, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { linkBase, readText } from '../../core/sysfs-text.js';

// ---------------------------------------------------------------- names and small readers

/** Kernel disk names: sda, vdb, nvme0n1, mmcblk0. No '/', no '..', nothing a path could be built from. */
const DISK_NAME = /^[A-Za-z0-9][A-Za-z0-9_:+-]{0,31}$/;

/** Returns disk if it can be a whole disk's name under /sys/block; throws otherwise. */
export function validateDiskName(disk: string): string {
  if (typeof disk !== 'string' || !DISK_NAME.test(disk)) throw new Error(`${JSON.stringify(disk)} is not a disk name`);
  return disk;
}

/** /sys/block entries that are no disk of a driver this class restarts. */
const NOT_A_DRIVER_DISK = /^(dm-|loop|ram|zram|md)/;

async function listDir(path: string): Promise<string[]> {
  try {
    return (await readdir(path)).sort();
  } catch {
    return [];
  }
}

function devtOf(text: string | null, what: string): string {
  if (text === null || !/^\d{1,4}:\d{1,7}$/.test(text)) throw new Error(`${what}: device number ${JSON.stringify(text)}`);
  return text;
}

function numberOf(text: string | null, what: string): number {
  if (text === null || !/^\d{1,16}$/.test(text)) throw new Error(`${what}: ${JSON.stringify(text)} is not a number`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`${what}: ${text} is too large`);
  return n;
}

// ---------------------------------------------------------------- mounts

export interface MountEntry {
  devt: string;
  mountPoint: string;
  fsType: string;
  source: string;
  /** Per-mount options (rw/ro of this mount). */
  options: string;
  /** The filesystem's own options: `ro` here after ext4 remounts itself read-only on an error. */
  superOptions: string;
}

/** `\040` and the like in mountinfo fields. */
function unescapeMount(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses /proc/self/mountinfo. Lines that are not mountinfo lines throw. */
export function parseMountinfo(text: string): MountEntry[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((line) => {
      const f = line.split(' ');
      const sep = f.indexOf('-', 6);
      if (f.length < 10 || sep < 0 || sep + 3 > f.length || !/^\d+:\d+$/.test(f[2] ?? '')) {
        throw new Error(`not a mountinfo line: ${JSON.stringify(line.slice(0, 200))}`);
      }
      return {
        devt: f[2]!,
        mountPoint: unescapeMount(f[4]!),
        options: f[5]!,
        fsType: f[sep + 1]!,
        source: unescapeMount(f[sep + 2]!),
        superOptions: f[sep + 3] ?? '',
      };
    });
}

// ---------------------------------------------------------------- disks

export interface Holder {
  /** The holder's block device, e.g. dm-0. */
  device: string;
  /** Its device-mapper name (dm/name), null for a holder that is not dm (md, bcache). */
  dmName: string | null;
  dmUuid: string | null;
}

export interface PartitionUse {
  name: string;
  devt: string;
  holders: Holder[];
  mounts: MountEntry[];
}

export interface BlockDisk {
  name: string;
  /** Resolved sysfs path of /sys/block/NAME. */
  sysfsPath: string;
  devt: string;
  sectors: number;
  logicalBlockSize: number;
  removable: boolean;
  readOnly: boolean;
  holders: Holder[];
  /** Filesystems mounted straight on the whole disk. */
  mounts: MountEntry[];
  partitions: PartitionUse[];
  /**
   * Whether a map can be put over this disk while the system runs, and why
   * (or why not): a filesystem mounted straight on the disk or one of its
   * partitions cannot be moved onto a map live (dm's exclusive claim fails
   * with EBUSY, disk-facts §3.5).
   */
  mapLive: { possible: boolean; reason: string };
}

async function holdersOf(dir: string, sysfs: string): Promise<Holder[]> {
  return Promise.all(
    (await listDir(join(dir, 'holders'))).map(async (device) => ({
      device,
      dmName: await readText(join(sysfs, 'block', device, 'dm', 'name')),
      dmUuid: await readText(join(sysfs, 'block', device, 'dm', 'uuid')),
    })),
  );
}

export interface DiskReadOptions {
  /** sysfs root. Default /sys. */
  sysfs?: string;
  /** mountinfo to read mounts from. Default /proc/self/mountinfo. */
  mountinfo?: string;
}

function mapLiveVerdict(disk: Omit<BlockDisk, 'mapLive'>): BlockDisk['mapLive'] {
  const direct = [...disk.mounts.map((m) => ({ dev: disk.name, m })), ...disk.partitions.flatMap((p) => p.mounts.map((m) => ({ dev: p.name, m })))];
  if (direct.length > 0) {
    const where = direct.map(({ dev, m }) => `${dev} on ${m.mountPoint}`).join(', ');
    return {
      possible: false,
      reason: `mounted straight from the disk (${where}): dm cannot claim a disk whose filesystem is mounted (EBUSY); put the map under it before mounting, e.g. in the initramfs`,
    };
  }
  const held = [...disk.holders, ...disk.partitions.flatMap((p) => p.holders)];
  if (held.some((h) => h.dmName === null)) {
    return { possible: false, reason: `held by ${held.filter((h) => h.dmName === null).map((h) => h.device).join(', ')}, which is not device-mapper` };
  }
  if (held.length > 0) {
    return {
      possible: true,
      reason: `held by device-mapper (${held.map((h) => `${h.dmName} on ${h.device}`).join(', ')}): a map can be slipped under that stack live (its table reloaded onto the map)`,
    };
  }
  return { possible: true, reason: 'not mounted and not held' };
}

/** One whole disk from /sys/block/DISK. Throws if it is not there. */
export async function readDisk(disk: string, opts: DiskReadOptions = {}): Promise<BlockDisk> {
  const sysfs = opts.sysfs ?? '/sys';
  const dir = join(sysfs, 'block', validateDiskName(disk));
  const mounts = parseMountinfo((await readText(opts.mountinfo ?? '/proc/self/mountinfo')) ?? '');
  const partNames = (await listDir(dir)).filter((n) => n.startsWith(disk) && n !== disk);
  const partitions: PartitionUse[] = [];
  for (const name of partNames) {
    const pdir = join(dir, name);
    const devt = await readText(join(pdir, 'dev'));
    if (devt === null || (await readText(join(pdir, 'partition'))) === null) continue;
    partitions.push({ name, devt: devtOf(devt, name), holders: await holdersOf(pdir, sysfs), mounts: mounts.filter((m) => m.devt === devt) });
  }
  const devt = devtOf(await readText(join(dir, 'dev')), disk);
  const partial = {
    name: disk,
    sysfsPath: await realpath(dir),
    devt,
    sectors: numberOf(await readText(join(dir, 'size')), `${disk} size`),
    logicalBlockSize: numberOf(await readText(join(dir, 'queue', 'logical_block_size')), `${disk} logical block size`),
    removable: (await readText(join(dir, 'removable'))) === '1',
    readOnly: (await readText(join(dir, 'ro'))) === '1',
    holders: await holdersOf(dir, sysfs),
    mounts: mounts.filter((m) => m.devt === devt),
    partitions,
  };
  return { ...partial, mapLive: mapLiveVerdict(partial) };
}

/** Names of the whole disks of drivers (not dm, loop, ram, zram, md), sorted. */
export async function listDiskNames(sysfs = '/sys'): Promise<string[]> {
  return (await listDir(join(sysfs, 'block'))).filter((n) => DISK_NAME.test(n) && !NOT_A_DRIVER_DISK.test(n));
}

/** Every whole disk of a driver with its use. */
export async function listDisks(opts: DiskReadOptions = {}): Promise<BlockDisk[]> {
  const out: BlockDisk[] = [];
  for (const name of await listDiskNames(opts.sysfs)) out.push(await readDisk(name, opts));
  return out;
}

/**
 * Whether someone holds DEVNODE open exclusively (a mount, dm, md, swap):
 * tries an O_EXCL open, as dm's own claim does. null when the node cannot be
 * opened for another reason (absent, no permission).
 */
export async function claimedExclusively(devNode: string): Promise<boolean | null> {
  try {
    const fh = await open(devNode, constants.O_RDONLY | constants.O_EXCL);
    await fh.close();
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EBUSY' ? true : null;
  }
}

// ---------------------------------------------------------------- restart unit

export interface RestartUnit {
  /** Resolved sysfs path of the bus device, e.g. /sys/devices/pci0000:00/0000:00:01.1. */
  sysfsPath: string;
  /** Its bus (subsystem), e.g. pci, virtio. */
  bus: string;
  /** Its name on the bus, e.g. 0000:00:01.1, virtio2. */
  device: string;
  driver: string;
  /** The driver's module, null for a built-in driver. */
  module: string | null;
}

/**
 * The device whose driver a restart of DISK's driver unbinds and binds: the
 * nearest ancestor of /sys/block/DISK/device with a driver that is not SCSI
 * (sd is the disk's own driver; the controller's driver is the one that
 * fails). Throws if there is none.
 */
export async function restartUnitOf(disk: string, sysfs = '/sys'): Promise<RestartUnit> {
  const devices = await realpath(join(sysfs, 'devices'));
  let path = await realpath(join(sysfs, 'block', validateDiskName(disk), 'device'));
  while (path.startsWith(devices + '/')) {
    const driver = await linkBase(join(path, 'driver'));
    const bus = await linkBase(join(path, 'subsystem'));
    if (driver !== null && bus !== null && bus !== 'scsi') {
      return { sysfsPath: path, bus, device: basename(path), driver, module: await linkBase(join(path, 'driver', 'module')) };
    }
    path = dirname(path);
  }
  throw new Error(`${disk}: no ancestor device with a driver outside SCSI`);
}

/** The whole disks whose device sits under the unit now (after a restart the disk may have a new name). */
export async function disksUnder(unitPath: string, sysfs = '/sys'): Promise<string[]> {
  const out: string[] = [];
  for (const name of await listDiskNames(sysfs)) {
    try {
      if ((await realpath(join(sysfs, 'block', name))).startsWith(unitPath + '/')) out.push(name);
    } catch {
      // gone while we looked
    }
  }
  return out;
}

function driverFile(unit: Pick<RestartUnit, 'bus' | 'driver'>, file: 'bind' | 'unbind', sysfs: string): string {
  for (const [what, v] of [['bus', unit.bus], ['driver', unit.driver]] as const) {
    if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(v)) throw new Error(`${what} ${JSON.stringify(v)} is not a sysfs name`);
  }
  return join(sysfs, 'bus', unit.bus, 'drivers', unit.driver, file);
}

function checkDeviceName(device: string): string {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(device)) throw new Error(`${JSON.stringify(device)} is not a bus device name`);
  return device;
}

/** Detaches the unit from its driver (the driver's remove runs; its disks go away). Resolves once the kernel's write returns. */
export async function unbindUnit(unit: RestartUnit, sysfs = '/sys'): Promise<void> {
  await writeFile(driverFile(unit, 'unbind', sysfs), checkDeviceName(unit.device));
}

/** Attaches the unit to its driver again (probe runs; disks come back, perhaps under new names). */
export async function bindUnit(unit: RestartUnit, sysfs = '/sys'): Promise<void> {
  await writeFile(driverFile(unit, 'bind', sysfs), checkDeviceName(unit.device));
}

/** Whether the unit is bound to its driver now. */
export async function unitBound(unit: RestartUnit): Promise<boolean> {
  return (await linkBase(join(unit.sysfsPath, 'driver'))) === unit.driver;
}

// ---------------------------------------------------------------- settings

/** queue/ attributes an administrator or udev rule sets and a new disk starts without. */
const QUEUE_KEYS = ['nr_requests', 'read_ahead_kb', 'max_sectors_kb', 'wbt_lat_usec', 'rq_affinity', 'nomerges', 'add_random', 'iostats'];
/** The SCSI device's own. */
const DEVICE_KEYS = ['timeout', 'eh_timeout', 'queue_depth'];

export type DiskSettings = Record<string, string>;

/** The active scheduler in `mq-deadline [kyber] none`. Throws on anything else. */
export function parseScheduler(text: string): string {
  const m = /\[([A-Za-z0-9_-]+)\]/.exec(text);
  if (!m || (text.match(/\[/g) ?? []).length !== 1) throw new Error(`no active scheduler in ${JSON.stringify(text)}`);
  return m[1]!;
}

/** The scsi_disk (H:C:T:L) and the SCSI host directory of DISK, where they exist. */
async function scsiPlaces(dir: string): Promise<{ scsiDisk: string | null; host: string | null }> {
  const scsiDisks = await listDir(join(dir, 'device', 'scsi_disk'));
  const scsiDisk = scsiDisks.length === 1 ? join(dir, 'device', 'scsi_disk', scsiDisks[0]!) : null;
  let host: string | null = null;
  try {
    for (let p = await realpath(join(dir, 'device')); p !== dirname(p); p = dirname(p)) {
      const name = basename(p);
      if (/^host\d+$/.test(name)) {
        host = join(p, 'scsi_host', name);
        break;
      }
    }
  } catch {
    // no device link (a virtual disk)
  }
  return { scsiDisk, host };
}

/** Where each setting key lives for DISK, for the keys that can exist. */
async function settingPaths(disk: string, sysfs: string): Promise<Map<string, string>> {
  const dir = join(sysfs, 'block', validateDiskName(disk));
  const paths = new Map<string, string>();
  paths.set('queue/scheduler', join(dir, 'queue', 'scheduler'));
  for (const k of await listDir(join(dir, 'queue', 'iosched'))) {
    if (/^[a-z0-9_]{1,64}$/.test(k)) paths.set(`queue/iosched/${k}`, join(dir, 'queue', 'iosched', k));
  }
  for (const k of QUEUE_KEYS) paths.set(`queue/${k}`, join(dir, 'queue', k));
  for (const k of DEVICE_KEYS) paths.set(`device/${k}`, join(dir, 'device', k));
  const { scsiDisk, host } = await scsiPlaces(dir);
  if (scsiDisk !== null) paths.set('scsi_disk/cache_type', join(scsiDisk, 'cache_type'));
  if (host !== null) paths.set('host/link_power_management_policy', join(host, 'link_power_management_policy'));
  return paths;
}

/**
 * Every setting of DISK that exists, as `key → value`: `queue/scheduler` (the
 * active one), `queue/iosched/*` (the active scheduler's tunables), the queue
 * limits, `device/timeout`, `device/eh_timeout`, `device/queue_depth`,
 * `scsi_disk/cache_type`, `host/link_power_management_policy`.
 */
export async function readDiskSettings(disk: string, sysfs = '/sys'): Promise<DiskSettings> {
  const out: DiskSettings = {};
  for (const [key, path] of await settingPaths(disk, sysfs)) {
    const text = await readText(path);
    if (text === null) continue;
    out[key] = key === 'queue/scheduler' ? parseScheduler(text) : text;
  }
  return out;
}

/**
 * One setting of DISK and the disk's diskseq read before and after it (a
 * number the kernel gives each disk it adds, never reused): the value is the
 * one of the disk that diskseq names. diskseq is null when the two reads
 * differ or the disk has none; value is null when it has no such key. Reads
 * sysfs only, never the disk: safe on a hung disk.
 */
export async function readDiskSetting(disk: string, key: string, sysfs = '/sys'): Promise<{ diskseq: string | null; value: string | null }> {
  if (!isSettingKey(key)) throw new Error(`${JSON.stringify(key)} is not a disk setting`);
  const seqPath = join(sysfs, 'block', validateDiskName(disk), 'diskseq');
  const before = await readText(seqPath);
  const path = (await settingPaths(disk, sysfs)).get(key);
  const text = path === undefined ? null : await readText(path);
  const after = await readText(seqPath);
  const value = text === null ? null : key === 'queue/scheduler' ? parseScheduler(text) : text;
  return { diskseq: before !== null && before === after ? before : null, value };
}

/** Replay order: the queue depth bounds nr_requests; a scheduler switch resets nr_requests and brings its own iosched/ directory. */
function rank(key: string): number {
  if (key === 'device/queue_depth') return 0;
  if (key === 'queue/scheduler') return 1;
  if (key.startsWith('queue/iosched/')) return 2;
  if (key === 'queue/nr_requests') return 3;
  return 4;
}

/**
 * The settings in the order they must be written back. Write them before the
 * map is reloaded onto the disk: the reload stacks the disk's queue limits
 * into the map, and a limit lowered on the path after it (max_sectors_kb)
 * makes every larger request the map sends fail in blk_insert_cloned_request
 * ("over max size limit"), a path error dm-mpath requeues for ever under
 * queue_if_no_path: the filesystem hangs (seen in the guest).
 */
export function replayOrder(settings: DiskSettings): [string, string][] {
  return Object.entries(settings).sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b));
}

/** Whether key names a setting this class reads and writes back. */
export function isSettingKey(key: string): boolean {
  return (
    key === 'queue/scheduler' ||
    /^queue\/iosched\/[a-z0-9_]{1,64}$/.test(key) ||
    QUEUE_KEYS.some((k) => key === `queue/${k}`) ||
    DEVICE_KEYS.some((k) => key === `device/${k}`) ||
    key === 'scsi_disk/cache_type' ||
    key === 'host/link_power_management_policy'
  );
}

export type SettingOutcome = 'written' | 'unchanged' | 'skipped' | 'failed';

export interface SettingResult {
  key: string;
  value: string;
  outcome: SettingOutcome;
  /** Why skipped or failed. */
  reason?: string;
}

function checkValue(value: string): string {
  if (value.length === 0 || value.length > 128 || !/^[\x20-\x7e]+$/.test(value)) {
    throw new Error(`setting value ${JSON.stringify(value)} is not one line of printable text`);
  }
  return value;
}

/**
 * Writes one setting back to DISK. `unchanged` if it already has the value;
 * `skipped` (with the reason) if the attribute does not exist on this disk or
 * is read-only; `failed` with the kernel's error if the write is refused.
 * Throws for a key this class does not know or a value that is not one line
 * of text.
 */
export async function writeDiskSetting(disk: string, key: string, value: string, sysfs = '/sys'): Promise<SettingResult> {
  checkValue(value);
  if (!isSettingKey(key)) throw new Error(`${JSON.stringify(key)} is not a disk setting`);
  const path = (await settingPaths(disk, sysfs)).get(key);
  if (path === undefined) return { key, value, outcome: 'skipped', reason: `${disk} has no ${key}` };
  let mode: number;
  try {
    mode = (await stat(path)).mode;
  } catch {
    return { key, value, outcome: 'skipped', reason: `${disk} has no ${key}` };
  }
  if ((mode & 0o222) === 0) return { key, value, outcome: 'skipped', reason: `${key} is read-only on ${disk}` };
  const current = await readText(path);
  if (current !== null && (key === 'queue/scheduler' ? parseScheduler(current) : current) === value) {
    return { key, value, outcome: 'unchanged' };
  }
  try {
    await writeFile(path, value);
    return { key, value, outcome: 'written' };
  } catch (err) {
    return { key, value, outcome: 'failed', reason: `${key}: ${(err as Error).message}` };
  }
}

/** Writes settings back to DISK in replayOrder, one result each. */
export async function applyDiskSettings(disk: string, settings: DiskSettings, sysfs = '/sys'): Promise<SettingResult[]> {
  const out: SettingResult[] = [];
  for (const [key, value] of replayOrder(settings)) out.push(await writeDiskSetting(disk, key, value, sysfs));
  return out;
}

// ---------------------------------------------------------------- I/O counters

export interface IoCounters {
  /** Requests in flight now (inflight). */
  inflightReads: number;
  inflightWrites: number;
  /** Completed since the disk appeared (stat fields 1, 5, 12 and 16; the last two 0 on kernels without them). */
  readsCompleted: number;
  writesCompleted: number;
  discardsCompleted: number;
  flushesCompleted: number;
}

/** Parses /sys/block/DISK/inflight and /sys/block/DISK/stat. Throws on malformed text. */
export function parseIoCounters(inflight: string, statText: string): IoCounters {
  const inf = inflight.trim().split(/\s+/);
  const st = statText.trim().split(/\s+/);
  if (inf.length !== 2 || !inf.every((t) => /^\d{1,20}$/.test(t))) throw new Error(`inflight ${JSON.stringify(inflight)} is not two counters`);
  if (st.length < 11 || st.length > 32 || !st.every((t) => /^\d{1,20}$/.test(t))) throw new Error(`stat ${JSON.stringify(statText.slice(0, 200))} is not 11 to 17 counters`);
  const n = (t: string | undefined): number => (t === undefined ? 0 : Number(t));
  return {
    inflightReads: n(inf[0]),
    inflightWrites: n(inf[1]),
    readsCompleted: n(st[0]),
    writesCompleted: n(st[4]),
    discardsCompleted: n(st[11]),
    flushesCompleted: n(st[15]),
  };
}

/**
 * The SCSI device_blocked count of DISK (blocked-device-release.ts says why it
 * matters), or null for a disk that is not SCSI or whose count cannot be read.
 */
export async function readDeviceBlocked(disk: string, sysfs = '/sys'): Promise<number | null> {
  const text = await readText(join(sysfs, 'block', validateDiskName(disk), 'device', 'device_blocked'));
  if (text === null || !/^\d{1,10}$/.test(text.trim())) return null;
  return Number(text.trim());
}

/** DISK's I/O counters now. */
export async function readIoCounters(disk: string, sysfs = '/sys'): Promise<IoCounters> {
  const dir = join(sysfs, 'block', validateDiskName(disk));
  const inflight = await readText(join(dir, 'inflight'));
  const statText = await readText(join(dir, 'stat'));
  if (inflight === null || statText === null) throw new Error(`${disk}: no inflight or stat`);
  return parseIoCounters(inflight, statText);
}
