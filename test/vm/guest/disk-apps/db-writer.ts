// The database application: SQLite (better-sqlite3) in WAL mode with
// synchronous=FULL commits one transaction after another, each inserting a
// row whose payload is a function of its id, until its stdin closes or says
// "stop". After each commit returns, the id is appended to the ack log (kept
// off the disk under test) and printed on stdout as progress.
// WAL with synchronous=FULL fsyncs the WAL at every commit and SQLite syncs
// the directory once when it creates the WAL, so every acknowledged commit is
// durable; DELETE mode does not sync the directory after unlinking the
// journal, so after a hard failure the last acknowledged commit can roll back
// (disk-facts.md), which would make the "every acked row" check unsound.
//   node db-writer.js --db FILE --acks FILE
// Exit 0 after a clean stop; 1 with the error on stderr when SQLite fails.
import { closeSync, openSync, writeSync } from 'node:fs';
import { parseArgs } from 'node:util';
import Database from 'better-sqlite3';

export const PAYLOAD_BYTES = 4096;

/** The row payload for an id: deterministic, different per id. */
export function payloadFor(id: number): Buffer {
  const b = Buffer.alloc(PAYLOAD_BYTES);
  let x = (id * 2654435761) >>> 0;
  for (let i = 0; i < PAYLOAD_BYTES; i += 4) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    b.writeUInt32LE(x, i);
  }
  return b;
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { db: { type: 'string' }, acks: { type: 'string' } } });
  if (!values.db || !values.acks) {
    console.error('usage: db-writer.js --db FILE --acks FILE');
    process.exit(2);
  }
  let stop = false;
  process.stdin.setEncoding('utf8');
  process.stdin.on('data', (d: string) => {
    if (d.includes('stop')) stop = true;
  });
  process.stdin.on('end', () => (stop = true));
  const acks = openSync(values.acks, 'a');
  const db = new Database(values.db);
  const mode = db.pragma('journal_mode = WAL', { simple: true }) as string;
  if (mode !== 'wal') throw new Error(`journal_mode is ${mode}, not wal`);
  db.pragma('synchronous = FULL');
  db.exec('CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v BLOB NOT NULL)');
  const insert = db.prepare('INSERT INTO t (id, v) VALUES (?, ?)');
  const commit = db.transaction((id: number) => insert.run(id, payloadFor(id)));
  let id = 0;
  while (!stop) {
    id++;
    commit(id);
    writeSync(acks, `${id}\n`);
    process.stdout.write(`${id}\n`);
    // Let stdin's "stop" in between commits.
    await new Promise((r) => setImmediate(r));
  }
  db.close();
  closeSync(acks);
}

if (process.argv[1] && import.meta.filename === process.argv[1]) {
  main().catch((e: unknown) => {
    console.error(`db-writer: ${e instanceof Error ? e.message : String(e)}`);
    process.exit(1);
  });
}
