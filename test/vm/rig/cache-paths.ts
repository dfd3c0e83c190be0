// Where the guest rig keeps what it downloads and builds: outside the git tree
// so a fresh clone (and CI on the same machine) reuses it, and on the root
// filesystem so the guest, which mounts the host root, sees it at the same path.
import { homedir } from 'node:os';
import { join } from 'node:path';

export function cacheRoot(): string {
  const explicit = process.env['SHADOWD_GUEST_CACHE'];
  if (explicit) return explicit;
  const xdg = process.env['XDG_CACHE_HOME'] ?? join(homedir(), '.cache');
  return join(xdg, 'shadowd', 'guest');
}

export interface KernelPaths {
  /** Kernel release, e.g. 6.1.0-56-amd64. */
  kver: string;
  /** Folder the Debian packages were unpacked into (holds lib/, usr/, boot/). */
  root: string;
  /** Uncompressed kernel for a fast PVH boot. */
  vmlinux: string;
  /** The headers tree to pass to `make -C` for out-of-tree modules. */
  headers: string;
  /** Modules folder, /lib/modules/KVER inside the unpacked tree. */
  modules: string;
  /** checkpatch.pl extracted from the linux-source tarball. */
  checkpatch: string;
}

export function kernelPaths(kver: string, base = cacheRoot()): KernelPaths {
  const root = join(base, kver, 'root');
  return {
    kver,
    root,
    vmlinux: join(base, kver, 'vmlinux'),
    headers: join(root, 'usr', 'src', `linux-headers-${kver}`),
    modules: join(root, 'lib', 'modules', kver),
    checkpatch: join(base, 'linux-source', 'scripts', 'checkpatch.pl'),
  };
}

/** The file that names the kernel release the cache was last filled for. */
export function currentKernelFile(base = cacheRoot()): string {
  return join(base, 'current-kver');
}
