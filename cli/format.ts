// Human-readable views of the daemon's answers: aligned tables, local times,
// and values short enough for a terminal (the full values are in --json).
import { formatConfigError } from '../daemon/service/config.js';
import type { DeviceStatus, HistoryResult, InjectResult, ReloadResult, ShowResult, StatusResult } from '../daemon/control/control-protocol.js';
import type { PhaseTimings, RecoveryRecord } from '../daemon/core/recovery-history.js';
import { modulePhases } from '../daemon/core/helper-protocol.js';

/** C0 controls (ESC among them), DEL and C1 controls: what a terminal may act on rather than print. */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/g;
/**
 * Unicode's format characters that reorder or break what follows them
 * rather than print: the bidirectional marks, embeddings, overrides and
 * isolates (a device alias "\u202eexe.txt" reads as "txt.exe"), and the line
 * and paragraph separators.
 */
const REORDERING = /[\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

/**
 * A string from the system (a process's comm, a device, driver or module
 * name, a setting's value, a daemon message) as a terminal can show it: every
 * control character as \xHH, so a process named "\x1b]0;owned\x07" cannot
 * drive the terminal, and every reordering character as \uHHHH, so a name
 * cannot make the text around it read otherwise. Newlines and tabs too: a
 * value stays on its line.
 */
export function visible(text: string): string {
  return text
    .replace(CONTROL, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`)
    .replace(REORDERING, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** A daemon answer with every string in it, object keys too, passed through visible(): what the human views are given. */
export function visibleDeep<T>(value: T): T {
  if (typeof value === 'string') return visible(value) as T;
  if (Array.isArray(value)) return value.map((v: unknown) => visibleDeep(v)) as T;
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [visible(k), visibleDeep(v)])) as T;
  }
  return value;
}

export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function duration(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  const parts = [[Math.floor(s / 86400), 'd'], [Math.floor((s % 86400) / 3600), 'h'], [Math.floor((s % 3600) / 60), 'm'], [s % 60, 's']] as const;
  const shown = parts.filter(([n], i) => n > 0 || i === parts.length - 1);
  return shown.slice(0, 2).map(([n, u]) => `${n}${u}`).join('');
}

export function localTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number): string => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

const MAX_VALUE = 60;
export function shortValue(value: unknown): string {
  const text = typeof value === 'string' ? value : JSON.stringify(value);
  return text.length > MAX_VALUE ? `${text.slice(0, MAX_VALUE - 1)}…` : text;
}

/** A device's class attributes, as its class names them: "ifindex 2". */
function attrText(d: DeviceStatus): string {
  return Object.entries(d.attrs ?? {})
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
}

function deviceLine(d: DeviceStatus): string {
  const at = d.bus ? ` at ${d.bus}` : '';
  const attrs = attrText(d);
  return `${d.cls}:${d.name} (${attrs ? `${attrs}, ` : ''}class ${d.cls}, driver ${d.driver ?? 'unknown'}${at}): ${d.mode}, ${d.health === 'ok' ? 'healthy' : 'device absent'}`;
}

/** A line when the shadow does not reach its file, or a corrupt file was moved aside; null when all is well. */
export function persistenceLine(p: NonNullable<StatusResult['persistence']>, now = Date.now()): string | null {
  const aside = p.movedAside ? `${p.path} was corrupt at start and is kept as ${p.movedAside}` : null;
  if (p.state === 'ok') return aside ? `state: ${aside}` : null;
  const since = p.since === null ? '' : ` for ${duration(now - p.since)}`;
  const retry = p.nextRetryAt === null ? 'no retry (restart shadowd once the file can be opened)' : `next retry in ${duration(Math.max(0, p.nextRetryAt - now))}`;
  const lines = [
    `state: DEGRADED${since}: not persisted to ${p.path} (${p.code ?? 'error'}: ${p.error ?? 'unknown'}); the shadow is kept in memory, ${p.pending} change(s) wait; ${retry}`,
  ];
  if (aside) lines.push(`state: ${aside}`);
  return lines.join('\n');
}

export function formatStatus(s: StatusResult, now = Date.now()): string {
  const t = s.taps;
  const taps =
    t.state === 'attached'
      ? `taps attached (${t.probes} probes)`
      : `taps ${t.state}${t.lastError ? `: ${t.lastError}` : ''}`;
  const catchingUp = s.pendingReads > 0 ? `; re-reading ${s.pendingReads} device(s)` : '';
  const persistence = s.persistence ? persistenceLine(s.persistence, now) : null;
  const head = `shadowd ${s.version} (pid ${s.pid}), up ${duration(now - s.startedAt)}; ${taps}; ${t.events} events, ${t.lost} lost, ${t.malformed} unreadable${catchingUp}${persistence ? `\n${persistence}` : ''}`;
  const unrecovered = unrecoveredLines(s.unrecovered ?? []);
  if (s.devices.length === 0) return `${head}\nNo devices watched yet.${unrecovered}`;
  const rows = s.devices.map((d) => [d.name, d.cls, d.driver ?? '-', d.bus ?? '-', d.mode, d.health, String(d.keys), String(d.holders)]);
  return `${head}\n\n${table(['DEVICE', 'CLASS', 'DRIVER', 'BUS', 'MODE', 'HEALTH', 'KEYS', 'HOLDERS'], rows)}${unrecovered}`;
}

/** The devices whose latest recovery did not bring them back, each with why (a refused restart says what it would have lost). */
function unrecoveredLines(list: NonNullable<StatusResult['unrecovered']>): string {
  if (list.length === 0) return '';
  const lines = list.map((u) => `  ${u.cls}:${u.device}: ${u.result} at ${localTime(u.at)} (recovery ${u.id}): ${u.error ?? 'no reason recorded'}`);
  return `\n\nLatest recovery did not bring the device back:\n${lines.join('\n')}`;
}

export function formatShow(r: ShowResult): string {
  const rows = r.entries.map((e) => [e.key, shortValue(e.value), e.setBy.pid === null ? e.setBy.comm : `${e.setBy.comm}[${e.setBy.pid}]`, localTime(e.at)]);
  const parts = [deviceLine(r.device), '', table(['KEY', 'VALUE', 'SET BY', 'WHEN'], rows)];
  if (r.holders.length > 0) {
    parts.push('', table(['HOLDS', 'PROCESS', 'COUNT', 'SINCE'], r.holders.map((h) => [h.kind, `${h.comm}[${h.pid}]`, String(h.count), localTime(h.since)])));
  } else {
    parts.push('', 'No process holds a reference on the device.');
  }
  return parts.join('\n');
}

/**
 * "detect 1200 ms, restart 850 ms (stop 10, release 5, probe 600, replay 30, open 205 ms), check 40 ms, total 900 ms";
 * a reload's restart has "unload N, load N" after release.
 */
export function phaseSummary(p: PhaseTimings): string {
  const parts: string[] = [];
  if (p.detect !== undefined) parts.push(`detect ${p.detect} ms`);
  if (p.wait !== undefined) parts.push(`wait ${p.wait} ms`);
  if (p.stage !== undefined) parts.push(`stage ${p.stage} ms`);
  if (p.restart !== undefined) {
    const m = p.module;
    const inside = m ? ` (${modulePhases(m)})` : '';
    parts.push(`restart ${p.restart} ms${inside}`);
  }
  if (p.check !== undefined) parts.push(`check ${p.check} ms`);
  if (p.total !== undefined) parts.push(`total ${p.total} ms`);
  return parts.length ? parts.join(', ') : 'none';
}

function headline(r: RecoveryRecord): string {
  const what = r.trigger === 'replay' ? 'replay' : 'recovery';
  const took = r.phases.total === undefined ? '' : ` in ${r.phases.total} ms`;
  switch (r.result) {
    case 'recovered':
      return `recovered${took} (${r.id})`;
    case 'replayed':
      return `configuration replayed${took} (${r.id})`;
    case 'failed':
      return `${what} ${r.id} failed`;
    case 'gave-up':
      return `shadowd gave up (${r.id})`;
    case 'interrupted':
      return `${what} ${r.id} was interrupted`;
    case 'in-progress':
      return `${what} ${r.id} is in progress`;
  }
}

/** How the driver was restarted: "reload (module e1000)", "reprobe", or null when no restart was asked for. */
export function methodText(r: Pick<RecoveryRecord, 'method' | 'module'>): string | null {
  // Records from an older shadowd have neither field.
  if (!r.method) return null;
  return r.method === 'reload' && r.module ? `reload (module ${r.module})` : r.method;
}

/** One recovery (the answer to recover and replay). */
export function formatRecovery(r: RecoveryRecord): string {
  const lines = [`${r.cls}:${r.device}: ${headline(r)}`, `  trigger: ${r.trigger}${r.detail ? `: ${r.detail}` : ''}`];
  if (r.driver) lines.push(`  driver:  ${r.driver}`);
  const method = methodText(r);
  if (method) lines.push(`  method:  ${method}`);
  lines.push(`  phases:  ${phaseSummary(r.phases)}`);
  if (r.steps.length) lines.push(`  steps:   ${r.steps.map((s) => `${s.key} ${s.result}${s.error ? ` (${s.error})` : ''}`).join(', ')}`);
  if (r.merged) lines.push(`  merged:  ${r.merged} more failure report${r.merged === 1 ? '' : 's'}`);
  if (r.error) lines.push(`  ${r.result === 'recovered' || r.result === 'replayed' ? 'note' : 'reason'}:  ${r.error}`);
  return lines.join('\n');
}

/** The history as a table; phase times in ms ("-": the phase did not run). */
export function formatHistory(h: HistoryResult, device?: string): string {
  if (h.recoveries.length === 0) return `No recoveries recorded${device ? ` for ${device}` : ''}.`;
  const ms = (n: number | undefined): string => (n === undefined ? '-' : String(n));
  const rows = h.recoveries.map((r) => [
    r.id,
    `${r.cls}:${r.device}`,
    r.trigger,
    r.result,
    r.method ?? '-',
    localTime(r.startedAt),
    ms(r.phases.detect),
    ms(r.phases.wait),
    ms(r.phases.restart),
    ms(r.phases.check),
    ms(r.phases.total),
    [r.error ?? '', r.merged ? `+${r.merged} merged` : ''].filter(Boolean).join('; '),
  ]);
  const head = ['ID', 'DEVICE', 'TRIGGER', 'RESULT', 'METHOD', 'STARTED', 'DETECT', 'WAIT', 'RESTART', 'CHECK', 'TOTAL', 'NOTE'];
  return (
    `${table(head, rows)}\n\nMETHOD: how the driver was restarted (reprobe: the device probed again; reload: its module unloaded and loaded first). ` +
    "Phase times in ms; shadowctl history --json has the helper's own timings, the reloaded module and each replay step."
  );
}

export function formatInject(r: InjectResult): string {
  if (r.fault === 'clear') return `${r.device}: injected fault cleared`;
  return `${r.device}: fault ${r.fault} injected${r.sticky ? ' (sticky: it comes back after every restart)' : ''}`;
}

/** A reload: what changed, or each error in the file (file:line: key: message) and that nothing changed. */
export function formatReload(r: ReloadResult): string {
  if (!r.ok) {
    const n = r.errors.length;
    return [`shadowd refused ${r.file}: ${n} error${n === 1 ? '' : 's'}; it keeps running with its previous configuration`, ...r.errors.map((e) => `  ${formatConfigError(e)}`)].join(
      '\n',
    );
  }
  if (r.changes.length === 0) return `shadowd reloaded ${r.file}: nothing changed`;
  return [`shadowd reloaded ${r.file}; now in force:`, ...r.changes.map((c) => `  ${c}`)].join('\n');
}
