// The code-size table of the evaluation (issue 14): the lines of each
// class's shadow (the daemon's class folder and its taps program, the
// helper's class files, the helper's fault injection apart: a test aid, not
// shadow), of the class-agnostic parts, beside the lines of the drivers each
// class runs, counted in Debian's kernel source. Which files belong to which
// class comes from the registry and the naming the repository already
// enforces (daemon/classes/ID, kmod/sh_ID*, kmod/check-class-boundary.sh), so
// a new class is counted without an edit here.
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { execa } from 'execa';
import { commentStyleOf, countLines } from './source-lines.js';
import { findModule, moduleFolder, moduleSources, objectName } from './driver-sources.js';

export interface PartSize {
  /** Files counted, repository- or folder-relative. */
  files: string[];
  code: number;
  lines: number;
}

export interface ClassShadowSize {
  cls: string;
  /** The daemon's class folder (TypeScript). */
  daemon: PartSize;
  /** The class's bpftrace program. */
  taps: PartSize;
  /** The helper module's class files (C), fault injection excepted. */
  helper: PartSize;
  /** The helper's fault injection for the class (C): a test aid. */
  faults: PartSize;
}

export interface GenericSize {
  /** daemon/core: recovery manager, policy, store, history, replay and taps runners, detectors. */
  core: PartSize;
  /** The service plumbing, the control socket and the CLI. */
  service: PartSize;
  /** The helper module's generic part (restart skeleton, control device, interrupts, reload, unplug). */
  helper: PartSize;
}

export interface DriverSize {
  cls: string;
  module: string;
  /** The module's folder in the kernel source. */
  folder: string;
  size: PartSize;
}

function sizeOf(root: string, files: string[]): PartSize {
  let code = 0;
  let lines = 0;
  for (const f of files) {
    const style = commentStyleOf(f);
    if (!style) throw new Error(`${f}: not a source file this count knows`);
    const c = countLines(readFileSync(join(root, f), 'utf8'), style);
    code += c.code;
    lines += c.lines;
  }
  return { files: [...files].sort(), code, lines };
}

/** Source files under a folder (recursive), relative to root. */
function sourcesUnder(root: string, folder: string): string[] {
  const out: string[] = [];
  const walk = (rel: string): void => {
    for (const e of readdirSync(join(root, rel), { withFileTypes: true })) {
      const r = join(rel, e.name);
      if (e.isDirectory()) walk(r);
      else if (commentStyleOf(e.name)) out.push(r);
    }
  };
  walk(folder);
  return out;
}

/** The helper's own sources: build products (*.mod.c) and the class-boundary check left out. */
function kmodSources(repo: string): string[] {
  return readdirSync(join(repo, 'kmod'))
    .filter((f) => /\.(c|h|mk)$/.test(f) && !f.endsWith('.mod.c'))
    .map((f) => `kmod/${f}`);
}

/** kmod/sh_ID.c, kmod/sh_ID_restart.c, ...: a class's helper files (kmod/check-class-boundary.sh holds them to it). */
const isClassFile = (file: string, cls: string): boolean => file.startsWith(`kmod/sh_${cls}.`) || file.startsWith(`kmod/sh_${cls}_`);
const isFaultFile = (file: string): boolean => /_fault\.[ch]$/.test(file);

/** The shadow of each class and the generic parts, counted in the repository at `repo`. */
export function shadowdSizes(repo: string, classes: readonly { id: string; tapProgram: string }[]): { classes: ClassShadowSize[]; generic: GenericSize } {
  const kmod = kmodSources(repo);
  const sized = classes.map((c) => {
    const helperFiles = kmod.filter((f) => isClassFile(f, c.id));
    return {
      cls: c.id,
      daemon: sizeOf(repo, sourcesUnder(repo, join('daemon', 'classes', c.id))),
      taps: sizeOf(repo, [relative(repo, c.tapProgram)]),
      helper: sizeOf(repo, helperFiles.filter((f) => !isFaultFile(f))),
      faults: sizeOf(repo, helperFiles.filter(isFaultFile)),
    };
  });
  const generic: GenericSize = {
    core: sizeOf(repo, sourcesUnder(repo, join('daemon', 'core'))),
    service: sizeOf(repo, [...sourcesUnder(repo, join('daemon', 'service')), ...sourcesUnder(repo, join('daemon', 'control')), 'daemon/main.ts', ...sourcesUnder(repo, 'cli')]),
    helper: sizeOf(repo, kmod.filter((f) => !classes.some((c) => isClassFile(f, c.id)))),
  };
  return { classes: sized, generic };
}

/**
 * The drivers' sizes in the kernel source of tarball (Debian's
 * linux-source-X tarball, whose top folder is `top`), the modules found in
 * the guest kernel's modules tree `modulesDir`. The folders are extracted
 * into `cacheDir` once, in one tar pass.
 */
export async function driverSizes(drivers: readonly { cls: string; module: string }[], modulesDir: string, tarball: string, top: string, cacheDir: string): Promise<DriverSize[]> {
  const found = drivers.map((d) => {
    const ko = findModule(modulesDir, d.module);
    if (!ko) throw new Error(`module ${d.module} is not in ${modulesDir}`);
    return { ...d, object: objectName(ko), folder: moduleFolder(ko) };
  });
  const tree = join(cacheDir, top);
  const missing = [...new Set(found.map((d) => d.folder))].filter((f) => !existsSync(join(tree, f, 'Makefile')));
  if (missing.length > 0) {
    if (!existsSync(tarball)) throw new Error(`${tarball} is missing: install Debian's ${top} package`);
    mkdirSync(cacheDir, { recursive: true });
    // Each folder's own source files only: `*` must not cross into subfolders (drivers/net/* would be all of
    // drivers/net), nor match a subfolder's entry (tar would extract it whole and count it for that pattern only).
    const patterns = missing.flatMap((f) => ['*.[ch]', 'Makefile'].map((p) => `${top}/${f}/${p}`));
    await execa('tar', ['-xJf', tarball, '-C', cacheDir, '--wildcards', '--no-wildcards-match-slash', ...patterns]);
  }
  return found.map((d) => {
    const folder = join(tree, d.folder);
    return { cls: d.cls, module: d.module, folder: d.folder, size: sizeOf(folder, moduleSources(folder, d.object)) };
  });
}
