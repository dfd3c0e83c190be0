import { randomBytes } from 'node:crypto';
import { lstatSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import {
  escapeLabelValue,
  formatMetrics,
  formatValue,
  Metrics,
  MetricsWriter,
  recordFinished,
  shadowEntriesByDevice,
  writeTextfile,
  type MetricsSnapshot,
} from '../../../daemon/service/metrics.js';
import type { RecoveryRecord } from '../../../daemon/core/recovery-history.js';

const EMPTY: MetricsSnapshot = {
  up: true,
  startTimeSeconds: 1764258000.5,
  tapEventsLost: 0,
  statePersisted: true,
  shadowEntries: new Map(),
  recoveries: [],
  durationBuckets: [0, 0, 0, 0, 0, 0, 0, 0],
  durationSum: 0,
};

describe('formatMetrics', () => {
  it('writes every family with HELP and TYPE, even with no recoveries yet', () => {
    expect(formatMetrics(EMPTY)).toBe(`# HELP shadowd_up Whether shadowd is running (0 is written when it stops).
# TYPE shadowd_up gauge
shadowd_up 1
# HELP shadowd_start_time_seconds When shadowd started, in seconds since the epoch.
# TYPE shadowd_start_time_seconds gauge
shadowd_start_time_seconds 1764258000.5
# HELP shadowd_recoveries_total Driver recoveries since shadowd started, by device class, device, driver and result.
# TYPE shadowd_recoveries_total counter
# HELP shadowd_recovery_duration_seconds Time from the start of a recovery to its end.
# TYPE shadowd_recovery_duration_seconds histogram
shadowd_recovery_duration_seconds_bucket{le="0.25"} 0
shadowd_recovery_duration_seconds_bucket{le="0.5"} 0
shadowd_recovery_duration_seconds_bucket{le="1"} 0
shadowd_recovery_duration_seconds_bucket{le="2"} 0
shadowd_recovery_duration_seconds_bucket{le="4"} 0
shadowd_recovery_duration_seconds_bucket{le="8"} 0
shadowd_recovery_duration_seconds_bucket{le="16"} 0
shadowd_recovery_duration_seconds_bucket{le="+Inf"} 0
shadowd_recovery_duration_seconds_sum 0
shadowd_recovery_duration_seconds_count 0
# HELP shadowd_shadow_entries Entries in each device's shadow log (its reduced configuration log).
# TYPE shadowd_shadow_entries gauge
# HELP shadowd_tap_events_lost_total Tap events the kernel dropped before shadowd read them.
# TYPE shadowd_tap_events_lost_total counter
shadowd_tap_events_lost_total 0
# HELP shadowd_state_persisted Whether the shadow reaches its state file (0: degraded, changes wait in memory).
# TYPE shadowd_state_persisted gauge
shadowd_state_persisted 1
`);
  });

  it('writes series sorted, with cumulative buckets and escaped label values', () => {
    const text = formatMetrics({
      ...EMPTY,
      up: false,
      tapEventsLost: 17,
      statePersisted: false,
      shadowEntries: new Map([
        [
          'net',
          new Map([
            ['eth1', 12],
            ['eth0', 40],
          ]),
        ],
        ['block', new Map([['sda', 9]])],
      ]),
      recoveries: [
        { cls: 'net', device: 'eth0', driver: 'e1000', result: 'recovered', count: 2 },
        { cls: 'net', device: 'eth0', driver: 'e1000', result: 'gave-up', count: 1 },
        { cls: 'net', device: 'we"ird\\na\nme', driver: 'x', result: 'failed', count: 1 },
      ],
      durationBuckets: [0, 1, 2, 0, 0, 0, 0, 1],
      durationSum: 21.75,
    });
    const samples = text.split('\n').filter((l) => l && !l.startsWith('#'));
    expect(samples).toEqual([
      'shadowd_up 0',
      'shadowd_start_time_seconds 1764258000.5',
      'shadowd_recoveries_total{class="net",device="eth0",driver="e1000",result="gave-up"} 1',
      'shadowd_recoveries_total{class="net",device="eth0",driver="e1000",result="recovered"} 2',
      'shadowd_recoveries_total{class="net",device="we\\"ird\\\\na\\nme",driver="x",result="failed"} 1',
      'shadowd_recovery_duration_seconds_bucket{le="0.25"} 0',
      'shadowd_recovery_duration_seconds_bucket{le="0.5"} 1',
      'shadowd_recovery_duration_seconds_bucket{le="1"} 3',
      'shadowd_recovery_duration_seconds_bucket{le="2"} 3',
      'shadowd_recovery_duration_seconds_bucket{le="4"} 3',
      'shadowd_recovery_duration_seconds_bucket{le="8"} 3',
      'shadowd_recovery_duration_seconds_bucket{le="16"} 3',
      'shadowd_recovery_duration_seconds_bucket{le="+Inf"} 4',
      'shadowd_recovery_duration_seconds_sum 21.75',
      'shadowd_recovery_duration_seconds_count 4',
      'shadowd_shadow_entries{class="block",device="sda"} 9',
      'shadowd_shadow_entries{class="net",device="eth0"} 40',
      'shadowd_shadow_entries{class="net",device="eth1"} 12',
      'shadowd_tap_events_lost_total 17',
      'shadowd_state_persisted 0',
    ]);
  });

  it('follows the text format line grammar', () => {
    const text = formatMetrics(new Metrics(0).snapshot());
    expect(text.endsWith('\n')).toBe(true);
    for (const line of text.trimEnd().split('\n')) {
      expect(line).toMatch(/^(# (HELP|TYPE) [a-zA-Z_:][a-zA-Z0-9_:]* .+|[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? \S+)$/);
    }
  });
});

describe('escapeLabelValue and formatValue', () => {
  it('escape backslash, double quote and newline only', () => {
    expect(escapeLabelValue('a\\b"c\nd\te')).toBe('a\\\\b\\"c\\nd\te');
  });
  it('spell the special floats the Prometheus way', () => {
    expect([Infinity, -Infinity, NaN, 0.25, 3].map(formatValue)).toEqual(['+Inf', '-Inf', 'NaN', '0.25', '3']);
  });
});

describe('Metrics', () => {
  it('counts recoveries by device, driver and result, and fills the histogram by upper bound', () => {
    const m = new Metrics(1_764_258_000_000);
    m.recordRecovery('net', 'eth0', 'e1000', 'recovered', 0.25); // on a bound: that bucket
    m.recordRecovery('net', 'eth0', 'e1000', 'recovered', 3);
    m.recordRecovery('net', 'eth0', 'e1000', 'failed', 100);
    m.recordRecovery('net', 'eth1', null, 'gave-up', null); // never ran: counted, not timed
    m.setShadowEntries('net', [['eth0', 33]]);
    m.setTapEventsLost(5);
    const s = m.snapshot();
    expect(s.startTimeSeconds).toBe(1764258000);
    expect(s.recoveries).toEqual([
      { cls: 'net', device: 'eth0', driver: 'e1000', result: 'recovered', count: 2 },
      { cls: 'net', device: 'eth0', driver: 'e1000', result: 'failed', count: 1 },
      { cls: 'net', device: 'eth1', driver: 'unknown', result: 'gave-up', count: 1 },
    ]);
    expect(s.durationBuckets).toEqual([1, 0, 0, 0, 1, 0, 0, 1]);
    expect(s.durationSum).toBe(103.25);
    expect([...(s.shadowEntries.get('net') ?? [])]).toEqual([['eth0', 33]]);
    expect(s.tapEventsLost).toBe(5);
    expect(s.statePersisted).toBe(true);
    m.setStatePersisted(false);
    expect(m.snapshot().statePersisted).toBe(false);
    expect(formatMetrics(m.snapshot())).toContain('\nshadowd_state_persisted 0\n');
    // Snapshots are copies.
    m.recordRecovery('net', 'eth0', 'e1000', 'recovered', 1);
    expect(s.recoveries[0]!.count).toBe(2);
    m.setShadowEntries('net', []);
    expect(m.snapshot().shadowEntries.get('net')?.size).toBe(0);
  });
});

describe('writeTextfile', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shadowd-metrics-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('replaces the file whole, world-readable, leaving no temporary file', async () => {
    const path = join(dir, 'shadowd.prom');
    await writeTextfile(path, 'shadowd_up 1\n');
    await writeTextfile(path, 'shadowd_up 0\n');
    expect(readFileSync(path, 'utf8')).toBe('shadowd_up 0\n');
    expect(statSync(path).mode & 0o777).toBe(0o644);
    expect(readdirSync(dir)).toEqual(['shadowd.prom']);
  });

  it('fails, leaving nothing behind, when the directory does not exist', async () => {
    await expect(writeTextfile(join(dir, 'none', 'shadowd.prom'), 'x')).rejects.toThrow(/ENOENT/);
    expect(readdirSync(dir)).toEqual(['shadowd.prom']);
  });

  it('never writes through a symlink planted at a temporary name, nor guessable ones', async () => {
    const sub = mkdtempSync(join(dir, 'planted-'));
    const path = join(sub, 'shadowd.prom');
    const victim = join(sub, 'victim');
    writeFileSync(victim, 'precious\n');
    // The names a pid-and-counter scheme would use next.
    for (let n = 1; n <= 50; n++) symlinkSync(victim, `${path}.${process.pid}.${n}.tmp`);
    await writeTextfile(path, 'shadowd_up 1\n');
    expect(readFileSync(path, 'utf8')).toBe('shadowd_up 1\n');
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(lstatSync(path).isSymbolicLink()).toBe(false);
    // Even a name guessed right: the write fails (O_EXCL) and the link and its target stay as they were.
    symlinkSync(victim, `${path}.guessed.tmp`);
    await expect(writeTextfile(path, 'shadowd_up 0\n', () => 'guessed')).rejects.toThrow(/EEXIST/);
    expect(readFileSync(victim, 'utf8')).toBe('precious\n');
    expect(lstatSync(`${path}.guessed.tmp`).isSymbolicLink()).toBe(true);
    expect(readFileSync(path, 'utf8')).toBe('shadowd_up 1\n');
  });

  it('gives each write its own unguessable temporary name', async () => {
    const sub = mkdtempSync(join(dir, 'names-'));
    const path = join(sub, 'shadowd.prom');
    const names: string[] = [];
    const spy = (): string => {
      const s = randomBytes(8).toString('hex');
      names.push(s);
      return s;
    };
    await Promise.all([writeTextfile(path, 'a\n', spy), writeTextfile(path, 'b\n', spy)]);
    expect(new Set(names).size).toBe(2);
    expect(readdirSync(sub)).toEqual(['shadowd.prom']);
  });
});

describe('recordFinished (the recovery manager hook)', () => {
  const base: RecoveryRecord = {
    id: 'r1-0',
    cls: 'net',
    device: 'eth0',
    driver: 'e1000',
    trigger: 'tx-stall',
    detail: '',
    startedAt: 1_000_000,
    endedAt: 1_000_900,
    result: 'recovered',
    phases: { restart: 850, total: 900 },
    steps: [],
    error: null,
    merged: 0,
    method: 'reprobe',
    module: null,
  };

  it('counts each ended recovery by device, driver and result; only those that ran a restart are timed', () => {
    const m = new Metrics(0);
    recordFinished(m, base);
    recordFinished(m, { ...base, id: 'r1-1', result: 'failed', endedAt: 1_003_000, phases: { restart: 2000, total: 3000 } });
    recordFinished(m, { ...base, id: 'r1-2', result: 'gave-up', endedAt: 1_000_010, phases: { total: 10 } });
    recordFinished(m, { ...base, id: 'r1-3', result: 'interrupted', phases: { wait: 5, total: 5 } });
    recordFinished(m, { ...base, id: 'r1-4', device: 'eth1', driver: null });
    // A manual replay is not a recovery.
    recordFinished(m, { ...base, id: 'r1-5', trigger: 'replay', result: 'replayed', phases: { check: 30, total: 30 } });
    const s = m.snapshot();
    expect(s.recoveries.map((r) => `${r.device}/${r.driver}/${r.result}=${r.count}`).sort()).toEqual([
      'eth0/e1000/failed=1',
      'eth0/e1000/gave-up=1',
      'eth0/e1000/interrupted=1',
      'eth0/e1000/recovered=1',
      'eth1/unknown/recovered=1',
    ]);
    // 0.9 s twice (le=1), 3 s once (le=4).
    expect(s.durationBuckets).toEqual([0, 0, 2, 0, 1, 0, 0, 0]);
    expect(s.durationSum).toBeCloseTo(4.8);
  });
});

describe('shadowEntriesByDevice', () => {
  it('labels by name, the present device over the kept shadow of an absent one', () => {
    expect(
      shadowEntriesByDevice([
        { name: 'eth0', health: 'absent', keys: 3 },
        { name: 'eth0', health: 'ok', keys: 20 },
        { name: 'eth1', health: 'absent', keys: 7 },
      ]),
    ).toEqual(
      new Map([
        ['eth0', 20],
        ['eth1', 7],
      ]),
    );
  });
});

describe('MetricsWriter', () => {
  const logs: string[] = [];
  const logger = { log: (p: string, m: string) => void logs.push(`${p} ${m}`) };
  afterEach(() => {
    vi.useRealTimers();
    logs.length = 0;
  });

  /** A write that waits until released, recording what it was given. */
  function slowWrites() {
    const writes: { path: string; text: string }[] = [];
    const waiting: (() => void)[] = [];
    let active = 0;
    let maxActive = 0;
    const write = async (path: string, text: string): Promise<void> => {
      active++;
      maxActive = Math.max(maxActive, active);
      await new Promise<void>((resolve) => waiting.push(resolve));
      writes.push({ path, text });
      active--;
    };
    return { writes, write, release: () => waiting.splice(0).forEach((r) => r()), maxActive: () => maxActive };
  }

  it('writes at once, then every interval, never two at a time, and shadowd_up 0 at stop', async () => {
    vi.useFakeTimers();
    const io = slowWrites();
    const metrics = new Metrics(0);
    let refreshes = 0;
    const w = new MetricsWriter({ metrics, logger, write: io.write, refresh: () => void refreshes++ });
    w.configure('/m/shadowd.prom', 15);
    // The first write hangs past three ticks: they are skipped, not queued.
    await vi.advanceTimersByTimeAsync(45_000);
    expect(io.writes).toHaveLength(0);
    io.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(io.writes).toHaveLength(1);
    expect(io.writes[0]?.text).toContain('\nshadowd_up 1\n');
    metrics.recordRecovery('net', 'eth0', 'e1000', 'recovered', 0.9);
    await vi.advanceTimersByTimeAsync(15_000);
    io.release();
    await vi.advanceTimersByTimeAsync(0);
    expect(io.writes).toHaveLength(2);
    expect(io.writes[1]?.text).toContain('shadowd_recoveries_total{class="net",device="eth0",driver="e1000",result="recovered"} 1');
    expect(io.maxActive()).toBe(1);
    expect(refreshes).toBe(2);
    // stop: a tick under way finishes first, then the last write says the daemon is down.
    await vi.advanceTimersByTimeAsync(15_000);
    const stopped = w.stop();
    io.release();
    await vi.advanceTimersByTimeAsync(0);
    io.release();
    await stopped;
    expect(io.writes.map((x) => /shadowd_up (\d)/.exec(x.text)?.[1])).toEqual(['1', '1', '1', '0']);
    expect(io.maxActive()).toBe(1);
    // No more writes after stop, and configure is ignored.
    w.configure('/m/other.prom', 1);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(io.writes).toHaveLength(4);
  });

  it('on a reload: a new file replaces the old one (removed), none stops the writes', async () => {
    vi.useFakeTimers();
    const written: string[] = [];
    const removed: string[] = [];
    const w = new MetricsWriter({
      metrics: new Metrics(0),
      logger,
      write: (path) => {
        written.push(path);
        return Promise.resolve();
      },
      remove: (path) => {
        removed.push(path);
        return Promise.resolve();
      },
    });
    w.configure(null, 15);
    w.configure('/a/shadowd.prom', 15);
    w.configure('/a/shadowd.prom', 15);
    await w.settled();
    expect(written).toEqual(['/a/shadowd.prom']);
    w.configure('/b/shadowd.prom', 5);
    await w.settled();
    await vi.advanceTimersByTimeAsync(5_000);
    expect(removed).toEqual(['/a/shadowd.prom']);
    expect(written).toEqual(['/a/shadowd.prom', '/b/shadowd.prom', '/b/shadowd.prom']);
    w.configure(null, 5);
    await w.settled();
    await vi.advanceTimersByTimeAsync(60_000);
    expect(removed).toEqual(['/a/shadowd.prom', '/b/shadowd.prom']);
    expect(written).toHaveLength(3);
    await w.stop();
    expect(written).toHaveLength(3);
  });

  it('logs a failing write once, not at every interval, and when it works again', async () => {
    vi.useFakeTimers();
    let fail = true;
    const w = new MetricsWriter({
      metrics: new Metrics(0),
      logger,
      write: () => (fail ? Promise.reject(new Error('EACCES: permission denied')) : Promise.resolve()),
    });
    w.configure('/m/shadowd.prom', 1);
    await vi.advanceTimersByTimeAsync(3_000);
    expect(logs.filter((l) => l.startsWith('warning'))).toEqual(['warning cannot write the metrics textfile /m/shadowd.prom: EACCES: permission denied']);
    expect(logs.filter((l) => l.startsWith('debug'))).toHaveLength(3);
    fail = false;
    await vi.advanceTimersByTimeAsync(1_000);
    expect(logs.at(-1)).toBe('info metrics textfile /m/shadowd.prom written again');
    await w.stop();
  });

  it('writes a real file that node_exporter can read, and removes it when unconfigured', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shadowd-metrics-writer-'));
    try {
      const path = join(dir, 'shadowd.prom');
      const w = new MetricsWriter({ metrics: new Metrics(1_764_258_000_000), logger });
      w.configure(path, 3600);
      await w.settled();
      expect(readFileSync(path, 'utf8')).toContain('shadowd_start_time_seconds 1764258000\n');
      await w.stop();
      expect(readFileSync(path, 'utf8')).toContain('\nshadowd_up 0\n');
      const w2 = new MetricsWriter({ metrics: new Metrics(0), logger });
      w2.configure(path, 3600);
      w2.configure(null, 3600);
      await w2.settled();
      expect(readdirSync(dir)).toEqual([]);
      await w2.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
