// The daemon's control socket: a unix stream socket that answers the CLI.
// Requests are read a line at a time with a size cap; a malformed or oversized
// request gets an error reply and never reaches the handler or crashes the daemon.
import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { errorReply, MAX_REQUEST_BYTES, MUTATING_METHODS, parseRequest, RequestError, type Reply, type Request } from './control-protocol.js';
import type { Logger } from './log.js';
import { peerCredentials, type PeerCredentials } from './peer-credentials.js';

/** `peer` is who connected (null when the kernel could not tell); mutating methods reach the handler only from root. */
export type Handler = (req: Request, peer: PeerCredentials | null) => Promise<unknown>;

export interface ControlServer {
  close(): Promise<void>;
}

export interface ControlServerOptions {
  /** How the server learns who connected; tests pretend to be another user with it. */
  peerCredentials?: (socket: Socket) => PeerCredentials;
}

export async function startControlServer(path: string, handler: Handler, logger: Logger, options: ControlServerOptions = {}): Promise<ControlServer> {
  const credentialsOf = options.peerCredentials ?? peerCredentials;
  // A socket file left by a killed daemon would make listen() fail.
  if (existsSync(path)) unlinkSync(path);
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    let peer: PeerCredentials | null = null;
    try {
      peer = credentialsOf(socket);
    } catch (err) {
      // Read-only requests still work; mutating ones are refused below.
      logger.log('warning', `cannot tell who connected to the control socket: ${err instanceof Error ? err.message : String(err)}`);
    }
    serveConnection(socket, handler, logger, peer);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  chmodSync(path, 0o660);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function serveConnection(socket: Socket, handler: Handler, logger: Logger, peer: PeerCredentials | null): void {
  let buffered = '';
  // Requests on one connection are answered in order.
  let queue = Promise.resolve();
  const send = (reply: Reply): void => {
    if (!socket.destroyed) socket.write(JSON.stringify(reply) + '\n');
  };
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, nl);
      buffered = buffered.slice(nl + 1);
      queue = queue.then(() => answer(line));
    }
    if (Buffer.byteLength(buffered) > MAX_REQUEST_BYTES) {
      buffered = '';
      queue = queue.then(() => {
        send(errorReply(new RequestError('ETOOBIG', `request is larger than ${MAX_REQUEST_BYTES} bytes`)));
        socket.end();
      });
    }
  });

  async function answer(line: string): Promise<void> {
    if (line.trim() === '') return;
    let req: Request;
    try {
      req = parseRequest(line);
    } catch (err) {
      if (err instanceof RequestError) return send(errorReply(err));
      throw err;
    }
    if (MUTATING_METHODS.has(req.method) && peer?.uid !== 0) {
      const who = peer ? `uid ${peer.uid}` : 'a caller shadowd cannot identify';
      logger.log('notice', `refused ${req.method} from ${who}${peer ? ` (pid ${peer.pid})` : ''}: it needs root`, {
        SHADOWD_REQUEST: req.method,
        SHADOWD_PEER_UID: peer?.uid,
        SHADOWD_PEER_PID: peer?.pid,
      });
      return send(errorReply(new RequestError('EPERM', `${req.method} changes the system and needs root (asked by ${who}): run it with sudo`, req.id)));
    }
    try {
      send({ id: req.id, ok: true, result: await handler(req, peer) });
    } catch (err) {
      if (err instanceof RequestError) return send(errorReply(new RequestError(err.code, err.message, req.id)));
      const message = err instanceof Error ? err.message : String(err);
      logger.log('err', `control request ${req.method} failed: ${message}`, { SHADOWD_REQUEST: req.method });
      send({ id: req.id, ok: false, error: { code: 'EINTERNAL', message } });
    }
  }
}
