// Ingest rate and memory of the daemon's event path on the host: bpftrace
// output recorded in the guest (test/fixtures/netdev), repeated to N events,
// read by the real ingest (process pipe, line reader, parser, batching) into
// the real network shadow and SQLite store. Device re-reads are answered
// without running ip/ethtool: this measures ingest, not the tools.
// Goals (issue 3): >= 50,000 events/s, peak RSS <= 64 MB.
// usage: node dist/bench/ingest-rate.js [EVENTS]
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { DAEMON_NODE_OPTIONS } from '../daemon/service/node-options.js';
import { repoPath } from '../test/vm/rig/repo-path.js';

const GOAL_RATE = 50_000;
const GOAL_RSS_MB = 64;

async function main(): Promise<void> {
  const total = Number(process.argv[2] ?? 300_000);
  if (!Number.isInteger(total) || total < 1000) {
    console.error('usage: ingest-rate.js [EVENTS]  (EVENTS: an integer >= 1000, default 300000)');
    process.exit(2);
  }
  const printfs = ['e1000', 'pcnet32', 'e100'].flatMap((d) =>
    readFileSync(repoPath(`test/fixtures/netdev/${d}-session.jsonl`), 'utf8')
      .split('\n')
      .filter((l) => l.includes('"type": "printf"')),
  );
  const dir = mkdtempSync(join(tmpdir(), 'shadowd-bench-'));
  try {
    const lines = ['{"type": "attached_probes", "data": {"probes": 48}}'];
    for (let i = 0; i < total; i++) lines.push(printfs[i % printfs.length]!);
    const stream = join(dir, 'stream.jsonl');
    writeFileSync(stream, lines.join('\n') + '\n');
    // A fresh process that loads only the daemon's modules, with the daemon's
    // Node options, so its peak RSS is what shadowd's would be.
    const child = new URL('./ingest-child.js', import.meta.url).pathname;
    const { stdout } = await execa(process.execPath, [...DAEMON_NODE_OPTIONS, child, stream, String(total), dir]);
    const r = JSON.parse(stdout) as { events: number; seconds: number; maxRssKb: number; rows: number };
    const rate = r.events / r.seconds;
    const rssMb = r.maxRssKb / 1024;
    console.log(`ingest: ${r.events} recorded events (e1000, pcnet32, e100 sessions, repeated) in ${r.seconds.toFixed(2)} s`);
    console.log(`ingest rate: ${Math.round(rate)} events/s (goal >= ${GOAL_RATE}): ${rate >= GOAL_RATE ? 'met' : 'MISSED'}`);
    console.log(`peak RSS: ${rssMb.toFixed(1)} MB (goal <= ${GOAL_RSS_MB} MB): ${rssMb <= GOAL_RSS_MB ? 'met' : 'MISSED'}`);
    console.log(`reduced log: ${r.rows} rows for ${r.events} events`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
