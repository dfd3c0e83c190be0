// Keeps the taps running: supervises bpftrace, restarts it with back-off when
// it exits, hands tap events on in batches (one per chunk of output, so the
// shadow commits a batch at once), and reports what it had to skip or lost.
import { startBpftrace, type BpftraceRun } from './bpftrace-process.js';
import type { Logger } from './log.js';
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
  program: string;
  bpftrace?: string;
  logger: Logger;
  onEvents: (batch: TapEvent[]) => void;
  /** Events were lost, or the taps were down for a while: the shadow must re-read its devices. */
  onGap: (why: string) => void;
  onAttached?: (probes: number) => void;
  /** The kernel's TX watchdog fired (ev=xmit_timeout): handed on at once, for the failure detectors (it also goes into the batch). */
  onTxTimeout?: (event: TapEvent) => void;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** See BpftraceOptions.probesLive. */
  probesLive?: (pid: number) => Promise<void>;
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

  constructor(private readonly opts: IngestOptions) {
    this.backoffMs = opts.initialBackoffMs ?? 1000;
  }

  /** Starts bpftrace; resolves once the taps are attached the first time (or rejects if that fails). */
  start(): Promise<number> {
    this.stopping = false;
    return this.launch();
  }

  async stop(): Promise<void> {
    this.stopping = true;
    if (this.timer) clearTimeout(this.timer);
    const run = this.run;
    this.run = null;
    this.stats.state = 'stopped';
    if (run) {
      run.stop();
      await run.exited;
    }
    this.flush();
  }

  private launch(): Promise<number> {
    const { logger } = this.opts;
    this.stats.state = this.stats.restarts > 0 ? 'restarting' : 'starting';
    const run = startBpftrace({
      program: this.opts.program,
      bpftrace: this.opts.bpftrace,
      probesLive: this.opts.probesLive,
      onStderr: (line) => logger.log('warning', `bpftrace: ${line}`, { SHADOWD_COMPONENT: 'ingest' }),
      onMessage: (msg) => {
        switch (msg.kind) {
          case 'event':
            this.stats.events++;
            if (msg.event.call === 'xmit_timeout') this.opts.onTxTimeout?.(msg.event);
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
            logger.log('warning', `skipped unreadable tap output (${msg.reason})`, { SHADOWD_COMPONENT: 'ingest', SHADOWD_LINE: msg.line.slice(0, 200) });
            break;
          case 'lost':
            this.stats.lost += msg.count;
            logger.log('warning', `the kernel dropped ${msg.count} tap events; re-reading the devices`, { SHADOWD_COMPONENT: 'ingest' });
            this.flush();
            this.opts.onGap(`${msg.count} tap events lost`);
            break;
          case 'attached':
          case 'other':
            break;
        }
      },
    });
    this.run = run;
    const attachedAt = run.attached.then((probes) => {
      this.stats.state = 'attached';
      this.stats.probes = probes;
      logger.log('info', `taps attached: ${probes} probes`, { SHADOWD_COMPONENT: 'ingest' });
      this.opts.onAttached?.(probes);
      return { probes, at: Date.now() };
    });
    void run.exited.then(async (exit) => {
      if (this.stopping || this.run !== run) return;
      this.flush();
      const attached = await attachedAt.catch(() => null);
      if (attached && Date.now() - attached.at > STABLE_MS) this.backoffMs = this.opts.initialBackoffMs ?? 1000;
      const why = `bpftrace exited (status ${String(exit.exitCode ?? exit.signal)})${exit.stderr ? `: ${exit.stderr.trim().split('\n').pop()}` : ''}`;
      this.stats.lastError = why;
      this.stats.state = 'restarting';
      this.stats.restarts++;
      logger.log('err', `${why}; restarting the taps in ${this.backoffMs / 1000} s`, { SHADOWD_COMPONENT: 'ingest' });
      this.timer = setTimeout(() => {
        this.timer = null;
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
