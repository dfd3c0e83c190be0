// Recovery times of the evaluation: each recovery the reliability runs made
// with shadowd, its detection and phases as shadowd's history recorded them
// (daemon/core/recovery-history.ts PhaseTimings), as a table and as an SVG
// chart with one bar per recovery, the phases stacked.

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

/** An SVG chart: one bar per recovery, labelled with its driver, kernel and fault, the phases stacked, a time axis in seconds. */
export function recoveryChart(timings: readonly RecoveryTiming[]): string {
  const label = 260;
  const width = 900;
  const barH = 16;
  const gap = 6;
  const top = 40;
  const plot = width - label - 20;
  const maxMs = Math.max(1000, ...timings.map((t) => t.totalMs));
  const stepS = [0.5, 1, 2, 5, 10, 20, 30, 60].find((s) => (maxMs / 1000) / s <= 10) ?? 120;
  const axisMs = Math.ceil(maxMs / 1000 / stepS) * stepS * 1000;
  const x = (ms: number): number => label + (ms / axisMs) * plot;
  const height = top + timings.length * (barH + gap) + 30;
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif" font-size="11">`,
    `<text x="${label}" y="14" font-size="13">Recovery time per recovery (ms), phases stacked</text>`,
  ];
  PHASES.forEach((p, i) => {
    parts.push(`<rect x="${label + i * 95}" y="22" width="10" height="10" fill="${COLORS[p]}"/><text x="${label + i * 95 + 14}" y="31">${p}</text>`);
  });
  timings.forEach((t, i) => {
    const y = top + i * (barH + gap);
    parts.push(`<text x="${label - 6}" y="${y + barH - 4}" text-anchor="end">${esc(`${t.driver} ${t.kernel} ${t.fault}${t.result === 'recovered' ? '' : ` (${t.result})`}`)}</text>`);
    let at = 0;
    for (const p of PHASES) {
      const ms = t.phases[p];
      if (!ms) continue;
      parts.push(`<rect x="${x(at).toFixed(1)}" y="${y}" width="${Math.max(0.5, x(at + ms) - x(at)).toFixed(1)}" height="${barH}" fill="${COLORS[p]}"><title>${esc(`${t.id} ${p}: ${Math.round(ms)} ms`)}</title></rect>`);
      at += ms;
    }
    parts.push(`<text x="${(x(at) + 4).toFixed(1)}" y="${y + barH - 4}">${Math.round(t.totalMs)}</text>`);
  });
  const axisY = top + timings.length * (barH + gap) + 4;
  parts.push(`<line x1="${label}" y1="${axisY}" x2="${label + plot}" y2="${axisY}" stroke="#000"/>`);
  for (let s = 0; s * 1000 <= axisMs; s += stepS) {
    parts.push(`<line x1="${x(s * 1000).toFixed(1)}" y1="${axisY}" x2="${x(s * 1000).toFixed(1)}" y2="${axisY + 4}" stroke="#000"/><text x="${x(s * 1000).toFixed(1)}" y="${axisY + 16}" text-anchor="middle">${s} s</text>`);
  }
  parts.push('</svg>');
  return `${parts.join('\n')}\n`;
}
