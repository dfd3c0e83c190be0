// SO_PEERCRED on a real unix socket: the daemon learns who connected.
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerCredentials, peerCredentialsLoaded } from '../../../daemon/control/peer-credentials.js';

describe('peerCredentials', () => {
  let dir: string;
  let path: string;
  let server: Server;
  /** The next connection the server accepts. */
  let nextConnection: () => Promise<Socket>;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shadowd-peer-'));
    path = join(dir, 's.sock');
    const waiting: ((s: Socket) => void)[] = [];
    nextConnection = () => new Promise((resolve) => waiting.push(resolve));
    server = createServer((s) => waiting.shift()?.(s));
    await new Promise<void>((resolve) => server.listen(path, resolve));
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  it('loads koffi only when first asked', async () => {
    expect(peerCredentialsLoaded()).toBe(false);
    const accepted = nextConnection();
    const client = connect(path);
    const socket = await accepted;
    try {
      peerCredentials(socket);
      expect(peerCredentialsLoaded()).toBe(true);
    } finally {
      client.destroy();
      socket.destroy();
    }
  });

  it("reads the connecting process's pid, uid and gid", async () => {
    const accepted = nextConnection();
    const client = connect(path);
    const socket = await accepted;
    try {
      expect(peerCredentials(socket)).toEqual({ pid: process.pid, uid: process.getuid!(), gid: process.getgid!() });
    } finally {
      client.destroy();
      socket.destroy();
    }
  });

  // Another user's connection is the case that matters: as root, connect as nobody.
  it.skipIf(process.getuid?.() !== 0)('reads the uid of a process of another user', async () => {
    chmodSync(dir, 0o755);
    chmodSync(path, 0o777);
    const accepted = nextConnection();
    const script = `const s = require('node:net').connect(${JSON.stringify(path)}); s.on('connect', () => setTimeout(() => s.end(), 2000));`;
    const child = spawn(process.execPath, ['-e', script], { uid: 65534, gid: 65534, stdio: 'ignore' });
    const socket = await accepted;
    try {
      expect(peerCredentials(socket)).toEqual({ pid: child.pid, uid: 65534, gid: 65534 });
    } finally {
      socket.destroy();
      child.kill();
    }
  });

  it('throws on a socket without a descriptor', () => {
    const loose = connect(join(dir, 'absent.sock'));
    loose.on('error', () => undefined);
    loose.destroy();
    expect(() => peerCredentials(loose)).toThrow(/no file descriptor/);
  });
});
