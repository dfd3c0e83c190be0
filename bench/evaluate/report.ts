// Writes the evaluation (issue 14) as Markdown, each of our tables beside
// the seed's. Every figure comes from the data passed in: a section this
// command did not measure says so instead of showing a number.
import type { ClassShadowSize, DriverSize, GenericSize, PartSize } from './code-size.js';
import { SEED_CODE_SIZE, SEED_GENERIC, SEED_RELIABILITY } from './seed-figures.js';

export interface CodeSizeData {
  classes: ClassShadowSize[];
  generic: GenericSize;
  /** Per kernel series, the drivers' sizes in that series' source. */
  drivers: { series: string; tarball: string; sizes: DriverSize[] }[];
}

export interface EvaluationData {
  /** ISO time the command ran. */
  generatedAt: string;
  commit: string;
  codeSize: CodeSizeData;
  /** Why the reliability runs are not in this report (they are not run by this command yet). */
  reliabilityNotRun: string;
}

const n = (x: number): string => x.toLocaleString('en-US');
const shadowTotal = (c: ClassShadowSize): number => c.daemon.code + c.taps.code + c.helper.code;
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

function reliabilitySection(why: string): string[] {
  const out: string[] = [];
  out.push('## Reliability');
  out.push('');
  out.push(`Our columns are not filled: ${why}`);
  out.push('');
  out.push('| application | class | seed: native | seed: Nooks | seed: shadow drivers | ours: without shadowd | ours: with shadowd |');
  out.push('|---|---|---|---|---|---|---|');
  for (const a of SEED_RELIABILITY) out.push(`| ${a.app} | ${a.cls} | ${a.native} | ${a.nooks} | ${a.shadow} | not run | not run |`);
  out.push('');
  return out;
}

export function renderEvaluation(d: EvaluationData): string {
  return [
    '# Evaluation',
    '',
    `Written by \`npm run evaluate\` at ${d.generatedAt} (commit ${d.commit}); the same data is in \`docs/evaluation.json\`. Do not edit by hand.`,
    '',
    ...reliabilitySection(d.reliabilityNotRun),
    ...codeSizeSection(d.codeSize),
  ].join('\n');
}
