// Who is at the other end of a unix socket: the kernel's SO_PEERCRED (pid,
// uid, gid of the process that connected, as of connect()). Node has no API
// for it, so it is read with getsockopt(2) through koffi on the socket's fd.
// koffi is loaded on first use, through require (as in libsystemd.ts): it
// costs a few MB of resident memory, and only mutating requests need to know
// the caller, so a daemon that never gets one never loads it.
import { createRequire } from 'node:module';
import type { Socket } from 'node:net';
import type * as KoffiModule from 'koffi';

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
let bound: { getsockopt: GetSockOpt; errno: () => number } | null = null;

function bind(): { getsockopt: GetSockOpt; errno: () => number } {
  if (!bound) {
    const koffi = createRequire(import.meta.url)('koffi') as typeof KoffiModule;
    const libc = koffi.load('libc.so.6');
    const ucred = koffi.struct({ pid: 'int32_t', uid: 'uint32_t', gid: 'uint32_t' });
    const getsockopt = libc.func('getsockopt', 'int', ['int', 'int', 'int', koffi.out(koffi.pointer(ucred)), koffi.inout(koffi.pointer('uint32_t'))]) as GetSockOpt;
    bound = { getsockopt, errno: () => koffi.errno() };
  }
  return bound;
}

/** Whether koffi has been loaded for this module (for tests of the lazy load). */
export function peerCredentialsLoaded(): boolean {
  return bound !== null;
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
  const lib = bind();
  if (lib.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, out, len) !== 0) {
    throw new Error(`getsockopt(SO_PEERCRED) failed: errno ${lib.errno()}`);
  }
  const { pid, uid, gid } = out;
  if (len[0] !== 12 || typeof pid !== 'number' || typeof uid !== 'number' || typeof gid !== 'number') {
    throw new Error('getsockopt(SO_PEERCRED) returned no credentials');
  }
  return { pid, uid, gid };
}
