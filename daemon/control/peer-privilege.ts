// Whether the process at the other end of the control socket may change the
// system: it must run as root (uid 0) and hold CAP_NET_ADMIN in its effective
// set (a root process that dropped its capabilities is refused, and so is a
// user whose process gained the capability from a file capability). The
// kernel's SO_PEERCRED (peer-credentials.ts) gives the pid and uid as of
// connect(); /proc/PID/status says what that pid holds now.
//
// - A pid that has gone, or whose status cannot be read, is not privileged.
// - The pid may have been reused since: the uid in the same status text must
//   still be the one SO_PEERCRED gave (the effective uid, which is what
//   SO_PEERCRED reports).
// - CapEff is relative to the process's own user namespace: after
//   `unshare --user --map-root-user` a user's process shows every capability.
//   Its /proc/PID/uid_map, read from the daemon's namespace, then differs
//   from the daemon's own, and the peer is refused.
import { readFileSync } from 'node:fs';
import type { PeerCredentials } from './peer-credentials.js';

/** include/uapi/linux/capability.h */
export const CAP_NET_ADMIN = 12;

export type Privilege = { granted: true } | { granted: false; reason: string };

/** The parts of /proc/PID/status the decision reads. */
export interface ProcStatus {
  /** Uid: real, effective, saved, filesystem. */
  uids: [number, number, number, number];
  /** CapEff as a bit mask. */
  capEff: bigint;
}

/** A capability set as /proc prints it (16 hex digits), or null. Pure. */
export function parseCapMask(hex: string): bigint | null {
  return /^[0-9a-fA-F]{1,16}$/.test(hex) ? BigInt(`0x${hex}`) : null;
}

/** Whether capability number `cap` is in `mask`. Pure. */
export function hasCapability(mask: bigint, cap: number): boolean {
  return ((mask >> BigInt(cap)) & 1n) === 1n;
}

/** The Uid and CapEff lines of a /proc/PID/status text, or null when either is missing or malformed. Pure. */
export function parseProcStatus(text: string): ProcStatus | null {
  let uids: ProcStatus['uids'] | null = null;
  let capEff: bigint | null = null;
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon);
    const value = line.slice(colon + 1).trim();
    if (key === 'Uid') {
      const fields = value.split(/\s+/);
      if (fields.length !== 4 || !fields.every((f) => /^\d{1,10}$/.test(f))) return null;
      uids = fields.map(Number) as ProcStatus['uids'];
    } else if (key === 'CapEff') {
      capEff = parseCapMask(value);
      if (capEff === null) return null;
    }
  }
  return uids && capEff !== null ? { uids, capEff } : null;
}

/** What the decision reads about a peer: its status text and uid_map text (null: could not be read), and the daemon's own uid_map. */
export interface PeerProcFiles {
  status: string | null;
  uidMap: string | null;
  ownUidMap: string | null;
}

/** The same uid_map, whatever the column padding. */
const sameMap = (a: string, b: string): boolean => a.trim().split(/\s+/).join(' ') === b.trim().split(/\s+/).join(' ');

/** The decision, from the texts of the peer's /proc files. Pure. */
export function judgePeer(peer: PeerCredentials, files: PeerProcFiles): Privilege {
  const pid = peer.pid;
  if (files.status === null) return { granted: false, reason: `it has exited, or /proc/${pid}/status cannot be read` };
  const status = parseProcStatus(files.status);
  if (!status) return { granted: false, reason: `/proc/${pid}/status has no readable Uid and CapEff lines` };
  if (status.uids[1] !== peer.uid) return { granted: false, reason: `it now runs as uid ${status.uids[1]}, not as the uid ${peer.uid} that connected (a reused pid?)` };
  if (files.uidMap === null || files.ownUidMap === null || !sameMap(files.uidMap, files.ownUidMap)) {
    return { granted: false, reason: `it runs in another user namespace, where its capabilities are not the host's` };
  }
  // Root as well as the capability: a group member could otherwise connect,
  // then exec a binary with cap_net_admin as a file capability in the same
  // process and pass the check made at request time.
  if (peer.uid !== 0) return { granted: false, reason: 'it does not run as root (uid 0)' };
  if (!hasCapability(status.capEff, CAP_NET_ADMIN)) return { granted: false, reason: 'it does not hold CAP_NET_ADMIN' };
  return { granted: true };
}

const readOrNull = (path: string): string | null => {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return null;
  }
};

/**
 * Whether the peer may change the system, from the real /proc (`read` is the
 * tests'). uid_map is read before status, so that the uid check on the status
 * text comes last.
 */
export function peerPrivilege(peer: PeerCredentials, read: (path: string) => string | null = readOrNull): Privilege {
  if (!Number.isInteger(peer.pid) || peer.pid <= 0) return { granted: false, reason: `there is no process to check (pid ${peer.pid})` };
  const ownUidMap = read('/proc/self/uid_map');
  const uidMap = read(`/proc/${peer.pid}/uid_map`);
  const status = read(`/proc/${peer.pid}/status`);
  return judgePeer(peer, { status, uidMap, ownUidMap });
}
