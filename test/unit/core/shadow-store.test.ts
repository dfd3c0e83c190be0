// The shadow store on real SQLite files: values, holders, durability, device
// classes, and the migration of a file the previous shadowd wrote (schema 1,
// before classes: test/fixtures/state/make-state-v1.ts made it).
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { SNAPSHOT_ACTOR, ShadowStore, StoreError } from '../../../daemon/core/shadow-store.js';

const DEV = { id: 'pci:0000:00:03.0', cls: 'net', name: 'eth0', driver: 'e1000', bus: '0000:00:03.0', attrs: { ifindex: 2 } };

describe('shadow store', () => {
  let dir: string;
  let store: ShadowStore;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'shadow-store-'));
    store = new ShadowStore(join(dir, 'state.db'));
    store.upsertDevice(DEV, 1000);
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('keeps the latest value per key with who set it', () => {
    store.setEntry(DEV.id, 'mtu', 1500, SNAPSHOT_ACTOR, 1000);
    store.setEntry(DEV.id, 'mtu', 9000, { pid: 42, comm: 'ip' }, 2000);
    store.setEntry(DEV.id, 'mac', '02:00:00:00:00:01', { pid: 43, comm: 'ip' }, 3000);
    expect(store.entries(DEV.id)).toEqual([
      { key: 'mac', value: '02:00:00:00:00:01', actor: { pid: 43, comm: 'ip' }, at: 3000, seq: 3 },
      { key: 'mtu', value: 9000, actor: { pid: 42, comm: 'ip' }, at: 2000, seq: 2 },
    ]);
  });

  it('a snapshot that finds the same value keeps the process that set it', () => {
    store.setEntry(DEV.id, 'mtu', 9000, { pid: 42, comm: 'ip' }, 2000);
    expect(store.setEntry(DEV.id, 'mtu', 9000, SNAPSHOT_ACTOR, 5000)).toBe(false);
    expect(store.entries(DEV.id)[0]?.actor).toEqual({ pid: 42, comm: 'ip' });
  });

  it('stays bounded by the number of keys: 100,000 MTU toggles leave one entry', () => {
    for (let i = 0; i < 100_000; i++) store.setEntry(DEV.id, 'mtu', i % 2 ? 1400 : 1500, { pid: 42, comm: 'ip' }, i);
    expect(store.entryCount()).toBe(1);
    expect(store.entries(DEV.id)).toEqual([{ key: 'mtu', value: 1400, actor: { pid: 42, comm: 'ip' }, at: 99_999, seq: 100_000 }]);
    // What it checks is the size, not the speed: a loaded machine (a guest beside it) takes several times longer.
  }, 60_000);

  it('counts holders up and down and forgets them at zero or when their process is gone', () => {
    expect(store.adjustHolder(DEV.id, 'promiscuity', 100, 'tcpdump', 1, 10)).toBe(1);
    expect(store.adjustHolder(DEV.id, 'promiscuity', 101, 'tcpdump', 1, 11)).toBe(1);
    expect(store.adjustHolder(DEV.id, 'allmulti', 102, 'pimd', 1, 12)).toBe(1);
    expect(store.holders(DEV.id).map((h) => [h.kind, h.pid, h.count])).toEqual([
      ['allmulti', 102, 1],
      ['promiscuity', 100, 1],
      ['promiscuity', 101, 1],
    ]);
    expect(store.adjustHolder(DEV.id, 'promiscuity', 100, 'tcpdump', -1, 13)).toBe(0);
    expect(store.dropHoldersExcept(DEV.id, new Set([102]))).toBe(1);
    expect(store.holders(DEV.id).map((h) => h.pid)).toEqual([102]);
  });

  it('keeps everything committed when the writing process is killed with SIGKILL', async () => {
    const db = join(dir, 'killed.db');
    // A child writes entries as fast as it can and is killed mid-stream.
    const child = execa(process.execPath, ['--input-type=module', '-e', `
      import { ShadowStore } from ${JSON.stringify(new URL('../../../dist/daemon/core/shadow-store.js', import.meta.url).href)};
      const s = new ShadowStore(${JSON.stringify(db)});
      s.upsertDevice(${JSON.stringify(DEV)}, 1);
      for (let i = 1; ; i++) { s.setEntry('${DEV.id}', 'k' + (i % 50), i, { pid: 1, comm: 'w' }, i); if (i % 1000 === 0) console.log(i); }
    `], { reject: false, buffer: false });
    let lastReported = 0;
    await new Promise<void>((resolve) => {
      child.stdout.on('data', (chunk: Buffer) => {
        lastReported = Number(chunk.toString().trim().split('\n').pop());
        if (lastReported >= 20_000) resolve();
      });
    });
    child.kill('SIGKILL');
    await child;
    const reopened = new ShadowStore(db);
    try {
      const values = reopened.entries(DEV.id).map((e) => e.value as number);
      expect(values).toHaveLength(50);
      // Every write reported before the kill is there (and possibly a few after).
      expect(Math.max(...values)).toBeGreaterThanOrEqual(lastReported);
    } finally {
      reopened.close();
    }
  });

  it('refuses a state file of another schema version', () => {
    store.close();
    const path = join(dir, 'state.db');
    const raw = new ShadowStore(path);
    raw.close();
    const db = new Database(path);
    db.prepare("UPDATE meta SET v = '99' WHERE k = 'schema'").run();
    db.close();
    expect(() => new ShadowStore(path)).toThrow(StoreError);
    store = new ShadowStore(join(dir, 'other.db'));
  });

  it('keeps devices of every class, each row with its own, and lists one class on request', () => {
    store.upsertDevice({ id: 'pci:0000:00:1f.3', cls: 'sound', name: 'card0', driver: 'snd_hda_intel', bus: '0000:00:1f.3', attrs: { card: 0 } }, 1100);
    store.upsertDevice({ id: 'nvme0n1', cls: 'block', name: 'nvme0n1', driver: 'nvme', bus: null }, 1200);
    expect(store.devices().map((d) => [d.cls, d.name])).toEqual([
      ['block', 'nvme0n1'],
      ['net', 'eth0'],
      ['sound', 'card0'],
    ]);
    expect(store.devices('sound')).toEqual([
      { id: 'pci:0000:00:1f.3', cls: 'sound', name: 'card0', driver: 'snd_hda_intel', bus: '0000:00:1f.3', attrs: { card: 0 }, present: true, firstSeen: 1100, lastSeen: 1100 },
    ]);
    expect(store.devices('net').map((d) => d.id)).toEqual([DEV.id]);
    expect(store.devices('block')[0]?.attrs).toEqual({});
    expect(store.devices('tty')).toEqual([]);
  });

  it("refuses a device whose id another class's device holds, and leaves that one as it was", () => {
    const before = store.devices();
    expect(() => store.upsertDevice({ ...DEV, cls: 'block', name: 'sda' }, 2000)).toThrow(StoreError);
    expect(() => store.upsertDevice({ ...DEV, cls: 'block', name: 'sda' }, 2000)).toThrow(
      `device ${DEV.id} is a net device in the shadow; a block device cannot take its id over`,
    );
    expect(store.devices()).toEqual(before);
    expect(() => store.upsertDevice({ ...DEV, cls: 'Not A Class' }, 2000)).toThrow(StoreError);
  });

  it('keeps class attributes as given, replaces them when given again, and keeps them when not', () => {
    const attrs = { ifindex: 7, duplex: 'full', speed: 2.5 };
    store.upsertDevice({ ...DEV, attrs }, 2000);
    expect(store.devices()[0]?.attrs).toEqual(attrs);
    store.upsertDevice({ id: DEV.id, cls: 'net', name: 'eth0', driver: null, bus: null }, 3000, false);
    expect(store.devices()[0]).toMatchObject({ attrs, driver: 'e1000', bus: DEV.bus, present: false, firstSeen: 1000, lastSeen: 3000 });
    store.upsertDevice({ ...DEV, attrs: { ifindex: 9 } }, 4000);
    expect(store.devices()[0]?.attrs).toEqual({ ifindex: 9 });
    expect(() => store.upsertDevice({ ...DEV, attrs: { ifindex: Number.NaN } }, 5000)).toThrow(/attribute ifindex must be a string or a finite number/);
    expect(() => store.upsertDevice({ ...DEV, attrs: { up: true } as never }, 5000)).toThrow(StoreError);
    expect(store.devices()[0]?.attrs).toEqual({ ifindex: 9 });
  });

  it('takes holder kinds a class declares', () => {
    store.upsertDevice({ id: 'card0', cls: 'sound', name: 'card0', driver: 'snd_hda_intel', bus: null }, 1000);
    expect(store.adjustHolder('card0', 'pcm-open', 300, 'pipewire', 1, 10)).toBe(1);
    expect(store.holders('card0')).toEqual([{ kind: 'pcm-open', pid: 300, comm: 'pipewire', count: 1, since: 10 }]);
  });
});

/** The committed fixture: a state file the previous shadowd (schema 1) wrote. */
const STATE_V1 = fileURLToPath(new URL('../../fixtures/state/state-v1.db', import.meta.url));

type Rows = Record<string, unknown>[];
/** Everything in a state file, read with plain SQL: its tables' definitions and rows (rowids included). */
function dump(path: string): { schema: Rows; meta: Rows; devices: Rows; entries: Rows; holders: Rows; recoveries: Rows } {
  const db = new Database(path, { readonly: true });
  try {
    const all = (sql: string): Rows => db.prepare<[], Record<string, unknown>>(sql).all();
    return {
      schema: all("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name"),
      meta: all('SELECT * FROM meta ORDER BY k'),
      devices: all('SELECT rowid AS row, * FROM devices ORDER BY id'),
      entries: all('SELECT rowid AS row, * FROM entries ORDER BY device, key'),
      holders: all('SELECT rowid AS row, * FROM holders ORDER BY device, kind, pid'),
      recoveries: all('SELECT rowid AS row, * FROM recoveries ORDER BY rowid'),
    };
  } finally {
    db.close();
  }
}

function columns(path: string, table: string): Rows {
  const db = new Database(path, { readonly: true });
  try {
    return db.prepare<[string], Record<string, unknown>>('SELECT name, type, "notnull", dflt_value, pk FROM pragma_table_info(?) ORDER BY name').all(table);
  } finally {
    db.close();
  }
}

describe('a state file of schema 1 (before device classes)', () => {
  let dir: string;
  let path: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'shadow-store-v1-'));
    path = join(dir, 'state.db');
    copyFileSync(STATE_V1, path);
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('is the file the fixture script describes: two network devices with an ifindex column, entries and holders', () => {
    const old = dump(path);
    expect(old.meta).toEqual([
      { k: 'recoveries_schema', v: '1' },
      { k: 'schema', v: '1' },
    ]);
    expect(old.devices.map((d) => [d['name'], d['cls'], d['ifindex'], d['present']])).toEqual([
      ['eth0', 'net', 2, 1],
      ['eth1', 'net', 7, 0],
    ]);
    expect(old.entries.length).toBeGreaterThan(6);
    expect(old.holders.length).toBe(3);
  });

  it('is migrated in place: every device is net with its ifindex in attrs; entries, holders and seq are unchanged', () => {
    const old = dump(path);
    const store = new ShadowStore(path);
    try {
      expect(store.devices()).toEqual(
        old.devices.map((d) => ({
          id: d['id'],
          cls: 'net',
          name: d['name'],
          driver: d['driver'],
          bus: d['bus'],
          attrs: { ifindex: d['ifindex'] },
          present: d['present'] === 1,
          firstSeen: d['first_seen'],
          lastSeen: d['last_seen'],
        })),
      );
      expect(store.devices('net')).toHaveLength(2);
      expect(store.changes).toBe(Math.max(...old.entries.map((e) => e['seq'] as number)));
      expect(store.changes).toBe(12);
      const eth0 = store.devices().find((d) => d.name === 'eth0')!;
      expect(store.entries(eth0.id).find((e) => e.key === 'mtu')).toEqual({ key: 'mtu', value: 9000, actor: { pid: 4242, comm: 'ip' }, at: 1_790_000_001_000, seq: 7 });
      expect(store.holders(eth0.id)).toEqual([
        { kind: 'allmulti', pid: 5200, comm: 'pimd', count: 1, since: 1_790_000_002_100 },
        { kind: 'promiscuity', pid: 5100, comm: 'tcpdump', count: 2, since: 1_790_000_002_000 },
      ]);
      // The next change continues the old counter.
      expect(store.setEntry(eth0.id, 'mtu', 1500, { pid: 1, comm: 'ip' }, 1_790_000_100_000)).toBe(true);
      expect(store.changes).toBe(13);
    } finally {
      store.close();
    }
  });

  it('keeps every row of entries and holders, and the devices rows but for ifindex moved into attrs', () => {
    const old = dump(path);
    new ShadowStore(path).close();
    const migrated = dump(path);
    expect(migrated.entries).toEqual(old.entries);
    expect(migrated.holders).toEqual(old.holders);
    expect(migrated.devices).toEqual(
      old.devices.map(({ ifindex, ...rest }) => ({ ...rest, attrs: JSON.stringify({ ifindex }) })),
    );
    expect(migrated.meta).toEqual([
      { k: 'recoveries_schema', v: '1' },
      { k: 'schema', v: '2' },
    ]);
    // The history's own table is the history's to migrate (recovery-history.test.ts).
    expect(migrated.recoveries).toEqual(old.recoveries);
  });

  it('ends with the tables a new file has', () => {
    new ShadowStore(path).close();
    const fresh = join(dir, 'fresh.db');
    new ShadowStore(fresh).close();
    for (const table of ['devices', 'entries', 'holders']) expect(columns(path, table)).toEqual(columns(fresh, table));
  });

  it('is not touched again when opened again', () => {
    new ShadowStore(path).close();
    const once = dump(path);
    const bytes = readFileSync(path);
    new ShadowStore(path).close();
    expect(dump(path)).toEqual(once);
    expect(readFileSync(path).equals(bytes)).toBe(true);
  });

  it('is migrated in one transaction: a migration that fails leaves the file at schema 1', () => {
    const db = new Database(path);
    db.exec("CREATE TRIGGER refuse_updates BEFORE UPDATE ON devices BEGIN SELECT RAISE(ABORT, 'refused by the test'); END");
    db.close();
    const old = dump(path);
    expect(() => new ShadowStore(path)).toThrow(/refused by the test/);
    expect(dump(path)).toEqual(old);
  });

  it('refuses a file of a newer schema, naming the file and both versions, and leaves it alone', () => {
    const db = new Database(path);
    db.prepare("UPDATE meta SET v = '3' WHERE k = 'schema'").run();
    db.close();
    const old = dump(path);
    expect(() => new ShadowStore(path)).toThrow(StoreError);
    expect(() => new ShadowStore(path)).toThrow(`${path}: state schema 3 is not the supported 2 (a newer shadowd wrote it; this one cannot read it)`);
    expect(dump(path)).toEqual(old);
  });

  it('is recognised by its tables when a daemon died before writing its schema number', () => {
    const db = new Database(path);
    db.prepare("DELETE FROM meta WHERE k = 'schema'").run();
    db.close();
    const store = new ShadowStore(path);
    try {
      expect(store.devices().map((d) => [d.name, d.attrs])).toEqual([
        ['eth0', { ifindex: 2 }],
        ['eth1', { ifindex: 7 }],
      ]);
    } finally {
      store.close();
    }
  });
});
