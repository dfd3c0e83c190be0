// Metrics for fleets, in Prometheus's text exposition format (version 0.0.4),
// written to a file for node_exporter's textfile collector: no listening
// socket in the daemon, and node_exporter, already on the machine, serves it.
import { randomBytes } from 'node:crypto';
import { constants as fsConstants } from 'node:fs';
import { open, rename, unlink } from 'node:fs/promises';
import type { Logger } from './log.js';
import type { RecoveryRecord } from '../core/recovery-history.js';

/** Upper bounds of the recovery duration histogram, in seconds (+Inf follows). */
export const DURATION_BUCKETS: readonly number[] = [0.25, 0.5, 1, 2, 4, 8, 16];

export interface RecoveryCount {
  /** The device's class (sysfs class name). */
  cls: string;
  device: string;
  driver: string;
  /** How the recovery ended, e.g. recovered, failed, gave-up. */
  result: string;
  count: number;
}

export interface MetricsSnapshot {
  up: boolean;
  /** The daemon's start, seconds since the epoch. */
  startTimeSeconds: number;
  tapEventsLost: number;
  /** Whether every change to the shadow is in its state file (false: the store is degraded, store-health.ts). */
  statePersisted: boolean;
  /** Shadow log size (entries) per device, by class then device name. */
  shadowEntries: ReadonlyMap<string, ReadonlyMap<string, number>>;
  recoveries: readonly RecoveryCount[];
  /** Non-cumulative counts: one per DURATION_BUCKETS bound, then one for +Inf. */
  durationBuckets: readonly number[];
  durationSum: number;
}

/** A label value as the format wants it: backslash, double quote and newline escaped. */
export function escapeLabelValue(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function escapeHelp(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

export function formatValue(n: number): string {
  if (Number.isNaN(n)) return 'NaN';
  if (n === Infinity) return '+Inf';
  if (n === -Infinity) return '-Inf';
  return String(n);
}

function labels(pairs: Record<string, string>): string {
  const parts = Object.entries(pairs).map(([k, v]) => `${k}="${escapeLabelValue(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

function family(name: string, type: 'counter' | 'gauge' | 'histogram', help: string, samples: string[]): string {
  return [`# HELP ${name} ${escapeHelp(help)}`, `# TYPE ${name} ${type}`, ...samples].join('\n');
}

const byKey = <T>(key: (t: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0);

/** The whole exposition, ending in a newline. Pure; series in a stable order. */
export function formatMetrics(s: MetricsSnapshot): string {
  const recoveries = [...s.recoveries].sort(byKey((r) => `${r.cls}\0${r.device}\0${r.driver}\0${r.result}`));
  const entries = [...s.shadowEntries].flatMap(([cls, devices]) => [...devices].map(([device, n]): [string, string, number] => [cls, device, n]));
  let cumulative = 0;
  const bucketLines = [...DURATION_BUCKETS, Infinity].map((le, i) => {
    cumulative += s.durationBuckets[i] ?? 0;
    return `shadowd_recovery_duration_seconds_bucket${labels({ le: formatValue(le) })} ${cumulative}`;
  });
  const families = [
    family('shadowd_up', 'gauge', 'Whether shadowd is running (0 is written when it stops).', [`shadowd_up ${s.up ? 1 : 0}`]),
    family('shadowd_start_time_seconds', 'gauge', 'When shadowd started, in seconds since the epoch.', [
      `shadowd_start_time_seconds ${formatValue(s.startTimeSeconds)}`,
    ]),
    family(
      'shadowd_recoveries_total',
      'counter',
      'Driver recoveries since shadowd started, by device class, device, driver and result.',
      recoveries.map((r) => `shadowd_recoveries_total${labels({ class: r.cls, device: r.device, driver: r.driver, result: r.result })} ${formatValue(r.count)}`),
    ),
    family('shadowd_recovery_duration_seconds', 'histogram', 'Time from the start of a recovery to its end.', [
      ...bucketLines,
      `shadowd_recovery_duration_seconds_sum ${formatValue(s.durationSum)}`,
      `shadowd_recovery_duration_seconds_count ${cumulative}`,
    ]),
    family(
      'shadowd_shadow_entries',
      'gauge',
      "Entries in each device's shadow log (its reduced configuration log).",
      entries.sort(byKey(([c, d]) => `${c}\0${d}`)).map(([cls, device, n]) => `shadowd_shadow_entries${labels({ class: cls, device })} ${formatValue(n)}`),
    ),
    family('shadowd_tap_events_lost_total', 'counter', 'Tap events the kernel dropped before shadowd read them.', [
      `shadowd_tap_events_lost_total ${formatValue(s.tapEventsLost)}`,
    ]),
    family('shadowd_state_persisted', 'gauge', 'Whether the shadow reaches its state file (0: degraded, changes wait in memory).', [
      `shadowd_state_persisted ${s.statePersisted ? 1 : 0}`,
    ]),
  ];
  return families.join('\n') + '\n';
}

/** The daemon's running totals, from which snapshots are taken. */
export class Metrics {
  private readonly recoveries = new Map<string, RecoveryCount>();
  private readonly buckets = new Array<number>(DURATION_BUCKETS.length + 1).fill(0);
  private durationSum = 0;
  private readonly entries = new Map<string, Map<string, number>>();
  private lost = 0;
  private persisted = true;

  constructor(private readonly startTimeMs: number) {}

  /** One finished recovery; durationSec is left out of the histogram when the recovery never ran (null). */
  recordRecovery(cls: string, device: string, driver: string | null, result: string, durationSec: number | null): void {
    const d = driver ?? 'unknown';
    const key = `${cls}\0${device}\0${d}\0${result}`;
    const r = this.recoveries.get(key) ?? { cls, device, driver: d, result, count: 0 };
    r.count++;
    this.recoveries.set(key, r);
    if (durationSec === null || !Number.isFinite(durationSec) || durationSec < 0) return;
    const i = DURATION_BUCKETS.findIndex((le) => durationSec <= le);
    this.buckets[i < 0 ? DURATION_BUCKETS.length : i]!++;
    this.durationSum += durationSec;
  }

  /** Replaces one class's per-device shadow sizes (devices no longer listed disappear). */
  setShadowEntries(cls: string, perDevice: Iterable<[string, number]>): void {
    this.entries.set(cls, new Map(perDevice));
  }

  setTapEventsLost(total: number): void {
    this.lost = total;
  }

  setStatePersisted(ok: boolean): void {
    this.persisted = ok;
  }

  snapshot(up = true): MetricsSnapshot {
    return {
      up,
      startTimeSeconds: this.startTimeMs / 1000,
      tapEventsLost: this.lost,
      statePersisted: this.persisted,
      shadowEntries: new Map([...this.entries].map(([cls, m]) => [cls, new Map(m)])),
      recoveries: [...this.recoveries.values()].map((r) => ({ ...r })),
      durationBuckets: [...this.buckets],
      durationSum: this.durationSum,
    };
  }
}

/** O_EXCL|O_NOFOLLOW: a temporary file is always one this call made, never a file or symlink found at its name. */
const TEMP_FLAGS = fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL | fsConstants.O_NOFOLLOW;

/** 16 random hex digits: the part of a temporary name nobody can guess ahead. */
const randomSuffix = (): string => randomBytes(8).toString('hex');

/**
 * Replaces path with text atomically (a temporary file in the same directory,
 * then rename), so node_exporter never reads half a file. The temporary name
 * does not end in .prom, which the collector skips. World-readable: the
 * collector runs as its own user.
 *
 * The directory may be writable by others (a textfile directory shared with
 * other exporters): the temporary name has a random part and is created with
 * O_EXCL|O_NOFOLLOW, so a file or symlink planted at it makes the write fail
 * rather than be written through, and only a file this call created is ever
 * removed. `suffix` is for tests.
 */
export async function writeTextfile(path: string, text: string, suffix: () => string = randomSuffix): Promise<void> {
  const tmp = `${path}.${suffix()}.tmp`;
  // Opening throws before anything is ours to remove (EEXIST, ELOOP, ENOENT).
  const file = await open(tmp, TEMP_FLAGS, 0o644);
  try {
    try {
      await file.writeFile(text);
      // The umask may have taken bits off the mode open gave.
      await file.chmod(0o644);
    } finally {
      await file.close();
    }
    await rename(tmp, path);
  } catch (err) {
    await unlink(tmp).catch(() => undefined);
    throw err;
  }
}

/**
 * Counts one ended recovery (RecoveryManager's onFinished). Replays asked for
 * with `shadowctl replay` are not recoveries and are left out. The duration
 * goes into the histogram only when a restart was tried: a give-up, or a
 * recovery dropped at shutdown, never ran one.
 */
export function recordFinished(metrics: Metrics, rec: Readonly<RecoveryRecord>): void {
  if (rec.trigger === 'replay' || rec.result === 'in-progress') return;
  const ran = rec.phases.restart !== undefined && rec.endedAt !== null;
  metrics.recordRecovery(rec.cls, rec.device, rec.driver, rec.result, ran ? ((rec.endedAt ?? rec.startedAt) - rec.startedAt) / 1000 : null);
}

/**
 * Shadow sizes by device name, from one class's status (the name is the
 * label). When a name has both a present device and the kept shadow of an
 * absent one, the present one counts. Pure.
 */
export function shadowEntriesByDevice(devices: readonly { name: string; health: 'ok' | 'absent'; keys: number }[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const d of devices) if (d.health === 'ok') out.set(d.name, d.keys);
  for (const d of devices) if (!out.has(d.name)) out.set(d.name, d.keys);
  return out;
}

export interface MetricsWriterOptions {
  metrics: Metrics;
  logger: Logger;
  /** Brings the gauges up to date (shadow sizes, lost events) before each write. */
  refresh?: () => void;
  /** writeTextfile, or a fake in tests. */
  write?: (path: string, text: string) => Promise<void>;
  /** Removes a file no longer configured; default fs unlink (a missing file is fine). */
  remove?: (path: string) => Promise<void>;
}

/**
 * Keeps the textfile up to date: written at once when configured, then every
 * interval from a timer that does not keep the process alive. File
 * operations run one after another, and a tick that finds one still under
 * way is skipped, so writes never overlap. stop() writes shadowd_up 0, last.
 */
export class MetricsWriter {
  private path: string | null = null;
  private intervalMs = 0;
  private timer: NodeJS.Timeout | null = null;
  /** File operations, in order; `pending` counts those not yet done. */
  private queue: Promise<void> = Promise.resolve();
  private pending = 0;
  /** The last write error logged, so a lasting one is logged once. */
  private lastError: string | null = null;
  private stopped = false;
  private readonly write: (path: string, text: string) => Promise<void>;
  private readonly remove: (path: string) => Promise<void>;

  constructor(private readonly opts: MetricsWriterOptions) {
    this.write = opts.write ?? writeTextfile;
    this.remove = opts.remove ?? ((p) => unlink(p).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err))));
  }

  /** The file and interval (MetricsTextfile=, MetricsIntervalSec=); null: none. Called at start and on each reload; a no-op when nothing changed. */
  configure(path: string | null, intervalSec: number): void {
    const intervalMs = intervalSec * 1000;
    if (this.stopped || (path === this.path && (path === null || intervalMs === this.intervalMs))) return;
    const old = this.path;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.path = path;
    this.intervalMs = intervalMs;
    this.lastError = null;
    if (old !== null && old !== path) {
      // A file left behind would export stale series next to the new file's (node_exporter refuses duplicates).
      void this.enqueue(() =>
        this.remove(old).catch((err: unknown) =>
          this.opts.logger.log('warning', `cannot remove the old metrics textfile ${old}: ${err instanceof Error ? err.message : String(err)}`),
        ),
      );
    }
    if (path === null) return;
    void this.enqueue(() => this.writeOnce(path, true));
    this.timer = setInterval(() => this.tick(), intervalMs);
    this.timer.unref();
  }

  /** Stops the timer and, after any write under way, writes the file with shadowd_up 0. */
  async stop(): Promise<void> {
    if (this.stopped) return this.queue;
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    const path = this.path;
    await this.enqueue(() => (path === null ? Promise.resolve() : this.writeOnce(path, false)));
  }

  /** Resolves when no file operation is under way. */
  settled(): Promise<void> {
    return this.queue;
  }

  private tick(): void {
    const path = this.path;
    if (this.pending > 0 || path === null || this.stopped) return;
    void this.enqueue(() => this.writeOnce(path, true));
  }

  private enqueue(op: () => Promise<void>): Promise<void> {
    this.pending++;
    const run = this.queue.then(op).finally(() => {
      this.pending--;
    });
    this.queue = run.catch(() => undefined);
    return this.queue;
  }

  /** Never rejects: a failed write is logged (once while it keeps failing the same way). */
  private async writeOnce(path: string, up: boolean): Promise<void> {
    const { logger } = this.opts;
    try {
      this.opts.refresh?.();
      await this.write(path, formatMetrics(this.opts.metrics.snapshot(up)));
      if (this.lastError !== null) logger.log('info', `metrics textfile ${path} written again`);
      this.lastError = null;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      logger.log(message === this.lastError ? 'debug' : 'warning', `cannot write the metrics textfile ${path}: ${message}`);
      this.lastError = message;
    }
  }
}
