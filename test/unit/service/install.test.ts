// scripts/install.sh and scripts/uninstall.sh into a temporary root
// (--root DIR --files-only: no group, DKMS, modprobe or systemctl there; the
// guest test test/vm/service/service.test.ts runs the whole of both on a real system).
// The manifest must list exactly what install put there, uninstall must take
// exactly that away, user configuration must survive unless --purge, and the
// installed tree must run on its own.
import { existsSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DAEMON_NODE_OPTIONS } from '../../../daemon/service/node-options.js';
import { repoPath } from '../../vm/rig/repo-path.js';

const INSTALL = repoPath('scripts/install.sh');
const UNINSTALL = repoPath('scripts/uninstall.sh');
const MANIFEST = 'var/lib/shadowd/install-manifest';
const VERSION = (JSON.parse(readFileSync(repoPath('package.json'), 'utf8')) as { version: string }).version;

const roots: string[] = [];
function freshRoot(): string {
  const root = mkdtempSync(join(tmpdir(), 'shadowd-install-test-'));
  roots.push(root);
  return root;
}
afterEach(() => {
  for (const r of roots.splice(0)) rmSync(r, { recursive: true, force: true });
});

async function install(root: string, ...extra: string[]) {
  return execa(INSTALL, ['--root', root, '--files-only', ...extra], { reject: false, all: true });
}
async function uninstall(root: string, ...extra: string[]) {
  return execa(UNINSTALL, ['--root', root, '--files-only', ...extra], { reject: false, all: true });
}

/** Every file (or symlink) and directory under root, as absolute paths inside it. */
function walk(root: string): { files: string[]; dirs: string[] } {
  const files: string[] = [];
  const dirs: string[] = [];
  const go = (rel: string): void => {
    for (const ent of readdirSync(join(root, rel), { withFileTypes: true })) {
      const p = `${rel}/${ent.name}`;
      if (ent.isDirectory()) {
        dirs.push(p);
        go(p);
      } else files.push(p);
    }
  };
  go('');
  return { files: files.sort(), dirs: dirs.sort() };
}

interface Manifest {
  files: string[];
  dirs: string[];
  lines: string[];
}
function manifest(root: string): Manifest {
  const lines = readFileSync(join(root, MANIFEST), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  const of = (kind: string): string[] => lines.filter((l) => l.startsWith(`${kind} `)).map((l) => l.slice(kind.length + 1)).sort();
  return { files: of('file'), dirs: of('dir'), lines };
}

describe('install.sh and uninstall.sh (files only, into a temporary root)', () => {
  beforeAll(() => {
    for (const built of ['dist/daemon/main.js', 'dist/cli/shadowctl.js']) {
      if (!existsSync(repoPath(built))) throw new Error(`${built} is missing: run \`npm run build\` first`);
    }
  });

  // One install for the two read-only tests below.
  let shared: { root: string; output: string } | null = null;
  async function sharedInstall(): Promise<string> {
    if (!shared) {
      const root = mkdtempSync(join(tmpdir(), 'shadowd-install-test-'));
      const r = await install(root);
      shared = { root, output: r.all };
      expect(r.exitCode, r.all).toBe(0);
    }
    return shared.root;
  }
  afterAll(() => {
    if (shared) rmSync(shared.root, { recursive: true, force: true });
  });

  it('installs the documented layout and records every file and created directory in the manifest', { timeout: 60_000 }, async () => {
    const root = await sharedInstall();
    const r = { all: shared!.output };
    expect(r.all).toMatch(/==> \[1\/8\] checking/);
    expect(r.all).toMatch(/building and installing shadow_helper .* with DKMS\n\s+skipped \(--files-only\)/);

    const m = manifest(root);
    const tree = walk(root);
    expect(m.files).toEqual(tree.files.filter((f) => f !== `/${MANIFEST}`));
    // The root was empty: every directory was created by the install.
    expect(m.dirs).toEqual(tree.dirs);
    expect(m.lines).toContain(`version ${VERSION}`);
    expect(m.lines).toContain('mode files-only');
    expect(m.lines.some((l) => l.startsWith('group ') || l.startsWith('dkms ') || l.startsWith('enabled '))).toBe(false);

    for (const f of [
      '/usr/lib/shadowd/dist/daemon/main.js',
      '/usr/lib/shadowd/dist/cli/shadowctl.js',
      '/usr/lib/shadowd/package.json',
      '/usr/lib/shadowd/bpf/netdev-class.bt',
      '/usr/lib/shadowd/README.md',
      '/usr/lib/shadowd/docs/configuration.md',
      '/usr/lib/shadowd/uninstall.sh',
      '/usr/lib/systemd/system/shadowd.service',
      '/usr/lib/systemd/catalog/shadowd.catalog',
      '/etc/shadowd/shadowd.conf.example',
      '/etc/modules-load.d/shadowd.conf',
      `/usr/src/shadow_helper-${VERSION}/dkms.conf`,
      `/usr/src/shadow_helper-${VERSION}/Makefile`,
      `/usr/src/shadow_helper-${VERSION}/shadow_helper.h`,
      `/usr/src/shadow_helper-${VERSION}/sh_control.c`,
    ]) {
      expect(m.files, f).toContain(f);
    }
    // No configuration is created: a missing shadowd.conf means the defaults.
    expect(existsSync(join(root, 'etc/shadowd/shadowd.conf'))).toBe(false);
    // The module's sources only, none of the checkout's build output.
    const dkmsFiles = m.files.filter((f) => f.startsWith(`/usr/src/shadow_helper-${VERSION}/`));
    expect(dkmsFiles.filter((f) => !/\.(c|h)$|\/(Makefile|dkms\.conf)$/.test(f))).toEqual([]);
    // Not the tests, benchmarks or development dependencies.
    expect(m.files.filter((f) => /^\/usr\/lib\/shadowd\/dist\/(test|bench)\//.test(f))).toEqual([]);
    for (const dev of ['typescript', 'vitest', 'eslint', '@types']) {
      expect(existsSync(join(root, 'usr/lib/shadowd/node_modules', dev)), dev).toBe(false);
    }
    for (const prod of ['better-sqlite3', 'koffi', 'yargs', 'execa']) {
      expect(existsSync(join(root, 'usr/lib/shadowd/node_modules', prod, 'package.json')), prod).toBe(true);
    }
    // The helper loads at boot with fault injection off.
    const modulesLoad = readFileSync(join(root, 'etc/modules-load.d/shadowd.conf'), 'utf8');
    expect(modulesLoad.split('\n').filter((l) => l && !l.startsWith('#'))).toEqual(['shadow_helper']);
    expect((statSync(join(root, 'var/lib/shadowd')).mode & 0o777).toString(8)).toBe('750');
  });

  it('installs launchers that run the daemon exactly as its unit does, and CLI and daemon run from the installed tree alone', { timeout: 60_000 }, async () => {
    const root = await sharedInstall();
    const unit = readFileSync(join(root, 'usr/lib/systemd/system/shadowd.service'), 'utf8');
    const execStart = /^ExecStart=(.*)$/m.exec(unit)?.[1];
    expect(execStart).toBe(`/usr/bin/node ${DAEMON_NODE_OPTIONS.join(' ')} /usr/lib/shadowd/dist/daemon/main.js`);
    const daemonLauncher = readFileSync(join(root, 'usr/sbin/shadowd'), 'utf8');
    expect(daemonLauncher).toMatch(/^#!\/bin\/sh\n/);
    expect(daemonLauncher).toContain(`\nexec ${execStart} "$@"\n`);
    expect(readFileSync(join(root, 'usr/bin/shadowctl'), 'utf8')).toContain('\nexec /usr/bin/node /usr/lib/shadowd/dist/cli/shadowctl.js "$@"\n');
    for (const exe of ['usr/sbin/shadowd', 'usr/bin/shadowctl', 'usr/lib/shadowd/uninstall.sh']) {
      expect(statSync(join(root, exe)).mode & 0o755, exe).toBe(0o755);
    }

    // The installed copy, not the checkout: every import resolves inside it.
    const lib = join(root, 'usr/lib/shadowd');
    const version = await execa('node', [...DAEMON_NODE_OPTIONS, join(lib, 'dist/daemon/main.js'), '--version'], { reject: false, all: true });
    expect(version.all).toBe(VERSION);
    const help = await execa('node', [join(lib, 'dist/cli/shadowctl.js'), '--help'], { reject: false, all: true });
    expect(help.exitCode, help.all).toBe(0);
    expect(help.stdout).toContain('shadowctl <command>');
    const unreachable = await execa('node', [join(lib, 'dist/cli/shadowctl.js'), 'status', '--socket', join(root, 'none.sock')], { reject: false });
    expect(unreachable.exitCode).toBe(3);
    // The native modules load from the installed tree (node-gyp's intermediates were left out).
    const native = await execa(
      'node',
      ['-e', `const D = require(${JSON.stringify(join(lib, 'node_modules/better-sqlite3'))}); console.log(new D(':memory:').prepare('select 41 + 1 as x').get().x); require(${JSON.stringify(join(lib, 'node_modules/koffi'))}).load('libsystemd.so.0');`],
      { reject: false, all: true },
    );
    expect(native.all).toBe('42');
  });

  it('never touches an existing shadowd.conf; uninstall keeps it and removes everything else, --purge removes it too', { timeout: 60_000 }, async () => {
    const root = freshRoot();
    mkdirSync(join(root, 'etc/shadowd'), { recursive: true });
    mkdirSync(join(root, 'usr/bin'), { recursive: true });
    writeFileSync(join(root, 'usr/bin/other-tool'), 'not ours\n');
    const mine = '[Daemon]\nLogLevel=debug\n';
    writeFileSync(join(root, 'etc/shadowd/shadowd.conf'), mine);
    const before = walk(root);

    const r = await install(root);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toContain('keeping the existing /etc/shadowd/shadowd.conf');
    expect(readFileSync(join(root, 'etc/shadowd/shadowd.conf'), 'utf8')).toBe(mine);
    const m = manifest(root);
    // Directories that were there before are not the install's to remove.
    for (const d of ['/etc', '/etc/shadowd', '/usr', '/usr/bin']) expect(m.dirs).not.toContain(d);
    expect(m.files).not.toContain('/etc/shadowd/shadowd.conf');

    const u = await uninstall(root);
    expect(u.exitCode, u.all).toBe(0);
    expect(u.all).toContain('keeping /etc/shadowd/shadowd.conf (--purge removes it)');
    expect(walk(root)).toEqual(before);
    expect(readFileSync(join(root, 'etc/shadowd/shadowd.conf'), 'utf8')).toBe(mine);

    const p = await uninstall(root, '--purge');
    expect(p.exitCode, p.all).toBe(0);
    expect(walk(root)).toEqual({ files: ['/usr/bin/other-tool'], dirs: ['/etc', '/usr', '/usr/bin'] });
  });

  it('is idempotent: a second install gives the same files and manifest, removes files the old version had, and a second uninstall does nothing', { timeout: 60_000 }, async () => {
    const root = freshRoot();
    expect((await install(root)).exitCode).toBe(0);
    const first = readFileSync(join(root, MANIFEST), 'utf8');
    const firstTree = walk(root);

    // Pretend the previous version installed a file this one no longer has.
    const stale = '/usr/lib/shadowd/dist/daemon/retired.js';
    writeFileSync(join(root, stale), '// from an older version\n');
    writeFileSync(join(root, MANIFEST), `${first}file ${stale}\n`);
    const again = await install(root);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.all).toContain('upgrading the install recorded in /var/lib/shadowd/install-manifest');
    expect(again.all).toContain('1 stale file(s)');
    expect(existsSync(join(root, stale))).toBe(false);
    expect(readFileSync(join(root, MANIFEST), 'utf8')).toBe(first);
    expect(walk(root)).toEqual(firstTree);

    expect((await uninstall(root)).exitCode).toBe(0);
    expect(walk(root)).toEqual({ files: [], dirs: [] });
    const twice = await uninstall(root);
    expect(twice.exitCode, twice.all).toBe(0);
    expect(twice.all).toContain('no manifest at');
    expect(walk(root)).toEqual({ files: [], dirs: [] });
  });

  it('keeps a directory the install created once someone else put a file in it, and says so', { timeout: 60_000 }, async () => {
    const root = freshRoot();
    expect((await install(root)).exitCode).toBe(0);
    writeFileSync(join(root, 'usr/lib/shadowd/notes.txt'), 'an administrator wrote this\n');
    const u = await uninstall(root);
    expect(u.exitCode, u.all).toBe(0);
    expect(u.all).toContain('kept /usr/lib/shadowd: it holds files the install did not put there');
    expect(walk(root).files).toEqual(['/usr/lib/shadowd/notes.txt']);
  });

  it('refuses --root without --files-only, changes nothing with --dry-run, and rejects a manifest path outside the root', { timeout: 60_000 }, async () => {
    const root = freshRoot();
    const noFilesOnly = await execa(INSTALL, ['--root', root], { reject: false, all: true });
    expect(noFilesOnly.exitCode).toBe(1);
    expect(noFilesOnly.all).toContain('add --files-only');
    const bad = await execa(INSTALL, ['--frobnicate'], { reject: false, all: true });
    expect(bad.exitCode).toBe(2);
    expect(bad.all).toContain('unknown option --frobnicate');

    const dry = await install(root, '--dry-run');
    expect(dry.exitCode, dry.all).toBe(0);
    expect(dry.all).toContain('Dry run: nothing was changed.');
    expect(walk(root)).toEqual({ files: [], dirs: [] });

    expect((await install(root)).exitCode).toBe(0);
    const outside = join(root, '..', `${root.split('/').at(-1)}-victim`);
    writeFileSync(outside, 'must survive\n');
    roots.push(outside);
    writeFileSync(join(root, MANIFEST), `file /../${outside.split('/').at(-1)}\n`, { flag: 'a' });
    const u = await uninstall(root);
    expect(u.exitCode).toBe(1);
    expect(u.all).toMatch(/is not normalized/);
    expect(readFileSync(outside, 'utf8')).toBe('must survive\n');
    // Refused before removing anything.
    expect(existsSync(join(root, 'usr/lib/shadowd/package.json'))).toBe(true);
  });

  it('tells the administrator which Debian packages to install when a tool is missing', { timeout: 60_000 }, async () => {
    // A PATH with the basic tools but without dkms, bpftrace and ethtool.
    const bin = freshRoot();
    const keep = ['bash', 'sh', 'sed', 'grep', 'sort', 'tr', 'uname', 'id', 'cat', 'dirname', 'node', 'ldconfig', 'ip', 'modprobe', 'make', 'gcc', 'systemctl', 'journalctl', 'groupadd', 'mktemp', 'rm'];
    for (const tool of keep) {
      const found = ['/usr/bin', '/usr/sbin', '/bin', '/sbin'].map((d) => join(d, tool)).find((p) => existsSync(p));
      if (found) symlinkSync(found, join(bin, tool));
    }
    const r = await execa('bash', [INSTALL, '--dry-run'], { reject: false, all: true, env: { PATH: bin }, extendEnv: false });
    expect(r.exitCode, r.all).toBe(1);
    expect(r.all).toContain('install.sh: dkms is missing');
    expect(r.all).toContain('install.sh: bpftrace is missing');
    const apt = /install what is missing with: sudo apt install (.*)$/m.exec(r.all)?.[1]?.trim().split(' ');
    expect(apt).toEqual(expect.arrayContaining(['dkms', 'bpftrace', 'ethtool']));
    expect(r.all).not.toContain('==> [2/8]');
  });
});
