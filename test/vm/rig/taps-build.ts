// Builds the prototype of the precompiled taps (bpf/libbpf/: issue 15, a
// CO-RE BPF object per class loaded by libbpf instead of bpftrace compiling
// the .bt programs at each start): an object per class (each NAME.bpf.c of
// bpf/libbpf/) and the one loader that prints any of them as bpftrace prints
// the class's program. Not part of `npm run build` yet, and nothing in the
// daemon runs it.
//
//   vmlinux.h          bpftool btf dump of the 6.1 guest kernel's BTF (the
//                      oldest kernel the objects load on; CO-RE relocates
//                      them for newer ones). Generated, never committed.
//   NAME.bpf.o         clang -target bpf, then `bpftool gen object` (links
//                      it and drops the DWARF, keeping the BTF CO-RE needs),
//                      for each NAME.bpf.c (block-class, sound-class, ...)
//   taps-loader        cc (taps-loader.c, tap-format.c), libbpf linked in
//                      statically (libelf, zlib shared)
//
// Then every CO-RE read of each object is resolved against each cached guest
// kernel's BTF, and its class's modules' (taps-core-check.ts): a field that
// moved or went is a build failure here, not a load failure in the guest.
//
// Everything goes to bpf/libbpf/build/ (git-ignored); the guest sees it at
// the same path. The sources are held to checkpatch --strict as kmod/ is.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { basename, delimiter, join } from 'node:path';
import { execa } from 'execa';
import { currentKernel } from './guest.js';
import { checkpatchDir } from './kmod-build.js';
import { cachedSeries, checkObjectCore } from './taps-core-check.js';
import { repoPath } from './repo-path.js';

type Log = (line: string) => void;

/** The sources: one .bpf.c per class, the loader, their shared headers. */
export const TAPS_SOURCE_DIR = repoPath('bpf', 'libbpf');
const BPF_SOURCE = /^([a-z0-9][a-z0-9-]*)\.bpf\.c$/;

/** The class objects a folder's files make: NAME for each NAME.bpf.c, sorted. */
export function classObjectNames(files: readonly string[]): string[] {
  return files.flatMap((f) => BPF_SOURCE.exec(f)?.[1] ?? []).sort();
}

/** The class objects built from TAPS_SOURCE_DIR/NAME.bpf.c (block-class, sound-class, ...). */
export function tapsObjects(dir = TAPS_SOURCE_DIR): string[] {
  return classObjectNames(readdirSync(dir));
}

export function tapsBuildDir(): string {
  return join(TAPS_SOURCE_DIR, 'build');
}

export interface TapsBuild {
  dir: string;
  loader: string;
  /** Class object name (block-class, sound-class, ...) → its .bpf.o. */
  objects: Record<string, string>;
  /** The kernel image whose BTF vmlinux.h was made from. */
  btfSource: string;
}

/** Where the build puts each of its outputs. */
export function tapsOutputs(dir = tapsBuildDir(), names: readonly string[] = tapsObjects()): Omit<TapsBuild, 'btfSource'> {
  const objects = Object.fromEntries(names.map((o) => [o, join(dir, `${o}.bpf.o`)]));
  return { dir, loader: join(dir, 'taps-loader'), objects };
}

/** A class object the build made; throws naming what was built when there is none of that name. */
export function tapsObject(build: Pick<TapsBuild, 'objects'>, name: string): string {
  const object = build.objects[name];
  if (object === undefined) throw new Error(`no ${name}.bpf.o: the build made ${Object.keys(build.objects).join(', ') || 'no object'}`);
  return object;
}

/**
 * A program by name: from PATH, then from the sbin folders a user's PATH
 * often lacks (Debian installs bpftool in /usr/sbin). Null when none is.
 */
export function findTool(name: string, path = process.env['PATH'] ?? '', exists: (p: string) => boolean = existsSync): string | null {
  const dirs = [...path.split(delimiter).filter(Boolean), '/usr/local/sbin', '/usr/sbin', '/sbin'];
  return dirs.map((d) => join(d, name)).find((p) => exists(p)) ?? null;
}

/** bpftool's argv that prints a kernel image's BTF as C (vmlinux.h). */
export function vmlinuxHeaderArgv(btfSource: string): string[] {
  return ['btf', 'dump', 'file', btfSource, 'format', 'c'];
}

/** clang's argv for a class object: BPF target, debug info (its BTF and CO-RE records), warnings as errors. */
export function bpfCompileArgv(source: string, output: string, includeDirs: readonly string[]): string[] {
  return ['-g', '-O2', '-target', 'bpf', '-D__TARGET_ARCH_x86', '-Wall', '-Werror', ...includeDirs.map((d) => `-I${d}`), '-c', source, '-o', output];
}

/** The loader's C files: libbpf's side, and the record printer the unit tests also build. */
export const LOADER_SOURCES = ['taps-loader.c', 'tap-format.c'] as const;

/** The C compiler's argv for the loader: libbpf statically, so the loader runs wherever libelf and zlib are. */
export function loaderLinkArgv(sources: readonly string[], output: string, includeDirs: readonly string[]): string[] {
  return [
    '-O2', '-g', '-Wall', '-Wextra', '-Werror',
    ...includeDirs.map((d) => `-I${d}`),
    ...sources, '-o', output,
    '-pthread', '-Wl,-Bstatic', '-lbpf', '-Wl,-Bdynamic', '-lelf', '-lz',
  ];
}

/** Whether vmlinux.h must be made again: missing, made from another image, or older than it. */
export function headerStale(header: string, stamp: string | null, btfSource: string, mtimeMs: (p: string) => number | null): boolean {
  const made = mtimeMs(header);
  const source = mtimeMs(btfSource);
  return made === null || stamp !== btfSource || source === null || source > made;
}

function mtimeOrNull(p: string): number | null {
  try {
    return statSync(p).mtimeMs;
  } catch {
    return null;
  }
}

async function run(tool: string, args: readonly string[], what: string): Promise<string> {
  const r = await execa(tool, args, { all: true, reject: false, maxBuffer: 256 * 1024 * 1024 });
  if (r.exitCode !== 0) throw new Error(`${what} failed (${tool} exited with ${String(r.exitCode ?? r.signal)}):\n${r.all}`);
  if (/\bwarning\b/i.test(r.stderr)) throw new Error(`${what}: warnings:\n${r.stderr}`);
  return r.stdout;
}

function requireTool(name: string, pkg: string): string {
  const tool = findTool(name);
  if (!tool) throw new Error(`${name} is missing: install ${pkg} (test/setup-host.sh does)`);
  return tool;
}

export interface TapsBuildOptions {
  /** A kernel image (an ELF vmlinux with .BTF, or /sys/kernel/btf/vmlinux) to make vmlinux.h from; default: the cached 6.1 guest kernel's vmlinux. */
  btf?: string;
  /** Skip checkpatch (it needs the kernel cache's checkpatch.pl). */
  skipCheckpatch?: boolean;
}

/** Builds bpf/libbpf/ into bpf/libbpf/build/; returns where everything is. */
export async function buildTaps(log: Log, opts: TapsBuildOptions = {}): Promise<TapsBuild> {
  const btfSource = opts.btf ?? (await currentKernel('6.1')).vmlinux;
  if (!existsSync(btfSource)) throw new Error(`${btfSource} is missing: run \`npm run kernel\` to fill the guest kernel cache`);
  const bpftool = requireTool('bpftool', 'bpftool');
  const clang = requireTool('clang', 'clang');
  const cc = requireTool('cc', 'gcc');
  if (!existsSync('/usr/include/bpf/libbpf.h')) throw new Error('/usr/include/bpf/libbpf.h is missing: install libbpf-dev (test/setup-host.sh does)');
  const out = tapsOutputs();
  await mkdir(out.dir, { recursive: true });
  const started = performance.now();

  const header = join(out.dir, 'vmlinux.h');
  const stampFile = join(out.dir, 'vmlinux.h.source');
  const stamp = existsSync(stampFile) ? (await readFile(stampFile, 'utf8')).trim() : null;
  if (headerStale(header, stamp, btfSource, mtimeOrNull)) {
    log(`vmlinux.h from the BTF of ${btfSource}`);
    const text = await run(bpftool, vmlinuxHeaderArgv(btfSource), 'bpftool btf dump');
    // Written whole, then renamed: an interrupted build leaves no half header behind.
    await writeFile(`${header}.tmp`, text);
    await rename(`${header}.tmp`, header);
    await writeFile(stampFile, `${btfSource}\n`);
  }
  const includes = [out.dir, TAPS_SOURCE_DIR];
  if (Object.keys(out.objects).length === 0) throw new Error(`no NAME.bpf.c in ${TAPS_SOURCE_DIR}`);
  for (const [name, object] of Object.entries(out.objects)) {
    const unlinked = join(out.dir, `${name}.unlinked.o`);
    await run(clang, bpfCompileArgv(join(TAPS_SOURCE_DIR, `${name}.bpf.c`), unlinked, includes), `compiling ${name}.bpf.c`);
    await run(bpftool, ['gen', 'object', object, unlinked], `bpftool gen object ${name}`);
    log(`built ${object}`);
  }
  await run(cc, loaderLinkArgv(LOADER_SOURCES.map((f) => join(TAPS_SOURCE_DIR, f)), out.loader, includes), 'building taps-loader');
  log(`built ${out.loader} in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  for (const series of await cachedSeries()) {
    for (const object of Object.values(out.objects)) {
      const check = await checkObjectCore({ bpftool, clang }, object, series);
      const absent = check.relocations.filter((r) => r.target === null).length;
      log(`CO-RE: ${basename(object)}: ${check.relocations.length - absent} of ${check.relocations.length} relocations land on ${check.kernel}'s BTF${absent ? ` (${absent} on a field tested first, absent there)` : ''}`);
    }
  }
  if (!opts.skipCheckpatch) {
    const check = await checkpatchDir(TAPS_SOURCE_DIR);
    log(`checkpatch --strict --no-tree: clean in ${check.files.length} files (${check.lines} lines)`);
  }
  return { ...out, btfSource };
}
