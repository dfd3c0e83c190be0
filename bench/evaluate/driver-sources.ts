// Which source files make a driver module, found the way kbuild finds them:
// the module's .ko sits in the guest kernel's modules tree at the path of its
// source folder; that folder's Makefile lists the module's objects
// (`NAME-objs`, `NAME-y`, `NAME-$(CONFIG_...)`), or the module is one file
// NAME.c. The headers counted with it are the local ones its files include
// ("x.h" in the same folder), followed through the headers themselves. Only
// the folder's own files are read, so one tar pass over the Debian source
// tarball extracts everything a list of drivers needs.
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, posix } from 'node:path';

/** A module's folder in the source tree (relative), from its .ko path relative to /lib/modules/KVER/kernel. */
export function moduleFolder(koRelPath: string): string {
  return posix.dirname(koRelPath);
}

/** Finds NAME.ko (or .ko.xz / .ko.zst) under a modules tree; '-' and '_' in NAME are the same, as modprobe has it. Returns the path relative to `kernel/`. */
export function findModule(modulesDir: string, name: string): string | null {
  const want = name.replace(/-/g, '_');
  const kernelDir = join(modulesDir, 'kernel');
  const walk = (rel: string): string | null => {
    for (const e of readdirSync(join(kernelDir, rel), { withFileTypes: true })) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (e.isDirectory()) {
        const found = walk(r);
        if (found) return found;
      } else if (/\.ko(\.xz|\.zst|\.gz)?$/.test(e.name) && e.name.replace(/\.ko(\..*)?$/, '').replace(/-/g, '_') === want) {
        return r;
      }
    }
    return null;
  };
  return existsSync(kernelDir) ? walk('') : null;
}

/** The object name kbuild knows a module by: the .ko's base name. */
export function objectName(koRelPath: string): string {
  return posix.basename(koRelPath).replace(/\.ko(\..*)?$/, '');
}

/** The .o files a Makefile assigns to a composite object (empty: the object is one source file). */
export function compositeObjects(makefile: string, object: string): string[] {
  const joined = makefile.replace(/\\\n/g, ' ');
  const esc = object.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const assign = new RegExp(`^\\s*${esc}-(?:objs|y|\\$\\(CONFIG_[A-Z0-9_]+\\))\\s*[:+]?=(.*)$`, 'gm');
  const objs: string[] = [];
  for (const m of joined.matchAll(assign)) {
    for (const word of m[1]!.trim().split(/\s+/)) if (word.endsWith('.o') && !objs.includes(word)) objs.push(word);
  }
  return objs;
}

/** The local headers ("x.h", same folder) a file includes. */
export function localIncludes(text: string): string[] {
  return [...text.matchAll(/^\s*#\s*include\s+"([^"/]+\.h)"/gm)].map((m) => m[1]!);
}

/**
 * The source files of the module `object` in `folder` (an extracted source
 * folder): its .c files and the local headers they include, folder-relative
 * names, sorted. Throws when the folder has none of them.
 */
export function moduleSources(folder: string, object: string): string[] {
  const makefile = join(folder, 'Makefile');
  const objs = existsSync(makefile) ? compositeObjects(readFileSync(makefile, 'utf8'), object) : [];
  const sources = (objs.length > 0 ? objs : [`${object}.o`]).map((o) => o.replace(/\.o$/, '.c')).filter((c) => existsSync(join(folder, c)));
  if (sources.length === 0) throw new Error(`${folder}: no source file of module ${object} (Makefile objects: ${objs.join(' ') || 'none'})`);
  const files = new Set(sources);
  const queue = [...sources];
  for (let f = queue.shift(); f !== undefined; f = queue.shift()) {
    for (const h of localIncludes(readFileSync(join(folder, f), 'utf8'))) {
      if (!files.has(h) && existsSync(join(folder, h))) {
        files.add(h);
        queue.push(h);
      }
    }
  }
  return [...files].sort();
}
