// The control socket's protocol: one JSON object per line each way.
//   request:  {"id": 1, "method": "show", "params": {"device": "eth0"}}
//   reply:    {"id": 1, "ok": true, "result": {...}}
//          or {"id": 1, "ok": false, "error": {"code": "ENODEV", "message": "..."}}
// Every request is validated here, before the daemon acts on it.

import type { IngestStats } from './ingest.js';

export const MAX_REQUEST_BYTES = 16 * 1024;
export const PROTOCOL_VERSION = 1;

export type Request = { id: number; method: 'status' } | { id: number; method: 'show'; params: { device: string } } | { id: number; method: 'version' };

export type ErrorCode = 'EBADREQ' | 'ETOOBIG' | 'ENOMETHOD' | 'ENODEV' | 'EPERM' | 'EINTERNAL';

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
  /** passive: watching; active: standing in for the driver during a recovery. */
  mode: 'passive' | 'active';
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
