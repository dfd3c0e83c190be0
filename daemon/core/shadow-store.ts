// The shadow's durable memory: SQLite (WAL) under the state directory. One row
// per device and configuration key holds the latest effective value and who
// set it, so the log is bounded by the number of keys, not the number of calls.
// Each change is its own transaction: a daemon killed at any moment keeps
// everything it had observed before.
//
// The shadow itself is in memory, loaded from the file when it is opened:
// reads never touch the file, and a write the file refuses (full, I/O error,
// read-only, corrupt) leaves the shadow as it is and the change waiting to be
// written again (store-health.ts: the store is "degraded" until a retry
// succeeds). A file that is not a database, or fails its quick check, is
// moved aside at open and a new one started; one that cannot be opened at all
// leaves shadowd running on the shadow in memory alone.
//
// The store is class-agnostic: devices of every class (net, sound, block)
// share its tables, each row says its class, and a class's own attributes
// (net's ifindex) are JSON the store keeps but never reads. A file written
// before classes existed (schema 1: network devices with an ifindex column)
// is migrated in place when it is opened.
import { copyFileSync, existsSync, renameSync, rmSync } from 'node:fs';
import Database from 'better-sqlite3';
import type { Logger } from '../service/log.js';
import { isCorruption, isSqliteError, isUnavailable, StoreHealth, type StoreHealthOptions } from './store-health.js';
import { CLASS_ID } from './device-ref.js';
import type { JsonValue } from './json-value.js';

/** Who set a value: a process seen by a tap, or the daemon's own snapshot. */
export interface Actor {
  pid: number | null;
  comm: string;
}
export const SNAPSHOT_ACTOR: Actor = { pid: null, comm: '(snapshot)' };

export interface ShadowEntry {
  key: string;
  value: JsonValue;
  actor: Actor;
  /** Wall-clock time the value was observed, ms since the epoch. */
  at: number;
  /** Store-wide change counter: orders changes across keys and devices. */
  seq: number;
}

/** A class attribute's value, as DeviceStatus.attrs carries it. */
export type DeviceAttrs = Record<string, number | string>;

export interface DeviceRecord {
  /** Stable identity: the bus address where there is one, else the device's name. */
  id: string;
  /** The device's class (its sysfs class name: net, sound, block). */
  cls: string;
  name: string;
  driver: string | null;
  bus: string | null;
  /** The class's own attributes (net: { ifindex }), kept as JSON: the core never looks inside. */
  attrs: DeviceAttrs;
  present: boolean;
  firstSeen: number;
  lastSeen: number;
}

/** What a class tells the store about a device it sees: attrs, when given, replace the stored ones. */
export interface DeviceUpsert {
  id: string;
  cls: string;
  name: string;
  driver: string | null;
  bus: string | null;
  attrs?: DeviceAttrs;
}

/** A kind of reference a process holds on a device: each class declares its own (ClassDeclaration.holderKinds). */
export type HolderKind = string;
export interface Holder {
  kind: HolderKind;
  pid: number;
  comm: string;
  count: number;
  since: number;
}

/**
 * Schema versions (meta k='schema'):
 * 1: devices of the network class only, with an ifindex column.
 * 2: devices of any class; class attributes as JSON in attrs (net: {"ifindex": N}).
 */
const SCHEMA_VERSION = 2;

const META_TABLE = 'CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);';

/**
 * A new file's tables. The devices columns are in the order a version-1 file
 * has them after its migration (attrs last), so both kinds of file look alike.
 */
const SCHEMA = `
CREATE TABLE devices (
  id TEXT PRIMARY KEY,
  cls TEXT NOT NULL,
  name TEXT NOT NULL,
  driver TEXT,
  bus TEXT,
  present INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL,
  attrs TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attrs))
);
CREATE TABLE entries (
  device TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  actor_pid INTEGER,
  actor_comm TEXT NOT NULL,
  at INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (device, key)
);
CREATE TABLE holders (
  device TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  pid INTEGER NOT NULL,
  comm TEXT NOT NULL,
  count INTEGER NOT NULL,
  since INTEGER NOT NULL,
  PRIMARY KEY (device, kind, pid)
);
`;

/**
 * Version 1 → 2, in place. The devices table is altered, not rebuilt: with
 * foreign keys on, dropping it would cascade into entries and holders. Every
 * entry, holder and seq stays as it was (seq is the entries' own column).
 */
const MIGRATE_1_TO_2 = `
ALTER TABLE devices ADD COLUMN attrs TEXT NOT NULL DEFAULT '{}' CHECK (json_valid(attrs));
UPDATE devices SET attrs = json_object('ifindex', ifindex);
ALTER TABLE devices DROP COLUMN ifindex;
`;

interface EntryRow {
  key: string;
  value: string;
  actor_pid: number | null;
  actor_comm: string;
  at: number;
  seq: number;
}
interface DeviceRow {
  id: string;
  cls: string;
  name: string;
  driver: string | null;
  bus: string | null;
  attrs: string;
  present: number;
  first_seen: number;
  last_seen: number;
}

export class StoreError extends Error {}

/** Reads a row's attrs; anything that is not an object of numbers and strings (a hand-edited file) reads as none. */
function parseAttrs(text: string): DeviceAttrs {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return {};
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return {};
  const attrs: DeviceAttrs = {};
  for (const [k, v] of Object.entries(parsed as Record<string, unknown>)) {
    if (typeof v === 'string' || (typeof v === 'number' && Number.isFinite(v))) attrs[k] = v;
  }
  return attrs;
}

function checkAttrs(device: string, attrs: DeviceAttrs): string {
  if (typeof attrs !== 'object' || attrs === null || Array.isArray(attrs)) throw new StoreError(`device ${device}: attrs must be an object`);
  for (const [k, v] of Object.entries(attrs)) {
    if (typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v))) {
      throw new StoreError(`device ${device}: attribute ${k} must be a string or a finite number, not ${JSON.stringify(v) ?? typeof v}`);
    }
  }
  return JSON.stringify(attrs);
}

/**
 * The file's schema version: meta's, or for a file without one, what its
 * tables say (a daemon killed between creating version 1's tables and
 * writing its number left such a file); 0 for a new, empty file.
 */
function schemaVersion(db: Database.Database): string | number {
  const row = db.prepare<[], { v: string }>("SELECT v FROM meta WHERE k = 'schema'").get();
  if (row) return row.v;
  const columns = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('devices')").all().map((c) => c.name);
  if (columns.length === 0) return 0;
  return columns.includes('ifindex') ? 1 : SCHEMA_VERSION;
}

/** An entry as the memory holds it: its value also as the JSON the file has, to compare. */
interface MemEntry extends ShadowEntry {
  text: string;
}

export interface ShadowStoreOptions extends StoreHealthOptions {
  logger?: Logger;
  /** For tests: when the file was found corrupt (names the moved-aside copy). */
  clock?: () => Date;
}

/** Where a corrupt file goes: beside it, named by the time it was found (never deleted). */
export function corruptPath(path: string, when: Date): string {
  const stamp = when.toISOString().replace(/[-:]/g, '').replace(/\.\d+Z$/, 'Z');
  let aside = `${path}.corrupt-${stamp}`;
  for (let n = 1; existsSync(aside); n++) aside = `${path}.corrupt-${stamp}-${n}`;
  return aside;
}

const byText = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export class ShadowStore {
  private db!: Database.Database;
  private seq = 0;
  readonly health: StoreHealth;
  private readonly devs = new Map<string, DeviceRecord>();
  private readonly ents = new Map<string, Map<string, MemEntry>>();
  /** device → kind\0pid → holder */
  private readonly hold = new Map<string, Map<string, Holder>>();
  /** What the file does not have yet. */
  private readonly dirtyDevices = new Set<string>();
  private readonly dirtyEntries = new Map<string, Set<string>>();
  private readonly dirtyHolders = new Set<string>();
  /** Nesting of transaction(): the changes are written when the outermost ends. */
  private depth = 0;
  private putEntry!: Database.Statement<[string, string, string, number | null, string, number, number]>;
  private putDevice!: Database.Statement<Record<string, unknown>>;
  private clearHolders!: Database.Statement<[string]>;
  private putHolder!: Database.Statement<[string, string, number, string, number, number]>;

  constructor(
    private readonly path: string,
    opts: ShadowStoreOptions = {},
  ) {
    this.health = new StoreHealth(path, opts);
    const logger = opts.logger;
    // Opening a file checkpoints its WAL, and closing a bad one may drop it:
    // a copy keeps the log as it was, to go with the file if it is moved aside.
    const walCopy = `${path}-wal.check`;
    try {
      try {
        if (existsSync(`${path}-wal`)) {
          try {
            copyFileSync(`${path}-wal`, walCopy);
          } catch {
            // No room for the copy (a full disk): the file is opened all the same.
            rmSync(walCopy, { force: true });
          }
        }
        this.openFile();
        rmSync(walCopy, { force: true });
      } catch (err) {
        if (!isCorruption(err)) {
          rmSync(walCopy, { force: true });
          throw err;
        }
        const aside = corruptPath(path, (opts.clock ?? (() => new Date()))());
        // The logs go with it (nothing is deleted): a new file must not pick up the old one's WAL.
        const moves: [string, string][] = [
          [path, aside],
          [walCopy, `${aside}-wal`],
          [`${path}-wal`, existsSync(walCopy) ? `${aside}-wal.after-check` : `${aside}-wal`],
          [`${path}-shm`, `${aside}-shm`],
        ];
        for (const [from, to] of moves) if (existsSync(from)) renameSync(from, to);
        this.health.movedAside = aside;
        logger?.log('err', `${path} is corrupt (${(err as Error).message}): moved it aside to ${aside} and started a new, empty state; the shadow is read again from the devices`, {
          SHADOWD_COMPONENT: 'store',
          SHADOWD_STATE_DB: path,
          SHADOWD_STATE_DB_CORRUPT: aside,
          SHADOWD_SQLITE_CODE: (err as { code?: string }).code ?? '',
        });
        this.openFile();
      }
    } catch (err) {
      // A newer shadowd's file, a migration that fails: refused, as a start that cannot go on.
      if (!isUnavailable(err)) throw err;
      // Permissions, a read-only filesystem, no directory, a lock: shadowd runs on the shadow in memory.
      this.health.unavailable(err);
      this.openMemory();
    }
    this.health.addWriter({ flush: () => this.writeDirty(), pending: () => this.pendingChanges() });
  }

  /** Forgets what a file that failed to open had loaded. */
  private reset(): void {
    this.devs.clear();
    this.ents.clear();
    this.hold.clear();
    this.seq = 0;
  }

  /** Opens the file, checks it, brings its schema up and loads it; closes it again on any error. */
  private openFile(): void {
    const db = new Database(this.path);
    try {
      db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode: a crashed process loses no committed transaction.
      db.pragma('synchronous = NORMAL');
      db.pragma('foreign_keys = ON');
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok') {
        const err = new Database.SqliteError(`quick_check: ${String(check)}`, 'SQLITE_CORRUPT');
        throw err;
      }
      this.prepare(db);
    } catch (err) {
      db.close();
      this.reset();
      throw err;
    }
  }

  /** No file: the same tables in memory, so the recovery history can share the connection. */
  private openMemory(): void {
    const db = new Database(':memory:');
    db.pragma('foreign_keys = ON');
    this.prepare(db);
  }

  private prepare(db: Database.Database): void {
    db.exec(META_TABLE);
    this.openSchema(db, this.path);
    this.putEntry = db.prepare(
      `INSERT INTO entries (device, key, value, actor_pid, actor_comm, at, seq) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (device, key) DO UPDATE SET value = excluded.value, actor_pid = excluded.actor_pid,
         actor_comm = excluded.actor_comm, at = excluded.at, seq = excluded.seq`,
    );
    this.putDevice = db.prepare(
      `INSERT INTO devices (id, cls, name, driver, bus, attrs, present, first_seen, last_seen)
       VALUES (@id, @cls, @name, @driver, @bus, @attrs, @present, @firstSeen, @lastSeen)
       ON CONFLICT (id) DO UPDATE SET name = @name, attrs = @attrs, driver = @driver, bus = @bus,
         present = @present, last_seen = @lastSeen`,
    );
    this.clearHolders = db.prepare('DELETE FROM holders WHERE device = ?');
    this.putHolder = db.prepare('INSERT INTO holders (device, kind, pid, comm, count, since) VALUES (?, ?, ?, ?, ?, ?)');
    this.load(db);
    this.db = db;
  }

  /** Reads the whole file into memory (bounded by the number of devices and keys). */
  private load(db: Database.Database): void {
    for (const r of db.prepare<[], DeviceRow>('SELECT * FROM devices').all()) {
      this.devs.set(r.id, {
        id: r.id,
        cls: r.cls,
        name: r.name,
        driver: r.driver,
        bus: r.bus,
        attrs: parseAttrs(r.attrs),
        present: r.present === 1,
        firstSeen: r.first_seen,
        lastSeen: r.last_seen,
      });
    }
    for (const r of db.prepare<[], EntryRow & { device: string }>('SELECT device, key, value, actor_pid, actor_comm, at, seq FROM entries').all()) {
      this.entriesOf(r.device).set(r.key, {
        key: r.key,
        value: JSON.parse(r.value) as JsonValue,
        text: r.value,
        actor: { pid: r.actor_pid, comm: r.actor_comm },
        at: r.at,
        seq: r.seq,
      });
      if (r.seq > this.seq) this.seq = r.seq;
    }
    for (const h of db.prepare<[], Holder & { device: string }>('SELECT device, kind, pid, comm, count, since FROM holders').all()) {
      this.holdersOf(h.device).set(`${h.kind}\0${h.pid}`, { kind: h.kind, pid: h.pid, comm: h.comm, count: h.count, since: h.since });
    }
  }

  /** Creates a new file's tables, or brings an older file's up to SCHEMA_VERSION in one transaction; refuses a newer one. */
  private openSchema(db: Database.Database, path: string): void {
    db.transaction(() => {
      const found = schemaVersion(db);
      const version = Number(found);
      if (!Number.isSafeInteger(version) || version < 0 || version > SCHEMA_VERSION) {
        throw new StoreError(
          `${path}: state schema ${String(found)} is not the supported ${SCHEMA_VERSION}` +
            (version > SCHEMA_VERSION ? ' (a newer shadowd wrote it; this one cannot read it)' : ''),
        );
      }
      if (version === SCHEMA_VERSION) return;
      if (version === 0) db.exec(SCHEMA);
      else if (version === 1) db.exec(MIGRATE_1_TO_2);
      db.prepare("INSERT INTO meta (k, v) VALUES ('schema', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v").run(String(SCHEMA_VERSION));
    }).immediate();
  }

  private entriesOf(device: string): Map<string, MemEntry> {
    let m = this.ents.get(device);
    if (!m) this.ents.set(device, (m = new Map<string, MemEntry>()));
    return m;
  }

  private holdersOf(device: string): Map<string, Holder> {
    let m = this.hold.get(device);
    if (!m) this.hold.set(device, (m = new Map<string, Holder>()));
    return m;
  }

  private requireDevice(device: string): void {
    if (!this.devs.has(device)) throw new StoreError(`device ${device} is not in the shadow`);
  }

  /**
   * Runs fn as one transaction: the ingest commits each batch of events it
   * read at once. The changes fn made are written when the outermost
   * transaction ends, also when fn throws (the shadow in memory has them).
   */
  transaction<T>(fn: () => T): T {
    this.depth++;
    try {
      return fn();
    } finally {
      this.depth--;
      if (this.depth === 0) this.persist();
    }
  }

  /** Writes what changed, unless a transaction is open or the store is degraded (its retry writes it). */
  private persist(): void {
    if (this.depth > 0 || this.health.degraded || this.pendingChanges() === 0) return;
    try {
      this.writeDirty();
    } catch (err) {
      if (!isSqliteError(err)) throw err;
      this.health.failed(err, 'recording device state');
    }
  }

  private pendingChanges(): number {
    let n = this.dirtyDevices.size + this.dirtyHolders.size;
    for (const keys of this.dirtyEntries.values()) n += keys.size;
    return n;
  }

  /** Writes every change the file lacks, in one transaction; throws (and keeps them) when the file refuses. */
  private writeDirty(): void {
    if (this.pendingChanges() === 0) return;
    this.db.transaction(() => {
      for (const id of this.dirtyDevices) {
        const d = this.devs.get(id);
        if (!d) continue;
        this.putDevice.run({ ...d, attrs: JSON.stringify(d.attrs), present: d.present ? 1 : 0 });
      }
      for (const [device, keys] of this.dirtyEntries) {
        const m = this.ents.get(device);
        for (const key of keys) {
          const e = m?.get(key);
          if (e) this.putEntry.run(device, key, e.text, e.actor.pid, e.actor.comm, e.at, e.seq);
        }
      }
      for (const device of this.dirtyHolders) {
        this.clearHolders.run(device);
        for (const h of this.hold.get(device)?.values() ?? []) this.putHolder.run(device, h.kind, h.pid, h.comm, h.count, h.since);
      }
    })();
    this.dirtyDevices.clear();
    this.dirtyEntries.clear();
    this.dirtyHolders.clear();
  }

  /** Closes the file, writing what waits if it can. */
  close(): void {
    this.health.stop();
    try {
      this.writeDirty();
    } catch (err) {
      if (!isSqliteError(err)) throw err;
      // Left in memory: the next start reads the devices again.
    }
    this.db.close();
  }

  /**
   * The store-wide change counter: the seq of the latest entry change. Every
   * entry changed after it is read has a greater seq (the replay after a
   * restart leaves those alone: netdev-replay.ts, planRestartReplay).
   */
  get changes(): number {
    return this.seq;
  }

  /** The connection, for tables kept beside the shadow in the same file (the recovery history). */
  get database(): Database.Database {
    return this.db;
  }

  /**
   * Records a device a class sees (present unless told otherwise). Its class
   * is fixed at its first upsert: an id already recorded for another class
   * is an error, never taken over. `attrs`, when given, replace the stored
   * ones; a null driver or bus keeps what was known.
   */
  upsertDevice(d: DeviceUpsert, at: number, present = true): void {
    if (typeof d.cls !== 'string' || !CLASS_ID.test(d.cls)) throw new StoreError(`device ${d.id}: ${JSON.stringify(d.cls)} is not a class id`);
    const attrs = d.attrs === undefined ? null : checkAttrs(d.id, d.attrs);
    const known = this.devs.get(d.id);
    if (known && known.cls !== d.cls) {
      throw new StoreError(`device ${d.id} is a ${known.cls} device in the shadow; a ${d.cls} device cannot take its id over`);
    }
    const parsed = attrs === null ? null : (JSON.parse(attrs) as DeviceAttrs);
    if (known) {
      known.name = d.name;
      if (parsed) known.attrs = parsed;
      known.driver = d.driver ?? known.driver;
      known.bus = d.bus ?? known.bus;
      known.present = present;
      known.lastSeen = at;
    } else {
      this.devs.set(d.id, { id: d.id, cls: d.cls, name: d.name, driver: d.driver, bus: d.bus, attrs: parsed ?? {}, present, firstSeen: at, lastSeen: at });
    }
    this.dirtyDevices.add(d.id);
    this.persist();
  }

  setPresent(id: string, present: boolean, at: number): void {
    const d = this.devs.get(id);
    if (!d) return;
    d.present = present;
    d.lastSeen = at;
    this.dirtyDevices.add(id);
    this.persist();
  }

  /** Every device, or only those of one class; by class, then name. */
  devices(cls?: string): DeviceRecord[] {
    return [...this.devs.values()]
      .filter((d) => cls === undefined || d.cls === cls)
      .sort((a, b) => byText(a.cls, b.cls) || byText(a.name, b.name) || byText(a.id, b.id))
      .map((d) => ({ ...d, attrs: { ...d.attrs } }));
  }

  /**
   * Records a key's latest value. `set`: a tap saw this actor set it, so the
   * attribution moves even when the value is the same. `observe`: a re-read
   * found it, so only a different value is recorded. Returns whether the row changed.
   */
  setEntry(device: string, key: string, value: JsonValue, actor: Actor, at: number, how: 'set' | 'observe' = 'set'): boolean {
    const text = JSON.stringify(value);
    const old = this.ents.get(device)?.get(key);
    if (old && old.text === text && (how === 'observe' || actor.pid === null || old.actor.pid === actor.pid)) return false;
    this.requireDevice(device);
    this.entriesOf(device).set(key, { key, value: JSON.parse(text) as JsonValue, text, actor: { pid: actor.pid, comm: actor.comm }, at, seq: ++this.seq });
    let keys = this.dirtyEntries.get(device);
    if (!keys) this.dirtyEntries.set(device, (keys = new Set<string>()));
    keys.add(key);
    this.persist();
    return true;
  }

  entries(device: string): ShadowEntry[] {
    return [...(this.ents.get(device)?.values() ?? [])]
      .sort((a, b) => byText(a.key, b.key))
      .map((e) => ({ key: e.key, value: JSON.parse(e.text) as JsonValue, actor: { ...e.actor }, at: e.at, seq: e.seq }));
  }

  /** Counts a holder's references up or down; a holder at zero is gone. Returns the holder's new count. */
  adjustHolder(device: string, kind: HolderKind, pid: number, comm: string, delta: number, at: number): number {
    this.requireDevice(device);
    const m = this.holdersOf(device);
    const slot = `${kind}\0${pid}`;
    const held = m.get(slot);
    const count = (held?.count ?? 0) + delta;
    if (count <= 0) {
      if (held) {
        m.delete(slot);
        this.dirtyHolders.add(device);
        this.persist();
      }
      return 0;
    }
    // A holder keeps the name and time it was first seen with.
    m.set(slot, held ? { ...held, count } : { kind, pid, comm, count, since: at });
    this.dirtyHolders.add(device);
    this.persist();
    return count;
  }

  /** Drops holders whose process is gone (the kernel released their references with them). */
  dropHoldersExcept(device: string, livePids: ReadonlySet<number>): number {
    const m = this.hold.get(device);
    if (!m) return 0;
    let dropped = 0;
    for (const [slot, h] of m) {
      if (!livePids.has(h.pid)) {
        m.delete(slot);
        dropped++;
      }
    }
    if (dropped > 0) {
      this.dirtyHolders.add(device);
      this.persist();
    }
    return dropped;
  }

  holders(device: string): Holder[] {
    return [...(this.hold.get(device)?.values() ?? [])].sort((a, b) => byText(a.kind, b.kind) || a.pid - b.pid).map((h) => ({ ...h }));
  }

  /** Rows in the reduced log, for the bounded-log check and the metrics. */
  entryCount(device?: string): number {
    if (device !== undefined) return this.ents.get(device)?.size ?? 0;
    let n = 0;
    for (const m of this.ents.values()) n += m.size;
    return n;
  }
}
