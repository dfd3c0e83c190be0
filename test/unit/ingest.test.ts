// The ingest supervisor with a stand-in for bpftrace (test/unit/fake/bpftrace.sh)
// that replays bpftrace output: batching, malformed lines, lost events, and
// restart with back-off when bpftrace exits.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Ingest } from '../../daemon/ingest.js';
import type { LogFields, Priority } from '../../daemon/log.js';
import type { TapEvent } from '../../daemon/tap-record.js';

const FAKE = new URL('./fake/bpftrace.sh', import.meta.url).pathname;
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
    const ingest = new Ingest({
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
    const recorded = readFileSync(new URL('../fixtures/netdev/e1000-lost-events.jsonl', import.meta.url), 'utf8').split('\n').filter((l) => l !== '');
    const lastEvent = recorded.filter((l) => l.includes('"printf"')).at(-1)!;
    // bpftrace killed in the middle of writing a line leaves half of it.
    const lines = [...recorded, lastEvent.slice(0, Math.floor(lastEvent.length / 2))];
    const events: TapEvent[] = [];
    const gaps: string[] = [];
    const ingest = new Ingest({ program: program(lines), bpftrace: FAKE, probesLive, logger, onEvents: (b) => events.push(...b), onGap: (w) => gaps.push(w) });
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
    const ingest = new Ingest({ program: program([ATTACHED, ev(1)]), bpftrace: FAKE,
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
    const ingest = new Ingest({ program: program([]), bpftrace: FAKE,
      probesLive, logger, onEvents: () => undefined, onGap: () => undefined, initialBackoffMs: 60_000 });
    await expect(ingest.start()).rejects.toThrow('bpftrace exited before attaching (status 1): ERROR: kprobe attach failed');
    await ingest.stop();
  });
});
