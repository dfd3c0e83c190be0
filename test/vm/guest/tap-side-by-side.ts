// In the guest: a class's taps run twice side by side, the precompiled CO-RE
// object under taps-loader and the class's .bt under bpftrace, each started
// as the daemon starts bpftrace (bpftraceArgv: setpriv, -f json), and what
// each printed between an opening sync marker both saw and the closing
// markers (one per CPU). The common half of guest/libbpf-block.ts and
// guest/libbpf-sound.ts: each tool's time from spawn to its attached line and
// to its probes live (a marker seen), its peak resident memory (VmHWM), its
// records, and the records that differ once ts= is set aside.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import type { SyncMarker } from '../../../daemon/core/device-class.js';
import { parseBpftraceLine } from '../../../daemon/core/bpftrace-output.js';
import { bpftraceArgv } from '../../../daemon/core/bpftrace-process.js';
import type { TapEvent } from '../../../daemon/core/tap-record.js';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface TapRecord {
  /** The record as printed (bpftrace's printf text), newline dropped. */
  line: string;
  event: TapEvent;
}

export interface Tap {
  name: string;
  child: ChildProcess;
  startedAt: number;
  attachedMs: number | null;
  liveMs: number | null;
  probes: number | null;
  records: TapRecord[];
  lost: number;
  malformed: string[];
  stderr: string;
}

/** Starts a tap program as the daemon does (setpriv --pdeathsig, -f json) and collects what it prints. */
export function startTap(name: string, bin: string, prog: string): Tap {
  const startedAt = performance.now();
  const child = spawn(...bpftraceArgv(bin, prog), { stdio: ['ignore', 'pipe', 'pipe'] });
  const tap: Tap = { name, child, startedAt, attachedMs: null, liveMs: null, probes: null, records: [], lost: 0, malformed: [], stderr: '' };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (tap.stderr += d));
  createInterface({ input: child.stdout }).on('line', (text) => {
    if (text.trim() === '') return;
    const msg = parseBpftraceLine(text);
    if (msg.kind === 'attached') {
      tap.attachedMs = performance.now() - startedAt;
      tap.probes = msg.probes;
    } else if (msg.kind === 'lost') tap.lost += msg.count;
    else if (msg.kind === 'malformed') tap.malformed.push(`${msg.reason}: ${text}`);
    else if (msg.kind === 'event') {
      const data = (JSON.parse(text) as { data: string }).data;
      tap.records.push({ line: data.replace(/\n$/, ''), event: msg.event });
    }
  });
  return tap;
}

function peakRssKb(pid: number | undefined): number | null {
  try {
    return Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return null;
  }
}

const withoutTs = (line: string): string => line.replace(/ ts=\d+ /, ' ');

/** What one list has that the other lacks, with multiplicity. */
function missingFrom(a: string[], b: string[]): string[] {
  const left = [...b];
  return a.filter((x) => {
    const i = left.indexOf(x);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
}

/** One tool's figures and records in the result line. */
export interface ToolFigures {
  attachedMs: number | null;
  liveMs: number | null;
  peakRssKb: number | null;
  probes: number | null;
  exitCode: number | null;
  lost: number;
  malformed: string[];
  stderr: string;
  records: TapRecord[];
}

/** The result line's common part (SideBySide.result). */
export interface SideBySideResult {
  kernel: string;
  failures: string[];
  libbpf: ToolFigures;
  bpftrace: ToolFigures;
  /** Records (ts= aside) one tool printed and the other did not. */
  onlyLibbpf: string[];
  onlyBpftrace: string[];
  sameRecords: number;
}

/** The two tools' figures, a row each, for the host test's log. */
export function describeFigures(res: SideBySideResult): string {
  const row = (name: string, f: ToolFigures): string =>
    `${name.padEnd(9)} attached ${String(f.attachedMs).padStart(6)} ms  live ${String(f.liveMs).padStart(6)} ms  peak RSS ${String(f.peakRssKb).padStart(7)} kB  records ${f.records.length}`;
  return `guest ${res.kernel}, spawn to attached line and to probes live (a marker seen), VmHWM:\n${row('libbpf', res.libbpf)}\n${row('bpftrace', res.bpftrace)}`;
}

/** The two taps of a class and its sync marker; `failures` collects what went wrong. */
export class SideBySide {
  readonly failures: string[] = [];
  readonly taps: Tap[] = [];
  private opening = -1;
  private closing: number[] = [];
  private peaks: (number | null)[] = [];
  private exits: (number | null)[] = [];

  constructor(private readonly sync: SyncMarker) {}

  check(ok: boolean, what: string): boolean {
    if (!ok) this.failures.push(what);
    return ok;
  }

  /** Runs the class's sync marker (optionally pinned to a CPU); resolves with its pid once it has exited. */
  async marker(cpu?: number): Promise<number> {
    const argv = cpu === undefined ? this.sync.argv : ['taskset', '--cpu-list', String(cpu), ...this.sync.argv];
    const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
    await new Promise((r) => child.on('close', r));
    return child.pid ?? -1;
  }

  markerOf(tap: Tap, pid: number): TapRecord | undefined {
    return tap.records.find((r) => r.event.pid === pid && this.sync.isMarker(r.event));
  }

  /** Waits until every marker pid has come out of every tap; false on timeout. */
  async seen(taps: readonly Tap[], pids: readonly number[], timeoutMs = 10_000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (taps.every((t) => pids.every((p) => this.markerOf(t, p)))) return true;
      await sleep(50);
    }
    return false;
  }

  /** Starts a tap, waits for its attached line, then writes markers until one comes out: its probes are live. */
  async start(name: string, bin: string, prog: string, timeoutMs = 150_000): Promise<boolean> {
    const tap = startTap(name, bin, prog);
    this.taps.push(tap);
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && tap.child.exitCode === null) {
      if (tap.attachedMs === null) {
        await sleep(20);
        continue;
      }
      const pid = await this.marker();
      if (await this.seen([tap], [pid], 300)) {
        tap.liveMs = performance.now() - tap.startedAt;
        return true;
      }
    }
    return this.check(false, `${tap.name}: not live after ${timeoutMs} ms (exit ${String(tap.child.exitCode)}): ${tap.stderr}`);
  }

  /** The opening marker, which both taps must see before the workload. */
  async open(): Promise<boolean> {
    this.opening = await this.marker();
    return this.check(await this.seen(this.taps, [this.opening]), 'the opening marker did not come out of both taps');
  }

  /** One closing marker per CPU (bpftrace reads one buffer per CPU, each in its own order), then each tap's peak memory and SIGINT. */
  async close(): Promise<void> {
    this.closing = await Promise.all(cpus().map((_, cpu) => this.marker(cpu)));
    this.check(await this.seen(this.taps, this.closing), 'the closing markers did not come out of both taps');
    this.peaks = this.taps.map((t) => peakRssKb(t.child.pid));
    this.exits = await Promise.all(
      this.taps.map(
        (t) =>
          new Promise<number | null>((resolve) => {
            t.child.on('close', (code) => resolve(code));
            t.child.kill('SIGINT');
          }),
      ),
    );
  }

  /** The tap's records after the opening marker and before the closing ones, markers left out. */
  between(tap: Tap): TapRecord[] {
    const markers = new Set([this.opening, ...this.closing]);
    const from = this.markerOf(tap, this.opening)?.event.tsNs ?? -1n;
    const to = this.closing.map((p) => this.markerOf(tap, p)?.event.tsNs ?? 0n).reduce((a, b) => (b < a ? b : a));
    return tap.records.filter((r) => r.event.tsNs > from && r.event.tsNs < to && !(markers.has(r.event.pid) && this.sync.isMarker(r.event)));
  }

  /** Each tap's figures and records, and how the first two tools' records differ (ts= aside, the given pids' records left out). */
  result(leaveOut: ReadonlySet<number> = new Set()): Record<string, unknown> {
    const compared = this.taps.map((t) =>
      this.between(t)
        .filter((r) => !leaveOut.has(r.event.pid))
        .map((r) => withoutTs(r.line))
        .sort(),
    );
    const [a, b] = [compared[0] ?? [], compared[1] ?? []];
    const figures = (t: Tap, i: number): Record<string, unknown> => ({
      attachedMs: t.attachedMs === null ? null : Math.round(t.attachedMs),
      liveMs: t.liveMs === null ? null : Math.round(t.liveMs),
      peakRssKb: this.peaks[i] ?? null,
      probes: t.probes,
      exitCode: this.exits[i] ?? null,
      lost: t.lost,
      malformed: t.malformed,
      stderr: t.stderr,
      records: this.between(t),
    });
    return {
      kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
      failures: this.failures,
      ...Object.fromEntries(this.taps.map((t, i) => [t.name, figures(t, i)])),
      onlyLibbpf: missingFrom(a, b),
      onlyBpftrace: missingFrom(b, a),
      sameRecords: a.length - missingFrom(a, b).length,
    };
  }

  /** The records each tap printed for one process, by tap name. */
  recordsOf(pid: number | undefined): Record<string, string[]> {
    return Object.fromEntries(this.taps.map((t) => [t.name, this.between(t).filter((r) => r.event.pid === pid).map((r) => r.line)]));
  }
}

/** The result line the host test looks for: `PREFIX <json>`, bigints as strings. */
export function printResult(prefix: string, result: Record<string, unknown>): void {
  console.log(`${prefix} ${JSON.stringify(result, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
}
