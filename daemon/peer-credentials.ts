// Who is at the other end of a unix socket: the kernel's SO_PEERCRED (pid,
// uid, gid of the process that connected, as of connect()). Node has no API
// for it, so it is read with getsockopt(2) through koffi on the socket's fd.
import type { Socket } from 'node:net';
import koffi from 'koffi';

export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

// asm-generic values (x86, arm, arm64, riscv); Node's supported Linux targets
// with other numbers (ppc64: SO_PEERCRED 21) are listed here when needed.
const SOL_SOCKET = 1;
const SO_PEERCRED = process.arch === 'ppc64' ? 21 : 17;

type GetSockOpt = (fd: number, level: number, name: number, out: Partial<PeerCredentials>, len: number[]) => number;
let getsockopt: GetSockOpt | null = null;

function bind(): GetSockOpt {
  if (!getsockopt) {
    const libc = koffi.load('libc.so.6');
    const ucred = koffi.struct({ pid: 'int32_t', uid: 'uint32_t', gid: 'uint32_t' });
    getsockopt = libc.func('getsockopt', 'int', ['int', 'int', 'int', koffi.out(koffi.pointer(ucred)), koffi.inout(koffi.pointer('uint32_t'))]) as GetSockOpt;
  }
  return getsockopt;
}

/** The file descriptor behind a connected net.Socket (a private field of Node's, present on Linux). */
function socketFd(socket: Socket): number {
  const fd = (socket as unknown as { _handle?: { fd?: unknown } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) throw new Error('the socket has no file descriptor (closed, or not a unix socket)');
  return fd;
}

/** The credentials of the process that connected to `socket`; throws if the kernel cannot tell. */
export function peerCredentials(socket: Socket): PeerCredentials {
  const fd = socketFd(socket);
  const out: Partial<PeerCredentials> = {};
  const len = [12];
  if (bind()(fd, SOL_SOCKET, SO_PEERCRED, out, len) !== 0) {
    throw new Error(`getsockopt(SO_PEERCRED) failed: errno ${koffi.errno()}`);
  }
  const { pid, uid, gid } = out;
  if (len[0] !== 12 || typeof pid !== 'number' || typeof uid !== 'number' || typeof gid !== 'number') {
    throw new Error('getsockopt(SO_PEERCRED) returned no credentials');
  }
  return { pid, uid, gid };
}
