// Who may reach the control socket: the shadowd group's id from /etc/group
// (an injected file here), and the runtime directory's mode and group.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lookupGroup, parseGroupFile, prepareRuntimeDir } from '../../../daemon/control/control-access.js';

const GROUP_FILE = `root:x:0:
daemon:x:1:
shadowdev:x:998:alice
shadowd:x:997:alice,bob
users:x:100:
`;

describe('group lookup', () => {
  it('finds a group by its exact name', () => {
    expect(parseGroupFile(GROUP_FILE, 'shadowd')).toBe(997);
    expect(parseGroupFile(GROUP_FILE, 'root')).toBe(0);
    expect(parseGroupFile(GROUP_FILE, 'shadow')).toBeNull();
    expect(parseGroupFile('', 'shadowd')).toBeNull();
  });

  it('skips lines it cannot read', () => {
    expect(parseGroupFile('shadowd:x:\nshadowd:x:lots:\nshadowd:x:99999999999:\n+shadowd\nshadowd:x:42:', 'shadowd')).toBe(42);
  });

  it('reads the file it is given, and says null when there is none', () => {
    expect(lookupGroup('shadowd', () => GROUP_FILE)).toBe(997);
    expect(
      lookupGroup('shadowd', () => {
        throw Object.assign(new Error('ENOENT: no such file'), { code: 'ENOENT' });
      }),
    ).toBeNull();
    // The real /etc/group: root is always there.
    expect(lookupGroup('root')).toBe(0);
  });
});

describe('prepareRuntimeDir', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shadowd-rundir-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const modeOf = (p: string) => statSync(p).mode & 0o777;

  it('creates the directory 0750 with the group, whatever the umask', () => {
    const gid = process.getgid!();
    const run = join(dir, 'a', 'run');
    const old = process.umask(0o077);
    try {
      expect(prepareRuntimeDir(run, gid, false)).toBe(true);
    } finally {
      process.umask(old);
    }
    expect([modeOf(run), statSync(run).gid]).toEqual([0o750, gid]);
  });

  it("takes over systemd's RuntimeDirectory= (adopt), but leaves a directory it did not make alone", () => {
    const mine = join(dir, 'systemd-made');
    mkdirSync(mine);
    chmodSync(mine, 0o755);
    expect(prepareRuntimeDir(mine, null, true)).toBe(true);
    expect(modeOf(mine)).toBe(0o750);
    const theirs = join(dir, 'shared');
    mkdirSync(theirs);
    chmodSync(theirs, 0o777);
    expect(prepareRuntimeDir(theirs, null, false)).toBe(false);
    expect(modeOf(theirs)).toBe(0o777);
  });

  it.skipIf(process.getuid?.() !== 0)('gives it to another group (root)', () => {
    const run = join(dir, 'grouped');
    prepareRuntimeDir(run, 4242, false);
    expect([modeOf(run), statSync(run).uid, statSync(run).gid]).toEqual([0o750, 0, 4242]);
  });
});
