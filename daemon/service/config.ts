// shadowd's configuration: /etc/shadowd/shadowd.conf, an INI file in the
// style of systemd's unit files (docs/configuration.md is its reference,
// systemd/shadowd.conf.example a commented copy of the defaults). Parsed by
// hand: the format is small, and every error must name the file, the line and
// the key, which a generic INI library does not do. Strict on purpose: an
// unknown key or section is an error, not a silent no-op, because a misspelt
// Protect=no that is ignored would leave a device protected.
//
// The parser knows no class. The generic policy keys (Protect=, the recovery
// limits and back-off) are its own; every other per-device key is declared by
// a device class (ClassDeclaration.settings) and reaches the parser through
// the ClassSet the caller passes, as do the class ids of [Class ID] and the
// naming rules of [Device CLASS:NAME]. Adding a class adds its keys here
// without a line of this file changing.
import type { ConfigError } from '../control/control-protocol.js';
import { readFileSync } from 'node:fs';
import type { ClassSet } from '../core/class-set.js';
import type { ClassDeclaration, ClassSetting, SettingParse } from '../core/device-class.js';
import { DeviceRefError, formatRef, type DeviceRef } from '../core/device-ref.js';
import { booleanSetting, integerSetting } from '../core/setting-values.js';
import { PRIORITY, type Priority } from './log.js';

export const DEFAULT_CONFIG_PATH = '/etc/shadowd/shadowd.conf';

/**
 * What shadowd does for one device, whatever its class: the generic keys.
 * A class's own keys (ClassDeclaration.settings, e.g. a stall threshold) are
 * not here: settingFor() resolves them.
 */
export interface Policy {
  /** false: the device is ignored: no shadow is kept and it is never recovered. */
  protect: boolean;
  /** Recoveries allowed within recoveryWindowSec before shadowd gives up on the device. */
  maxRecoveries: number;
  recoveryWindowSec: number;
  /** Wait before a retry after a failed recovery, doubling each time up to backoffMaxSec. */
  backoffSec: number;
  backoffMaxSec: number;
  /** After a give-up, try the device again this long after (0: only on request), doubling up to giveUpRetryMaxSec. */
  giveUpRetrySec: number;
  giveUpRetryMaxSec: number;
  /**
   * Whether a driver WARN (a kernel warning blamed on the driver's module)
   * starts a recovery. Off by default: a WARN says the driver noticed
   * something odd, most drivers go on working after one, and a restart has
   * its own risks; an oops, a BUG and a stall always recover.
   */
  recoverWarnings: boolean;
  /** How long a device may assert its interrupt with none handled before it is reported as lost-irq (irq-loss-detector.ts); 0: never. */
  lostIrqMs: number;
}

/** A class's setting value: what ClassSetting.parse gives. */
export type SettingValue = number | boolean;

/** What one [Class], [Driver] or [Device] section sets. */
export interface SectionValues {
  policy: Partial<Policy>;
  /** Class settings by key as written (StallThresholdMs), in the order of the file. */
  settings: ReadonlyMap<string, SettingValue>;
}

export interface DaemonSettings {
  logLevel: Priority;
  /** Whether `shadowctl inject` may inject faults (the helper must also allow them). */
  allowFaultInjection: boolean;
  /** Prometheus textfile to keep up to date; null: none. */
  metricsTextfile: string | null;
  metricsIntervalSec: number;
}

export interface Config {
  /** The file it was read from; null when there was none (built-in defaults). */
  file: string | null;
  daemon: DaemonSettings;
  /** [Class ID] sections, by class id. policyFor() and settingFor() resolve the layers. */
  classes: ReadonlyMap<string, SectionValues>;
  /** [Driver MODULE] sections, by module name normalised ('-' to '_'). */
  drivers: ReadonlyMap<string, SectionValues>;
  /**
   * [Device ...] sections, by the name as written: `net:eth0` for a qualified
   * section (CLASS:NAME), `eth0` for a bare one (that name in any class). A
   * bare name never holds ':' (a ':' makes the section qualified), so the two
   * never collide.
   */
  devices: ReadonlyMap<string, SectionValues>;
}

export const DEFAULT_POLICY: Readonly<Policy> = {
  protect: true,
  maxRecoveries: 3,
  recoveryWindowSec: 600,
  backoffSec: 2,
  backoffMaxSec: 60,
  giveUpRetrySec: 900,
  giveUpRetryMaxSec: 21600,
  recoverWarnings: false,
  lostIrqMs: 2000,
};

export const DEFAULT_DAEMON: Readonly<DaemonSettings> = {
  logLevel: 'info',
  allowFaultInjection: false,
  metricsTextfile: null,
  metricsIntervalSec: 15,
};

export function defaultConfig(): Config {
  return { file: null, daemon: { ...DEFAULT_DAEMON }, classes: new Map(), drivers: new Map(), devices: new Map() };
}

/** One error in a configuration file (the control protocol carries them in a reload's result). */
export type { ConfigError };

/** `/etc/shadowd/shadowd.conf:12: MaxRecoveries: must be ...` */
export function formatConfigError(e: ConfigError): string {
  return `${e.file}${e.line > 0 ? `:${e.line}` : ''}: ${e.key !== null ? `${e.key}: ` : ''}${e.message}`;
}

export type ConfigResult = { ok: true; config: Config } | { ok: false; errors: ConfigError[] };

type Parsed<T> = { value: T } | { error: string };

function logLevel(raw: string): Parsed<Priority> {
  return raw in PRIORITY ? { value: raw as Priority } : { error: `must be one of ${Object.keys(PRIORITY).join(', ')}, got ${JSON.stringify(raw)}` };
}

function textfilePath(raw: string): Parsed<string | null> {
  if (raw === '') return { value: null };
  // node_exporter's textfile collector reads only *.prom files.
  if (!raw.startsWith('/') || !raw.endsWith('.prom') || raw.includes('\0')) return { error: `must be an absolute path ending in .prom, or empty for none, got ${JSON.stringify(raw)}` };
  return { value: raw };
}

interface KeySpec<K extends string, T> {
  field: K;
  parse: SettingParse<T>;
}

/** The generic policy keys, as written in the file, in the order errors list them. */
export const POLICY_KEYS: { readonly [name: string]: KeySpec<keyof Policy, SettingValue> } = {
  Protect: { field: 'protect', parse: booleanSetting },
  MaxRecoveries: { field: 'maxRecoveries', parse: integerSetting(1, 100) },
  RecoveryWindowSec: { field: 'recoveryWindowSec', parse: integerSetting(1, 86400) },
  BackoffSec: { field: 'backoffSec', parse: integerSetting(0, 3600) },
  BackoffMaxSec: { field: 'backoffMaxSec', parse: integerSetting(0, 3600) },
  GiveUpRetrySec: { field: 'giveUpRetrySec', parse: integerSetting(0, 604800) },
  GiveUpRetryMaxSec: { field: 'giveUpRetryMaxSec', parse: integerSetting(0, 604800) },
  RecoverWarnings: { field: 'recoverWarnings', parse: booleanSetting },
  LostIrqMs: { field: 'lostIrqMs', parse: integerSetting(0, 60000) },
};

const DAEMON_KEYS: { [name: string]: KeySpec<keyof DaemonSettings, DaemonSettings[keyof DaemonSettings]> } = {
  LogLevel: { field: 'logLevel', parse: logLevel },
  AllowFaultInjection: { field: 'allowFaultInjection', parse: booleanSetting },
  MetricsTextfile: { field: 'metricsTextfile', parse: textfilePath },
  MetricsIntervalSec: { field: 'metricsIntervalSec', parse: integerSetting(1, 3600) },
};

/** Kernel module names: MODULE_NAME_LEN is 56 with its NUL. */
function validDriverName(name: string): boolean {
  return /^[A-Za-z0-9_-]{1,55}$/.test(name);
}

/** The kernel treats '-' and '_' in module names alike; so do we. */
export function normaliseDriver(name: string): string {
  return name.replace(/-/g, '_');
}

/**
 * A section of the file, with the classes whose settings it accepts: its
 * own class for [Class ID] and [Device CLASS:NAME], every class for
 * [Driver MODULE] (a driver may drive devices of any class), and every class
 * that allows the name for a bare [Device NAME].
 */
type Section =
  | { kind: 'daemon' }
  | { kind: 'class'; name: string; accepts: readonly ClassDeclaration[] }
  | { kind: 'driver'; name: string; accepts: readonly ClassDeclaration[] }
  | { kind: 'device'; name: string; ref: DeviceRef | null; accepts: readonly ClassDeclaration[] };

function sectionLabel(s: Section): string {
  switch (s.kind) {
    case 'daemon':
      return '[Daemon]';
    case 'class':
      return `[Class ${s.name}]`;
    case 'driver':
      return `[Driver ${s.name}]`;
    case 'device':
      return `[Device ${s.name}]`;
  }
}

const SECTION_FORMS = '[Daemon], [Class NAME], [Driver NAME], [Device CLASS:NAME] or [Device NAME]';

function parseDeviceName(name: string, classes: ClassSet): Parsed<Section> {
  const known = classes.ids.join(', ');
  if (name === '') return { error: `[Device] needs a device: [Device CLASS:NAME] (classes: ${known}), or [Device NAME] for that name in any class` };
  if (name.includes(':')) {
    try {
      const ref = classes.parseRef(name);
      return { value: { kind: 'device', name, ref, accepts: [classes.require(ref.cls)] } };
    } catch (e) {
      if (e instanceof DeviceRefError) return { error: e.message };
      throw e;
    }
  }
  const accepts = classes.classesAllowing(name);
  if (accepts.length === 0) {
    const rules = classes.all.map((c) => `a ${c.id} device name must be ${c.names.describe}`).join('; ');
    return { error: `${JSON.stringify(name.slice(0, 64))} is not a device name in any class: ${rules}` };
  }
  return { value: { kind: 'device', name, ref: null, accepts } };
}

function parseSectionHeader(inner: string, classes: ClassSet): Parsed<Section> {
  const m = /^(\S+)(?:\s+(.*))?$/.exec(inner.trim());
  const kind = m?.[1] ?? '';
  const name = m?.[2]?.trim() ?? '';
  switch (kind) {
    case 'Daemon':
      return name === '' ? { value: { kind: 'daemon' } } : { error: '[Daemon] takes no name' };
    case 'Class': {
      if (name === '') return { error: `[Class] needs a class name: ${classes.ids.join(', ')}` };
      const cls = classes.get(name);
      return cls ? { value: { kind: 'class', name, accepts: [cls] } } : { error: `unknown class ${JSON.stringify(name)} (shadowd knows: ${classes.ids.join(', ')})` };
    }
    case 'Driver':
      if (name === '') return { error: '[Driver] needs a kernel module name, e.g. [Driver e1000]' };
      return validDriverName(name) ? { value: { kind: 'driver', name, accepts: classes.all } } : { error: `${JSON.stringify(name)} is not a kernel module name` };
    case 'Device':
      return parseDeviceName(name, classes);
    default:
      return { error: `unknown section [${inner.trim()}] (sections: ${SECTION_FORMS})` };
  }
}

/** The settings a section accepts, by key: the declaring classes (among those it accepts) of each. */
function acceptedSettings(section: Section): Map<string, { cls: ClassDeclaration; setting: ClassSetting }[]> {
  const out = new Map<string, { cls: ClassDeclaration; setting: ClassSetting }[]>();
  if (section.kind === 'daemon') return out;
  for (const cls of section.accepts) {
    for (const setting of cls.settings) {
      const list = out.get(setting.key) ?? [];
      list.push({ cls, setting });
      out.set(setting.key, list);
    }
  }
  return out;
}

/** Why a key a section does not accept is wrong there, with a near spelling when there is one. */
function unknownKey(key: string, section: Section, classes: ClassSet): string {
  const declaring = classes.all.filter((c) => c.settings.some((s) => s.key === key));
  if (section.kind === 'daemon') {
    if (Object.hasOwn(POLICY_KEYS, key) || declaring.length > 0) return 'belongs in a [Class], [Driver] or [Device] section, not [Daemon]';
  } else {
    if (Object.hasOwn(DAEMON_KEYS, key)) return `belongs in [Daemon], not ${sectionLabel(section)}`;
    if (declaring.length > 0) {
      const owners = declaring.map((c) => c.id).join(', ');
      const plural = declaring.length === 1 ? 'class' : 'classes';
      if (section.kind === 'class') return `is a setting of ${plural} ${owners}, not ${section.name}`;
      if (section.kind === 'device' && section.ref) return `is a setting of ${plural} ${owners}, not ${section.ref.cls}`;
      if (section.kind === 'device') {
        const rules = declaring.map((c) => `a ${c.id} device name must be ${c.names.describe}`).join('; ');
        return `is a setting of ${plural} ${owners}, and ${JSON.stringify(section.name)} is not a device name there: ${rules}`;
      }
    }
  }
  const own = section.kind === 'daemon' ? Object.keys(DAEMON_KEYS) : [...Object.keys(POLICY_KEYS), ...acceptedSettings(section).keys()];
  const near = own.find((k) => k.toLowerCase() === key.toLowerCase());
  return `unknown key in ${sectionLabel(section)}${near ? ` (did you mean ${near}?)` : ` (keys: ${own.join(', ')})`}`;
}

/**
 * A class setting's value in a section: checked by the parser of every class
 * the section accepts that declares the key (a [Driver] section's value must
 * suit each class its devices may be of); the first error is the one told.
 */
function parseSetting(raw: string, declaring: readonly { cls: ClassDeclaration; setting: ClassSetting }[]): Parsed<SettingValue> {
  let value: SettingValue | undefined;
  for (const { cls, setting } of declaring) {
    const parsed = setting.parse(raw);
    if ('error' in parsed) return declaring.length === 1 ? parsed : { error: `${parsed.error} (for class ${cls.id})` };
    value ??= parsed.value;
  }
  return value === undefined ? { error: 'no class declares this key' } : { value };
}

/**
 * Parses the text of a configuration file against the registered classes
 * (their ids, name rules and settings); `file` is only for the error messages.
 */
export function parseConfig(text: string, file: string, classes: ClassSet): ConfigResult {
  const errors: ConfigError[] = [];
  const err = (line: number, key: string | null, message: string) => errors.push({ file, line, key, message });
  const daemon: DaemonSettings = { ...DEFAULT_DAEMON };
  const classSections = new Map<string, SectionValues>();
  const drivers = new Map<string, SectionValues>();
  const devices = new Map<string, SectionValues>();
  const sectionLines = new Map<string, number>();

  let section: Section | null = null;
  // Keys already set in the current section, with their line, for duplicate errors.
  let seen = new Map<string, number>();
  // What the current section fills; null for [Daemon], or a section that was in error.
  let values: { policy: Partial<Policy>; settings: Map<string, SettingValue> } | null = null;
  let accepted = new Map<string, { cls: ClassDeclaration; setting: ClassSetting }[]>();
  let policyLines: { backoffSec?: number; backoffMaxSec?: number; giveUpRetrySec?: number; giveUpRetryMaxSec?: number } = {};
  // After a bad section header its keys are skipped: one error, not one per line.
  let skipping = false;

  const endSection = () => {
    const policy = values?.policy;
    if (policy && policy.backoffSec !== undefined && policy.backoffMaxSec !== undefined && policy.backoffMaxSec < policy.backoffSec) {
      err(policyLines.backoffMaxSec ?? 0, 'BackoffMaxSec', `must not be less than BackoffSec (${policy.backoffSec}), got ${policy.backoffMaxSec}`);
    }
    if (policy && policy.giveUpRetrySec !== undefined && policy.giveUpRetryMaxSec !== undefined && policy.giveUpRetryMaxSec < policy.giveUpRetrySec) {
      err(policyLines.giveUpRetryMaxSec ?? 0, 'GiveUpRetryMaxSec', `must not be less than GiveUpRetrySec (${policy.giveUpRetrySec}), got ${policy.giveUpRetryMaxSec}`);
    }
  };

  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const lineNo = i + 1;
    const line = (lines[i] ?? '').replace(/\r$/, '').trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;

    if (line.startsWith('[')) {
      endSection();
      seen = new Map();
      values = null;
      accepted = new Map();
      policyLines = {};
      section = null;
      skipping = true;
      if (!line.endsWith(']')) {
        err(lineNo, null, `section header ${JSON.stringify(line)} has no closing "]"`);
        continue;
      }
      const header = parseSectionHeader(line.slice(1, -1), classes);
      if ('error' in header) {
        err(lineNo, null, header.error);
        continue;
      }
      const s = header.value;
      const id = s.kind === 'daemon' ? 'daemon' : `${s.kind} ${s.kind === 'driver' ? normaliseDriver(s.name) : s.name}`;
      const first = sectionLines.get(id);
      if (first !== undefined) {
        err(lineNo, null, `${sectionLabel(s)} appears twice (first at line ${first})`);
        continue;
      }
      sectionLines.set(id, lineNo);
      section = s;
      skipping = false;
      if (s.kind !== 'daemon') {
        values = { policy: {}, settings: new Map() };
        accepted = acceptedSettings(s);
        const map = s.kind === 'class' ? classSections : s.kind === 'driver' ? drivers : devices;
        map.set(s.kind === 'driver' ? normaliseDriver(s.name) : s.name, values);
      }
      continue;
    }

    const eq = line.indexOf('=');
    if (eq < 0) {
      err(lineNo, null, `expected "Key=Value", a "[Section]" or a "#" comment, got ${JSON.stringify(line)}`);
      continue;
    }
    const key = line.slice(0, eq).trim();
    const raw = line.slice(eq + 1).trim();
    if (key === '') {
      err(lineNo, null, `no key before "=" in ${JSON.stringify(line)}`);
      continue;
    }
    if (skipping) continue;
    if (section === null) {
      err(lineNo, key, `comes before any section; start the file with ${SECTION_FORMS}`);
      continue;
    }
    const daemonSpec = section.kind === 'daemon' && Object.hasOwn(DAEMON_KEYS, key) ? DAEMON_KEYS[key] : undefined;
    const policySpec = section.kind !== 'daemon' && Object.hasOwn(POLICY_KEYS, key) ? POLICY_KEYS[key] : undefined;
    const declaring = policySpec ? undefined : accepted.get(key);
    if (!daemonSpec && !policySpec && !declaring) {
      err(lineNo, key, unknownKey(key, section, classes));
      continue;
    }
    const first = seen.get(key);
    if (first !== undefined) {
      err(lineNo, key, `set twice in ${sectionLabel(section)} (first at line ${first})`);
      continue;
    }
    seen.set(key, lineNo);
    const parsed = daemonSpec ? daemonSpec.parse(raw) : policySpec ? policySpec.parse(raw) : parseSetting(raw, declaring ?? []);
    if ('error' in parsed) {
      err(lineNo, key, parsed.error);
      continue;
    }
    if (daemonSpec) {
      (daemon as unknown as Record<string, unknown>)[daemonSpec.field] = parsed.value;
    } else if (values && policySpec) {
      (values.policy as Record<string, unknown>)[policySpec.field] = parsed.value;
      const f = policySpec.field;
      if (f === 'backoffSec' || f === 'backoffMaxSec' || f === 'giveUpRetrySec' || f === 'giveUpRetryMaxSec') policyLines[f] = lineNo;
    } else if (values) {
      values.settings.set(key, parsed.value as SettingValue);
    }
  }
  endSection();

  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config: { file, daemon, classes: classSections, drivers, devices } };
}

/**
 * Reads and checks a configuration file. A missing file is not an error: it
 * means the built-in defaults (every device of every class protected).
 */
export function loadConfig(path: string, classes: ClassSet): ConfigResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, config: defaultConfig() };
    return { ok: false, errors: [{ file: path, line: 0, key: null, message: `cannot read: ${e instanceof Error ? e.message : String(e)}` }] };
  }
  return parseConfig(text, path, classes);
}

/**
 * The sections that may set a key for one device, most specific first: its
 * qualified [Device CLASS:NAME], its bare [Device NAME], its driver's
 * [Driver], its class's [Class].
 */
function layers(config: Config, ref: DeviceRef, driver: string | null | undefined): (SectionValues | undefined)[] {
  return [config.devices.get(formatRef(ref)), config.devices.get(ref.name), driver ? config.drivers.get(normaliseDriver(driver)) : undefined, config.classes.get(ref.cls)];
}

/**
 * The policy for one device: each key from the most specific section that
 * sets it (layers()), else the built-in default. The back-off cap is never
 * below the back-off itself (they may come from different sections).
 */
export function policyFor(config: Config, ref: DeviceRef, driver: string | null | undefined): Policy {
  const found = layers(config, ref, driver);
  const pick = <K extends keyof Policy>(k: K): Policy[K] => {
    for (const layer of found) {
      const v = layer?.policy[k];
      if (v !== undefined) return v;
    }
    return DEFAULT_POLICY[k];
  };
  const backoffSec = pick('backoffSec');
  const giveUpRetrySec = pick('giveUpRetrySec');
  return {
    protect: pick('protect'),
    maxRecoveries: pick('maxRecoveries'),
    recoveryWindowSec: pick('recoveryWindowSec'),
    backoffSec,
    backoffMaxSec: Math.max(backoffSec, pick('backoffMaxSec')),
    giveUpRetrySec,
    giveUpRetryMaxSec: Math.max(giveUpRetrySec, pick('giveUpRetryMaxSec')),
    recoverWarnings: pick('recoverWarnings'),
    lostIrqMs: pick('lostIrqMs'),
  };
}

/**
 * One of a class's settings for one device: from the most specific section
 * that sets it (layers()), else the class's declared default. A key the
 * device's class does not declare throws: that is the caller's mistake, not
 * the file's (the parser refused such keys already).
 */
export function settingFor(config: Config, classes: ClassSet, ref: DeviceRef, driver: string | null | undefined, key: string): SettingValue {
  const setting = classes.require(ref.cls).settings.find((s) => s.key === key);
  if (!setting) throw new Error(`class ${ref.cls} declares no setting ${JSON.stringify(key)}`);
  for (const layer of layers(config, ref, driver)) {
    const v = layer?.settings.get(key);
    if (v !== undefined) return v;
  }
  return setting.default;
}
