// Human-readable views of the daemon's answers: aligned tables, local times,
// and values short enough for a terminal (the full values are in --json).
import type { DeviceStatus, ShowResult, StatusResult } from '../daemon/control-protocol.js';

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

function deviceLine(d: DeviceStatus): string {
  const at = d.bus ? ` at ${d.bus}` : '';
  return `${d.name} (ifindex ${d.ifindex}, class ${d.cls}, driver ${d.driver ?? 'unknown'}${at}): ${d.mode}, ${d.health === 'ok' ? 'healthy' : 'interface absent'}`;
}

export function formatStatus(s: StatusResult, now = Date.now()): string {
  const t = s.taps;
  const taps =
    t.state === 'attached'
      ? `taps attached (${t.probes} probes)`
      : `taps ${t.state}${t.lastError ? `: ${t.lastError}` : ''}`;
  const catchingUp = s.pendingReads > 0 ? `; re-reading ${s.pendingReads} device(s)` : '';
  const head = `shadowd ${s.version} (pid ${s.pid}), up ${duration(now - s.startedAt)}; ${taps}; ${t.events} events, ${t.lost} lost, ${t.malformed} unreadable${catchingUp}`;
  if (s.devices.length === 0) return `${head}\nNo devices watched yet.`;
  const rows = s.devices.map((d) => [d.name, d.cls, d.driver ?? '-', d.bus ?? '-', d.mode, d.health, String(d.keys), String(d.holders)]);
  return `${head}\n\n${table(['DEVICE', 'CLASS', 'DRIVER', 'BUS', 'MODE', 'HEALTH', 'KEYS', 'HOLDERS'], rows)}`;
}

export function formatShow(r: ShowResult): string {
  const rows = r.entries.map((e) => [e.key, shortValue(e.value), e.setBy.pid === null ? e.setBy.comm : `${e.setBy.comm}[${e.setBy.pid}]`, localTime(e.at)]);
  const parts = [deviceLine(r.device), '', table(['KEY', 'VALUE', 'SET BY', 'WHEN'], rows)];
  if (r.holders.length > 0) {
    parts.push('', table(['HOLDS', 'PROCESS', 'COUNT', 'SINCE'], r.holders.map((h) => [h.kind, `${h.comm}[${h.pid}]`, String(h.count), localTime(h.since)])));
  } else {
    parts.push('', 'No process holds promiscuous or all-multicast mode.');
  }
  return parts.join('\n');
}
