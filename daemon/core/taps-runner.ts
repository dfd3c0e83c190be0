// The taps of every class: one supervised bpftrace program per class
// (core/ingest.ts), each handing its events to its own class's shadow and
// detectors, each with its class's sync barrier. Events that arrive while a
// class's first read of its devices runs wait for it: applied before it,
// they would find no adopted device.
import type { ClassDeclaration, ClassRuntime } from './device-class.js';
import { Ingest, IngestSyncError, type IngestOptions, type IngestStats } from './ingest.js';
import { runProgram } from './run-program.js';
import type { TapEvent } from './tap-record.js';
import type { Logger } from '../service/log.js';

export interface TapsRunnerOptions {
  logger: Logger;
  /** The bpftrace binary. */
  bpftrace?: string;
  /** Loads a class's tapModules before its taps attach; the default runs `modprobe -a`. For tests. */
  loadModules?: (modules: readonly string[]) => Promise<void>;
  /** For tests: the Ingest options beyond what the runner sets. */
  ingest?: Partial<Omit<IngestOptions, 'program' | 'logger' | 'onEvents' | 'onGap' | 'onEvent' | 'marker' | 'cls'>>;
}

interface ClassTaps {
  decl: ClassDeclaration;
  ingest: Ingest;
  /** Events held until the class has read its devices once; null once it has. */
  early: TapEvent[] | null;
  runtime: ClassRuntime | null;
  onTapEvent: ((e: TapEvent) => void) | null;
}

export class TapsRunner {
  private readonly taps = new Map<string, ClassTaps>();

  constructor(
    classes: readonly ClassDeclaration[],
    private readonly opts: TapsRunnerOptions,
  ) {
    for (const decl of classes) {
      const entry: ClassTaps = { decl, early: [], runtime: null, onTapEvent: null, ingest: null as unknown as Ingest };
      entry.ingest = new Ingest({
        ...opts.ingest,
        cls: decl.id,
        program: decl.tapProgram,
        bpftrace: opts.bpftrace,
        logger: opts.logger,
        marker: decl.syncMarker,
        onEvent: (e) => entry.onTapEvent?.(e),
        onEvents: (batch) => {
          if (entry.early) entry.early.push(...batch);
          else entry.runtime?.applyEvents(batch);
        },
        onGap: (why) => void entry.runtime?.requestResync(why),
      });
      this.taps.set(decl.id, entry);
    }
  }

  /** Attaches every class's taps; rejects, naming the class, if one cannot attach. */
  async start(): Promise<void> {
    await Promise.all(this.startEach().values());
  }

  /**
   * Starts every class's taps at once and gives, by class, what resolves once
   * that class's taps are attached and live (or rejects, naming the class):
   * a class may read its devices as soon as its own taps are live, while the
   * others still attach.
   */
  startEach(): Map<string, Promise<void>> {
    const load = this.opts.loadModules ?? modprobe;
    const started = new Map<string, Promise<void>>();
    for (const t of this.taps.values()) {
      const attached = (async () => {
        const modules = t.decl.tapModules ?? [];
        if (modules.length > 0) {
          // Not fatal here: bpftrace says which probe has no function if a module is still missing.
          await load(modules).catch((err: unknown) =>
            this.opts.logger.log('warning', `the ${t.decl.id} class's taps need ${modules.join(', ')}: ${err instanceof Error ? err.message : String(err)}`, { SHADOWD_CLASS: t.decl.id }),
          );
        }
        await t.ingest.start().catch((err: unknown) => {
          throw new Error(`the ${t.decl.id} class's taps (${t.decl.tapProgram}): ${err instanceof Error ? err.message : String(err)}`);
        });
      })();
      // Whoever stops waiting on one (another class failed first) must not leave it unhandled.
      attached.catch(() => undefined);
      started.set(t.decl.id, attached);
    }
    return started;
  }

  /** Hands the class's events to its runtime from now on, after those that waited for its first read. */
  attach(cls: string, runtime: ClassRuntime): void {
    const t = this.require(cls);
    t.runtime = runtime;
    const early = t.early ?? [];
    t.early = null;
    if (early.length > 0) runtime.applyEvents(early);
  }

  /** Every event of the class as it arrives, for its detectors. */
  onTapEvent(cls: string, fn: ((e: TapEvent) => void) | null): void {
    this.require(cls).onTapEvent = fn;
  }

  /** The class's barrier (Ingest.sync). */
  sync(cls: string): Promise<void> {
    const t = this.taps.get(cls);
    if (!t) return Promise.reject(new IngestSyncError(`no taps for class ${cls}`));
    return t.ingest.sync();
  }

  /** Over every class: the worst state, the sums; and each class's own. */
  stats(): IngestStats & { byClass: Record<string, IngestStats> } {
    const byClass: Record<string, IngestStats> = {};
    const order: IngestStats['state'][] = ['attached', 'starting', 'restarting', 'stopped'];
    const sum: IngestStats = { state: 'attached', probes: 0, restarts: 0, events: 0, malformed: 0, lost: 0, lastError: null };
    for (const [cls, t] of this.taps) {
      const s = t.ingest.stats;
      byClass[cls] = { ...s };
      if (order.indexOf(s.state) > order.indexOf(sum.state)) sum.state = s.state;
      sum.probes += s.probes;
      sum.restarts += s.restarts;
      sum.events += s.events;
      sum.malformed += s.malformed;
      sum.lost += s.lost;
      sum.lastError = s.lastError ? `${cls}: ${s.lastError}` : sum.lastError;
    }
    if (this.taps.size === 0) sum.state = 'stopped';
    return { ...sum, byClass };
  }

  async stop(): Promise<void> {
    await Promise.all([...this.taps.values()].map((t) => t.ingest.stop()));
  }

  private require(cls: string): ClassTaps {
    const t = this.taps.get(cls);
    if (!t) throw new Error(`no taps for class ${cls}`);
    return t;
  }
}

/** Loads kernel modules by name (a no-op for those loaded); rejects with modprobe's message. */
async function modprobe(modules: readonly string[]): Promise<void> {
  const r = await runProgram('modprobe', ['-a', ...modules]);
  if (r.exitCode !== 0) throw new Error(`modprobe -a ${modules.join(' ')}: ${r.stderr.trim() || `exit status ${String(r.exitCode)}`}`);
}
