// The shadow store when its file fails: a write the file refuses (injected
// here as SQLite's own SqliteError from the connection, the one place a mock
// isolates the logic) degrades the store instead of throwing, the shadow in
// memory goes on, and the retry writes what waited; a corrupt file is moved
// aside at open; a file that cannot be opened leaves the store in memory.
// test/unit/core/shadow-store-full-fs.test.ts fills a real filesystem.
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RecoveryHistory } from '../../../daemon/core/recovery-history.js';
import { corruptPath, ShadowStore } from '../../../daemon/core/shadow-store.js';
import type { LogFields, Priority } from '../../../daemon/service/log.js';
import { recoveryRecord as record } from '../../fixtures/recovery-record.js';

const DEV = { id: 'bus:0000:00:03.0', cls: 'net', name: 'eth0', driver: 'e1000', bus: '0000:00:03.0', attrs: { ifindex: 2 } };
const IP = { pid: 42, comm: 'ip' };

function recordingLogger() {
  const lines: { priority: Priority; message: string; fields?: LogFields }[] = [];
  return { lines, log: (priority: Priority, message: string, fields?: LogFields) => void lines.push({ priority, message, fields }) };
}

/** Makes every transaction on the connection fail as a full disk does, until restore() is called. */
function failWrites(db: Database.Database, code = 'SQLITE_FULL', message = 'database or disk is full') {
  return vi.spyOn(db, 'transaction').mockImplementation((() => () => {
    throw new Database.SqliteError(message, code);
  }) as unknown as Database.Database['transaction']);
}


describe('shadow store: a write the file refuses', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'store-health-'));
    path = join(dir, 'state.db');
  });
  afterEach(() => {
    vi.restoreAllMocks();
    rmSync(dir, { recursive: true, force: true });
  });

  it('degrades instead of throwing: the shadow in memory goes on, logged once with the code and the file, and the retry writes what waited', () => {
    const logger = recordingLogger();
    const store = new ShadowStore(path, { logger, retryMs: 60_000 });
    store.upsertDevice(DEV, 1000);
    store.setEntry(DEV.id, 'mtu', 1500, IP, 1000);
    const failing = failWrites(store.database);

    // An ingest batch, a holder, a device gone: none throws.
    expect(() =>
      store.transaction(() => {
        store.setEntry(DEV.id, 'mtu', 9000, IP, 2000);
        store.setEntry(DEV.id, 'mac', '02:00:00:00:00:01', IP, 2001);
      }),
    ).not.toThrow();
    expect(store.adjustHolder(DEV.id, 'promiscuity', 100, 'tcpdump', 1, 2002)).toBe(1);
    store.setEntry(DEV.id, 'mtu', 1400, IP, 2003);
    store.setPresent(DEV.id, false, 2004);

    // The shadow has it all.
    expect(store.entries(DEV.id).map((e) => [e.key, e.value])).toEqual([
      ['mac', '02:00:00:00:00:01'],
      ['mtu', 1400],
    ]);
    expect(store.holders(DEV.id).map((h) => h.pid)).toEqual([100]);
    expect(store.devices()[0]?.present).toBe(false);

    const status = store.health.status();
    expect(status).toMatchObject({ state: 'degraded', path, code: 'SQLITE_FULL', error: 'database or disk is full', pending: 4 });
    expect(status.nextRetryAt).not.toBeNull();
    const errs = logger.lines.filter((l) => l.priority === 'err');
    expect(errs).toHaveLength(1);
    expect(errs[0]?.fields).toMatchObject({ SHADOWD_STATE_DB: path, SHADOWD_SQLITE_CODE: 'SQLITE_FULL' });

    // Still full: the retry fails quietly and is scheduled again.
    expect(store.health.retry()).toBe(false);
    expect(store.health.status()).toMatchObject({ state: 'degraded', retries: 1 });
    expect(logger.lines.filter((l) => l.priority === 'err')).toHaveLength(1);

    failing.mockRestore();
    expect(store.health.retry()).toBe(true);
    expect(store.health.status()).toMatchObject({ state: 'ok', code: null, pending: 0, nextRetryAt: null });
    const notices = logger.lines.filter((l) => l.priority === 'notice');
    expect(notices).toHaveLength(1);
    expect(notices[0]?.message).toMatch(/written again: 4 change\(s\)/);
    store.close();

    // The file has what the shadow had.
    const reopened = new ShadowStore(path);
    expect(reopened.entries(DEV.id).map((e) => [e.key, e.value, e.actor.pid])).toEqual([
      ['mac', '02:00:00:00:00:01', 42],
      ['mtu', 1400, 42],
    ]);
    expect(reopened.holders(DEV.id).map((h) => [h.pid, h.count])).toEqual([[100, 1]]);
    expect(reopened.devices()[0]?.present).toBe(false);
    expect(reopened.changes).toBe(store.changes);
    reopened.close();
  });

  it('retries on its own, with back-off, until the file takes the writes', async () => {
    vi.useFakeTimers();
    try {
      const logger = recordingLogger();
      const store = new ShadowStore(path, { logger, retryMs: 1000, maxRetryMs: 4000 });
      store.upsertDevice(DEV, 1000);
      const failing = failWrites(store.database, 'SQLITE_IOERR_WRITE', 'disk I/O error');
      store.setEntry(DEV.id, 'mtu', 9000, IP, 2000);
      expect(store.health.status()).toMatchObject({ state: 'degraded', code: 'SQLITE_IOERR_WRITE' });
      await vi.advanceTimersByTimeAsync(1000 + 2000 + 4000 + 4000);
      expect(store.health.status().retries).toBe(4);
      failing.mockRestore();
      await vi.advanceTimersByTimeAsync(4000);
      expect(store.health.status()).toMatchObject({ state: 'ok', pending: 0 });
      store.close();
      expect(new ShadowStore(path).entries(DEV.id).map((e) => e.value)).toEqual([9000]);
    } finally {
      vi.useRealTimers();
    }
  });

  it('recovery history: a row the file refuses waits, is listed, and the store\'s retry writes it', () => {
    const store = new ShadowStore(path, { retryMs: 60_000 });
    const history = new RecoveryHistory(store.database, undefined, store.health);
    history.insert(record('r1'));
    const failing = failWrites(store.database);
    expect(() => history.insert(record('r2', { startedAt: 2000 }))).not.toThrow();
    expect(() => history.update({ ...record('r2', { startedAt: 2000 }), result: 'recovered', endedAt: 2500 })).not.toThrow();
    expect(() => history.update({ ...record('r1'), result: 'failed', endedAt: 1500 })).not.toThrow();
    expect(store.health.status()).toMatchObject({ state: 'degraded', pending: 2 });
    expect(history.list().map((r) => [r.id, r.result])).toEqual([
      ['r2', 'recovered'],
      ['r1', 'failed'],
    ]);
    expect(history.get('r2')?.endedAt).toBe(2500);
    failing.mockRestore();
    expect(store.health.retry()).toBe(true);
    store.close();
    const again = RecoveryHistory.open(path);
    expect(again.list().map((r) => [r.id, r.result, r.endedAt])).toEqual([
      ['r2', 'recovered', 2500],
      ['r1', 'failed', 1500],
    ]);
    again.close();
  });
});

describe('shadow store: a corrupt or unopenable file at start', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'store-open-'));
    path = join(dir, 'state.db');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const when = new Date('2026-12-04T22:41:14.123Z');

  it('moves a file of random bytes aside, never deleting it, and starts a new one', () => {
    const bytes = randomBytes(64 * 1024);
    writeFileSync(path, bytes);
    const logger = recordingLogger();
    const store = new ShadowStore(path, { logger, clock: () => when });
    const aside = join(dir, 'state.db.corrupt-20261204T224114Z');
    expect(readFileSync(aside).equals(bytes)).toBe(true);
    expect(store.devices()).toEqual([]);
    store.upsertDevice(DEV, 1000);
    store.setEntry(DEV.id, 'mtu', 1500, IP, 1000);
    expect(store.health.status()).toMatchObject({ state: 'ok', movedAside: aside });
    const errs = logger.lines.filter((l) => l.priority === 'err');
    expect(errs).toHaveLength(1);
    expect(errs[0]?.message).toContain(path);
    expect(errs[0]?.message).toContain(aside);
    expect(errs[0]?.fields).toMatchObject({ SHADOWD_STATE_DB: path, SHADOWD_STATE_DB_CORRUPT: aside, SHADOWD_SQLITE_CODE: 'SQLITE_NOTADB' });
    store.close();
    expect(new ShadowStore(path).entries(DEV.id).map((e) => e.value)).toEqual([1500]);
  });

  it('moves a truncated real database aside, with its WAL, and the new file does not pick the old log up', () => {
    const first = new ShadowStore(path);
    first.upsertDevice(DEV, 1000);
    for (let i = 0; i < 400; i++) first.setEntry(DEV.id, `key${i}`, 'x'.repeat(200), IP, 1000 + i);
    first.close();
    const size = readFileSync(path).length;
    truncateSync(path, Math.floor(size / 2));
    const wal = randomBytes(4096);
    writeFileSync(`${path}-wal`, wal);
    const store = new ShadowStore(path, { clock: () => when });
    const aside = corruptPath(path, when);
    // corruptPath finds a free name: the one just taken is in use now.
    expect(store.health.status().movedAside).toBe(join(dir, 'state.db.corrupt-20261204T224114Z'));
    expect(aside).toBe(join(dir, 'state.db.corrupt-20261204T224114Z-1'));
    expect(readdirSync(dir).filter((f) => f.includes('corrupt')).sort()).toEqual(['state.db.corrupt-20261204T224114Z', 'state.db.corrupt-20261204T224114Z-wal']);
    expect(readFileSync(join(dir, 'state.db.corrupt-20261204T224114Z')).length).toBe(Math.floor(size / 2));
    expect(readFileSync(join(dir, 'state.db.corrupt-20261204T224114Z-wal')).equals(wal)).toBe(true);
    expect(existsSync(`${path}-wal.check`)).toBe(false);
    expect(store.devices()).toEqual([]);
    expect(store.entryCount()).toBe(0);
    store.close();
  });

  it('runs in memory, degraded without a retry, when the file cannot be opened', () => {
    const logger = recordingLogger();
    const missing = join(dir, 'no-such-dir', 'state.db');
    const store = new ShadowStore(missing, { logger });
    store.upsertDevice(DEV, 1000);
    expect(store.setEntry(DEV.id, 'mtu', 1500, IP, 1000)).toBe(true);
    expect(store.entries(DEV.id).map((e) => e.value)).toEqual([1500]);
    expect(store.health.status()).toMatchObject({ state: 'degraded', path: missing, nextRetryAt: null });
    expect(store.health.status().error).toContain(missing);
    expect(logger.lines.filter((l) => l.priority === 'err')).toHaveLength(1);
    // The history shares the connection, in memory too.
    const history = new RecoveryHistory(store.database, undefined, store.health);
    history.insert(record('r1'));
    expect(history.list().map((r) => r.id)).toEqual(['r1']);
    store.close();
    expect(existsSync(missing)).toBe(false);
  });
});
