// The disk class shadow in passive mode: one shadow for every disk driver.
// It adopts each whole disk that a driver serves, keeps the settings a driver
// restart loses (scheduler, queue, SCSI device and host attributes) with who
// set them and when, and the disk's identity and protecting map. Tap events
// say who wrote which attribute; the shadow re-reads the disk and credits
// the writer with what changed. A disk is keyed by its identity (serial,
// WWN), not its kernel name: after a restart sda may come back as sdb.
import type { DeviceStatus, ShowResult } from '../../core/device-status.js';
import { storedByName, storedShow, storedStatus } from '../../core/stored-device.js';
import { SNAPSHOT_ACTOR, type Actor, type DeviceRecord, type ShadowStore } from '../../core/shadow-store.js';
import type { TapEvent } from '../../core/tap-record.js';
import type { Logger } from '../../service/log.js';
import { reduceBlockEvent, type WriteTarget } from './block-reducer.js';

/** What the shadow reads of one disk (block-sysfs.ts and dm-map.ts through block-class.ts). */
export interface DiskFacts {
  name: string;
  /** MAJ:MIN */
  devt: string;
  /** The kernel's number for this disk, never reused (a disk that comes back under the same name has another); null if unread. */
  diskseq?: string | null;
  serial: string | null;
  wwid: string | null;
  model: string | null;
  /**
   * The disk has a serial or WWN that could not be read (its device refused
   * or did not answer): unknown, not absent. Such a disk is never matched by
   * its name (unit-relink.ts) nor adopted without the identity kept for its
   * instance (withKeptIdentity).
   */
  identityUnread?: boolean;
  /** Size in 512-byte sectors. */
  sectors: number;
  /** The restart unit: the bus device whose driver serves the disk (0000:00:01.1, virtio2). */
  unit: string | null;
  driver: string | null;
  /** The module the driver lives in (null: built in, or unknown). */
  module?: string | null;
  /** The SCSI device's H:C:T:L and its host (host0), for SCSI disks. */
  scsiAddress: string | null;
  scsiHost: string | null;
  /** Setting key → value as the kernel shows it (queue/scheduler → mq-deadline). */
  settings: Record<string, string>;
  /** The map that protects the disk, if one does. */
  map: string | null;
  /** For people: "protected by map shadow-X" or "not protected: why". */
  protection: string;
}

export interface DiskSource {
  /** The whole disks a driver serves, by kernel name. */
  listDisks(): Promise<string[]>;
  readDisk(name: string): Promise<DiskFacts>;
  /** One setting and the diskseq of the disk it was read from (block-sysfs.ts readDiskSetting): sysfs only, safe on a hung disk. */
  readSetting(name: string, key: string): Promise<{ diskseq: string | null; value: string | null }>;
}

export interface DiskShadowDeps {
  source: DiskSource;
  /** Whether shadowd is restarting this disk's driver: the disk is away and comes back through the replay. */
  held?: (name: string) => boolean;
  /** Whether shadowd is restarting the driver of this restart unit: a disk appearing under it is one coming back, linked by the replay. */
  heldUnit?: (unit: string) => boolean;
  /** A disk that appeared while shadowd runs (a driver loaded, a disk plugged in) was adopted. */
  appeared?: (facts: DiskFacts) => void;
  now?: () => number;
  /**
   * This boot's id (/proc/sys/kernel/random/boot_id): with a disk's diskseq,
   * which the kernel never reuses within a boot, it names one disk instance
   * across shadowd's own restarts. Empty: no identity is ever kept.
   */
  bootId?: string;
}

const CLS = 'block';

/** Who wrote a setting, for people: comm[pid], or the name alone for the kernel and shadowd's own steps. */
function whoOf(actor: Actor): string {
  return actor.pid === null ? actor.comm : `${actor.comm}[${actor.pid}]`;
}

/** A disk's stable identity: its serial or WWN where it has one, else its kernel name. */
export function diskId(f: Pick<DiskFacts, 'serial' | 'wwid' | 'name'>): string {
  if (f.wwid) return `wwid:${f.wwid}`;
  if (f.serial) return `serial:${f.serial}`;
  return `name:${f.name}`;
}

interface WatchedDisk {
  id: string;
  facts: DiskFacts;
}

export class DiskShadow {
  private readonly watched = new Map<string, WatchedDisk>();
  private refreshing: Promise<void> = Promise.resolve();
  private readsInFlight = 0;
  private resyncing: Promise<void> | null = null;
  private resyncAgain: string | null = null;
  /** How many holds on a restart unit have ended (unitReleased): a read that spans one may predate the map switch. */
  private releases = 0;
  /** Seqs of entries read from a failed disk while shadowd restarts its driver: set before the restart, whenever recorded (carriedOver). */
  private readonly fromFailedDisk = new Set<number>();
  /** The disks of each restart, by the name each had as it began: who answers under that name now is told apart by diskseq. */
  private readonly restarting = new Map<string, { id: string; diskseq: string | null }>();
  /** When (tap clock) a disk was added under a name during a restart: a write to that name before it went to the failed disk. */
  private readonly cameBackAt = new Map<string, bigint>();
  /** Settings written during a restart to a disk not yet linked, by its diskseq: recorded on it when the replay links it. */
  private readonly pendingWrites = new Map<string, { key: string; value: string; actor: Actor; at: number }[]>();
  private readonly source: DiskSource;
  private readonly held: (name: string) => boolean;
  private readonly heldUnit: (unit: string) => boolean;
  private readonly appeared: (facts: DiskFacts) => void;
  private readonly now: () => number;
  private readonly bootId: string;

  constructor(
    private readonly store: ShadowStore,
    private readonly logger: Logger,
    deps: DiskShadowDeps,
  ) {
    this.source = deps.source;
    this.held = deps.held ?? (() => false);
    this.heldUnit = deps.heldUnit ?? (() => false);
    this.appeared = deps.appeared ?? (() => undefined);
    this.now = deps.now ?? Date.now;
    this.bootId = deps.bootId ?? '';
  }

  /** Adopts every disk a driver serves and reads it whole (start-up, after a gap in the taps). */
  async resync(why: string): Promise<void> {
    const names = await this.source.listDisks();
    const seen = new Set<string>();
    for (const name of names) {
      if (this.held(name)) {
        const known = this.watched.get(name);
        if (known) seen.add(known.id);
        continue;
      }
      const dev = await this.readInto(name, SNAPSHOT_ACTOR);
      if (dev && dev !== 'unreadable') seen.add(dev.id);
    }
    for (const known of this.store.devices(CLS)) {
      if (known.present && !seen.has(known.id) && !this.held(known.name)) this.store.setPresent(known.id, false, this.now());
    }
    for (const [name, dev] of this.watched) if (!seen.has(dev.id)) this.watched.delete(name);
    this.logger.log('info', `read the state of ${seen.size} disk(s) (${why})`, { SHADOWD_CLASS: CLS });
  }

  /** resync, with gaps that come while one runs folded into one more. */
  requestResync(why: string): Promise<void> {
    if (this.resyncing) {
      this.resyncAgain = why;
      return this.resyncing;
    }
    this.resyncing = (async () => {
      let reason: string | null = why;
      while (reason !== null) {
        this.resyncAgain = null;
        await this.resync(reason).catch((err: unknown) => this.logger.log('err', `re-reading the disks failed: ${messageOf(err)}`, { SHADOWD_CLASS: CLS }));
        reason = this.resyncAgain;
      }
      this.resyncing = null;
    })();
    return this.resyncing;
  }

  applyBatch(events: readonly TapEvent[]): void {
    for (const e of events) {
      const actor: Actor = { pid: e.pid, comm: e.comm };
      for (const action of reduceBlockEvent(e)) {
        switch (action.kind) {
          case 'write':
            for (const name of this.disksOf(action.target)) this.schedule(name, actor, false, action.key, e.tsNs, action.value);
            break;
          case 'added':
            if (this.restarting.has(action.name)) this.cameBackAt.set(action.name, e.tsNs);
            // A disk a restart brings back is linked to its shadow by the replay, not adopted here.
            if (!this.held(action.name) && !this.watched.has(action.name)) this.schedule(action.name, SNAPSHOT_ACTOR, true);
            break;
          case 'removed':
            this.removed(action.name);
            break;
        }
      }
    }
  }

  private disksOf(t: WriteTarget): string[] {
    const all = [...this.watched.values()].map((d) => d.facts);
    switch (t.kind) {
      case 'disk':
        return all.filter((f) => f.name === t.name).map((f) => f.name);
      case 'scsi':
        return all.filter((f) => f.scsiAddress === t.address).map((f) => f.name);
      case 'host':
        return all.filter((f) => f.scsiHost === t.name).map((f) => f.name);
    }
  }

  /** Whether shadowd is restarting the driver of the disk by this name: the disk itself, or the unit it was read under, held. */
  private underRestart(name: string): boolean {
    const unit = this.watched.get(name)?.facts.unit ?? null;
    return this.held(name) || (unit !== null && this.heldUnit(unit));
  }

  private removed(name: string): void {
    const dev = this.watched.get(name);
    if (!dev) return;
    if (this.underRestart(name)) {
      this.logger.log('debug', `${name}: its driver let go of it during shadowd's restart; the map holds its I/O`, this.fields(dev.facts));
      return;
    }
    this.watched.delete(name);
    this.store.setPresent(dev.id, false, this.now());
    this.logger.log('notice', `${name} disappeared; its shadow is kept`, this.fields(dev.facts));
  }

  private schedule(name: string, actor: Actor, appeared = false, key: string | null = null, tsNs = 0n, written: string | null = null): void {
    this.readsInFlight++;
    this.refreshing = this.refreshing.then(async () => {
      try {
        if (this.underRestart(name)) {
          if (key !== null) await this.heldWrite(name, key, actor, tsNs, written);
          return;
        }
        const dev = await this.readInto(name, actor);
        if (dev && dev !== 'unreadable' && appeared) this.appeared(dev.facts);
        // A disk that fails as it is written to cannot be read: the value the taps carried, if whole.
        if (dev === 'unreadable' && key !== null && written !== null) this.keepWritten(name, key, written, actor);
      } finally {
        this.readsInFlight--;
      }
    });
  }

  /**
   * Reads a disk and records what changed, credited to `actor`. A disk a
   * driver does not serve (a dm map, a loop device) is not adopted.
   * 'unreadable': the read failed (the disk does not answer).
   */
  private async readInto(name: string, actor: Actor): Promise<WatchedDisk | 'unreadable' | null> {
    for (;;) {
      const releases = this.releases;
      let facts: DiskFacts;
      try {
        facts = this.withKeptIdentity(await this.source.readDisk(name));
      } catch (err) {
        this.logger.log('warning', `could not read disk ${name}: ${messageOf(err)}`, { SHADOWD_CLASS: CLS, SHADOWD_DEVICE: name });
        return 'unreadable';
      }
      if (facts.identityUnread) {
        this.logger.log('warning', `could not read disk ${name}'s identity (its device does not answer), and none is kept for it: not watched until it can be read`, this.fields(facts));
        return null;
      }
      if (facts.unit === null) return null;
      // A restarted driver's disk has its defaults: the replay links it, and puts the shadow's settings back.
      if (this.heldUnit(facts.unit)) return null;
      if (releases === this.releases) return this.record(facts, actor);
      // A restart's hold ended while this read ran (a disk's identity can take seconds):
      // what it read may predate the replay (its map still pointing at the old disk), so read again.
    }
  }

  /** A disk instance's name in the store's attributes: this boot and its diskseq; null when either is unknown. */
  private instanceOf(f: Pick<DiskFacts, 'diskseq'>): string | null {
    return this.bootId !== '' && f.diskseq ? `${this.bootId}/${f.diskseq}` : null;
  }

  /**
   * A disk whose serial and WWN cannot be read now (virtio_blk's serial is a
   * request to the device, which a failed disk refuses and a hung one never
   * answers) keeps the identity the shadow read of the same disk instance
   * before (the same diskseq in this boot), by an earlier shadowd: a
   * shadowd that starts while a disk fails still knows which disk to find
   * again after the restart, by identity, never by name. Another instance
   * (a disk added since) keeps none: it stays known by its name only.
   */
  private withKeptIdentity(f: DiskFacts): DiskFacts {
    const instance = this.instanceOf(f);
    if (f.serial || f.wwid || instance === null) return f;
    const kept = this.store.devices(CLS).find((d) => d.attrs['instance'] === instance && (d.attrs['serial'] || d.attrs['wwid']));
    if (!kept) return f;
    const text = (v: unknown): string | null => (typeof v === 'string' && v !== '' ? v : null);
    const out: DiskFacts = { ...f, serial: text(kept.attrs['serial']), wwid: text(kept.attrs['wwid']), model: f.model ?? text(kept.attrs['model']) };
    delete out.identityUnread;
    this.logger.log('notice', `${f.name}: its identity cannot be read now (its device does not answer); it is the disk read before as ${kept.name} (diskseq ${f.diskseq} of this boot), ${diskId(out)}`, this.fields(f));
    return out;
  }

  /**
   * A restart of these disks' driver begins (the replay's mark): each is
   * remembered by the name it has now with its diskseq, so that a setting
   * written under that name later is told apart: the failed disk, or
   * another that came back under its name.
   */
  beginRestart(names: readonly string[]): void {
    for (const name of names) {
      const dev = this.watched.get(name);
      if (dev) this.restarting.set(name, { id: dev.id, diskseq: dev.facts.diskseq ?? null });
    }
  }

  /**
   * A setting written to a disk shadowd is restarting the driver of. The disk
   * is not read whole (its identity can be device I/O on a hung disk): only
   * the key written, with the diskseq of the disk that answered.
   * - The failed disk (the diskseq it had as the restart began), before its
   *   driver let go of it: the value is what the writer wants on the disk,
   *   so it is recorded and counts as set before the restart (carriedOver):
   *   the replay writes it to the disk that comes back.
   * - A disk already linked by the replay (its diskseq known): a change made
   *   during the recovery, recorded on that disk; the replay leaves it.
   * - A disk that came back but is not linked yet: kept by its diskseq, and
   *   recorded on it when the replay links it (pendingFor), as a change
   *   made during the recovery.
   * - Neither (gone, or not telling): written before a disk came back,
   *   the value the taps carried (`written`, when they carried it whole) is
   *   what the writer wants on the failed disk, and carried over as above;
   *   else the value is lost with the failed disk; said so, the shadow keeps
   *   what it had.
   */
  private async heldWrite(name: string, key: string, actor: Actor, tsNs: bigint, written: string | null = null): Promise<void> {
    const dev = this.watched.get(name);
    const failed = this.restarting.get(name) ?? (dev ? { id: dev.id, diskseq: dev.facts.diskseq ?? null } : null);
    // By the taps' clock: written before a disk came back under this name, it went to the failed disk, whoever answers now.
    const back = this.cameBackAt.get(name);
    const toFailed = back === undefined || tsNs < back;
    const fields = dev ? this.fields(dev.facts) : { SHADOWD_CLASS: CLS, SHADOWD_DEVICE: name };
    const who = whoOf(actor);
    let read: { diskseq: string | null; value: string | null };
    try {
      read = await this.source.readSetting(name, key);
    } catch (err) {
      read = { diskseq: null, value: null };
      this.logger.log('debug', `${name}: reading ${key} failed: ${messageOf(err)}`, fields);
    }
    const lost = (): void =>
      this.logger.log(
        'warning',
        `${name}: ${who} wrote ${key} while shadowd restarts the disk's driver, and the value could not be read back from the disk it went to: ` +
          `the replay puts back ${key} as the shadow had it; set it again if that is not what you want`,
        fields,
      );
    const at = this.now();
    const onFailed = (id: string, value: string, how: string): void => {
      if (!this.store.setEntry(id, key, value, actor, at, 'observe')) return;
      this.carryOver(this.store.changes);
      this.logger.log('info', `${name}: ${key} = ${JSON.stringify(value)} by ${who} on the failed disk${how}: the replay carries it to the disk that comes back`, fields);
    };
    // The disk written to cannot tell its value: the one the taps carried, if whole.
    const asWritten = (): void =>
      toFailed && failed !== null && written !== null ? onFailed(failed.id, written, ' (as written: it could not be read back from that disk)') : lost();
    if (read.value === null || read.diskseq === null) return asWritten();
    const fromFailed = failed !== null && failed.diskseq !== null && read.diskseq === failed.diskseq;
    // Read from another disk than the one written to (the failed one went meanwhile): its value is not the writer's.
    if (fromFailed !== toFailed && failed !== null) return asWritten();
    if (fromFailed && failed !== null) return onFailed(failed.id, read.value, '');
    const linked = [...this.watched.values()].find((d) => (d.facts.diskseq ?? null) === read.diskseq);
    if (linked) return this.recordDuringRecovery(linked.id, linked.facts, { key, value: read.value, actor, at });
    if (failed === null || this.pendingWrites.size > 64) return lost();
    this.pendingWrites.set(read.diskseq, [...(this.pendingWrites.get(read.diskseq) ?? []), { key, value: read.value, actor, at }].slice(-64));
  }

  /** A shadow entry (by its seq) recorded during a restart that counts as set before it: the replay carries it. */
  private carryOver(seq: number): void {
    this.fromFailedDisk.add(seq);
    // A few per restart at most; kept bounded all the same.
    if (this.fromFailedDisk.size > 1024) this.fromFailedDisk.delete(this.fromFailedDisk.values().next().value as number);
  }

  /**
   * A watched disk written to that could not be read (it fails as the write
   * lands): the value as written, which the taps carried, is the writer's.
   * Written while shadowd restarts its driver, it counts as set before the
   * restart, for the replay to carry over.
   */
  private keepWritten(name: string, key: string, value: string, actor: Actor): void {
    const dev = this.watched.get(name);
    if (!dev || !this.store.setEntry(dev.id, key, value, actor, this.now(), 'observe')) return;
    const restarting = this.underRestart(name);
    if (restarting) this.carryOver(this.store.changes);
    this.logger.log('info', `${name}: ${key} = ${JSON.stringify(value)} by ${whoOf(actor)}, as written: the disk could not be read${restarting ? '; the replay carries it to the disk that comes back' : ''}`, this.fields(dev.facts));
  }

  /** Records what was written to a disk that came back before the replay linked it (heldWrite); called as it is linked. */
  private pendingFor(facts: DiskFacts, id: string): void {
    const seq = facts.diskseq ?? null;
    const writes = seq === null ? undefined : this.pendingWrites.get(seq);
    if (!writes || seq === null) return;
    this.pendingWrites.delete(seq);
    for (const w of writes) this.recordDuringRecovery(id, facts, w);
  }

  /** A setting written to a disk that came back, during the recovery: recorded on it, and left by the replay (its seq is past the mark). */
  private recordDuringRecovery(id: string, facts: DiskFacts, w: { key: string; value: string; actor: Actor; at: number }): void {
    if (this.store.setEntry(id, w.key, w.value, w.actor, w.at, 'observe')) {
      this.logger.log('info', `${facts.name}: ${w.key} = ${JSON.stringify(w.value)} by ${whoOf(w.actor)} during the recovery: the replay leaves it`, this.fields(facts));
    }
  }

  /** Whether a shadow entry (by its seq) was read from a failed disk during its driver's restart: it counts as set before the restart began. */
  carriedOver(seq: number): boolean {
    return this.fromFailedDisk.has(seq);
  }

  /**
   * Says that a restart unit is no longer held: reads that began while it was
   * are read again rather than recorded over what the replay linked.
   */
  unitReleased(): void {
    this.releases++;
    // Every restart's disks are linked or given up on by now: a name means its disk again.
    this.restarting.clear();
    this.cameBackAt.clear();
    this.pendingWrites.clear();
  }

  /**
   * Records a disk as read now: adopts it, and (unless `linkOnly`) its
   * settings with who changed them. The replay links a disk a restart
   * brought back with `linkOnly`: its settings are the driver's defaults
   * until the replay writes the shadow's back.
   */
  record(facts: DiskFacts, actor: Actor, linkOnly = false): WatchedDisk {
    const id = diskId(facts);
    const at = this.now();
    const known = this.store.devices(CLS).find((d) => d.id === id);
    if (!known) this.logger.log('info', `watching disk ${facts.name} (${facts.driver ?? 'unknown driver'} at ${facts.unit ?? '?'}; ${facts.protection})`, this.fields(facts));
    else if (known.name !== facts.name) this.logger.log('notice', `disk ${known.name} is now ${facts.name}`, this.fields(facts));
    for (const [name, dev] of this.watched) if (dev.id === id && name !== facts.name) this.watched.delete(name);
    const dev: WatchedDisk = { id, facts };
    this.watched.set(facts.name, dev);
    this.store.transaction(() => {
      this.store.upsertDevice({ id, cls: CLS, name: facts.name, driver: facts.driver, bus: facts.unit, attrs: attrsOf(facts, this.instanceOf(facts)) }, at);
      this.pendingFor(facts, id);
      if (linkOnly) return;
      for (const [key, value] of Object.entries(facts.settings)) {
        if (this.store.setEntry(id, key, value, actor, at, 'observe') && actor.pid !== null) {
          this.logger.log('debug', `${facts.name}: ${key} = ${JSON.stringify(value)} by ${actor.comm}[${actor.pid}]`, this.fields(facts));
        }
      }
    });
    return dev;
  }

  /** Resolves once the re-reads asked for by the events applied so far are applied. */
  async caughtUp(): Promise<void> {
    await this.refreshing;
    await this.resyncing;
  }

  async settled(): Promise<void> {
    await this.caughtUp();
  }

  pendingReads(): number {
    return this.readsInFlight;
  }

  /** What the shadow last read of a disk watched under that name. */
  facts(name: string): DiskFacts | null {
    return this.watched.get(name)?.facts ?? null;
  }

  /** Every watched disk as last read. */
  allFacts(): DiskFacts[] {
    return [...this.watched.values()].map((d) => d.facts);
  }

  /** The device of that name: the present one, else the kept shadow of one that is gone. */
  recordOf(name: string): DeviceRecord | undefined {
    return storedByName(this.store, CLS, name);
  }

  status(): DeviceStatus[] {
    return this.store.devices(CLS).map((d) => storedStatus(this.store, d));
  }

  show(name: string): ShowResult {
    return storedShow(this.store, CLS, 'disk', name);
  }

  private fields(f: Pick<DiskFacts, 'name' | 'driver'>): Record<string, string> {
    return { SHADOWD_DEVICE: f.name, SHADOWD_DRIVER: f.driver ?? '', SHADOWD_CLASS: CLS };
  }
}

function attrsOf(f: DiskFacts, instance: string | null): Record<string, string | number> {
  const attrs: Record<string, string | number> = { devt: f.devt, sectors: f.sectors, protection: f.protection, map: f.map ?? '' };
  if (instance) attrs['instance'] = instance;
  if (f.serial) attrs['serial'] = f.serial;
  if (f.wwid) attrs['wwid'] = f.wwid;
  if (f.model) attrs['model'] = f.model;
  return attrs;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
