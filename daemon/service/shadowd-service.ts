// The shadowd service: composes the class-agnostic core (taps runner, store,
// recovery manager, history, detectors) with the registered device classes,
// the configuration and the control socket, and runs them as systemd expects
// (Type=notify: READY=1 once taps, state and socket are up; watchdog; SIGHUP
// reloads the configuration). main.ts parses the arguments and starts it.
//
// The start is ordered around bpftrace, which compiles the taps for most of it
// (about 18 s of 25 in the guest): the configuration, the folders and the
// taps' program come first, bpftrace is spawned, and only then are the rest
// of the daemon's modules loaded (service-parts.ts, the classes' runtimes), the
// state opened and the recovery history read, while it compiles. What needs
// the taps live waits for them as before: each class reads its devices once
// its taps are live (TapsRunner.attach holds what they print meanwhile), and
// the daemon is ready once every class has, with the socket listening.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { ClassSet } from '../core/class-set.js';
import type { ClassDeclaration, ClassRuntime, DeviceClass } from '../core/device-class.js';
import type { DeviceRef } from '../core/device-ref.js';
import type { DeviceStatus } from '../core/device-status.js';
import type { Detectors } from '../core/detectors.js';
import type { HelperConnection } from '../core/helper-connection.js';
import type { ClassDevice } from '../core/kernel-log-watch.js';
import type { RecoveryHistory } from '../core/recovery-history.js';
import type { RecoveryManager, RecoveryPort } from '../core/recovery-manager.js';
import { RequestError } from '../core/request-error.js';
import type { ShadowStore } from '../core/shadow-store.js';
import { TapsRunner } from '../core/taps-runner.js';
import { chooseTapEngine, type TapEngine, type TapEngineChoice } from '../core/precompiled-taps.js';
import { CONTROL_GROUP, lookupGroup, prepareRuntimeDir } from '../control/control-access.js';
import { PROTOCOL_VERSION, type HistoryResult, type ReloadResult, type Request, type StatusResult, type VersionResult } from '../control/control-protocol.js';
import type { ControlServer } from '../control/control-server.js';
import type { PeerCredentials } from '../control/peer-credentials.js';
import type { Priority, ServiceLogger } from './log.js';
import type { Metrics, MetricsWriter } from './metrics.js';
import { protectFilter, RunningConfig } from './running-config.js';
import type { Notifier } from './systemd-notify.js';

type ServiceParts = typeof import('./service-parts.js');

export interface ServiceOptions {
  version: string;
  /** The classes, as declared: all the start needs before bpftrace is spawned. */
  classes: readonly ClassDeclaration[];
  /** The classes with their runtimes, one per declaration (classes/registry.ts, loaded while bpftrace compiles). */
  runtimes: () => Promise<readonly DeviceClass[]>;
  configPath: string;
  stateDir: string;
  runtimeDir: string;
  bpftrace: string;
  /** What runs the taps (core/precompiled-taps.ts); default auto. */
  taps?: TapEngineChoice;
  allowFaults: boolean;
  /** --log-level: overrides LogLevel=. */
  logLevel: Priority | undefined;
  logger: ServiceLogger;
  notify: Notifier;
}

/** A start that cannot go on: logged and reported to systemd by the caller, which exits 1. */
export class StartError extends Error {
  constructor(
    message: string,
    /** The STATUS= line for systemd. */
    readonly status = `failed to start: ${message}`,
  ) {
    super(message);
  }
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export class ShadowdService {
  private readonly classes: ClassSet;
  private readonly startedAt = Date.now();
  private started = false;
  private reloadWanted = false;
  private stopping = false;
  private stopBegan = 0;
  private running!: RunningConfig;
  private store!: ShadowStore;
  private taps!: TapsRunner;
  private readonly runtimes = new Map<string, ClassRuntime>();
  private recovery!: RecoveryManager;
  private history!: RecoveryHistory;
  private detectors: Detectors | null = null;
  private server!: ControlServer;
  private metricsWriter: MetricsWriter | null = null;
  private metrics!: Metrics;
  // The helper module is opened at the first recovery, so passive mode runs without it.
  private helper: HelperConnection | null = null;
  // The classes' polls (a stall detector's) have their own connection: one must not queue behind a restart that holds the other.
  private pollHelper: HelperConnection | null = null;

  constructor(private readonly opts: ServiceOptions) {
    this.classes = new ClassSet(opts.classes);
  }

  /** Starts everything; throws StartError (already logged) when it cannot. Resolves once ready. */
  async start(): Promise<void> {
    const { logger, notify } = this.opts;
    this.phase('modules loaded');
    const configured = RunningConfig.start({
      path: this.opts.configPath,
      classes: this.classes,
      logger,
      logLevel: this.opts.logLevel,
      allowFaults: this.opts.allowFaults,
      onApply: (c) => this.metricsWriter?.configure(c.daemon.metricsTextfile, c.daemon.metricsIntervalSec),
    });
    if (!configured.ok) {
      // Each error is logged already, with file, line and key.
      const n = configured.errors.length;
      logger.log('err', `not starting: ${this.opts.configPath} has ${n} error${n === 1 ? '' : 's'} (docs/configuration.md describes the format)`);
      throw new StartError(`${this.opts.configPath} has errors`, `not started: ${n} error${n === 1 ? '' : 's'} in ${this.opts.configPath}`);
    }
    this.running = configured.running;

    // Members of the shadowd group may run read-only shadowctl commands; without the group only root can use the socket.
    let group = lookupGroup(CONTROL_GROUP);
    if (group === null) logger.log('notice', `there is no ${CONTROL_GROUP} group: only root can use shadowctl (groupadd --system ${CONTROL_GROUP}, then restart shadowd, lets its members run read-only commands)`);
    try {
      mkdirSync(this.opts.stateDir, { recursive: true, mode: 0o750 });
    } catch (err) {
      // The store says what that means (it runs without persistence).
      logger.log('err', `cannot create the state directory ${this.opts.stateDir}: ${messageOf(err)}`);
    }
    try {
      // systemd made $RUNTIME_DIRECTORY for us; a directory given with --runtime-dir that was already there is not ours to change.
      const adopt = this.opts.runtimeDir === process.env['RUNTIME_DIRECTORY'];
      try {
        prepareRuntimeDir(this.opts.runtimeDir, group, adopt);
      } catch (err) {
        if (group === null) throw err;
        logger.log('warning', `cannot give ${this.opts.runtimeDir} to the ${CONTROL_GROUP} group: ${messageOf(err)}; only root can use shadowctl`);
        group = null;
        prepareRuntimeDir(this.opts.runtimeDir, null, adopt);
      }
    } catch (err) {
      throw this.fatal(`cannot prepare ${this.opts.runtimeDir}`, err);
    }

    // The taps now (their program goes to the runtime directory): the rest of the start happens while bpftrace compiles them.
    let engine: TapEngine;
    try {
      engine = chooseTapEngine(this.classes.all, this.opts.taps ?? 'auto');
    } catch (err) {
      throw this.fatal('cannot run the taps', err);
    }
    logger.log('info', `the taps run under ${engine.kind === 'libbpf' ? 'taps-loader' : 'bpftrace'}: ${engine.why}`, { SHADOWD_COMPONENT: 'ingest' });
    this.taps = new TapsRunner(this.classes.all, {
      logger,
      bpftrace: this.opts.bpftrace,
      precompiled: engine.kind === 'libbpf' ? engine.taps : null,
      programDir: this.opts.runtimeDir,
      phase: (what) => this.phase(what),
    });
    notify.status(`attaching the taps of ${this.classes.ids.join(', ')} (${engine.kind === 'libbpf' ? 'taps-loader loads them' : 'bpftrace compiles them'})`);
    // The classes read their devices side by side, each as soon as its taps are live
    // (one bpftrace runs them all): what changes after the taps are live is seen by
    // them, and held until the class's first read is done (TapsRunner.attach).
    const tapsLive = this.taps.startEach();
    try {
      await this.startBesideTaps(tapsLive, group);
    } catch (err) {
      // bpftrace may still be compiling: it must not outlive a start that failed, nor be restarted.
      this.taps.abort();
      throw err;
    }
  }

  /** The start once the taps are starting: what it does before their attach overlaps bpftrace's compile. */
  private async startBesideTaps(tapsLive: Map<string, Promise<void>>, group: number | null): Promise<void> {
    const { logger, notify } = this.opts;
    // Nothing Node does here may hold up the spawn: the modules are loaded after it.
    await this.taps.spawned;
    let parts: ServiceParts;
    let runtimes: Map<string, DeviceClass>;
    try {
      const [loaded, classes] = await Promise.all([import('./service-parts.js'), this.opts.runtimes()]);
      parts = loaded;
      runtimes = new Map(classes.map((c) => [c.id, c]));
      const missing = this.classes.ids.filter((id) => !runtimes.has(id));
      if (missing.length > 0) throw new Error(`no runtime for the class${missing.length === 1 ? '' : 'es'} ${missing.join(', ')}`);
    } catch (err) {
      throw this.fatal('cannot load the daemon', err);
    }
    this.phase('service modules loaded');
    this.metrics = new parts.Metrics(this.startedAt);
    this.helper = parts.helperConnection();
    this.pollHelper = parts.helperConnection();
    try {
      // A corrupt file is moved aside, one that cannot be opened leaves the shadow in memory only (both logged).
      this.store = new parts.ShadowStore(join(this.opts.stateDir, 'state.db'), {
        logger,
        onChange: () => {
          if (this.started && !this.stopping) notify.status(this.runningStatus());
        },
      });
    } catch (err) {
      throw this.fatal(`cannot open the state in ${this.opts.stateDir}`, err);
    }
    this.phase('state opened');
    try {
      this.history = new parts.RecoveryHistory(this.store.database, undefined, this.store.health);
    } catch (err) {
      throw this.fatal('cannot open the recovery history', err);
    }
    this.phase('recovery history opened');

    // The recovery manager exists once the shadows are ready; until then nothing restarts.
    let held: (ref: DeviceRef) => boolean = () => false;
    const report = (f: Parameters<RecoveryManager['report']>[0]): void => void this.recovery.report(f);
    const protectedReport = protectFilter(report, {
      protects: (ref, driver) => this.running.protects(ref, driver),
      recoversWarnings: (ref, driver) => this.running.recoversWarnings(ref, driver),
      driverOf: (ref) => this.runtimes.get(ref.cls)?.lookup(ref.name)?.driver ?? null,
      logger,
    });
    // The first failure stops the start and is logged; another class's after it is not.
    let failed = false;
    const fail = (what: string, err: unknown): StartError => {
      const e = failed ? new StartError(`${what}: ${messageOf(err)}`) : this.fatal(what, err);
      failed = true;
      return e;
    };
    const openClass = async (cls: ClassDeclaration): Promise<void> => {
      try {
        await tapsLive.get(cls.id);
      } catch (err) {
        throw fail('cannot attach the taps', err);
      }
      this.phase(`${cls.id} taps attached`);
      notify.status(`${this.taps.stats().probes} taps attached; reading the ${cls.title} devices`);
      const runtime = runtimes.get(cls.id)!.open({
        logger,
        store: this.store,
        helper: () => this.helper!.get(),
        pollHelper: () => this.pollHelper!.get(),
        syncTaps: () => this.taps.sync(cls.id),
        // Protect=no: the failure is logged, and no recovery starts.
        report: (f) => protectedReport(f),
        held: (name) => held({ cls: cls.id, name }),
        setting: (name, driver, key) => this.running.setting({ cls: cls.id, name }, driver, key),
      });
      try {
        await runtime.resync('start-up');
      } catch (err) {
        throw fail(`cannot read the ${cls.title} devices`, err);
      }
      this.phase(`${cls.id} devices read`);
      this.runtimes.set(cls.id, runtime);
      this.taps.attach(cls.id, runtime);
    };
    await Promise.all(this.classes.all.map(openClass));
    // In the classes' order, whichever read its devices first: status lists them so.
    const opened = new Map(this.runtimes);
    this.runtimes.clear();
    for (const cls of this.classes.all) this.runtimes.set(cls.id, opened.get(cls.id)!);

    notify.status('loading the recovery history');
    try {
      const ports = new Map<string, RecoveryPort>(
        this.classes.all.map((cls) => {
          const rt = this.runtime(cls.id);
          const canRefuse = rt.refuseRestart !== undefined;
          return [
            cls.id,
            {
              decl: cls,
              lookup: (name) => rt.lookup(name),
              replay: rt.replay,
              afterRestart: (name, reply) => rt.afterRestart(name, reply),
              ...(canRefuse ? { refuseRestart: (name: string) => rt.refuseRestart?.(name) ?? Promise.resolve(null) } : {}),
            },
          ];
        }),
      );
      this.recovery = new parts.RecoveryManager({
        history: this.history,
        logger,
        helper: () => this.helper!.get(),
        classes: ports,
        // Asked at each decision, so a reload takes effect at once.
        policy: (ref, driver) => this.running.recoveryPolicy(ref, driver),
        faultInjection: () => this.running.faultInjection(),
        onFinished: (rec) => parts.recordFinished(this.metrics, rec),
      });
      this.recovery.start();
      // The helper keeps the device through a restart and a park: the taps
      // seeing the driver let go of it does not mean the device went away.
      held = (ref) => {
        const st = this.recovery.deviceState(ref);
        return st.recoveryId !== null || st.gaveUp !== null;
      };
    } catch (err) {
      throw this.fatal('cannot open the recovery history', err);
    }
    this.phase('recovery history loaded');

    this.detectors = parts.startDetectors({
      logger,
      report: protectedReport,
      devices: () => this.moduleDevices(),
      rules: this.classes.all.flatMap((c) => c.kernelLogRules),
      classes: new Map(this.classes.all.map((c) => [c.id, () => this.runtime(c.id).startDetectors()])),
      interrupts: {
        devices: () =>
          [...this.runtimes].flatMap(([cls, rt]) =>
            rt.list().flatMap((d) => (d.health === 'ok' && d.bus !== null ? [{ cls, name: d.name, driver: d.driver, bus: d.bus }] : [])),
          ),
        held: (cls, name) => held({ cls, name }),
        thresholdMs: (d) => this.running.lostIrqMs({ cls: d.cls, name: d.name }, d.driver),
      },
    });
    for (const [cls, d] of this.detectors.classes) this.taps.onTapEvent(cls, d.onTapEvent ? (e) => d.onTapEvent?.(e) : null);
    this.phase('detectors started');

    const socketPath = join(this.opts.runtimeDir, 'control.sock');
    try {
      this.server = await parts.startControlServer(socketPath, (req, peer) => this.handle(req, peer), logger, this.classes, { group });
    } catch (err) {
      throw this.fatal(`cannot listen on ${socketPath}`, err);
    }

    // Metrics, when MetricsTextfile= is set: the gauges are read at each write.
    this.metricsWriter = new parts.MetricsWriter({
      metrics: this.metrics,
      logger,
      refresh: () => {
        this.metrics.setTapEventsLost(this.taps.stats().lost);
        this.metrics.setStatePersisted(!this.store.health.degraded);
        for (const [cls, rt] of this.runtimes) this.metrics.setShadowEntries(cls, parts.shadowEntriesByDevice(rt.list()));
      },
    });
    this.metricsWriter.configure(this.running.config.daemon.metricsTextfile, this.running.config.daemon.metricsIntervalSec);

    this.phase('control socket listening');
    // Ready: taps attached, state loaded, socket listening. Units ordered after shadowd start now.
    notify.ready(this.runningStatus());
    this.phase('ready');
    notify.startWatchdog();
    this.started = true;
    logger.log('notice', `shadowd ${this.opts.version} ready: ${this.taps.stats().probes} probes attached, ${this.devices().length} device(s) of ${this.classes.ids.join(', ')}, control socket ${socketPath}`);
    if (this.reloadWanted) this.reloadFromSignal('SIGHUP (received during the start)');
  }

  /** SIGHUP: a reload asked for during the start waits until the daemon is ready. */
  onSighup(): void {
    if (!this.started) this.reloadWanted = true;
    else if (!this.stopping) this.reloadFromSignal('SIGHUP');
  }

  async stop(signal: string): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.stopBegan = performance.now();
    this.opts.notify.stopping(`stopping on ${signal}`);
    this.opts.logger.log('notice', `stopping on ${signal}`);
    await this.detectors?.stop();
    this.stopPhase('detectors stopped');
    await this.taps?.stop();
    this.stopPhase('taps stopped');
    await Promise.all([...this.runtimes.values()].map((rt) => rt.settled()));
    this.stopPhase('classes settled');
    await this.recovery?.stop();
    this.stopPhase('recoveries stopped');
    // Last, with the recoveries that ended while stopping, and shadowd_up 0.
    await this.metricsWriter?.stop();
    await this.helper?.close();
    await this.pollHelper?.close();
    await this.server?.close();
    this.store?.close();
    this.stopPhase('stopped');
  }

  private runtime(cls: string): ClassRuntime {
    const rt = this.runtimes.get(cls);
    if (!rt) throw new Error(`the ${cls} class is not running`);
    return rt;
  }

  /** Every class's devices, with their recovery mode. */
  private devices(): DeviceStatus[] {
    return [...this.runtimes.values()].flatMap((rt) => rt.list()).map((d) => ({ ...d, mode: this.mode({ cls: d.cls, name: d.name }) }));
  }

  private mode(ref: DeviceRef): DeviceStatus['mode'] {
    if (this.recovery.isActive(ref)) return 'active';
    return this.recovery.deviceState(ref).gaveUp !== null ? 'parked' : 'passive';
  }

  private async moduleDevices(): Promise<ClassDevice[]> {
    const lists = await Promise.all(
      [...this.runtimes].map(async ([cls, rt]) => {
        try {
          return (await rt.moduleDevices()).map((d) => ({ ...d, cls }));
        } catch (err) {
          this.opts.logger.log('warning', `cannot read the ${cls} devices to blame a kernel report on: ${messageOf(err)}`, { SHADOWD_CLASS: cls });
          return [];
        }
      }),
    );
    return lists.flat();
  }

  private handle(req: Request, peer: PeerCredentials | null): Promise<unknown> {
    const requester = peer ? `uid ${peer.uid} (pid ${peer.pid})` : undefined;
    switch (req.method) {
      case 'status': {
        const pendingReads = [...this.runtimes.values()].reduce((n, rt) => n + rt.pendingReads(), 0);
        return Promise.resolve<StatusResult>({
          version: this.opts.version,
          pid: process.pid,
          startedAt: this.startedAt,
          classes: this.classes.all.map((c) => ({ id: c.id, title: c.title, attrs: [...c.attrs] })),
          taps: this.taps.stats(),
          pendingReads,
          devices: this.devices(),
          persistence: this.store.health.status(),
          unrecovered: this.history.unrecovered(),
        });
      }
      case 'show': {
        const { cls, name } = req.params.device;
        const shown = this.runtime(cls).show(name);
        return Promise.resolve({ ...shown, device: { ...shown.device, mode: this.mode(req.params.device) } });
      }
      case 'version':
        return Promise.resolve<VersionResult>({ version: this.opts.version, protocol: PROTOCOL_VERSION });
      case 'recover':
        return this.recovery.recover(req.params.device, requester, { reload: req.params.reload });
      case 'replay':
        return this.recovery.replay(req.params.device, requester);
      case 'inject':
        return this.recovery.inject(req.params.device, req.params.fault, req.params.sticky, requester);
      case 'history': {
        const { device, cls, limit } = req.params;
        return Promise.resolve<HistoryResult>({ recoveries: this.history.list({ cls: device?.cls ?? cls, device: device?.name, limit }) });
      }
      case 'reload':
        if (this.stopping) return Promise.reject(new RequestError('EBUSY', 'shadowd is stopping'));
        return Promise.resolve<ReloadResult>(this.reload(`shadowctl reload${peer ? ` by ${requester}` : ''}`));
    }
  }

  /** The STATUS= line while running. */
  private runningStatus(): string {
    const n = this.devices().filter((d) => d.health === 'ok').length;
    const degraded = this.store.health.degraded ? `; state not persisted (${this.store.health.status().code ?? 'error'})` : '';
    return `watching ${n} device${n === 1 ? '' : 's'} (${this.classes.ids.join(', ')}); ${this.taps.stats().probes} taps attached${degraded}`;
  }

  /** SIGHUP and shadowctl reload: re-reads the configuration; one with errors is refused and the running one stays. */
  private reload(by: string): ReloadResult {
    const { logger, notify } = this.opts;
    notify.reloading(`reloading ${this.running.path}`);
    logger.log('info', `reloading the configuration on ${by}`, { SHADOWD_CONFIG: this.running.path });
    const result = this.running.reload();
    const n = result.errors.length;
    notify.ready(result.ok ? this.runningStatus() : `${this.runningStatus()}; ${this.running.path} refused (${n} error${n === 1 ? '' : 's'}), previous configuration in force`);
    return result;
  }

  /** A reload nobody waits for: a bug in it is logged, and must not end the daemon. */
  private reloadFromSignal(by: string): void {
    try {
      this.reload(by);
    } catch (err) {
      this.opts.logger.log('err', `reloading the configuration failed: ${messageOf(err)}`);
      this.opts.notify.ready(`${this.runningStatus()}; the last reload failed`);
    }
  }

  /** A debug line per start-up phase, with the time since the process started: where a slow start goes. */
  private phase(what: string): void {
    this.opts.logger.log('debug', `start-up: ${what} at ${Math.round(performance.now())} ms`, { SHADOWD_COMPONENT: 'start-up' });
  }

  /** A debug line per stop phase, with the time since the stop began: where a slow stop goes. */
  private stopPhase(what: string): void {
    this.opts.logger.log('debug', `stop: ${what} at ${Math.round(performance.now() - this.stopBegan)} ms`, { SHADOWD_COMPONENT: 'stop' });
  }

  private fatal(what: string, err: unknown): StartError {
    const message = `${what}: ${messageOf(err)}`;
    this.opts.logger.log('err', message);
    return new StartError(message);
  }
}

