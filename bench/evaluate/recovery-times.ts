// Recovery times of the evaluation: each recovery the reliability runs made
// with shadowd, its detection and phases as shadowd's history recorded them
// (daemon/core/recovery-history.ts PhaseTimings), as a table and as an SVG
// chart with one bar per recovery, the phases stacked, and beside them each
// driver's bare restart and own reset (restart-baselines.ts).
import { baselineRows, type Baselines } from './restart-baselines.js';

/** The phases drawn, in the order they happen. */
export const PHASES = ['detect', 'wait', 'stage', 'restart', 'check', 'other'] as const;
export type Phase = (typeof PHASES)[number];

export interface RecoveryTiming {
  cls: string;
  driver: string;
  kernel: string;
  fault: string;
  id: string;
  trigger: string;
  result: string;
  /** ms per phase; `other` is what the recovery's total holds beyond its named phases. */
  phases: Partial<Record<Phase, number>>;
  /** detect + the recovery's total: from the failure's start to the recovery's end. */
  totalMs: number;
}

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) && v >= 0 ? v : undefined);

/** The recoveries of a `shadowctl history --json` reply (or of the control request's); anything else gives none. */
export function timingsFromHistory(history: unknown, ctx: { cls: string; driver: string; kernel: string; fault: string }): RecoveryTiming[] {
  const recs = typeof history === 'object' && history !== null && Array.isArray((history as { recoveries?: unknown }).recoveries) ? (history as { recoveries: unknown[] }).recoveries : [];
  const out: RecoveryTiming[] = [];
  for (const r of recs) {
    if (typeof r !== 'object' || r === null) continue;
    const rec = r as { id?: unknown; trigger?: unknown; result?: unknown; phases?: Record<string, unknown> };
    const p = rec.phases ?? {};
    const total = num(p['total']);
    if (total === undefined) continue;
    const phases: Partial<Record<Phase, number>> = {};
    for (const k of ['detect', 'wait', 'stage', 'restart', 'check'] as const) {
      const v = num(p[k]);
      if (v !== undefined) phases[k] = v;
    }
    const named = (phases.wait ?? 0) + (phases.stage ?? 0) + (phases.restart ?? 0) + (phases.check ?? 0);
    if (total > named) phases.other = total - named;
    out.push({ ...ctx, id: String(rec.id), trigger: String(rec.trigger), result: String(rec.result), phases, totalMs: (phases.detect ?? 0) + Math.max(total, named) });
  }
  return out;
}

const COLORS: Record<Phase, string> = { detect: '#d62728', wait: '#9467bd', stage: '#8c564b', restart: '#1f77b4', check: '#2ca02c', other: '#7f7f7f' };
const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/** One bar of the chart: its label and its segments, stacked in order. */
interface Bar {
  label: string;
  segments: { name: string; ms: number; color: string; title: string }[];
  totalMs: number;
}

/** The legend's entries beyond the phases: the baselines' segments. */
const BASELINE_COLORS = { 'bare unbind + bind': '#bcbd22', 'own reset: service': '#17becf' } as const;

/** The baselines' bars: per device, its bare restart and its own reset (found after, then service), medians. */
function baselineBars(b: Baselines): Bar[] {
  const bars: Bar[] = [];
  // The same medians as the report's table (restart-baselines.ts baselineRows).
  for (const d of baselineRows(b, [])) {
    const bare = d.bare;
    if (bare) bars.push({ label: `${d.driver} ${b.kernel} bare unbind + bind`, segments: [{ name: 'bare unbind + bind', ms: bare.median, color: BASELINE_COLORS['bare unbind + bind'], title: `${d.driver} bare unbind + bind: median ${bare.median} ms of ${bare.n}` }], totalMs: bare.median });
    if ('none' in d.reset) continue;
    const { detection: found, service, total } = d.reset;
    if (!found || !service || !total) continue;
    bars.push({
      label: `${d.driver} ${b.kernel} own reset`,
      segments: [
        { name: 'detect', ms: found.median, color: COLORS.detect, title: `${d.driver} own reset found after: median ${found.median} ms` },
        { name: 'own reset: service', ms: service.median, color: BASELINE_COLORS['own reset: service'], title: `${d.driver} own reset, then service: median ${service.median} ms` },
      ],
      // The bar's length is the median of the whole (not the sum of the two medians).
      totalMs: total.median,
    });
  }
  return bars;
}

/**
 * An SVG chart: one bar per recovery, labelled with its driver, kernel and
 * fault, the phases stacked, a time axis in seconds; then, given the
 * baselines, a bar per device for its bare restart and one for its own reset.
 */
export function recoveryChart(timings: readonly RecoveryTiming[], baselines?: Baselines): string {
  const bars: Bar[] = timings.map((t) => ({
    label: `${t.driver} ${t.kernel} ${t.fault}${t.result === 'recovered' ? '' : ` (${t.result})`}`,
    segments: PHASES.filter((p) => t.phases[p]).map((p) => ({ name: p, ms: t.phases[p]!, color: COLORS[p], title: `${t.id} ${p}: ${Math.round(t.phases[p]!)} ms` })),
    totalMs: t.totalMs,
  }));
  const extra = baselines ? baselineBars(baselines) : [];
  const all = [...bars, ...extra];
  const legend: [string, string][] = [...PHASES.map((p): [string, string] => [p, COLORS[p]]), ...(extra.length > 0 ? Object.entries(BASELINE_COLORS) : [])];
  const label = 300;
  const width = 1000;
  const barH = 16;
  const gap = 6;
  const top = 40;
  const plot = width - label - 20;
  const maxMs = Math.max(1000, ...all.map((t) => t.totalMs));
  const stepS = [0.5, 1, 2, 5, 10, 20, 30, 60].find((s) => (maxMs / 1000) / s <= 10) ?? 120;
  const axisMs = Math.ceil(maxMs / 1000 / stepS) * stepS * 1000;
  const x = (ms: number): number => label + (ms / axisMs) * plot;
  const height = top + all.length * (barH + gap) + 30;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<text x="${label}" y="14" font-size="13">${extra.length > 0 ? 'Recovery time per recovery (ms), phases stacked; then each driver\'s bare restart and own reset (medians)' : 'Recovery time per recovery (ms), phases stacked'}</text>`,
  ];
  let lx = 10;
  for (const [name, color] of legend) {
    parts.push(`<rect x="${lx}" y="22" width="10" height="10" fill="${color}"/><text x="${lx + 14}" y="31">${esc(name)}</text>`);
    lx += 24 + name.length * 6;
  }
  all.forEach((t, i) => {
    const y = top + i * (barH + gap);
    parts.push(`<text x="${label - 6}" y="${y + barH - 4}" text-anchor="end">${esc(t.label)}</text>`);
    let at = 0;
    for (const seg of t.segments) {
      parts.push(`<rect x="${x(at).toFixed(1)}" y="${y}" width="${Math.max(0.5, x(at + seg.ms) - x(at)).toFixed(1)}" height="${barH}" fill="${seg.color}"><title>${esc(seg.title)}</title></rect>`);
      at += seg.ms;
    }
    parts.push(`<text x="${(x(at) + 4).toFixed(1)}" y="${y + barH - 4}">${Math.round(t.totalMs)}</text>`);
  });
  const axisY = top + all.length * (barH + gap) + 4;
  parts.push(`<line x1="${label}" y1="${axisY}" x2="${label + plot}" y2="${axisY}" stroke="#000"/>`);
  for (let s = 0; s * 1000 <= axisMs; s += stepS) {
    parts.push(`<line x1="${x(s * 1000).toFixed(1)}" y1="${axisY}" x2="${x(s * 1000).toFixed(1)}" y2="${axisY + 4}" stroke="#000"/><text x="${x(s * 1000).toFixed(1)}" y="${axisY + 16}" text-anchor="middle">${s} s</text>`);
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
