// The shadow store on a real filesystem that fills up: a 256 KiB tmpfs
// (mounted here, so the test needs root with CAP_SYS_ADMIN; without it the
// test is skipped and says so). The network shadow ingests a recorded e1000
// session while the filesystem is full: nothing throws, the shadow follows
// every event, the store says it is degraded; once space is freed the retry
// writes the shadow to the file and says so.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmdirSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it, onTestFinished } from 'vitest';
import { parseBpftraceLine } from '../../../daemon/core/bpftrace-output.js';
import { NetdevShadow } from '../../../daemon/classes/net/netdev-shadow.js';
import type { DeviceSnapshot } from '../../../daemon/classes/net/netdev-snapshot.js';
import { ShadowStore } from '../../../daemon/core/shadow-store.js';
import type { TapEvent } from '../../../daemon/core/tap-record.js';
import { RECORDED_NETNS } from '../../fixtures/netns.js';
import type { LogFields, Priority } from '../../../daemon/service/log.js';

const mountPoint = mkdtempSync(join(tmpdir(), 'store-full-fs-'));
let mountError: string | null = null;
try {
  execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k,mode=0700', 'tmpfs', mountPoint], { stdio: 'pipe' });
} catch (err) {
  mountError = err instanceof Error ? err.message.split('\n')[0]! : String(err);
  console.warn(`skipping the full-filesystem test: cannot mount a tmpfs on ${mountPoint} (needs root with CAP_SYS_ADMIN): ${mountError}`);
}

afterAll(() => {
  // Lazily: a store a failed test left open must not keep the mount.
  if (mountError === null) execFileSync('umount', ['--lazy', mountPoint], { stdio: 'pipe' });
  rmdirSync(mountPoint);
});

function recordedEvents(driver: string): TapEvent[] {
  const text = readFileSync(new URL(`../../fixtures/netdev/${driver}-session.jsonl`, import.meta.url), 'utf8');
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(parseBpftraceLine)
    .flatMap((m) => (m.kind === 'event' ? [m.event] : []));
}

function recordingLogger() {
  const lines: { priority: Priority; message: string; fields?: LogFields }[] = [];
  return { lines, log: (priority: Priority, message: string, fields?: LogFields) => void lines.push({ priority, message, fields }) };
}

/** Writes a file until the filesystem has no room left. */
function fill(path: string): void {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(4096, 0xa5);
  try {
    for (;;) writeSync(fd, chunk);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
  } finally {
    closeSync(fd);
  }
}

describe.skipIf(mountError !== null)(`shadow store on a full filesystem (a tmpfs on ${mountPoint})`, () => {
  it('keeps ingesting while the filesystem is full, says it is degraded, and persists once space is freed', async () => {
    const events = recordedEvents('e1000');
    const reg = events.find((e) => e.call === 'register' && e.strs['driver'] === 'e1000')!;
    const bus = reg.strs['bus']!;
    const path = join(mountPoint, 'state.db');
    const logger = recordingLogger();
    const store = new ShadowStore(path, { logger, retryMs: 60_000 });
    onTestFinished(() => {
      if (store.database.open) store.database.close();
    });
    let reads = 0;
    // Every read finds a new ring size, with a long value, so the file must grow.
    const snapshot = (name: string): Promise<DeviceSnapshot> =>
      Promise.resolve({ identity: { ifindex: 2, name, bus }, keys: { rings: { rx: ++reads, rx_mini: null, rx_jumbo: null, tx: 256 }, ifalias: 'x'.repeat(3000) + String(reads) } });
    const shadow = new NetdevShadow(store, logger, { netns: RECORDED_NETNS, snapshot, listDevices: () => Promise.resolve([]), refreshDelayMs: 1 });

    const half = Math.floor(events.length / 2);
    shadow.applyBatch(events.slice(0, half));
    await shadow.settled();
    expect(store.health.status().state).toBe('ok');

    const filler = join(mountPoint, 'filler');
    fill(filler);
    // The rest of the session, in bursts as bpftrace hands them on: none throws.
    for (let i = half; i < events.length; i += 16) {
      expect(() => shadow.applyBatch(events.slice(i, i + 16))).not.toThrow();
      await new Promise((resolve) => setTimeout(resolve, 2));
    }
    await shadow.settled();
    // The re-reads' long values needed room the file did not have.
    expect(store.health.status()).toMatchObject({ state: 'degraded', code: 'SQLITE_FULL' });
    // Writes while degraded go on in memory too.
    const id = `bus:${bus}`;
    for (let i = 0; i < 10; i++) store.setEntry(id, `filler${i}`, 'y'.repeat(4000), { pid: 1, comm: 'test' }, 1);

    const status = store.health.status();
    expect(status).toMatchObject({ state: 'degraded', path, code: expect.stringMatching(/^SQLITE_(FULL|IOERR)/) as unknown });
    expect(status.pending).toBeGreaterThan(0);
    const errs = logger.lines.filter((l) => l.priority === 'err' && l.fields?.['SHADOWD_COMPONENT'] === 'store');
    expect(errs).toHaveLength(1);
    expect(errs[0]?.fields).toMatchObject({ SHADOWD_STATE_DB: path });

    // The shadow followed the whole session.
    const show = shadow.show(shadow.status()[0]!.name);
    const mtus = events.filter((e) => e.call === 'mtu' && e.nums['ret'] === 0);
    expect(show.entries.find((e) => e.key === 'mtu')?.value).toBe(mtus.at(-1)!.nums['mtu']);
    const inMemory = store.entries(id);

    rmSync(filler);
    expect(store.health.retry()).toBe(true);
    expect(store.health.status()).toMatchObject({ state: 'ok', pending: 0 });
    expect(logger.lines.filter((l) => l.priority === 'notice' && /written again/.test(l.message))).toHaveLength(1);
    store.close();

    const reopened = new ShadowStore(path);
    expect(reopened.entries(id)).toEqual(inMemory);
    reopened.close();
  }, 30_000);
});
