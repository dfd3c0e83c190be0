// Fills the guest kernel cache: Debian's current 6.1 kernel image, its headers
// and kbuild, unpacked without touching the host's /boot or /lib/modules, plus
// the uncompressed vmlinux for a fast boot and checkpatch.pl for kmod/.
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { cacheRoot, currentKernelFile, kernelPaths, type KernelPaths } from './cache-paths.js';

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const LINUX_SOURCE_TARBALL = '/usr/src/linux-source-6.1.tar.xz';
const CHECKPATCH_FILES = ['scripts/checkpatch.pl', 'scripts/spelling.txt', 'scripts/const_structs.checkpatch'];
const DONE_STAMP = 'complete';

type Log = (line: string) => void;

/** Resolves the ABI name the linux-image-amd64 metapackage currently points at. */
export async function resolveKernelRelease(): Promise<string> {
  const { stdout } = await execa('apt-cache', ['depends', 'linux-image-amd64']);
  const match = /Depends:\s+linux-image-(6\.1\.\d+-\d+-amd64)\b/.exec(stdout);
  if (!match?.[1]) {
    throw new Error(
      'cannot resolve the Debian 6.1 kernel: `apt-cache depends linux-image-amd64` names no ' +
        'linux-image-6.1.x-NN-amd64 package (run `apt-get update` first, on Debian 12)',
    );
  }
  return match[1];
}

/** The packages that make up one bootable kernel plus what builds modules for it. */
export function kernelPackages(kver: string): string[] {
  const abi = kver.replace(/-amd64$/, '');
  return [`linux-image-${kver}`, `linux-headers-${kver}`, `linux-headers-${abi}-common`, 'linux-kbuild-6.1'];
}

export async function ensureKernelCache(log: Log, base = cacheRoot()): Promise<KernelPaths> {
  const kver = await resolveKernelRelease();
  const paths = kernelPaths(kver, base);
  const kdir = join(base, kver);
  const stamp = join(kdir, DONE_STAMP);
  if (existsSync(stamp) && existsSync(paths.checkpatch)) {
    log(`guest kernel ${kver} is already cached in ${kdir}: nothing to do`);
    await writeFile(currentKernelFile(base), `${kver}\n`);
    return paths;
  }
  if (!existsSync(stamp)) {
    // A half-filled folder from an interrupted run is thrown away, not trusted.
    await rm(kdir, { recursive: true, force: true });
    const debs = join(kdir, 'debs');
    await mkdir(debs, { recursive: true });
    await mkdir(paths.root, { recursive: true });
    log(`downloading ${kernelPackages(kver).join(', ')}`);
    await execa('apt-get', ['download', ...kernelPackages(kver)], { cwd: debs });
    for (const deb of (await readdir(debs)).filter((f) => f.endsWith('.deb'))) {
      log(`unpacking ${deb}`);
      await execa('dpkg-deb', ['-x', join(debs, deb), paths.root]);
    }
    await rm(debs, { recursive: true, force: true });
    log(`running depmod for ${kver}`);
    await execa('depmod', ['-b', paths.root, kver]);
    await pointHeadersAtCache(paths);
    log('extracting the uncompressed vmlinux');
    await extractVmlinux(join(paths.root, 'boot', `vmlinuz-${kver}`), paths.vmlinux);
    await writeFile(stamp, `${new Date().toISOString()}\n`);
  }
  if (!existsSync(paths.checkpatch)) {
    log(`extracting checkpatch.pl from ${LINUX_SOURCE_TARBALL}`);
    await extractCheckpatch(join(base, 'linux-source'));
  }
  await writeFile(currentKernelFile(base), `${kver}\n`);
  log(`guest kernel ${kver} cached in ${kdir}`);
  return paths;
}

/** The arch headers include the -common headers by absolute path; redirect it into the cache. */
async function pointHeadersAtCache(paths: KernelPaths): Promise<void> {
  const makefile = join(paths.headers, 'Makefile');
  const text = await readFile(makefile, 'utf8');
  const fixed = text.replace(/(include\s+)\/usr\/src\//g, `$1${join(paths.root, 'usr', 'src')}/`);
  if (fixed === text) throw new Error(`${makefile}: found no absolute /usr/src include to redirect`);
  await writeFile(makefile, fixed);
}

async function extractVmlinux(vmlinuz: string, out: string): Promise<void> {
  const image = await readFile(vmlinuz);
  const at = image.indexOf(XZ_MAGIC);
  if (at < 0) throw new Error(`${vmlinuz}: no xz stream found (is the kernel still xz-compressed?)`);
  // --single-stream: the bzImage carries more bytes after the compressed kernel.
  const { stdout } = await execa('xz', ['-dc', '--single-stream'], {
    input: image.subarray(at),
    encoding: 'buffer',
    maxBuffer: 512 * 1024 * 1024,
  });
  await writeFile(out, stdout);
}

async function extractCheckpatch(dest: string): Promise<void> {
  if (!existsSync(LINUX_SOURCE_TARBALL)) {
    throw new Error(`${LINUX_SOURCE_TARBALL} is missing: install it with \`apt-get install linux-source-6.1\``);
  }
  await mkdir(dest, { recursive: true });
  const members = CHECKPATCH_FILES.map((f) => `linux-source-6.1/${f}`);
  await execa('tar', ['-xJf', LINUX_SOURCE_TARBALL, '-C', dest, '--strip-components=1', ...members]);
}
