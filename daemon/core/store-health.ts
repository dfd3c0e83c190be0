// Whether the shadow's state reaches its SQLite file. A write that fails (a
// full filesystem, an I/O error, a read-only remount, a lock held past the
// busy timeout, a file gone corrupt) does not end the daemon: the shadow in
// memory stays authoritative and keeps being updated, the store goes
// "degraded" (logged once, at 'err', with SQLite's code and the file), and
// what changed meanwhile is written again on a retry with back-off; the
// first retry that succeeds is logged once more. `shadowctl status` shows
// the state (PersistenceStatus).
import Database from 'better-sqlite3';
import type { Logger } from '../service/log.js';

export interface PersistenceStatus {
  /** 'ok': every change is in the file; 'degraded': changes wait in memory (or there is no file at all). */
  state: 'ok' | 'degraded';
  /** The database file. */
  path: string;
  /** SQLite's error code of the failure (SQLITE_FULL, SQLITE_IOERR_WRITE ...), or the system's (EACCES). */
  code: string | null;
  error: string | null;
  /** When the store went degraded (ms since the epoch). */
  since: number | null;
  /** Changes (device rows, entries, holder sets, history rows) waiting to be written. */
  pending: number;
  /** Failed retries since the store went degraded. */
  retries: number;
  /** When the next retry runs; null when none will (no file could be opened at start). */
  nextRetryAt: number | null;
  /** A corrupt file moved aside at start, where it is now. */
  movedAside: string | null;
}

/** Something that holds changes for the file: the shadow store, the recovery history. */
export interface PendingWriter {
  /** Writes what waits; throws (a SqliteError) when it cannot. */
  flush(): void;
  /** How many changes wait. */
  pending(): number;
}

export interface StoreHealthOptions {
  logger?: Logger;
  /** The first retry's delay; each failed retry doubles it up to maxRetryMs. */
  retryMs?: number;
  maxRetryMs?: number;
  now?: () => number;
  /** The store went degraded or recovered (the service updates systemd's STATUS=). */
  onChange?: () => void;
}

/** The first retry after 5 s, then 10, 20, and every 30 s. */
export const DEFAULT_RETRY_MS = 5_000;
export const DEFAULT_MAX_RETRY_MS = 30_000;

/** Whether an error is SQLite's (any: the file's trouble must not end the daemon); others are bugs and are thrown on. */
export type SqliteError = Error & { code: string };

export function isSqliteError(err: unknown): err is SqliteError {
  return err instanceof Database.SqliteError;
}

/** SQLite's error codes that say the file is not a (sound) database. */
export function isCorruption(err: unknown): boolean {
  return isSqliteError(err) && /^SQLITE_(CORRUPT|NOTADB)/.test(err.code);
}

/**
 * Whether an error opening the file is the file's surroundings (permissions,
 * a read-only or full filesystem, I/O, a lock, no directory) rather than
 * its contents: shadowd then runs without persistence instead of not at all.
 */
export function isUnavailable(err: unknown): boolean {
  if (isSqliteError(err)) return /^SQLITE_(CANTOPEN|READONLY|PERM|AUTH|IOERR|FULL|BUSY|LOCKED|NOMEM|NOLFS|PROTOCOL)/.test(err.code);
  // better-sqlite3 checks the directory itself (a TypeError); the filesystem's own errors have an errno code.
  if (err instanceof TypeError && /directory does not exist/.test(err.message)) return true;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && /^E[A-Z]+$/.test(code);
}

export function errorCode(err: unknown): string | null {
  if (isSqliteError(err)) return err.code;
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : null;
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class StoreHealth {
  private readonly writers: PendingWriter[] = [];
  private readonly logger: Logger | undefined;
  private readonly retryMs: number;
  private readonly maxRetryMs: number;
  private readonly now: () => number;
  private readonly onChange: () => void;
  private timer: NodeJS.Timeout | null = null;
  private delayMs: number;
  private code: string | null = null;
  private error: string | null = null;
  private since: number | null = null;
  private retries = 0;
  private nextRetryAt: number | null = null;
  /** No file could be opened: nothing to retry against. */
  private unopened = false;
  movedAside: string | null = null;

  constructor(
    readonly path: string,
    opts: StoreHealthOptions = {},
  ) {
    this.logger = opts.logger;
    this.retryMs = opts.retryMs ?? DEFAULT_RETRY_MS;
    this.maxRetryMs = opts.maxRetryMs ?? DEFAULT_MAX_RETRY_MS;
    this.now = opts.now ?? Date.now;
    this.onChange = opts.onChange ?? (() => undefined);
    this.delayMs = this.retryMs;
  }

  get degraded(): boolean {
    return this.since !== null;
  }

  /** Registers a holder of changes: each retry flushes them all. */
  addWriter(w: PendingWriter): void {
    this.writers.push(w);
  }

  /** A write failed: changes now wait in memory. Logged the first time only; the retry is scheduled. */
  failed(err: unknown, what: string): void {
    this.code = errorCode(err);
    this.error = messageOf(err);
    if (this.since !== null) return;
    this.since = this.now();
    this.logger?.log(
      'err',
      `cannot write the shadow state (${what}): ${this.error}; the shadow is kept in memory and its changes are written when ${this.path} takes writes again (retrying every ${Math.round(this.maxRetryMs / 1000)} s at most)`,
      { SHADOWD_COMPONENT: 'store', SHADOWD_STATE_DB: this.path, SHADOWD_SQLITE_CODE: this.code ?? '' },
    );
    this.schedule();
    this.onChange();
  }

  /** No file could be opened at start: the shadow runs in memory only, until shadowd is restarted. */
  unavailable(err: unknown): void {
    this.unopened = true;
    this.code = errorCode(err);
    this.error = `cannot open ${this.path}: ${messageOf(err)}`;
    this.since = this.now();
    this.logger?.log(
      'err',
      `${this.error}; running without persistence: the shadow is kept in memory only and is lost when shadowd stops (restart shadowd once the file can be opened)`,
      { SHADOWD_COMPONENT: 'store', SHADOWD_STATE_DB: this.path, SHADOWD_SQLITE_CODE: this.code ?? '' },
    );
  }

  status(): PersistenceStatus {
    return {
      state: this.degraded ? 'degraded' : 'ok',
      path: this.path,
      code: this.code,
      error: this.error,
      since: this.since,
      pending: this.writers.reduce((n, w) => n + w.pending(), 0),
      retries: this.retries,
      nextRetryAt: this.nextRetryAt,
      movedAside: this.movedAside,
    };
  }

  /** Tries the writes now (the retry timer does; tests too). Returns whether the store is healthy after it. */
  retry(): boolean {
    if (this.since === null) return true;
    if (this.unopened) return false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.nextRetryAt = null;
    const pending = this.writers.reduce((n, w) => n + w.pending(), 0);
    try {
      for (const w of this.writers) w.flush();
    } catch (err) {
      if (!isSqliteError(err)) throw err;
      this.code = err.code;
      this.error = err.message;
      this.retries++;
      this.delayMs = Math.min(this.delayMs * 2, this.maxRetryMs);
      this.logger?.log('debug', `writing the shadow state failed again: ${err.message}`, { SHADOWD_COMPONENT: 'store', SHADOWD_STATE_DB: this.path, SHADOWD_SQLITE_CODE: err.code });
      this.schedule();
      return false;
    }
    const seconds = Math.round((this.now() - this.since) / 1000);
    this.logger?.log('notice', `the shadow state is written again: ${pending} change(s) that waited ${seconds} s are in ${this.path}`, {
      SHADOWD_COMPONENT: 'store',
      SHADOWD_STATE_DB: this.path,
    });
    this.since = null;
    this.code = null;
    this.error = null;
    this.retries = 0;
    this.delayMs = this.retryMs;
    this.onChange();
    return true;
  }

  private schedule(): void {
    if (this.timer || this.unopened) return;
    this.nextRetryAt = this.now() + this.delayMs;
    this.timer = setTimeout(() => {
      this.timer = null;
      try {
        this.retry();
      } catch (err) {
        // Not SQLite's: a bug; logged, and the changes keep waiting.
        this.logger?.log('err', `writing the shadow state failed: ${messageOf(err)}`, { SHADOWD_COMPONENT: 'store', SHADOWD_STATE_DB: this.path });
        this.schedule();
      }
    }, this.delayMs);
    this.timer.unref();
  }

  /** Stops retrying (at close). */
  stop(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    this.nextRetryAt = null;
  }
}
