// The three writers of block-writer.ts run together on one mounted
// filesystem, and the checker that reads every acknowledged write back
// afterwards: shared by the guest scripts that restart a disk's driver under
// running applications (block-dm-mechanism.ts, block-restarts.ts), so each
// proves "nothing acknowledged was lost" the same way.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { APPEND_RECORD, DIRECT_BLOCK, appendRecord, directBlock, type WriterSummary } from './block-writer.js';

const RUN = process.env['SHADOWD_RUNDIR'] ?? '/tmp';
const WRITER = new URL('./block-writer.js', import.meta.url).pathname;
const WRITERS = ['sqlite', 'append', 'direct'] as const;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface Writers {
  procs: { mode: string; proc: ChildProcess; ackLog: string; summary: string; exited: Promise<number | null> }[];
}

/** Starts the three writers on the filesystem mounted at dir; their acknowledgement logs and summaries go in the run folder under `tag`. */
export function startWriters(dir: string, tag: string): Writers {
  return {
    procs: WRITERS.map((mode) => {
      const ackLog = join(RUN, `${tag}-${mode}.acks`);
      const summary = join(RUN, `${tag}-${mode}.summary.json`);
      const proc = spawn('node', [WRITER, mode, dir, ackLog, summary], { stdio: ['ignore', 'inherit', 'inherit'] });
      const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
      return { mode, proc, ackLog, summary, exited };
    }),
  };
}

/** Waits until every writer has had `n` writes acknowledged: node and better-sqlite3 take seconds to start under TCG. */
export async function warmUp(w: Writers, n: number, timeoutMs = 60_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  const acked = (p: Writers['procs'][number]): number => (existsSync(p.ackLog) ? readFileSync(p.ackLog, 'utf8').split('\n').length - 1 : 0);
  while (w.procs.some((p) => acked(p) < n)) {
    if (Date.now() > until) throw new Error(`writers did not start: ${w.procs.map((p) => `${p.mode}=${acked(p)}`).join(' ')}`);
    await sleep(200);
  }
}

export async function stopWriters(w: Writers, timeoutMs = 90_000): Promise<Record<string, WriterSummary & { acks: number[]; hung: boolean }>> {
  for (const p of w.procs) p.proc.kill('SIGTERM');
  const out: Record<string, WriterSummary & { acks: number[]; hung: boolean }> = {};
  for (const p of w.procs) {
    const hung = await Promise.race<boolean>([p.exited.then(() => false), sleep(timeoutMs).then(() => true)]);
    if (hung) p.proc.kill('SIGKILL');
    const acks = existsSync(p.ackLog)
      ? readFileSync(p.ackLog, 'utf8').split('\n').filter((l) => l !== '').map(Number)
      : [];
    const summary = existsSync(p.summary)
      ? (JSON.parse(readFileSync(p.summary, 'utf8')) as WriterSummary)
      : { mode: p.mode, acked: acks.length, error: null, longestStallMs: -1, longestStallAt: 0 };
    out[p.mode] = { ...summary, acks, hung };
  }
  return out;
}

/** Every acknowledged write, read back from the mounted filesystem: the ids missing or damaged. */
export function verifyData(dir: string, acks: Record<string, number[]>): { missing: Record<string, number[]>; integrity: string } {
  const missing: Record<string, number[]> = {};
  const db = new Database(join(dir, 'writer.sqlite'), { readonly: true });
  const integrity = (db.pragma('integrity_check', { simple: true }) as string) ?? 'no answer';
  const has = db.prepare('SELECT payload FROM t WHERE id = ?');
  missing['sqlite'] = (acks['sqlite'] ?? []).filter((id) => (has.get(id) as { payload: string } | undefined)?.payload !== `row ${id} `.padEnd(200, 'x'));
  db.close();
  const append = readFileSync(join(dir, 'writer.append'));
  missing['append'] = (acks['append'] ?? []).filter((id) => !append.subarray(id * APPEND_RECORD, (id + 1) * APPEND_RECORD).equals(appendRecord(id)));
  const direct = readFileSync(join(dir, 'writer.direct'));
  missing['direct'] = (acks['direct'] ?? []).filter((id) => !direct.subarray(id * DIRECT_BLOCK, (id + 1) * DIRECT_BLOCK).equals(directBlock(id)));
  return { missing, integrity };
}

/** Lines that mean an error reached the map or the filesystem on it (dmDev: dm-N). */
export function upperErrors(lines: string[], dmDev: string): string[] {
  return lines.filter(
    (l) =>
      new RegExp(`(I/O error|error).*\\b${dmDev}\\b`).test(l) ||
      /EXT4-fs (error|warning)|Remounting filesystem read-only|Aborting journal|Buffer I\/O error/.test(l),
  );
}
