// Which program runs the taps. bpftrace compiles every class's .bt program
// at each start (most of the daemon's start-up time under emulation, and
// about 120 MB); taps-loader runs the same taps precompiled as CO-RE BPF
// objects (bpf/libbpf/, `npm run build:taps`) in a fraction of the time and
// memory, and prints the same records. A class's object sits beside its
// program: bpf/NAME.bt is built into bpf/libbpf/build/NAME.bpf.o, with the
// loader in the same folder.
//
// `auto` (the default) runs the loader when it and every class's object are
// there, else bpftrace, and says which and why (and runs bpftrace after all
// if the loader cannot attach them: an object the kernel refuses, a missing
// library); `libbpf` requires them; `bpftrace` ignores them.
import { existsSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { ClassDeclaration } from './device-class.js';

export type TapEngineChoice = 'auto' | 'bpftrace' | 'libbpf';
export const TAP_ENGINES: readonly TapEngineChoice[] = ['auto', 'bpftrace', 'libbpf'];

/** taps-loader and each class's object, by class id. */
export interface PrecompiledTaps {
  loader: string;
  objects: Map<string, string>;
  /** Run bpftrace instead if the loader cannot attach them (auto); libbpf fails the start. */
  fallback: boolean;
}

/** The engine the taps run under, and why (for the start-up log). */
export type TapEngine = { kind: 'bpftrace'; why: string } | { kind: 'libbpf'; taps: PrecompiledTaps; why: string };

/** Where `npm run build:taps` puts what it builds from the programs beside `decl`'s: bpf/libbpf/build/. */
const buildDirOf = (decl: Pick<ClassDeclaration, 'tapProgram'>): string => join(dirname(decl.tapProgram), 'libbpf', 'build');

/** Where a class's precompiled object is: bpf/libbpf/build/NAME.bpf.o for bpf/NAME.bt. */
export function objectOf(decl: Pick<ClassDeclaration, 'tapProgram'>): string {
  return join(buildDirOf(decl), `${basename(decl.tapProgram, '.bt')}.bpf.o`);
}

/** Where taps-loader is, beside the objects of the classes' programs. */
export function loaderOf(decl: Pick<ClassDeclaration, 'tapProgram'>): string {
  return join(buildDirOf(decl), 'taps-loader');
}

/**
 * The engine for `choice`. Throws for `libbpf` when the loader or an
 * object is missing, naming what and how to build it.
 */
export function chooseTapEngine(classes: readonly Pick<ClassDeclaration, 'id' | 'tapProgram'>[], choice: TapEngineChoice, exists: (path: string) => boolean = existsSync): TapEngine {
  if (choice === 'bpftrace') return { kind: 'bpftrace', why: 'as configured (--taps bpftrace)' };
  const first = classes[0];
  const missing: string[] = [];
  const objects = new Map<string, string>();
  const loader = first ? loaderOf(first) : '';
  if (first && !exists(loader)) missing.push(loader);
  for (const c of classes) {
    const o = objectOf(c);
    if (exists(o)) objects.set(c.id, o);
    else missing.push(`${o} (the ${c.id} class)`);
  }
  if (!first) missing.push('no class has taps');
  if (missing.length === 0) return { kind: 'libbpf', taps: { loader, objects, fallback: choice === 'auto' }, why: `precompiled objects ${[...objects.values()].map((o) => basename(o)).join(', ')}` };
  const why = `no precompiled taps: ${missing.join(', ')} missing (npm run build:taps builds them)`;
  if (choice === 'libbpf') throw new Error(`--taps libbpf: ${why}`);
  return { kind: 'bpftrace', why };
}
