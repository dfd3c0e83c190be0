// The control socket's protocol: one JSON object per line each way.
//   request:  {"id": 1, "method": "show", "params": {"device": "eth0"}}
//   reply:    {"id": 1, "ok": true, "result": {...}}
//          or {"id": 1, "ok": false, "error": {"code": "ENODEV", "message": "..."}}
// Every request is validated here, before the daemon acts on it.

import type { ConfigError } from '../service/config.js';
import type { IngestStats } from '../core/ingest.js';
import type { RecoveryRecord } from '../core/recovery-history.js';

export const MAX_REQUEST_BYTES = 16 * 1024;
export const PROTOCOL_VERSION = 1;

export type Request =
  | { id: number; method: 'status' }
  | { id: number; method: 'show'; params: { device: string } }
  | { id: number; method: 'version' }
  | { id: number; method: 'recover'; params: { device: string; reload: boolean } }
  | { id: number; method: 'replay'; params: { device: string } }
  | { id: number; method: 'inject'; params: { device: string; fault: InjectFault; sticky: boolean } }
  | { id: number; method: 'history'; params: { device?: string; limit: number } }
  | { id: number; method: 'reload' };

/** Methods that change the system: only root may call them. */
export const MUTATING_METHODS: ReadonlySet<string> = new Set(['recover', 'replay', 'inject', 'reload']);

/**
 * The helper's faults (kmod/PROTOCOL.md `inject`); 'clear' removes an injected
 * one. lost-irq masks the device's PCI INTx: its interrupts are lost.
 */
export const FAULTS = ['tx-hang', 'fail-stop', 'fail-open', 'fail-mtu', 'fail-mac', 'fail-features', 'fail-rings', 'lost-irq'] as const;
export type InjectFault = (typeof FAULTS)[number] | 'clear';
export const INJECT_FAULTS: readonly InjectFault[] = [...FAULTS, 'clear'];

export const HISTORY_LIMIT_DEFAULT = 50;
export const HISTORY_LIMIT_MAX = 1000;

/**
 * EBUSY: the device is being recovered; EHELPER: the kernel helper is missing
 * or refused; EUNAVAIL: this daemon cannot do that (a part is not built in).
 */
export type ErrorCode = 'EBADREQ' | 'ETOOBIG' | 'ENOMETHOD' | 'ENODEV' | 'EPERM' | 'EBUSY' | 'EHELPER' | 'EUNAVAIL' | 'EINTERNAL';

export interface ErrorReply {
  id: number | null;
  ok: false;
  error: { code: ErrorCode; message: string };
}
export interface OkReply<T = unknown> {
  id: number;
  ok: true;
  result: T;
}
export type Reply<T = unknown> = OkReply<T> | ErrorReply;

export class RequestError extends Error {
  constructor(
    readonly code: ErrorCode,
    message: string,
    readonly id: number | null = null,
  ) {
    super(message);
  }
}

/** Interface names as the kernel accepts them: 1-15 bytes, no '/', ':' or whitespace. */
export function isInterfaceName(name: string): boolean {
  return name.length >= 1 && Buffer.byteLength(name) <= 15 && !/[/:\s]/.test(name) && name !== '.' && name !== '..';
}

const DEVICE_RULE = '"device" must be an interface name (1-15 bytes, no "/", ":" or spaces)';

function deviceParam(p: Record<string, unknown>, id: number): string {
  const device = p['device'];
  if (typeof device !== 'string' || !isInterfaceName(device)) throw new RequestError('EBADREQ', DEVICE_RULE, id);
  return device;
}

function onlyKeys(p: Record<string, unknown>, allowed: readonly string[], method: string, id: number): void {
  const extra = Object.keys(p).filter((k) => !allowed.includes(k));
  if (extra.length > 0) {
    throw new RequestError('EBADREQ', `${method} takes only ${allowed.map((k) => `"${k}"`).join(', ')}, not ${JSON.stringify(extra[0]).slice(0, 40)}`, id);
  }
}

export function parseRequest(line: string): Request {
  if (Buffer.byteLength(line) > MAX_REQUEST_BYTES) throw new RequestError('ETOOBIG', `request is larger than ${MAX_REQUEST_BYTES} bytes`);
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    throw new RequestError('EBADREQ', 'request is not JSON');
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) throw new RequestError('EBADREQ', 'request is not a JSON object');
  const m = msg as Record<string, unknown>;
  const id = m['id'];
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) throw new RequestError('EBADREQ', '"id" must be a non-negative integer');
  const method = m['method'];
  const params = m['params'] ?? {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw new RequestError('EBADREQ', '"params" must be an object', id);
  const p = params as Record<string, unknown>;
  switch (method) {
    case 'status':
    case 'version':
    case 'reload':
      if (Object.keys(p).length > 0) throw new RequestError('EBADREQ', `${method} takes no parameters`, id);
      return { id, method };
    case 'show': {
      const device = p['device'];
      if (typeof device !== 'string' || !isInterfaceName(device)) {
        throw new RequestError('EBADREQ', '"device" must be an interface name (1-15 bytes, no "/", ":" or spaces)', id);
      }
      if (Object.keys(p).length !== 1) throw new RequestError('EBADREQ', 'show takes only "device"', id);
      return { id, method, params: { device } };
    }
    case 'recover': {
      onlyKeys(p, ['device', 'reload'], method, id);
      const device = deviceParam(p, id);
      const reload = 'reload' in p ? p['reload'] : false;
      if (typeof reload !== 'boolean') throw new RequestError('EBADREQ', '"reload" must be true or false', id);
      return { id, method, params: { device, reload } };
    }
    case 'replay': {
      onlyKeys(p, ['device'], method, id);
      return { id, method, params: { device: deviceParam(p, id) } };
    }
    case 'inject': {
      onlyKeys(p, ['device', 'fault', 'sticky'], method, id);
      const device = deviceParam(p, id);
      const fault = p['fault'];
      if (typeof fault !== 'string' || !(INJECT_FAULTS as readonly string[]).includes(fault)) {
        throw new RequestError('EBADREQ', `"fault" must be one of ${INJECT_FAULTS.join(', ')}`, id);
      }
      const sticky = 'sticky' in p ? p['sticky'] : false;
      if (typeof sticky !== 'boolean') throw new RequestError('EBADREQ', '"sticky" must be true or false', id);
      if (sticky && fault === 'clear') throw new RequestError('EBADREQ', '"sticky" applies to a fault, not to clear', id);
      return { id, method, params: { device, fault: fault as InjectFault, sticky } };
    }
    case 'history': {
      onlyKeys(p, ['device', 'limit'], method, id);
      const limit = 'limit' in p ? p['limit'] : HISTORY_LIMIT_DEFAULT;
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > HISTORY_LIMIT_MAX) {
        throw new RequestError('EBADREQ', `"limit" must be an integer from 1 to ${HISTORY_LIMIT_MAX}`, id);
      }
      return !('device' in p) ? { id, method, params: { limit } } : { id, method, params: { device: deviceParam(p, id), limit } };
    }
    default:
      throw new RequestError('ENOMETHOD', `unknown method ${JSON.stringify(method).slice(0, 64)}`, id);
  }
}

export function errorReply(err: RequestError): ErrorReply {
  return { id: err.id, ok: false, error: { code: err.code, message: err.message } };
}

// Results, shared by the daemon and the CLI.

export interface DeviceStatus {
  id: string;
  name: string;
  ifindex: number;
  cls: 'net';
  driver: string | null;
  bus: string | null;
  /** passive: the driver runs it; active: a recovery is under way; parked: recovery gave up, the helper holds it. */
  mode: 'passive' | 'active' | 'parked';
  /** ok: present and watched; absent: the interface is gone (its shadow is kept). */
  health: 'ok' | 'absent';
  keys: number;
  holders: number;
}

/** The taps' health, as the ingest keeps it. */
export type TapsStatus = IngestStats;

export interface StatusResult {
  version: string;
  pid: number;
  /** ms since the epoch */
  startedAt: number;
  taps: TapsStatus;
  /** Devices whose state is being re-read after a change: 0 when the shadow has caught up. */
  pendingReads: number;
  devices: DeviceStatus[];
}

export interface ShowEntry {
  key: string;
  value: unknown;
  setBy: { pid: number | null; comm: string };
  /** ms since the epoch */
  at: number;
}

export interface ShowResult {
  device: DeviceStatus;
  entries: ShowEntry[];
  holders: { kind: 'promiscuity' | 'allmulti'; pid: number; comm: string; count: number; since: number }[];
}

export interface VersionResult {
  version: string;
  protocol: number;
}

/** recover and replay answer with the recovery's history record (recover: once it has ended). */
export type RecoverResult = RecoveryRecord;

export interface InjectResult {
  device: string;
  fault: InjectFault;
  sticky: boolean;
  /** The helper's reply, e.g. "injected eth0 tx-hang". */
  reply: string;
}

export interface HistoryResult {
  /** Newest first. */
  recoveries: RecoveryRecord[];
}

/**
 * What a configuration reload did (shadowctl reload, or SIGHUP). ok false:
 * the file had errors, none of it was applied and the running configuration
 * stays in force.
 */
export interface ReloadResult {
  ok: boolean;
  /** The file read; absent means the built-in defaults. */
  file: string;
  errors: ConfigError[];
  /** What changed, e.g. "LogLevel=debug" (empty when nothing did, or when refused). */
  changes: string[];
}
