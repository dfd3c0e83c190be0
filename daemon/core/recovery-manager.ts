// The shadow recovery manager: turns failure reports into recoveries, one at a
// time per device, within a rate limit, and gives up cleanly when a driver
// keeps failing. The kernel helper does the restart; this decides when, keeps
// the history and tells the journal. It serves every device class alike: a
// device is CLASS:NAME, and what differs by class (which devices exist, the
// helper's replay steps, the replay from the shadow, what to check after a
// restart) it asks of the class through a RecoveryPort.
//
// A recovery: detected → (back-off) → active (restart: the shadow
// answers for the driver) → check (the helper's replay steps, then what
// userspace replays) → passive. Each attempt is its own recovery with its own
// id; one that cannot run within the limit gives up and parks the device.
// A device given up on is tried once more after a cool-down (retryMs, doubling
// while the retries give up again within the window, up to retryMaxMs): a
// cause that went away (a peer's PAUSE flood, a transient hardware state)
// then no longer leaves the device out of service until someone acts.
// A failure reported before the restart completed is the same failure and is
// merged; one reported during the check means the restart did not cure it:
// that recovery fails and the report is a fresh failure, under the policy.
// The restart re-probes the device; it reloads the driver's module as well
// when the driver's own code is suspect (an oops or BUG blamed on it) or a
// person asks (shadowctl recover --reload). A reload the helper refuses
// without touching the device falls back on a re-probe in the same recovery.
import type { ClassDeclaration, ClassReplay, DeviceInfo, ReplayReport } from './device-class.js';
import { formatRef, type DeviceRef } from './device-ref.js';
import { GENERIC_FAILURE_KINDS, type FailureKind, type FailureReport } from './failure-report.js';
import type { HelperClient, HelperReply } from './helper-client.js';
import {
  expectPayload,
  injectCommand,
  modulePhases,
  parkCommand,
  parseRestartReply,
  RELOAD_STEP,
  restartCommand,
  restartErrorSteps,
  type RestartMethod,
  type RestartReply,
  type RestartStepResult,
} from './helper-protocol.js';
import { RequestError } from './request-error.js';
import type { LogFields, Logger, Priority } from '../service/log.js';
import { MESSAGE_FAILURE_DETECTED, MESSAGE_GAVE_UP, MESSAGE_RECOVERED, MESSAGE_RECOVERY_FAILED, MESSAGE_RECOVERY_STARTED, MESSAGE_REPLAY_STEP_FAILED } from '../service/message-ids.js';
import type { RecoveryHistory, RecoveryRecord, RecoveryResult, RecoveryStep, RecoveryTrigger } from './recovery-history.js';

export type { DeviceInfo, ReplayReport };

/** What `shadowctl inject` did: the helper's reply, e.g. "injected net:eth0 tx-hang". */
export interface InjectResult {
  /** CLASS:NAME */
  device: string;
  fault: string;
  sticky: boolean;
  reply: string;
}

/** Removes an injected fault, in every class. */
const CLEAR = 'clear';

/** What the manager needs of a device class (the class's runtime, core/device-class.ts, and its declaration). */
export interface RecoveryPort {
  decl: Pick<ClassDeclaration, 'id' | 'noun' | 'names' | 'faults' | 'failureKinds' | 'restartSteps' | 'restartFields' | 'restartFieldsFromZero' | 'restartNames' | 'parkedAs'>;
  /** The device of that name the class's shadow holds (present rather than absent), or null. */
  lookup(name: string): DeviceInfo | null;
  /**
   * The replay from the shadow: marked as a restart is sent, replayed in the
   * recovery's check with that mark (what the restart lost), and without
   * one for `replay`. Without it, `replay` is unavailable.
   */
  replay?: ClassReplay;
  /** After a successful restart: problems the class finds (a device that came back changed). */
  afterRestart?(name: string, reply: RestartReply): string[];
  /** Before a restart: why it would make things worse, or null (ClassRuntime.refuseRestart). */
  refuseRestart?(name: string): Promise<string | null>;
}

export interface RecoveryPolicy {
  /** Recoveries allowed per device within windowMs; one more gives up. */
  maxRecoveries: number;
  windowMs: number;
  /** Wait before a device's second recovery in the window; doubles for each further one. */
  backoffMs: number;
  backoffMaxMs: number;
  /** After a give-up, try the device again this long after (0: never on its own); doubles while retries give up again... */
  retryMs: number;
  /** ...up to this. */
  retryMaxMs: number;
}

export const DEFAULT_POLICY: Readonly<RecoveryPolicy> = {
  maxRecoveries: 3,
  windowMs: 10 * 60_000,
  backoffMs: 2_000,
  backoffMaxMs: 60_000,
  retryMs: 15 * 60_000,
  retryMaxMs: 6 * 3_600_000,
};

/** Throws a RangeError naming the bad value (the policy comes from a configuration file). */
export function checkPolicy(p: RecoveryPolicy): RecoveryPolicy {
  const int = (name: keyof RecoveryPolicy, min: number): void => {
    const v = p[name];
    if (!Number.isSafeInteger(v) || v < min) throw new RangeError(`recovery policy: ${name} must be an integer of at least ${min}, not ${String(v)}`);
  };
  int('maxRecoveries', 1);
  int('windowMs', 1);
  int('backoffMs', 0);
  int('backoffMaxMs', 0);
  int('retryMs', 0);
  int('retryMaxMs', 0);
  if (p.backoffMaxMs < p.backoffMs) throw new RangeError(`recovery policy: backoffMaxMs (${p.backoffMaxMs}) is less than backoffMs (${p.backoffMs})`);
  if (p.retryMaxMs < p.retryMs) throw new RangeError(`recovery policy: retryMaxMs (${p.retryMaxMs}) is less than retryMs (${p.retryMs})`);
  return p;
}

export interface RecoveryManagerOptions {
  history: RecoveryHistory;
  logger: Logger;
  /** The kernel helper's connection; rejects with a message that says what to do (e.g. load the module). */
  helper: () => Promise<HelperClient>;
  /** The classes, by id: a report or request for a device of another class is refused. */
  classes: ReadonlyMap<string, RecoveryPort>;
  /** Over DEFAULT_POLICY: fixed, or per device (a configuration file's device, driver and class sections). */
  policy?: Partial<RecoveryPolicy> | ((ref: DeviceRef, driver: string | null) => Partial<RecoveryPolicy>);
  /** Whether `inject` may be used (a configuration setting; the helper must allow faults too). Default: yes. */
  faultInjection?: () => boolean;
  /** Called with each recovery or replay once it has ended, its record final (metrics). Must not throw; if it does, that is logged. */
  onFinished?: (record: Readonly<RecoveryRecord>) => void;
  now?: () => number;
}

export type Phase = 'detected' | 'backoff' | 'active' | 'check' | 'passive' | 'gave-up' | 'replay';

export type ReportOutcome =
  | { action: 'started' | 'merged'; id: string; done: Promise<RecoveryRecord> }
  | { action: 'ignored'; reason: string };

export interface DeviceRecoveryState {
  /** The recovery under way (waiting or running), if any. */
  recoveryId: string | null;
  phase: Phase | null;
  /** The recovery that gave up on the device, while it stays given up. */
  gaveUp: string | null;
  /** Recoveries counted against the limit in the current window. */
  recent: number;
}

interface Running {
  record: RecoveryRecord;
  phase: Phase;
  /** Requested by a person: no automatic retry after it. */
  manual: boolean;
  retryable: boolean;
  /** Ends the back-off wait early. */
  wake: (() => void) | null;
  /** When the check phase began, once the restart completed. */
  checkStartedAt: number | null;
  /** Whether its restart reloads the driver's module (reloadFor); decided until the restart begins. */
  reload: boolean;
  /** What did not go as asked in the restart (a reload refused or not done), for the record's note. */
  restartNotes: string[];
  /** What the class replay's mark returned as the restart was sent. */
  restartMark?: Promise<number>;
  done: Promise<RecoveryRecord>;
}

/** What a person may ask of a manual recovery. */
export interface RecoverOptions {
  /** Also unload and load the driver's module (for a driver whose code is suspect). */
  reload?: boolean;
}

interface DeviceState {
  /** Recoveries counted against the limit: when each started. */
  attempts: { at: number; id: string }[];
  /** When the last attempt ended: the back-off counts from there. */
  lastEndedAt: number | null;
  gaveUp: { id: string; at: number } | null;
  /** The try again after the give-up, while one is due. */
  retryTimer: NodeJS.Timeout | null;
  /** Retries in a row that gave up again within the window (the cool-down doubles with each). */
  retries: number;
  /** When the last retry began, or null. */
  retryStartedAt: number | null;
  /** Failure reports ignored since giving up (only the first is logged above debug). */
  ignored: number;
  current: Running | null;
  replaying: boolean;
  /** Serialises what touches the driver: restarts, parks and replays. */
  lock: Promise<unknown>;
  /** The device's bus address (its restart unit) as its class knows it now, or null. */
  unit: () => string | null;
}

class AttemptFailure extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}

/** A restart in the kernel takes about a second; one still running after this is reported as stuck. */
export const SLOW_RESTART_MS = 30_000;

const MAX_DETAIL = 500;

/**
 * Whether a failure of this kind calls for reloading the driver's module: an
 * oops or BUG blamed on the driver (the kernel-log detector reports only
 * those) means its code or its module's state is suspect, which re-probing
 * the device with the same module loaded would not clear. A WARN, a TX
 * timeout or a stall is the device's state: a re-probe suffices.
 */
export function reloadFor(kind: RecoveryTrigger): boolean {
  return kind === 'oops' || kind === 'bug';
}

/**
 * Whether the helper refused `restart IFACE ID reload` before it touched the
 * device (which still runs its driver as it did), for a reason a plain
 * restart does not share: the driver is built in or not on a PCI device
 * (EOPNOTSUPP), it drives other devices too (EBUSY, unlike "another restart
 * is running"), or the device has no driver to reload (ENODEV: parked).
 */
export function reloadRefused(errno: string, message: string): boolean {
  if (errno === 'EOPNOTSUPP') return true;
  if (errno === 'EBUSY') return / drives \d+ devices/.test(message);
  if (errno === 'ENODEV') return / has no driver$/.test(message);
  return false;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** 1500 → "1.5 s", 600000 → "10 min". */
export function span(ms: number): string {
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${Number((ms / 1000).toFixed(1))} s`;
  if (ms < 3_600_000) return `${Number((ms / 60_000).toFixed(1))} min`;
  return `${Number((ms / 3_600_000).toFixed(1))} h`;
}

/** Why a failure report cannot be acted on, or null. Detectors are code, but a bad report must not start a recovery. */
export function checkFailureReport(f: FailureReport, classes: ReadonlyMap<string, RecoveryPort>): string | null {
  if (typeof f !== 'object' || f === null) return 'it is not an object';
  const port = typeof f.cls === 'string' ? classes.get(f.cls) : undefined;
  if (!port) return `class ${JSON.stringify(f.cls)} is not one of ${[...classes.keys()].join(', ')}`;
  const decl = port.decl;
  if (typeof f.device !== 'string' || !decl.names.valid(f.device)) return `device ${JSON.stringify(f.device)} is not ${decl.names.describe}`;
  const kinds: readonly string[] = [...GENERIC_FAILURE_KINDS, ...decl.failureKinds];
  if (typeof f.kind !== 'string' || !kinds.includes(f.kind)) return `kind ${JSON.stringify(f.kind)} is not one of ${kinds.join(', ')} (class ${decl.id})`;
  if (typeof f.detail !== 'string') return 'detail is not a string';
  if (typeof f.detectedAt !== 'number' || !Number.isFinite(f.detectedAt)) return 'detectedAt is not a time';
  if (f.since !== undefined && (typeof f.since !== 'number' || !Number.isFinite(f.since))) return 'since is not a time';
  if (f.driver !== undefined && typeof f.driver !== 'string') return 'driver is not a string';
  if (f.restartsBefore !== undefined && (!Array.isArray(f.restartsBefore) || f.restartsBefore.some((id) => typeof id !== 'string'))) return 'restartsBefore is not a list of recovery ids';
  return null;
}

export class RecoveryManager {
  /** The policy of a device the per-device source says nothing about (or of every device, when fixed). */
  readonly policy: Readonly<RecoveryPolicy>;
  private readonly policySource: ((ref: DeviceRef, driver: string | null) => Partial<RecoveryPolicy>) | null;
  private readonly faultInjection: () => boolean;
  private readonly history: RecoveryHistory;
  private readonly logger: Logger;
  private readonly helper: () => Promise<HelperClient>;
  private readonly classes: ReadonlyMap<string, RecoveryPort>;
  private readonly onFinished: RecoveryManagerOptions['onFinished'];
  private readonly now: () => number;
  /** By CLASS:NAME. */
  private readonly devices = new Map<string, DeviceState>();
  /** The last exclusive work per bus device (the restart unit), by its bus address. */
  private readonly units = new Map<string, Promise<unknown>>();
  private counter = 0;
  private stopping = false;

  constructor(options: RecoveryManagerOptions) {
    const policy = options.policy;
    this.policySource = typeof policy === 'function' ? policy : null;
    this.policy = Object.freeze(checkPolicy({ ...DEFAULT_POLICY, ...(typeof policy === 'function' ? {} : policy) }));
    this.faultInjection = options.faultInjection ?? (() => true);
    this.history = options.history;
    this.logger = options.logger;
    this.helper = options.helper;
    this.classes = options.classes;
    this.onFinished = options.onFinished;
    this.now = options.now ?? Date.now;
  }

  /**
   * Closes the recoveries a previous daemon left unfinished, and takes up the
   * policy where it stood: recent recoveries still count and a device given
   * up stays given up, so a daemon restarted by a crash during recovery does
   * not recover in a loop.
   */
  start(): void {
    const now = this.now();
    for (const r of this.history.closeInterrupted(now)) {
      this.log('warning', r, 'detected', `${r.device}: recovery ${r.id} (${r.trigger}) was interrupted: shadowd stopped during it; check the device with shadowctl status`);
    }
    const recent = this.history.list({ limit: 1000 }).reverse();
    for (const r of recent) {
      if (r.trigger === 'replay' || r.result === 'gave-up') continue;
      const st = this.state(refOf(r));
      // A manual recovery or a retry reset the device's count and back-off: what came before it no longer counts.
      if (r.trigger === 'manual' || r.trigger === RETRY_TRIGGER) {
        st.attempts = [];
        st.lastEndedAt = null;
      }
      if (r.startedAt <= now - this.policyFor(refOf(r), r.driver).windowMs) continue;
      st.attempts.push({ at: r.startedAt, id: r.id });
      st.lastEndedAt = Math.max(st.lastEndedAt ?? 0, r.endedAt ?? r.startedAt);
    }
    for (const r of this.history.latestRecoveries()) {
      if (r.result !== 'gave-up') continue;
      const st = this.state(refOf(r));
      st.gaveUp = { id: r.id, at: r.endedAt ?? r.startedAt };
      this.scheduleRetry(st, refOf(r), r.driver);
    }
  }

  /** A detector's failure report: starts a recovery, merges into the one under way, or is ignored (and says why). */
  report(f: FailureReport): ReportOutcome {
    const bad = checkFailureReport(f, this.classes);
    if (bad) {
      this.logger.log('warning', `ignored a malformed failure report: ${bad}`, { SHADOWD_CLASS: typeof f?.cls === 'string' ? f.cls.slice(0, 32) : undefined });
      return { action: 'ignored', reason: `malformed failure report: ${bad}` };
    }
    const detail = f.detail.length > MAX_DETAIL ? `${f.detail.slice(0, MAX_DETAIL)}...` : f.detail;
    const ref: DeviceRef = { cls: f.cls, name: f.device };
    const base = { SHADOWD_DEVICE: f.device, SHADOWD_DRIVER: f.driver, SHADOWD_CLASS: f.cls, SHADOWD_FAILURE: f.kind };
    if (this.stopping) return { action: 'ignored', reason: 'shadowd is stopping' };
    const port = this.port(ref);
    const known = port.lookup(f.device);
    if (!known) {
      this.logger.log('warning', `${f.device}: ${f.kind} failure reported, but shadowd watches no such device: ignored (${detail})`, base);
      return { action: 'ignored', reason: `shadowd watches no ${port.decl.noun} named ${f.device}` };
    }
    const st = this.state(ref);
    if (st.gaveUp) {
      const reason = `shadowd gave up on ${f.device} (${st.gaveUp.id}); it recovers it again on "shadowctl recover ${formatRef(ref)}"${this.retryNote(st)}`;
      this.logger.log(st.ignored++ === 0 ? 'notice' : 'debug', `${f.device}: ${f.kind} failure report ignored: ${reason}`, {
        ...base,
        SHADOWD_RECOVERY_ID: st.gaveUp.id,
        SHADOWD_PHASE: 'gave-up',
      });
      return { action: 'ignored', reason };
    }
    // An ended recovery only waits to let go of the device: a report now is a fresh failure.
    const cur = st.current?.record.endedAt === null ? st.current : null;
    let failedAgain: string | null = null;
    // A kernel log line written before this recovery's restart, read during its check, is the failure being recovered.
    const stale = cur !== null && f.restartsBefore !== undefined && !f.restartsBefore.includes(cur.record.id);
    if (cur?.phase === 'check' && !stale) {
      // The driver was restarted and its configuration replayed: the failure is back, so the restart did not cure it.
      this.failAgain(st, cur, f.kind, detail);
      failedAgain = cur.record.id;
    } else if (cur) {
      cur.record.merged++;
      this.save('update', cur.record);
      // The driver's code is suspect now, and its restart has not begun: it reloads the module.
      const upgrade = reloadFor(f.kind) && !cur.reload && (cur.phase === 'detected' || cur.phase === 'backoff');
      if (upgrade) cur.reload = true;
      this.log(
        'info',
        cur.record,
        cur.phase,
        `${f.device}: ${f.kind} failure report merged into recovery ${cur.record.id}, already under way${upgrade ? "; its restart will reload the driver's module" : ''}: ${detail}`,
        { SHADOWD_FAILURE: f.kind },
      );
      return { action: 'merged', id: cur.record.id, done: cur.done };
    }
    const run = this.begin(st, {
      ref,
      driver: f.driver ?? known.driver,
      trigger: f.kind,
      detail,
      manual: false,
      detectMs: f.since !== undefined && f.since <= f.detectedAt ? f.detectedAt - f.since : undefined,
      announce: (rec) =>
        this.log('warning', rec, 'detected', `${f.device}: driver ${rec.driver ?? '(unknown)'} failed${failedAgain ? ` again after recovery ${failedAgain} restarted it` : ''} (${f.kind}): ${detail}`, {
          MESSAGE_ID: MESSAGE_FAILURE_DETECTED,
          SHADOWD_FAILURE: f.kind,
          SHADOWD_PHASE_MS: rec.phases.detect,
        }),
    });
    return { action: 'started', id: run.record.id, done: run.done };
  }

  /**
   * A person's request to recover a device now: resets the device's policy
   * (the limit, the back-off, a give-up) and resolves with the ended recovery.
   * Joins a recovery already under way rather than starting a second.
   */
  async recover(ref: DeviceRef, requestedBy?: string, options: RecoverOptions = {}): Promise<RecoveryRecord> {
    const reload = options.reload === true;
    const known = this.checkRequest(ref);
    const device = ref.name;
    try {
      await this.helperFor(ref);
    } catch (err) {
      throw new RequestError('EHELPER', messageOf(err));
    }
    const st = this.state(ref);
    // A give-up being recorded would undo the reset below.
    if (st.current?.phase === 'gave-up') await st.current.done;
    const wasGivenUp = st.gaveUp;
    st.attempts = [];
    st.lastEndedAt = null;
    st.gaveUp = null;
    st.ignored = 0;
    this.cancelRetry(st);
    st.retries = 0;
    st.retryStartedAt = null;
    const cur = st.current;
    if (cur) {
      cur.manual = true;
      let how = '';
      let priority: Priority = 'info';
      if (reload && !cur.reload) {
        if (cur.phase === 'detected' || cur.phase === 'backoff') {
          cur.reload = true;
          how = "; its restart will reload the driver's module, as asked";
        } else {
          how = '; its restart began without a module reload, so none is done (ask again once it has ended)';
          priority = 'notice';
          cur.restartNotes.push('a module reload was asked for once the restart had begun: none was done');
        }
      }
      this.log(priority, cur.record, cur.phase, `${device}: manual recovery request joins recovery ${cur.record.id}, already under way${how}`);
      cur.wake?.();
      return cur.done;
    }
    const by = requestedBy ? ` by ${requestedBy}` : '';
    const withReload = reload ? ', with a module reload' : '';
    const run = this.begin(st, {
      ref,
      driver: known.driver,
      trigger: 'manual',
      detail: `requested${by}${withReload}${wasGivenUp ? ` after shadowd had given up (${wasGivenUp.id})` : ''}`,
      manual: true,
      reload,
      announce: (rec) => this.log('notice', rec, 'detected', `${device}: recovery requested${by}${withReload}${wasGivenUp ? `; the give-up (${wasGivenUp.id}) is lifted` : ''}`),
    });
    return run.done;
  }

  /** Replays the device's configuration from the shadow, recorded as a recovery of trigger 'replay'. */
  async replay(ref: DeviceRef, requestedBy?: string): Promise<RecoveryRecord> {
    const known = this.checkRequest(ref);
    const device = ref.name;
    const replayer = this.port(ref).replay;
    if (!replayer) throw new RequestError('EUNAVAIL', `this shadowd cannot replay a ${ref.cls} device's configuration from the shadow (the class has no replay)`);
    const st = this.state(ref);
    if (st.current) throw new RequestError('EBUSY', `${device} is being recovered (${st.current.record.id}); the recovery replays its configuration itself`);
    if (st.replaying) throw new RequestError('EBUSY', `a replay of ${device} is already running`);
    st.replaying = true;
    const rec = this.newRecord(ref, known.driver, 'replay', `requested${requestedBy ? ` by ${requestedBy}` : ''}`);
    this.save('insert', rec);
    try {
      await this.exclusive(st, async () => {
        this.log('notice', rec, 'replay', `${device}: replaying its configuration from the shadow (${rec.id})`);
        const t0 = this.now();
        let notes: string[];
        try {
          notes = this.recordReplay(rec, await replayer.replay(device));
        } catch (err) {
          rec.phases.check = this.now() - t0;
          this.finish(rec, 'failed', `replay failed: ${messageOf(err)}`);
          this.log('err', rec, 'replay', `${device}: replay ${rec.id} failed: ${messageOf(err)}`);
          return;
        }
        rec.phases.check = this.now() - t0;
        this.finish(rec, notes.length ? 'failed' : 'replayed', notes.length ? notes.join('; ') : null);
        const steps = rec.steps.length;
        if (notes.length) this.log('warning', rec, 'replay', `${device}: replay ${rec.id} incomplete: ${notes.join('; ')}`, { SHADOWD_PHASE_MS: rec.phases.check });
        else this.log('notice', rec, 'replay', `${device}: replayed ${steps} step${steps === 1 ? '' : 's'} in ${rec.phases.check} ms (${rec.id})`, { SHADOWD_PHASE_MS: rec.phases.check });
      });
    } finally {
      st.replaying = false;
    }
    return rec;
  }

  /** Injects a fault through the helper (it refuses with EPERM unless loaded with allow_faults=1), or clears one. */
  async inject(ref: DeviceRef, fault: string, sticky = false, requestedBy?: string): Promise<InjectResult> {
    const port = this.checkRef(ref);
    const device = ref.name;
    const faults = [...port.decl.faults, CLEAR];
    if (!faults.includes(fault)) throw new RequestError('EBADREQ', `fault must be one of ${faults.join(', ')}, not ${JSON.stringify(fault)}`);
    if (sticky && fault === CLEAR) throw new RequestError('EBADREQ', 'sticky applies to a fault, not to clear');
    // Clearing stays allowed: it only undoes.
    if (fault !== CLEAR && !this.faultInjection()) {
      throw new RequestError('EUNAVAIL', 'fault injection is turned off in the shadowd configuration (AllowFaultInjection=)');
    }
    const { command, expect } = injectCommand(ref, fault, sticky);
    let payload: string;
    try {
      const reply = await (await this.helperFor(ref)).request(command);
      if (!reply.ok) {
        const hint =
          reply.errno === 'EPERM' ? ' (fault injection is off: load shadow_helper with allow_faults=1)' : reply.errno === 'ENODEV' ? ` (no such ${port.decl.noun}, or it has no driver)` : '';
        throw new RequestError('EHELPER', `shadow_helper refused "${command}": ${reply.errno} ${reply.message}${hint}`);
      }
      expectPayload(command, reply.payload, expect);
      payload = reply.payload;
    } catch (err) {
      if (err instanceof RequestError) throw err;
      throw new RequestError('EHELPER', messageOf(err));
    }
    const what = fault === CLEAR ? 'cleared its injected fault' : `injected fault ${fault}${sticky ? ' (sticky: it comes back after every restart)' : ''}`;
    this.logger.log('notice', `${device}: ${what}${requestedBy ? ` at the request of ${requestedBy}` : ''}`, {
      SHADOWD_DEVICE: device,
      SHADOWD_DRIVER: port.lookup(device)?.driver ?? undefined,
      SHADOWD_CLASS: ref.cls,
      SHADOWD_FAULT: fault,
    });
    return { device: formatRef(ref), fault, sticky, reply: payload };
  }

  /** The device's policy; a bad one from the per-device source is logged and the default used. */
  policyFor(ref: DeviceRef, driver: string | null): Readonly<RecoveryPolicy> {
    if (!this.policySource) return this.policy;
    try {
      return checkPolicy({ ...DEFAULT_POLICY, ...this.policySource(ref, driver) });
    } catch (err) {
      this.logger.log('err', `${ref.name}: unusable recovery policy, using the default: ${messageOf(err)}`, { SHADOWD_DEVICE: ref.name, SHADOWD_CLASS: ref.cls });
      return this.policy;
    }
  }

  /** Whether the shadow stands in for the device's driver right now (its driver is being restarted). */
  isActive(ref: DeviceRef): boolean {
    const phase = this.devices.get(formatRef(ref))?.current?.phase;
    return phase === 'active' || phase === 'check';
  }

  deviceState(ref: DeviceRef): DeviceRecoveryState {
    const st = this.devices.get(formatRef(ref));
    if (!st) return { recoveryId: null, phase: null, gaveUp: null, recent: 0 };
    this.prune(st, this.policyFor(ref, this.classes.get(ref.cls)?.lookup(ref.name)?.driver ?? null));
    return { recoveryId: st.current?.record.id ?? null, phase: st.current?.phase ?? null, gaveUp: st.gaveUp?.id ?? null, recent: st.attempts.length };
  }

  /** Resolves when no recovery is waiting or running (retries included). */
  async idle(): Promise<void> {
    for (;;) {
      const running = [...this.devices.values()].flatMap((st) => (st.current ? [st.current.done] : []));
      if (running.length === 0) return;
      await Promise.all(running);
    }
  }

  /** Stops taking reports, ends back-off waits, and waits (bounded) for restarts in flight. */
  async stop(timeoutMs = 15_000): Promise<void> {
    this.stopping = true;
    const states = [...this.devices.values()];
    for (const st of states) this.cancelRetry(st);
    for (const st of states) st.current?.wake?.();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      Promise.all(states.flatMap((st): Promise<unknown>[] => (st.current ? [st.current.done, st.lock] : [st.lock]))),
      new Promise((resolve) => {
        timer = setTimeout(resolve, timeoutMs);
        timer.unref();
      }),
    ]);
    clearTimeout(timer);
  }

  // ---------------------------------------------------------------------------

  /** The class of a reference a person sent: a registered class, and a name it allows. */
  private checkRef(ref: DeviceRef): RecoveryPort {
    const port = this.classes.get(ref.cls);
    if (!port) throw new RequestError('EBADREQ', `unknown device class ${JSON.stringify(ref.cls)}`);
    if (!port.decl.names.valid(ref.name)) throw new RequestError('EBADREQ', `${JSON.stringify(ref.name)} is not ${port.decl.names.describe}`);
    return port;
  }

  private checkRequest(ref: DeviceRef): DeviceInfo {
    const port = this.checkRef(ref);
    if (this.stopping) throw new RequestError('EBUSY', 'shadowd is stopping');
    const known = port.lookup(ref.name);
    if (!known) throw new RequestError('ENODEV', `shadowd watches no ${port.decl.noun} named ${ref.name}`);
    return known;
  }

  /**
   * The helper, once it says it has the device's class: a module older or
   * newer than this shadowd may lack a class the daemon runs, and would
   * refuse every command for it.
   */
  private async helperFor(ref: DeviceRef): Promise<HelperClient> {
    const helper = await this.helper();
    const v = await helper.version();
    if (!v.classes.includes(ref.cls)) {
      throw new Error(
        `the loaded shadow_helper module (version ${v.version}) has no ${ref.cls} class (it has ${v.classes.join(', ') || 'none'}): ` +
          'load the shadow_helper built from this shadowd (scripts/install.sh builds it with DKMS)',
      );
    }
    return helper;
  }

  /** The class of a device the manager already accepted (checkFailureReport, checkRequest). */
  private port(ref: DeviceRef): RecoveryPort {
    const port = this.classes.get(ref.cls);
    if (!port) throw new Error(`no device class ${ref.cls} is registered`);
    return port;
  }

  private state(ref: DeviceRef): DeviceState {
    const key = formatRef(ref);
    let st = this.devices.get(key);
    if (!st) {
      const bus = (): string | null => this.classes.get(ref.cls)?.lookup(ref.name)?.bus ?? null;
      st = { attempts: [], lastEndedAt: null, gaveUp: null, retryTimer: null, retries: 0, retryStartedAt: null, ignored: 0, current: null, replaying: false, lock: Promise.resolve(), unit: bus };
      this.devices.set(key, st);
    }
    return st;
  }

  private prune(st: DeviceState, policy: RecoveryPolicy): void {
    const since = this.now() - policy.windowMs;
    st.attempts = st.attempts.filter((a) => a.at > since);
  }

  private backoffDelay(st: DeviceState, policy: RecoveryPolicy): number {
    const n = st.attempts.length;
    if (n === 0 || st.lastEndedAt === null) return 0;
    const step = Math.min(policy.backoffMs * 2 ** (n - 1), policy.backoffMaxMs);
    return Math.max(0, st.lastEndedAt + step - this.now());
  }

  /**
   * Runs fn once the device's earlier restarts, parks and replays are done,
   * and those of every other device on the same bus device: the restart unit
   * is the bus device (a controller carrying several class devices restarts
   * them all), so two of its devices never restart at once.
   */
  private exclusive<T>(st: DeviceState, fn: () => Promise<T>): Promise<T> {
    const unit = st.unit();
    const before = unit === null ? Promise.resolve() : (this.units.get(unit) ?? Promise.resolve());
    const run = Promise.all([st.lock, before]).then(fn, fn);
    const settled = run.catch(() => undefined);
    st.lock = settled;
    if (unit !== null) {
      this.units.set(unit, settled);
      // The last one out leaves nothing behind.
      void settled.then(() => {
        if (this.units.get(unit) === settled) this.units.delete(unit);
      });
    }
    return run;
  }

  /** Short and unique: r, the time in base 36, a counter (PROTOCOL.md: 1-32 of [A-Za-z0-9_-]). */
  private newId(): string {
    return `r${this.now().toString(36)}-${(this.counter++).toString(36)}`;
  }

  private newRecord(ref: DeviceRef, driver: string | null, trigger: RecoveryTrigger, detail: string): RecoveryRecord {
    return {
      id: this.newId(),
      cls: ref.cls,
      device: ref.name,
      driver,
      trigger,
      detail,
      startedAt: this.now(),
      endedAt: null,
      result: 'in-progress',
      phases: {},
      steps: [],
      error: null,
      merged: 0,
      method: null,
      module: null,
    };
  }

  private log(priority: Priority, rec: RecoveryRecord, phase: Phase, message: string, extra: LogFields = {}): void {
    this.logger.log(priority, message, {
      SHADOWD_DEVICE: rec.device,
      SHADOWD_DRIVER: rec.driver ?? undefined,
      SHADOWD_CLASS: rec.cls,
      SHADOWD_RECOVERY_ID: rec.id,
      SHADOWD_PHASE: phase,
      ...extra,
    });
  }

  /** History writes never stop a recovery: the device matters more than its record. */
  private save(how: 'insert' | 'update', rec: RecoveryRecord): void {
    try {
      if (how === 'insert') this.history.insert(rec);
      else this.history.update(rec);
    } catch (err) {
      this.logger.log('err', `could not record recovery ${rec.id} in the history: ${messageOf(err)}`, { SHADOWD_DEVICE: rec.device, SHADOWD_CLASS: rec.cls, SHADOWD_RECOVERY_ID: rec.id });
    }
  }

  private finish(rec: RecoveryRecord, result: RecoveryResult, error: string | null): void {
    const now = this.now();
    rec.result = result;
    rec.error = error;
    rec.endedAt = now;
    rec.phases.total = now - rec.startedAt;
    this.save('update', rec);
    try {
      this.onFinished?.(rec);
    } catch (err) {
      // A metrics consumer must not break a recovery.
      this.logger.log('err', `onFinished for recovery ${rec.id} failed: ${messageOf(err)}`, { SHADOWD_DEVICE: rec.device, SHADOWD_CLASS: rec.cls, SHADOWD_RECOVERY_ID: rec.id });
    }
  }

  private begin(
    st: DeviceState,
    spec: {
      ref: DeviceRef;
      driver: string | null;
      trigger: RecoveryTrigger;
      detail: string;
      manual: boolean;
      /** Reload the driver's module (a person asked, or a retry of a recovery that did); otherwise as reloadFor(trigger) says. */
      reload?: boolean;
      detectMs?: number;
      announce?: (rec: RecoveryRecord) => void;
    },
  ): Running {
    const record = this.newRecord(spec.ref, spec.driver, spec.trigger, spec.detail);
    if (spec.detectMs !== undefined) record.phases.detect = spec.detectMs;
    const cur: Running = {
      record,
      phase: 'detected',
      manual: spec.manual,
      retryable: false,
      wake: null,
      checkStartedAt: null,
      reload: spec.reload === true || reloadFor(spec.trigger),
      restartNotes: [],
      done: Promise.resolve(record),
    };
    st.current = cur;
    this.save('insert', record);
    spec.announce?.(record);
    cur.done = this.run(st, cur);
    return cur;
  }

  private async run(st: DeviceState, cur: Running): Promise<RecoveryRecord> {
    const rec = cur.record;
    try {
      const policy = this.policyFor(refOf(rec), rec.driver);
      this.prune(st, policy);
      if (st.attempts.length >= policy.maxRecoveries) {
        cur.phase = 'gave-up';
        await this.exclusive(st, () => this.giveUp(st, cur, policy));
      } else {
        const delay = this.backoffDelay(st, policy);
        if (delay > 0) {
          cur.phase = 'backoff';
          const n = st.attempts.length;
          this.log('info', rec, 'backoff', `${rec.device}: waiting ${span(delay)} before restarting its driver (back-off after ${n} recover${n === 1 ? 'y' : 'ies'} in the last ${span(policy.windowMs)})`, {
            SHADOWD_PHASE_MS: delay,
          });
          const t0 = this.now();
          await this.wait(cur, delay);
          rec.phases.wait = this.now() - t0;
        }
        // Checked again once the device's turn comes: it may have waited behind another device on its bus.
        const dropIfStopping = (): boolean => {
          if (!this.stopping) return false;
          this.finish(rec, 'interrupted', 'shadowd stopped before the restart');
          this.log('notice', rec, cur.phase, `${rec.device}: recovery ${rec.id} dropped: shadowd is stopping`);
          return true;
        };
        if (!dropIfStopping()) await this.exclusive(st, () => (dropIfStopping() ? Promise.resolve() : this.attempt(st, cur)));
      }
    } catch (err) {
      // A bug must not leave the device marked as recovering for good (nor rewrite a result already recorded).
      if (rec.endedAt === null) this.finish(rec, 'failed', `internal error: ${messageOf(err)}`);
      this.log('err', rec, cur.phase, `${rec.device}: recovery ${rec.id} failed on an internal error: ${messageOf(err)}`, { MESSAGE_ID: MESSAGE_RECOVERY_FAILED });
      cur.retryable = false;
    } finally {
      if (st.current === cur) st.current = null;
    }
    // No retry when a report already started the device's next recovery.
    if (rec.result === 'failed' && cur.retryable && !cur.manual && !this.stopping && st.current === null) {
      this.begin(st, {
        ref: refOf(rec),
        driver: rec.driver,
        trigger: rec.trigger,
        detail: `retry after ${rec.id} failed: ${rec.error ?? ''}`.slice(0, MAX_DETAIL),
        manual: false,
        reload: cur.reload,
      });
    }
    return rec;
  }

  private wait(cur: Running, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        cur.wake = null;
        resolve();
      }, ms);
      cur.wake = () => {
        clearTimeout(timer);
        cur.wake = null;
        resolve();
      };
    });
  }

  private async attempt(st: DeviceState, cur: Running): Promise<void> {
    const rec = cur.record;
    st.attempts.push({ at: this.now(), id: rec.id });
    cur.phase = 'active';
    let endedByReport = false;
    try {
      const reply = await this.restart(cur);
      cur.phase = 'check';
      cur.checkStartedAt = this.now();
      const notes = await this.check(cur);
      if (rec.endedAt !== null) {
        // A report during the check failed it (failAgain); the replay's steps still belong in its record.
        endedByReport = true;
        this.save('update', rec);
        return;
      }
      notes.unshift(...cur.restartNotes);
      const port = this.port(refOf(rec));
      if (port.afterRestart) {
        try {
          notes.push(...port.afterRestart(rec.device, reply));
        } catch (err) {
          notes.push(`the after-restart check failed: ${messageOf(err)}`);
        }
      }
      cur.phase = 'passive';
      this.finish(rec, 'recovered', notes.length ? notes.join('; ') : null);
      const p = rec.phases;
      this.log(
        'notice',
        rec,
        'passive',
        `${rec.device}: recovered in ${p.total} ms by ${rec.id} (restart ${p.restart} ms, check ${p.check} ms)${notes.length ? `, with problems: ${notes.join('; ')}` : ''}`,
        { MESSAGE_ID: MESSAGE_RECOVERED, SHADOWD_PHASE_MS: p.total },
      );
    } catch (err) {
      if (!(err instanceof AttemptFailure)) throw err;
      cur.retryable = err.retryable;
      const phase = cur.phase;
      this.finish(rec, 'failed', err.message);
      const retry = err.retryable && !cur.manual && !this.stopping;
      this.log(retry ? 'warning' : 'err', rec, phase, `${rec.device}: recovery ${rec.id} failed: ${err.message}${retry ? '; trying again after the back-off' : ''}`, {
        MESSAGE_ID: MESSAGE_RECOVERY_FAILED,
      });
    } finally {
      // failAgain set it when the recovery ended, and the next one's back-off already counts from there.
      if (!endedByReport) st.lastEndedAt = this.now();
    }
  }

  /**
   * Ends a recovery in its check as failed: the device failed again after its
   * driver was restarted. The device's lock stays with the replay under way;
   * the next recovery, which the caller starts, waits for it.
   */
  private failAgain(st: DeviceState, cur: Running, kind: FailureKind, detail: string): void {
    const rec = cur.record;
    const now = this.now();
    if (cur.checkStartedAt !== null) rec.phases.check = now - cur.checkStartedAt;
    // The report starts the next recovery itself: not a retry of this one.
    cur.retryable = false;
    this.finish(rec, 'failed', `the device failed again during the check (${kind}): ${detail}`);
    st.lastEndedAt = now;
    if (st.current === cur) st.current = null;
    this.log(
      'warning',
      rec,
      'check',
      `${rec.device}: recovery ${rec.id} failed: ${rec.error}; restarting the driver did not cure it, so the failure is recovered anew within the recovery limit`,
      { MESSAGE_ID: MESSAGE_RECOVERY_FAILED, SHADOWD_FAILURE: kind },
    );
  }

  /** Restarts the driver; returns the helper's reply. Throws AttemptFailure. */
  private async restart(cur: Running): Promise<RestartReply> {
    const rec = cur.record;
    const dev = rec.device;
    const ref = refOf(rec);
    const terms = this.port(ref).decl;
    let helper: HelperClient;
    try {
      helper = await this.helperFor(ref);
    } catch (err) {
      throw new AttemptFailure(messageOf(err), false);
    }
    const port = this.port(ref);
    if (port.refuseRestart) {
      let why: string | null;
      try {
        why = await port.refuseRestart(dev);
      } catch (err) {
        why = `could not check that restarting it is safe: ${messageOf(err)}`;
      }
      if (why !== null) {
        rec.steps.push({ source: 'daemon', key: 'refuse', result: 'fail', error: why });
        throw new AttemptFailure(`refused before touching the device: ${why}`, false);
      }
    }
    let method: RestartMethod = cur.reload ? 'reload' : 'reprobe';
    const what = method === 'reload' ? ' and reloading its module' : '';
    this.log('notice', rec, 'active', `${dev}: recovery ${rec.id} restarting driver ${rec.driver ?? '(unknown)'}${what}; the shadow answers for it meanwhile`, {
      MESSAGE_ID: MESSAGE_RECOVERY_STARTED,
      SHADOWD_RESTART_METHOD: method,
    });
    const t0 = this.now();
    const send = async (how: RestartMethod): Promise<HelperReply> => {
      const command = restartCommand(ref, rec.id, how);
      rec.method = how;
      // A shadowd killed during the restart leaves a row that says which it was.
      this.save('update', rec);
      // The kernel cannot abort a driver's remove or probe: a stuck one is reported, not waited on silently.
      const slow = setTimeout(() => {
        this.log(
          'warning',
          rec,
          'active',
          `${dev}: the kernel has not finished restarting driver ${rec.driver ?? '(unknown)'} after ${SLOW_RESTART_MS / 1000} s: ` +
            `its teardown or probe may be stuck (look for "blocked for more than" in the kernel log); the shadow keeps answering for the device`,
          { SHADOWD_PHASE_MS: SLOW_RESTART_MS },
        );
      }, SLOW_RESTART_MS);
      try {
        return await helper.request(command);
      } catch (err) {
        rec.phases.restart = this.now() - t0;
        throw new AttemptFailure(`"${command}" failed: ${messageOf(err)}`, true);
      } finally {
        clearTimeout(slow);
      }
    };
    // As the restart is sent: what changes in the shadow from here on was set during the recovery.
    // (A re-probe after a refused reload keeps this earlier mark: it only counts more as changed.)
    cur.restartMark = this.mark(rec);
    let reply = await send(method);
    if (method === 'reload' && !reply.ok && reloadRefused(reply.errno, reply.message)) {
      // Refused before anything was touched: the driver runs as it did, and a re-probe is still the way back.
      const why = `${reply.errno} ${reply.message}`;
      cur.restartNotes.push(`the module reload was refused (${why}): the driver was restarted without it`);
      this.log('notice', rec, 'active', `${dev}: shadow_helper cannot reload driver ${rec.driver ?? '(unknown)'}'s module (${why}); restarting the driver without a reload`, {
        SHADOWD_RESTART_METHOD: 'reprobe',
      });
      method = 'reprobe';
      reply = await send(method);
    }
    rec.phases.restart = this.now() - t0;
    if (!reply.ok && reply.errno === 'EOPNOTSUPP') {
      // The helper refused before it touched the device (state it cannot carry, a driver it cannot restart):
      // the driver runs as it did, and trying again cannot change the answer.
      rec.steps.push({ source: 'module', key: 'refuse', result: 'fail', error: reply.message });
      throw new AttemptFailure(`refused before touching the device: shadow_helper: ${reply.message}`, false);
    }
    if (!reply.ok) {
      this.moduleSteps(rec, restartErrorSteps(reply.message, terms), false);
      // EIO: the driver did not come back (the helper parked it); EBUSY: another restart ran. Both may pass.
      const retryable = reply.errno === 'EIO' || reply.errno === 'EBUSY';
      throw new AttemptFailure(`shadow_helper could not restart ${dev}${method === 'reload' ? ' with a module reload' : ''}: ${reply.errno} ${reply.message}`, retryable);
    }
    let parsed;
    try {
      parsed = parseRestartReply(reply.payload, { ref, id: rec.id, how: method }, terms);
    } catch (err) {
      throw new AttemptFailure(messageOf(err), false);
    }
    rec.module = parsed.module;
    rec.phases.module = parsed.timings;
    this.moduleSteps(rec, parsed.steps, true, cur);
    const reloaded = parsed.how === 'reload' ? ` (module ${parsed.module ?? '?'} ${parsed.steps[0]?.result === 'ok' ? 'reloaded' : 'not reloaded'})` : '';
    this.log('info', rec, 'active', `${dev}: driver restarted${reloaded} in ${rec.phases.restart} ms (${modulePhases(parsed.timings)})`, {
      SHADOWD_PHASE_MS: rec.phases.restart,
      SHADOWD_RESTART_METHOD: parsed.how,
      SHADOWD_MODULE: parsed.module ?? undefined,
    });
    return parsed;
  }

  /** The class replay's mark, its failure logged here and left to the replay that waits on it. */
  private mark(rec: RecoveryRecord): Promise<number> | undefined {
    const replayer = this.port(refOf(rec)).replay;
    if (!replayer) return undefined;
    let mark: Promise<number>;
    try {
      mark = replayer.mark(rec.device);
    } catch (err) {
      mark = Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    // Nothing may wait on it (the restart fails): its failure must not go unhandled.
    mark.catch((err: unknown) => this.log('warning', rec, 'active', `${rec.device}: could not mark the shadow as the restart began: ${messageOf(err)}`));
    return mark;
  }

  /** `restarted`: from a successful restart (a failed reload step then means the module would not unload). */
  private moduleSteps(rec: RecoveryRecord, steps: RestartStepResult[], restarted: boolean, cur?: Running): void {
    for (const s of steps) {
      rec.steps.push({ source: 'module', key: s.name, result: s.result });
      if (s.name === RELOAD_STEP) {
        if (s.result === 'fail' && restarted) {
          const note = `module ${rec.module ?? '(unknown)'} would not unload: the device was probed again with the module as it was`;
          cur?.restartNotes.push(note);
          this.log('warning', rec, 'active', `${rec.device}: ${note} (the kernel log says why)`, { SHADOWD_STEP: s.name, SHADOWD_MODULE: rec.module ?? undefined });
        }
        continue;
      }
      if (s.result === 'fail') {
        this.log('warning', rec, 'active', `${rec.device}: the restarted driver refused replay step ${s.name}`, {
          MESSAGE_ID: MESSAGE_REPLAY_STEP_FAILED,
          SHADOWD_STEP: s.name,
        });
      }
    }
  }

  /** The replay check: what the helper could not replay, then what userspace replays. Returns problems found. */
  private async check(cur: Running): Promise<string[]> {
    const rec = cur.record;
    const t0 = this.now();
    const notes: string[] = [];
    const refused = rec.steps.filter((s) => s.source === 'module' && s.result === 'fail' && s.key !== RELOAD_STEP).map((s) => s.key);
    if (refused.length) notes.push(`the driver refused replay step${refused.length === 1 ? '' : 's'} ${refused.join(', ')}`);
    const replayer = this.port(refOf(rec)).replay;
    let notBack: string | undefined;
    let setBack: string[] = [];
    if (replayer) {
      try {
        const report = await replayer.replay(rec.device, cur.restartMark);
        notes.push(...this.recordReplay(rec, report));
        setBack = report.steps.filter((s) => s.ok).map((s) => s.key);
        notBack = typeof report.notBack === 'string' ? report.notBack : undefined;
      } catch (err) {
        notes.push(`replay from the shadow failed: ${messageOf(err)}`);
        this.log('warning', rec, 'check', `${rec.device}: replay from the shadow failed: ${messageOf(err)}`);
      }
    }
    // A report during the check that already failed it decides the record.
    if (notBack !== undefined && rec.endedAt === null) {
      rec.phases.check = this.now() - t0;
      throw new AttemptFailure(`the device is not back in service after the restart: ${notBack}`, true);
    }
    const ms = this.now() - t0;
    // A recovery failed during its check keeps the check time up to the failure.
    if (rec.endedAt === null) rec.phases.check = ms;
    // The replay's steps (what the restart had lost and the shadow set back), so that a value changing under an administrator is explained.
    const said = setBack.length ? [`replayed ${setBack.join(', ')}`, ...notes] : notes;
    this.log('info', rec, 'check', `${rec.device}: replay check done in ${ms} ms${said.length ? `: ${said.join('; ')}` : ''}`, {
      SHADOWD_PHASE_MS: ms,
    });
    return notes;
  }

  /** Adds a replay report's steps to the record and logs each failed one; returns a summary of failures. */
  private recordReplay(rec: RecoveryRecord, report: ReplayReport): string[] {
    if (report?.device !== rec.device || !Array.isArray(report.steps)) {
      throw new Error(`the replayer answered for ${JSON.stringify(report?.device)}, not ${rec.device}, or without steps`);
    }
    const failed: string[] = [];
    for (const s of report.steps) {
      const step: RecoveryStep = { source: 'daemon', key: s.key, result: s.ok ? 'ok' : 'fail', argv: s.argv };
      if (!s.ok) {
        step.error = s.error ?? 'failed';
        failed.push(s.key);
        this.log('warning', rec, rec.trigger === 'replay' ? 'replay' : 'check', `${rec.device}: replaying ${s.key} failed: ${step.error}`, {
          MESSAGE_ID: MESSAGE_REPLAY_STEP_FAILED,
          SHADOWD_STEP: s.key,
        });
      }
      rec.steps.push(step);
    }
    return failed.length ? [`${failed.length} of ${report.steps.length} replay steps failed: ${failed.join(', ')}`] : [];
  }

  private async giveUp(st: DeviceState, cur: Running, policy: RecoveryPolicy): Promise<void> {
    const rec = cur.record;
    const dev = rec.device;
    const ids = st.attempts.map((a) => a.id);
    const reason =
      `${ids.length} recover${ids.length === 1 ? 'y' : 'ies'} of ${dev} in the last ${span(policy.windowMs)} (${ids.join(', ')}) ` +
      `did not keep its driver running: the failure looks deterministic`;
    let parked: string;
    const { command, expect } = parkCommand(refOf(rec), rec.id);
    try {
      const reply = await (await this.helperFor(refOf(rec))).request(command);
      if (reply.ok) {
        expectPayload(command, reply.payload, expect);
        parked = `the device is parked (${this.port(refOf(rec)).decl.parkedAs ?? 'nothing calls into its driver'})`;
      } else {
        parked = `shadow_helper could not park it (${reply.errno} ${reply.message})`;
      }
    } catch (err) {
      parked = `it could not be parked: ${messageOf(err)}`;
    }
    // A retry that gave up again within the window: the next waits twice as long.
    st.retries = st.retryStartedAt !== null && this.now() - st.retryStartedAt <= policy.windowMs ? st.retries + 1 : 0;
    st.retryStartedAt = null;
    const retryMs = retryDelay(policy, st.retries);
    const retry = retryMs > 0 ? `; shadowd tries it again in ${span(retryMs)}` : '';
    this.finish(rec, 'gave-up', `${reason}; ${parked}; run "shadowctl recover ${formatRef(refOf(rec))}" once the cause is fixed${retry}`);
    st.gaveUp = { id: rec.id, at: rec.endedAt ?? this.now() };
    st.ignored = 0;
    this.log('err', rec, 'gave-up', `${dev}: gave up recovering driver ${rec.driver ?? '(unknown)'}: ${rec.error}`, { MESSAGE_ID: MESSAGE_GAVE_UP });
    this.scheduleRetry(st, refOf(rec), rec.driver);
  }

  /** Arms the try again after a give-up, as the device's policy says (none when its retryMs is 0). */
  private scheduleRetry(st: DeviceState, ref: DeviceRef, driver: string | null): void {
    this.cancelRetry(st);
    const gaveUp = st.gaveUp;
    const delay = retryDelay(this.policyFor(ref, driver), st.retries);
    if (!gaveUp || delay === 0 || this.stopping) return;
    st.retryTimer = setTimeout(() => {
      st.retryTimer = null;
      if (st.gaveUp !== gaveUp || st.current || this.stopping) return;
      const known = this.classes.get(ref.cls)?.lookup(ref.name);
      if (!known) {
        this.logger.log('notice', `${ref.name}: not tried again after the give-up (${gaveUp.id}): shadowd no longer watches it`, { SHADOWD_DEVICE: ref.name, SHADOWD_CLASS: ref.cls });
        return;
      }
      st.attempts = [];
      st.lastEndedAt = null;
      st.gaveUp = null;
      st.ignored = 0;
      st.retryStartedAt = this.now();
      const after = span(delay);
      this.begin(st, {
        ref,
        driver: known.driver,
        trigger: RETRY_TRIGGER,
        detail: `tried again ${after} after shadowd gave up (${gaveUp.id})`,
        manual: false,
        announce: (rec) => this.log('notice', rec, 'detected', `${ref.name}: trying again ${after} after giving up (${gaveUp.id}); the give-up is lifted`),
      });
    }, Math.max(0, gaveUp.at + delay - this.now()));
    st.retryTimer.unref();
  }

  private cancelRetry(st: DeviceState): void {
    if (st.retryTimer) clearTimeout(st.retryTimer);
    st.retryTimer = null;
  }

  /** What a failure report ignored after a give-up is told of the retry, while one is due. */
  private retryNote(st: DeviceState): string {
    if (!st.retryTimer || !st.gaveUp) return '';
    return `, and tries it again on its own`;
  }
}

/** The trigger of a recovery that tries a device given up on again. */
export const RETRY_TRIGGER = 'retry';

/** The cool-down before the next retry after a give-up: retryMs, doubled for each retry in a row that gave up again. */
export function retryDelay(policy: Pick<RecoveryPolicy, 'retryMs' | 'retryMaxMs'>, retries: number): number {
  if (policy.retryMs === 0) return 0;
  return Math.min(policy.retryMs * 2 ** Math.min(retries, 30), policy.retryMaxMs);
}

/** A record's device as a reference. */
function refOf(rec: Pick<RecoveryRecord, 'cls' | 'device'>): DeviceRef {
  return { cls: rec.cls, name: rec.device };
}
