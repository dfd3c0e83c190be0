// The daemon's control socket: a unix stream socket that answers the CLI.
// Requests are read a line at a time with a size cap; a malformed or oversized
// request gets an error reply and never reaches the handler or crashes the daemon.
// The socket is root's and, when there is one, the shadowd group's
// (control-access.ts): the group may ask, only root may change anything.
import { chmodSync, chownSync, existsSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { errorReply, MAX_REQUEST_BYTES, MUTATING_METHODS, parseRequest, RequestError, type Reply, type Request } from './control-protocol.js';
import { CONTROL_GROUP, SOCKET_MODE_GROUP, SOCKET_MODE_ROOT_ONLY } from './control-access.js';
import type { ClassSet } from '../core/class-set.js';
import type { Logger } from '../service/log.js';
import { peerCredentials, type PeerCredentials } from './peer-credentials.js';

/**
 * `peer` is who connected, for mutating methods (which reach the handler only
 * from root); read-only methods get null unless it is already known: learning
 * it loads koffi, which they do not need.
 */
export type Handler = (req: Request, peer: PeerCredentials | null) => Promise<unknown>;

export interface ControlServer {
  close(): Promise<void>;
}

export interface ControlServerOptions {
  /** How the server learns who connected; tests pretend to be another user with it. */
  peerCredentials?: (socket: Socket) => PeerCredentials;
  /**
   * The group that may connect (the shadowd group's id, control-access.ts
   * lookupGroup): the socket gets mode 0660 and that group. null or absent:
   * mode 0600, root (the owner) only.
   */
  group?: number | null;
}

export async function startControlServer(path: string, handler: Handler, logger: Logger, classes: ClassSet, options: ControlServerOptions = {}): Promise<ControlServer> {
  const credentialsOf = options.peerCredentials ?? peerCredentials;
  // A socket file left by a killed daemon would make listen() fail.
  if (existsSync(path)) unlinkSync(path);
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    // Asked once per connection, at its first mutating request (SO_PEERCRED is as of connect()).
    let peer: PeerCredentials | null | undefined;
    const peerOf = (): PeerCredentials | null => {
      if (peer !== undefined) return peer;
      try {
        peer = credentialsOf(socket);
      } catch (err) {
        // Mutating requests are refused (serveConnection); read-only ones need no identity.
        peer = null;
        logger.log('warning', `cannot tell who connected to the control socket: ${err instanceof Error ? err.message : String(err)}`);
      }
      return peer;
    };
    serveConnection(socket, handler, logger, classes, peerOf, () => peer ?? null);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(path, () => resolve());
  });
  setSocketAccess(path, options.group ?? null, logger);
  return {
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

/** Mode 0660 and the group when there is one; 0600 when there is none or it cannot be given (then only root connects). */
function setSocketAccess(path: string, group: number | null, logger: Logger): void {
  if (group !== null) {
    try {
      chownSync(path, -1, group);
      chmodSync(path, SOCKET_MODE_GROUP);
      return;
    } catch (err) {
      logger.log('warning', `cannot give the control socket ${path} to the ${CONTROL_GROUP} group (gid ${group}): ${err instanceof Error ? err.message : String(err)}; only root can use shadowctl`);
    }
  }
  chmodSync(path, SOCKET_MODE_ROOT_ONLY);
}

function serveConnection(socket: Socket, handler: Handler, logger: Logger, classes: ClassSet, peerOf: () => PeerCredentials | null, knownPeer: () => PeerCredentials | null): void {
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
      // One request's failure is that request's: the connection, and the daemon, go on.
      queue = queue.then(() => answer(line)).catch((err: unknown) => {
        logger.log('err', `control request failed unexpectedly: ${err instanceof Error ? err.message : String(err)}`);
        send({ id: null, ok: false, error: { code: 'EINTERNAL', message: 'shadowd could not answer that request (its journal says why)' } });
      });
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
      req = parseRequest(line, classes);
    } catch (err) {
      if (err instanceof RequestError) return send(errorReply(err));
      throw err;
    }
    const mutating = MUTATING_METHODS.has(req.method);
    const peer = mutating ? peerOf() : knownPeer();
    if (mutating && peer?.uid !== 0) {
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
