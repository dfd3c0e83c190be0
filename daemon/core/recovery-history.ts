// The recovery history: one row per recovery (and per manual replay), kept in
// the shadow's own SQLite database so one file holds everything shadowd knows.
// A row is written when a recovery starts ('in-progress') and rewritten when
// it ends, so a daemon killed mid-recovery leaves a row that says so.
//
// Every row names its device's class as well as its name (net:eth0 and a
// disk called eth0 are two devices). Rows written before classes existed
// (schema 1) were all network devices: opening such a file migrates them
// in place to class 'net'.
//
// Given the store's health (the daemon's history is), a row the file refuses
// (full, I/O error ...) waits in memory with the shadow's changes, and is
// written by the store's retry; list() and get() answer with it meanwhile.
import Database from 'better-sqlite3';
import { CLASS_ID } from './device-ref.js';
import type { FailureKind } from './failure-report.js';
import { isSqliteError, type StoreHealth } from './store-health.js';

export type RecoveryResult = 'recovered' | 'failed' | 'gave-up' | 'replayed' | 'in-progress' | 'interrupted';
export const RECOVERY_RESULTS: readonly RecoveryResult[] = ['recovered', 'failed', 'gave-up', 'replayed', 'in-progress', 'interrupted'];

// FailureKind is string now that classes declare kinds; 'replay' stays spelled out as what this history adds to them.
/** What started it: a detector's failure kind, 'manual' (shadowctl recover), or 'replay' (shadowctl replay). */
// eslint-disable-next-line @typescript-eslint/no-redundant-type-constituents
export type RecoveryTrigger = FailureKind | 'replay';

/** The kernel helper's own timing of a restart, from its `restarted` reply. */
export interface ModuleTimings {
  stopMs: number;
  releaseMs: number;
  /** A reload's: modprobe -r of the driver's module (absent for a re-probe, and in rows from before reloads). */
  unloadMs?: number;
  /** A reload's: modprobe loading it again. */
  loadMs?: number;
  probeMs: number;
  replayMs: number;
  openMs: number;
  totalMs: number;
}

/**
 * How the helper restarted the driver (helper-replies.ts RestartMethod):
 * 'reprobe' released the device and probed it again; 'reload' also unloaded
 * and loaded the driver's module in between.
 */
export type RestartMethod = 'reprobe' | 'reload';

/** Milliseconds spent in each phase; a phase that did not run is absent. */
export interface PhaseTimings {
  /** From the failure's start (when the detector knows it) to its detection. */
  detect?: number;
  /** The back-off wait before the restart. */
  wait?: number;
  /** Sending the staged ethtool values to the helper. */
  stage?: number;
  /** The helper's `restart` (the shadow answers for the driver meanwhile). */
  restart?: number;
  /** Checking the helper's replay steps and replaying what userspace restores. */
  check?: number;
  /** From the recovery's start to its end. */
  total?: number;
  module?: ModuleTimings;
}

/** One step of a replay: 'module' steps are the helper's, 'daemon' steps are commands shadowd ran. */
export interface RecoveryStep {
  source: 'module' | 'daemon';
  key: string;
  result: 'ok' | 'skip' | 'fail';
  argv?: string[];
  error?: string;
}

export interface RecoveryRecord {
  /** Recovery id, [A-Za-z0-9_-]{1,32}; the helper logs it too. */
  id: string;
  /** The device's class (its sysfs class name). */
  cls: string;
  device: string;
  driver: string | null;
  trigger: RecoveryTrigger;
  detail: string;
  /** ms since the epoch */
  startedAt: number;
  endedAt: number | null;
  result: RecoveryResult;
  phases: PhaseTimings;
  steps: RecoveryStep[];
  /** Why it failed or gave up; for a recovery that succeeded, what did not fully work. */
  error: string | null;
  /** Failure reports that arrived while it ran and were folded into it. */
  merged: number;
  /**
   * How the driver was restarted, as the helper's reply says; null when no
   * restart completed (a give-up, a replay, a restart refused or failed) and
   * in rows from before shadowd recorded it.
   */
  method: RestartMethod | null;
  /** The module a reload unloaded and loaded again; null otherwise. */
  module: string | null;
}

export const RECOVERY_ID = /^[A-Za-z0-9_-]{1,32}$/;

/** Failure kinds and 'replay': what a row's trigger may be (FailureKind is any class's kind). */
export const TRIGGER_KIND = /^[a-z][a-z0-9-]{0,31}$/;

/**
 * Schema versions (meta k='recoveries_schema'):
 * 1: network devices only, rows named by device; method and module were
 *    added later as nullable columns without a new number.
 * 2: a cls column (the device's class); indexed by (cls, device, started_at).
 */
const SCHEMA_KEY = 'recoveries_schema';
const SCHEMA_VERSION = 2;

const META_TABLE = 'CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);';

const RECOVERIES_TABLE = `
CREATE TABLE recoveries (
  id TEXT PRIMARY KEY,
  cls TEXT NOT NULL,
  device TEXT NOT NULL,
  driver TEXT,
  trigger_kind TEXT NOT NULL,
  detail TEXT NOT NULL,
  started_at INTEGER NOT NULL,
  ended_at INTEGER,
  result TEXT NOT NULL CHECK (result IN ('recovered', 'failed', 'gave-up', 'replayed', 'in-progress', 'interrupted')),
  phases TEXT NOT NULL,
  steps TEXT NOT NULL,
  error TEXT,
  merged INTEGER NOT NULL DEFAULT 0,
  method TEXT,
  module TEXT
);
CREATE INDEX recoveries_by_device ON recoveries (cls, device, started_at);
`;

/** Columns schema 1 gained after its release: a file of the first shadowd lacks them. */
const V1_LATE_COLUMNS: readonly { name: string; type: string }[] = [
  { name: 'method', type: 'TEXT' },
  { name: 'module', type: 'TEXT' },
];

/**
 * Version 1 → 2: the table is rebuilt (SQLite adds a NOT NULL column only
 * with a default, and 'net' is no default for new rows), rowids kept: the
 * pruning and latestRecoveries() go by rowid. Every row was a network device's.
 */
const MIGRATE_1_TO_2 = `
ALTER TABLE recoveries RENAME TO recoveries_v1;
DROP INDEX IF EXISTS recoveries_by_device;
${RECOVERIES_TABLE}
INSERT INTO recoveries (rowid, id, cls, device, driver, trigger_kind, detail, started_at, ended_at, result, phases, steps, error, merged, method, module)
  SELECT rowid, id, 'net', device, driver, trigger_kind, detail, started_at, ended_at, result, phases, steps, error, merged, method, module
  FROM recoveries_v1 ORDER BY rowid;
DROP TABLE recoveries_v1;
`;

interface Row {
  id: string;
  cls: string;
  device: string;
  driver: string | null;
  trigger_kind: string;
  detail: string;
  started_at: number;
  ended_at: number | null;
  result: string;
  phases: string;
  steps: string;
  error: string | null;
  merged: number;
  method: string | null;
  module: string | null;
}

export class HistoryError extends Error {}

/** Rows kept; older ones are dropped so the history stays bounded on a machine whose driver fails often. */
const DEFAULT_KEEP = 10_000;

function parseJson<T>(text: string, fallback: T): T {
  try {
    return JSON.parse(text) as T;
  } catch {
    return fallback;
  }
}

function fromRow(r: Row): RecoveryRecord {
  return {
    id: r.id,
    cls: r.cls,
    device: r.device,
    driver: r.driver,
    trigger: r.trigger_kind,
    detail: r.detail,
    startedAt: r.started_at,
    endedAt: r.ended_at,
    result: r.result as RecoveryResult,
    phases: parseJson<PhaseTimings>(r.phases, {}),
    steps: parseJson<RecoveryStep[]>(r.steps, []),
    error: r.error,
    merged: r.merged,
    method: r.method === 'reprobe' || r.method === 'reload' ? r.method : null,
    module: r.module ?? null,
  };
}

export interface HistoryQuery {
  /** Only this class's recoveries. */
  cls?: string;
  /** Only recoveries of devices of this name (with cls: of that one device). */
  device?: string;
  /** Newest first, at most this many [default 50]. */
  limit?: number;
  /** Only recoveries started at or after this time (ms since the epoch). */
  since?: number;
}

export class RecoveryHistory {
  private readonly insertStmt: Database.Statement<Record<string, unknown>>;
  private readonly updateStmt: Database.Statement<Record<string, unknown>>;
  private readonly pruneStmt: Database.Statement<[number]>;
  private readonly upsertStmt: Database.Statement<Record<string, unknown>>;
  /** Rows the file refused, by id, in the order they came: written by the store's retry. */
  private readonly pending = new Map<string, RecoveryRecord>();

  /**
   * `db` is the shadow store's connection (ShadowStore.database); the history
   * adds its table beside the shadow's. `keep` bounds the rows kept.
   * `health` (ShadowStore.health): a write the file refuses waits for the
   * store's retry instead of throwing.
   */
  constructor(
    private readonly db: Database.Database,
    private readonly keep = DEFAULT_KEEP,
    private readonly health?: StoreHealth,
  ) {
    db.transaction(() => this.openSchema()).immediate();
    this.insertStmt = db.prepare(
      `INSERT INTO recoveries (id, cls, device, driver, trigger_kind, detail, started_at, ended_at, result, phases, steps, error, merged, method, module)
       VALUES (@id, @cls, @device, @driver, @trigger_kind, @detail, @started_at, @ended_at, @result, @phases, @steps, @error, @merged, @method, @module)`,
    );
    this.updateStmt = db.prepare(
      `UPDATE recoveries SET driver = @driver, detail = @detail, ended_at = @ended_at, result = @result,
         phases = @phases, steps = @steps, error = @error, merged = @merged, method = @method, module = @module WHERE id = @id`,
    );
    this.pruneStmt = db.prepare('DELETE FROM recoveries WHERE rowid <= (SELECT max(rowid) FROM recoveries) - ?');
    this.upsertStmt = db.prepare(
      `INSERT INTO recoveries (id, cls, device, driver, trigger_kind, detail, started_at, ended_at, result, phases, steps, error, merged, method, module)
       VALUES (@id, @cls, @device, @driver, @trigger_kind, @detail, @started_at, @ended_at, @result, @phases, @steps, @error, @merged, @method, @module)
       ON CONFLICT (id) DO UPDATE SET driver = @driver, detail = @detail, ended_at = @ended_at, result = @result,
         phases = @phases, steps = @steps, error = @error, merged = @merged, method = @method, module = @module`,
    );
    health?.addWriter({ flush: () => this.writePending(), pending: () => this.pending.size });
  }

  /** Writes the rows that wait, in one transaction; throws (and keeps them) when the file refuses. */
  private writePending(): void {
    if (this.pending.size === 0) return;
    this.db.transaction(() => {
      for (const r of this.pending.values()) this.upsertStmt.run(this.params(r));
      this.pruneStmt.run(this.keep);
    })();
    this.pending.clear();
  }

  /**
   * Runs a write; with the store's health, one the file refuses (or any while
   * the store is degraded) leaves the row waiting for the retry. Returns
   * whether the write was done now.
   */
  private write(r: RecoveryRecord, fn: () => void): boolean {
    if (this.health?.degraded) {
      this.pending.set(r.id, structuredClone(r));
      return false;
    }
    try {
      fn();
      return true;
    } catch (err) {
      if (!this.health || !isSqliteError(err)) throw err;
      this.pending.set(r.id, structuredClone(r));
      this.health.failed(err, `recording recovery ${r.id}`);
      return false;
    }
  }

  /** Creates the table in a new file, or brings an older file's up to SCHEMA_VERSION; refuses a newer one. */
  private openSchema(): void {
    const db = this.db;
    db.exec(META_TABLE);
    const columns = db.prepare<[], { name: string }>("SELECT name FROM pragma_table_info('recoveries')").all().map((c) => c.name);
    // A file without its number: a daemon killed between creating the table and writing it (before schema 2 did both in one transaction).
    const found = db.prepare<[string], { v: string }>('SELECT v FROM meta WHERE k = ?').get(SCHEMA_KEY)?.v ?? (columns.length === 0 ? 0 : columns.includes('cls') ? SCHEMA_VERSION : 1);
    const version = Number(found);
    if (!Number.isSafeInteger(version) || version < 0 || version > SCHEMA_VERSION) {
      throw new HistoryError(
        `${db.name}: recovery history schema ${String(found)} is not the supported ${SCHEMA_VERSION}` +
          (version > SCHEMA_VERSION ? ' (a newer shadowd wrote it; this one cannot read it)' : ''),
      );
    }
    if (version === SCHEMA_VERSION) return;
    if (version === 0) db.exec(RECOVERIES_TABLE);
    else if (version === 1) {
      for (const c of V1_LATE_COLUMNS) if (!columns.includes(c.name)) db.exec(`ALTER TABLE recoveries ADD COLUMN ${c.name} ${c.type}`);
      db.exec(MIGRATE_1_TO_2);
    }
    db.prepare('INSERT INTO meta (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v').run(SCHEMA_KEY, String(SCHEMA_VERSION));
  }

  /** Opens a database file of its own (for tests and tools; the daemon shares the shadow's connection). */
  static open(path: string): RecoveryHistory {
    const db = new Database(path);
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = NORMAL');
      return new RecoveryHistory(db);
    } catch (err) {
      db.close();
      throw err;
    }
  }

  close(): void {
    this.db.close();
  }

  private params(r: RecoveryRecord): Record<string, unknown> {
    return {
      id: r.id,
      cls: r.cls,
      device: r.device,
      driver: r.driver,
      trigger_kind: r.trigger,
      detail: r.detail,
      started_at: r.startedAt,
      ended_at: r.endedAt,
      result: r.result,
      phases: JSON.stringify(r.phases),
      steps: JSON.stringify(r.steps),
      error: r.error,
      merged: r.merged,
      method: r.method ?? null,
      module: r.module ?? null,
    };
  }

  insert(r: RecoveryRecord): void {
    if (!RECOVERY_ID.test(r.id)) throw new HistoryError(`recovery id ${JSON.stringify(r.id)} is not 1-32 of [A-Za-z0-9_-]`);
    if (typeof r.cls !== 'string' || !CLASS_ID.test(r.cls)) throw new HistoryError(`recovery ${r.id}: ${JSON.stringify(r.cls)} is not a class id`);
    if (typeof r.trigger !== 'string' || !TRIGGER_KIND.test(r.trigger)) {
      throw new HistoryError(`recovery ${r.id}: trigger ${JSON.stringify(r.trigger)} is not a failure kind (${String(TRIGGER_KIND)}) or 'replay'`);
    }
    this.write(r, () =>
      this.db.transaction(() => {
        this.insertStmt.run(this.params(r));
        this.pruneStmt.run(this.keep);
      })(),
    );
  }

  /** Rewrites a recovery's row (its result, timings, steps, error, method); its id, class, device, trigger and start stay. */
  update(r: RecoveryRecord): void {
    const waiting = this.pending.get(r.id);
    if (waiting) {
      // Its row waits to be written: it is written as it is now.
      this.pending.set(r.id, { ...structuredClone(r), cls: waiting.cls, device: waiting.device, trigger: waiting.trigger, startedAt: waiting.startedAt });
      return;
    }
    this.write(r, () => {
      if (this.updateStmt.run(this.params(r)).changes !== 1) throw new HistoryError(`no recovery ${r.id} in the history`);
    });
  }

  get(id: string): RecoveryRecord | null {
    const waiting = this.pending.get(id);
    if (waiting) return structuredClone(waiting);
    const row = this.db.prepare<[string], Row>('SELECT * FROM recoveries WHERE id = ?').get(id);
    return row ? fromRow(row) : null;
  }

  /** Recoveries, newest first. */
  list(q: HistoryQuery = {}): RecoveryRecord[] {
    const where: string[] = [];
    const args: (string | number)[] = [];
    if (q.cls !== undefined) {
      where.push('cls = ?');
      args.push(q.cls);
    }
    if (q.device !== undefined) {
      where.push('device = ?');
      args.push(q.device);
    }
    if (q.since !== undefined) {
      where.push('started_at >= ?');
      args.push(q.since);
    }
    const limit = q.limit ?? 50;
    if (!Number.isSafeInteger(limit) || limit < 1) throw new HistoryError(`history limit must be a positive integer, not ${String(limit)}`);
    args.push(limit);
    const sql = `SELECT * FROM recoveries ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY started_at DESC, rowid DESC LIMIT ?`;
    const rows = this.db.prepare<(string | number)[], Row>(sql).all(...args).map(fromRow);
    if (this.pending.size === 0) return rows;
    // Rows waiting to be written are newer than the file's (the later the newer among the same start time).
    const waiting = [...this.pending.values()]
      .filter((r) => (q.cls === undefined || r.cls === q.cls) && (q.device === undefined || r.device === q.device) && (q.since === undefined || r.startedAt >= q.since))
      .reverse()
      .map((r) => structuredClone(r));
    const merged = [...waiting, ...rows.filter((r) => !this.pending.has(r.id))];
    // A stable sort: among equal start times the waiting rows stay first.
    return merged.sort((a, b) => b.startedAt - a.startedAt).slice(0, limit);
  }

  /**
   * Each device's (class and name) latest recovery, replays left out: whether
   * the manager had given up on it (RecoveryManager.start()).
   */
  latestRecoveries(): RecoveryRecord[] {
    return this.db
      .prepare<[], Row>(
        `SELECT * FROM recoveries WHERE rowid IN
           (SELECT max(rowid) FROM recoveries WHERE trigger_kind != 'replay' GROUP BY cls, device) ORDER BY cls, device`,
      )
      .all()
      .map(fromRow);
  }

  /**
   * The devices whose latest recovery (replays left out) did not bring them
   * back: failed (a restart refused before touching the device among them),
   * gave up, or interrupted. A later successful recovery clears the entry.
   */
  unrecovered(): { cls: string; device: string; id: string; result: RecoveryResult; at: number; error: string | null }[] {
    return this.latestRecoveries()
      .filter((r) => r.result === 'failed' || r.result === 'gave-up' || r.result === 'interrupted')
      .map((r) => ({ cls: r.cls, device: r.device, id: r.id, result: r.result, at: r.endedAt ?? r.startedAt, error: r.error }));
  }

  /**
   * Closes the rows of recoveries a previous daemon left 'in-progress' (it was
   * killed or crashed during them) as 'interrupted', and returns them.
   */
  closeInterrupted(now: number): RecoveryRecord[] {
    return this.db.transaction(() => {
      const rows = this.db.prepare<[], Row>("SELECT * FROM recoveries WHERE result = 'in-progress' ORDER BY rowid").all();
      const note =
        'shadowd stopped during this recovery (killed or crashed); whether the driver came back is unknown: see shadowctl status';
      const closed: RecoveryRecord[] = [];
      for (const row of rows) {
        const r = fromRow(row);
        r.result = 'interrupted';
        r.endedAt = now;
        r.error = r.error ? `${r.error}; ${note}` : note;
        this.update(r);
        closed.push(r);
      }
      return closed;
    })();
  }
}
