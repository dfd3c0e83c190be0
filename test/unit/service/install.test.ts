// scripts/install.sh and scripts/uninstall.sh into a temporary root
// (--root DIR --files-only: no group, DKMS, modprobe or systemctl there; the
// guest test test/vm/service/service.test.ts runs the whole of both on a real system).
// The manifest must list exactly what install put there, uninstall must take
// exactly that away, user configuration must survive unless --purge, and the
// installed tree must run on its own. An upgrade builds first and switches by
// rename: one whose build fails leaves the old install as it was, and one that
// succeeds writes into no file of the old install (a running daemon maps them).
import { createHash } from 'node:crypto';
import { appendFileSync, existsSync, linkSync, lstatSync, mkdtempSync, mkdirSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CLASSES } from '../../../daemon/classes/registry.js';
import { DAEMON_NODE_OPTIONS } from '../../../daemon/service/node-options.js';
import { repoPath } from '../../vm/rig/repo-path.js';

const INSTALL = repoPath('scripts/install.sh');
const UNINSTALL = repoPath('scripts/uninstall.sh');
/** Through the /usr/lib/shadowd symlink, in the current release tree: root's, not the daemon's state directory. */
const MANIFEST = 'usr/lib/shadowd/install-manifest';
const LEGACY_MANIFEST = 'var/lib/shadowd/install-manifest';
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
  /** The release tree, /usr/lib/shadowd-releases/ID. */
  rel: string;
}
function manifest(root: string): Manifest {
  const lines = readFileSync(join(root, MANIFEST), 'utf8').split('\n').filter((l) => l && !l.startsWith('#'));
  const of = (kind: string): string[] => lines.filter((l) => l.startsWith(`${kind} `)).map((l) => l.slice(kind.length + 1)).sort();
  return { files: of('file'), dirs: of('dir'), lines, rel: `/usr/lib/${readlinkSync(join(root, 'usr/lib/shadowd'))}` };
}

/** Every regular file under root: its inode, and a hash of its content and mode. */
function snapshot(root: string): Map<string, { ino: number; hash: string }> {
  const out = new Map<string, { ino: number; hash: string }>();
  for (const f of walk(root).files) {
    const st = lstatSync(join(root, f));
    const hash = st.isSymbolicLink() ? `-> ${readlinkSync(join(root, f))}` : createHash('sha256').update(readFileSync(join(root, f))).update(String(st.mode)).digest('hex');
    out.set(f, { ino: st.ino, hash });
  }
  return out;
}

/** A kernel build tree whose `make modules` fails like a compiler error, or succeeds. */
function stubKernelDir(ok: boolean): string {
  const kdir = freshRoot();
  writeFileSync(join(kdir, 'Makefile'), ok ? 'modules:\n\t@echo built $(M)\n' : 'modules:\n\t@echo "$(M)/sh_control.c:1:1: error: expected identifier"; exit 2\n');
  return kdir;
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

  it('installs the documented layout and records every file and created directory in the manifest', { timeout: 180_000 }, async () => {
    const root = await sharedInstall();
    const r = { all: shared!.output };
    expect(r.all).toMatch(/==> \[1\/8\] checking/);
    expect(r.all).toMatch(/building shadow_helper before anything installed changes\n\s+skipped \(--files-only without --kernel-dir\)/);

    const m = manifest(root);
    const tree = walk(root);
    // /usr/lib/shadowd is a symlink to the release tree, which holds the manifest.
    expect(m.rel).toMatch(/^\/usr\/lib\/shadowd-releases\/[\d.]+-\d{8}T\d{6}Z-\d+$/);
    expect(lstatSync(join(root, 'usr/lib/shadowd')).isSymbolicLink()).toBe(true);
    expect(existsSync(join(root, m.rel, 'install-manifest'))).toBe(true);
    expect(m.files).toEqual(tree.files.filter((f) => f !== `${m.rel}/install-manifest`));
    // The root was empty: every directory was created by the install.
    expect(m.dirs).toEqual(tree.dirs);
    expect(m.lines).toContain(`version ${VERSION}`);
    expect(m.lines).toContain('mode files-only');
    expect(m.lines.some((l) => l.startsWith('group ') || l.startsWith('dkms ') || l.startsWith('enabled '))).toBe(false);
    // Nothing in the daemon's state directory: the manifest is root's only.
    expect(existsSync(join(root, 'var'))).toBe(false);

    const dkmsDir = m.dirs.find((d) => d.startsWith('/usr/src/shadow_helper-'));
    // The DKMS version names the sources: VERSION-HASH.
    expect(dkmsDir).toMatch(new RegExp(`^/usr/src/shadow_helper-${VERSION.replaceAll('.', '\\.')}-[0-9a-f]{8}$`));
    expect(readFileSync(join(root, dkmsDir!, 'dkms.conf'), 'utf8')).toContain(`PACKAGE_VERSION="${dkmsDir!.slice('/usr/src/shadow_helper-'.length)}"`);
    for (const f of [
      '/usr/lib/shadowd',
      `${m.rel}/dist/daemon/main.js`,
      `${m.rel}/dist/cli/shadowctl.js`,
      `${m.rel}/package.json`,
      `${m.rel}/bpf/netdev-class.bt`,
      `${m.rel}/README.md`,
      `${m.rel}/docs/configuration.md`,
      `${m.rel}/uninstall.sh`,
      '/usr/lib/systemd/system/shadowd.service',
      '/usr/lib/systemd/catalog/shadowd.catalog',
      '/etc/shadowd/shadowd.conf.example',
      '/etc/modules-load.d/shadowd.conf',
      `${dkmsDir}/dkms.conf`,
      `${dkmsDir}/Makefile`,
      `${dkmsDir}/sh_net.mk`,
      `${dkmsDir}/shadow_helper.h`,
      `${dkmsDir}/sh_control.c`,
    ]) {
      expect(m.files, f).toContain(f);
    }
    // No configuration is created: a missing shadowd.conf means the defaults.
    expect(existsSync(join(root, 'etc/shadowd/shadowd.conf'))).toBe(false);
    // The module's sources only, none of the checkout's build output.
    const dkmsFiles = m.files.filter((f) => f.startsWith(`${dkmsDir}/`));
    expect(dkmsFiles.filter((f) => !/\.(c|h|mk)$|\/(Makefile|dkms\.conf)$/.test(f))).toEqual([]);
    // Not the tests, benchmarks or development dependencies.
    expect(m.files.filter((f) => f.startsWith(`${m.rel}/dist/test/`) || f.startsWith(`${m.rel}/dist/bench/`))).toEqual([]);
    for (const dev of ['typescript', 'vitest', 'eslint', '@types']) {
      expect(existsSync(join(root, 'usr/lib/shadowd/node_modules', dev)), dev).toBe(false);
    }
    for (const prod of ['better-sqlite3', 'koffi', 'yargs', 'execa']) {
      expect(existsSync(join(root, 'usr/lib/shadowd/node_modules', prod, 'package.json')), prod).toBe(true);
    }
    // The helper (fault injection off) and every class's tap modules load at
    // boot: the service may not load modules.
    const modulesLoad = readFileSync(join(root, 'etc/modules-load.d/shadowd.conf'), 'utf8');
    expect(modulesLoad.split('\n').filter((l) => l && !l.startsWith('#'))).toEqual(['shadow_helper', ...new Set(CLASSES.flatMap((c) => c.tapModules ?? []))]);
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

  it('is idempotent: a second install gives the same files and manifest in a new release tree, removes the old tree and files the old version had, and a second uninstall does nothing', { timeout: 180_000 }, async () => {
    const root = freshRoot();
    expect((await install(root)).exitCode).toBe(0);
    const first = readFileSync(join(root, MANIFEST), 'utf8');
    const firstRel = manifest(root).rel;
    const firstTree = walk(root);

    // Pretend the previous version installed files this one no longer has.
    const stale = [`${firstRel}/dist/daemon/retired.js`, '/usr/bin/shadowd-retired-tool'];
    for (const f of stale) writeFileSync(join(root, f), '// from an older version\n');
    writeFileSync(join(root, MANIFEST), `${first}${stale.map((f) => `file ${f}\n`).join('')}`);
    await new Promise((r) => setTimeout(r, 1100)); // a new release id (its time has seconds)
    const again = await install(root);
    expect(again.exitCode, again.all).toBe(0);
    expect(again.all).toContain('upgrading the install recorded in /usr/lib/shadowd/install-manifest');
    const secondRel = manifest(root).rel;
    expect(secondRel).not.toBe(firstRel);
    // The old tree (with the retired file) and the retired tool, all gone.
    expect(again.all).toContain(`${firstTree.files.filter((f) => f.startsWith(`${firstRel}/`)).length - 1 + stale.length} file(s) of the previous install removed`);
    for (const f of stale) expect(existsSync(join(root, f)), f).toBe(false);
    expect(existsSync(join(root, firstRel))).toBe(false);
    const sameBut = (text: string) => text.replaceAll(firstRel, 'REL').replaceAll(secondRel, 'REL').replace(/^release .*$/m, 'release ID');
    expect(sameBut(readFileSync(join(root, MANIFEST), 'utf8'))).toBe(sameBut(first));
    const norm = (t: { files: string[]; dirs: string[] }) => ({ files: t.files.map(sameBut).sort(), dirs: t.dirs.map(sameBut).sort() });
    expect(norm(walk(root))).toEqual(norm(firstTree));

    expect((await uninstall(root)).exitCode).toBe(0);
    expect(walk(root)).toEqual({ files: [], dirs: [] });
    const twice = await uninstall(root);
    expect(twice.exitCode, twice.all).toBe(0);
    expect(twice.all).toContain('no manifest at');
    expect(walk(root)).toEqual({ files: [], dirs: [] });
  });

  it('leaves the old install as it was, and working, when the new helper module does not build', { timeout: 60_000 }, async () => {
    const root = freshRoot();
    expect((await install(root)).exitCode).toBe(0);
    const before = snapshot(root);
    const beforeTree = walk(root);

    const r = await install(root, '--kernel-dir', stubKernelDir(false));
    expect(r.exitCode, r.all).toBe(1);
    expect(r.all).toMatch(/==> \[3\/8\] building shadow_helper before anything installed changes/);
    expect(r.all).toContain('sh_control.c:1:1: error: expected identifier');
    expect(r.all).toContain('install.sh: error: shadow_helper does not build against');
    expect(r.all).toContain(`install.sh: nothing was changed: the previous install (shadowd ${VERSION}) is in place and works as before`);
    expect(r.all).not.toContain('==> [5/8]');
    // Every file, inode and content as before, and no staged tree left behind.
    expect(walk(root)).toEqual(beforeTree);
    expect(snapshot(root)).toEqual(before);
    // The old install still runs from its tree.
    const version = await execa('node', [join(root, 'usr/lib/shadowd/dist/daemon/main.js'), '--version'], { reject: false, all: true });
    expect(version.all).toBe(VERSION);

    // The same install with a module that builds goes through.
    const ok = await install(root, '--kernel-dir', stubKernelDir(true));
    expect(ok.exitCode, ok.all).toBe(0);
    expect(ok.all).toContain('shadow_helper builds against');
  });

  it('upgrades by rename: no file of the old install is written, and the old tree goes only once the new one is in place', { timeout: 180_000 }, async () => {
    const root = freshRoot();
    expect((await install(root)).exitCode).toBe(0);
    const oldRel = manifest(root).rel;
    // Make every installed file differ from what the upgrade installs (an
    // older version), then hold each one by a hard link, as a running daemon
    // holds the files it has open or mapped (its .node modules among them).
    const held = freshRoot();
    const files = walk(root).files.filter((f) => lstatSync(join(root, f)).isFile());
    expect(files).toContain(`${oldRel}/node_modules/better-sqlite3/build/Release/better_sqlite3.node`);
    const contents = new Map<string, string>();
    files.forEach((f, i) => {
      appendFileSync(join(root, f), '\n# from the old version\n');
      linkSync(join(root, f), join(held, String(i)));
      contents.set(String(i), createHash('sha256').update(readFileSync(join(root, f))).digest('hex'));
    });

    await new Promise((r) => setTimeout(r, 1100));
    const r = await install(root);
    expect(r.exitCode, r.all).toBe(0);
    // Each old inode still has the old content: replaced by rename, never rewritten.
    files.forEach((f, i) => {
      expect(createHash('sha256').update(readFileSync(join(held, String(i)))).digest('hex'), f).toBe(contents.get(String(i)));
    });
    const m = manifest(root);
    expect(m.rel).not.toBe(oldRel);
    expect(existsSync(join(root, oldRel))).toBe(false);
    // The new install is whole and new: every file it lists is the new version's, none is an old inode.
    const oldInodes = new Set(files.map((_f, i) => statSync(join(held, String(i))).ino));
    for (const f of m.files) expect(oldInodes.has(lstatSync(join(root, f)).ino), f).toBe(false);
    expect(readFileSync(join(root, 'usr/sbin/shadowd'), 'utf8')).not.toContain('from the old version');
    const version = await execa('node', [join(root, 'usr/lib/shadowd/dist/daemon/main.js'), '--version'], { reject: false, all: true });
    expect(version.all).toBe(VERSION);
    // Nothing staged or backed up is left beside the files.
    expect(walk(root).files.filter((f) => /\/\.shadowd-(new|old)\.|\.staging-|shadowd\.shadowd-new$/.test(f))).toEqual([]);
  });

  it('upgrades an install whose manifest is in the state directory (before release trees), and uninstall.sh finds an old manifest there', { timeout: 180_000 }, async () => {
    // An install of the old layout: /usr/lib/shadowd a directory, the manifest in /var/lib/shadowd.
    const legacy = (root: string): void => {
      const files = ['/usr/lib/shadowd/dist/daemon/main.js', '/usr/lib/shadowd/uninstall.sh', '/usr/sbin/shadowd', '/usr/src/shadow_helper-0.0.9/dkms.conf'];
      const dirs = ['/usr', '/usr/lib', '/usr/lib/shadowd', '/usr/lib/shadowd/dist', '/usr/lib/shadowd/dist/daemon', '/usr/sbin', '/usr/src', '/usr/src/shadow_helper-0.0.9', '/var', '/var/lib', '/var/lib/shadowd'];
      for (const d of dirs) mkdirSync(join(root, d), { recursive: true });
      for (const f of files) writeFileSync(join(root, f), 'old layout\n');
      writeFileSync(join(root, 'var/lib/shadowd/state.db'), 'the shadow state\n');
      writeFileSync(join(root, LEGACY_MANIFEST), ['version 0.0.9', 'mode files-only', ...dirs.map((d) => `dir ${d}`), ...files.map((f) => `file ${f}`), ''].join('\n'));
    };
    const root = freshRoot();
    legacy(root);
    const r = await install(root);
    expect(r.exitCode, r.all).toBe(0);
    expect(r.all).toContain('upgrading the install recorded in /var/lib/shadowd/install-manifest (shadowd 0.0.9)');
    expect(lstatSync(join(root, 'usr/lib/shadowd')).isSymbolicLink()).toBe(true);
    expect(existsSync(join(root, LEGACY_MANIFEST))).toBe(false);
    expect(existsSync(join(root, 'usr/src/shadow_helper-0.0.9'))).toBe(false);
    expect(readdirSync(join(root, 'usr/lib/shadowd-releases'))).toEqual([manifest(root).rel.split('/').at(-1)]);
    expect(readFileSync(join(root, 'usr/sbin/shadowd'), 'utf8')).not.toBe('old layout\n');
    // The state is the daemon's: kept, and its directory still recorded for uninstall.
    expect(readFileSync(join(root, 'var/lib/shadowd/state.db'), 'utf8')).toBe('the shadow state\n');
    expect(manifest(root).dirs).toEqual(expect.arrayContaining(['/var', '/var/lib', '/var/lib/shadowd']));
    const u = await uninstall(root, '--purge');
    expect(u.exitCode, u.all).toBe(0);
    expect(walk(root)).toEqual({ files: [], dirs: [] });

    // uninstall.sh alone, on the old layout.
    const old = freshRoot();
    legacy(old);
    const u2 = await uninstall(old);
    expect(u2.exitCode, u2.all).toBe(0);
    expect(u2.all).toContain('removing shadowd 0.0.9 as recorded in /var/lib/shadowd/install-manifest');
    expect(walk(old)).toEqual({ files: ['/var/lib/shadowd/state.db'], dirs: ['/var', '/var/lib', '/var/lib/shadowd'] });
  });

  it('keeps a directory the install created once someone else put a file in it, and says so', { timeout: 60_000 }, async () => {
    const root = freshRoot();
    expect((await install(root)).exitCode).toBe(0);
    const { rel } = manifest(root);
    writeFileSync(join(root, 'usr/lib/shadowd/notes.txt'), 'an administrator wrote this\n');
    const u = await uninstall(root);
    expect(u.exitCode, u.all).toBe(0);
    expect(u.all).toContain(`kept ${rel}: it holds files the install did not put there`);
    expect(walk(root).files).toEqual([`${rel}/notes.txt`]);
  });

  it('finds libsystemd in a long ldconfig listing (a check that stops reading early would see it missing, under pipefail)', { timeout: 60_000 }, async () => {
    // An ldconfig whose listing names libsystemd first, then goes on for 1.3 MB.
    const bin = mkdtempSync(join(tmpdir(), 'shadowd-fake-ldconfig-'));
    writeFileSync(join(bin, 'ldconfig'), "#!/bin/sh\necho '\tlibsystemd.so.0 (libc6,x86-64) => /lib/x86_64-linux-gnu/libsystemd.so.0'\nexec seq 1 200000\n", { mode: 0o755 });
    // The machine checks run for a real install only (no --root): a dry run, which may stop on
    // another check of this machine (the running kernel's headers), but not on this one.
    const dry = await execa(INSTALL, ['--dry-run'], { reject: false, all: true, env: { PATH: `${bin}:${process.env['PATH'] ?? ''}` } });
    expect(dry.all).toContain('checking this checkout and the system');
    expect(dry.all).not.toContain('libsystemd.so.0 is missing');
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
