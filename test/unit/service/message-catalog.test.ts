import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import * as ids from '../../../daemon/service/message-ids.js';

const CATALOG = new URL('../../../systemd/shadowd.catalog', import.meta.url).pathname;

interface CatalogEntry {
  id: string;
  line: number;
  headers: Map<string, string>;
  body: string;
}

/** The catalog format as systemd's catalog.c reads it: "#" lines are comments anywhere. */
function parseCatalog(text: string): CatalogEntry[] {
  const entries: CatalogEntry[] = [];
  let cur: (CatalogEntry & { inHeaders: boolean; bodyLines: string[] }) | null = null;
  const done = () => {
    if (cur) entries.push({ id: cur.id, line: cur.line, headers: cur.headers, body: cur.bodyLines.join('\n').trim() });
  };
  text.split('\n').forEach((line, i) => {
    if (line.startsWith('#')) return;
    const start = /^-- (\S+)(?: (\S+))?\s*$/.exec(line);
    if (start) {
      done();
      cur = { id: start[1]!, line: i + 1, headers: new Map(), body: '', inHeaders: true, bodyLines: [] };
      return;
    }
    if (!cur) {
      if (line.trim() !== '') throw new Error(`line ${i + 1}: text before the first entry`);
      return;
    }
    if (cur.inHeaders) {
      if (line === '') {
        cur.inHeaders = false;
        return;
      }
      const h = /^([A-Za-z-]+): (.+)$/.exec(line);
      if (!h) throw new Error(`line ${i + 1}: not a header: ${line}`);
      cur.headers.set(h[1]!, h[2]!);
      return;
    }
    cur.bodyLines.push(line);
  });
  done();
  return entries;
}

describe('the journal message catalog', () => {
  const entries = parseCatalog(readFileSync(CATALOG, 'utf8'));
  const constants = Object.entries(ids).filter(([, v]) => typeof v === 'string') as [string, string][];

  it('parses: each entry has a 128-bit id, a Subject, Defined-By and Support, and a body', () => {
    expect(entries.length).toBeGreaterThan(0);
    for (const e of entries) {
      expect(e.id, `entry at line ${e.line}`).toMatch(/^[0-9a-f]{32}$/);
      expect(e.headers.get('Subject'), e.id).toBeTruthy();
      expect(e.headers.get('Defined-By'), e.id).toBe('shadowd');
      expect(e.headers.get('Support'), e.id).toMatch(/^(https?|file|man):/);
      expect(e.body.length, e.id).toBeGreaterThan(50);
    }
    expect(new Set(entries.map((e) => e.id)).size).toBe(entries.length);
  });

  it('has an entry for every MESSAGE_ID in message-ids.ts, and none other', () => {
    expect(constants.length).toBeGreaterThanOrEqual(5);
    for (const [name, id] of constants) expect(entries.map((e) => e.id), name).toContain(id);
    expect(entries.map((e) => e.id).sort()).toEqual(constants.map(([, id]) => id).sort());
  });

  it('names only journal fields shadowd sets (@SHADOWD_...@)', () => {
    for (const e of entries) {
      for (const m of `${e.headers.get('Subject')}\n${e.body}`.matchAll(/@([A-Za-z0-9_]+)@/g)) expect(m[1]).toMatch(/^SHADOWD_[A-Z0-9_]+$/);
    }
  });

  // journalctl's own parser, on a private root, where it is installed.
  const journalctl = spawnSync('journalctl', ['--version']).status === 0;
  it.skipIf(!journalctl)('is accepted by journalctl --update-catalog', () => {
    const root = mkdtempSync(join(tmpdir(), 'shadowd-catalog-'));
    try {
      mkdirSync(join(root, 'usr/lib/systemd/catalog'), { recursive: true });
      copyFileSync(CATALOG, join(root, 'usr/lib/systemd/catalog/shadowd.catalog'));
      const update = spawnSync('journalctl', [`--root=${root}`, '--update-catalog'], { encoding: 'utf8' });
      expect(update.stderr).toBe('');
      expect(update.status).toBe(0);
      const list = spawnSync('journalctl', [`--root=${root}`, '--list-catalog'], { encoding: 'utf8' }).stdout;
      for (const [, id] of constants) expect(list).toMatch(new RegExp(`^${id} shadowd: `, 'm'));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
