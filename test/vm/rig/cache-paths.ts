// Where the guest rig keeps what it downloads and builds: outside the git tree
// so a fresh clone (and CI on the same machine) reuses it, and on the root
// filesystem so the guest, which mounts the host root, sees it at the same path.
// The rig caches two Debian kernel series side by side (6.1, the default, and
// 6.12 LTS); SHADOWD_GUEST_KERNEL picks the one guests boot and modules build for.
import { homedir } from 'node:os';
import { isAbsolute, join, relative } from 'node:path';
import { REPO_ROOT } from './repo-path.js';

export function cacheRoot(): string {
  const explicit = process.env['SHADOWD_GUEST_CACHE'];
  if (explicit) return explicit;
  const xdg = process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache');
  return join(xdg, 'shadowd', 'guest');
}

/** The Debian kernel series the rig can cache and boot. */
export const KERNEL_SERIES = ['6.1', '6.12'] as const;
export type KernelSeries = (typeof KERNEL_SERIES)[number];
/** What guests boot unless SHADOWD_GUEST_KERNEL says otherwise. */
export const DEFAULT_KERNEL_SERIES: KernelSeries = '6.1';
/** The environment variable that selects the guest kernel series. */
export const KERNEL_SERIES_ENV = 'SHADOWD_GUEST_KERNEL';

export function isKernelSeries(s: string): s is KernelSeries {
  return (KERNEL_SERIES as readonly string[]).includes(s);
}

/** The series SHADOWD_GUEST_KERNEL selects (6.1 when unset or empty); throws on anything else. */
export function selectedKernelSeries(env: NodeJS.ProcessEnv = process.env): KernelSeries {
  const value = env[KERNEL_SERIES_ENV]?.trim();
  if (!value) return DEFAULT_KERNEL_SERIES;
  if (!isKernelSeries(value)) {
    throw new Error(`${KERNEL_SERIES_ENV}=${value}: the rig knows the guest kernels ${KERNEL_SERIES.join(' and ')}`);
  }
  return value;
}

/** The series of a kernel release: 6.1.0-57-amd64 → 6.1, 6.12.118+deb12-amd64 → 6.12. */
export function seriesOf(kver: string): KernelSeries {
  const m = /^(\d+\.\d+)\./.exec(kver);
  if (!m?.[1] || !isKernelSeries(m[1])) throw new Error(`${kver} is not a release of the ${KERNEL_SERIES.join(' or ')} series`);
  return m[1];
}

/**
 * The linux-kbuild package (and its folder under /usr/lib) of a release:
 * Debian's 6.1 ABI names (6.1.0-57-amd64) share linux-kbuild-6.1; the newer
 * names (6.12.118+deb12-amd64) have one per upload, linux-kbuild-6.12.118+deb12.
 */
export function kbuildPackage(kver: string): string {
  const old = /^(\d+\.\d+)\.0-\d+-amd64$/.exec(kver);
  if (old?.[1]) return `linux-kbuild-${old[1]}`;
  return `linux-kbuild-${kver.replace(/-amd64$/, '')}`;
}

export interface KernelPaths {
  /** Kernel release, e.g. 6.1.0-56-amd64. */
  kver: string;
  /** Its series, 6.1 or 6.12. */
  series: KernelSeries;
  /** Folder the Debian packages were unpacked into (holds lib/, usr/, boot/). */
  root: string;
  /** Uncompressed kernel for a fast PVH boot. */
  vmlinux: string;
  /** The headers tree to pass to `make -C` for out-of-tree modules. */
  headers: string;
  /** The kbuild tools the headers' scripts point at, /usr/lib/linux-kbuild-* inside the unpacked tree. */
  kbuild: string;
  /** Modules folder, /lib/modules/KVER inside the unpacked tree. */
  modules: string;
  /** checkpatch.pl extracted from the linux-source tarball. */
  checkpatch: string;
}

export function kernelPaths(kver: string, base = cacheRoot()): KernelPaths {
  const root = join(base, kver, 'root');
  return {
    kver,
    series: seriesOf(kver),
    root,
    vmlinux: join(base, kver, 'vmlinux'),
    headers: join(root, 'usr', 'src', `linux-headers-${kver}`),
    kbuild: join(root, 'usr', 'lib', kbuildPackage(kver)),
    modules: join(root, 'lib', 'modules', kver),
    checkpatch: join(base, 'linux-source', 'scripts', 'checkpatch.pl'),
  };
}

/** The file that names the kernel release of a series the cache was last filled for. */
export function currentKernelFile(base = cacheRoot(), series: KernelSeries = DEFAULT_KERNEL_SERIES): string {
  // 6.1 keeps the name it had before the rig knew two series.
  return join(base, series === DEFAULT_KERNEL_SERIES ? 'current-kver' : `current-kver-${series}`);
}

/**
 * Where an out-of-tree module of the repository (its source folder `srcDir`:
 * kmod, test/vm/fault-fixture) is built for a kernel: in place for the
 * default series, as always; for another series in a copy of its sources
 * under that kernel's cache folder (KVER/kmod-build/<folder in the repo>), so
 * that the two builds never overwrite each other's objects and .ko.
 */
export function moduleBuildDir(srcDir: string, kver: string, base = cacheRoot()): string {
  if (seriesOf(kver) === DEFAULT_KERNEL_SERIES) return srcDir;
  const inRepo = relative(REPO_ROOT, srcDir);
  if (inRepo === '' || inRepo.startsWith('..') || isAbsolute(inRepo)) throw new Error(`${srcDir} is not a folder of the repository ${REPO_ROOT}`);
  return join(base, kver, 'kmod-build', inRepo);
}
