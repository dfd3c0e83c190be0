// One application writing to a disk while its driver restarts, for
// block-dm-mechanism.ts: it writes, waits for the write to be acknowledged
// (commit, fsync, O_DIRECT + fdatasync), records the acknowledged id in the
// run folder, and measures how long each acknowledgement took. The checker
// later proves every acknowledged id is on the disk.
//   node block-writer.js sqlite|append|direct DIR ACKLOG SUMMARY
// sqlite: one row per committed transaction (real SQLite through
// better-sqlite3, DELETE journal, synchronous=FULL); append: 512-byte records
// appended to a file, fsync after each; direct: 4 KiB blocks written with
// O_DIRECT and fdatasync by dd (an aligned buffer, which Node cannot promise).
// Stops at SIGTERM, or at the first error (recorded); writes SUMMARY as JSON.
import { spawnSync } from 'node:child_process';
import { appendFileSync, closeSync, fsyncSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';

export const APPEND_RECORD = 512;
export const DIRECT_BLOCK = 4096;

/** The append writer's record for id: fixed length, so record i is at i * 512. */
export function appendRecord(id: number): Buffer {
  return Buffer.from(`id=${id} `.padEnd(APPEND_RECORD - 1, String.fromCharCode(97 + (id % 26))) + '\n');
}

/** The direct writer's block for id, written at block id. */
export function directBlock(id: number): Buffer {
  const b = Buffer.alloc(DIRECT_BLOCK, 65 + (id % 26));
  b.write(`block=${id}\n`);
  return b;
}

export interface WriterSummary {
  mode: string;
  acked: number;
  /** The first error, if the writer stopped on one. */
  error: { id: number; message: string; atMs: number } | null;
  /** Longest time one write took to be acknowledged. */
  longestStallMs: number;
  /** When the longest one started (epoch ms). */
  longestStallAt: number;
}

const PACE_MS = 30;

async function main(): Promise<void> {
  const [mode, dir, ackLog, summaryPath] = process.argv.slice(2);
  if (!mode || !dir || !ackLog || !summaryPath || !['sqlite', 'append', 'direct'].includes(mode)) {
    console.error('usage: block-writer.js sqlite|append|direct DIR ACKLOG SUMMARY');
    process.exit(2);
  }
  let stop = false;
  process.on('SIGTERM', () => (stop = true));

  let write: (id: number) => void;
  let close = (): void => {};
  if (mode === 'sqlite') {
    const db = new Database(join(dir, 'writer.sqlite'));
    db.pragma('journal_mode = DELETE');
    db.pragma('synchronous = FULL');
    db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)');
    const insert = db.prepare('INSERT INTO t (id, payload) VALUES (?, ?)');
    write = (id) => void insert.run(id, `row ${id} `.padEnd(200, 'x'));
    close = () => db.close();
  } else if (mode === 'append') {
    const fd = openSync(join(dir, 'writer.append'), 'a');
    write = (id) => {
      writeSync(fd, appendRecord(id));
      fsyncSync(fd);
    };
    close = () => closeSync(fd);
  } else {
    const file = join(dir, 'writer.direct');
    write = (id) => {
      const r = spawnSync(
        'dd',
        [`of=${file}`, `bs=${DIRECT_BLOCK}`, 'count=1', `seek=${id}`, 'iflag=fullblock', 'oflag=direct', 'conv=notrunc,fdatasync', 'status=none'],
        { input: directBlock(id), encoding: 'utf8' },
      );
      if (r.status !== 0) throw new Error(`dd: ${(r.stderr || r.error?.message || `status ${r.status}`).trim()}`);
    };
  }

  const summary: WriterSummary = { mode, acked: 0, error: null, longestStallMs: 0, longestStallAt: 0 };
  for (let id = 0; !stop; id++) {
    const started = Date.now();
    try {
      write(id);
    } catch (err) {
      summary.error = { id, message: (err as Error).message, atMs: Date.now() };
      break;
    }
    const took = Date.now() - started;
    appendFileSync(ackLog, `${id}\n`);
    summary.acked = id + 1;
    if (took > summary.longestStallMs) {
      summary.longestStallMs = took;
      summary.longestStallAt = started;
    }
    await new Promise((r) => setTimeout(r, PACE_MS));
  }
  try {
    close();
  } catch {
    // the disk may be gone (the control)
  }
  writeFileSync(summaryPath, JSON.stringify(summary));
}

if (process.argv[1]?.endsWith('block-writer.js')) await main();
