// The ingest supervisor with a stand-in for bpftrace (test/unit/fake/bpftrace.sh)
// that replays bpftrace output: batching, malformed lines, lost events, and
// restart with back-off when bpftrace exits.
import { appendFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NET_SYNC_MARKER } from '../../../daemon/classes/net/net-declaration.js';
import { Ingest, IngestSyncError, parseCpuList, type MarkerProcess } from '../../../daemon/core/ingest.js';
import type { LogFields, Priority } from '../../../daemon/service/log.js';
import type { TapEvent } from '../../../daemon/core/tap-record.js';

const FAKE = new URL('../fake/bpftrace.sh', import.meta.url).pathname;
// The stand-in attaches nothing real: its probes count as live at once.
const probesLive = (): Promise<void> => Promise.resolve();
const ATTACHED = '{"type": "attached_probes", "data": {"probes": 3}}';
const ev = (n: number): string => JSON.stringify({ type: 'printf', data: `ev=mtu ifindex=2 name=eth0 mtu=${1400 + n} ret=0 pid=7 ts=${n} comm=ip\n` });

describe('ingest', () => {
  let dir: string;
  let logs: { priority: Priority; message: string; fields?: LogFields }[];
  const logger = { log: (priority: Priority, message: string, fields?: LogFields) => void logs.push({ priority, message, fields }) };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ingest-'));
    logs = [];
    delete process.env['FAKE_BPFTRACE_EXIT'];
    delete process.env['FAKE_BPFTRACE_STDERR'];
    delete process.env['FAKE_BPFTRACE_FOLLOW'];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  function program(lines: string[]): string {
    const file = join(dir, 'out.jsonl');
    writeFileSync(file, lines.join('\n') + '\n');
    return file;
  }

  it('attaches, batches events, skips and reports malformed lines and lost events', async () => {
    const batches: TapEvent[][] = [];
    const gaps: string[] = [];
    const ingest = new Ingest({ marker: NET_SYNC_MARKER,
      program: program([ATTACHED, ev(1), 'garbage', ev(2), '{"type": "lost_events", "data": {"events": 5}}', ev(3), '{"type":"printf","data":"ev=mtu pid=x"}']),
      bpftrace: FAKE,
      probesLive,
      logger,
      onEvents: (b) => batches.push(b),
      onGap: (why) => gaps.push(why),
    });
    expect(await ingest.start()).toBe(3);
    await new Promise((r) => setTimeout(r, 300));
    await ingest.stop();
    expect(batches.flat().map((e) => e.nums['mtu'])).toEqual([1401, 1402, 1403]);
    // Events before a loss are handed on before the loss is reported.
    expect(batches.length).toBeGreaterThanOrEqual(2);
    expect(gaps).toEqual(['5 tap events lost']);
    expect(ingest.stats).toMatchObject({ events: 3, malformed: 2, lost: 5, restarts: 0, probes: 3, state: 'stopped' });
    expect(logs.filter((l) => l.message.startsWith('skipped unreadable tap output'))).toHaveLength(2);
  });

  it('reports the loss bpftrace recorded in the guest and skips a line cut short, keeping every readable event', async () => {
    // Recorded by test/vm/guest/record-lost.sh: bpftrace stopped while a burst of MTU changes overflowed its buffer.
    const recorded = readFileSync(new URL('../../fixtures/netdev/e1000-lost-events.jsonl', import.meta.url), 'utf8').split('\n').filter((l) => l !== '');
    const lastEvent = recorded.filter((l) => l.includes('"printf"')).at(-1)!;
    // bpftrace killed in the middle of writing a line leaves half of it.
    const lines = [...recorded, lastEvent.slice(0, Math.floor(lastEvent.length / 2))];
    const events: TapEvent[] = [];
    const gaps: string[] = [];
    const ingest = new Ingest({ marker: NET_SYNC_MARKER, program: program(lines), bpftrace: FAKE, probesLive, logger, onEvents: (b) => events.push(...b), onGap: (w) => gaps.push(w) });
    await ingest.start();
    await new Promise((r) => setTimeout(r, 300));
    await ingest.stop();
    const lost = JSON.parse(recorded.find((l) => l.includes('lost_events'))!) as { data: { events: number } };
    expect(lost.data.events).toBeGreaterThan(0);
    expect(gaps).toEqual([`${lost.data.events} tap events lost`]);
    expect(events).toHaveLength(recorded.filter((l) => l.includes('"printf"')).length);
    expect(events.every((e) => e.call === 'mtu' || e.call === 'notifier' || e.call === 'rtnl_hint')).toBe(true);
    expect(ingest.stats).toMatchObject({ lost: lost.data.events, malformed: 1 });
  });

  it('restarts bpftrace with growing back-off when it exits, and reports the gap', async () => {
    process.env['FAKE_BPFTRACE_EXIT'] = '1';
    process.env['FAKE_BPFTRACE_STDERR'] = 'ERROR: something broke';
    const gaps: string[] = [];
    const ingest = new Ingest({ marker: NET_SYNC_MARKER, program: program([ATTACHED, ev(1)]), bpftrace: FAKE,
      probesLive, logger, onEvents: () => undefined, onGap: (w) => gaps.push(w), initialBackoffMs: 50, maxBackoffMs: 200 });
    await ingest.start();
    await new Promise((r) => setTimeout(r, 1000));
    await ingest.stop();
    expect(ingest.stats.restarts).toBeGreaterThanOrEqual(3);
    expect(gaps.filter((g) => g === 'taps were restarted').length).toBeGreaterThanOrEqual(2);
    const restarts = logs.filter((l) => l.message.includes('restarting the taps'));
    expect(restarts[0]?.message).toBe('bpftrace exited (status 1): ERROR: something broke; restarting the taps in 0.05 s');
    expect(restarts[1]?.message).toContain('in 0.1 s');
    expect(restarts.at(-1)?.message).toContain('in 0.2 s');
    expect(ingest.stats.lastError).toContain('something broke');
  });

  it('fails start-up clearly when bpftrace cannot attach', async () => {
    process.env['FAKE_BPFTRACE_EXIT'] = '1';
    process.env['FAKE_BPFTRACE_STDERR'] = 'ERROR: kprobe attach failed';
    const ingest = new Ingest({ marker: NET_SYNC_MARKER, program: program([]), bpftrace: FAKE,
      probesLive, logger, onEvents: () => undefined, onGap: () => undefined, initialBackoffMs: 60_000 });
    await expect(ingest.start()).rejects.toThrow('bpftrace exited before attaching (status 1): ERROR: kprobe attach failed');
    await ingest.stop();
  });
});

describe('ingest.sync: a barrier through the per-CPU output buffers', () => {
  let dir: string;
  let logs: string[];
  const logger = { log: (_p: Priority, message: string) => void logs.push(message) };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'ingest-sync-'));
    logs = [];
    process.env['FAKE_BPFTRACE_FOLLOW'] = '1';
  });
  afterEach(() => {
    delete process.env['FAKE_BPFTRACE_FOLLOW'];
    rmSync(dir, { recursive: true, force: true });
  });

  /** What the marker request for SYNC_MARKER_DEVICE looks like in bpftrace's output (an ethtool request that named no device). */
  const marker = (pid: number, ts: number): string =>
    JSON.stringify({ type: 'printf', data: `ev=ethtool_nl_nodev netns=4026531840 ret=-19 kthread=0 pid=${pid} ts=${ts} comm=ethtool\n` });
  const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

  /** bpftrace's output as a file the fake follows; markers are "run" by the test, which writes their events when it likes. */
  function rig(cpus: number[], startMarker: (cpu: number) => MarkerProcess) {
    const out = join(dir, 'out.jsonl');
    writeFileSync(out, `${ATTACHED}\n${ev(1)}\n`);
    const handed: TapEvent[] = [];
    const ingest = new Ingest({ marker: NET_SYNC_MARKER, program: out, bpftrace: FAKE, probesLive, logger, onEvents: (b) => handed.push(...b), onGap: () => undefined, cpus: () => cpus, startMarker });
    return { ingest, handed, print: (...lines: string[]) => appendFileSync(out, lines.map((l) => `${l}\n`).join('')) };
  }
  const running = (pid: number): MarkerProcess => ({ pid, exited: new Promise(() => undefined) });

  it('resolves once a marker has come out of every CPU, after every event printed before them is handed on', async () => {
    const started: number[] = [];
    const r = rig([0, 1], (cpu) => {
      started.push(cpu);
      return running(9000 + cpu);
    });
    await r.ingest.start();
    let synced = false;
    const sync = r.ingest.sync().then(() => (synced = true));
    expect(started).toEqual([0, 1]);
    // CPU 0's buffer is read first: its marker comes out before an event CPU 1 printed earlier.
    r.print(marker(9000, 20), ev(2));
    await sleep(300);
    expect(synced, 'resolved with CPU 1 not drained').toBe(false);
    r.print(ev(3), marker(9001, 21), ev(4));
    await sync;
    // Everything before the last marker, and nothing of the markers themselves.
    expect(r.handed.map((e) => e.nums['mtu'])).toEqual(expect.arrayContaining([1401, 1402, 1403]));
    expect(r.handed.some((e) => e.call === 'ethtool_nl_nodev')).toBe(false);
    await sleep(200);
    await r.ingest.stop();
    expect(r.handed.map((e) => e.nums['mtu'])).toEqual([1401, 1402, 1403, 1404]);
  });

  it('takes only its own markers: one from another process, or a pending sync of its own, does not count', async () => {
    let pid = 9100;
    const r = rig([0], () => running(pid++));
    await r.ingest.start();
    const first = r.ingest.sync();
    const second = r.ingest.sync();
    let done: string[] = [];
    void first.then(() => done.push('first'));
    void second.then(() => done.push('second'));
    // Someone else's request for no device, then the second sync's marker.
    r.print(marker(4242, 30), marker(9101, 31));
    await second;
    expect(done).toEqual(['second']);
    r.print(marker(9100, 32));
    await first;
    expect(done).toEqual(['second', 'first']);
    // Not a marker while no sync waits: handed on as any event.
    done = [];
    r.print(marker(9100, 33));
    await sleep(300);
    expect(r.handed.filter((e) => e.call === 'ethtool_nl_nodev').map((e) => e.pid)).toEqual([4242, 9100]);
    await r.ingest.stop();
  });

  it('fails, saying why, when the taps are not attached, a marker cannot run on its CPU, or a marker does not come back', async () => {
    const idle = new Ingest({ marker: NET_SYNC_MARKER, program: join(dir, 'none'), bpftrace: FAKE, probesLive, logger, onEvents: () => undefined, onGap: () => undefined });
    await expect(idle.sync()).rejects.toThrow(new IngestSyncError('the taps are not attached (stopped)'));

    const pinned = rig([0, 1], (cpu) =>
      cpu === 0
        ? running(9200)
        : { pid: 9201, exited: Promise.resolve({ exitCode: 1, stderr: "taskset: failed to set pid 9201's affinity: Invalid argument\n" }) },
    );
    await pinned.ingest.start();
    await expect(pinned.ingest.sync()).rejects.toThrow("cannot run a marker on CPU 1: taskset: failed to set pid 9201's affinity: Invalid argument");
    await pinned.ingest.stop();

    // The marker request ran and exited (ethtool says there is no such device), but its event never came out.
    const lost = rig([0, 1, 2], (cpu) => ({ pid: 9300 + cpu, exited: Promise.resolve({ exitCode: 1, stderr: 'netlink error: No such device\n' }) }));
    await lost.ingest.start();
    const sync = lost.ingest.sync(400);
    lost.print(marker(9301, 40));
    await expect(sync).rejects.toThrow('no marker came back from CPU 0, 2 within 400 ms');
    // Stopping the taps ends a sync that waits.
    const waiting = expect(lost.ingest.sync()).rejects.toThrow('the taps are stopping');
    await lost.ingest.stop();
    await waiting;
  });

  it('reads the kernel CPU list format', () => {
    expect(parseCpuList('0-3,6\n')).toEqual([0, 1, 2, 3, 6]);
    expect(parseCpuList('0')).toEqual([0]);
    expect(parseCpuList('0,2-3')).toEqual([0, 2, 3]);
    for (const bad of ['', 'x', '3-1', '0-', '1,,2']) expect(parseCpuList(bad), JSON.stringify(bad)).toBeNull();
  });
});
