// shadowd's configuration: /etc/shadowd/shadowd.conf, an INI file in the
// style of systemd's unit files (docs/configuration.md is its reference,
// systemd/shadowd.conf.example a commented copy of the defaults). Parsed by
// hand: the format is small, and every error must name the file, the line and
// the key, which a generic INI library does not do. Strict on purpose: an
// unknown key or section is an error, not a silent no-op, because a misspelt
// Protect=no that is ignored would leave a device protected.
import { readFileSync } from 'node:fs';
import { PRIORITY, type Priority } from './log.js';

export const DEFAULT_CONFIG_PATH = '/etc/shadowd/shadowd.conf';

/** The device classes shadowd has a shadow for. */
export const KNOWN_CLASSES = ['net'] as const;
export type DeviceClass = (typeof KNOWN_CLASSES)[number];

/** What shadowd does for one device. */
export interface Policy {
  /** false: the device is ignored: no shadow is kept and it is never recovered. */
  protect: boolean;
  /** Recoveries allowed within recoveryWindowSec before shadowd gives up on the device. */
  maxRecoveries: number;
  recoveryWindowSec: number;
  /** Wait before a retry after a failed recovery, doubling each time up to backoffMaxSec. */
  backoffSec: number;
  backoffMaxSec: number;
  /** A transmit queue stopped this long with packets waiting counts as a failure. */
  stallThresholdMs: number;
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
  /** Per-section overrides; policyFor() resolves them. Driver names are normalised ('-' to '_'). */
  classes: ReadonlyMap<string, Partial<Policy>>;
  drivers: ReadonlyMap<string, Partial<Policy>>;
  devices: ReadonlyMap<string, Partial<Policy>>;
}

export const DEFAULT_POLICY: Readonly<Policy> = {
  protect: true,
  maxRecoveries: 3,
  recoveryWindowSec: 600,
  backoffSec: 2,
  backoffMaxSec: 60,
  stallThresholdMs: 1000,
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

export interface ConfigError {
  file: string;
  /** 1-based; 0 when the error is about the whole file (e.g. unreadable). */
  line: number;
  /** The key or section the error is about, when there is one. */
  key: string | null;
  message: string;
}

/** `/etc/shadowd/shadowd.conf:12: MaxRecoveries: must be ...` */
export function formatConfigError(e: ConfigError): string {
  return `${e.file}${e.line > 0 ? `:${e.line}` : ''}: ${e.key !== null ? `${e.key}: ` : ''}${e.message}`;
}

export type ConfigResult = { ok: true; config: Config } | { ok: false; errors: ConfigError[] };

type Parsed<T> = { value: T } | { error: string };

function integer(min: number, max: number): (raw: string) => Parsed<number> {
  return (raw) => {
    const n = /^\d{1,9}$/.test(raw) ? Number(raw) : NaN;
    return Number.isInteger(n) && n >= min && n <= max ? { value: n } : { error: `must be an integer from ${min} to ${max}, got ${JSON.stringify(raw)}` };
  };
}

// The spellings systemd accepts for a boolean.
const TRUE = new Set(['yes', 'true', 'on', '1']);
const FALSE = new Set(['no', 'false', 'off', '0']);
function boolean(raw: string): Parsed<boolean> {
  const v = raw.toLowerCase();
  if (TRUE.has(v)) return { value: true };
  if (FALSE.has(v)) return { value: false };
  return { error: `must be yes or no, got ${JSON.stringify(raw)}` };
}

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
  parse: (raw: string) => Parsed<T>;
}

const POLICY_KEYS: { [name: string]: KeySpec<keyof Policy, number | boolean> } = {
  Protect: { field: 'protect', parse: boolean },
  MaxRecoveries: { field: 'maxRecoveries', parse: integer(1, 100) },
  RecoveryWindowSec: { field: 'recoveryWindowSec', parse: integer(1, 86400) },
  BackoffSec: { field: 'backoffSec', parse: integer(0, 3600) },
  BackoffMaxSec: { field: 'backoffMaxSec', parse: integer(0, 3600) },
  StallThresholdMs: { field: 'stallThresholdMs', parse: integer(100, 600_000) },
};

const DAEMON_KEYS: { [name: string]: KeySpec<keyof DaemonSettings, DaemonSettings[keyof DaemonSettings]> } = {
  LogLevel: { field: 'logLevel', parse: logLevel },
  AllowFaultInjection: { field: 'allowFaultInjection', parse: boolean },
  MetricsTextfile: { field: 'metricsTextfile', parse: textfilePath },
  MetricsIntervalSec: { field: 'metricsIntervalSec', parse: integer(1, 3600) },
};

/** Linux's dev_valid_name(): 1-15 bytes, not . or .., no slash, colon or white space. */
function validDeviceName(name: string): boolean {
  return Buffer.byteLength(name) <= 15 && name !== '.' && name !== '..' && /^[^/:\s]+$/.test(name);
}

/** Kernel module names: MODULE_NAME_LEN is 56 with its NUL. */
function validDriverName(name: string): boolean {
  return /^[A-Za-z0-9_-]{1,55}$/.test(name);
}

/** The kernel treats '-' and '_' in module names alike; so do we. */
export function normaliseDriver(name: string): string {
  return name.replace(/-/g, '_');
}

type Section = { kind: 'daemon' } | { kind: 'class' | 'driver' | 'device'; name: string };

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

function parseSectionHeader(inner: string): Parsed<Section> {
  const m = /^(\S+)(?:\s+(.*))?$/.exec(inner.trim());
  const kind = m?.[1] ?? '';
  const name = m?.[2]?.trim() ?? '';
  switch (kind) {
    case 'Daemon':
      return name === '' ? { value: { kind: 'daemon' } } : { error: '[Daemon] takes no name' };
    case 'Class':
      if (name === '') return { error: `[Class] needs a class name: ${KNOWN_CLASSES.join(', ')}` };
      return (KNOWN_CLASSES as readonly string[]).includes(name)
        ? { value: { kind: 'class', name } }
        : { error: `unknown class ${JSON.stringify(name)} (shadowd knows: ${KNOWN_CLASSES.join(', ')})` };
    case 'Driver':
      if (name === '') return { error: '[Driver] needs a kernel module name, e.g. [Driver e1000]' };
      return validDriverName(name) ? { value: { kind: 'driver', name } } : { error: `${JSON.stringify(name)} is not a kernel module name` };
    case 'Device':
      if (name === '') return { error: '[Device] needs an interface name, e.g. [Device eth0]' };
      return validDeviceName(name) ? { value: { kind: 'device', name } } : { error: `${JSON.stringify(name)} is not an interface name (1-15 characters, no "/", ":" or spaces)` };
    default:
      return { error: `unknown section [${inner.trim()}] (sections: [Daemon], [Class NAME], [Driver NAME], [Device NAME])` };
  }
}

function unknownKey(key: string, section: Section): string {
  const own = section.kind === 'daemon' ? DAEMON_KEYS : POLICY_KEYS;
  const other = section.kind === 'daemon' ? POLICY_KEYS : DAEMON_KEYS;
  if (key in other) return section.kind === 'daemon' ? `belongs in a [Class], [Driver] or [Device] section, not [Daemon]` : `belongs in [Daemon], not ${sectionLabel(section)}`;
  const near = Object.keys(own).find((k) => k.toLowerCase() === key.toLowerCase());
  return `unknown key in ${sectionLabel(section)}${near ? ` (did you mean ${near}?)` : ` (keys: ${Object.keys(own).join(', ')})`}`;
}

/** Parses the text of a configuration file; `file` is only for the error messages. */
export function parseConfig(text: string, file: string): ConfigResult {
  const errors: ConfigError[] = [];
  const err = (line: number, key: string | null, message: string) => errors.push({ file, line, key, message });
  const daemon: DaemonSettings = { ...DEFAULT_DAEMON };
  const classes = new Map<string, Partial<Policy>>();
  const drivers = new Map<string, Partial<Policy>>();
  const devices = new Map<string, Partial<Policy>>();
  const sectionLines = new Map<string, number>();

  let section: Section | null = null;
  // Keys already set in the current section, with their line, for duplicate errors.
  let seen = new Map<string, number>();
  // The policy the current section fills; null for [Daemon], or a section that was in error.
  let policy: Partial<Policy> | null = null;
  let policyLines: { backoffSec?: number; backoffMaxSec?: number } = {};
  // After a bad section header its keys are skipped: one error, not one per line.
  let skipping = false;

  const endSection = () => {
    if (policy && policy.backoffSec !== undefined && policy.backoffMaxSec !== undefined && policy.backoffMaxSec < policy.backoffSec) {
      err(policyLines.backoffMaxSec ?? 0, 'BackoffMaxSec', `must not be less than BackoffSec (${policy.backoffSec}), got ${policy.backoffMaxSec}`);
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
      policy = null;
      policyLines = {};
      section = null;
      skipping = true;
      if (!line.endsWith(']')) {
        err(lineNo, null, `section header ${JSON.stringify(line)} has no closing "]"`);
        continue;
      }
      const header = parseSectionHeader(line.slice(1, -1));
      if ('error' in header) {
        err(lineNo, null, header.error);
        continue;
      }
      const s = header.value;
      const id = s.kind === 'daemon' ? 'daemon' : `${s.kind}:${s.kind === 'driver' ? normaliseDriver(s.name) : s.name}`;
      const first = sectionLines.get(id);
      if (first !== undefined) {
        err(lineNo, null, `${sectionLabel(s)} appears twice (first at line ${first})`);
        continue;
      }
      sectionLines.set(id, lineNo);
      section = s;
      skipping = false;
      if (s.kind !== 'daemon') {
        policy = {};
        const map = s.kind === 'class' ? classes : s.kind === 'driver' ? drivers : devices;
        map.set(s.kind === 'driver' ? normaliseDriver(s.name) : s.name, policy);
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
      err(lineNo, key, 'comes before any section; start the file with [Daemon], [Class NAME], [Driver NAME] or [Device NAME]');
      continue;
    }
    const keys = section.kind === 'daemon' ? DAEMON_KEYS : POLICY_KEYS;
    const spec = Object.hasOwn(keys, key) ? keys[key] : undefined;
    if (!spec) {
      err(lineNo, key, unknownKey(key, section));
      continue;
    }
    const first = seen.get(key);
    if (first !== undefined) {
      err(lineNo, key, `set twice in ${sectionLabel(section)} (first at line ${first})`);
      continue;
    }
    seen.set(key, lineNo);
    const parsed = spec.parse(raw);
    if ('error' in parsed) {
      err(lineNo, key, parsed.error);
      continue;
    }
    if (section.kind === 'daemon') {
      (daemon as unknown as Record<string, unknown>)[spec.field] = parsed.value;
    } else if (policy) {
      (policy as Record<string, unknown>)[spec.field] = parsed.value;
      if (spec.field === 'backoffSec' || spec.field === 'backoffMaxSec') policyLines[spec.field] = lineNo;
    }
  }
  endSection();

  if (errors.length > 0) return { ok: false, errors };
  return { ok: true, config: { file, daemon, classes, drivers, devices } };
}

/**
 * Reads and checks a configuration file. A missing file is not an error: it
 * means the built-in defaults (every device of a known class protected).
 */
export function loadConfig(path: string = DEFAULT_CONFIG_PATH): ConfigResult {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return { ok: true, config: defaultConfig() };
    return { ok: false, errors: [{ file: path, line: 0, key: null, message: `cannot read: ${e instanceof Error ? e.message : String(e)}` }] };
  }
  return parseConfig(text, path);
}

/**
 * The policy for one device: each key from its [Device] section, else its
 * driver's [Driver] section, else its class's [Class] section, else the
 * built-in default. The back-off cap is never below the back-off itself
 * (they may come from different sections).
 */
export function policyFor(config: Config, device: string, driver: string | null | undefined, cls: DeviceClass = 'net'): Policy {
  const layers = [config.devices.get(device), driver ? config.drivers.get(normaliseDriver(driver)) : undefined, config.classes.get(cls)];
  const pick = <K extends keyof Policy>(k: K): Policy[K] => {
    for (const layer of layers) {
      const v = layer?.[k];
      if (v !== undefined) return v;
    }
    return DEFAULT_POLICY[k];
  };
  const backoffSec = pick('backoffSec');
  return {
    protect: pick('protect'),
    maxRecoveries: pick('maxRecoveries'),
    recoveryWindowSec: pick('recoveryWindowSec'),
    backoffSec,
    backoffMaxSec: Math.max(backoffSec, pick('backoffMaxSec')),
    stallThresholdMs: pick('stallThresholdMs'),
  };
}
