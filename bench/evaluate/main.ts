// `npm run evaluate`: the seed's evaluation redone (issue 14), written to
// docs/evaluation.md and docs/evaluation.json. This first part counts the
// code: each class's shadow and the generic parts in this repository, and
// the drivers each class runs in Debian's 6.1 and 6.12 kernel sources (the
// guest kernels' modules trees say where each driver's folder is). The
// reliability runs are not part of it yet, and the report says so.
// usage: node dist/bench/evaluate/main.js [--out-dir DIR]
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { CLASSES } from '../../daemon/classes/registry.js';
import { cacheRoot, KERNEL_SERIES } from '../../test/vm/rig/cache-paths.js';
import { ensureKernelCache } from '../../test/vm/rig/kernel-cache.js';
import { repoPath } from '../../test/vm/rig/repo-path.js';
import { driverSizes, shadowdSizes } from './code-size.js';
import { renderEvaluation, type EvaluationData } from './report.js';

/** The drivers each class runs in the guest tests (the first is the class's example driver). */
const DRIVERS: readonly { cls: string; module: string }[] = [
  ...['e1000', 'pcnet32', 'e100', 'e1000e', '8139cp', 'ne2k-pci', 'virtio_net'].map((module) => ({ cls: 'net', module })),
  ...['snd-ens1370', 'snd-intel8x0', 'snd-hda-intel'].map((module) => ({ cls: 'sound', module })),
  ...['ata_piix', 'ahci', 'virtio_blk'].map((module) => ({ cls: 'block', module })),
];

const { values } = parseArgs({ options: { 'out-dir': { type: 'string', default: repoPath('docs') } } });
const outDir = values['out-dir'];

/** The commit counted, and whether the counted folders differ from it. */
async function commitOf(repo: string): Promise<string> {
  const head = (await execa('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'])).stdout.trim();
  const dirty = (await execa('git', ['-C', repo, 'status', '--porcelain', '--', 'daemon', 'kmod', 'bpf', 'cli'])).stdout.trim();
  return dirty ? `${head}, with uncommitted changes` : head;
}

const repo = repoPath('.');
const log = (line: string): void => console.log(`evaluate: ${line}`);
const drivers: EvaluationData['codeSize']['drivers'] = [];
for (const series of KERNEL_SERIES) {
  const kernel = await ensureKernelCache(log, series);
  const top = `linux-source-${series}`;
  const tarball = `/usr/src/${top}.tar.xz`;
  log(`counting ${DRIVERS.length} drivers in ${tarball} (modules of ${kernel.kver})`);
  drivers.push({ series, tarball, sizes: await driverSizes(DRIVERS, kernel.modules, tarball, top, join(cacheRoot(), 'evaluate')) });
}
const data: EvaluationData = {
  generatedAt: new Date().toISOString(),
  commit: await commitOf(repo),
  codeSize: { ...shadowdSizes(repo, CLASSES), drivers },
  reliabilityNotRun:
    'this command does not run the applications yet (issue 14). The guest tests run them in CI: test/vm/classes/{net,sound,block}/recovery-apps.test.ts with shadowd and apps-control.test.ts (net: recovery-apps control mode) without it.',
};
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, 'evaluation.json'), `${JSON.stringify(data, null, 2)}\n`);
writeFileSync(join(outDir, 'evaluation.md'), renderEvaluation(data));
log(`wrote ${join(outDir, 'evaluation.md')} and evaluation.json`);
for (const c of data.codeSize.classes) log(`${c.cls}: shadow ${c.daemon.code + c.taps.code + c.helper.code} lines (daemon ${c.daemon.code}, taps ${c.taps.code}, helper ${c.helper.code}), fault injection ${c.faults.code}`);
