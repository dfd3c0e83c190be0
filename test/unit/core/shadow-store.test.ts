import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { SNAPSHOT_ACTOR, ShadowStore, StoreError } from '../../../daemon/core/shadow-store.js';

const DEV = { id: 'pci:0000:00:03.0', cls: 'net' as const, ifindex: 2, name: 'eth0', driver: 'e1000', bus: '0000:00:03.0' };

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
  });

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
});

