// The control socket on the host: request validation, replies, and a fuzz of
// random and malformed requests after which the server still answers.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request, ControlError } from '../../daemon/control-client.js';
import { MAX_REQUEST_BYTES, parseRequest, RequestError } from '../../daemon/control-protocol.js';
import { startControlServer, type ControlServer } from '../../daemon/control-server.js';
import type { Logger } from '../../daemon/log.js';

const quiet: Logger = { log: () => undefined };

describe('control protocol', () => {
  it('accepts the known requests', () => {
    expect(parseRequest('{"id":1,"method":"status"}')).toEqual({ id: 1, method: 'status' });
    expect(parseRequest('{"id":2,"method":"show","params":{"device":"eth0"}}')).toEqual({ id: 2, method: 'show', params: { device: 'eth0' } });
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
