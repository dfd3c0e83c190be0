// The daemon's control socket: a unix stream socket that answers the CLI.
// Requests are read a line at a time with a size cap; a malformed or oversized
// request gets an error reply and never reaches the handler or crashes the daemon.
// The socket is root's and, when there is one, the shadowd group's
// (control-access.ts): the group may ask, only a process holding
// CAP_NET_ADMIN may change anything (peer-privilege.ts).
//
// Members of the group are not trusted with the daemon's memory (a 32 MB
// heap): connections are capped, each connection reads no more input than a
// few requests' worth ahead of the one being answered, and a client that does
// not read its replies is not read from either (write backpressure), then
// dropped once idle. ControlLimits has the numbers.
import { chmodSync, chownSync, existsSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { errorReply, MAX_REQUEST_BYTES, MUTATING_METHODS, parseRequest, RequestError, type Reply, type Request } from './control-protocol.js';
import { CONTROL_GROUP, SOCKET_MODE_GROUP, SOCKET_MODE_ROOT_ONLY } from './control-access.js';
import type { ClassSet } from '../core/class-set.js';
import type { LogFields, Logger, Priority } from '../service/log.js';
import { peerCredentials, type PeerCredentials } from './peer-credentials.js';
import { peerPrivilege, type Privilege } from './peer-privilege.js';

/**
 * `peer` is who connected, for mutating methods (which reach the handler only
 * from a process holding CAP_NET_ADMIN); read-only methods get null unless it
 * is already known: learning it loads koffi, which they do not need.
 */
export type Handler = (req: Request, peer: PeerCredentials | null) => Promise<unknown>;

/**
 * Simultaneous connections. shadowctl opens one per command and closes it at
 * the reply, so a few are open at once even under scripts and monitoring;
 * 16 leaves room for those while 16 worst-case connections (below) stay a
 * few MB.
 */
export const MAX_CONNECTIONS = 16;
/**
 * Of MAX_CONNECTIONS, the last ones are served only for root: a group
 * member who holds every other connection open (a request every few
 * seconds defeats the idle timeout) still cannot keep the administrator's
 * shadowctl out. The caller is identified only once the connections reach
 * them (identifying loads koffi, which a read-only request does not need).
 */
export const ROOT_RESERVED_CONNECTIONS = 2;
/**
 * Complete requests read ahead of the one being answered, per connection.
 * shadowctl sends one; a client that pipelines more is simply read more
 * slowly (the kernel's socket buffer then fills and its writes block).
 */
export const MAX_PENDING_REQUESTS = 16;
/**
 * Unanswered input held per connection, in characters: requests read ahead
 * and the start of the next line. Above it reading stops until the requests
 * are answered. One read from the socket adds at most 64 KiB to it.
 */
export const MAX_PENDING_CHARS = 64 * 1024;
/**
 * Replies written but not yet taken by the kernel, per connection, when the
 * next reply is to be written: a client holding more is closed instead. The
 * next request already waits for the replies to drain once they pass Node's
 * high-water mark (16 KiB), so this is a backstop, never reached by a client
 * that reads. The reply being written is not counted: one reply can be large
 * (history --limit 1000 with long replay steps runs to MBs), and its size is
 * the daemon's doing, not the client's.
 */
export const MAX_UNSENT_BYTES = 1024 * 1024;
/**
 * A connection with no traffic either way for this long is closed, unless a
 * request is being answered (a recovery can take long) and its output has
 * gone: it holds one of MAX_CONNECTIONS, and a client that stopped reading
 * its replies is dropped with it.
 */
export const IDLE_TIMEOUT_MS = 30_000;
/** Cut-offs and refusals are logged at most this often, each kind (a count of the rest follows). */
export const CUTOFF_LOG_INTERVAL_MS = 60_000;

export interface ControlLimits {
  maxConnections: number;
  rootReservedConnections: number;
  maxPendingRequests: number;
  maxPendingChars: number;
  maxUnsentBytes: number;
  idleTimeoutMs: number;
}

export const DEFAULT_LIMITS: Readonly<ControlLimits> = {
  maxConnections: MAX_CONNECTIONS,
  rootReservedConnections: ROOT_RESERVED_CONNECTIONS,
  maxPendingRequests: MAX_PENDING_REQUESTS,
  maxPendingChars: MAX_PENDING_CHARS,
  maxUnsentBytes: MAX_UNSENT_BYTES,
  idleTimeoutMs: IDLE_TIMEOUT_MS,
};

/** What the server holds now, over its connections (for tests and diagnostics). */
export interface ControlServerStats {
  /** Connections being served (not those refused over the cap). */
  connections: number;
  /** Input read and not yet answered, in characters. */
  pendingChars: number;
  /** Replies not yet taken by the kernel, in bytes. */
  unsentBytes: number;
}

export interface ControlServer {
  close(): Promise<void>;
  stats(): ControlServerStats;
}

export interface ControlServerOptions {
  /** How the server learns who connected; tests pretend to be another user with it. */
  peerCredentials?: (socket: Socket) => PeerCredentials;
  /** Whether that peer may change the system (default: it holds CAP_NET_ADMIN, peer-privilege.ts); asked at each mutating request. */
  peerPrivilege?: (peer: PeerCredentials) => Privilege;
  /**
   * The group that may connect (the shadowd group's id, control-access.ts
   * lookupGroup): the socket gets mode 0660 and that group. null or absent:
   * mode 0600, root (the owner) only.
   */
  group?: number | null;
  /** Tests lower them; the daemon uses DEFAULT_LIMITS. */
  limits?: Partial<ControlLimits>;
}

/** A log line of one kind at most once per CUTOFF_LOG_INTERVAL_MS: a client cannot fill the journal by being cut off. */
type LimitedLog = (kind: string, priority: Priority, message: string, fields?: LogFields) => void;

function limitedLog(logger: Logger): LimitedLog {
  const last = new Map<string, { at: number; suppressed: number }>();
  return (kind, priority, message, fields) => {
    const now = Date.now();
    const seen = last.get(kind);
    if (seen && now - seen.at < CUTOFF_LOG_INTERVAL_MS) {
      seen.suppressed++;
      return;
    }
    const more = seen && seen.suppressed > 0 ? ` (${seen.suppressed} more like it since the last such message)` : '';
    last.set(kind, { at: now, suppressed: 0 });
    logger.log(priority, message + more, fields);
  };
}

export async function startControlServer(path: string, handler: Handler, logger: Logger, classes: ClassSet, options: ControlServerOptions = {}): Promise<ControlServer> {
  const credentialsOf = options.peerCredentials ?? peerCredentials;
  const privilegeOf = options.peerPrivilege ?? ((peer: PeerCredentials) => peerPrivilege(peer));
  const limits: ControlLimits = { ...DEFAULT_LIMITS, ...options.limits };
  const cutOffLog = limitedLog(logger);
  // A socket file left by a killed daemon would make listen() fail.
  if (existsSync(path)) unlinkSync(path);
  /** Every open socket, refused ones too (close() ends them all). */
  const sockets = new Set<Socket>();
  /** The connections being served, with what each holds. */
  const served = new Map<Socket, () => number>();
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    if (served.size >= limits.maxConnections) {
      refuseConnection(socket, 'full', `shadowd is serving ${limits.maxConnections} control connections already, the most it takes; try again`, cutOffLog, `refused a connection, ${limits.maxConnections} are open already (the cap)`, served.size);
      return;
    }
    // Asked once per connection, at its first mutating request or when only root's connections are left (SO_PEERCRED is as of connect()).
    let peer: PeerCredentials | null | undefined;
    const peerOf = (): PeerCredentials | null => {
      if (peer !== undefined) return peer;
      try {
        peer = credentialsOf(socket);
      } catch (err) {
        // Mutating requests are refused (serveConnection); read-only ones need no identity.
        peer = null;
        // At most once a minute: near the cap every connection is asked.
        cutOffLog('identify', 'warning', `cannot tell who connected to the control socket: ${err instanceof Error ? err.message : String(err)}`);
      }
      return peer;
    };
    const forAll = limits.maxConnections - limits.rootReservedConnections;
    if (served.size >= forAll && peerOf()?.uid !== 0) {
      const who = peer ? `uid ${peer.uid}` : 'a caller shadowd cannot identify';
      refuseConnection(
        socket,
        'reserved',
        `shadowd is serving ${served.size} control connections; the last ${limits.rootReservedConnections} of ${limits.maxConnections} are kept for root; try again`,
        cutOffLog,
        `refused a connection from ${who}: ${served.size} are open, the last ${limits.rootReservedConnections} of ${limits.maxConnections} are kept for root`,
        served.size,
      );
      return;
    }
    const pendingChars = serveConnection(socket, {
      handler,
      logger,
      cutOffLog,
      classes,
      limits,
      peerOf,
      knownPeer: () => peer ?? null,
      privilegeOf,
    });
    served.set(socket, pendingChars);
    socket.on('close', () => served.delete(socket));
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
    stats: () => {
      let pendingChars = 0;
      let unsentBytes = 0;
      for (const [socket, pending] of served) {
        pendingChars += pending();
        unsentBytes += socket.writableLength;
      }
      return { connections: served.size, pendingChars, unsentBytes };
    },
  };
}

/** A client is told it is one too many (why: `message`), in the protocol's error shape, and closed; the journal hears of it at most once a minute per kind. */
function refuseConnection(socket: Socket, kind: 'full' | 'reserved', message: string, cutOffLog: LimitedLog, logged: string, connections: number): void {
  cutOffLog(kind, 'warning', `control socket: ${logged}`, { SHADOWD_CONTROL_CONNECTIONS: connections });
  const reply = errorReply(new RequestError('EBUSY', message));
  // Its requests are read and dropped: closing on unread input would reset the connection before it reads the reply.
  socket.resume();
  socket.end(JSON.stringify(reply) + '\n');
  // A client that does not close its end does not keep the socket.
  setTimeout(() => socket.destroy(), 1000).unref();
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

interface ConnectionContext {
  handler: Handler;
  logger: Logger;
  cutOffLog: LimitedLog;
  classes: ClassSet;
  limits: ControlLimits;
  peerOf: () => PeerCredentials | null;
  knownPeer: () => PeerCredentials | null;
  privilegeOf: (peer: PeerCredentials) => Privilege;
}

/**
 * Answers one connection's requests in order, one at a time, reading ahead
 * at most limits.maxPendingRequests requests (limits.maxPendingChars of
 * input) and nothing while a reply waits to drain. Returns how much input
 * it holds.
 */
function serveConnection(socket: Socket, ctx: ConnectionContext): () => number {
  const { handler, logger, cutOffLog, classes, limits, peerOf, knownPeer, privilegeOf } = ctx;
  /** Input read and not yet answered: complete lines (`lines` of them), then the start of the next. */
  let buffered = '';
  let lines = 0;
  /** A request is being answered. */
  let busy = false;
  /** The line being read is over MAX_REQUEST_BYTES: no more is read, and once the lines before it are answered the connection ends. */
  let overlong = false;
  /** ETOOBIG has been sent and our end closed: input is read and dropped until the client closes its end. */
  let ended = false;

  const cutOff = (priority: Priority, why: string): void => {
    if (socket.destroyed) return;
    // The peer's uid when a mutating request made it known (learning it only for this would load koffi).
    cutOffLog('cutoff', priority, `control socket: closed a connection: ${why}`, { SHADOWD_CONTROL_UNSENT: socket.writableLength, SHADOWD_PEER_UID: knownPeer()?.uid });
    socket.destroy();
  };

  /** Reads while there is room for input and the replies are being taken. */
  const flow = (): void => {
    // Ended (ETOOBIG): what more it sends is read and dropped, so that its end of the connection closes ours.
    if (ended) return void socket.resume();
    const stop = overlong || lines >= limits.maxPendingRequests || buffered.length >= limits.maxPendingChars || socket.writableNeedDrain;
    if (stop) socket.pause();
    else if (socket.isPaused()) socket.resume();
  };

  const send = (reply: Reply): void => {
    if (socket.destroyed) return;
    if (socket.writableLength > limits.maxUnsentBytes) return cutOff('notice', `${socket.writableLength} bytes of replies it has not read, over ${limits.maxUnsentBytes}`);
    socket.write(JSON.stringify(reply) + '\n');
  };

  /** Answers the next complete line, if any and if the last reply has drained. */
  const pump = (): void => {
    if (busy || socket.destroyed) return;
    if (socket.writableNeedDrain) return flow(); // 'drain' pumps again
    const nl = buffered.indexOf('\n');
    if (nl < 0) {
      if (overlong) {
        buffered = '';
        send(errorReply(new RequestError('ETOOBIG', `request is larger than ${MAX_REQUEST_BYTES} bytes`)));
        cutOffLog('overlong', 'notice', `control socket: closed a connection whose request was larger than ${MAX_REQUEST_BYTES} bytes`);
        ended = true;
        socket.end();
        return flow();
      }
      return flow();
    }
    const line = buffered.slice(0, nl);
    buffered = buffered.slice(nl + 1);
    lines--;
    busy = true;
    flow();
    // One request's failure is that request's: the connection, and the daemon, go on.
    answer(line)
      .catch((err: unknown) => {
        logger.log('err', `control request failed unexpectedly: ${err instanceof Error ? err.message : String(err)}`);
        send({ id: null, ok: false, error: { code: 'EINTERNAL', message: 'shadowd could not answer that request (its journal says why)' } });
      })
      .finally(() => {
        busy = false;
        pump();
      });
  };

  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => {
    if (overlong) return;
    buffered += chunk;
    for (let i = chunk.indexOf('\n'); i >= 0; i = chunk.indexOf('\n', i + 1)) lines++;
    // The line still being read: over the cap, it is answered ETOOBIG once the lines before it are.
    const tail = buffered.lastIndexOf('\n') + 1;
    if (buffered.length - tail > MAX_REQUEST_BYTES / 4 && Buffer.byteLength(buffered.slice(tail)) > MAX_REQUEST_BYTES) {
      buffered = buffered.slice(0, tail);
      overlong = true;
    }
    flow();
    pump();
  });
  socket.on('drain', () => {
    flow();
    pump();
  });
  // An idle connection holds one of the few there may be; a busy one (a
  // recovery being answered) is kept until its reply is out.
  socket.setTimeout(limits.idleTimeoutMs);
  socket.on('timeout', () => {
    const seconds = limits.idleTimeoutMs / 1000;
    if (socket.writableLength > 0) cutOff('notice', `it has not read its replies for ${seconds} s`);
    else if (!busy) {
      cutOffLog('idle', 'info', `control socket: closed a connection idle for ${seconds} s`);
      socket.destroy();
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
    if (mutating) {
      const privilege: Privilege = peer ? privilegeOf(peer) : { granted: false, reason: 'shadowd cannot tell who it is' };
      if (!privilege.granted) {
        const who = peer ? `uid ${peer.uid}, pid ${peer.pid}` : 'a caller shadowd cannot identify';
        // At most once a minute per caller: a group member cannot fill the journal with refusals.
        cutOffLog(`refused:${peer?.uid ?? 'unknown'}`, 'notice', `refused ${req.method} (it needs root with CAP_NET_ADMIN) from ${who}${peer ? `: ${privilege.reason}` : ''}`, {
          SHADOWD_REQUEST: req.method,
          SHADOWD_PEER_UID: peer?.uid,
          SHADOWD_PEER_PID: peer?.pid,
        });
        const because = peer ? `; ${privilege.reason}` : '';
        return send(errorReply(new RequestError('EPERM', `${req.method} changes the system and needs root with CAP_NET_ADMIN (asked by ${who}${because}): run it with sudo`, req.id)));
      }
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

  return () => buffered.length;
}
