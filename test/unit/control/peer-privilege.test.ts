// Who may change the system through the control socket: CapEff of the peer's
// /proc/PID/status (fixture texts here), checked against the uid SO_PEERCRED
// gave and the daemon's user namespace.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { CAP_NET_ADMIN, hasCapability, judgePeer, parseCapMask, parseProcStatus, peerPrivilege } from '../../../daemon/control/peer-privilege.js';

/** A /proc/PID/status as Linux 6.1 writes it, with the uid and CapEff given. */
const status = (uid: number, capEff: string, { euid = uid }: { euid?: number } = {}) => `Name:\tshadowctl
Umask:\t0022
State:\tS (sleeping)
Tgid:\t4321
Ngid:\t0
Pid:\t4321
PPid:\t4300
TracerPid:\t0
Uid:\t${uid}\t${euid}\t${euid}\t${euid}
Gid:\t${uid}\t${uid}\t${uid}\t${uid}
FDSize:\t64
Groups:\t997 ${uid}
NStgid:\t4321
NSpid:\t4321
VmPeak:\t  10000 kB
Threads:\t7
CapInh:\t0000000000000000
CapPrm:\t${capEff}
CapEff:\t${capEff}
CapBnd:\t000001ffffffffff
CapAmb:\t0000000000000000
NoNewPrivs:\t0
Seccomp:\t0
`;

/** Every capability of 6.1 (0-40). */
const ALL = '000001ffffffffff';
/** Every one but CAP_NET_ADMIN (bit 12). */
const ALL_BUT_NET_ADMIN = '000001ffffffefff';
/** CAP_NET_ADMIN alone, as a service with AmbientCapabilities=CAP_NET_ADMIN has it. */
const NET_ADMIN_ONLY = '0000000000001000';
const HOST_MAP = '         0          0 4294967295\n';
/** `unshare --user --map-root-user` by uid 1000, read from the host. */
const CHILD_MAP = '         0       1000          1\n';

const ROOT = { pid: 4321, uid: 0, gid: 0 };
const USER = { pid: 4321, uid: 1000, gid: 1000 };
const host = (text: string | null) => ({ status: text, uidMap: HOST_MAP, ownUidMap: HOST_MAP });

describe('CapEff parsing', () => {
  it('reads a capability mask in hex', () => {
    expect(parseCapMask(ALL)).toBe(0x1ffffffffffn);
    expect(parseCapMask('0000000000000000')).toBe(0n);
    expect(parseCapMask(NET_ADMIN_ONLY)).toBe(1n << 12n);
    expect(parseCapMask('FFFFFFFFFFFFFFFF')).toBe(0xffffffffffffffffn);
    for (const bad of ['', '0x1000', '1000 ', '-1', 'zz', '00000000000000001', '1_000']) expect(parseCapMask(bad), bad).toBeNull();
  });

  it('tells bit 12, CAP_NET_ADMIN, from its neighbours', () => {
    expect(CAP_NET_ADMIN).toBe(12);
    expect(hasCapability(parseCapMask(NET_ADMIN_ONLY)!, CAP_NET_ADMIN)).toBe(true);
    expect(hasCapability(parseCapMask(ALL_BUT_NET_ADMIN)!, CAP_NET_ADMIN)).toBe(false);
    expect(hasCapability(parseCapMask('0000000000000800')!, CAP_NET_ADMIN)).toBe(false); // 11, CAP_NET_BROADCAST
    expect(hasCapability(parseCapMask('0000000000002000')!, CAP_NET_ADMIN)).toBe(false); // 13, CAP_NET_RAW
    // Bits above 31 are read too (CAP_BPF is 39).
    expect(hasCapability(parseCapMask('0000008000000000')!, 39)).toBe(true);
  });

  it('reads Uid and CapEff from a status text', () => {
    expect(parseProcStatus(status(1000, NET_ADMIN_ONLY, { euid: 0 }))).toEqual({ uids: [1000, 0, 0, 0], capEff: 1n << 12n });
    // CapPrm, CapBnd are not CapEff.
    expect(parseProcStatus(status(0, '0000000000000000'))?.capEff).toBe(0n);
  });

  it.each([
    ['no CapEff line', status(0, ALL).replace(/^CapEff:.*\n/m, '')],
    ['no Uid line', status(0, ALL).replace(/^Uid:.*\n/m, '')],
    ['a CapEff that is not hex', status(0, 'ffffffffffffffffz')],
    ['a Uid line with three fields', status(0, ALL).replace(/^Uid:.*$/m, 'Uid:\t0\t0\t0')],
    ['a Uid that is not a number', status(0, ALL).replace(/^Uid:.*$/m, 'Uid:\t0\tx\t0\t0')],
    ['nothing', ''],
  ])('gives null for %s', (_what, text) => {
    expect(parseProcStatus(text)).toBeNull();
  });
});

describe('who may change the system', () => {
  it('grants root holding CAP_NET_ADMIN, and refuses a user even with it (a file capability could lend it)', () => {
    expect(judgePeer(ROOT, host(status(0, ALL)))).toEqual({ granted: true });
    expect(judgePeer(ROOT, host(status(0, NET_ADMIN_ONLY)))).toEqual({ granted: true });
    expect(judgePeer(USER, host(status(1000, NET_ADMIN_ONLY)))).toEqual({ granted: false, reason: 'it does not run as root (uid 0)' });
  });

  it('refuses root without CAP_NET_ADMIN, and a user without it', () => {
    expect(judgePeer(ROOT, host(status(0, ALL_BUT_NET_ADMIN)))).toEqual({ granted: false, reason: 'it does not hold CAP_NET_ADMIN' });
    expect(judgePeer(ROOT, host(status(0, '0000000000000000')))).toEqual({ granted: false, reason: 'it does not hold CAP_NET_ADMIN' });
    expect(judgePeer(USER, host(status(1000, '0000000000000000')))).toEqual({ granted: false, reason: 'it does not run as root (uid 0)' });
  });

  it('refuses a process that has gone, or whose status cannot be read', () => {
    expect(judgePeer(ROOT, host(null))).toEqual({ granted: false, reason: 'it has exited, or /proc/4321/status cannot be read' });
    expect(judgePeer(ROOT, host('Name:\tx\n'))).toEqual({ granted: false, reason: '/proc/4321/status has no readable Uid and CapEff lines' });
  });

  it('refuses a pid that now belongs to another uid (the effective one, as SO_PEERCRED gives)', () => {
    // A user connected and exited; root's process got its pid.
    expect(judgePeer(USER, host(status(0, ALL)))).toEqual({ granted: false, reason: 'it now runs as uid 0, not as the uid 1000 that connected (a reused pid?)' });
    // Real uid 0, effective 1000: SO_PEERCRED said 1000, and so does the effective uid.
    expect(judgePeer(USER, host(status(0, NET_ADMIN_ONLY, { euid: 1000 })))).toEqual({ granted: false, reason: 'it does not run as root (uid 0)' });
    expect(judgePeer(ROOT, host(status(0, ALL, { euid: 1000 })))).toMatchObject({ granted: false, reason: expect.stringContaining('now runs as uid 1000') as string });
  });

  it("refuses capabilities that are a user namespace's, not the host's", () => {
    const inChild = { status: status(1000, ALL), uidMap: CHILD_MAP, ownUidMap: HOST_MAP };
    expect(judgePeer(USER, inChild)).toEqual({ granted: false, reason: "it runs in another user namespace, where its capabilities are not the host's" });
    expect(judgePeer(USER, { ...inChild, uidMap: null })).toMatchObject({ granted: false });
    expect(judgePeer(ROOT, { status: status(0, ALL), uidMap: HOST_MAP, ownUidMap: null })).toMatchObject({ granted: false });
    // Only the columns' padding differs.
    expect(judgePeer(ROOT, { status: status(0, ALL), uidMap: '0 0 4294967295', ownUidMap: HOST_MAP })).toEqual({ granted: true });
  });

  it('reads the peer\'s files from /proc, status last', () => {
    const read: string[] = [];
    const files: Record<string, string> = { '/proc/self/uid_map': HOST_MAP, '/proc/4321/uid_map': HOST_MAP, '/proc/4321/status': status(0, ALL) };
    const reader = (path: string) => {
      read.push(path);
      return files[path] ?? null;
    };
    expect(peerPrivilege(ROOT, reader)).toEqual({ granted: true });
    expect(read).toEqual(['/proc/self/uid_map', '/proc/4321/uid_map', '/proc/4321/status']);
    expect(peerPrivilege({ ...ROOT, pid: 99 }, reader)).toMatchObject({ granted: false, reason: expect.stringContaining('/proc/99/status cannot be read') as string });
    expect(peerPrivilege({ ...ROOT, pid: 0 }, reader)).toMatchObject({ granted: false });
  });

  it('judges this process from the real /proc as its CapEff says', () => {
    const own = parseProcStatus(readFileSync('/proc/self/status', 'utf8'))!;
    const me = { pid: process.pid, uid: process.geteuid!(), gid: process.getegid!() };
    expect(peerPrivilege(me).granted).toBe(me.uid === 0 && hasCapability(own.capEff, CAP_NET_ADMIN));
    // A pid no process has (beyond pid_max's largest, 2^22).
    expect(peerPrivilege({ ...me, pid: 2 ** 22 + 1 })).toMatchObject({ granted: false, reason: expect.stringContaining('has exited') as string });
  });
});
