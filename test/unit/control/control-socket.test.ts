// The control socket on the host: request validation, replies, and a fuzz of
// random and malformed requests after which the server still answers.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, ControlError } from '../../../daemon/control/control-client.js';
import { MAX_REQUEST_BYTES, parseRequest, RequestError } from '../../../daemon/control/control-protocol.js';
import { startControlServer, type ControlServer, type ControlServerOptions } from '../../../daemon/control/control-server.js';
import type { Logger } from '../../../daemon/service/log.js';
import type { PeerCredentials } from '../../../daemon/control/peer-credentials.js';

const quiet: Logger = { log: () => undefined };

/** Sends requests on one connection and resolves with the replies, in order. */
function exchange(path: string, requests: object[]): Promise<{ id: number; ok: boolean }[]> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    let data = '';
    s.setEncoding('utf8');
    s.on('error', reject);
    s.on('connect', () => s.write(requests.map((r) => JSON.stringify(r) + '\n').join('')));
    s.on('data', (d: string) => {
      data += d;
      const lines = data.split('\n').filter(Boolean);
      if (lines.length < requests.length) return;
      s.end();
      resolve(lines.map((l) => JSON.parse(l) as { id: number; ok: boolean }));
    });
  });
}

describe('control protocol', () => {
  it('accepts the known requests', () => {
    expect(parseRequest('{"id":1,"method":"status"}')).toEqual({ id: 1, method: 'status' });
    expect(parseRequest('{"id":2,"method":"show","params":{"device":"eth0"}}')).toEqual({ id: 2, method: 'show', params: { device: 'eth0' } });
    expect(parseRequest('{"id":3,"method":"recover","params":{"device":"eth0"}}')).toEqual({ id: 3, method: 'recover', params: { device: 'eth0', reload: false } });
    expect(parseRequest('{"id":3,"method":"recover","params":{"device":"eth0","reload":true}}')).toEqual({ id: 3, method: 'recover', params: { device: 'eth0', reload: true } });
    expect(parseRequest('{"id":3,"method":"recover","params":{"reload":false,"device":"eth0"}}')).toEqual({ id: 3, method: 'recover', params: { device: 'eth0', reload: false } });
    expect(parseRequest('{"id":4,"method":"replay","params":{"device":"eth0"}}')).toEqual({ id: 4, method: 'replay', params: { device: 'eth0' } });
    expect(parseRequest('{"id":5,"method":"inject","params":{"device":"eth0","fault":"tx-hang"}}')).toEqual({
      id: 5,
      method: 'inject',
      params: { device: 'eth0', fault: 'tx-hang', sticky: false },
    });
    expect(parseRequest('{"id":6,"method":"inject","params":{"device":"eth0","fault":"fail-stop","sticky":true}}')).toMatchObject({ params: { sticky: true } });
    expect(parseRequest('{"id":7,"method":"inject","params":{"device":"eth0","fault":"clear","sticky":false}}')).toMatchObject({ params: { fault: 'clear' } });
    expect(parseRequest('{"id":7,"method":"inject","params":{"device":"eth0","fault":"lost-irq"}}')).toMatchObject({ params: { fault: 'lost-irq', sticky: false } });
    expect(parseRequest('{"id":8,"method":"history"}')).toEqual({ id: 8, method: 'history', params: { limit: 50 } });
    expect(parseRequest('{"id":9,"method":"history","params":{"device":"eth0","limit":1000}}')).toEqual({ id: 9, method: 'history', params: { device: 'eth0', limit: 1000 } });
    expect(parseRequest('{"id":10,"method":"reload"}')).toEqual({ id: 10, method: 'reload' });
    expect(parseRequest('{"id":11,"method":"reload","params":{}}')).toEqual({ id: 11, method: 'reload' });
  });

  it('says what a bad reload option of recover must be', () => {
    expect(() => parseRequest('{"id":1,"method":"recover","params":{"device":"eth0","reload":"yes"}}')).toThrow(new RequestError('EBADREQ', '"reload" must be true or false', 1));
    expect(() => parseRequest('{"id":1,"method":"recover","params":{"device":"eth0","reload":true,"now":1}}')).toThrow('recover takes only "device", "reload", not "now"');
  });

  it.each([
    ['', 'EBADREQ'],
    ['nope', 'EBADREQ'],
    ['[]', 'EBADREQ'],
    ['{"method":"status"}', 'EBADREQ'],
    ['{"id":-1,"method":"status"}', 'EBADREQ'],
    ['{"id":1.5,"method":"status"}', 'EBADREQ'],
    ['{"id":1,"method":"status","params":{"x":1}}', 'EBADREQ'],
    ['{"id":1,"method":"status","params":[]}', 'EBADREQ'],
    ['{"id":1,"method":"show"}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":""}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":"a/b"}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":"sixteen-chars-xx"}}', 'EBADREQ'],
    ['{"id":1,"method":"show","params":{"device":"eth0","more":1}}', 'EBADREQ'],
    ['{"id":1,"method":"recover"}', 'EBADREQ'],
    ['{"id":1,"method":"recover","params":{"device":"eth0","force":true}}', 'EBADREQ'],
    ['{"id":1,"method":"recover","params":{"device":"eth0","reload":"yes"}}', 'EBADREQ'],
    ['{"id":1,"method":"recover","params":{"device":"eth0","reload":1}}', 'EBADREQ'],
    ['{"id":1,"method":"recover","params":{"device":"eth0","reload":null}}', 'EBADREQ'],
    ['{"id":1,"method":"recover","params":{"reload":true}}', 'EBADREQ'],
    ['{"id":1,"method":"replay","params":{"device":"eth0","reload":true}}', 'EBADREQ'],
    ['{"id":1,"method":"replay","params":{"device":"a b"}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"eth0"}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"eth0","fault":"explode"}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"eth0","fault":"lost-irqs"}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"eth0","fault":"tx-hang","sticky":"yes"}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"eth0","fault":"tx-hang","sticky":null}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"eth0","fault":"clear","sticky":true}}', 'EBADREQ'],
    ['{"id":1,"method":"inject","params":{"device":"eth0","fault":"tx-hang","now":1}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"limit":0}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"limit":1001}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"limit":2.5}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"limit":"5"}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"limit":null}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"device":null}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"device":"a/b"}}', 'EBADREQ'],
    ['{"id":1,"method":"history","params":{"since":0}}', 'EBADREQ'],
    ['{"id":1,"method":"reload","params":{"file":"/tmp/x.conf"}}', 'EBADREQ'],
    ['{"id":1,"method":"reboot"}', 'ENOMETHOD'],
    ['{"id":1,"method":{"x":1}}', 'ENOMETHOD'],
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
        if (req.method === 'show' && req.params.device === 'boom') return Promise.reject(new Error('handler failed'));
        if (req.method === 'show' && req.params.device !== 'eth0') return Promise.reject(new RequestError('ENODEV', `no device ${req.params.device}`));
        return Promise.resolve({ method: req.method });
      },
      quiet,
    );
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers requests and reports handler errors as error replies', async () => {
    expect(await request(path, 'status')).toEqual({ id: 1, ok: true, result: { method: 'status' } });
    expect(await request(path, 'show', { device: 'eth9' })).toEqual({ id: 1, ok: false, error: { code: 'ENODEV', message: 'no device eth9' } });
    expect(await request(path, 'show', { device: 'boom' })).toEqual({ id: 1, ok: false, error: { code: 'EINTERNAL', message: 'handler failed' } });
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
      else if (pick === 1) payloads.push(Buffer.from(`{"id":${i},"method":"show","params":{"device":${JSON.stringify(randomBytes(8).toString('latin1'))}}}\n`));
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

describe('control server: who may change the system', () => {
  let dir: string;
  const servers: ControlServer[] = [];
  const seen: { method: string; peer: PeerCredentials | null }[] = [];
  const start = async (name: string, peerCredentials?: () => PeerCredentials): Promise<string> => {
    const path = join(dir, name);
    servers.push(
      await startControlServer(
        path,
        (req, peer) => {
          seen.push({ method: req.method, peer });
          return Promise.resolve({ method: req.method });
        },
        quiet,
        peerCredentials ? { peerCredentials } : {},
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

  it('refuses recover, replay, inject and reload to a user that is not root, and answers the rest', async () => {
    const path = await start('user.sock', () => ({ pid: 4321, uid: 1000, gid: 1000 }));
    seen.length = 0;
    for (const [method, params] of [
      ['recover', { device: 'eth0' }],
      ['replay', { device: 'eth0' }],
      ['inject', { device: 'eth0', fault: 'tx-hang' }],
      ['reload', undefined],
    ] as const) {
      expect(await request(path, method, params)).toEqual({
        id: 1,
        ok: false,
        error: { code: 'EPERM', message: `${method} changes the system and needs root (asked by uid 1000): run it with sudo` },
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

  it('asks who is calling only at the first mutating request of a connection', async () => {
    let asked = 0;
    const path = await start('lazy.sock', () => {
      asked++;
      return { pid: 1, uid: 0, gid: 0 };
    });
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
      { id: 3, method: 'recover', params: { device: 'eth0' } },
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

  it("passes root's requests to the handler with its credentials", async () => {
    const path = await start('root.sock', () => ({ pid: 1, uid: 0, gid: 0 }));
    seen.length = 0;
    expect(await request(path, 'recover', { device: 'eth0' })).toEqual({ id: 1, ok: true, result: { method: 'recover' } });
    expect(seen).toEqual([{ method: 'recover', peer: { pid: 1, uid: 0, gid: 0 } }]);
  });

  it('refuses changes when it cannot tell who asks', async () => {
    const path = await start('unknown.sock', () => {
      throw new Error('getsockopt(SO_PEERCRED) failed: errno 95');
    });
    expect(await request(path, 'inject', { device: 'eth0', fault: 'clear' })).toMatchObject({
      ok: false,
      error: { code: 'EPERM', message: /asked by a caller shadowd cannot identify/ },
    });
    expect(await request(path, 'version')).toMatchObject({ ok: true });
  });

  it('learns the real peer by default', async () => {
    const path = await start('real.sock');
    seen.length = 0;
    const reply = await request(path, 'reload');
    if (process.getuid!() === 0) {
      expect(reply).toMatchObject({ ok: true });
      expect(seen).toEqual([{ method: 'reload', peer: { pid: process.pid, uid: 0, gid: process.getgid!() } }]);
    } else {
      expect(reply).toMatchObject({ ok: false, error: { code: 'EPERM', message: new RegExp(`asked by uid ${process.getuid!()}\\)`) } });
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
    startControlServer(join(dir, name), () => Promise.resolve({}), quiet, options);

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
    const server = await startControlServer(join(dir, 'nogroup.sock'), () => Promise.resolve({}), { log: (p, m) => void lines.push(`${p} ${m}`) }, { group: 0 });
    try {
      expect(statSync(join(dir, 'nogroup.sock')).mode & 0o777).toBe(0o600);
      expect(lines).toEqual([expect.stringMatching(/^warning cannot give the control socket .* to the shadowd group \(gid 0\): .*; only root can use shadowctl$/)]);
    } finally {
      await server.close();
    }
  });
});
