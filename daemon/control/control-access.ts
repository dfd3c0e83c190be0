// Who may talk to the daemon: the control socket lives in the runtime
// directory; both belong to root and the `shadowd` group when that group
// exists (members run read-only shadowctl commands; control-server.ts checks
// that mutating ones come from a process holding CAP_NET_ADMIN,
// peer-privilege.ts), else to root alone.
import { chmodSync, chownSync, mkdirSync, readFileSync } from 'node:fs';

/** The group whose members may run read-only shadowctl commands. */
export const CONTROL_GROUP = 'shadowd';

/** Runtime directory: root rwx, the group may enter (to reach the socket), others nothing. */
export const RUNTIME_DIR_MODE = 0o750;
/** The socket with a group: root and the group may connect. */
export const SOCKET_MODE_GROUP = 0o660;
/** The socket without one: root only. */
export const SOCKET_MODE_ROOT_ONLY = 0o600;

/** A group's id from the text of an /etc/group file (name:password:gid:members), or null. Pure. */
export function parseGroupFile(text: string, name: string): number | null {
  for (const line of text.split('\n')) {
    const [group, , gid] = line.split(':');
    if (group !== name || gid === undefined || !/^\d{1,10}$/.test(gid)) continue;
    const n = Number(gid);
    return n <= 0xfffffffe ? n : null;
  }
  return null;
}

/**
 * The id of a group from /etc/group, or null when it has none (or the file
 * cannot be read). Node has no getgrnam(); the installer creates the group
 * with `groupadd --system`, which writes /etc/group, so NSS sources (LDAP ...)
 * are not looked at.
 */
export function lookupGroup(name: string, readGroupFile: () => string = () => readFileSync('/etc/group', 'utf8')): number | null {
  let text: string;
  try {
    text = readGroupFile();
  } catch {
    return null;
  }
  return parseGroupFile(text, name);
}

/**
 * Creates the runtime directory if needed, and gives it mode 0750 and the
 * group when shadowd created it or systemd did for it (`adopt`, its
 * $RUNTIME_DIRECTORY). A directory that was there already and is not ours
 * (`--runtime-dir /tmp`, say) is left as it is. Returns whether the mode was set.
 */
export function prepareRuntimeDir(dir: string, gid: number | null, adopt: boolean): boolean {
  const created = mkdirSync(dir, { recursive: true, mode: RUNTIME_DIR_MODE }) !== undefined;
  if (!created && !adopt) return false;
  // mkdir's mode is masked by the umask; set it exactly. -1: keep the owner.
  chmodSync(dir, RUNTIME_DIR_MODE);
  if (gid !== null) chownSync(dir, -1, gid);
  return true;
}
