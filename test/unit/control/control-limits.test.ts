// The control socket's limits, on the real server and a real unix socket: a
// cap on connections, read-ahead per connection, write backpressure towards a
// client that does not read its replies, idle connections and a request line
// that never ends. A member of the shadowd group must not be able to run the
// daemon (32 MB of heap) out of memory, nor keep others out for good.
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../../daemon/control/control-client.js';
import { MAX_REQUEST_BYTES, type Reply } from '../../../daemon/control/control-protocol.js';
import {
  MAX_CONNECTIONS,
  MAX_PENDING_CHARS,
  MAX_UNSENT_BYTES,
  ROOT_RESERVED_CONNECTIONS,
  startControlServer,
  type ControlServer,
  type ControlServerOptions,
  type Handler,
} from '../../../daemon/control/control-server.js';
import type { Logger } from '../../../daemon/service/log.js';
import { TEST_CLASSES } from './test-classes.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'shadowd-limits-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const servers: ControlServer[] = [];
const clients: Socket[] = [];
afterEach(async () => {
  for (const c of clients.splice(0)) c.destroy();
  for (const s of servers.splice(0)) await s.close();
});

let serial = 0;
const logged: string[] = [];
const logger: Logger = { log: (priority, message) => void logged.push(`${priority} ${message}`) };

async function serve(handler: Handler, options: ControlServerOptions = {}): Promise<{ path: string; server: ControlServer }> {
  const path = join(dir, `c${serial++}.sock`);
  const server = await startControlServer(path, handler, logger, TEST_CLASSES, options);
  servers.push(server);
  logged.length = 0;
  return { path, server };
}

const echo: Handler = (req) => Promise.resolve({ method: req.method });

/** A connected client that collects what it receives (reading, unless paused). */
function client(path: string): Promise<{ socket: Socket; text: () => string; closed: Promise<void> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(path);
    clients.push(socket);
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => (text += d));
    socket.on('error', () => undefined);
    const closed = new Promise<void>((done) => socket.on('close', () => done()));
    socket.once('error', reject);
    socket.on('connect', () => resolve({ socket, text: () => text, closed }));
  });
}

/** Waits until `cond` holds (polling), or fails after `ms`. */
async function until(cond: () => boolean, ms = 5000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const status = (id: number) => JSON.stringify({ id, method: 'status' }) + '\n';

/** A client that sends 5000 requests and reads nothing, once the server has dropped it. */
async function floodUnread(path: string, server: ControlServer): Promise<Awaited<ReturnType<typeof client>>> {
  const hog = await client(path);
  hog.socket.pause();
  let requests = '';
  for (let i = 1; i <= 5000; i++) requests += status(i);
  hog.socket.write(requests);
  await until(() => server.stats().connections === 0, 3000, 'the server to drop it');
  return hog;
}

describe('control server: connection cap', () => {
  it(`serves ${MAX_CONNECTIONS} connections at once, tells the ones beyond that it is full, and serves again once one closes`, async () => {
    // Root's (the last connections are kept for root: below), whoever runs the test.
    const { path, server } = await serve(echo, { peerCredentials: () => ({ pid: 500, uid: 0, gid: 0 }) });
    const held: Awaited<ReturnType<typeof client>>[] = [];
    for (let i = 0; i < MAX_CONNECTIONS; i++) held.push(await client(path));
    await until(() => server.stats().connections === MAX_CONNECTIONS, 5000, 'the connections to be accepted');

    // Many more, all at once: each gets one line in the protocol's error shape and is closed.
    const extra = await Promise.all(Array.from({ length: 3 * MAX_CONNECTIONS }, () => client(path)));
    await Promise.all(extra.map((c) => c.closed));
    for (const c of extra) {
      expect(c.text().endsWith('\n')).toBe(true);
      expect(c.text().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Reply)).toEqual([
        { id: null, ok: false, error: { code: 'EBUSY', message: `shadowd is serving ${MAX_CONNECTIONS} control connections already, the most it takes; try again` } },
      ]);
    }
    expect(server.stats().connections).toBe(MAX_CONNECTIONS);
    // shadowctl's client reads that reply as any other.
    expect(await request(path, 'status')).toMatchObject({ ok: false, error: { code: 'EBUSY' } });
    // The held connections are still served.
    held[0]!.socket.write(status(7));
    await until(() => held[0]!.text().includes('\n'), 5000, 'a held connection to be answered');
    expect(JSON.parse(held[0]!.text())).toEqual({ id: 7, ok: true, result: { method: 'status' } });
    // Logged once, not once per refused connection.
    expect(logged).toEqual([`warning control socket: refused a connection, ${MAX_CONNECTIONS} are open already (the cap)`]);

    held.pop()!.socket.end();
    await until(() => server.stats().connections === MAX_CONNECTIONS - 1, 5000, 'a connection to close');
    expect(await request(path, 'status')).toEqual({ id: 1, ok: true, result: { method: 'status' } });
  });
});

describe('control server: connections kept for root', () => {
  it(`serves a group member at most ${MAX_CONNECTIONS - ROOT_RESERVED_CONNECTIONS} connections, kept alive with requests; root still gets the last ${ROOT_RESERVED_CONNECTIONS}`, async () => {
    // Who connects next: the test decides, per connection, in order.
    const next: number[] = [];
    const { path, server } = await serve(echo, { peerCredentials: () => ({ pid: 500, uid: next.shift() ?? 1000, gid: 1000 }), limits: { idleTimeoutMs: 400 } });
    const forAll = MAX_CONNECTIONS - ROOT_RESERVED_CONNECTIONS;
    const held: Awaited<ReturnType<typeof client>>[] = [];
    for (let i = 0; i < forAll; i++) held.push(await client(path));
    await until(() => server.stats().connections === forAll, 5000, 'the group member\'s connections to be accepted');
    // It keeps them past the idle timeout by asking something now and then.
    for (let round = 0; round < 3; round++) {
      for (const [i, h] of held.entries()) h.socket.write(status(100 * round + i));
      await sleep(250);
    }
    expect(server.stats().connections).toBe(forAll);
    // One more from the group member: refused, in the protocol's shape.
    const more = await client(path);
    await more.closed;
    expect(JSON.parse(more.text())).toEqual({
      id: null,
      ok: false,
      error: { code: 'EBUSY', message: `shadowd is serving ${forAll} control connections; the last ${ROOT_RESERVED_CONNECTIONS} of ${MAX_CONNECTIONS} are kept for root; try again` },
    });
    // Root's shadowctl is served, on each of the reserved connections.
    next.push(0);
    expect(await request(path, 'status')).toEqual({ id: 1, ok: true, result: { method: 'status' } });
    next.push(0, 0);
    const rootHeld = [await client(path), await client(path)];
    await until(() => server.stats().connections === MAX_CONNECTIONS, 5000, 'root\'s connections to be accepted');
    // Past the cap, root too is told it is full.
    next.push(0);
    expect(await request(path, 'status')).toMatchObject({ ok: false, error: { code: 'EBUSY', message: expect.stringContaining('the most it takes') as string } });
    expect(logged).toEqual([
      `warning control socket: refused a connection from uid 1000: ${forAll} are open, the last ${ROOT_RESERVED_CONNECTIONS} of ${MAX_CONNECTIONS} are kept for root`,
      `warning control socket: refused a connection, ${MAX_CONNECTIONS} are open already (the cap)`,
    ]);
    for (const c of rootHeld) c.socket.destroy();
  });

  it('refuses the reserved connections to a caller it cannot identify, and says so once, not once per connection', async () => {
    const { path, server } = await serve(echo, {
      peerCredentials: () => {
        throw new Error('SO_PEERCRED failed');
      },
      limits: { maxConnections: 4, rootReservedConnections: 2 },
    });
    const held = [await client(path), await client(path)];
    await until(() => server.stats().connections === 2, 5000, 'two connections');
    for (let i = 0; i < 5; i++) expect(await request(path, 'status')).toMatchObject({ ok: false, error: { code: 'EBUSY', message: expect.stringContaining('kept for root') as string } });
    expect(logged.filter((l) => l.includes('cannot tell who connected'))).toHaveLength(1);
    expect(logged.filter((l) => l.includes('a caller shadowd cannot identify'))).toHaveLength(1);
    for (const c of held) c.socket.destroy();
  });

  it('does not ask who connects while connections are free for all: a read-only request never loads koffi', async () => {
    let asked = 0;
    const { path } = await serve(echo, {
      peerCredentials: () => {
        asked++;
        return { pid: 500, uid: 1000, gid: 1000 };
      },
    });
    for (let i = 0; i < 5; i++) expect(await request(path, 'status')).toMatchObject({ ok: true });
    expect(asked).toBe(0);
  });
});

describe('control server: a client that does not read its replies', () => {
  it('stops reading from it, holds a bounded amount for it, and answers other clients meanwhile', async () => {
    let handled = 0;
    // Replies of 4 kB: the kernel's buffers fill after a few dozen.
    const big = 'y'.repeat(4000);
    const { path, server } = await serve((req) => {
      handled++;
      return Promise.resolve({ method: req.method, big });
    });
    const hog = await client(path);
    hog.socket.pause();
    // 6000 requests (180 kB) in one go; their replies would be 24 MB.
    const N = 6000;
    let requests = '';
    for (let i = 1; i <= N; i++) requests += status(i);
    hog.socket.write(requests);
    await until(() => handled > 0, 5000, 'the first request');
    // It settles: answering stops once its replies back up.
    for (let last = -1; last !== handled; ) {
      last = handled;
      await sleep(200);
    }
    const stats = server.stats();
    expect(handled).toBeLessThan(N / 10);
    // One reply at most waits in the server, and a bounded amount of input.
    expect(stats.unsentBytes).toBeLessThanOrEqual(MAX_UNSENT_BYTES);
    expect(stats.unsentBytes).toBeLessThan(2 * (big.length + 100) + 16 * 1024);
    expect(stats.pendingChars).toBeLessThanOrEqual(MAX_PENDING_CHARS + 64 * 1024);
    // Another client is answered meanwhile.
    expect(await request(path, 'status')).toMatchObject({ id: 1, ok: true, result: { method: 'status' } });

    // Once it reads, it gets every reply, in order: backpressure lost nothing.
    hog.socket.resume();
    await until(() => hog.text().split('\n').length > N, 20_000, 'every reply');
    const ids = hog
      .text()
      .split('\n')
      .filter(Boolean)
      .map((l) => (JSON.parse(l) as Reply).id);
    expect(ids).toEqual(Array.from({ length: N }, (_, i) => i + 1));
    expect(logged).toEqual([]);
  }, 30_000);

  it('closes it once it has not read for the idle timeout, and says so', async () => {
    const big = 'y'.repeat(4000);
    const { path, server } = await serve((req) => Promise.resolve({ method: req.method, big }), { limits: { idleTimeoutMs: 300 } });
    const hog = await floodUnread(path, server);
    // It learns so once it reads.
    hog.socket.resume();
    await hog.closed;
    expect(logged).toEqual([expect.stringMatching(/^notice control socket: closed a connection: it has not read its replies for 0.3 s/)]);
    expect(await request(path, 'status')).toMatchObject({ ok: true });
  });

  it('closes it when its unsent replies exceed the bound, and lets a single large reply through', async () => {
    // Replies of 4 kB; a bound of 1 kB, far under Node's high-water mark, so that replies pile up past it.
    const big = 'y'.repeat(4000);
    const { path, server } = await serve((req) => Promise.resolve({ method: req.method, big: req.method === 'history' ? big.repeat(256) : big }), {
      limits: { maxUnsentBytes: 1024 },
    });
    await floodUnread(path, server);
    expect(logged).toEqual([expect.stringMatching(/^notice control socket: closed a connection: \d+ bytes of replies it has not read, over 1024$/)]);
    // One reply of 1 MB is not cut off by a bound of 1 kB: it is one reply, and the client reads it.
    const reply = await request<{ big: string }>(path, 'history', {});
    expect(reply.ok && reply.result.big.length).toBe(big.length * 256);
  });
});

describe('control server: read-ahead and idle connections', () => {
  it('answers a client that pipelines far more requests than it reads ahead, every one in order', async () => {
    const { path } = await serve(echo);
    const c = await client(path);
    const N = 2000;
    let requests = '';
    for (let i = 1; i <= N; i++) requests += status(i);
    c.socket.write(requests);
    await until(() => c.text().split('\n').length > N, 10_000, 'every reply');
    expect(c.text().split('\n').filter(Boolean).map((l) => (JSON.parse(l) as Reply).id)).toEqual(Array.from({ length: N }, (_, i) => i + 1));
  });

  it('closes a connection idle for the timeout, but not one whose request is still being answered', async () => {
    const { path, server } = await serve(
      async (req) => {
        if (req.method === 'reload') await sleep(700);
        return { method: req.method };
      },
      { limits: { idleTimeoutMs: 200 }, peerCredentials: () => ({ pid: 1, uid: 0, gid: 0 }) },
    );
    const idle = await client(path);
    await idle.closed;
    expect(idle.text()).toBe('');
    expect(logged).toEqual(['info control socket: closed a connection idle for 0.2 s']);
    // 700 ms of work, over three idle timeouts: the reply still comes.
    expect(await request(path, 'reload')).toEqual({ id: 1, ok: true, result: { method: 'reload' } });
    await until(() => server.stats().connections === 0, 2000, 'the connections to close');
  });
});

describe('control server: a request line that never ends', () => {
  const tooBig = { id: null, ok: false, error: { code: 'ETOOBIG', message: `request is larger than ${MAX_REQUEST_BYTES} bytes` } };

  it('answers the requests before it, then ETOOBIG, and closes the connection', async () => {
    const { path, server } = await serve(echo);
    const c = await client(path);
    c.socket.write(status(1) + status(2));
    // In pieces, as a slow writer would send it.
    for (let i = 0; i < 5; i++) {
      c.socket.write('x'.repeat(MAX_REQUEST_BYTES / 4));
      await sleep(5);
    }
    c.socket.write('x'.repeat(100));
    await c.closed;
    expect(c.text().split('\n').filter(Boolean).map((l) => JSON.parse(l) as Reply)).toEqual([
      { id: 1, ok: true, result: { method: 'status' } },
      { id: 2, ok: true, result: { method: 'status' } },
      tooBig,
    ]);
    expect(logged).toEqual([`notice control socket: closed a connection whose request was larger than ${MAX_REQUEST_BYTES} bytes`]);
    await until(() => server.stats().connections === 0, 2000, 'the server to close its end');
    expect(await request(path, 'status')).toMatchObject({ ok: true });
  });

  it('counts bytes, not characters', async () => {
    const { path } = await serve(echo);
    // Fewer characters than MAX_REQUEST_BYTES, more bytes (é is two).
    const c = await client(path);
    c.socket.write('é'.repeat(MAX_REQUEST_BYTES / 2 + 10));
    await c.closed;
    expect(JSON.parse(c.text())).toEqual(tooBig);
    // Up to the cap is a line still being read: no reply yet, and then an answer.
    const d = await client(path);
    d.socket.write(' '.repeat(MAX_REQUEST_BYTES - status(1).length) + status(1).trimEnd());
    await sleep(100);
    expect(d.text()).toBe('');
    d.socket.write('\n');
    await until(() => d.text().includes('\n'), 2000, 'the reply');
    expect(JSON.parse(d.text())).toEqual({ id: 1, ok: true, result: { method: 'status' } });
  });
});
