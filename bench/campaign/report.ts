// The campaign's report: the counts of each outcome (overall and per class),
// the 95th-percentile service gap per class, the boots, the filesystem
// checks, and every fault that did not end "recovered, app working" with its
// evidence and logs. Markdown, from the run's JSON (pure).
import { CAMPAIGN_OUTCOMES, summarize, type ClassifiedFault } from './outcome.js';
import { CAMPAIGN_DEVICES } from './plan.js';
import type { CampaignRun } from './run.js';

const s = (ms: number | null): string => (ms === null ? '-' : `${(ms / 1000).toFixed(1)} s`);
const cell = (t: string): string => t.replace(/\|/g, '\\|').replace(/\n/g, ' ');

function faultLine(f: ClassifiedFault): string {
  const p = f.plan;
  const r = f.result?.restart;
  const other = p.other !== null ? ` (recovering ${CAMPAIGN_DEVICES[p.other]!.driver} meanwhile)` : r ? ` (shadowd stopped in ${s(r.stopMs)}, ready again ${s(r.readyMs)} after the fault)` : '';
  return `${p.n}. ${p.cls} ${p.driver}${f.result ? ` (${f.result.target})` : ''}: ${p.fault}${p.sticky ? ' sticky' : ''} at ${p.moment}${other}`;
}

export function renderCampaign(run: CampaignRun, commit: string, generatedAt: string): string {
  const sum = summarize(run.faults);
  const out: string[] = [
    '# Fault campaign',
    '',
    `\`npm run campaign -- --faults ${run.plan.length} --seed ${run.seed}\` on Debian's ${run.kernel} kernel, ${generatedAt.slice(0, 16).replace('T', ' ')} UTC (commit ${commit}): ${run.plan.length} faults in ${run.boots.length} boot${run.boots.length === 1 ? '' : 's'}, ${s(run.boots.reduce((a, b) => a + b.totalMs, 0))} of guest time.`,
    '',
    '| outcome | net | block | sound | all |',
    '|---|---|---|---|---|',
    ...CAMPAIGN_OUTCOMES.filter((o) => sum.counts[o] > 0).map((o) => `| ${o} | ${(['net', 'block', 'sound'] as const).map((c) => sum.byClass[c].counts[o] ?? 0).join(' | ')} | ${sum.counts[o]} |`),
    '',
    '| class | service gap, 95th percentile | longest | faults measured |',
    '|---|---|---|---|',
    ...(['net', 'block', 'sound'] as const).map((c) => `| ${c} | ${s(sum.byClass[c].p95GapMs)} | ${s(sum.byClass[c].maxGapMs)} | ${sum.byClass[c].gaps} |`),
    '',
    'The service gap is what the application saw: net, the longest time curl received no byte; block, the longest a writer waited for a write to be acknowledged; sound, the longest time the stream\'s hardware position did not move (faults that gave up are not counted).',
    '',
    '## Boots',
    '',
    '| faults | devices | boot to command | total | end |',
    '|---|---|---|---|---|',
    ...run.boots.map((b) => `| ${b.faults[0]}-${b.faults.at(-1)} | ${b.devices.join(', ')} | ${s(b.bootToCommandMs)} | ${s(b.totalMs)} | ${b.died ? cell(b.died) : 'finished'} |`),
    '',
  ];
  if (run.fsck.length > 0) {
    out.push('## Filesystems at the end (e2fsck -fn on each map)', '', ...run.fsck.map((f) => `- ${f.driver} (${f.map}): ${f.exitCode === 0 ? 'clean' : `exit ${f.exitCode}: ${cell(f.output.slice(-300))}`}`), '');
  }
  out.push('## Every fault', '', ...run.faults.map((f) => `${faultLine(f)} — **${f.outcome}**: ${cell(f.why)}${f.gapMs !== null ? `; gap ${s(f.gapMs)}` : ''}`), '');
  const bad = run.faults.filter((f) => f.outcome !== 'recovered, app working');
  out.push('## Faults not ending "recovered, app working", with their logs', '');
  if (bad.length === 0) out.push('None.', '');
  for (const f of bad) {
    out.push(`### ${faultLine(f)}: ${f.outcome}`, '', cell(f.why), '');
    const r = f.result;
    if (!r) continue;
    out.push('```', `inject: ${r.inject}`, ...r.recoveries.map((x) => `recovery ${x.id} ${x.device} ${x.trigger}: ${x.result}${x.error ? ` (${x.error})` : ''} ${JSON.stringify(x.phases)}`));
    if (r.other) out.push(`other: ${r.other.device} recover exit ${String(r.other.exitCode)}, in progress at the fault: ${r.other.sawInProgress}`);
    if (r.config) out.push(`config: ${r.config.what}: ${JSON.stringify(r.config.set)} -> ${r.config.after}`);
    if (r.cleanup) out.push(`cleanup: ${r.cleanup}`);
    if (r.error) out.push(`error: ${r.error}`);
    out.push('--- kernel ---', ...r.kernel, '--- shadowd ---', r.daemonLog.trim(), '```', '');
  }
  for (const b of run.boots.filter((x) => x.died)) out.push(`### Boot of faults ${b.faults[0]}-${b.faults.at(-1)}: ${b.died}`, '', '```', b.tail, '```', '');
  return out.join('\n');
}
