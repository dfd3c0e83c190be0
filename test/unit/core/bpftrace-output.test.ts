import { describe, expect, it } from 'vitest';
import { parseBpftraceLine } from '../../../daemon/core/bpftrace-output.js';

describe('parseBpftraceLine', () => {
  it('reports attachment and lost events', () => {
    expect(parseBpftraceLine('{"type": "attached_probes", "data": {"probes": 6}}')).toEqual({ kind: 'attached', probes: 6 });
    expect(parseBpftraceLine('{"type": "lost_events", "data": {"events": 17}}')).toEqual({ kind: 'lost', count: 17 });
  });

  it('turns a printf line into a tap event', () => {
    const msg = parseBpftraceLine(
      '{"type": "printf", "data": "ev=change_flags ifindex=2 name=eth0 flags=0x1003 pid=144 ts=8596104600 comm=ip\\n"}',
    );
    expect(msg.kind).toBe('event');
    if (msg.kind === 'event') expect(msg.event.nums['ifindex']).toBe(2);
  });

  it('passes other output kinds through as ignorable', () => {
    expect(parseBpftraceLine('{"type": "map", "data": {"@x": {}}}')).toEqual({ kind: 'other', type: 'map' });
  });

  it.each([
    ['not json at all', 'not JSON'],
    ['{"type": "printf", "data": "ev=open pid=1 ts=1 comm', 'not JSON'],
    ['[1,2]', 'no "type"'],
    ['{"data": 1}', 'no "type"'],
    ['{"type": "attached_probes", "data": {}}', 'without a count'],
    ['{"type": "lost_events", "data": 5}', 'without a count'],
    ['{"type": "printf", "data": 7}', 'without text'],
    ['{"type": "printf", "data": "hello world"}', 'no comm'],
  ])('marks %j malformed (%s) and keeps it', (line, why) => {
    const msg = parseBpftraceLine(line);
    expect(msg.kind).toBe('malformed');
    if (msg.kind === 'malformed') {
      expect(msg.line).toBe(line);
      expect(msg.reason).toContain(why);
    }
  });
});
