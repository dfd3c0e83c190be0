// The kernel modules shadowd needs loaded: the helper and every class's tap
// modules (ClassDeclaration.tapModules). The service cannot load modules
// (systemd/shadowd.service drops CAP_SYS_MODULE and the module system calls:
// with them the daemon could load the helper again with allow_faults=1), so
// scripts/install.sh lists them in /etc/modules-load.d/shadowd.conf and loads
// them once; the daemon only checks, and tries modprobe for what is missing
// (which works when it runs as root outside the unit).
import { readFile, stat } from 'node:fs/promises';
import { release } from 'node:os';
import type { ClassDeclaration } from './device-class.js';
import { runProgram } from './run-program.js';

/** The helper module's name. */
export const HELPER_MODULE = 'shadow_helper';
/** Where install.sh lists the modules loaded at boot. */
export const MODULES_LOAD_FILE = '/etc/modules-load.d/shadowd.conf';

/** The modules to load at boot: the helper, then every class's tap modules, each once. */
export function bootModules(classes: readonly Pick<ClassDeclaration, 'tapModules'>[]): string[] {
  return [...new Set([HELPER_MODULE, ...classes.flatMap((c) => c.tapModules ?? [])])];
}

/** A module's name as the kernel spells it (/sys/module, modules.builtin): '-' is '_'. */
export function kernelModuleName(name: string): string {
  return name.replaceAll('-', '_');
}

export interface ModuleCheckOptions {
  /** Default /sys/module. */
  sysModule?: string;
  /** modules.builtin of the running kernel; default /lib/modules/$(uname -r)/modules.builtin. */
  modulesBuiltin?: string;
  /** Loads modules; default `modprobe -a`. Rejects with the reason. */
  modprobe?: (modules: readonly string[]) => Promise<void>;
}

/**
 * The modules of `modules` that are neither loaded (/sys/module/NAME) nor
 * built into the kernel (modules.builtin: a built-in module without
 * parameters has no /sys/module entry).
 */
export async function missingModules(modules: readonly string[], opts: ModuleCheckOptions = {}): Promise<string[]> {
  const sys = opts.sysModule ?? '/sys/module';
  let builtin: Set<string> | null = null;
  const missing: string[] = [];
  for (const m of modules) {
    const k = kernelModuleName(m);
    if (await stat(`${sys}/${k}`).then(() => true, () => false)) continue;
    builtin ??= await readFile(opts.modulesBuiltin ?? `/lib/modules/${release()}/modules.builtin`, 'utf8').then(
      (text) => new Set(text.split('\n').map((l) => kernelModuleName(l.slice(l.lastIndexOf('/') + 1).replace(/\.ko$/, '')))),
      // Unreadable (the unit's ProtectKernelModules= hides /lib/modules): /sys/module says it all.
      () => new Set<string>(),
    );
    if (!builtin.has(k)) missing.push(m);
  }
  return missing;
}

/**
 * Makes sure the modules are loaded: checks /sys/module first and runs
 * modprobe for the missing ones only. Rejects naming what is missing and how
 * to load it.
 */
export async function ensureModules(modules: readonly string[], opts: ModuleCheckOptions = {}): Promise<void> {
  const missing = await missingModules(modules, opts);
  if (missing.length === 0) return;
  const load = opts.modprobe ?? modprobe;
  const why = await load(missing).then(
    () => null,
    (err: unknown) => (err instanceof Error ? err.message : String(err)),
  );
  const still = why === null ? await missingModules(missing, opts) : missing;
  if (still.length === 0) return;
  throw new Error(
    `kernel module${still.length > 1 ? 's' : ''} ${still.join(', ')} ${still.length > 1 ? 'are' : 'is'} not loaded` +
      ` and shadowd could not load ${still.length > 1 ? 'them' : 'it'} (${why ?? `modprobe succeeded but /sys/module does not list ${still.length > 1 ? 'them' : 'it'}`}):` +
      ` load ${still.length > 1 ? 'them' : 'it'} with \`modprobe -a ${still.join(' ')}\`, and at boot by listing ${still.length > 1 ? 'them' : 'it'} in ${MODULES_LOAD_FILE}` +
      ` (scripts/install.sh does; the service itself may not load modules)`,
  );
}

async function modprobe(modules: readonly string[]): Promise<void> {
  const r = await runProgram('modprobe', ['-a', ...modules]);
  if (r.exitCode !== 0) throw new Error(`modprobe -a ${modules.join(' ')}: ${r.stderr.trim() || `exit status ${String(r.exitCode)}`}`);
}
