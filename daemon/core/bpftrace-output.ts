// Reads bpftrace's `-f json` output: one JSON object per line. Tap events come
// as printf messages holding a tap record; bpftrace also reports attachment,
// lost events and errors. Any line we cannot read becomes a `malformed`
// message so the caller logs it and goes on: bad input never stops ingest.
import { parseTapRecord, TapRecordError, type TapEvent } from './tap-record.js';

export type BpftraceMessage =
  | { kind: 'attached'; probes: number }
  | { kind: 'event'; event: TapEvent }
  | { kind: 'lost'; count: number }
  /** Output of other kinds (maps printed at exit, time stamps) that ingest ignores. */
  | { kind: 'other'; type: string }
  | { kind: 'malformed'; line: string; reason: string };

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function parseBpftraceLine(line: string): BpftraceMessage {
  const malformed = (reason: string): BpftraceMessage => ({ kind: 'malformed', line, reason });
  let msg: unknown;
  try {
    msg = JSON.parse(line);
  } catch {
    return malformed('not JSON');
  }
  if (!isRecord(msg) || typeof msg['type'] !== 'string') return malformed('no "type" field');
  const data = msg['data'];
  switch (msg['type']) {
    case 'attached_probes': {
      const probes = isRecord(data) ? data['probes'] : undefined;
      return typeof probes === 'number' ? { kind: 'attached', probes } : malformed('attached_probes without a count');
    }
    case 'lost_events': {
      const events = isRecord(data) ? data['events'] : undefined;
      return typeof events === 'number' ? { kind: 'lost', count: events } : malformed('lost_events without a count');
    }
    case 'printf': {
      if (typeof data !== 'string') return malformed('printf without text');
      try {
        return { kind: 'event', event: parseTapRecord(data) };
      } catch (err) {
        if (err instanceof TapRecordError) return malformed(err.message);
        throw err;
      }
    }
    default:
      return { kind: 'other', type: msg['type'] };
  }
}
