// The taps of every class: one supervised bpftrace process (core/ingest.ts)
// running every class's program merged into one (core/tap-program.ts: one
// bpftrace costs about a third of three, in start-up time and in memory),
// or one taps-loader running every class's precompiled object
// (core/precompiled-taps.ts says which),
// handing each event to its own class's shadow and detectors, with each
// class's own sync barrier. Events that arrive while a class's first read of
// its devices runs wait for it: applied before it, they would find no
// adopted device.
import { rmSync } from 'node:fs';
import { readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ClassDeclaration, ClassRuntime } from './device-class.js';
import type { TapsLoader } from './bpftrace-process.js';
import { Ingest, IngestSyncError, type IngestOptions, type IngestStats } from './ingest.js';
import { ensureModules } from './kernel-modules.js';
import type { PrecompiledTaps } from './precompiled-taps.js';
import { filterProbes, readKernelProbeIndex, type KernelProbeIndex } from './probe-filter.js';
import { eventClasses, hasProbe, mergePrograms } from './tap-program.js';
import type { TapEvent } from './tap-record.js';
import type { Logger } from '../service/log.js';

export interface TapsRunnerOptions {
  logger: Logger;
  /** The bpftrace binary. */
  bpftrace?: string;
  /** Run the classes' precompiled objects under taps-loader instead of their programs under bpftrace. */
  precompiled?: PrecompiledTaps | null;
  /** Where the merged program is written (the runtime directory); default: the temporary directory. */
  programDir?: string;
  /**
   * Makes sure a class's tapModules are loaded before its taps attach; the
   * default checks /sys/module and runs `modprobe -a` for the missing ones
   * only (core/kernel-modules.ts). For tests.
   */
  loadModules?: (modules: readonly string[]) => Promise<void>;
  /**
   * What the kernel can attach to; the default reads tracefs (null: it cannot
   * be read, and every probe is left to bpftrace). For tests.
   */
  probeIndex?: () => Promise<KernelProbeIndex | null>;
  /** For tests: the Ingest options beyond what the runner sets. */
  ingest?: Partial<Omit<IngestOptions, 'program' | 'logger' | 'onEvents' | 'onGap' | 'onEvent' | 'marker' | 'cls'>>;
  /** Called as each step before bpftrace's spawn is done (the daemon's start-up phases). */
  phase?: (what: string) => void;
}

interface ClassTaps {
  decl: ClassDeclaration;
  /** Events held until the class has read its devices once; null once it has. */
  early: TapEvent[] | null;
  runtime: ClassRuntime | null;
  onTapEvent: ((e: TapEvent) => void) | null;
}

/** A class's bpftrace program as this kernel can attach it (its missing probes taken out). */
interface RunnableProgram {
  cls: string;
  path: string;
  text: string;
}

export class TapsRunner {
  private readonly taps = new Map<string, ClassTaps>();
  private ingest: Ingest | null = null;
  /** Event name → class; null: every event is the only class's. */
  private classOfEvent: Map<string, string> | null = null;
  private readonly unrouted = new Set<string>();
  /** The merged program's file, removed at stop. */
  private mergedFile: string | null = null;
  /** Whether a probe was taken out of a program because the kernel lacks it. */
  private probesDropped = false;
  /** Stopped (or aborted): a launch still under way spawns nothing. */
  private stopped = false;
  private spawnedResolve!: () => void;
  /**
   * Resolves once bpftrace has been spawned, or once the start failed or
   * was stopped before it was: what the daemon waits for before it loads the
   * rest of itself, so that nothing holds up the spawn. Never rejects.
   */
  readonly spawned = new Promise<void>((resolve) => (this.spawnedResolve = resolve));

  constructor(
    classes: readonly ClassDeclaration[],
    private readonly opts: TapsRunnerOptions,
  ) {
    for (const decl of classes) this.taps.set(decl.id, { decl, early: [], runtime: null, onTapEvent: null });
  }

  /** Attaches every class's taps; rejects, naming the programs, if they cannot attach. */
  async start(): Promise<void> {
    await Promise.all(this.startEach().values());
  }

  /**
   * Starts the taps and gives, by class, what resolves once that class's taps
   * are attached and live (or rejects, saying why): one bpftrace runs them
   * all, so they all become live together.
   */
  startEach(): Map<string, Promise<void>> {
    const attached = this.launch();
    // Whoever stops waiting on it (another class failed first) must not leave it unhandled; a launch that failed before the spawn ends the wait for it.
    void attached.catch(() => undefined).finally(() => this.spawnedResolve());
    return new Map([...this.taps.keys()].map((cls) => [cls, attached]));
  }

  /**
   * A class's program without the attach points this kernel lacks, each
   * reported once (at every start: a kernel does not change while it runs).
   */
  private attachable(decl: ClassDeclaration, text: string, index: KernelProbeIndex | null): string {
    if (index === null) return text;
    const { text: kept, dropped } = filterProbes(text, index);
    for (const d of dropped) {
      this.probesDropped = true;
      const lost = d.blockDropped ? `the ${decl.id} shadow gets no ${d.events.map((e) => `ev=${e}`).join(', ') || 'records'} from it` : `the ${decl.id} shadow misses the calls of that function (${d.events.map((e) => `ev=${e}`).join(', ')} still come from the others)`;
      this.opts.logger.log('warning', `the ${decl.id} taps: ${d.point} is not in this kernel; attached without it: ${lost}`, {
        SHADOWD_CLASS: decl.id,
        SHADOWD_PROBE: d.point,
      });
    }
    return kept;
  }

  /**
   * The kernel's probe index read, each class's program without the probes
   * this kernel lacks (each reported once, with what the class loses), and
   * the programs that still have a probe; throws when none has.
   */
  private async runnablePrograms(all: readonly ClassTaps[]): Promise<RunnableProgram[]> {
    const index = await (this.opts.probeIndex ?? readKernelProbeIndex)();
    this.opts.phase?.('probe index read');
    const texts = await Promise.all(all.map(async (t) => ({ cls: t.decl.id, path: t.decl.tapProgram, text: this.attachable(t.decl, await readFile(t.decl.tapProgram, 'utf8'), index) })));
    // A class whose every probe went has nothing to attach: the others run.
    const runnable = texts.filter((t) => hasProbe(t.text));
    for (const t of texts.filter((x) => !runnable.includes(x))) {
      this.opts.logger.log('err', `the ${t.cls} taps: none of ${t.path}'s probes is in this kernel: the ${t.cls} shadow sees no change made to its devices`, { SHADOWD_CLASS: t.cls });
    }
    if (runnable.length === 0) throw new Error('none of their probes is in this kernel');
    return runnable;
  }

  /**
   * taps-loader with every class's object, spawned at once: it leaves out,
   * and names, the programs whose function the kernel lacks, so the probe
   * index (read meanwhile, for what each class loses) need not come first.
   * A class none of whose probes the kernel has makes the loader fail; it
   * then runs again with the other classes' objects.
   */
  private async startLoader(pre: PrecompiledTaps, analysed: Promise<{ cls: string }[]>): Promise<void> {
    const all = [...this.taps.values()];
    const run = (classes: readonly string[]): Promise<void> => this.startIngest(all[0]!.decl.tapProgram, { binary: pre.loader, objects: classes.map((c) => pre.objects.get(c)!) });
    try {
      await run(all.map((t) => t.decl.id));
    } catch (err) {
      // The loader's own error stands unless the analysis names classes to leave out.
      const runnable = await analysed.catch(() => null);
      if (runnable === null || runnable.length === all.length || this.stopped) throw err;
      await this.dropIngest();
      await run(runnable.map((t) => t.cls));
    }
    // The loader runs: the analysis only says what each class loses, so its failure is logged, not the start's.
    await analysed.catch((err: unknown) =>
      this.opts.logger.log('warning', `the taps run, but which probes this kernel lacks could not be told: ${err instanceof Error ? err.message : String(err)}`, { SHADOWD_COMPONENT: 'ingest' }),
    );
  }

  /** Kills the taps' process that failed to start, for another to take its place. */
  private async dropIngest(): Promise<void> {
    await this.ingest?.stop('SIGKILL');
    this.ingest = null;
  }

  private async launch(): Promise<void> {
    const load = this.opts.loadModules ?? ((m: readonly string[]) => ensureModules(m));
    const all = [...this.taps.values()];
    await Promise.all(
      all.map(async (t) => {
        const modules = t.decl.tapModules ?? [];
        if (modules.length === 0) return;
        // Not fatal here: bpftrace says which probe has no function if a module is still missing.
        await load(modules).catch((err: unknown) =>
          this.opts.logger.log('warning', `the ${t.decl.id} class's taps need ${modules.join(', ')}: ${err instanceof Error ? err.message : String(err)}`, {
            SHADOWD_CLASS: t.decl.id,
          }),
        );
      }),
    );
    this.opts.phase?.('tap modules checked');
    const programs = all.map((t) => t.decl.tapProgram).join(', ');
    /** An error of the taps' start, naming their programs. */
    const failed = (err: unknown): Error => new Error(`the taps (${programs}): ${err instanceof Error ? err.message : String(err)}`);
    try {
      if (all.length > 1) this.classOfEvent = eventClasses(all.map((t) => t.decl));
    } catch (err) {
      throw failed(err);
    }
    const analysed = this.runnablePrograms(all);
    // Awaited below on every path but one that failed first; not an unhandled rejection meanwhile.
    analysed.catch(() => undefined);
    const pre = this.opts.precompiled;
    if (pre) {
      try {
        const lacking = all.filter((t) => !pre.objects.has(t.decl.id)).map((t) => t.decl.id);
        if (lacking.length > 0) throw new Error(`no precompiled object for the ${lacking.join(', ')} taps`);
        await this.startLoader(pre, analysed);
        return;
      } catch (err) {
        if (!pre.fallback || this.stopped) throw failed(err);
        const why = err instanceof Error ? err.message : String(err);
        await this.dropIngest();
        this.opts.logger.log('warning', `taps-loader could not attach the precompiled taps (${why}); bpftrace runs them instead`, { SHADOWD_COMPONENT: 'ingest' });
      }
    }
    let runnable: RunnableProgram[];
    try {
      runnable = await analysed;
    } catch (err) {
      throw failed(err);
    }
    let program: string;
    try {
      if (all.length === 1 && !this.probesDropped) program = all[0]!.decl.tapProgram;
      else {
        const merged = runnable.length === 1 ? runnable[0]!.text : mergePrograms(runnable);
        program = join(this.opts.programDir ?? tmpdir(), `taps-${process.pid}.bt`);
        this.mergedFile = program;
        await writeFile(program, merged, { mode: 0o600 });
      }
    } catch (err) {
      throw failed(err);
    }
    await this.startIngest(program).catch((err: unknown) => {
      throw failed(err);
    });
  }

  /** Runs the taps (bpftrace and program, or taps-loader and its objects); resolves once they are live. */
  private async startIngest(program: string, loader?: TapsLoader): Promise<void> {
    if (this.stopped) {
      if (this.mergedFile) await rm(this.mergedFile, { force: true });
      throw new Error(`stopped before ${loader ? 'taps-loader' : 'bpftrace'} started`);
    }
    const all = [...this.taps.values()];
    const first = all[0]!;
    this.ingest = new Ingest({
      ...this.opts.ingest,
      cls: all.length === 1 ? first.decl.id : undefined,
      program,
      bpftrace: this.opts.bpftrace,
      ...(loader ? { loader } : {}),
      logger: this.opts.logger,
      marker: first.decl.syncMarker,
      onEvent: (e) => this.classOf(e)?.onTapEvent?.(e),
      onEvents: (batch) => this.route(batch),
      onGap: (why) => {
        for (const t of this.taps.values()) void t.runtime?.requestResync(why);
      },
    });
    const live = this.ingest.start();
    this.spawnedResolve();
    await live;
  }

  private classOf(e: TapEvent): ClassTaps | undefined {
    if (this.classOfEvent === null) return this.taps.values().next().value;
    const cls = this.classOfEvent.get(e.call);
    if (cls === undefined) {
      if (!this.unrouted.has(e.call)) {
        this.unrouted.add(e.call);
        this.opts.logger.log('warning', `a tap event ${e.call} that no class's program prints: ignored`, { SHADOWD_COMPONENT: 'ingest' });
      }
      return undefined;
    }
    return this.taps.get(cls);
  }

  /** Hands each class its events of the batch, in their order. */
  private route(batch: TapEvent[]): void {
    const byClass = new Map<ClassTaps, TapEvent[]>();
    for (const e of batch) {
      const t = this.classOf(e);
      if (!t) continue;
      const list = byClass.get(t);
      if (list) list.push(e);
      else byClass.set(t, [e]);
    }
    for (const [t, events] of byClass) {
      if (t.early) t.early.push(...events);
      else t.runtime?.applyEvents(events);
    }
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

  /** The class's barrier (Ingest.sync with the class's marker). */
  sync(cls: string): Promise<void> {
    const t = this.taps.get(cls);
    if (!t) return Promise.reject(new IngestSyncError(`no taps for class ${cls}`));
    if (!this.ingest) return Promise.reject(new IngestSyncError('the taps are not attached (stopped)'));
    return this.ingest.sync(undefined, t.decl.syncMarker);
  }

  /** The taps' state and counts; byClass gives each class the same (one bpftrace runs them all). */
  stats(): IngestStats & { byClass: Record<string, IngestStats> } {
    const s: IngestStats = this.ingest ? { ...this.ingest.stats } : { state: 'stopped', probes: 0, restarts: 0, events: 0, malformed: 0, lost: 0, lastError: null };
    if (this.taps.size === 0) s.state = 'stopped';
    const byClass: Record<string, IngestStats> = {};
    for (const cls of this.taps.keys()) byClass[cls] = { ...s };
    return { ...s, byClass };
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.ingest?.stop();
    if (this.mergedFile) await rm(this.mergedFile, { force: true });
  }

  /**
   * A start that failed elsewhere while the taps were starting: bpftrace is
   * killed at once (it may be compiling, and has nothing to print), nothing
   * is spawned after this, and the merged program is removed. The daemon exits next.
   */
  abort(): void {
    this.stopped = true;
    void this.ingest?.stop('SIGKILL');
    if (this.mergedFile) rmSync(this.mergedFile, { force: true });
  }

  private require(cls: string): ClassTaps {
    const t = this.taps.get(cls);
    if (!t) throw new Error(`no taps for class ${cls}`);
    return t;
  }
}
