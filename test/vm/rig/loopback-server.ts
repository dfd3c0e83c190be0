// A file server on the host's loopback for guest tests: the guest reaches it
// only through QEMU's forward (devices.ts), so test traffic never leaves this machine.
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface LoopbackServer {
  port: number;
  /** The served bytes' sha256, hex. */
  sha256: string;
  close(): Promise<void>;
}

/** Serves `size` random bytes at every path on 127.0.0.1, on a free port. */
export async function serveRandomBlob(size: number): Promise<LoopbackServer> {
  const blob = randomBytes(size);
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': blob.length });
    res.end(blob);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    sha256: createHash('sha256').update(blob).digest('hex'),
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** Echoes every line back, for the interactive-session scenario. */
export async function serveEcho(): Promise<{ port: number; close(): Promise<void> }> {
  const { createServer: createTcpServer } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  const server = createTcpServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.pipe(socket);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
