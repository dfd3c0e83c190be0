// The configuration the daemon runs with, and its reload: one object that the
// recovery manager, the stall detector, the failure filter and the logger ask
// at the moment they need a setting, so a reload takes effect by swapping the
// Config it holds. A file with errors is refused whole: the running
// configuration stays (docs/configuration.md). Devices are asked about by
// reference (CLASS:NAME), so the same object serves every class; a class's
// own keys are asked for by name (setting()), as the class declared them.
import { DEFAULT_CONFIG_PATH, formatConfigError, loadConfig, policyFor, POLICY_KEYS, settingFor, type Config, type ConfigError, type ConfigResult, type Policy, type SettingValue } from './config.js';
import type { ReloadResult } from '../control/control-protocol.js';
import type { ClassSet } from '../core/class-set.js';
import { formatRef, type DeviceRef } from '../core/device-ref.js';
import type { FailureReport } from '../core/failure-report.js';
import type { LogFields, Logger, Priority } from './log.js';
import { MESSAGE_FAILURE_DETECTED } from './message-ids.js';
import type { RecoveryPolicy } from '../core/recovery-manager.js';

/** The configuration file: $CONFIGURATION_DIRECTORY/shadowd.conf under systemd (ConfigurationDirectory=shadowd), else /etc/shadowd/shadowd.conf. */
export function defaultConfigPath(env: NodeJS.ProcessEnv = process.env): string {
  // systemd joins several ConfigurationDirectory= entries with ':'; the unit has one.
  const dir = env['CONFIGURATION_DIRECTORY']?.split(':')[0];
  return dir ? `${dir.replace(/\/+$/, '')}/shadowd.conf` : DEFAULT_CONFIG_PATH;
}

/** The recovery manager's policy from a device's configured one: the file counts in seconds, the manager in ms. */
export function recoveryPolicy(p: Policy): RecoveryPolicy {
  return {
    maxRecoveries: p.maxRecoveries,
    windowMs: p.recoveryWindowSec * 1000,
    backoffMs: p.backoffSec * 1000,
    backoffMaxMs: p.backoffMaxSec * 1000,
    retryMs: p.giveUpRetrySec * 1000,
    retryMaxMs: p.giveUpRetryMaxSec * 1000,
  };
}

const DAEMON_KEY_NAMES: { [K in keyof Config['daemon']]: string } = {
  logLevel: 'LogLevel',
  allowFaultInjection: 'AllowFaultInjection',
  metricsTextfile: 'MetricsTextfile',
  metricsIntervalSec: 'MetricsIntervalSec',
};
const POLICY_KEY_NAMES = Object.entries(POLICY_KEYS).map(([name, spec]) => [spec.field, name] as const);

function valueText(v: string | number | boolean | null | undefined): string {
  if (v === null || v === undefined) return '';
  if (typeof v === 'boolean') return v ? 'yes' : 'no';
  return String(v);
}

/**
 * What differs between two configurations, as the file would say it:
 * "LogLevel=debug", "[Device net:eth1] Protect=no", "[Device eth1] Protect=no",
 * "[Driver e1000] MaxRecoveries= (unset)": sections as written, the generic
 * keys first, then the class settings. Pure.
 */
export function describeChanges(before: Config, after: Config): string[] {
  const out: string[] = [];
  for (const [field, name] of Object.entries(DAEMON_KEY_NAMES) as [keyof Config['daemon'], string][]) {
    if (before.daemon[field] !== after.daemon[field]) out.push(`${name}=${valueText(after.daemon[field])}`);
  }
  const sections: [string, 'classes' | 'drivers' | 'devices'][] = [
    ['Class', 'classes'],
    ['Driver', 'drivers'],
    ['Device', 'devices'],
  ];
  for (const [label, kind] of sections) {
    const names = [...new Set([...before[kind].keys(), ...after[kind].keys()])].sort();
    for (const section of names) {
      const a = before[kind].get(section);
      const b = after[kind].get(section);
      for (const [field, name] of POLICY_KEY_NAMES) {
        const was = a?.policy[field];
        const now = b?.policy[field];
        if (was !== now) out.push(`[${label} ${section}] ${name}=${now === undefined ? ' (unset)' : valueText(now)}`);
      }
      const keys = new Set([...(a?.settings.keys() ?? []), ...(b?.settings.keys() ?? [])]);
      for (const key of keys) {
        const was = a?.settings.get(key);
        const now = b?.settings.get(key);
        if (was !== now) out.push(`[${label} ${section}] ${key}=${now === undefined ? ' (unset)' : valueText(now)}`);
      }
    }
  }
  return out;
}

export interface RunningConfigOptions {
  path: string;
  /** The registered classes (new ClassSet(CLASSES)): their ids, device names and settings are what the file may name. */
  classes: ClassSet;
  /** The daemon's logger; its level follows LogLevel= unless --log-level was given. */
  logger: Logger & { setMinimum(minimum: Priority): void };
  /** --log-level: overrides LogLevel=. */
  logLevel?: Priority | undefined;
  /** --allow-faults: fault injection allowed whatever AllowFaultInjection= says. */
  allowFaults?: boolean;
  /** Applies what the manager, detectors and logger do not ask for themselves (the metrics file); called at start and after each accepted reload. */
  onApply?: (config: Config) => void;
  /** Reads and checks the file; loadConfig against `classes`, or a fake in tests. */
  load?: (path: string) => ConfigResult;
}

export class RunningConfig {
  private current: Config;
  private readonly load: (path: string) => ConfigResult;

  private constructor(
    private readonly opts: RunningConfigOptions,
    config: Config,
  ) {
    this.load = opts.load ?? ((path) => loadConfig(path, opts.classes));
    this.current = config;
  }

  /**
   * Reads the file at start. With errors, each is logged at err
   * (`file:line: key: message`) and they are returned: the daemon must not
   * start on a configuration it cannot follow. A missing file means the defaults.
   */
  static start(opts: RunningConfigOptions): { ok: true; running: RunningConfig } | { ok: false; errors: ConfigError[] } {
    const result = (opts.load ?? ((path: string) => loadConfig(path, opts.classes)))(opts.path);
    if (!result.ok) {
      for (const e of result.errors) opts.logger.log('err', formatConfigError(e), configErrorFields(e));
      return { ok: false, errors: result.errors };
    }
    const running = new RunningConfig(opts, result.config);
    running.apply();
    if (result.config.file === null) opts.logger.log('info', `no configuration file at ${opts.path}: every device of every class (${opts.classes.ids.join(', ')}) is protected with the default policy`);
    else opts.logger.log('info', `configuration read from ${opts.path}`);
    return { ok: true, running };
  }

  get config(): Config {
    return this.current;
  }

  get path(): string {
    return this.opts.path;
  }

  /** The log level in force: --log-level, else LogLevel=. */
  logLevel(): Priority {
    return this.opts.logLevel ?? this.current.daemon.logLevel;
  }

  /** Whether `shadowctl inject` may inject: --allow-faults or AllowFaultInjection=yes. */
  faultInjection(): boolean {
    return (this.opts.allowFaults ?? false) || this.current.daemon.allowFaultInjection;
  }

  /** The generic policy of one device (config.ts policyFor). */
  policy(ref: DeviceRef, driver: string | null | undefined): Policy {
    return policyFor(this.current, ref, driver);
  }

  /** For RecoveryManager's `policy` option. */
  recoveryPolicy(ref: DeviceRef, driver: string | null | undefined): RecoveryPolicy {
    return recoveryPolicy(this.policy(ref, driver));
  }

  protects(ref: DeviceRef, driver: string | null | undefined): boolean {
    return this.policy(ref, driver).protect;
  }

  /** Whether a driver WARN recovers the device (RecoverWarnings=). */
  recoversWarnings(ref: DeviceRef, driver: string | null | undefined): boolean {
    return this.policy(ref, driver).recoverWarnings;
  }

  /** How long the device may assert its interrupt unhandled before it is reported (LostIrqMs=; 0: never). */
  lostIrqMs(ref: DeviceRef, driver: string | null | undefined): number {
    return this.policy(ref, driver).lostIrqMs;
  }

  /** One of the device's class's settings (ClassContext.setting); throws for a key its class does not declare. */
  setting(ref: DeviceRef, driver: string | null | undefined, key: string): SettingValue {
    return settingFor(this.current, this.opts.classes, ref, driver, key);
  }

  /**
   * Reads the file again (SIGHUP, shadowctl reload). With errors, each is
   * logged and nothing changes; otherwise the new configuration is in force
   * from the next decision on (recoveries under way keep the policy they started with).
   */
  reload(): ReloadResult {
    const { logger } = this.opts;
    const path = this.opts.path;
    const result = this.load(path);
    if (!result.ok) {
      for (const e of result.errors) logger.log('err', formatConfigError(e), configErrorFields(e));
      const n = result.errors.length;
      logger.log('warning', `configuration reload refused: ${path} has ${n} error${n === 1 ? '' : 's'}; the running configuration stays in force`, {
        SHADOWD_CONFIG: path,
      });
      return { ok: false, file: path, errors: result.errors, changes: [] };
    }
    const changes = describeChanges(this.current, result.config);
    this.current = result.config;
    this.apply();
    const source = result.config.file === null ? `${path} is absent: the built-in defaults apply` : `read ${path}`;
    logger.log('notice', `configuration reloaded (${source}): ${changes.length ? changes.join(', ') : 'no changes'}`, { SHADOWD_CONFIG: path });
    return { ok: true, file: path, errors: [], changes };
  }

  private apply(): void {
    this.opts.logger.setMinimum(this.logLevel());
    this.opts.onApply?.(this.current);
  }
}

function configErrorFields(e: ConfigError): LogFields {
  return { SHADOWD_CONFIG: e.file, SHADOWD_CONFIG_LINE: e.line || undefined, SHADOWD_CONFIG_KEY: e.key ?? undefined };
}

export interface ProtectFilterOptions {
  /** RunningConfig.protects. */
  protects: (ref: DeviceRef, driver: string | null | undefined) => boolean;
  /** RunningConfig.recoversWarnings. */
  recoversWarnings: (ref: DeviceRef, driver: string | null | undefined) => boolean;
  /** The device's driver when the report does not name it. */
  driverOf: (ref: DeviceRef) => string | null;
  logger: Logger;
  /** A device's repeated failures are logged at warning at most this often, else at debug. Default 60 s. */
  quietMs?: number;
  now?: () => number;
}

/**
 * Wraps the recovery manager's report(): failures of devices with Protect=no,
 * and driver WARNs of devices without RecoverWarnings=yes, are logged (as a
 * detected failure, without a recovery) and go no further.
 */
export function protectFilter(report: (f: FailureReport) => void, opts: ProtectFilterOptions): (f: FailureReport) => void {
  const now = opts.now ?? Date.now;
  const quietMs = opts.quietMs ?? 60_000;
  const lastLogged = new Map<string, number>();
  return (f) => {
    // A malformed report (no class or no device) is the manager's to refuse and log.
    const ref: DeviceRef | null = typeof f?.cls === 'string' && typeof f.device === 'string' ? { cls: f.cls, name: f.device } : null;
    const driver = ref === null ? null : (f.driver ?? opts.driverOf(ref));
    let why: string | null = null;
    if (ref !== null && !opts.protects(ref, driver)) why = 'the device has Protect=no';
    else if (ref !== null && f.kind === 'warn' && !opts.recoversWarnings(ref, driver)) why = 'a driver warning recovers only with RecoverWarnings=yes';
    if (ref === null || why === null) {
      report(f);
      return;
    }
    const t = now();
    const id = formatRef(ref);
    const last = lastLogged.get(id);
    const loud = last === undefined || t - last >= quietMs;
    if (loud) lastLogged.set(id, t);
    const detail = typeof f.detail === 'string' && f.detail.length > 500 ? `${f.detail.slice(0, 500)}...` : f.detail;
    opts.logger.log(loud ? 'warning' : 'debug', `${id}: driver ${driver ?? '(unknown)'} failed (${f.kind}): ${detail}; not recovered: ${why}`, {
      MESSAGE_ID: MESSAGE_FAILURE_DETECTED,
      SHADOWD_DEVICE: ref.name,
      SHADOWD_DRIVER: driver ?? undefined,
      SHADOWD_CLASS: ref.cls,
      SHADOWD_FAILURE: f.kind,
    });
  };
}
