// Writes the evaluation (issue 14) as Markdown, each of our tables beside
// the seed's. Every figure comes from the data passed in: a section this
// command did not measure says so instead of showing a number.
import type { ClassShadowSize, DriverSize, GenericSize, PartSize } from './code-size.js';
import { OUTCOMES, type AppNotRun, type AppOutcome } from './outcome.js';
import { PHASES, type RecoveryTiming } from './recovery-times.js';
import { baselineRows, type Baselines, type Spread } from './restart-baselines.js';
import { SEED_CODE_SIZE, SEED_GENERIC, SEED_RELIABILITY } from './seed-figures.js';

export interface CodeSizeData {
  classes: ClassShadowSize[];
  generic: GenericSize;
  /** Per kernel series, the drivers' sizes in that series' source. */
  drivers: { series: string; tarball: string; sizes: DriverSize[] }[];
}

/** The run a class's rows were kept from. */
export interface KeptRows {
  generatedAt: string;
  commit: string;
}

export interface EvaluationData {
  /** ISO time the command ran. */
  generatedAt: string;
  commit: string;
  codeSize: CodeSizeData;
  reliability: {
    /** Every application run, classified. */
    outcomes: AppOutcome[];
    /** Per class id, why its applications were not run (absent: they were). */
    notRun: Record<string, string>;
    /** The applications of a class that ran with no run in one mode, and why (absent in the JSON of older runs). */
    appsNotRun?: AppNotRun[];
    /** Per class id, the run its rows come from when this run left the class out (--classes) and kept them from the last evaluation.json. */
    keptFrom?: Record<string, KeptRows>;
  };
  /** Each recovery shadowd made in the reliability runs. */
  recoveries: RecoveryTiming[];
  /** The bare restarts and own resets of the same drivers, without shadowd (absent in the JSON of older runs). */
  baselines?: Baselines;
}

const n = (x: number): string => x.toLocaleString('en-US');
/** A class's shadow: its daemon folder, its taps and its helper files (fault injection apart). */
export const shadowTotal = (c: ClassShadowSize): number => c.daemon.code + c.taps.code + c.helper.code;
const filesOf = (p: PartSize): string => p.files.map((f) => `\`${f}\``).join(', ');

function codeSizeSection(d: CodeSizeData): string[] {
  const out: string[] = [];
  out.push('## Code size');
  out.push('');
  out.push('Lines of code (lines with something besides whitespace and comments). A class\'s shadow is its daemon folder (TypeScript), its taps program (bpftrace) and its files in the helper module (C); the helper\'s fault injection is a test aid and is counted apart. Drivers are counted in Debian\'s kernel source: the module\'s `.c` files (from its folder\'s Makefile) and the local headers they include.');
  out.push('');
  const example = (series: string, cls: string): DriverSize | undefined => d.drivers.find((k) => k.series === series)?.sizes.find((s) => s.cls === cls);
  const seriesList = d.drivers.map((k) => k.series);
  out.push(`| class | shadow: daemon | shadow: taps | shadow: helper | shadow, total | fault injection | ${seriesList.map((s) => `example driver (${s})`).join(' | ')} | seed: example driver | seed: shadow driver |`);
  out.push(`|---|---:|---:|---:|---:|---:|${seriesList.map(() => '---:|').join('')}---:|---:|`);
  for (const c of d.classes) {
    const seed = SEED_CODE_SIZE.find((s) => s.cls === c.cls);
    const ex = seriesList.map((s) => {
      const e = example(s, c.cls);
      return e ? `${n(e.size.code)} (${e.module})` : 'none counted';
    });
    out.push(
      `| ${c.cls} | ${n(c.daemon.code)} | ${n(c.taps.code)} | ${n(c.helper.code)} | ${n(shadowTotal(c))} | ${n(c.faults.code)} | ${ex.join(' | ')} | ${seed ? `${n(seed.example.lines)} (${seed.example.driver})` : '-'} | ${seed ? n(seed.shadowLines) : '-'} |`,
    );
  }
  out.push('');
  out.push('| generic part | lines | seed |');
  out.push('|---|---:|---|');
  out.push(`| daemon core (recovery manager, policy, store, history, replay and taps runners, detectors) | ${n(d.generic.core.code)} | shadow manager ${n(SEED_GENERIC.shadowManager)} |`);
  out.push(`| helper module, generic part (restart skeleton, control device, interrupts, reload, unplug) | ${n(d.generic.helper.code)} | common code ${n(SEED_GENERIC.commonCode)} |`);
  out.push(`| service plumbing, control socket, CLI | ${n(d.generic.service.code)} | - |`);
  out.push(`| (what the seed builds on) | - | Nooks ${n(SEED_GENERIC.nooks)} |`);
  out.push('');
  for (const k of d.drivers) {
    out.push(`Drivers in ${k.tarball}:`);
    out.push('');
    out.push('| class | module | folder | lines | files |');
    out.push('|---|---|---|---:|---|');
    for (const s of k.sizes) out.push(`| ${s.cls} | ${s.module} | \`${s.folder}\` | ${n(s.size.code)} | ${filesOf(s.size)} |`);
    out.push('');
  }
  return out;
}

/** A missing result first, then the outcomes worst first. */
const CELL_ORDER: readonly AppOutcome['outcome'][] = ['no result', ...[...OUTCOMES].reverse()];

/** One cell: each outcome seen with its count, worst first ("app crash 3, works 1"); or why there is none. */
export function outcomeCounts(runs: AppOutcome[], notRun: string | undefined): string {
  if (runs.length === 0) return notRun !== undefined ? 'not run' : 'no run';
  const seen = [...new Set(runs.map((r) => r.outcome))].sort((a, b) => CELL_ORDER.indexOf(a) - CELL_ORDER.indexOf(b));
  return seen.map((o) => `${o} ${runs.filter((r) => r.outcome === o).length}`).join(', ');
}

/** The seed's reliability table with our two columns beside it. */
export function reliabilityTable(r: EvaluationData['reliability']): string[] {
  const out = ['| application | class | seed: native | seed: Nooks | seed: shadow drivers | ours: without shadowd | ours: with shadowd |', '|---|---|---|---|---|---|---|'];
  for (const a of SEED_RELIABILITY) out.push(`| ${a.app} | ${a.cls} | ${a.native} | ${a.nooks} | ${a.shadow} | ${appCell(r, a, 'without shadowd')} | ${appCell(r, a, 'with shadowd')} |`);
  return out;
}

/** The counts of one of the seed's applications in one mode, over every driver and kernel it ran on. */
export function appCell(r: EvaluationData['reliability'], a: { app: string; cls: string }, mode: AppOutcome['mode']): string {
  const why = r.notRun[a.cls] ?? r.appsNotRun?.find((x) => x.cls === a.cls && x.app === a.app && x.mode === mode)?.why;
  return outcomeCounts(r.outcomes.filter((o) => o.app === a.app && o.mode === mode), why);
}

/** Where the rows of the reliability table do not come from this run's applications: classes and applications not run, and classes kept from an earlier run. */
function notRunLines(r: EvaluationData['reliability'], link: string | null): string[] {
  const why = (text: string): string => (link === null ? `: ${text}` : ` (why: ${link})`);
  return [
    ...Object.entries(r.notRun).map(([cls, text]) => `${cls}: not run${link === null ? '' : ' by this command yet'}${why(text)}`),
    ...(r.appsNotRun ?? []).map((x) => `${x.app} (${x.cls}), ${x.mode}: not run${why(x.why)}`),
    ...Object.entries(r.keptFrom ?? {}).map(([cls, k]) => `${cls}: left out of this run (--classes); its rows are those of the run at ${k.generatedAt} (commit ${k.commit})`),
  ];
}

/**
 * The README with its block between the reliability markers replaced by the
 * table and the command that made it; the README unchanged when it has no
 * markers.
 */
export function withReadmeTable(readme: string, d: EvaluationData): string {
  const begin = '<!-- evaluation:reliability:begin -->';
  const end = '<!-- evaluation:reliability:end -->';
  const a = readme.indexOf(begin);
  const b = readme.indexOf(end);
  if (a < 0 || b < a) return readme;
  const block = [
    begin,
    '',
    ...reliabilityTable(d.reliability),
    '',
    ...notRunLines(d.reliability, '[docs/evaluation.md](docs/evaluation.md#reliability)').flatMap((line) => [`${line}.`, '']),
    `Made by \`npm run evaluate\` at ${d.generatedAt.slice(0, 16).replace('T', ' ')} UTC (commit ${d.commit}); each cell counts the runs of each outcome over the class's drivers and kernels; every run, with its evidence, in [docs/evaluation.md](docs/evaluation.md).`,
    '',
  ].join('\n');
  return readme.slice(0, a) + block + readme.slice(b);
}

function reliabilitySection(r: EvaluationData['reliability']): string[] {
  const out: string[] = [];
  out.push('## Reliability');
  out.push('');
  out.push('Each application ran with a fault injected mid-run on each driver of its class, without shadowd and with it; each run is classified from what it did (below, with the evidence): *works* (finished correctly, its data checked), *app break* (kept running but lost data or function), *app crash* (exited with an error), *system crash* (kernel crash or hang). A cell counts the runs of each outcome.');
  out.push('');
  const notRun = notRunLines(r, null);
  for (const line of notRun) out.push(`- ${line}`);
  if (notRun.length > 0) out.push('');
  out.push(...reliabilityTable(r));
  out.push('');
  if (r.outcomes.length > 0) {
    out.push('### Drivers and kernels run');
    out.push('');
    out.push('| class | driver | kernel | fault | without shadowd | with shadowd |');
    out.push('|---|---|---|---|---|---|');
    const keys = [...new Set(r.outcomes.map((o) => `${o.cls}\t${o.driver}\t${o.kernel}\t${o.fault}`))];
    for (const k of keys) {
      const [cls, driver, kernel, fault] = k.split('\t') as [string, string, string, string];
      const of = (mode: AppOutcome['mode']): string => outcomeCounts(r.outcomes.filter((o) => o.cls === cls && o.driver === driver && o.kernel === kernel && o.fault === fault && o.mode === mode), undefined);
      out.push(`| ${cls} | ${driver} | ${kernel} | ${fault} | ${of('without shadowd')} | ${of('with shadowd')} |`);
    }
    out.push('');
    out.push('### Every run');
    out.push('');
    out.push('| application | program | driver | kernel | fault | mode | outcome | evidence |');
    out.push('|---|---|---|---|---|---|---|---|');
    for (const o of r.outcomes) out.push(`| ${o.app} | ${o.program} | ${o.driver} | ${o.kernel} | ${o.fault} | ${o.mode} | ${o.outcome} | ${o.evidence.replace(/\|/g, '\\|').replace(/\n/g, ' ')} |`);
    out.push('');
  }
  return out;
}

/** A spread as `median (min-max, n)` in ms, or an empty cell. */
const spreadCell = (x: Spread | null): string => (x ? `${n(x.median)}${x.n > 1 ? ` (${n(x.min)}-${n(x.max)})` : ''}` : '');

function baselineSection(b: Baselines | undefined, recs: readonly RecoveryTiming[]): string[] {
  if (!b) return ['Not yet beside a bare unbind + bind and the drivers\' own resets: this evaluation ran none (an older run, or no class ran).', ''];
  const out: string[] = ['### Beside a bare restart and the driver\'s own reset', ''];
  out.push(`Measured without shadowd in one boot on ${b.kernel}, ${b.rounds} rounds per device (test/vm/guest/bare-restarts.ts): a bare unbind + bind of the driver, timed from the unbind to the device's first service, with nothing restored and no application saved; and the driver's own reset where it has one a fault can call up, timed from the fault. shadowd's figures are its recoveries of the same driver above, on the same kernel: from the failure (its detection included) and from its report to the recovery's end. Medians, with the range over the rounds (ms).`);
  out.push('');
  if (b.error) out.push(`The baseline run failed: ${b.error}`, '');
  out.push('| class | driver | shadowd: failure to recovered | shadowd: report to recovered | bare unbind + bind | its own reset: found after | its own reset: then service | service means |');
  out.push('|---|---|---:|---:|---:|---:|---:|---|');
  for (const r of baselineRows(b, recs)) {
    const reset = 'none' in r.reset ? [`none: ${r.reset.none}`, ''] : [spreadCell(r.reset.detection), spreadCell(r.reset.service)];
    out.push(`| ${r.cls} | ${r.driver} | ${spreadCell(r.recovered)} | ${spreadCell(r.recoveryOnly)} | ${spreadCell(r.bare)}${r.error ? ` (stopped: ${r.error})` : ''} | ${reset[0]} | ${reset[1]} | ${r.service} |`);
  }
  out.push('');
  const resets = b.devices.flatMap((d) => ('none' in d.reset ? [] : [d.reset.what]));
  if (resets.length > 0) out.push(`Own reset: ${[...new Set(resets)].join('; ')}.`, '');
  return out;
}

function recoverySection(recs: RecoveryTiming[], chart: string, baselines: Baselines | undefined): string[] {
  const out: string[] = ['## Recovery time', ''];
  if (recs.length === 0) return [...out, 'No recovery ran (no reliability run with shadowd).', ''];
  out.push(`Each recovery of the reliability runs with shadowd, as shadowd's history recorded it: detection (the failure's start to its report), then each phase of the recovery (ms). Under TCG (software emulation) on a 2-CPU machine: emulation times.`);
  out.push('');
  out.push(`![recovery phases](${chart})`);
  out.push('');
  out.push(`| class | driver | kernel | fault | recovery | trigger | result | ${PHASES.join(' | ')} | failure to recovered |`);
  out.push(`|---|---|---|---|---|---|---|${PHASES.map(() => '---:|').join('')}---:|`);
  for (const r of recs) out.push(`| ${r.cls} | ${r.driver} | ${r.kernel} | ${r.fault} | ${r.id} | ${r.trigger} | ${r.result} | ${PHASES.map((p) => (r.phases[p] === undefined ? '' : n(Math.round(r.phases[p])))).join(' | ')} | ${n(Math.round(r.totalMs))} |`);
  out.push('');
  out.push(...baselineSection(baselines, recs));
  return out;
}

export function renderEvaluation(d: EvaluationData, chart: string): string {
  return [
    '# Evaluation',
    '',
    `Written by \`npm run evaluate\` at ${d.generatedAt} (commit ${d.commit}); the same data is in \`docs/evaluation.json\`. Do not edit by hand.`,
    '',
    ...reliabilitySection(d.reliability),
    ...recoverySection(d.recoveries, chart, d.baselines),
    ...codeSizeSection(d.codeSize),
  ].join('\n');
}
