// `npm run evaluate`: the seed's evaluation redone (issue 14), written to
// docs/evaluation.md and docs/evaluation.json:
// - reliability: each class's applications through a fault on each of its
//   drivers, without shadowd and with it, in the guest, each run classified
//   from what it did (the classes with a runner below; the others' rows say
//   they were not run);
// - code size: each class's shadow and the generic parts in this repository,
//   and the drivers each class runs in Debian's 6.1 and 6.12 kernel sources.
// --classes runs some classes' applications only (--only code-size none):
// the other classes' rows are then kept from the evaluation.json already
// in the output folder (class-select.ts), said so in the report.
// usage: node dist/bench/evaluate/main.js [--out-dir DIR] [--only code-size] [--kernels 6.1,6.12] [--classes net,block,sound]
import { existsSync, readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { execa } from 'execa';
import { CLASSES } from '../../daemon/classes/registry.js';
import { cacheRoot, isKernelSeries, KERNEL_SERIES, type KernelSeries } from '../../test/vm/rig/cache-paths.js';
import { ensureKernelCache } from '../../test/vm/rig/kernel-cache.js';
import { repoPath } from '../../test/vm/rig/repo-path.js';
import { driverSizes, shadowdSizes } from './code-size.js';
import { appCell, renderEvaluation, shadowTotal, withReadmeTable, type EvaluationData } from './report.js';
import { keepOtherClasses, leftOut, parseClasses, parsePrevious, type Rows } from './class-select.js';
import { SEED_RELIABILITY } from './seed-figures.js';
import { netReliability } from './net-reliability.js';
import { blockReliability } from './block-reliability.js';
import { soundReliability } from './sound-reliability.js';
import type { ClassRunner } from './class-runs.js';
import { recoveryChart } from './recovery-times.js';
import { measureBaselines, type Baselines } from './restart-baselines.js';
import { buildHelperModule } from '../../test/vm/rig/kmod-build.js';
import type { DevicePreset } from '../../test/vm/rig/devices.js';
import { scenarioNics } from '../../test/vm/classes/net/recovery-scenario-run.js';
import { RECOVERY_CARDS } from '../../test/vm/classes/sound/sound-apps-runs.js';
import { RECOVERY_DISKS } from '../../test/vm/classes/block/disk-apps-runs.js';

/** The drivers each class runs in the guest tests (the first is the class's example driver). */
const DRIVERS: readonly { cls: string; module: string }[] = [
  ...['e1000', 'pcnet32', 'e100', 'e1000e', '8139cp', 'ne2k-pci', 'virtio_net'].map((module) => ({ cls: 'net', module })),
  ...['snd-ens1370', 'snd-intel8x0', 'snd-hda-intel'].map((module) => ({ cls: 'sound', module })),
  ...['ata_piix', 'ahci', 'virtio_blk'].map((module) => ({ cls: 'block', module })),
];

/** The classes whose applications this command runs, and how. */
const RELIABILITY: Record<string, ClassRunner> = {
  net: netReliability,
  block: blockReliability,
  sound: soundReliability,
};
const NOT_YET = 'this command does not run them yet (issue 14); the guest tests do, in CI: test/vm/classes/CLS/recovery-apps.test.ts (with shadowd) and apps-control.test.ts (without).';

/**
 * Per class, the devices (rig preset, driver) whose recoveries the
 * reliability runs with shadowd make: their bare restarts and own resets are
 * measured beside them (restart-baselines.ts).
 */
const BASELINE_DEVICES: Record<string, readonly (readonly [DevicePreset, string, ...unknown[]])[]> = {
  net: scenarioNics(),
  sound: RECOVERY_CARDS,
  block: RECOVERY_DISKS,
};
const BASELINE_ROUNDS = 3;

/** The chart's file, beside evaluation.md. */
const RECOVERY_CHART = 'evaluation-recoveries.svg';

const log = (line: string): void => console.log(`evaluate: ${line}`);

/** evaluation.json, .md and the chart in outDir; the README's table too when outDir is the repository's docs and applications ran. */
function writeOutputs(data: EvaluationData): void {
  mkdirSync(outDir, { recursive: true });
  writeFileSync(join(outDir, 'evaluation.json'), `${JSON.stringify(data, null, 2)}\n`);
  writeFileSync(join(outDir, 'evaluation.md'), renderEvaluation(data, RECOVERY_CHART));
  if (data.recoveries.length > 0) writeFileSync(join(outDir, RECOVERY_CHART), recoveryChart(data.recoveries, data.baselines));
  if (outDir === repoPath('docs') && data.reliability.outcomes.length > 0) {
    const readme = repoPath('README.md');
    writeFileSync(readme, withReadmeTable(readFileSync(readme, 'utf8'), data));
  }
  log(`wrote ${join(outDir, 'evaluation.md')} and evaluation.json`);
}

const CLASS_IDS = CLASSES.map((c) => c.id);
const USAGE = `usage: evaluate [--out-dir DIR] [--only code-size] [--kernels 6.1,6.12] [--classes ${CLASS_IDS.join(',')}] | evaluate --render [--out-dir DIR]`;

/** parseArgs, with a clear message and exit 2 for an option it does not know or a missing value. */
function parseOrExit<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config);
  } catch (err) {
    console.error(`evaluate: ${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    process.exit(2);
  }
}
const { values } = parseOrExit({
  options: {
    'out-dir': { type: 'string', default: repoPath('docs') },
    only: { type: 'string' },
    kernels: { type: 'string', default: KERNEL_SERIES.join(',') },
    classes: { type: 'string' },
    render: { type: 'boolean', default: false },
  },
});
const outDir = values['out-dir'];
// --render: writes the report, its chart and the README's table again from the last run's JSON, running nothing.
if (values.render) {
  const json = join(outDir, 'evaluation.json');
  if (!existsSync(json)) {
    console.error(`evaluate --render: ${json} does not exist: run \`npm run evaluate\` first`);
    process.exit(2);
  }
  const last = JSON.parse(readFileSync(json, 'utf8')) as EvaluationData;
  writeOutputs(last);
  process.exit(0);
}
if (values.only !== undefined && values.only !== 'code-size') {
  console.error(`--only ${values.only}: only code-size can be asked for alone\n${USAGE}`);
  process.exit(2);
}
const kernels = values.kernels.split(',').map((k) => k.trim());
const badKernel = kernels.find((k) => !isKernelSeries(k));
if (badKernel !== undefined || kernels.length === 0) {
  console.error(`--kernels: ${JSON.stringify(badKernel ?? '')} is not one of ${KERNEL_SERIES.join(', ')}\n${USAGE}`);
  process.exit(2);
}
if (values.only === 'code-size' && values.classes !== undefined) {
  console.error(`--only code-size runs no class's applications: leave --classes out\n${USAGE}`);
  process.exit(2);
}
let classes: string[];
try {
  classes = values.only === 'code-size' ? [] : parseClasses(values.classes ?? CLASS_IDS.join(','), CLASS_IDS);
} catch (err) {
  console.error(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
  process.exit(2);
}
const leftOutWhy = values.only === 'code-size' ? '--only code-size' : `--classes ${classes.join(',')}`;
// A run that leaves classes out keeps their rows from the last run's JSON: read it now, before hours of runs.
const jsonPath = join(outDir, 'evaluation.json');
let previous: EvaluationData | null = null;
if (classes.length < CLASS_IDS.length && existsSync(jsonPath)) {
  try {
    previous = parsePrevious(readFileSync(jsonPath, 'utf8'));
  } catch (err) {
    console.error(`evaluate: ${jsonPath} cannot be read (${err instanceof Error ? err.message : String(err)}): a run of some classes keeps the others' rows from it. Mend or remove it, or run every class.`);
    process.exit(2);
  }
  log(`${leftOutWhy}: the rows of ${CLASS_IDS.filter((c) => !classes.includes(c)).join(', ')} will be kept from ${jsonPath} (run at ${previous.generatedAt}, commit ${previous.commit})`);
} else if (classes.length < CLASS_IDS.length) {
  log(`${leftOutWhy}: ${jsonPath} does not exist: the classes left out will say so`);
}

/** The commit counted, and whether the counted folders differ from it. */
async function commitOf(repo: string): Promise<string> {
  const head = (await execa('git', ['-C', repo, 'rev-parse', '--short', 'HEAD'])).stdout.trim();
  const dirty = (await execa('git', ['-C', repo, 'status', '--porcelain', '--', 'daemon', 'kmod', 'bpf', 'cli'])).stdout.trim();
  return dirty ? `${head}, with uncommitted changes` : head;
}

const repo = repoPath('.');
const drivers: EvaluationData['codeSize']['drivers'] = [];
for (const series of KERNEL_SERIES) {
  const kernel = await ensureKernelCache(log, series);
  const top = `linux-source-${series}`;
  const tarball = `/usr/src/${top}.tar.xz`;
  log(`counting ${DRIVERS.length} drivers in ${tarball} (modules of ${kernel.kver})`);
  drivers.push({ series, tarball, sizes: await driverSizes(DRIVERS, kernel.modules, tarball, top, join(cacheRoot(), 'evaluate')) });
}
const fresh: Rows = { reliability: { outcomes: [], notRun: {}, appsNotRun: [] }, recoveries: [] };
for (const id of CLASS_IDS) {
  const run = RELIABILITY[id];
  if (!classes.includes(id)) fresh.reliability.notRun[id] = leftOut(leftOutWhy);
  else if (!run) fresh.reliability.notRun[id] = NOT_YET.replace('CLS', id);
  else {
    const runs = await run(kernels as KernelSeries[], log);
    fresh.reliability.outcomes.push(...runs.outcomes);
    fresh.reliability.appsNotRun!.push(...(runs.notRun ?? []));
    fresh.recoveries.push(...runs.recoveries);
  }
}
// The bare restarts and own resets of the devices of the classes run, in one boot, on the first kernel.
let baselines: Baselines | undefined;
const baselineDevices = classes.flatMap((c) => BASELINE_DEVICES[c] ?? []);
if (baselineDevices.length > 0) {
  const kernel = kernels[0] as KernelSeries;
  await buildHelperModule((l) => log(`kmod: ${l}`), kernel);
  log(`bare restarts and own resets on ${kernel}, ${BASELINE_ROUNDS} rounds each: ${baselineDevices.map(([, d]) => d).join(', ')}`);
  const { baselines: b, guest } = await measureBaselines(kernel, baselineDevices.map(([p]) => p), baselineDevices.map(([, d]) => d), BASELINE_ROUNDS);
  log(`  guest ${(guest.totalMs / 1000).toFixed(0)} s${b.error ? `; ${b.error}` : ''}`);
  // A run of some classes keeps the other classes' baselines of the last run (same kernel).
  const keptDevices = previous?.baselines?.kernel === kernel ? previous.baselines.devices.filter((d) => !classes.includes(d.cls)) : [];
  baselines = { ...b, devices: [...b.devices, ...keptDevices] };
} else if (previous?.baselines) {
  baselines = previous.baselines;
}
const { rows, kept } = keepOtherClasses(fresh, previous, classes, CLASS_IDS);
if (previous) log(kept.length > 0 ? `kept the rows of ${kept.join(', ')} from ${jsonPath} (${kept.map((c) => `${c}: run at ${rows.reliability.keptFrom![c]!.generatedAt}, commit ${rows.reliability.keptFrom![c]!.commit}`).join('; ')})` : `${jsonPath} had no rows of the classes left out to keep`);
const reliability = rows.reliability;
const data: EvaluationData = {
  generatedAt: new Date().toISOString(),
  commit: await commitOf(repo),
  codeSize: { ...shadowdSizes(repo, CLASSES), drivers },
  reliability,
  recoveries: rows.recoveries,
  ...(baselines ? { baselines } : {}),
};
writeOutputs(data);
for (const c of data.codeSize.classes) log(`${c.cls}: shadow ${shadowTotal(c)} lines (daemon ${c.daemon.code}, taps ${c.taps.code}, helper ${c.helper.code}), fault injection ${c.faults.code}`);
for (const a of SEED_RELIABILITY) log(`${a.app}: without shadowd ${appCell(reliability, a, 'without shadowd')}; with shadowd ${appCell(reliability, a, 'with shadowd')}`);
