// The shadow's durable memory: SQLite (WAL) under the state directory. One row
// per device and configuration key holds the latest effective value and who
// set it, so the log is bounded by the number of keys, not the number of calls.
// Each change is its own transaction: a daemon killed at any moment keeps
// everything it had observed before.
import Database from 'better-sqlite3';
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

export interface DeviceRecord {
  /** Stable identity: the bus address where there is one, else the interface name. */
  id: string;
  cls: 'net';
  ifindex: number;
  name: string;
  driver: string | null;
  bus: string | null;
  present: boolean;
  firstSeen: number;
  lastSeen: number;
}

export type HolderKind = 'promiscuity' | 'allmulti';
export interface Holder {
  kind: HolderKind;
  pid: number;
  comm: string;
  count: number;
  since: number;
}

const SCHEMA_VERSION = 1;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS devices (
  id TEXT PRIMARY KEY,
  cls TEXT NOT NULL,
  ifindex INTEGER NOT NULL,
  name TEXT NOT NULL,
  driver TEXT,
  bus TEXT,
  present INTEGER NOT NULL,
  first_seen INTEGER NOT NULL,
  last_seen INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS entries (
  device TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  key TEXT NOT NULL,
  value TEXT NOT NULL,
  actor_pid INTEGER,
  actor_comm TEXT NOT NULL,
  at INTEGER NOT NULL,
  seq INTEGER NOT NULL,
  PRIMARY KEY (device, key)
);
CREATE TABLE IF NOT EXISTS holders (
  device TEXT NOT NULL REFERENCES devices(id) ON DELETE CASCADE,
  kind TEXT NOT NULL,
  pid INTEGER NOT NULL,
  comm TEXT NOT NULL,
  count INTEGER NOT NULL,
  since INTEGER NOT NULL,
  PRIMARY KEY (device, kind, pid)
);
CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
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
  ifindex: number;
  name: string;
  driver: string | null;
  bus: string | null;
  present: number;
  first_seen: number;
  last_seen: number;
}

export class StoreError extends Error {}

export class ShadowStore {
  private readonly db: Database.Database;
  private seq: number;
  private readonly getEntry: Database.Statement<[string, string], { value: string; actor_pid: number | null }>;
  private readonly putEntry: Database.Statement<[string, string, string, number | null, string, number, number]>;

  constructor(path: string) {
    this.db = new Database(path);
    this.db.pragma('journal_mode = WAL');
    // NORMAL in WAL mode: a crashed process loses no committed transaction.
    this.db.pragma('synchronous = NORMAL');
    this.db.pragma('foreign_keys = ON');
    this.db.exec(SCHEMA);
    const version = this.db.prepare<[], { v: string }>("SELECT v FROM meta WHERE k = 'schema'").get();
    if (!version) this.db.prepare("INSERT INTO meta (k, v) VALUES ('schema', ?)").run(String(SCHEMA_VERSION));
    else if (Number(version.v) !== SCHEMA_VERSION) {
      throw new StoreError(`${path}: state schema ${version.v} is not the supported ${SCHEMA_VERSION}`);
    }
    this.seq = this.db.prepare<[], { s: number | null }>('SELECT max(seq) AS s FROM entries').get()?.s ?? 0;
    this.getEntry = this.db.prepare('SELECT value, actor_pid FROM entries WHERE device = ? AND key = ?');
    this.putEntry = this.db.prepare(
      `INSERT INTO entries (device, key, value, actor_pid, actor_comm, at, seq) VALUES (?, ?, ?, ?, ?, ?, ?)
       ON CONFLICT (device, key) DO UPDATE SET value = excluded.value, actor_pid = excluded.actor_pid,
         actor_comm = excluded.actor_comm, at = excluded.at, seq = excluded.seq`,
    );
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

  upsertDevice(d: Omit<DeviceRecord, 'firstSeen' | 'lastSeen' | 'present'>, at: number, present = true): void {
    this.db
      .prepare(
        `INSERT INTO devices (id, cls, ifindex, name, driver, bus, present, first_seen, last_seen)
         VALUES (@id, @cls, @ifindex, @name, @driver, @bus, @present, @at, @at)
         ON CONFLICT (id) DO UPDATE SET ifindex = @ifindex, name = @name,
           driver = coalesce(@driver, driver), bus = coalesce(@bus, bus), present = @present, last_seen = @at`,
      )
      .run({ ...d, present: present ? 1 : 0, at });
  }

  setPresent(id: string, present: boolean, at: number): void {
    this.db.prepare('UPDATE devices SET present = ?, last_seen = ? WHERE id = ?').run(present ? 1 : 0, at, id);
  }

  devices(): DeviceRecord[] {
    return this.db
      .prepare<[], DeviceRow>('SELECT * FROM devices ORDER BY name')
      .all()
      .map((r) => ({
        id: r.id,
        cls: 'net',
        ifindex: r.ifindex,
        name: r.name,
        driver: r.driver,
        bus: r.bus,
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
