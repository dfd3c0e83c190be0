// The recovery history on a real SQLite file, beside the shadow's tables;
// and the migration of a file the previous shadowd wrote (schema 1, before
// device classes: test/fixtures/state/make-state-v1.ts made it).
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { HistoryError, RecoveryHistory } from '../../../daemon/core/recovery-history.js';
import { ShadowStore } from '../../../daemon/core/shadow-store.js';
import { recoveryRecord as record } from '../../fixtures/recovery-record.js';


/** The recoveries table as the first released shadowd made it: no method, no module. */
const FIRST_SCHEMA = `
CREATE TABLE meta (k TEXT PRIMARY KEY, v TEXT NOT NULL);
INSERT INTO meta (k, v) VALUES ('recoveries_schema', '1');
CREATE TABLE recoveries (
  id TEXT PRIMARY KEY, device TEXT NOT NULL, driver TEXT, trigger_kind TEXT NOT NULL, detail TEXT NOT NULL,
  started_at INTEGER NOT NULL, ended_at INTEGER,
  result TEXT NOT NULL CHECK (result IN ('recovered', 'failed', 'gave-up', 'replayed', 'in-progress', 'interrupted')),
  phases TEXT NOT NULL, steps TEXT NOT NULL, error TEXT, merged INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX recoveries_by_device ON recoveries (device, started_at);
`;
/** How that shadowd wrote a row. */
const FIRST_INSERT = `INSERT INTO recoveries (id, device, driver, trigger_kind, detail, started_at, ended_at, result, phases, steps, error, merged)
  VALUES (?, 'eth0', 'e1000', 'tx-stall', 'queue 0 stopped', 1000, 1900, 'recovered', ?, '[{"source":"module","key":"mac","result":"ok"}]', NULL, 0)`;
const FIRST_PHASES = JSON.stringify({ restart: 850, total: 900, module: { stopMs: 10, releaseMs: 5, probeMs: 600, replayMs: 30, openMs: 205, totalMs: 850 } });

describe('recovery history', () => {
  let dir: string;
  let store: ShadowStore;
  let history: RecoveryHistory;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'recovery-history-'));
    store = new ShadowStore(join(dir, 'state.db'));
    history = new RecoveryHistory(store.database);
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('records a recovery when it starts and rewrites it when it ends', () => {
    const r = record('r1');
    history.insert(r);
    expect(history.get('r1')).toEqual(r);
    r.result = 'recovered';
    r.endedAt = 1900;
    r.phases = { detect: 1200, restart: 850, check: 40, total: 900, module: { stopMs: 10, releaseMs: 5, probeMs: 600, replayMs: 30, openMs: 205, totalMs: 850 } };
    r.steps = [
      { source: 'module', key: 'mtu', result: 'ok' },
      { source: 'daemon', key: 'coalesce', result: 'fail', argv: ['ethtool', '-C', 'eth0', 'rx-usecs', '3'], error: 'Operation not supported' },
    ];
    r.merged = 2;
    history.update(r);
    expect(history.get('r1')).toEqual(r);
    expect(history.get('nope')).toBeNull();
  });

  it("records how the driver was restarted: a reload's module and its unload and load times", () => {
    const r = record('r1', {
      trigger: 'oops',
      result: 'recovered',
      endedAt: 2500,
      method: 'reload',
      module: 'e1000',
      phases: { restart: 1300, total: 1500, module: { stopMs: 10, releaseMs: 5, unloadMs: 140, loadMs: 310, probeMs: 600, replayMs: 30, openMs: 205, totalMs: 1300 } },
      steps: [
        { source: 'module', key: 'reload', result: 'ok' },
        { source: 'module', key: 'mac', result: 'ok' },
      ],
    });
    history.insert(record('r1', { trigger: 'oops' }));
    expect(history.get('r1')).toMatchObject({ method: null, module: null });
    history.update(r);
    expect(history.get('r1')).toEqual(r);
    history.insert(record('r2', { result: 'recovered', method: 'reprobe' }));
    expect(history.get('r2')).toMatchObject({ method: 'reprobe', module: null });
    // A value no shadowd writes reads as unknown.
    store.database.prepare("UPDATE recoveries SET method = 'bounce' WHERE id = 'r2'").run();
    expect(history.get('r2')?.method).toBeNull();
  });

  it('reads a file written by the first shadowd: its columns are added, its rows load as net without a method, and it is schema 2 after', () => {
    const path = join(dir, 'first.db');
    const first = new Database(path);
    first.exec(FIRST_SCHEMA);
    first.prepare(FIRST_INSERT).run('rold', FIRST_PHASES);
    first.prepare(FIRST_INSERT).run('rolder', FIRST_PHASES);
    first.close();

    const db = new Database(path);
    const h = new RecoveryHistory(db);
    expect(h.get('rold')).toEqual({
      ...record('rold', { trigger: 'tx-stall', detail: 'queue 0 stopped', endedAt: 1900, result: 'recovered' }),
      phases: JSON.parse(FIRST_PHASES) as object,
      steps: [{ source: 'module', key: 'mac', result: 'ok' }],
    });
    h.insert(record('rnew', { result: 'recovered', method: 'reload', module: 'e1000' }));
    // Opening it again adds nothing twice; the schema number is the new one.
    expect(() => new RecoveryHistory(db)).not.toThrow();
    expect(db.prepare<[], { v: string }>("SELECT v FROM meta WHERE k = 'recoveries_schema'").get()?.v).toBe('2');
    // A file of schema 2 is refused by the first shadowd (its check wants 1), so no row of it comes back without a class.
    expect(h.get('rolder')).toMatchObject({ cls: 'net', method: null, module: null });
    expect(h.list().map((r) => [r.id, r.method])).toEqual([
      ['rnew', 'reload'],
      ['rolder', null],
      ['rold', null],
    ]);
    db.close();
  });

  it('lists newest first, by device, with a limit and a start time', () => {
    history.insert(record('r1', { startedAt: 100 }));
    history.insert(record('r2', { startedAt: 200, device: 'eth1' }));
    history.insert(record('r3', { startedAt: 300 }));
    expect(history.list().map((r) => r.id)).toEqual(['r3', 'r2', 'r1']);
    expect(history.list({ device: 'eth0' }).map((r) => r.id)).toEqual(['r3', 'r1']);
    expect(history.list({ limit: 1 }).map((r) => r.id)).toEqual(['r3']);
    expect(history.list({ since: 200 }).map((r) => r.id)).toEqual(['r3', 'r2']);
    expect(() => history.list({ limit: 0 })).toThrow(HistoryError);
  });

  it('lists by class, and by class and device: two classes may each have a device of one name', () => {
    history.insert(record('r1', { startedAt: 100 }));
    history.insert(record('r2', { startedAt: 200, cls: 'block', device: 'data', driver: 'nvme', trigger: 'io-timeout' }));
    history.insert(record('r3', { startedAt: 300, cls: 'net', device: 'data' }));
    history.insert(record('r4', { startedAt: 400, cls: 'sound', device: 'card0', driver: 'snd_hda_intel', trigger: 'oops' }));
    expect(history.list({ cls: 'net' }).map((r) => r.id)).toEqual(['r3', 'r1']);
    expect(history.list({ cls: 'block' })).toEqual([record('r2', { startedAt: 200, cls: 'block', device: 'data', driver: 'nvme', trigger: 'io-timeout' })]);
    expect(history.list({ device: 'data' }).map((r) => r.id)).toEqual(['r3', 'r2']);
    expect(history.list({ cls: 'net', device: 'data' }).map((r) => r.id)).toEqual(['r3']);
    expect(history.list({ cls: 'sound', since: 500 })).toEqual([]);
    expect(history.list({ cls: 'tty' })).toEqual([]);
  });

  it("gives the latest recovery of each class's device: a disk and a NIC of one name are two devices", () => {
    history.insert(record('r1', { device: 'data', result: 'gave-up' }));
    history.insert(record('r2', { cls: 'block', device: 'data', trigger: 'io-timeout', result: 'recovered' }));
    history.insert(record('r3', { cls: 'block', device: 'data', trigger: 'replay', result: 'replayed' }));
    expect(history.latestRecoveries().map((r) => [r.cls, r.device, r.id, r.result])).toEqual([
      ['block', 'data', 'r2', 'recovered'],
      ['net', 'data', 'r1', 'gave-up'],
    ]);
  });

  it("takes any class's failure kinds as triggers, and refuses a bad class or kind", () => {
    history.insert(record('r1', { cls: 'block', device: 'sda', trigger: 'io-timeout' }));
    expect(history.get('r1')).toMatchObject({ cls: 'block', trigger: 'io-timeout' });
    expect(() => history.insert(record('r2', { cls: 'Net' }))).toThrow(/recovery r2: "Net" is not a class id/);
    expect(() => history.insert(record('r3', { cls: undefined as never }))).toThrow(HistoryError);
    expect(() => history.insert(record('r4', { trigger: 'TX stall' }))).toThrow(/recovery r4: trigger "TX stall" is not a failure kind/);
    expect(() => history.insert(record('r5', { trigger: 'x'.repeat(33) }))).toThrow(HistoryError);
    expect(history.list().map((r) => r.id)).toEqual(['r1']);
  });

  it("closes a killed daemon's in-progress recoveries as interrupted, with a note", () => {
    history.insert(record('r1', { result: 'recovered', endedAt: 1500 }));
    history.insert(record('r2'));
    history.insert(record('r3', { device: 'eth1', error: 'staging failed' }));
    store.close();
    // The next daemon opens the same file.
    store = new ShadowStore(join(dir, 'state.db'));
    history = new RecoveryHistory(store.database);
    const closed = history.closeInterrupted(5000);
    expect(closed.map((r) => [r.id, r.result, r.endedAt])).toEqual([
      ['r2', 'interrupted', 5000],
      ['r3', 'interrupted', 5000],
    ]);
    expect(history.get('r2')?.error).toMatch(/^shadowd stopped during this recovery \(killed or crashed\)/);
    expect(history.get('r3')?.error).toMatch(/^staging failed; shadowd stopped during this recovery/);
    expect(history.get('r1')?.result).toBe('recovered');
    expect(history.closeInterrupted(6000)).toEqual([]);
  });

  it("gives each device's latest recovery, replays left out", () => {
    history.insert(record('r1', { result: 'gave-up' }));
    history.insert(record('r2', { trigger: 'replay', result: 'replayed' }));
    history.insert(record('r3', { device: 'eth1', result: 'recovered' }));
    history.insert(record('r4', { device: 'eth1', result: 'failed' }));
    expect(history.latestRecoveries().map((r) => [r.id, r.result])).toEqual([
      ['r1', 'gave-up'],
      ['r4', 'failed'],
    ]);
  });

  it('names the devices whose latest recovery did not bring them back, with why; a later success clears one', () => {
    const refusal = 'refused before touching the device: shadow_helper: a restart would lose what the driver holds: an XDP program in driver mode';
    history.insert(record('r1', { result: 'failed', endedAt: 1500, error: refusal }));
    history.insert(record('r2', { device: 'eth1', result: 'gave-up', endedAt: 2500, error: '3 failures in 60 s' }));
    history.insert(record('r3', { device: 'eth2', result: 'failed', endedAt: 2600, error: 'probe failed' }));
    history.insert(record('r4', { device: 'eth2', result: 'recovered', endedAt: 2700 }));
    history.insert(record('r5', { cls: 'block', device: 'sda', trigger: 'io-timeout', result: 'in-progress' }));
    history.insert(record('r6', { device: 'eth3', result: 'interrupted', endedAt: null, startedAt: 3000, error: null }));
    expect(history.unrecovered()).toEqual([
      { cls: 'net', device: 'eth0', id: 'r1', result: 'failed', at: 1500, error: refusal },
      { cls: 'net', device: 'eth1', id: 'r2', result: 'gave-up', at: 2500, error: '3 failures in 60 s' },
      { cls: 'net', device: 'eth3', id: 'r6', result: 'interrupted', at: 3000, error: null },
    ]);
  });

  it('refuses a bad id, an unknown result, and updating a row that is not there', () => {
    expect(() => history.insert(record('not valid!'))).toThrow(/recovery id "not valid!" is not 1-32 of/);
    expect(() => history.insert(record('x'.repeat(33)))).toThrow(HistoryError);
    expect(() => history.insert(record('r1', { result: 'fine' as never }))).toThrow(/CHECK constraint/);
    expect(() => history.update(record('r9'))).toThrow('no recovery r9 in the history');
    expect(() => history.insert(record('r8'))).not.toThrow();
    expect(() => history.insert(record('r8'))).toThrow(/UNIQUE/);
  });

  it('stays bounded: the oldest rows go first', () => {
    const small = new RecoveryHistory(store.database, 5);
    for (let i = 0; i < 12; i++) small.insert(record(`r${i}`, { startedAt: i }));
    expect(small.list({ limit: 100 }).map((r) => r.id)).toEqual(['r11', 'r10', 'r9', 'r8', 'r7']);
  });

  it('survives an unreadable JSON column', () => {
    history.insert(record('r1'));
    store.database.prepare("UPDATE recoveries SET phases = '{', steps = 'x' WHERE id = 'r1'").run();
    expect(history.get('r1')).toMatchObject({ phases: {}, steps: [] });
  });

  it('lives in the shadow file and refuses another schema version of its own', () => {
    const names = store.database.prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name").all().map((r) => r.name);
    expect(names).toEqual(expect.arrayContaining(['devices', 'entries', 'recoveries']));
    store.close();
    const db = new Database(join(dir, 'state.db'));
    db.prepare("UPDATE meta SET v = '7' WHERE k = 'recoveries_schema'").run();
    expect(() => new RecoveryHistory(db)).toThrow(/recovery history schema 7 is not the supported 2/);
    db.close();
    store = new ShadowStore(join(dir, 'other.db'));
  });

  it('opens a file of its own', () => {
    const own = RecoveryHistory.open(join(dir, 'own.db'));
    own.insert(record('r1'));
    expect(own.list()).toHaveLength(1);
    own.close();
  });
});

/** The committed fixture: a state file the previous shadowd (schema 1) wrote. */
const STATE_V1 = fileURLToPath(new URL('../../fixtures/state/state-v1.db', import.meta.url));

type Row = Record<string, unknown>;
function recoveryRows(path: string): Row[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare<[], Row>('SELECT rowid AS row, * FROM recoveries ORDER BY rowid').all();
  } finally {
    db.close();
  }
}
function schemaOf(path: string): Row[] {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare<[], Row>("SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ('recoveries', 'meta') ORDER BY name").all();
  } finally {
    db.close();
  }
}

describe('a recovery history of schema 1 (before device classes)', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'recovery-history-v1-'));
    path = join(dir, 'state.db');
    copyFileSync(STATE_V1, path);
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens the file as the daemon does: the store first, then the history on its connection. */
  function openDaemonFiles(): { store: ShadowStore; history: RecoveryHistory } {
    const store = new ShadowStore(path);
    return { store, history: new RecoveryHistory(store.database) };
  }

  it('holds what the fixture script wrote: recoveries of two devices, one given up, one still in progress', () => {
    expect(recoveryRows(path).map((r) => [r['id'], r['device'], r['trigger_kind'], r['result']])).toEqual([
      ['r-eth0-1', 'eth0', 'tx-timeout', 'recovered'],
      ['r-eth1-1', 'eth1', 'oops', 'recovered'],
      ['r-eth0-replay', 'eth0', 'replay', 'replayed'],
      ['r-eth1-2', 'eth1', 'tx-stall', 'gave-up'],
      ['r-eth0-manual', 'eth0', 'manual', 'failed'],
      ['r-eth0-2', 'eth0', 'tx-timeout', 'in-progress'],
    ]);
  });

  it("is migrated in place: every row is net's, everything else (rowids too) unchanged, and both schemas are 2", () => {
    const old = recoveryRows(path);
    const { store, history } = openDaemonFiles();
    try {
      const version = (k: string): string | undefined => store.database.prepare<[string], { v: string }>('SELECT v FROM meta WHERE k = ?').get(k)?.v;
      expect(version('schema')).toBe('2');
      expect(version('recoveries_schema')).toBe('2');
      const migrated = recoveryRows(path);
      expect(migrated.map(({ cls: _cls, ...rest }) => rest)).toEqual(old);
      expect(migrated.map((r) => r['cls'])).toEqual(old.map(() => 'net'));
      expect(history.list({ limit: 100 }).map((r) => r.id)).toEqual(old.map((r) => r['id']).reverse());
      expect(history.list({ cls: 'net', limit: 100 })).toHaveLength(old.length);
      expect(history.get('r-eth1-1')).toEqual({
        id: 'r-eth1-1',
        cls: 'net',
        device: 'eth1',
        driver: 'virtio_net',
        trigger: 'oops',
        detail: 'BUG: kernel NULL pointer dereference in virtnet_poll',
        startedAt: 1_790_000_020_000,
        endedAt: 1_790_000_021_500,
        result: 'recovered',
        phases: { restart: 1300, total: 1500, module: { stopMs: 10, releaseMs: 5, probeMs: 600, replayMs: 30, openMs: 205, totalMs: 1300, unloadMs: 140, loadMs: 310 } },
        steps: [{ source: 'module', key: 'reload', result: 'ok' }],
        error: null,
        merged: 0,
        method: 'reload',
        module: 'virtio_net',
      });
    } finally {
      store.close();
    }
  });

  it('ends with the table and index a new file has', () => {
    openDaemonFiles().store.close();
    const fresh = join(dir, 'fresh.db');
    const freshStore = new ShadowStore(fresh);
    new RecoveryHistory(freshStore.database);
    freshStore.close();
    expect(schemaOf(path)).toEqual(schemaOf(fresh));
  });

  it("takes up the previous daemon's history: the given-up device stays given up, the in-progress one is closed as interrupted", () => {
    const { store, history } = openDaemonFiles();
    try {
      expect(history.latestRecoveries().map((r) => [r.cls, r.device, r.id, r.result])).toEqual([
        ['net', 'eth0', 'r-eth0-2', 'in-progress'],
        ['net', 'eth1', 'r-eth1-2', 'gave-up'],
      ]);
      expect(history.closeInterrupted(1_790_000_100_000).map((r) => [r.cls, r.id, r.result, r.endedAt])).toEqual([
        ['net', 'r-eth0-2', 'interrupted', 1_790_000_100_000],
      ]);
      expect(history.get('r-eth0-2')?.error).toMatch(/^shadowd stopped during this recovery/);
    } finally {
      store.close();
    }
  });

  it('is not touched again when opened again', () => {
    openDaemonFiles().store.close();
    const once = recoveryRows(path);
    const bytes = readFileSync(path);
    openDaemonFiles().store.close();
    expect(recoveryRows(path)).toEqual(once);
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });

  it('is migrated in one transaction: a migration that fails leaves the table at schema 1', () => {
    const db = new Database(path);
    // A table in the way of the rename the migration does.
    db.exec('CREATE TABLE recoveries_v1 (x)');
    db.close();
    const old = recoveryRows(path);
    const before = schemaOf(path);
    expect(() => RecoveryHistory.open(path)).toThrow(/recoveries_v1/);
    expect(recoveryRows(path)).toEqual(old);
    expect(schemaOf(path)).toEqual(before);
  });

  it('refuses a history of a newer schema, naming the file and both versions', () => {
    const db = new Database(path);
    db.prepare("UPDATE meta SET v = '3' WHERE k = 'recoveries_schema'").run();
    db.close();
    const old = recoveryRows(path);
    expect(() => RecoveryHistory.open(path)).toThrow(HistoryError);
    expect(() => RecoveryHistory.open(path)).toThrow(`${path}: recovery history schema 3 is not the supported 2 (a newer shadowd wrote it; this one cannot read it)`);
    expect(recoveryRows(path)).toEqual(old);
  });
});
