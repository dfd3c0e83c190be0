// Checks on the host, without a guest, that every CO-RE read of a class's
// tap object resolves against each cached guest kernel (6.1 and 6.12): libbpf
// relocates the reads at load time against the kernel's BTF and, for a class
// whose functions are in modules (the sound class: snd, snd_pcm), against
// the modules' BTF. `bpftool gen min_core_btf` runs the same relocation
// (libbpf's own code) against a BTF file and says, at debug level, which
// field each read lands on, or that it found none.
//
// The target BTF: the kernel image itself for a class without modules; for
// one with modules, the C dump (`bpftool btf -B vmlinux dump file M.ko
// format c`) of the last of its tapModules (the one that needs the others:
// its BTF has every type it shares with them, snd_pcm's has snd_card),
// compiled again with clang -g with one variable of each struct the object
// reads, so that the BTF holds each of them whole. The kernel itself
// relocates against every loaded module's BTF; this check reads one.
import { existsSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { CLASSES } from '../../../daemon/classes/registry.js';
import { KERNEL_SERIES, type KernelSeries } from './cache-paths.js';
import { currentKernel } from './guest.js';

/** The modules a class object's programs and reads are in: its class's tapModules (by the .bt it replaces: NAME.bpf.o for bpf/NAME.bt). */
export function objectModules(object: string): readonly string[] {
  return CLASSES.find((c) => basename(c.tapProgram) === `${object}.bt`)?.tapModules ?? [];
}

export interface Relocation {
  /** The object's program (its section). */
  program: string;
  /** libbpf's kind: byte_off for a read, field_exists for a bpf_core_field_exists() test, ... */
  kind: string;
  /** The read as the object has it: `struct snd_pcm_substream___sd.pcm`. */
  local: string;
  /** Where it landed in the kernel's type, `struct snd_pcm_substream.pcm (0:0 @ offset 0)`; null: nowhere. */
  target: string | null;
}

/** The relocations of libbpf's debug output (`bpftool -d gen min_core_btf`): each read and what it matched. */
export function parseRelocations(log: string): Relocation[] {
  const found = new Map<string, Relocation>();
  for (const m of log.matchAll(/^libbpf: prog '([^']+)': relo #(\d+): (.*)$/gm)) {
    const [, program, n, rest] = m as unknown as [string, string, string, string];
    const key = `${program}#${n}`;
    const local = /^<(\w+)> \[\d+\] (.*?) \(/.exec(rest);
    if (local && !found.has(key)) found.set(key, { program, kind: local[1]!, local: local[2]!, target: null });
    const match = /^matching candidate #\d+ <\w+> \[\d+\] (.*)$/.exec(rest);
    const entry = found.get(key);
    if (match && entry && entry.target === null) entry.target = match[1]!;
  }
  return [...found.values()];
}

/** The kernel structs an object reads (their local names less any ___flavour). */
export function structsRead(relocations: readonly Relocation[]): string[] {
  return [...new Set(relocations.flatMap((r) => /^struct (\w+?)(?:___\w+)?\./.exec(r.local)?.[1] ?? []))].sort();
}

/** The C file that makes a target BTF from a module's dump: the dump, then one variable of each struct read that it defines. */
export function targetSource(dumpFile: string, dump: string, structs: readonly string[]): string {
  const defined = structs.filter((s) => new RegExp(`^struct ${s} \\{`, 'm').test(dump));
  return [`#include "${dumpFile}"`, ...defined.map((s, i) => `struct ${s} shadowd_core_check_${i};`), ''].join('\n');
}

async function moduleFile(modulesDir: string, name: string, dir: string): Promise<string> {
  const want = new Set([`${name}.ko`, `${name}.ko.xz`, `${name.replace(/-/g, '_')}.ko`, `${name.replace(/-/g, '_')}.ko.xz`]);
  const walk = (d: string): string | null => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      const p = join(d, e.name);
      if (e.isDirectory()) {
        const hit = walk(p);
        if (hit) return hit;
      } else if (want.has(e.name)) return p;
    }
    return null;
  };
  const found = walk(join(modulesDir, 'kernel'));
  if (!found) throw new Error(`no ${name}.ko under ${modulesDir}`);
  if (!found.endsWith('.xz')) return found;
  const plain = join(dir, `${name}.ko`);
  await writeFile(plain, (await execa('xz', ['-dc', found], { encoding: 'buffer' })).stdout);
  return plain;
}

async function minCoreBtf(bpftool: string, target: string, object: string, dir: string): Promise<Relocation[]> {
  const r = await execa(bpftool, ['-d', 'gen', 'min_core_btf', target, join(dir, 'min.btf'), object], { all: true, reject: false });
  if (r.exitCode !== 0) throw new Error(`bpftool gen min_core_btf ${target} failed:\n${r.all.split('\n').filter((l) => !l.startsWith('libbpf: ')).join('\n')}`);
  return parseRelocations(r.all);
}

/**
 * The reads that land on no field and are not guarded: a field this kernel
 * lacks is fine where the program tests it first (bpf_core_field_exists:
 * block-class.bpf.c's kernfs_node.__parent of 6.15), since libbpf then
 * leaves the read unreached.
 */
export function unresolved(relocations: readonly Relocation[]): Relocation[] {
  const guarded = (r: Relocation): boolean => relocations.some((g) => g.kind === 'field_exists' && g.program === r.program && g.local === r.local);
  return relocations.filter((r) => r.target === null && r.kind !== 'field_exists' && !guarded(r));
}

export interface CoreCheck {
  kernel: string;
  object: string;
  relocations: Relocation[];
}

/** Resolves every CO-RE read of the object against one kernel (and its class's modules); throws naming the reads that land nowhere. */
export async function checkObjectCore(tools: { bpftool: string; clang: string }, object: string, series: KernelSeries): Promise<CoreCheck> {
  const kernel = await currentKernel(series);
  const dir = await mkdtemp(join(tmpdir(), 'shadowd-core-check-'));
  try {
    const name = basename(object).replace(/\.bpf\.o$/, '');
    const modules = objectModules(name);
    // The reads, as the object has them: a first pass against the kernel image alone.
    let relocations = await minCoreBtf(tools.bpftool, kernel.vmlinux, object, dir);
    const last = modules.at(-1);
    if (last) {
      const ko = await moduleFile(kernel.modules, last, dir);
      const dump = (await execa(tools.bpftool, ['btf', '-B', kernel.vmlinux, 'dump', 'file', ko, 'format', 'c'], { maxBuffer: 512 * 1024 * 1024 })).stdout;
      await writeFile(join(dir, 'module.h'), dump);
      await writeFile(join(dir, 'target.c'), targetSource('module.h', dump, structsRead(relocations)));
      await execa(tools.clang, ['-g', '-O2', '-target', 'bpf', '-c', join(dir, 'target.c'), '-o', join(dir, 'target.o')]);
      relocations = await minCoreBtf(tools.bpftool, join(dir, 'target.o'), object, dir);
    }
    const lost = unresolved(relocations);
    if (relocations.length === 0) throw new Error(`${object}: no CO-RE relocation found in bpftool's output`);
    if (lost.length > 0) {
      throw new Error(`${object} on ${kernel.kver}${last ? ` with ${last}` : ''}: reads that land on no field:\n${lost.map((r) => `  ${r.program}: ${r.local}`).join('\n')}`);
    }
    return { kernel: kernel.kver, object, relocations };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The guest kernels' series `npm run kernel` has cached; a series not cached is left out. */
export async function cachedSeries(): Promise<KernelSeries[]> {
  const cached = await Promise.all(KERNEL_SERIES.map((s) => currentKernel(s).then((k) => existsSync(k.vmlinux), () => false)));
  return KERNEL_SERIES.filter((_, i) => cached[i]);
}
