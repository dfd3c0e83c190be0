// A fuzz of the control socket from the protocol's grammar (control-protocol.ts):
// every method with each field missing, extra, of each JSON type, huge, or
// naming another class's device or fault; the envelope's id, method and params
// likewise. An oracle written from the grammar says what each request must get:
// the request the handler sees, or the error code. Every request gets exactly
// one reply line, only the valid ones reach the handler, and status still
// answers afterwards.
import { connect } from 'node:net';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../../daemon/control/control-client.js';
import { CLEAR_FAULT, HISTORY_LIMIT_DEFAULT, HISTORY_LIMIT_MAX, MAX_REQUEST_BYTES, type ErrorCode, type Request } from '../../../daemon/control/control-protocol.js';
import { startControlServer, type ControlServer } from '../../../daemon/control/control-server.js';
import type { DeviceRef } from '../../../daemon/core/device-ref.js';
import { BLOCK_FAULTS, NET_FAULTS, TEST_CLASSES } from './test-classes.js';

// The grammar.

/** Each method's parameters: those it needs, and those it may have. */
const GRAMMAR: Record<string, { required: string[]; optional: string[]; base: Record<string, unknown> }> = {
  status: { required: [], optional: [], base: {} },
  version: { required: [], optional: [], base: {} },
  reload: { required: [], optional: [], base: {} },
  show: { required: ['device'], optional: [], base: { device: 'net:eth0' } },
  replay: { required: ['device'], optional: [], base: { device: 'net:eth0' } },
  recover: { required: ['device'], optional: ['reload'], base: { device: 'net:eth0' } },
  inject: { required: ['device', 'fault'], optional: ['sticky'], base: { device: 'net:eth0', fault: 'tx-hang' } },
  history: { required: [], optional: ['device', 'class', 'limit'], base: {} },
};
/** Each method with all its optional parameters, valid. */
const FULL: Record<string, Record<string, unknown>> = {
  recover: { device: 'block:sda', reload: true },
  inject: { device: 'block:sda', fault: 'slow-io', sticky: true },
  history: { device: 'net:eth0', class: 'net', limit: HISTORY_LIMIT_MAX },
};

/** Device names: a NIC's as the kernel's dev_valid_name() takes them; the test block class's lowercase letters and digits. */
const NAME_RULES: Record<string, (name: string) => boolean> = {
  net: (n) => n.length > 0 && Buffer.byteLength(n) <= 15 && n !== '.' && n !== '..' && !/[/:\s]/.test(n),
  block: (n) => /^[a-z][a-z0-9]{0,31}$/.test(n),
};
const FAULTS: Record<string, readonly string[]> = { net: NET_FAULTS, block: BLOCK_FAULTS };

function ref(v: unknown): DeviceRef | null {
  if (typeof v !== 'string') return null;
  const colon = v.indexOf(':');
  if (colon < 0) return null;
  const cls = v.slice(0, colon);
  const name = v.slice(colon + 1);
  return Object.hasOwn(NAME_RULES, cls) && NAME_RULES[cls]!(name) ? { cls, name } : null;
}

/** What the handler must get: a Request, as the parser builds it. */
type Parsed = { id: number; method: string; params?: Record<string, unknown> };
type Verdict = { request: Parsed } | { code: ErrorCode };
const bad: Verdict = { code: 'EBADREQ' };

/** What the daemon must make of one request line: the oracle. */
function judge(line: string): { id: number | null; verdict: Verdict } {
  if (Buffer.byteLength(line) > MAX_REQUEST_BYTES) return { id: null, verdict: { code: 'ETOOBIG' } };
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    return { id: null, verdict: bad };
  }
  if (typeof msg !== 'object' || msg === null || Array.isArray(msg)) return { id: null, verdict: bad };
  const { id, method, params: raw } = msg as Record<string, unknown>;
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) return { id: null, verdict: bad };
  const out = (verdict: Verdict) => ({ id, verdict });
  if (typeof method !== 'string') return out(bad);
  const p = raw ?? {};
  if (typeof p !== 'object' || Array.isArray(p)) return out(bad);
  const params = p as Record<string, unknown>;
  if (!Object.hasOwn(GRAMMAR, method)) return out({ code: 'ENOMETHOD' });
  const g = GRAMMAR[method]!;
  if (Object.keys(params).some((k) => !g.required.includes(k) && !g.optional.includes(k))) return out(bad);
  const has = (k: string) => Object.hasOwn(params, k);
  const flag = (k: string): boolean | null => (!has(k) ? false : typeof params[k] === 'boolean' ? params[k] : null);
  switch (method) {
    case 'status':
    case 'version':
    case 'reload':
      return out({ request: { id, method } });
    case 'show':
    case 'replay': {
      const device = ref(params['device']);
      return out(device ? { request: { id, method, params: { device } } } : bad);
    }
    case 'recover': {
      const device = ref(params['device']);
      const reload = flag('reload');
      return out(device && reload !== null ? { request: { id, method, params: { device, reload } } } : bad);
    }
    case 'inject': {
      const device = ref(params['device']);
      const fault = params['fault'];
      const sticky = flag('sticky');
      if (!device || sticky === null || typeof fault !== 'string') return out(bad);
      if (![...FAULTS[device.cls]!, CLEAR_FAULT].includes(fault) || (sticky && fault === CLEAR_FAULT)) return out(bad);
      return out({ request: { id, method, params: { device, fault, sticky } } });
    }
    case 'history': {
      const limit = has('limit') ? params['limit'] : HISTORY_LIMIT_DEFAULT;
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > HISTORY_LIMIT_MAX) return out(bad);
      const device = has('device') ? ref(params['device']) : undefined;
      if (device === null) return out(bad);
      const cls = params['class'];
      if (has('class') && (typeof cls !== 'string' || !Object.hasOwn(NAME_RULES, cls) || (device && device.cls !== cls))) return out(bad);
      return out({ request: { id, method, params: { limit, ...(device ? { device } : {}), ...(has('class') ? { cls: cls as string } : {}) } } });
    }
  }
  throw new Error(`the grammar has no method ${method}`);
}

// The values fields are given: every JSON type, near misses, other classes' names and faults, and huge ones.

const X = (n: number) => 'x'.repeat(n);
const deep = (n: number): unknown => (n === 0 ? [] : [deep(n - 1)]);
const VALUES: unknown[] = [
  null, true, false, 0, -1, 1, 2, 50, 1000, 1001, 2.5, -0.5, 1e300, 2 ** 53,
  '', ' ', 'eth0', 'net', 'block', 'sound', 'NET', 'net:eth0', 'net:eth0 ', ' net:eth0', 'net:enp0s31f6', 'net:lo', 'net:.', 'net:..', 'net:a/b', 'net:a b',
  'net:eth0:1', 'net:eth\t0', 'net:eth\n0', `net:${X(15)}`, `net:${X(16)}`, `net:${'é'.repeat(7)}`, `net:${'é'.repeat(8)}`, 'net:', ':eth0', ':', '::',
  'NET:eth0', 'net :eth0', 'sound:card0', 'block:sda', 'block:eth0', 'block:Sda', 'block:sda1', 'block:', `block:${X(33)}`,
  'tx-hang', 'fail-stop', 'lost-irq', 'clear', 'fail-io', 'slow-io', 'explode', 'TX-HANG', 'true', '50',
  [], ['net:eth0'], [true], [50], {}, { cls: 'net', name: 'eth0' }, { device: 'net:eth0' }, { toString: 'net:eth0' },
  deep(300), Array.from({ length: 2000 }, () => 7),
  // Huge, but under the request cap: parsed and refused.
  X(10_000), `net:${X(10_000)}`, `${X(10_000)}:eth0`, `block:${'é'.repeat(5000)}`, Array.from({ length: 1000 }, () => 'net:eth0'),
];
/** Past the request cap (16 KiB): refused before it is parsed. */
const OVERSIZED: unknown[] = [X(MAX_REQUEST_BYTES), `net:${X(MAX_REQUEST_BYTES)}`, Array.from({ length: 2000 }, () => 'net:eth0')];
/** A valid value of each field, for the methods that do not take it. */
const OTHER_FIELDS: Record<string, unknown> = { device: 'net:eth0', fault: 'clear', sticky: false, reload: false, class: 'net', limit: 1 };
const EXTRA_KEYS = ['x', 'Device', 'devices', 'id', 'method', 'params', '', ' device', '__proto__', 'constructor', 'toString', 'hasOwnProperty', X(5000)];

/** A params object with exactly these own keys (so "__proto__" is a key, not the prototype). */
const paramsOf = (entries: [string, unknown][]): Record<string, unknown> => Object.fromEntries(entries);

function cases(): { line: string; why: string }[] {
  const out: { line: string; why: string }[] = [];
  let next = 1;
  const add = (why: string, envelope: Record<string, unknown>): void => {
    out.push({ why, line: JSON.stringify({ id: next++, ...envelope }) });
  };
  const withParams = (method: string, why: string, params: Record<string, unknown> | undefined) => add(`${method}: ${why}`, params === undefined ? { method } : { method, params });
  for (const [method, g] of Object.entries(GRAMMAR)) {
    withParams(method, 'as documented', g.base);
    withParams(method, 'no params at all', undefined);
    if (FULL[method]) withParams(method, 'every parameter', FULL[method]);
    for (const k of g.required) withParams(method, `without ${k}`, paramsOf(Object.entries(g.base).filter(([key]) => key !== k)));
    for (const k of [...g.required, ...g.optional]) {
      VALUES.forEach((v, i) => withParams(method, `${k} = value #${i} ${JSON.stringify(v).slice(0, 40)}`, { ...g.base, [k]: v }));
      OVERSIZED.forEach((v, i) => withParams(method, `${k} = oversized value #${i}`, { ...g.base, [k]: v }));
    }
    for (const k of EXTRA_KEYS) {
      withParams(method, `extra key ${JSON.stringify(k).slice(0, 20)}`, paramsOf([...Object.entries(g.base), [k, 1]]));
      withParams(method, `extra key ${JSON.stringify(k).slice(0, 20)} with a device`, paramsOf([...Object.entries(g.base), [k, 'net:eth0']]));
    }
    // Fields the other methods take.
    for (const k of ['device', 'fault', 'sticky', 'reload', 'class', 'limit']) {
      if (![...g.required, ...g.optional].includes(k)) withParams(method, `another method's ${k}`, { ...g.base, [k]: OTHER_FIELDS[k] });
    }
    for (const params of [null, [], [g.base], 'net:eth0', 1, 0, true, false]) add(`${method}: params ${JSON.stringify(params)}`, { method, params });
  }
  // The envelope.
  for (const id of [undefined, null, '1', -1, 1.5, 1e300, 2 ** 53, [], {}, true, 0, 2 ** 53 - 1]) {
    for (const [method, params] of [['status', undefined], ['show', { device: 'net:eth0' }], ['show', { device: 'eth0' }]] as const) {
      out.push({ why: `id ${JSON.stringify(id)}, ${method}`, line: JSON.stringify({ ...(id === undefined ? {} : { id }), method, ...(params ? { params } : {}) }) });
    }
  }
  for (const method of [undefined, null, 1, {}, [], true, '', 'STATUS', 'status ', ' status', 'sta\u0000tus', 'reboot', X(10_000), '__proto__', 'constructor', 'toString', 'hasOwnProperty', 'valueOf']) {
    add(`method ${JSON.stringify(method)?.slice(0, 20)}`, method === undefined ? {} : { method });
    add(`method ${JSON.stringify(method)?.slice(0, 20)} with params`, { ...(method === undefined ? {} : { method }), params: { device: 'net:eth0' } });
    add(`method ${JSON.stringify(method)?.slice(0, 20)} with bad params`, { ...(method === undefined ? {} : { method }), params: [] });
  }
  // The envelope's other keys are ignored (a newer client's, say).
  add('an extra envelope key', { method: 'status', extra: { device: 'net:eth0' } });
  add('an oversized envelope key', { method: 'status', pad: X(MAX_REQUEST_BYTES) });
  for (const line of ['null', '[]', '[{"id":1,"method":"status"}]', '1', '"status"', 'true', '{', '{"id":1,"method":"status"', '{"id":1,"method":"status"}}', '{"id":1,"method":"status"}{}', '\u0000', '{"id":1,"method":"status",}', `${'['.repeat(5000)}${']'.repeat(5000)}`, `{"id":1,"method":"status","params":${'{"a":'.repeat(2000)}1${'}'.repeat(2000)}}`]) {
    out.push({ why: `line ${line.slice(0, 30)}`, line });
  }
  return out;
}

/** Writes the lines on one connection, waits for as many reply lines (or the timeout), then hangs up and returns every line the server sent. */
function converse(path: string, lines: string[], timeoutMs = 20_000): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let data = '';
    const received = () => data.split('\n').slice(0, -1);
    const timer = setTimeout(() => s.end(), timeoutMs);
    s.setEncoding('utf8');
    s.on('error', reject);
    s.on('connect', () => s.write(lines.map((l) => `${l}\n`).join('')));
    s.on('data', (d: string) => {
      data += d;
      if (received().length >= lines.length) s.end();
    });
    s.on('close', () => {
      clearTimeout(timer);
      resolve(received());
    });
  });
}

describe('control socket: a fuzz from the grammar', () => {
  let dir: string;
  let path: string;
  let server: ControlServer;
  const got: Request[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shadowd-grammar-'));
    path = join(dir, 'control.sock');
    server = await startControlServer(
      path,
      (req) => {
        got.push(req);
        return Promise.resolve(req);
      },
      { log: () => undefined },
      TEST_CLASSES,
      // As root: the mutating methods reach the handler too.
      { peerCredentials: () => ({ pid: 1, uid: 0, gid: 0 }) },
    );
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('the oracle agrees with the examples of the protocol', () => {
    expect(judge('{"id":1,"method":"show","params":{"device":"net:eth0"}}')).toEqual({ id: 1, verdict: { request: { id: 1, method: 'show', params: { device: { cls: 'net', name: 'eth0' } } } } });
    expect(judge('{"id":1,"method":"show","params":{"device":"eth0"}}')).toEqual({ id: 1, verdict: { code: 'EBADREQ' } });
    expect(judge('{"id":1,"method":"reboot"}')).toEqual({ id: 1, verdict: { code: 'ENOMETHOD' } });
    expect(judge('{"method":"status"}')).toEqual({ id: null, verdict: { code: 'EBADREQ' } });
  });

  it('answers every request with exactly one reply line: the valid ones from the handler, the rest with the error the grammar says, and status still answers', async () => {
    const all = cases();
    const judged = all.map((c) => ({ ...c, ...judge(c.line) }));
    const valid = judged.filter((c) => 'request' in c.verdict);
    // The generator reaches both sides of the grammar, for every method.
    expect(judged.length).toBeGreaterThan(1000);
    for (const method of Object.keys(GRAMMAR)) {
      expect(valid.some((c) => 'request' in c.verdict && c.verdict.request.method === method), method).toBe(true);
      expect(judged.some((c) => c.why.startsWith(`${method}:`) && !('request' in c.verdict)), method).toBe(true);
    }
    for (const code of ['EBADREQ', 'ENOMETHOD', 'ETOOBIG']) expect(judged.some((c) => 'code' in c.verdict && c.verdict.code === code), code).toBe(true);

    // Lines past the cap each on a connection of their own (the server may cut one off mid-line and hang up); the rest over 8 connections at once.
    const oversized = judged.filter((c) => Buffer.byteLength(c.line) > MAX_REQUEST_BYTES);
    const normal = judged.filter((c) => Buffer.byteLength(c.line) <= MAX_REQUEST_BYTES);
    const groups = Array.from({ length: 8 }, (_, g) => normal.filter((_, i) => i % 8 === g));
    got.length = 0;
    const [replies, big] = await Promise.all([
      Promise.all(groups.map((group) => converse(path, group.map((c) => c.line)))),
      Promise.all(oversized.map((c) => converse(path, [c.line]))),
    ]);

    const check = (c: (typeof judged)[number], lines: string[] | undefined): void => {
      const what = `${c.why}: ${c.line.slice(0, 120)}`;
      expect(lines, what).toBeDefined();
      const reply = JSON.parse(lines!.shift()!) as Record<string, unknown>;
      if ('request' in c.verdict) {
        expect(reply, what).toEqual({ id: c.id, ok: true, result: c.verdict.request });
      } else {
        expect(reply, what).toEqual({ id: c.id, ok: false, error: { code: c.verdict.code, message: expect.any(String) as string } });
        const message = (reply['error'] as { message: string }).message;
        // Says something, and does not echo a huge field back.
        expect(message.length, what).toBeGreaterThan(10);
        expect(message.length, what).toBeLessThan(400);
      }
    };
    groups.forEach((group, g) => {
      expect(replies[g]!.length, `connection ${g}: one reply line per request`).toBe(group.length);
      const lines = [...replies[g]!];
      for (const c of group) check(c, lines);
    });
    oversized.forEach((c, i) => {
      expect(big[i]!.length, `${c.why}: one reply line`).toBe(1);
      check(c, [...big[i]!]);
    });
    // Only the valid requests reached the handler, each once, as parsed.
    const sorted = (requests: unknown[]) => requests.map((r) => JSON.stringify(r)).sort();
    expect(sorted(got)).toEqual(sorted(valid.map((c) => (c.verdict as { request: Parsed }).request)));
    expect(got.length).toBe(valid.length);

    expect(await request(path, 'status')).toEqual({ id: 1, ok: true, result: { id: 1, method: 'status' } });
  }, 60_000);
});
