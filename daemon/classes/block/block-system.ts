// The machine as the disk class sees it (block-class.ts's BlockSystem): the
// disks from sysfs (block-sysfs.ts, disk-identity.ts) and their protecting
// maps from device-mapper (dm-map.ts), put together into what the shadow
// keeps of a disk, and the few writes the class makes: a setting, a map
// pointed at a disk again, a new map over a disk nothing uses.
import { basename } from 'node:path';
import { readFile, realpath } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { claimedExclusively, listDiskNames, readDisk as readBlockDisk, readDeviceBlocked, readDiskSetting, readDiskSettings, readIoCounters, restartUnitOf, disksUnder, writeDiskSetting, type RestartUnit } from './block-sysfs.js';
import { readDiskIdentity, type DiskIdentity } from './disk-identity.js';
import type { DiskFacts, DiskSource } from './disk-shadow.js';
import { diskIoOf, type DiskIo } from './io-stall-detector.js';
import { defaultMapName, Dmsetup, noLivePath, singlePathTable, type DmMap } from './dm-map.js';

const SCSI_ADDRESS = /^\d+:\d+:\d+:\d+$/;
const SCSI_HOST = /^host\d+$/;

/** How long a listing of the maps, and a map's path status, are taken as current (the stall poller asks four times a second). */
const MAPS_FRESH_MS = 1000;

/**
 * How long reading a disk's identity may take. Some drivers answer it with
 * I/O to the device (virtio_blk's serial is a GET_ID request): a hung
 * driver never answers, and the read must not hold the daemon.
 */
const IDENTITY_TIMEOUT_MS = 5000;

/** A read that did not finish in time (its driver may be hung). */
class IdentityTimeout extends Error {}

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new IdentityTimeout(`${what} did not finish within ${ms} ms (its driver may be hung)`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

/** What the class needs of the machine (SysfsBlockSystem below; a fake in unit tests). */
export interface BlockSystem extends DiskSource {
  /** Whole disks under a restart unit now. */
  disksUnder(unit: string): Promise<string[]>;
  /** This boot's id ('' when unknown): with a diskseq it names a disk instance (disk-shadow.ts). */
  bootId?(): string;
  readIo(name: string): Promise<DiskIo>;
  /** Writes one setting (a key of DiskFacts.settings); rejects with the kernel's refusal. */
  writeSetting(name: string, key: string, value: string): Promise<void>;
  /** Points a map at a disk (reload, resume without flush); returns the commands run. */
  switchMap(map: string, sectors: number, devt: string): Promise<string[][]>;
  /** Makes a map fail the I/O it holds, and what comes, while it has no path; returns the command run. */
  failHeldIo(map: string): Promise<string[]>;
  /** Puts a disk nothing uses under a map of shadowd's own; returns its name, or rejects saying why it cannot. */
  createMap(disk: DiskFacts): Promise<string>;
  /** The module a driver lives in. */
  moduleOf(driver: string): Promise<string | null>;
  /** Who uses a disk other than a protecting map, for people (mounted at /srv, claimed by a holder), or null when nothing does. */
  diskUse(name: string): Promise<string | null>;
  /** The protecting map over a disk, found from sysfs and the map list alone (no I/O to a disk that may be hung), or null. */
  mapOver(name: string): Promise<string | null>;
}

export interface SysfsBlockSystemOptions {
  sysfs?: string;
  mountinfo?: string;
  dmsetup?: Dmsetup;
  now?: () => number;
}

export class SysfsBlockSystem implements BlockSystem {
  private readonly sysfs: string;
  private readonly mountinfo: string | undefined;
  private readonly dm: Dmsetup;
  private readonly now: () => number;
  private maps: { at: number; list: Promise<{ map: DmMap; disk: string }[]> } | null = null;
  private readonly pathStatus = new Map<string, { at: number; failed: Promise<boolean | null> }>();
  /** Restart units seen, by device name: disksUnder needs their sysfs path. */
  private readonly units = new Map<string, RestartUnit>();
  private readonly modules = new Map<string, string | null>();
  /** Each disk's MAJ:MIN as last read: the stall poller matches it to a map without reading the disk whole. */
  private readonly devts = new Map<string, string>();
  /**
   * Identities read, by disk name and diskseq (a number the kernel gives
   * each disk it adds, never reused): an identity is read once per disk,
   * when its driver is known to answer, never again while it may be hung.
   */
  private readonly identities = new Map<string, { seq: string; id: DiskIdentity }>();

  constructor(opts: SysfsBlockSystemOptions = {}) {
    this.sysfs = opts.sysfs ?? '/sys';
    this.mountinfo = opts.mountinfo;
    this.dm = opts.dmsetup ?? new Dmsetup();
    this.now = opts.now ?? Date.now;
  }

  listDisks(): Promise<string[]> {
    return listDiskNames(this.sysfs);
  }

  /** The protecting maps, listed at most once a second; a failed listing (no dm loaded) is no maps. */
  private protecting(fresh = false): Promise<{ map: DmMap; disk: string }[]> {
    if (fresh || !this.maps || this.now() - this.maps.at > MAPS_FRESH_MS) {
      this.maps = { at: this.now(), list: this.dm.protectingMaps().catch(() => []) };
    }
    return this.maps.list;
  }

  async readDisk(name: string): Promise<DiskFacts> {
    const disk = await readBlockDisk(name, { sysfs: this.sysfs, ...(this.mountinfo ? { mountinfo: this.mountinfo } : {}) });
    const { seq, id } = await this.identity(name);
    let unit: RestartUnit | null = null;
    try {
      unit = await restartUnitOf(name, this.sysfs);
      this.units.set(unit.device, unit);
      this.modules.set(unit.driver, unit.module);
    } catch {
      // no driver's device under it (a virtual disk): not the class's to restart
    }
    const devicePath = await realpath(join(this.sysfs, 'block', name, 'device')).catch(() => '');
    const scsiAddress = SCSI_ADDRESS.test(basename(devicePath)) ? basename(devicePath) : null;
    const scsiHost = devicePath.split('/').find((c) => SCSI_HOST.test(c)) ?? null;
    this.devts.set(name, disk.devt);
    const maps = (await this.protecting()).filter((m) => m.disk === disk.devt);
    const map = maps[0]?.map.info.name ?? null;
    let protection: string;
    if (map) protection = `protected by map ${map}${maps.length > 1 ? ` (and ${maps.length - 1} more: only one map should sit on a disk)` : ''}`;
    else if (disk.mapLive.possible && disk.holders.length === 0 && disk.partitions.every((p) => p.holders.length === 0)) protection = 'not protected: no map over it (CreateMap=yes, or docs/disks.md, puts one)';
    else protection = `not protected: ${disk.mapLive.reason}`;
    return {
      name,
      devt: disk.devt,
      diskseq: seq === '' ? null : seq,
      serial: id.serial,
      wwid: id.wwn,
      model: id.model,
      ...(id.unreadable && !id.serial && !id.wwn ? { identityUnread: true } : {}),
      sectors: disk.sectors,
      unit: unit?.device ?? null,
      driver: unit?.driver ?? null,
      module: unit?.module ?? null,
      scsiAddress,
      scsiHost,
      settings: await readDiskSettings(name, this.sysfs),
      map,
      protection,
    };
  }

  private async identity(name: string): Promise<{ seq: string; id: DiskIdentity }> {
    const seq = (await readFile(join(this.sysfs, 'block', name, 'diskseq'), 'utf8').catch(() => '')).trim();
    const known = this.identities.get(name);
    if (seq !== '' && known?.seq === seq) return known;
    let id: DiskIdentity;
    try {
      id = await withTimeout(readDiskIdentity(name, this.sysfs), IDENTITY_TIMEOUT_MS, `reading the identity of ${name}`);
    } catch (err) {
      // A hung device: its identity unknown (not "none"), not cached, so that
      // the shadow can take the identity it read of this disk instance before
      // (disk-shadow.ts withKeptIdentity) and a later read tries again.
      if (!(err instanceof IdentityTimeout)) throw err;
      return { seq, id: { serial: null, serialSource: null, wwn: null, model: null, vendor: null, sectors: 0, logicalBlockSize: 0, unreadable: true } };
    }
    if (seq !== '' && !id.unreadable) this.identities.set(name, { seq, id });
    return { seq, id };
  }

  readSetting(name: string, key: string): Promise<{ diskseq: string | null; value: string | null }> {
    return readDiskSetting(name, key, this.sysfs);
  }

  /** The protecting map of a disk, by its MAJ:MIN from sysfs: no read of the disk itself. */
  async mapOver(name: string): Promise<string | null> {
    const devt = (await readFile(join(this.sysfs, 'block', name, 'dev'), 'utf8').catch(() => '')).trim();
    return (await this.protecting()).find((m) => m.disk === devt)?.map.info.name ?? null;
  }

  bootId(): string {
    try {
      return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    } catch {
      return '';
    }
  }

  async disksUnder(unit: string): Promise<string[]> {
    const u = this.units.get(unit);
    if (!u) throw new Error(`restart unit ${unit} was never seen`);
    return disksUnder(u.sysfsPath, this.sysfs);
  }

  async readIo(name: string): Promise<DiskIo> {
    const c = await readIoCounters(name, this.sysfs);
    const devt = this.devts.get(name);
    const map = devt === undefined ? null : ((await this.protecting()).find((m) => m.disk === devt)?.map.info.name ?? null);
    return diskIoOf(c, map ? await this.pathFailed(map) : null, map ? await readDeviceBlocked(name, this.sysfs) : null);
  }

  private pathFailed(map: string): Promise<boolean | null> {
    const cached = this.pathStatus.get(map);
    if (cached && this.now() - cached.at <= MAPS_FRESH_MS) return cached.failed;
    const failed = this.dm
      .multipathStatus({ name: map })
      .then(({ status }) => noLivePath(status))
      .catch(() => null);
    this.pathStatus.set(map, { at: this.now(), failed });
    return failed;
  }

  async writeSetting(name: string, key: string, value: string): Promise<void> {
    const r = await writeDiskSetting(name, key, value, this.sysfs);
    if (r.outcome === 'failed') throw new Error(r.reason ?? `${key} was refused`);
  }

  async switchMap(map: string, sectors: number, devt: string): Promise<string[][]> {
    await this.dm.repoint(map, sectors, devt);
    this.maps = null;
    this.pathStatus.delete(map);
    return [
      ['dmsetup', 'reload', map, '--table', singlePathTable(sectors, devt)],
      ['dmsetup', 'resume', '--noflush', map],
    ];
  }

  async failHeldIo(map: string): Promise<string[]> {
    await this.dm.failIfNoPath(map);
    this.maps = null;
    return ['dmsetup', 'message', map, '0', 'fail_if_no_path'];
  }

  async createMap(disk: DiskFacts): Promise<string> {
    const now = await readBlockDisk(disk.name, { sysfs: this.sysfs, ...(this.mountinfo ? { mountinfo: this.mountinfo } : {}) });
    if (!now.mapLive.possible) throw new Error(now.mapLive.reason);
    const held = [...now.holders, ...now.partitions.flatMap((p) => p.holders)];
    if (held.length > 0) throw new Error(`${now.mapLive.reason}; shadowd does not rebuild a stack by itself: docs/disks.md says how to put the map under it`);
    const name = defaultMapName({ serial: disk.serial, wwn: disk.wwid });
    await this.dm.create(name, singlePathTable(now.sectors, now.devt));
    this.maps = null;
    return name;
  }

  async diskUse(name: string): Promise<string | null> {
    const disk = await readBlockDisk(name, { sysfs: this.sysfs, ...(this.mountinfo ? { mountinfo: this.mountinfo } : {}) });
    const uses: string[] = [];
    for (const m of disk.mounts) uses.push(`mounted at ${m.mountPoint}`);
    for (const h of disk.holders) uses.push(`held by ${h.dmName ?? h.device}`);
    for (const p of disk.partitions) {
      for (const m of p.mounts) uses.push(`${p.name} mounted at ${m.mountPoint}`);
      for (const h of p.holders) uses.push(`${p.name} held by ${h.dmName ?? h.device}`);
    }
    // Swap, an exclusive opener: what mounts and holders do not show.
    for (const node of [name, ...disk.partitions.map((p) => p.name)]) {
      if (uses.length === 0 && (await claimedExclusively(join('/dev', node))) === true) uses.push(`/dev/${node} is open exclusively`);
    }
    return uses.length > 0 ? uses.join(', ') : null;
  }

  moduleOf(driver: string): Promise<string | null> {
    return Promise.resolve(this.modules.get(driver) ?? null);
  }
}
