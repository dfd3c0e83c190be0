// The disk applications' fixed inputs, made once on the host and cached
// outside the git tree (the guest sees them read-only at the same path):
//   - the compiler's code base: the kernel's userspace GPIO tools
//     (tools/gpio with tools/build, tools/include, tools/scripts and the uapi
//     header it copies), taken from Debian's linux-source-6.1 tarball and
//     built with the tarball's own Makefiles (`make -C tools -j2 gpio`:
//     fixdep, then 5 compile units linked into 4 programs);
//   - the encoder's input: a 20 s stereo 16-bit 44.1 kHz WAV (3.4 MiB) that
//     `sox -R -D ... synth` makes deterministically (-R: fixed seed, -D: no
//     dither, the one random part of synth's output).
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { cacheRoot } from '../../rig/cache-paths.js';

export const LINUX_SOURCE_TARBALL = '/usr/src/linux-source-6.1.tar.xz';
const TARBALL_TOP = 'linux-source-6.1';
/** What the gpio tools' build reads, relative to the kernel tree. */
export const COMPILER_SOURCE_MEMBERS = [
  'tools/Makefile',
  'tools/build',
  'tools/include',
  'tools/scripts',
  'tools/gpio',
  'include/uapi/linux/gpio.h',
];
/** `make -C TREE/tools -j2 TARGETS...` */
export const MAKE_TARGETS = ['gpio'];
/** The encoder's input: sox synth arguments after the output file. */
const WAV_SYNTH = ['synth', '20', 'sine', '220-880', 'sine', '330-1320'];
const WAV_FORMAT = ['-r', '44100', '-c', '2', '-b', '16'];

/** Bump when the inputs change, so that a stale cache is not reused. */
const INPUTS_VERSION = 'v3';

export interface DiskAppsInputs {
  /** Folder holding inputs.json, the source tree and the WAV. */
  dir: string;
  /** The kernel tree subset (holds tools/ and include/). */
  sourceDir: string;
  makeTargets: string[];
  wav: string;
  wavSha256: string;
  wavBytes: number;
}

export function sha256File(path: string): string {
  return createHash('sha256').update(readFileSync(path)).digest('hex');
}

export function inputsDir(): string {
  return join(cacheRoot(), `disk-apps-${INPUTS_VERSION}`);
}

/** Reads inputs.json of a folder made by ensureDiskAppsInputs (in the guest, say). */
export function loadDiskAppsInputs(dir = inputsDir()): DiskAppsInputs {
  const file = join(dir, 'inputs.json');
  if (!existsSync(file)) throw new Error(`${file} is missing: run ensureDiskAppsInputs() on the host first`);
  return JSON.parse(readFileSync(file, 'utf8')) as DiskAppsInputs;
}

/** Makes the inputs (about 15 s: the tarball is one xz stream), or returns the cached ones. */
export async function ensureDiskAppsInputs(log: (line: string) => void = () => undefined): Promise<DiskAppsInputs> {
  const dir = inputsDir();
  if (existsSync(join(dir, 'inputs.json'))) return loadDiskAppsInputs(dir);
  if (!existsSync(LINUX_SOURCE_TARBALL)) throw new Error(`${LINUX_SOURCE_TARBALL} is missing: run test/setup-host.sh (package linux-source-6.1)`);
  await mkdir(cacheRoot(), { recursive: true });
  const tmp = await mkdtemp(join(cacheRoot(), `disk-apps-${INPUTS_VERSION}.tmp-`));
  try {
    log(`extracting the gpio tools from ${LINUX_SOURCE_TARBALL}`);
    await execa('tar', ['-xJf', LINUX_SOURCE_TARBALL, '-C', tmp, ...COMPILER_SOURCE_MEMBERS.map((m) => `${TARBALL_TOP}/${m}`)]);
    await rename(join(tmp, TARBALL_TOP), join(tmp, 'src'));
    log('making the WAV');
    const wav = join(tmp, 'in.wav');
    await execa('sox', ['-R', '-D', '-n', ...WAV_FORMAT, wav, ...WAV_SYNTH]);
    const finalWav = join(dir, 'in.wav');
    const inputs: DiskAppsInputs = {
      dir,
      sourceDir: join(dir, 'src'),
      makeTargets: MAKE_TARGETS,
      wav: finalWav,
      wavSha256: sha256File(wav),
      wavBytes: readFileSync(wav).length,
    };
    await writeFile(join(tmp, 'inputs.json'), JSON.stringify(inputs, null, 2) + '\n');
    await rm(dir, { recursive: true, force: true });
    await rename(tmp, dir);
    return inputs;
  } catch (e) {
    await rm(tmp, { recursive: true, force: true });
    throw e;
  }
}
