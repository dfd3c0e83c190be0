// Userspace side of the shadow_helper control protocol (kmod/PROTOCOL.md, kmod/sh_control.c):
// one command line per write(), its reply read back from the same descriptor.
// Commands are checked here as strictly as the module checks them, so a bad
// command is reported with its text instead of a bare EINVAL from the kernel.
import { open, type FileHandle } from 'node:fs/promises';

export const HELPER_DEVICE = '/dev/shadow_helper';
/** The protocol version this client speaks; the module reports its own in `version`. */
export const HELPER_PROTO = 3;
/** Longest command text the module accepts; a write may carry one more byte, the '\n'. */
export const HELPER_COMMAND_MAX = 255;
/** The module's replies fit in 511 bytes; anything far beyond is not a reply. */
const REPLY_MAX = 4096;

export type HelperReply =
  | { ok: true; payload: string }
  | { ok: false; errno: string; message: string };

export interface HelperVersion {
  proto: number;
  version: string;
  kernel: string;
  /** Whether the module was loaded with allow_faults=1 (it accepts `inject`). */
  faults: boolean;
  /** The device classes in the module's class table (`classes=net,sound`): the CLASS of CLASS:NAME references it accepts. */
  classes: string[];
}

export interface HelperClient {
  readonly path: string;
  /** Sends one command; an `err` reply is returned, not thrown. Throws on transport or protocol failure. */
  request(command: string): Promise<HelperReply>;
  /** Asks the module's version; throws unless it speaks HELPER_PROTO. */
  version(): Promise<HelperVersion>;
  close(): Promise<void>;
}

export class HelperError extends Error {
  /** The OS errno name (ENOENT, EACCES, ...) or the module's ERRNAME, when there is one. */
  readonly code: string | undefined;

  constructor(message: string, options: { code?: string; cause?: unknown } = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'HelperError';
    this.code = options.code;
  }
}

const PRINTABLE = /^[\x20-\x7e]*$/;

function quote(text: string, max = 80): string {
  const q = JSON.stringify(text.length > max ? `${text.slice(0, max)}...` : text);
  return text.length > max ? `${q} (${text.length} characters)` : q;
}

/** Throws unless `command` is one line the module would accept as bytes (the verb is the module's call). */
export function checkHelperCommand(command: string): void {
  if (command === '') throw new HelperError('refusing to send an empty helper command', { code: 'EINVAL' });
  if (/[\r\n]/.test(command)) {
    throw new HelperError(`refusing to send helper command ${quote(command)}: it contains a line break (one request is one line)`, {
      code: 'EINVAL',
    });
  }
  const bad = /[^\x20-\x7e]/.exec(command);
  if (bad) {
    const code = bad[0].codePointAt(0) ?? 0;
    throw new HelperError(
      `refusing to send helper command ${quote(command)}: character ${bad.index} (U+${code.toString(16).padStart(4, '0')}) is not printable ASCII`,
      { code: 'EINVAL' },
    );
  }
  if (command.length > HELPER_COMMAND_MAX) {
    throw new HelperError(
      `refusing to send helper command ${quote(command)}: ${command.length} bytes, the limit is ${HELPER_COMMAND_MAX}`,
      { code: 'EMSGSIZE' },
    );
  }
}

function malformed(text: string, why: string): HelperError {
  return new HelperError(`malformed reply from shadow_helper ${quote(text)}: ${why}`, { code: 'EPROTO' });
}

/** Parses one reply line, `ok <payload>\n` or `err <ERRNAME> <message>\n`. */
export function parseHelperReply(text: string): HelperReply {
  if (text === '') throw malformed(text, 'it is empty');
  if (!text.endsWith('\n')) throw malformed(text, 'it does not end with a newline (truncated?)');
  const line = text.slice(0, -1);
  if (line.includes('\n')) throw malformed(text, 'it has more than one line');
  if (!PRINTABLE.test(line)) throw malformed(text, 'it contains characters that are not printable ASCII');
  if (line === 'ok') return { ok: true, payload: '' };
  if (line.startsWith('ok ')) {
    const payload = line.slice(3);
    if (payload === '' || payload.startsWith(' ')) throw malformed(text, 'expected "ok" or "ok <payload>"');
    return { ok: true, payload };
  }
  if (line === 'err' || line.startsWith('err ')) {
    const m = /^err (E[A-Z0-9]+) ([^ ].*)$/.exec(line);
    if (!m?.[1] || !m[2]) throw malformed(text, 'expected "err <ERRNAME> <message>"');
    return { ok: false, errno: m[1], message: m[2] };
  }
  throw malformed(text, 'it starts with neither "ok" nor "err"');
}

/** Parses the payload of `version`: `shadow_helper proto=N version=X.Y.Z kernel=RELEASE faults=0|1 classes=net[,CLASS...]`. */
export function parseHelperVersion(payload: string): HelperVersion {
  const [name, ...fields] = payload.split(' ');
  if (name !== 'shadow_helper') {
    throw new HelperError(`unexpected version reply ${quote(payload)}: it does not start with "shadow_helper"`, { code: 'EPROTO' });
  }
  const values = new Map<string, string>();
  for (const field of fields) {
    const eq = field.indexOf('=');
    if (eq <= 0) throw new HelperError(`unexpected version reply ${quote(payload)}: ${quote(field)} is not key=value`, { code: 'EPROTO' });
    const key = field.slice(0, eq);
    if (values.has(key)) throw new HelperError(`unexpected version reply ${quote(payload)}: ${key}= appears twice`, { code: 'EPROTO' });
    values.set(key, field.slice(eq + 1));
  }
  const protoText = values.get('proto') ?? '';
  const version = values.get('version') ?? '';
  const kernel = values.get('kernel') ?? '';
  if (!/^\d{1,6}$/.test(protoText) || version === '' || kernel === '') {
    throw new HelperError(`unexpected version reply ${quote(payload)}: it needs proto=<number>, version= and kernel=`, { code: 'EPROTO' });
  }
  const proto = Number(protoText);
  if (proto !== HELPER_PROTO) {
    throw new HelperError(
      `the loaded shadow_helper module (version ${version}) speaks protocol ${proto}, this shadowd speaks ${HELPER_PROTO}: ` +
        'install the module that came with this shadowd',
      { code: 'EPROTO' },
    );
  }
  // Checked after the protocol: a proto=1 module has no faults= and must be told apart by its protocol.
  const faultsText = values.get('faults');
  if (faultsText !== '0' && faultsText !== '1') {
    throw new HelperError(`unexpected version reply ${quote(payload)}: it needs faults=0 or faults=1`, { code: 'EPROTO' });
  }
  const classesText = values.get('classes') ?? '';
  const classes = classesText.split(',');
  if (!classes.every((c) => /^[a-z][a-z0-9_]{0,15}$/.test(c)) || new Set(classes).size !== classes.length) {
    throw new HelperError(`unexpected version reply ${quote(payload)}: it needs classes= with a comma-separated list of class ids`, { code: 'EPROTO' });
  }
  return { proto, version, kernel, faults: faultsText === '1', classes };
}

function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

function openError(err: unknown, path: string): Error {
  const code = errnoOf(err);
  switch (code) {
    case 'ENOENT':
      return new HelperError(`the shadow_helper module is not loaded (${path} is missing)`, { code, cause: err });
    case 'ENXIO':
    case 'ENODEV':
      // A stale device node left behind without the module behind it.
      return new HelperError(`the shadow_helper module is not loaded (${path} has no driver behind it)`, { code, cause: err });
    case 'EACCES':
    case 'EPERM':
      return new HelperError('permission denied: the helper requires root', { code, cause: err });
    default:
      return new HelperError(`cannot open ${path}: ${err instanceof Error ? err.message : String(err)}`, { code, cause: err });
  }
}

async function exchange(fh: FileHandle, path: string, command: string): Promise<HelperReply> {
  const line = Buffer.from(`${command}\n`, 'latin1');
  try {
    const { bytesWritten } = await fh.write(line, 0, line.length, null);
    if (bytesWritten !== line.length) {
      throw new HelperError(`short write to ${path}: ${bytesWritten} of ${line.length} bytes of ${quote(command)}`, { code: 'EIO' });
    }
  } catch (err) {
    if (err instanceof HelperError) throw err;
    const code = errnoOf(err);
    throw new HelperError(`shadow_helper rejected ${quote(command)} (${code ?? String(err)})`, { code, cause: err });
  }
  const chunks: Buffer[] = [];
  let total = 0;
  // The module answers within write(); the reply may still arrive in pieces.
  for (;;) {
    const buf = Buffer.alloc(512);
    let bytesRead: number;
    try {
      ({ bytesRead } = await fh.read(buf, 0, buf.length, null));
    } catch (err) {
      throw new HelperError(`reading the reply to ${quote(command)} from ${path} failed (${errnoOf(err) ?? String(err)})`, {
        code: errnoOf(err),
        cause: err,
      });
    }
    if (bytesRead === 0) break;
    chunks.push(buf.subarray(0, bytesRead));
    total += bytesRead;
    if (buf.subarray(0, bytesRead).includes(0x0a)) break;
    if (total > REPLY_MAX) break;
  }
  const text = Buffer.concat(chunks).toString('latin1');
  if (text === '') throw new HelperError(`shadow_helper gave no reply to ${quote(command)}`, { code: 'EPROTO' });
  return parseHelperReply(text);
}

/** Opens the helper's device; one client is one requester (requests are queued, never interleaved). */
export async function openHelper(path = HELPER_DEVICE): Promise<HelperClient> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r+');
  } catch (err) {
    throw openError(err, path);
  }
  // Each reply belongs to the open file: a second request in flight would overwrite the first's.
  let tail: Promise<unknown> = Promise.resolve();
  let closed = false;
  const request = (command: string): Promise<HelperReply> => {
    if (closed) return Promise.reject(new HelperError(`the connection to ${path} is closed`, { code: 'EBADF' }));
    try {
      checkHelperCommand(command);
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
    const run = tail.then(() => exchange(fh, path, command));
    tail = run.catch(() => undefined);
    return run;
  };
  return {
    path,
    request,
    async version(): Promise<HelperVersion> {
      const reply = await request('version');
      if (!reply.ok) {
        throw new HelperError(`shadow_helper refused "version": ${reply.errno} ${reply.message}`, { code: reply.errno });
      }
      return parseHelperVersion(reply.payload);
    },
    async close(): Promise<void> {
      if (closed) return;
      closed = true;
      await tail;
      await fh.close();
    },
  };
}
