// Fills the guest kernel cache: Debian's current kernel of each series the rig
// boots (6.1, the default, and 6.12 LTS), its image, headers and kbuild, unpacked
// without touching the host's /boot or /lib/modules, plus the uncompressed
// vmlinux for a fast boot and checkpatch.pl (from the 6.1 source) for kmod/.
import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import {
  cacheRoot,
  currentKernelFile,
  DEFAULT_KERNEL_SERIES,
  kbuildPackage,
  kernelPaths,
  type KernelPaths,
  type KernelSeries,
} from './cache-paths.js';

const XZ_MAGIC = Buffer.from([0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00]);
const LINUX_SOURCE_TARBALL = '/usr/src/linux-source-6.1.tar.xz';
const CHECKPATCH_FILES = ['scripts/checkpatch.pl', 'scripts/spelling.txt', 'scripts/const_structs.checkpatch'];
const DONE_STAMP = 'complete';

type Log = (line: string) => void;

/**
 * Per series: the metapackage that names its current release, and the form
 * of that release. Resolved at each run, never pinned: a Debian point release
 * or security upload moves the cache to the new kernel.
 */
const SERIES_SOURCE: Record<KernelSeries, { metapackage: string; release: RegExp; example: string }> = {
  '6.1': { metapackage: 'linux-image-amd64', release: /Depends:\s+linux-image-(6\.1\.\d+-\d+-amd64)\b/, example: 'linux-image-6.1.x-NN-amd64' },
  '6.12': {
    metapackage: 'linux-image-6.12-amd64',
    release: /Depends:\s+linux-image-(6\.12\.\d+\+deb\d+-amd64)\b/,
    example: 'linux-image-6.12.NNN+debNN-amd64',
  },
};

/** Resolves the release the series' metapackage currently points at (6.1: linux-image-amd64, 6.12: linux-image-6.12-amd64). */
export async function resolveKernelRelease(series: KernelSeries = DEFAULT_KERNEL_SERIES): Promise<string> {
  const { metapackage, release, example } = SERIES_SOURCE[series];
  const { stdout } = await execa('apt-cache', ['depends', metapackage], { reject: false });
  const match = release.exec(stdout);
  if (!match?.[1]) {
    throw new Error(
      `cannot resolve the Debian ${series} kernel: \`apt-cache depends ${metapackage}\` names no ` +
        `${example} package (run \`apt-get update\` first, on Debian 12` +
        (series === '6.12' ? ' with bookworm-security or bookworm-backports enabled)' : ')'),
    );
  }
  return match[1];
}

/** The packages that make up one bootable kernel plus what builds modules for it. */
export function kernelPackages(kver: string): string[] {
  const abi = kver.replace(/-amd64$/, '');
  return [`linux-image-${kver}`, `linux-headers-${kver}`, `linux-headers-${abi}-common`, kbuildPackage(kver)];
}

/** Caches the current kernel of `series` (if it is not cached yet) and records it as the series' kernel. */
export async function ensureKernelCache(log: Log, series: KernelSeries = DEFAULT_KERNEL_SERIES, base = cacheRoot()): Promise<KernelPaths> {
  const kver = await resolveKernelRelease(series);
  const paths = kernelPaths(kver, base);
  const kdir = join(base, kver);
  const stamp = join(kdir, DONE_STAMP);
  if (existsSync(stamp) && existsSync(paths.checkpatch)) {
    log(`guest kernel ${series}: ${kver} is already cached in ${kdir}: nothing to do`);
    await writeFile(currentKernelFile(base, series), `${kver}\n`);
    return paths;
  }
  if (!existsSync(stamp)) {
    // A half-filled folder from an interrupted run is thrown away, not trusted.
    await rm(kdir, { recursive: true, force: true });
    const debs = join(kdir, 'debs');
    await mkdir(debs, { recursive: true });
    await mkdir(paths.root, { recursive: true });
    log(`guest kernel ${series}: downloading ${kernelPackages(kver).join(', ')}`);
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
  await writeFile(currentKernelFile(base, series), `${kver}\n`);
  log(`guest kernel ${series}: ${kver} cached in ${kdir}`);
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

const ZSTD_MAGIC = Buffer.from([0x28, 0xb5, 0x2f, 0xfd]);

/**
 * The compressed kernel inside a bzImage, by its boot protocol header:
 * payload_offset and payload_length, counted from the protected-mode code
 * that follows the (setup_sects + 1) real-mode sectors.
 */
function bzImagePayload(image: Buffer): Buffer {
  const setupSects = image.readUInt8(0x1f1) || 4;
  const start = (setupSects + 1) * 512 + image.readUInt32LE(0x248);
  return image.subarray(start, start + image.readUInt32LE(0x24c));
}

/** 6.1's bzImage holds an xz stream, 6.12's a zstd frame. */
async function extractVmlinux(vmlinuz: string, out: string): Promise<void> {
  const image = await readFile(vmlinuz);
  const payload = bzImagePayload(image);
  if (payload.subarray(0, ZSTD_MAGIC.length).equals(ZSTD_MAGIC)) {
    // The build appends the uncompressed size (4 bytes) to the frame; zstd refuses trailing bytes.
    const { stdout } = await execa('zstd', ['-dc'], { input: payload.subarray(0, -4), encoding: 'buffer', maxBuffer: 512 * 1024 * 1024 });
    await writeFile(out, stdout);
    return;
  }
  const at = image.indexOf(XZ_MAGIC);
  if (at < 0) throw new Error(`${vmlinuz}: no xz stream or zstd frame found (how is the kernel compressed?)`);
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
