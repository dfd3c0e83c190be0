// The measured half of bench/ingest-rate.js: a process that loads only the
// daemon's modules, reads the stream FILE through the real ingest into the
// network shadow and store, and prints its figures as JSON.
// usage: node [daemon node options] ingest-child.js FILE EVENTS STATE_DIR
import { join } from 'node:path';
import { NET_SYNC_MARKER } from '../daemon/classes/net/net-declaration.js';
import { Ingest } from '../daemon/core/ingest.js';
import { NetdevShadow } from '../daemon/classes/net/netdev-shadow.js';
import { ShadowStore } from '../daemon/core/shadow-store.js';
import { repoPath } from '../test/vm/rig/repo-path.js';

async function measure(stream: string, expected: number, dir: string): Promise<void> {
  const store = new ShadowStore(join(dir, 'state.db'));
  const quiet = { log: () => undefined };
  const shadow = new NetdevShadow(store, quiet, {
    snapshot: (name) => Promise.resolve({ identity: { ifindex: 0, name, bus: null }, keys: {} }),
    listDevices: () => Promise.resolve([]),
  });
  let seen = 0;
  let started = 0;
  await new Promise<void>((resolve) => {
    const ingest = new Ingest({
      marker: NET_SYNC_MARKER,
      program: stream,
      bpftrace: repoPath('test/unit/fake/bpftrace.sh'),
      probesLive: () => Promise.resolve(),
      logger: quiet,
      onAttached: () => (started = performance.now()),
      onEvents: (batch) => {
        shadow.applyBatch(batch);
        seen += batch.length;
        if (seen >= expected) void ingest.stop().then(resolve);
      },
      onGap: () => undefined,
    });
    void ingest.start();
  });
  const seconds = (performance.now() - started) / 1000;
  await shadow.settled();
  const rows = store.entryCount();
  store.close();
  console.log(JSON.stringify({ events: seen, seconds, maxRssKb: process.resourceUsage().maxRSS, rows }));
}

const [stream, expected, dir] = process.argv.slice(2);
if (!stream || !expected || !dir) throw new Error('usage: ingest-child.js FILE EVENTS STATE_DIR');
await measure(stream, Number(expected), dir);
