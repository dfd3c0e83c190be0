// Builds out-of-tree modules on the host against the cached headers of the
// guest kernel (the host kernel cannot load modules; the guest loads what is
// built here), holds kmod/ to the kernel's own checkpatch.pl --strict, and
// keeps the helper's generic core free of network identifiers. Modules for
// the default 6.1 kernel are built in place; for 6.12 in a copy of their
// sources in the kernel's cache folder (moduleBuildDir).
import { existsSync } from 'node:fs';
import { copyFile, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { moduleBuildDir, type KernelPaths, type KernelSeries } from './cache-paths.js';
import { currentKernel } from './guest.js';
import { repoPath } from './repo-path.js';

type Log = (line: string) => void;

export const HELPER_MODULE = 'shadow_helper';

export function kmodDir(): string {
  return repoPath('kmod');
}

export interface BuildOptions {
  /** Build with W=1 (the kernel's extra warnings; they are errors under -Werror). */
  extraWarnings?: boolean;
  /** The kernel series to build for. Default: SHADOWD_GUEST_KERNEL, else 6.1. */
  kernel?: KernelSeries;
}

/** What kbuild writes into a module's folder (objects, modpost's output, hidden .cmd files). */
const BUILD_OUTPUT = /^\.|\.(o|ko|mod|mod\.c|a|cmd|symvers|order|dwo)$|^Module\.symvers$|^modules\.order$/;

/** The module's sources: every file of its folder that the build does not write (C, headers, Makefile and its fragments). */
async function moduleSources(dir: string): Promise<string[]> {
  return (await readdir(dir, { withFileTypes: true })).filter((e) => e.isFile() && !BUILD_OUTPUT.test(e.name)).map((e) => e.name);
}

/**
 * Brings the sources of `src` into the build copy `dest`: files whose
 * contents changed are copied (the others keep their times, so make rebuilds
 * only what changed), sources gone from `src` are removed.
 */
async function syncSources(src: string, dest: string): Promise<void> {
  await mkdir(dest, { recursive: true });
  const wanted = await moduleSources(src);
  for (const f of wanted) {
    const from = join(src, f);
    const to = join(dest, f);
    if (existsSync(to) && (await readFile(from)).equals(await readFile(to))) continue;
    await copyFile(from, to);
  }
  for (const f of await moduleSources(dest)) {
    if (!wanted.includes(f)) await rm(join(dest, f));
  }
}

/**
 * Builds the out-of-tree module `name` from the sources in `dir` for the
 * cached guest kernel (in `dir` itself for 6.1, in a copy under the kernel's
 * cache folder for 6.12); returns the .ko path.
 */
export async function buildModule(dir: string, name: string, log: Log, opts: BuildOptions = {}): Promise<string> {
  const kernel = await currentKernel(opts.kernel);
  if (!existsSync(join(kernel.headers, 'Makefile'))) {
    throw new Error(`${kernel.headers} has no Makefile: run \`npm run kernel\` to fill the guest kernel cache`);
  }
  const buildDir = moduleBuildDir(dir, kernel.kver);
  if (buildDir !== dir) await syncSources(dir, buildDir);
  return makeModule(buildDir, name, kernel, log, opts);
}

async function makeModule(dir: string, name: string, kernel: KernelPaths, log: Log, opts: BuildOptions): Promise<string> {
  const ko = join(dir, `${name}.ko`);
  log(`building ${dir} against the ${kernel.kver} headers`);
  const started = performance.now();
  const args = ['-C', dir, `KDIR=${kernel.headers}`, ...(opts.extraWarnings ? ['W=1'] : [])];
  const make = await execa('make', args, { all: true, reject: false });
  if (make.exitCode !== 0) {
    throw new Error(`building ${name}.ko failed (make exited with ${String(make.exitCode ?? make.signal)}):\n${make.all}`);
  }
  // -Werror covers the compiler; modpost only warns, and its warnings matter too.
  const warnings = make.all.split('\n').filter((l) => /\bwarning\b/i.test(l));
  if (warnings.length > 0) throw new Error(`${name}.ko built with warnings:\n${warnings.join('\n')}\n\n${make.all}`);
  if (!existsSync(ko)) throw new Error(`make succeeded but ${ko} is missing:\n${make.all}`);
  // A module built against the wrong headers would only fail later, at insmod in the guest.
  const { stdout: vermagic } = await execa('modinfo', ['-F', 'vermagic', ko]);
  if (vermagic.split(' ')[0] !== kernel.kver) {
    throw new Error(`${ko} was built for "${vermagic}", not for the guest kernel ${kernel.kver}`);
  }
  log(`built ${ko} (vermagic ${vermagic.trim()}) in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return ko;
}

/**
 * Runs kmod/check-class-boundary.sh: no network identifier outside the
 * network class's own files (sh_net*). Throws with the offending lines.
 */
export async function checkClassBoundary(): Promise<string> {
  const run = await execa(join(kmodDir(), 'check-class-boundary.sh'), [kmodDir()], { all: true, reject: false });
  if (run.exitCode !== 0) throw new Error(`kmod/check-class-boundary.sh failed (exit ${String(run.exitCode)}):\n${run.all}`);
  return run.stdout.trim();
}

/** Checks kmod/'s class boundary, then builds it (W=1, warnings are errors) for the cached guest kernel; returns the .ko path. */
export async function buildHelperModule(log: Log, kernel?: KernelSeries): Promise<string> {
  log(await checkClassBoundary());
  return buildModule(kmodDir(), HELPER_MODULE, log, { extraWarnings: true, kernel });
}

export interface CheckpatchResult {
  files: string[];
  lines: number;
}

/** Every folder of the project that holds kernel C, all held to the kernel's style. */
export const KERNEL_C_DIRS = ['kmod', 'test/vm/fault-fixture'];

/** Runs checkpatch.pl --strict --no-tree on DIR's *.c and *.h; throws with its output on any finding. */
export async function checkpatchDir(dir: string): Promise<CheckpatchResult> {
  // checkpatch.pl comes from the 6.1 source whichever kernel is built for.
  const kernel = await currentKernel('6.1');
  if (!existsSync(kernel.checkpatch)) {
    throw new Error(`${kernel.checkpatch} is missing: run \`npm run kernel\` to extract it`);
  }
  // *.mod.c is generated by modpost and not ours to style-check.
  const files = (await readdir(dir))
    .filter((f) => /\.[ch]$/.test(f) && !f.endsWith('.mod.c'))
    .sort()
    .map((f) => join(dir, f));
  if (files.length === 0) throw new Error(`no C sources in ${dir}`);
  const run = await execa('perl', [kernel.checkpatch, '--strict', '--no-tree', '--color=never', '-f', ...files], {
    all: true,
    reject: false,
  });
  const totals = [...run.all.matchAll(/^total: (\d+) errors, (\d+) warnings, (?:(\d+) checks, )?(\d+) lines checked$/gm)];
  const clean =
    run.exitCode === 0 &&
    totals.length === files.length &&
    totals.every((t) => t[1] === '0' && t[2] === '0' && (t[3] ?? '0') === '0');
  if (!clean) throw new Error(`checkpatch --strict found problems in ${dir} (exit ${String(run.exitCode)}):\n${run.all}`);
  return { files, lines: totals.reduce((sum, t) => sum + Number(t[4]), 0) };
}
