// The shadow's durable memory: SQLite (WAL) under the state directory. One row
// per device and configuration key holds the latest effective value and who
// set it, so the log is bounded by the number of keys, not the number of calls.
// Each change is its own transaction: a daemon killed at any moment keeps
// everything it had observed before.
//
// The store is class-agnostic: devices of every class (net, sound, block)
// share its tables, each row says its class, and a class's own attributes
// (net's ifindex) are JSON the store keeps but never reads. A file written
// before classes existed (schema 1: network devices with an ifindex column)
// is migrated in place when it is opened.
import Database from 'better-sqlite3';
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

export class ShadowStore {
  private readonly db: Database.Database;
  private seq: number;
  private readonly getEntry: Database.Statement<[string, string], { value: string; actor_pid: number | null }>;
  private readonly putEntry: Database.Statement<[string, string, string, number | null, string, number, number]>;
  private readonly getDeviceClass: Database.Statement<[string], { cls: string }>;
  private readonly putDevice: Database.Statement<Record<string, unknown>>;

  constructor(path: string) {
    this.db = new Database(path);
    try {
      this.db.pragma('journal_mode = WAL');
      // NORMAL in WAL mode: a crashed process loses no committed transaction.
      this.db.pragma('synchronous = NORMAL');
      this.db.pragma('foreign_keys = ON');
      this.db.exec(META_TABLE);
      this.openSchema(path);
    } catch (err) {
      this.db.close();
      throw err;
    }
    this.seq = this.db.prepare<[], { s: number | null }>('SELECT max(seq) AS s FROM entries').get()?.s ?? 0;
    this.getEntry = this.db.prepare('SELECT value, actor_pid FROM entries WHERE device = ? AND key = ?');
    this.putEntry = this.db.prepare(
      `INSERT INTO entries (device, key, value, actor_pid, actor_comm, at, seq) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (device, key) DO UPDATE SET value = excluded.value, actor_pid = excluded.actor_pid,
         actor_comm = excluded.actor_comm, at = excluded.at, seq = excluded.seq`,
    );
    this.getDeviceClass = this.db.prepare('SELECT cls FROM devices WHERE id = ?');
    this.putDevice = this.db.prepare(
      `INSERT INTO devices (id, cls, name, driver, bus, attrs, present, first_seen, last_seen)
       VALUES (@id, @cls, @name, @driver, @bus, coalesce(@attrs, '{}'), @present, @at, @at)
       ON CONFLICT (id) DO UPDATE SET name = @name, attrs = coalesce(@attrs, attrs),
         driver = coalesce(@driver, driver), bus = coalesce(@bus, bus), present = @present, last_seen = @at`,
    );
  }

  /** Creates a new file's tables, or brings an older file's up to SCHEMA_VERSION in one transaction; refuses a newer one. */
  private openSchema(path: string): void {
    this.db.transaction(() => {
      const found = schemaVersion(this.db);
      const version = Number(found);
      if (!Number.isSafeInteger(version) || version < 0 || version > SCHEMA_VERSION) {
        throw new StoreError(
          `${path}: state schema ${String(found)} is not the supported ${SCHEMA_VERSION}` +
            (version > SCHEMA_VERSION ? ' (a newer shadowd wrote it; this one cannot read it)' : ''),
        );
      }
      if (version === SCHEMA_VERSION) return;
      if (version === 0) this.db.exec(SCHEMA);
      else if (version === 1) this.db.exec(MIGRATE_1_TO_2);
      this.db.prepare("INSERT INTO meta (k, v) VALUES ('schema', ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v").run(String(SCHEMA_VERSION));
    }).immediate();
  }

  /** Runs fn in one transaction: the ingest commits each batch of events it read at once. */
  transaction<T>(fn: () => T): T {
    return this.db.transaction(fn)();
  }

  close(): void {
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
    this.db.transaction(() => {
      const known = this.getDeviceClass.get(d.id);
      if (known && known.cls !== d.cls) {
        throw new StoreError(`device ${d.id} is a ${known.cls} device in the shadow; a ${d.cls} device cannot take its id over`);
      }
      this.putDevice.run({ id: d.id, cls: d.cls, name: d.name, driver: d.driver, bus: d.bus, attrs, present: present ? 1 : 0, at });
    })();
  }

  setPresent(id: string, present: boolean, at: number): void {
    this.db.prepare('UPDATE devices SET present = ?, last_seen = ? WHERE id = ?').run(present ? 1 : 0, at, id);
  }

  /** Every device, or only those of one class; by class, then name. */
  devices(cls?: string): DeviceRecord[] {
    const rows =
      cls === undefined
        ? this.db.prepare<[], DeviceRow>('SELECT * FROM devices ORDER BY cls, name, id').all()
        : this.db.prepare<[string], DeviceRow>('SELECT * FROM devices WHERE cls = ? ORDER BY name, id').all(cls);
    return rows.map((r) => ({
      id: r.id,
      cls: r.cls,
      name: r.name,
      driver: r.driver,
      bus: r.bus,
      attrs: parseAttrs(r.attrs),
      present: r.present === 1,
      firstSeen: r.first_seen,
      lastSeen: r.last_seen,
    }));
  }

  /**
   * Records a key's latest value. `set`: a tap saw this actor set it, so the
   * attribution moves even when the value is the same. `observe`: a re-read
   * found it, so only a different value is recorded. Returns whether the row changed.
   */
  setEntry(device: string, key: string, value: JsonValue, actor: Actor, at: number, how: 'set' | 'observe' = 'set'): boolean {
    const text = JSON.stringify(value);
    const old = this.getEntry.get(device, key);
    if (old && old.value === text && (how === 'observe' || actor.pid === null || old.actor_pid === actor.pid)) return false;
    this.putEntry.run(device, key, text, actor.pid, actor.comm, at, ++this.seq);
    return true;
  }

  entries(device: string): ShadowEntry[] {
    return this.db
      .prepare<[string], EntryRow>('SELECT key, value, actor_pid, actor_comm, at, seq FROM entries WHERE device = ? ORDER BY key')
      .all(device)
      .map((r) => ({ key: r.key, value: JSON.parse(r.value) as JsonValue, actor: { pid: r.actor_pid, comm: r.actor_comm }, at: r.at, seq: r.seq }));
  }

  /** Counts a holder's references up or down; a holder at zero is gone. Returns the holder's new count. */
  adjustHolder(device: string, kind: HolderKind, pid: number, comm: string, delta: number, at: number): number {
    const run = this.db.transaction((): number => {
      const row = this.db
        .prepare<[string, string, number], { count: number }>('SELECT count FROM holders WHERE device = ? AND kind = ? AND pid = ?')
        .get(device, kind, pid);
      const count = (row?.count ?? 0) + delta;
      if (count <= 0) {
        this.db.prepare('DELETE FROM holders WHERE device = ? AND kind = ? AND pid = ?').run(device, kind, pid);
        return 0;
      }
      this.db
        .prepare(
          `INSERT INTO holders (device, kind, pid, comm, count, since) VALUES (?, ?, ?, ?, ?, ?)
           ON CONFLICT (device, kind, pid) DO UPDATE SET count = excluded.count`,
        )
        .run(device, kind, pid, comm, count, at);
      return count;
    });
    return run();
  }

  /** Drops holders whose process is gone (the kernel released their references with them). */
  dropHoldersExcept(device: string, livePids: ReadonlySet<number>): number {
    const rows = this.db.prepare<[string], { pid: number }>('SELECT DISTINCT pid FROM holders WHERE device = ?').all(device);
    let dropped = 0;
    for (const { pid } of rows) {
      if (!livePids.has(pid)) dropped += this.db.prepare('DELETE FROM holders WHERE device = ? AND pid = ?').run(device, pid).changes;
    }
    return dropped;
  }

  holders(device: string): Holder[] {
    return this.db
      .prepare<[string], Holder>('SELECT kind, pid, comm, count, since FROM holders WHERE device = ? ORDER BY kind, pid')
      .all(device);
  }

  /** Rows in the reduced log, for the bounded-log check and the metrics. */
  entryCount(device?: string): number {
    const row = device
      ? this.db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM entries WHERE device = ?').get(device)
      : this.db.prepare<[], { n: number }>('SELECT count(*) AS n FROM entries').get();
    return row?.n ?? 0;
  }
}
