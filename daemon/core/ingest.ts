// Keeps one class's taps running: supervises its bpftrace program, restarts
// it with back-off when it exits, hands tap events on in batches (one per
// chunk of output, so the shadow commits a batch at once), and reports what
// it had to skip or lost. sync() is a barrier: it resolves once every event
// the taps printed before it was called has been handed on; the class names
// the marker that makes it (SyncMarker).
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { performance } from 'node:perf_hooks';
import { startBpftrace, tapTool, type BpftraceRun, type TapsLoader } from './bpftrace-process.js';
import type { SyncMarker } from './device-class.js';
import type { Logger } from '../service/log.js';
import type { TapEvent } from './tap-record.js';

export interface IngestStats {
  state: 'starting' | 'attached' | 'restarting' | 'stopped';
  probes: number;
  /** bpftrace restarts after an unexpected exit. */
  restarts: number;
  events: number;
  malformed: number;
  /** Events the kernel dropped before bpftrace read them, as bpftrace reported. */
  lost: number;
  lastError: string | null;
}

export interface IngestOptions {
  /** The class whose taps these are (for the logs). */
  cls?: string;
  program: string;
  bpftrace?: string;
  /** taps-loader and its precompiled objects, run instead of bpftrace and the program. */
  loader?: TapsLoader;
  logger: Logger;
  onEvents: (batch: TapEvent[]) => void;
  /** Events were lost, or the taps were down for a while: the shadow must re-read its devices. */
  onGap: (why: string) => void;
  onAttached?: (probes: number) => void;
  /** Every event as it arrives, before batching, for the class's detectors (it also goes into the batch). */
  onEvent?: (event: TapEvent) => void;
  /** The marker sync() uses unless it is given another (a class's, where the program has several classes' taps). */
  marker: SyncMarker;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** See BpftraceOptions.probesLive. */
  probesLive?: (pid: number) => Promise<void>;
  /** Starts sync()'s marker on one CPU; the default runs the marker's argv under taskset. For tests. */
  startMarker?: (cpu: number) => MarkerProcess;
  /** The CPUs sync() puts a marker on; the default: the online CPUs. For tests. */
  cpus?: () => number[];
}

/** A marker process of sync(): its pid is what its tap event carries. */
export interface MarkerProcess {
  pid: number | undefined;
  exited: Promise<{ exitCode: number | null; stderr: string }>;
}

/** How long sync() waits for its markers. */
export const SYNC_TIMEOUT_MS = 5_000;

export class IngestSyncError extends Error {}

/** "0-3,6" (a kernel CPU list, as in /sys/devices/system/cpu/online) → [0, 1, 2, 3, 6]; null if it is not one. */
export function parseCpuList(text: string): number[] | null {
  const out: number[] = [];
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!m) return null;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from || to - from > 65_535) return null;
    for (let c = from; c <= to; c++) out.push(c);
  }
  return out;
}

function onlineCpus(): number[] {
  try {
    const list = parseCpuList(readFileSync('/sys/devices/system/cpu/online', 'utf8'));
    if (list && list.length > 0) return list;
  } catch {
    // not Linux's sysfs: every CPU Node knows of
  }
  return cpus().map((_, i) => i);
}

/** The marker pinned to one CPU: taskset sets its affinity and runs the marker's request in the same process. */
function startMarker(argv: readonly string[], cpu: number): MarkerProcess {
  const child = spawn('taskset', ['--cpu-list', String(cpu), ...argv], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    if (stderr.length < 2000) stderr += d.toString();
  });
  const exited = new Promise<{ exitCode: number | null; stderr: string }>((resolve) => {
    child.on('error', (err) => {
      stderr += `cannot run taskset: ${err.message}\n`;
      resolve({ exitCode: null, stderr });
    });
    child.on('close', (exitCode) => resolve({ exitCode, stderr }));
  });
  return { pid: child.pid, exited };
}


interface Barrier {
  /** pid → CPU of the markers whose event has not come yet. */
  waiting: Map<number, number>;
  /** Whether an event is this barrier's kind of marker (the class's, where one program has several classes' taps). */
  isMarker: (e: TapEvent) => boolean;
  settle: (err?: Error) => void;
}

/** Events committed in one transaction at most. */
const MAX_BATCH = 500;
/** A run that stayed attached this long resets the back-off. */
const STABLE_MS = 60_000;

export class Ingest {
  readonly stats: IngestStats = { state: 'stopped', probes: 0, restarts: 0, events: 0, malformed: 0, lost: 0, lastError: null };
  private run: BpftraceRun | null = null;
  private stopping = false;
  private backoffMs: number;
  private timer: NodeJS.Timeout | null = null;
  private batch: TapEvent[] = [];
  private flushScheduled = false;
  private readonly barriers = new Set<Barrier>();

  constructor(private readonly opts: IngestOptions) {
    this.backoffMs = opts.initialBackoffMs ?? 1000;
  }

  /** Starts bpftrace; resolves once the taps are attached the first time (or rejects if that fails). */
  start(): Promise<number> {
    this.stopping = false;
    return this.launch();
  }

  /**
   * A barrier: resolves once every tap event printed before the call has been
   * handed to onEvents. bpftrace 0.17 writes its output through one perf
   * buffer per CPU and reads them in turn, so events from different CPUs come
   * out of order; each buffer, though, keeps its own order. So a marker runs
   * pinned to each online CPU (a request the taps print: the class's SyncMarker),
   * and once every marker has come out, every event printed before them on
   * any CPU has too. Rejects (IngestSyncError) when the taps are not attached,
   * a marker cannot run on its CPU, bpftrace exits, or the markers take longer
   * than timeoutMs (the kernel dropped one, say).
   */
  sync(timeoutMs = SYNC_TIMEOUT_MS, marker: SyncMarker = this.opts.marker): Promise<void> {
    if (this.stats.state !== 'attached' || this.run === null) return Promise.reject(new IngestSyncError(`the taps are not attached (${this.stats.state})`));
    const cpuList = (this.opts.cpus ?? onlineCpus)();
    const argv = marker.argv;
    const start = this.opts.startMarker ?? ((cpu: number) => startMarker(argv, cpu));
    return new Promise<void>((resolve, reject) => {
      const waiting = new Map<number, number>();
      const barrier: Barrier = {
        waiting,
        isMarker: (e) => marker.isMarker(e),
        settle: (err) => {
          if (!this.barriers.delete(barrier)) return;
          clearTimeout(timer);
          if (err) reject(err);
          else resolve();
        },
      };
      this.barriers.add(barrier);
      const timer = setTimeout(() => {
        const cpusLeft = [...waiting.values()].sort((a, b) => a - b);
        barrier.settle(new IngestSyncError(`no marker came back from CPU ${cpusLeft.join(', ')} within ${timeoutMs} ms`));
      }, timeoutMs);
      for (const cpu of cpuList) {
        let marker: MarkerProcess;
        try {
          marker = start(cpu);
        } catch (err) {
          barrier.settle(new IngestSyncError(`cannot start a marker on CPU ${cpu}: ${err instanceof Error ? err.message : String(err)}`));
          return;
        }
        const pid = marker.pid;
        void marker.exited.then(({ exitCode, stderr }) => {
          // The marker's request always fails, once it is printed: its exit says nothing.
          // taskset failing, or not starting, means the marker never ran on its CPU.
          if ((pid === undefined || waiting.has(pid)) && (exitCode === null || /^taskset:|cannot run taskset/m.test(stderr))) {
            barrier.settle(new IngestSyncError(`cannot run a marker on CPU ${cpu}: ${stderr.trim() || `exit status ${String(exitCode)}`}`));
          }
        });
        if (pid !== undefined) waiting.set(pid, cpu);
      }
      if (cpuList.length === 0) barrier.settle(new IngestSyncError('no online CPU to put a marker on'));
    });
  }

  /** A marker event of a pending sync(): everything before it is handed on first. Returns whether it was one. */
  private marker(e: TapEvent): boolean {
    if (this.barriers.size === 0) return false;
    const mine = [...this.barriers].filter((b) => b.waiting.has(e.pid) && b.isMarker(e));
    if (mine.length === 0) return false;
    this.flush();
    for (const b of mine) {
      b.waiting.delete(e.pid);
      if (b.waiting.size === 0) b.settle();
    }
    return true;
  }

  private failBarriers(why: string): void {
    for (const b of [...this.barriers]) b.settle(new IngestSyncError(why));
  }

  /** Ends the taps: SIGINT lets bpftrace detach and exit; SIGKILL ends one that has nothing to say (a start that failed elsewhere). */
  async stop(signal: NodeJS.Signals = 'SIGINT'): Promise<void> {
    this.stopping = true;
    this.failBarriers('the taps are stopping');
    if (this.timer) clearTimeout(this.timer);
    const run = this.run;
    this.run = null;
    this.stats.state = 'stopped';
    if (run) {
      run.stop(signal);
      await run.exited;
    }
    this.flush();
  }

  private launch(): Promise<number> {
    const { logger } = this.opts;
    this.stats.state = this.stats.restarts > 0 ? 'restarting' : 'starting';
    const tool = tapTool(this.opts);
    const what = this.opts.loader ? this.opts.loader.objects.join(' ') : this.opts.program;
    logger.log('debug', `starting ${tool} ${what} at ${Math.round(performance.now())} ms`, { SHADOWD_COMPONENT: 'ingest', SHADOWD_CLASS: this.opts.cls });
    const run = startBpftrace({
      program: this.opts.program,
      bpftrace: this.opts.bpftrace,
      ...(this.opts.loader ? { loader: this.opts.loader } : {}),
      probesLive: this.opts.probesLive,
      onStderr: (line) => logger.log('warning', `${tool}: ${line}`, { SHADOWD_COMPONENT: 'ingest', SHADOWD_CLASS: this.opts.cls }),
      onMessage: (msg) => {
        switch (msg.kind) {
          case 'event':
            this.stats.events++;
            if (this.marker(msg.event)) break;
            this.opts.onEvent?.(msg.event);
            this.batch.push(msg.event);
            // A burst is applied in slices as it is read, so memory stays flat however fast bpftrace writes.
            if (this.batch.length >= MAX_BATCH) this.flush();
            else if (!this.flushScheduled) {
              this.flushScheduled = true;
              setImmediate(() => this.flush());
            }
            break;
          case 'malformed':
            this.stats.malformed++;
            logger.log('warning', `skipped unreadable tap output (${msg.reason})`, { SHADOWD_COMPONENT: 'ingest', SHADOWD_CLASS: this.opts.cls, SHADOWD_LINE: msg.line.slice(0, 200) });
            break;
          case 'lost':
            this.stats.lost += msg.count;
            logger.log('warning', `the kernel dropped ${msg.count} tap events; re-reading the devices`, { SHADOWD_COMPONENT: 'ingest', SHADOWD_CLASS: this.opts.cls });
            this.flush();
            this.opts.onGap(`${msg.count} tap events lost`);
            break;
          case 'attached':
            logger.log('debug', this.opts.loader ? `taps-loader attached ${msg.probes} programs at ${Math.round(performance.now())} ms` : `bpftrace compiled the taps (${msg.probes} probes) at ${Math.round(performance.now())} ms; waiting until they are live`, { SHADOWD_COMPONENT: 'ingest', SHADOWD_CLASS: this.opts.cls });
            break;
          case 'other':
            break;
        }
      },
    });
    this.run = run;
    const attachedAt = run.attached.then((probes) => {
      this.stats.state = 'attached';
      this.stats.probes = probes;
      logger.log('info', `taps attached: ${probes} probes (at ${Math.round(performance.now())} ms)`, { SHADOWD_COMPONENT: 'ingest', SHADOWD_CLASS: this.opts.cls });
      this.opts.onAttached?.(probes);
      return { probes, at: Date.now() };
    });
    // Stopped before it attached, nobody waits on it: its failure is start()'s to report.
    attachedAt.catch(() => undefined);
    void run.exited.then(async (exit) => {
      if (this.stopping || this.run !== run) return;
      this.flush();
      this.failBarriers(`${tool} exited`);
      const attached = await attachedAt.catch(() => null);
      // Stopped meanwhile (a start that failed over to another engine stops this one): no restart.
      if (this.stopping || this.run !== run) return;
      if (attached && Date.now() - attached.at > STABLE_MS) this.backoffMs = this.opts.initialBackoffMs ?? 1000;
      const why = `${tool} exited (status ${String(exit.exitCode ?? exit.signal)})${exit.stderr ? `: ${exit.stderr.trim().split('\n').pop()}` : ''}`;
      this.stats.lastError = why;
      this.stats.state = 'restarting';
      this.stats.restarts++;
      logger.log('err', `${why}; restarting the taps in ${this.backoffMs / 1000} s`, { SHADOWD_COMPONENT: 'ingest', SHADOWD_CLASS: this.opts.cls });
      this.timer = setTimeout(() => {
        this.timer = null;
        if (this.stopping) return;
        // Whatever happened while the taps were down was not seen: re-read after re-attaching.
        this.launch().then(
          () => this.opts.onGap('taps were restarted'),
          () => undefined,
        );
      }, this.backoffMs);
      this.backoffMs = Math.min(this.backoffMs * 2, this.opts.maxBackoffMs ?? 30_000);
    });
    return run.attached;
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.batch.length === 0) return;
    const batch = this.batch;
    this.batch = [];
    this.opts.onEvents(batch);
  }
}
