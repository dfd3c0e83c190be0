// The control socket's protocol: one JSON object per line each way.
//   request:  {"id": 1, "method": "show", "params": {"device": "net:eth0"}}
//   reply:    {"id": 1, "ok": true, "result": {...}}
//          or {"id": 1, "ok": false, "error": {"code": "ENODEV", "message": "..."}}
// Devices are named CLASS:NAME (core/device-ref.ts), checked against the
// registered classes. Every request is validated here, before the daemon
// acts on it; anything a caller can send gets an error reply, never an
// exception.

import type { ClassSet } from '../core/class-set.js';
import { DeviceRefError, type DeviceRef } from '../core/device-ref.js';
import type { DeviceStatus } from '../core/device-status.js';
import type { IngestStats } from '../core/ingest.js';
import type { RecoveryHistory, RecoveryRecord } from '../core/recovery-history.js';
import type { PersistenceStatus } from '../core/store-health.js';
import { RequestError, type ErrorCode } from '../core/request-error.js';

export { RequestError, type ErrorCode };
export type { DeviceStatus, ShowEntry, ShowResult, HolderStatus } from '../core/device-status.js';

export const MAX_REQUEST_BYTES = 16 * 1024;
/** 2: devices are CLASS:NAME references, status rows carry their class and attrs. */
export const PROTOCOL_VERSION = 2;

export type Request =
  | { id: number; method: 'status' }
  | { id: number; method: 'show'; params: { device: DeviceRef } }
  | { id: number; method: 'version' }
  | { id: number; method: 'recover'; params: { device: DeviceRef; reload: boolean } }
  | { id: number; method: 'replay'; params: { device: DeviceRef } }
  | { id: number; method: 'inject'; params: { device: DeviceRef; fault: string; sticky: boolean } }
  | { id: number; method: 'history'; params: { device?: DeviceRef; cls?: string; limit: number } }
  | { id: number; method: 'reload' };

/** Methods that change the system: only a caller holding CAP_NET_ADMIN may call them (peer-privilege.ts). */
export const MUTATING_METHODS: ReadonlySet<string> = new Set(['recover', 'replay', 'inject', 'reload']);

/** Removes an injected fault (every class): the helper's `inject CLASS:NAME clear`. */
export const CLEAR_FAULT = 'clear';

export const HISTORY_LIMIT_DEFAULT = 50;
export const HISTORY_LIMIT_MAX = 1000;

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

/** A JSON value, shortened for an error message (never throws: undefined and functions too). */
function shown(v: unknown, max = 40): string {
  const text = JSON.stringify(v) as string | undefined;
  return (text ?? String(v)).slice(0, max);
}

function deviceParam(p: Record<string, unknown>, id: number, classes: ClassSet): DeviceRef {
  const device = p['device'];
  if (typeof device !== 'string') throw new RequestError('EBADREQ', `"device" must be a device reference CLASS:NAME (classes: ${classes.ids.join(', ')})`, id);
  try {
    return classes.parseRef(device);
  } catch (err) {
    if (err instanceof DeviceRefError) throw new RequestError('EBADREQ', `"device": ${err.message}`, id);
    throw err;
  }
}

function onlyKeys(p: Record<string, unknown>, allowed: readonly string[], method: string, id: number): void {
  const extra = Object.keys(p).filter((k) => !allowed.includes(k));
  if (extra.length > 0) {
    const takes = allowed.length ? `takes only ${allowed.map((k) => `"${k}"`).join(', ')}` : 'takes no parameters';
    throw new RequestError('EBADREQ', `${method} ${takes}, not ${shown(extra[0])}`, id);
  }
}

function flag(p: Record<string, unknown>, name: string, id: number): boolean {
  const v = name in p ? p[name] : false;
  if (typeof v !== 'boolean') throw new RequestError('EBADREQ', `"${name}" must be true or false`, id);
  return v;
}

export function parseRequest(line: string, classes: ClassSet): Request {
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
  if (typeof method !== 'string') throw new RequestError('EBADREQ', '"method" must be a string', id);
  const params = m['params'] ?? {};
  if (typeof params !== 'object' || params === null || Array.isArray(params)) throw new RequestError('EBADREQ', '"params" must be an object', id);
  const p = params as Record<string, unknown>;
  switch (method) {
    case 'status':
    case 'version':
    case 'reload':
      onlyKeys(p, [], method, id);
      return { id, method };
    case 'show':
      onlyKeys(p, ['device'], method, id);
      return { id, method, params: { device: deviceParam(p, id, classes) } };
    case 'recover': {
      onlyKeys(p, ['device', 'reload'], method, id);
      return { id, method, params: { device: deviceParam(p, id, classes), reload: flag(p, 'reload', id) } };
    }
    case 'replay':
      onlyKeys(p, ['device'], method, id);
      return { id, method, params: { device: deviceParam(p, id, classes) } };
    case 'inject': {
      onlyKeys(p, ['device', 'fault', 'sticky'], method, id);
      const device = deviceParam(p, id, classes);
      const faults = [...classes.require(device.cls).faults, CLEAR_FAULT];
      const fault = p['fault'];
      if (typeof fault !== 'string' || !faults.includes(fault)) {
        throw new RequestError('EBADREQ', `"fault" must be one of ${faults.join(', ')} (the ${device.cls} class's faults)`, id);
      }
      const sticky = flag(p, 'sticky', id);
      if (sticky && fault === CLEAR_FAULT) throw new RequestError('EBADREQ', '"sticky" applies to a fault, not to clear', id);
      return { id, method, params: { device, fault, sticky } };
    }
    case 'history': {
      onlyKeys(p, ['device', 'class', 'limit'], method, id);
      const limit = 'limit' in p ? p['limit'] : HISTORY_LIMIT_DEFAULT;
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > HISTORY_LIMIT_MAX) {
        throw new RequestError('EBADREQ', `"limit" must be an integer from 1 to ${HISTORY_LIMIT_MAX}`, id);
      }
      const out: { device?: DeviceRef; cls?: string; limit: number } = { limit };
      if ('device' in p) out.device = deviceParam(p, id, classes);
      if ('class' in p) {
        const cls = p['class'];
        if (typeof cls !== 'string' || !classes.get(cls)) throw new RequestError('EBADREQ', `"class" must be one of ${classes.ids.join(', ')}`, id);
        if (out.device && out.device.cls !== cls) throw new RequestError('EBADREQ', `"class" ${cls} does not match "device" ${out.device.cls}:${out.device.name}`, id);
        out.cls = cls;
      }
      return { id, method, params: out };
    }
    default:
      throw new RequestError('ENOMETHOD', `unknown method ${shown(method, 64)}`, id);
  }
}

export function errorReply(err: RequestError): ErrorReply {
  return { id: err.id, ok: false, error: { code: err.code, message: err.message } };
}

// Results, shared by the daemon and the CLI.

/** The taps' health, as the taps runner keeps it: over every class, and per class. */
export interface TapsStatus extends IngestStats {
  byClass: Record<string, IngestStats>;
}

export interface StatusResult {
  version: string;
  pid: number;
  /** ms since the epoch */
  startedAt: number;
  /** The registered classes, with the attributes their devices carry (ClassDeclaration.attrs). */
  classes: { id: string; title: string; attrs: string[] }[];
  taps: TapsStatus;
  /** Devices whose state is being re-read after a change: 0 when the shadow has caught up. */
  pendingReads: number;
  devices: DeviceStatus[];
  /** Whether the shadow reaches its file (absent from a shadowd older than this field). */
  persistence?: PersistenceStatus;
  /**
   * Devices whose latest recovery did not bring them back (failed, gave up,
   * interrupted), with why: a restart refused because it would lose what the
   * driver holds shows here until a later recovery succeeds. Absent from a
   * shadowd older than this field.
   */
  unrecovered?: UnrecoveredDevice[];
}

/** at: ms since the epoch, when the recovery ended (or started, if it never ended); id: see shadowctl history. */
export type UnrecoveredDevice = ReturnType<RecoveryHistory['unrecovered']>[number];

export interface VersionResult {
  version: string;
  protocol: number;
}

/** recover and replay answer with the recovery's history record (recover: once it has ended). */
export type RecoverResult = RecoveryRecord;

export interface InjectResult {
  /** CLASS:NAME */
  device: string;
  fault: string;
  sticky: boolean;
  /** The helper's reply, e.g. "injected net:eth0 tx-hang". */
  reply: string;
}

export interface HistoryResult {
  /** Newest first. */
  recoveries: RecoveryRecord[];
}

/** One error in a configuration file, as the file's reader reports it (service/config.ts). */
export interface ConfigError {
  file: string;
  /** 1-based; 0 when the error is about the whole file (e.g. unreadable). */
  line: number;
  /** The key or section the error is about, when there is one. */
  key: string | null;
  message: string;
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
