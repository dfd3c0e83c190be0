// The control socket on the host: request validation (devices are CLASS:NAME
// references, checked against the registered classes), replies, requests that
// once crashed the daemon, and a fuzz of random and malformed requests after
// which the server still answers. test/unit/control/control-grammar.test.ts
// fuzzes the protocol's grammar field by field.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, ControlError } from '../../../daemon/control/control-client.js';
import { MAX_REQUEST_BYTES, parseRequest as parseWith, RequestError, type Reply } from '../../../daemon/control/control-protocol.js';
import { startControlServer, type ControlServer, type ControlServerOptions } from '../../../daemon/control/control-server.js';
import { ClassSet } from '../../../daemon/core/class-set.js';
import { formatRef } from '../../../daemon/core/device-ref.js';
import { NET_DECLARATION } from '../../../daemon/classes/net/net-declaration.js';
import type { Logger } from '../../../daemon/service/log.js';
import type { PeerCredentials } from '../../../daemon/control/peer-credentials.js';
import { CAP_NET_ADMIN, hasCapability, judgePeer, parseProcStatus, type Privilege } from '../../../daemon/control/peer-privilege.js';
import { TEST_BLOCK, TEST_CLASSES } from './test-classes.js';

const quiet: Logger = { log: () => undefined };

/** The protocol against net and the tests' block class. */
const parseRequest = (line: string) => parseWith(line, TEST_CLASSES);

/** Sends lines (objects as JSON, strings as they are) on one connection and resolves with the replies, in order. */
function exchange(path: string, requests: (object | string)[]): Promise<Reply[]> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let data = '';
    s.setEncoding('utf8');
    s.on('error', reject);
    s.on('connect', () => s.write(requests.map((r) => (typeof r === 'string' ? r : JSON.stringify(r)) + '\n').join('')));
    s.on('data', (d: string) => {
      data += d;
      const lines = data.split('\n').filter(Boolean);
      if (lines.length < requests.length) return;
      s.end();
      resolve(lines.map((l) => JSON.parse(l) as Reply));
    });
  });
}

const NET_ETH0 = { cls: 'net', name: 'eth0' };
const BLOCK_SDA = { cls: 'block', name: 'sda' };

describe('control protocol', () => {
  it('accepts the known requests', () => {
    expect(parseRequest('{"id":1,"method":"status"}')).toEqual({ id: 1, method: 'status' });
    expect(parseRequest('{"id":2,"method":"show","params":{"device":"net:eth0"}}')).toEqual({ id: 2, method: 'show', params: { device: NET_ETH0 } });
    expect(parseRequest('{"id":3,"method":"recover","params":{"device":"net:eth0"}}')).toEqual({ id: 3, method: 'recover', params: { device: NET_ETH0, reload: false } });
    expect(parseRequest('{"id":3,"method":"recover","params":{"device":"net:eth0","reload":true}}')).toEqual({ id: 3, method: 'recover', params: { device: NET_ETH0, reload: true } });
    expect(parseRequest('{"id":3,"method":"recover","params":{"reload":false,"device":"net:eth0"}}')).toEqual({ id: 3, method: 'recover', params: { device: NET_ETH0, reload: false } });
    expect(parseRequest('{"id":4,"method":"replay","params":{"device":"net:eth0"}}')).toEqual({ id: 4, method: 'replay', params: { device: NET_ETH0 } });
    expect(parseRequest('{"id":5,"method":"inject","params":{"device":"net:eth0","fault":"tx-hang"}}')).toEqual({
      id: 5,
      method: 'inject',
      params: { device: NET_ETH0, fault: 'tx-hang', sticky: false },
    });
    expect(parseRequest('{"id":6,"method":"inject","params":{"device":"net:eth0","fault":"fail-stop","sticky":true}}')).toMatchObject({ params: { sticky: true } });
    expect(parseRequest('{"id":7,"method":"inject","params":{"device":"net:eth0","fault":"clear","sticky":false}}')).toMatchObject({ params: { fault: 'clear' } });
    expect(parseRequest('{"id":7,"method":"inject","params":{"device":"net:eth0","fault":"lost-irq"}}')).toMatchObject({ params: { fault: 'lost-irq', sticky: false } });
    expect(parseRequest('{"id":8,"method":"history"}')).toEqual({ id: 8, method: 'history', params: { limit: 50 } });
    expect(parseRequest('{"id":9,"method":"history","params":{"device":"net:eth0","limit":1000}}')).toEqual({ id: 9, method: 'history', params: { device: NET_ETH0, limit: 1000 } });
    expect(parseRequest('{"id":10,"method":"reload"}')).toEqual({ id: 10, method: 'reload' });
    expect(parseRequest('{"id":11,"method":"reload","params":{}}')).toEqual({ id: 11, method: 'reload' });
  });

  it("reads CLASS:NAME for every class, with each class's own faults and history by class", () => {
    expect(parseRequest('{"id":1,"method":"show","params":{"device":"block:sda"}}')).toEqual({ id: 1, method: 'show', params: { device: BLOCK_SDA } });
    // Two classes' devices of one name stay apart.
    expect(parseRequest('{"id":1,"method":"recover","params":{"device":"block:eth0"}}')).toMatchObject({ params: { device: { cls: 'block', name: 'eth0' } } });
    expect(parseRequest('{"id":1,"method":"inject","params":{"device":"block:sda","fault":"fail-io","sticky":true}}')).toEqual({
      id: 1,
      method: 'inject',
      params: { device: BLOCK_SDA, fault: 'fail-io', sticky: true },
    });
    expect(parseRequest('{"id":1,"method":"inject","params":{"device":"block:sda","fault":"clear"}}')).toMatchObject({ params: { fault: 'clear', sticky: false } });
    expect(parseRequest('{"id":1,"method":"history","params":{"class":"block"}}')).toEqual({ id: 1, method: 'history', params: { cls: 'block', limit: 50 } });
    expect(parseRequest('{"id":1,"method":"history","params":{"device":"net:eth0","class":"net","limit":5}}')).toEqual({
      id: 1,
      method: 'history',
      params: { device: NET_ETH0, cls: 'net', limit: 5 },
    });
  });

  it('says what a bad reload option of recover must be', () => {
    expect(() => parseRequest('{"id":1,"method":"recover","params":{"device":"net:eth0","reload":"yes"}}')).toThrow(new RequestError('EBADREQ', '"reload" must be true or false', 1));
    expect(() => parseRequest('{"id":1,"method":"recover","params":{"device":"net:eth0","reload":true,"now":1}}')).toThrow('recover takes only "device", "reload", not "now"');
  });

  it("says which faults the device's class has, and that history's class and device must agree", () => {
    expect(() => parseRequest('{"id":3,"method":"inject","params":{"device":"net:eth0","fault":"fail-io"}}')).toThrow(
      new RequestError('EBADREQ', '"fault" must be one of tx-hang, fail-stop, fail-open, fail-mtu, fail-mac, fail-features, fail-rings, lost-irq, clear (the net class\'s faults)', 3),
    );
    expect(() => parseRequest('{"id":3,"method":"inject","params":{"device":"block:sda","fault":"tx-hang"}}')).toThrow(
      new RequestError('EBADREQ', '"fault" must be one of fail-io, slow-io, clear (the block class\'s faults)', 3),
    );
    expect(() => parseRequest('{"id":4,"method":"history","params":{"device":"net:eth0","class":"block"}}')).toThrow(
      new RequestError('EBADREQ', '"class" block does not match "device" net:eth0', 4),
    );
    expect(() => parseRequest('{"id":4,"method":"history","params":{"class":"sound"}}')).toThrow(new RequestError('EBADREQ', '"class" must be one of net, block', 4));
    expect(() => parseRequest('{"id":4,"method":"history","params":{"class":"net:eth0"}}')).toThrow(new RequestError('EBADREQ', '"class" must be one of net, block', 4));
  });

  it.each([
    ['', 'EBADREQ'],
    ['nope', 'EBADREQ'],
    ['[]', 'EBADREQ'],
    ['{"method":"status"}', 'EBADREQ'],
    ['{"id":-1,"method":"status"}', 'EBADREQ'],
    ['{"id":1.5,"method":"status"}', 'EBADREQ'],
    ['{"id":1}', 'EBADREQ'],
    ['{"id":1,"method":null}', 'EBADREQ'],
    ['{"id":1,"method":"status","params":{"x":1}}', 'EBADREQ'],
    ['{"id":1,"method":"status","params":[]}', 'EBADREQ'],
    ['{"id":1,"method":"show"}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":""}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":{}}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":{"cls":"net","name":"eth0"}}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":"eth0"}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":"net:"}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":":eth0"}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":"NET:eth0"}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":"sound:card0"}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":"net:a/b"}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":"net:eth0:1"}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":"net:sixteen-chars-xx"}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":"block:Sda"}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":"net:eth0","more":1}}', 'EBADREQ'],
    ['{"id":1,"method":"recover"}', 'EBADREQ'],
    ['{"id":1,"method":"recover","params":{"device":"net:eth0","force":true}}', 'EBADREQ'],
    ['{"id":1,"method":"recover","params":{"device":"net:eth0","reload":"yes"}}', 'EBADREQ'],
    ['{"id":1,"method":"recover","params":{"device":"net:eth0","reload":1}}', 'EBADREQ'],
    ['{"id":1,"method":"recover","params":{"device":"net:eth0","reload":null}}', 'EBADREQ'],
    ['{"id":1,"method":"recover","params":{"reload":true}}', 'EBADREQ'],
    ['{"id":1,"method":"replay","params":{"device":"net:eth0","reload":true}}', 'EBADREQ'],
    ['{"id":1,"method":"replay","params":{"device":"net:a b"}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"net:eth0"}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"net:eth0","fault":"explode"}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"net:eth0","fault":"lost-irqs"}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"net:eth0","fault":"fail-io"}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"block:sda","fault":"tx-hang"}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"net:eth0","fault":"tx-hang","sticky":"yes"}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"net:eth0","fault":"tx-hang","sticky":null}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"net:eth0","fault":"clear","sticky":true}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"net:eth0","fault":"tx-hang","now":1}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"limit":0}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"limit":1001}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"limit":2.5}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"limit":"5"}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"limit":null}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"device":null}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"device":"net:a/b"}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"device":"eth0"}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"class":null}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"class":"sound"}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"device":"net:eth0","class":"block"}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"since":0}}', 'EBADREQ'],
    ['{"id":1,"method":"reload","params":{"file":"/tmp/x.conf"}}', 'EBADREQ'],
    ['{"id":1,"method":"reboot"}', 'ENOMETHOD'],
    ['{"id":1,"method":"constructor"}', 'ENOMETHOD'],
    // A method that is not a string was ENOMETHOD in protocol 1; it is a malformed request now.
    ['{"id":1,"method":{"x":1}}', 'EBADREQ'],
    [`{"id":1,"method":"status","pad":"${'x'.repeat(MAX_REQUEST_BYTES)}"}`, 'ETOOBIG'],
  ])('refuses %j with %s', (line, code) => {
    try {
      parseRequest(line);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(RequestError);
      expect((err as RequestError).code).toBe(code);
    }
  });
});

describe('control server', () => {
  let dir: string;
  let path: string;
  let server: ControlServer;
  let handled = 0;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shadowd-ctl-'));
    path = join(dir, 'control.sock');
    server = await startControlServer(
      path,
      (req) => {
        handled++;
        if (req.method === 'show' && formatRef(req.params.device) === 'net:boom') return Promise.reject(new Error('handler failed'));
        if (req.method === 'show' && formatRef(req.params.device) !== 'net:eth0') return Promise.reject(new RequestError('ENODEV', `no device ${formatRef(req.params.device)}`));
        return Promise.resolve({ method: req.method });
      },
      quiet,
      TEST_CLASSES,
    );
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers requests and reports handler errors as error replies', async () => {
    expect(await request(path, 'status')).toEqual({ id: 1, ok: true, result: { method: 'status' } });
    expect(await request(path, 'show', { device: 'net:eth9' })).toEqual({ id: 1, ok: false, error: { code: 'ENODEV', message: 'no device net:eth9' } });
    expect(await request(path, 'show', { device: 'net:boom' })).toEqual({ id: 1, ok: false, error: { code: 'EINTERNAL', message: 'handler failed' } });
  });

  const X = (n: number) => 'x'.repeat(n);
  const NET_RULE = 'it must be an interface name (1-15 bytes, no "/", ":" or spaces)';
  it.each([
    ['no class', 'eth0', '"device": "eth0" names no class: write CLASS:NAME (classes: net, block), e.g. net:eth0'],
    ['an unknown class', 'sound:card0', '"device": unknown device class "sound" (classes: net, block)'],
    ['a class in capitals', 'NET:eth0', '"device": unknown device class "NET" (classes: net, block)'],
    ['a name the class does not allow', 'net:a/b', `"device": "a/b" is not a net device name: ${NET_RULE}`],
    ["a name another class would allow", 'block:a/b', '"device": "a/b" is not a block device name: it must be a disk name (lowercase letters and digits, e.g. sda)'],
    ['a second colon', 'net:eth0:1', `"device": "eth0:1" is not a net device name: ${NET_RULE}`],
    ['a name of 16 bytes', 'net:sixteen-chars-xx', `"device": "sixteen-chars-xx" is not a net device name: ${NET_RULE}`],
    ['a name of 8 characters and 16 bytes', `net:${'é'.repeat(8)}`, `"device": "${'é'.repeat(8)}" is not a net device name: ${NET_RULE}`],
    ['a class and no name', 'net:', `"device": "" is not a net device name: ${NET_RULE}`],
    ['a name and no class', ':eth0', '"device": ":eth0" names no class before its ":" (classes: net, block)'],
    ['nothing', '', expect.stringMatching(/^"device": "" names no class: write CLASS:NAME \(classes: net, block\)/) as string],
    // Echoes of a long reference are cut short: the reply stays small.
    ['a 10 kB name', `net:${X(10_000)}`, `"device": "${X(64)}" is not a net device name: ${NET_RULE}`],
    ['a 10 kB class', `${X(10_000)}:eth0`, `"device": unknown device class "${X(32)}" (classes: net, block)`],
    ['10 kB and no class', X(10_000), `"device": "${X(64)}" names no class: write CLASS:NAME (classes: net, block), e.g. net:${X(32)}`],
  ])('refuses a device reference with %s (%#), saying what is wrong', async (_what, device, message) => {
    const before = handled;
    for (const [method, params] of [
      ['show', { device }],
      ['recover', { device }],
      ['history', { device }],
      ['inject', { device, fault: 'clear' }],
    ] as const) {
      expect(await request(path, method, params), method).toEqual({ id: 1, ok: false, error: { code: 'EBADREQ', message } });
    }
    expect(handled).toBe(before);
  });

  /** Names the form and the classes (an example may follow). */
  const NOT_A_REFERENCE = expect.stringMatching(/^"device" must be a device reference CLASS:NAME \(classes: net, block\)/) as string;
  it('refuses a device that is not a string, showing the form', async () => {
    for (const device of [{}, { cls: 'net', name: 'eth0' }, ['net', 'eth0'], null, 7, true]) {
      expect(await request(path, 'show', { device })).toEqual({ id: 1, ok: false, error: { code: 'EBADREQ', message: NOT_A_REFERENCE } });
    }
  });

  it('answers a request without a method, or with an object for a device, with an error, and goes on answering', async () => {
    // Both once threw inside the server (JSON.stringify(undefined).slice) and took the daemon down.
    const replies = await exchange(path, [
      '{"id":1}',
      '{"id":2,"method":"show","params":{"device":{}}}',
      '{"id":3,"method":"status"}',
      '{"id":4,"method":"show","params":{"device":"net:eth0"}}',
    ]);
    expect(replies).toEqual([
      { id: 1, ok: false, error: { code: 'EBADREQ', message: '"method" must be a string' } },
      { id: 2, ok: false, error: { code: 'EBADREQ', message: NOT_A_REFERENCE } },
      { id: 3, ok: true, result: { method: 'status' } },
      { id: 4, ok: true, result: { method: 'show' } },
    ]);
    // Each on a connection of its own, as shadowctl sends them.
    for (const line of ['{"id":1}', '{"id":1,"method":"show","params":{"device":{}}}']) {
      expect(await exchange(path, [line])).toEqual([{ id: 1, ok: false, error: { code: 'EBADREQ', message: expect.any(String) as string } }]);
      expect(await request(path, 'status')).toEqual({ id: 1, ok: true, result: { method: 'status' } });
    }
  });

  it('says clearly when no daemon listens', async () => {
    await expect(request(join(dir, 'absent.sock'), 'status')).rejects.toThrow(new ControlError('unreachable', `shadowd is not running (nothing listens on ${join(dir, 'absent.sock')})`));
  });

  it('survives thousands of random and malformed requests and still answers', async () => {
    const before = handled;
    const payloads: Buffer[] = [];
    for (let i = 0; i < 3000; i++) {
      const pick = i % 6;
      if (pick === 0) payloads.push(randomBytes(1 + (i % 300)));
      else if (pick === 1) payloads.push(Buffer.from(`{"id":${i},"method":"show","params":{"device":${JSON.stringify(`${['net', 'block', 'sound', ''][i % 4]!}:${randomBytes(8).toString('latin1')}`)}}}\n`));
      else if (pick === 2) payloads.push(Buffer.from(`{"id":${i},"method":"${randomBytes(4).toString('hex')}"}\n`));
      else if (pick === 3) payloads.push(Buffer.from('{"id":' + '9'.repeat(400) + ',"method":"status"}\n'));
      else if (pick === 4) payloads.push(Buffer.from('\n\n\u0000\n'));
      else payloads.push(Buffer.from(`{"id":${i},"method":"status","params":` + '['.repeat(1000) + '\n'));
    }
    // Send them over 30 connections, concatenated, without waiting for replies.
    await Promise.all(
      Array.from({ length: 30 }, (_, c) =>
        new Promise<void>((resolve) => {
          const s = connect(path);
          s.on('error', () => resolve());
          s.on('close', () => resolve());
          s.on('connect', () => {
            s.end(Buffer.concat(payloads.filter((_, i) => i % 30 === c)));
          });
          s.resume();
        }),
      ),
    );
    // One oversized line without a newline is cut off, answered and closed.
    await new Promise<void>((resolve) => {
      const s = connect(path);
      let reply = '';
      s.setEncoding('utf8');
      s.on('data', (d: string) => (reply += d));
      s.on('close', () => {
        expect(JSON.parse(reply.split('\n')[0]!)).toMatchObject({ ok: false, error: { code: 'ETOOBIG' } });
        resolve();
      });
      s.write('x'.repeat(MAX_REQUEST_BYTES + 10));
    });
    // Only well-formed requests reached the handler; the server still answers.
    expect(handled - before).toBeLessThan(3000);
    expect(await request(path, 'status')).toEqual({ id: 1, ok: true, result: { method: 'status' } });
  });
});

describe('control server: a request that makes the parser or the handler throw', () => {
  let dir: string;
  let path: string;
  let server: ControlServer;
  const logged: string[] = [];
  /** A class whose name rule breaks on one name: the parser then throws something that is not a RequestError. */
  const BROKEN = new ClassSet([
    NET_DECLARATION,
    {
      ...TEST_BLOCK,
      id: 'odd',
      names: {
        valid: (name: string) => {
          if (name === 'boom') throw new TypeError('name rule broke');
          return true;
        },
        describe: 'anything',
      },
    },
  ]);
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shadowd-throw-'));
    path = join(dir, 'control.sock');
    server = await startControlServer(
      path,
      (req) => {
        // Thrown, not rejected: a handler that is not async.
        if (req.method === 'show' && req.params.device.name === 'sync') throw new Error('handler threw');
        if (req.method === 'show' && req.params.device.name === 'cycle') {
          const result: Record<string, unknown> = {};
          result['self'] = result;
          return Promise.resolve(result);
        }
        return Promise.resolve({ method: req.method });
      },
      { log: (priority, message) => void logged.push(`${priority} ${message}`) },
      BROKEN,
    );
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers each with an error, logs it, and the connection and the server go on', async () => {
    logged.length = 0;
    const replies = await exchange(path, [
      { id: 1, method: 'show', params: { device: 'odd:boom' } },
      { id: 2, method: 'status' },
      { id: 3, method: 'show', params: { device: 'odd:sync' } },
      { id: 4, method: 'show', params: { device: 'odd:cycle' } },
      { id: 5, method: 'show', params: { device: 'odd:fine' } },
    ]);
    expect(replies).toEqual([
      { id: null, ok: false, error: { code: 'EINTERNAL', message: 'shadowd could not answer that request (its journal says why)' } },
      { id: 2, ok: true, result: { method: 'status' } },
      { id: 3, ok: false, error: { code: 'EINTERNAL', message: 'handler threw' } },
      { id: 4, ok: false, error: { code: 'EINTERNAL', message: expect.stringContaining('circular') as string } },
      { id: 5, ok: true, result: { method: 'show' } },
    ]);
    expect(logged).toEqual([
      'err control request failed unexpectedly: name rule broke',
      'err control request show failed: handler threw',
      expect.stringMatching(/^err control request show failed: .*circular/),
    ]);
    expect(await request(path, 'status')).toEqual({ id: 1, ok: true, result: { method: 'status' } });
  });
});

describe('control server: who may change the system', () => {
  let dir: string;
  const servers: ControlServer[] = [];
  const seen: { method: string; peer: PeerCredentials | null }[] = [];
  /** Grants whatever is asked: tests of who is asked, not of the capability. */
  const granted = (): Privilege => ({ granted: true });
  /** The decision on a /proc/PID/status of the peer's uid, with CapEff `capEff`, in the host's user namespace. */
  const withCaps =
    (capEff: string) =>
    (peer: PeerCredentials): Privilege =>
      judgePeer(peer, { status: `Uid:\t${peer.uid}\t${peer.uid}\t${peer.uid}\t${peer.uid}\nCapEff:\t${capEff}\n`, uidMap: '0 0 4294967295', ownUidMap: '0 0 4294967295' });
  const start = async (name: string, peerCredentials?: () => PeerCredentials, peerPrivilege?: (peer: PeerCredentials) => Privilege): Promise<string> => {
    const path = join(dir, name);
    servers.push(
      await startControlServer(
        path,
        (req, peer) => {
          seen.push({ method: req.method, peer });
          return Promise.resolve({ method: req.method });
        },
        quiet,
        TEST_CLASSES,
        { ...(peerCredentials ? { peerCredentials } : {}), ...(peerPrivilege ? { peerPrivilege } : {}) },
      ),
    );
    return path;
  };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'shadowd-peer-ctl-'));
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('refuses recover, replay, inject and reload to a process without CAP_NET_ADMIN, and answers the rest', async () => {
    const path = await start('user.sock', () => ({ pid: 4321, uid: 1000, gid: 1000 }), withCaps('0000000000000000'));
    seen.length = 0;
    for (const [method, params] of [
      ['recover', { device: 'net:eth0' }],
      ['replay', { device: 'net:eth0' }],
      ['inject', { device: 'net:eth0', fault: 'tx-hang' }],
      ['reload', undefined],
    ] as const) {
      expect(await request(path, method, params)).toEqual({
        id: 1,
        ok: false,
        error: { code: 'EPERM', message: `${method} changes the system and needs root with CAP_NET_ADMIN (asked by uid 1000, pid 4321; it does not run as root (uid 0)): run it with sudo` },
      });
    }
    expect(seen).toEqual([]);
    expect(await request(path, 'history', {})).toEqual({ id: 1, ok: true, result: { method: 'history' } });
    expect(await request(path, 'status')).toMatchObject({ ok: true });
    // Each request is a connection of its own; read-only ones never ask who is calling.
    expect(seen).toEqual([
      { method: 'history', peer: null },
      { method: 'status', peer: null },
    ]);
  });

  it('refuses root without CAP_NET_ADMIN, and a user that holds it', async () => {
    const lines: string[] = [];
    const path = join(dir, 'caps.sock');
    servers.push(
      await startControlServer(path, (req) => Promise.resolve({ method: req.method }), { log: (p, m) => void lines.push(`${p} ${m}`) }, TEST_CLASSES, {
        peerCredentials: () => ({ pid: 77, uid: 0, gid: 0 }),
        peerPrivilege: withCaps('000001ffffffefff'),
      }),
    );
    expect(await request(path, 'reload')).toEqual({
      id: 1,
      ok: false,
      error: { code: 'EPERM', message: 'reload changes the system and needs root with CAP_NET_ADMIN (asked by uid 0, pid 77; it does not hold CAP_NET_ADMIN): run it with sudo' },
    });
    expect(lines).toEqual(['notice refused reload (it needs root with CAP_NET_ADMIN) from uid 0, pid 77: it does not hold CAP_NET_ADMIN']);
    // Refused again and again: every request gets its reply, the journal one line a minute.
    for (let i = 0; i < 20; i++) expect(await request(path, 'reload')).toMatchObject({ ok: false, error: { code: 'EPERM' } });
    expect(lines).toHaveLength(1);
    expect(await request(path, 'status')).toMatchObject({ ok: true });
    const user = await start('netadmin.sock', () => ({ pid: 78, uid: 1000, gid: 1000 }), withCaps('0000000000001000'));
    expect(await request(user, 'replay', { device: 'net:eth0' })).toMatchObject({ id: 1, ok: false, error: { code: 'EPERM', message: expect.stringContaining('it does not run as root (uid 0)') as string } });
  });

  it('asks whether the peer holds CAP_NET_ADMIN at each mutating request: a dropped capability counts from then on', async () => {
    let caps = '0000000000001000';
    const path = await start('drop.sock', () => ({ pid: 79, uid: 0, gid: 0 }), (peer) => withCaps(caps)(peer));
    const s = connect(path);
    s.setEncoding('utf8');
    let data = '';
    s.on('data', (d: string) => (data += d));
    await new Promise((resolve) => s.on('connect', resolve));
    const next = async (line: object): Promise<Reply> => {
      const before = data.split('\n').length;
      s.write(JSON.stringify(line) + '\n');
      while (data.split('\n').length === before) await new Promise((r) => setTimeout(r, 5));
      return JSON.parse(data.split('\n').at(-2)!) as Reply;
    };
    expect(await next({ id: 1, method: 'reload' })).toMatchObject({ id: 1, ok: true });
    caps = '0000000000000000';
    expect(await next({ id: 2, method: 'reload' })).toMatchObject({ id: 2, ok: false, error: { code: 'EPERM' } });
    s.destroy();
  });

  it('asks who is calling only at the first mutating request of a connection', async () => {
    let asked = 0;
    const path = await start(
      'lazy.sock',
      () => {
        asked++;
        return { pid: 1, uid: 0, gid: 0 };
      },
      granted,
    );
    seen.length = 0;
    const replies = await exchange(path, [
      { id: 1, method: 'status' },
      { id: 2, method: 'history' },
    ]);
    expect(replies.map((r) => r.ok)).toEqual([true, true]);
    expect(asked).toBe(0);
    const more = await exchange(path, [
      { id: 1, method: 'version' },
      { id: 2, method: 'reload' },
      { id: 3, method: 'recover', params: { device: 'net:eth0' } },
      { id: 4, method: 'status' },
    ]);
    expect(more.map((r) => r.ok)).toEqual([true, true, true, true]);
    expect(asked).toBe(1);
    // Once known, later requests on the connection get it too.
    expect(seen.map((x) => [x.method, x.peer?.uid ?? null])).toEqual([
      ['status', null],
      ['history', null],
      ['version', null],
      ['reload', 0],
      ['recover', 0],
      ['status', 0],
    ]);
  });

  it("passes a privileged caller's requests to the handler with its credentials", async () => {
    const path = await start('root.sock', () => ({ pid: 1, uid: 0, gid: 0 }), granted);
    seen.length = 0;
    expect(await request(path, 'recover', { device: 'net:eth0' })).toEqual({ id: 1, ok: true, result: { method: 'recover' } });
    expect(seen).toEqual([{ method: 'recover', peer: { pid: 1, uid: 0, gid: 0 } }]);
  });

  it('refuses changes when it cannot tell who asks', async () => {
    const path = await start(
      'unknown.sock',
      () => {
        throw new Error('getsockopt(SO_PEERCRED) failed: errno 95');
      },
      granted,
    );
    expect(await request(path, 'inject', { device: 'net:eth0', fault: 'clear' })).toMatchObject({
      ok: false,
      error: { code: 'EPERM', message: /asked by a caller shadowd cannot identify/ },
    });
    expect(await request(path, 'version')).toMatchObject({ ok: true });
  });

  it('learns the real peer, and whether it holds CAP_NET_ADMIN, by default', async () => {
    const path = await start('real.sock');
    seen.length = 0;
    const reply = await request(path, 'reload');
    // This process is the peer: it may reload if it is root holding CAP_NET_ADMIN (as in this sandbox).
    if (process.geteuid!() === 0 && hasCapability(parseProcStatus(readFileSync('/proc/self/status', 'utf8'))!.capEff, CAP_NET_ADMIN)) {
      expect(reply).toMatchObject({ ok: true });
      expect(seen).toEqual([{ method: 'reload', peer: { pid: process.pid, uid: process.geteuid!(), gid: process.getegid!() } }]);
    } else {
      expect(reply).toMatchObject({ ok: false, error: { code: 'EPERM', message: expect.stringContaining(`reload changes the system and needs root with CAP_NET_ADMIN (asked by uid ${process.geteuid!()}, pid ${process.pid}; `) as string } });
    }
  });
});

describe('control socket access', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'shadowd-access-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const serve = (name: string, options: ControlServerOptions): Promise<ControlServer> =>
    startControlServer(join(dir, name), () => Promise.resolve({}), quiet, TEST_CLASSES, options);

  it('is 0660 and the group\'s when there is a shadowd group, else 0600 (root only)', async () => {
    // A group of our own: chown to it works as root and as a user in it.
    const gid = process.getgid!();
    const grouped = await serve('group.sock', { group: gid });
    const alone = await serve('alone.sock', { group: null });
    const byDefault = await serve('default.sock', {});
    try {
      const g = statSync(join(dir, 'group.sock'));
      expect([g.mode & 0o777, g.gid]).toEqual([0o660, gid]);
      expect(statSync(join(dir, 'alone.sock')).mode & 0o777).toBe(0o600);
      expect(statSync(join(dir, 'default.sock')).mode & 0o777).toBe(0o600);
    } finally {
      for (const s of [grouped, alone, byDefault]) await s.close();
    }
  });

  it.skipIf(process.getuid?.() !== 0)('gives the socket to another group (root)', async () => {
    const server = await serve('other.sock', { group: 4242 });
    try {
      const st = statSync(join(dir, 'other.sock'));
      expect([st.mode & 0o777, st.uid, st.gid]).toEqual([0o660, 0, 4242]);
    } finally {
      await server.close();
    }
  });

  it.skipIf(process.getuid?.() === 0)('falls back to root only, and says so, when the group cannot be given', async () => {
    const lines: string[] = [];
    const server = await startControlServer(join(dir, 'nogroup.sock'), () => Promise.resolve({}), { log: (p, m) => void lines.push(`${p} ${m}`) }, TEST_CLASSES, { group: 0 });
    try {
      expect(statSync(join(dir, 'nogroup.sock')).mode & 0o777).toBe(0o600);
      expect(lines).toEqual([expect.stringMatching(/^warning cannot give the control socket .* to the shadowd group \(gid 0\): .*; only root can use shadowctl$/)]);
    } finally {
      await server.close();
    }
  });
});
