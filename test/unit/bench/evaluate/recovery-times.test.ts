import { describe, expect, it } from 'vitest';
import { recoveryChart, timingsFromHistory } from '../../../../bench/evaluate/recovery-times.js';

const ctx = { cls: 'net', driver: 'e1000', kernel: '6.1', fault: 'lost-irq' };

describe('timingsFromHistory', () => {
  it('takes each recovery\'s phases, what the total holds beyond them as other, and detection plus total', () => {
    const h = { recoveries: [{ id: 'r1', trigger: 'tx-stall', result: 'recovered', phases: { detect: 700, stage: 5, restart: 900, check: 1000, total: 2000, module: { stop: 3 } } }] };
    expect(timingsFromHistory(h, ctx)).toEqual([{ ...ctx, id: 'r1', trigger: 'tx-stall', result: 'recovered', phases: { detect: 700, stage: 5, restart: 900, check: 1000, other: 95 }, totalMs: 2700 }]);
  });
  it('gives nothing for a history that is not one (a CLI error text, null) and skips a record with no total', () => {
    expect(timingsFromHistory('shadowctl: cannot connect', ctx)).toEqual([]);
    expect(timingsFromHistory(null, ctx)).toEqual([]);
    expect(timingsFromHistory({ recoveries: [{ id: 'x', phases: { detect: 1 } }, 7] }, ctx)).toEqual([]);
  });
});

describe('recoveryChart', () => {
  it('draws one labelled bar per recovery with a rect per phase it had, and escapes text', () => {
    const t = timingsFromHistory({ recoveries: [
      { id: 'a', trigger: 't', result: 'recovered', phases: { detect: 500, restart: 1000, check: 500, total: 1500 } },
      { id: 'b<', trigger: 't', result: 'failed', phases: { restart: 3000, total: 3000 } },
    ] }, ctx);
    const svg = recoveryChart(t);
    expect(svg.startsWith('<svg ')).toBe(true);
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(4);
    expect(svg).toContain('e1000 6.1 lost-irq (failed)');
    expect(svg).toContain('b&lt; restart: 3000 ms');
    expect(svg).not.toContain('b< ');
  });
});

describe('recoveryChart with the baselines', () => {
  it('adds a bar per device for its bare restart and one for its own reset where it has one, with their legend', () => {
    const t = timingsFromHistory({ recoveries: [{ id: 'a', trigger: 't', result: 'recovered', phases: { detect: 500, restart: 1000, total: 1000 } }] }, ctx);
    const svg = recoveryChart(t, {
      kernel: '6.1',
      rounds: 2,
      devices: [
        { cls: 'net', driver: 'e1000', unit: '0000:00:03.0', service: 'ping', bare: [{ unbindMs: 5, bindMs: 100, serviceMs: 900 }, { unbindMs: 5, bindMs: 100, serviceMs: 1100 }], reset: { what: 'tx timeout reset', rounds: [{ detectionMs: 5000, serviceMs: 300 }] } },
        { cls: 'sound', driver: 'snd_ens1370', unit: '0000:00:04.0', service: 'pcm', bare: [{ unbindMs: 5, bindMs: 50, serviceMs: 200 }], reset: { none: 'no reset' } },
      ],
    });
    // The recovery's two phases, then bare (2 devices) and the one reset's two segments.
    expect(svg.match(/<rect [^>]*><title>/g)).toHaveLength(6);
    expect(svg).toContain('e1000 6.1 bare unbind + bind');
    expect(svg).toContain('e1000 bare unbind + bind: median 1000 ms of 2');
    expect(svg).toContain('e1000 6.1 own reset');
    expect(svg).not.toContain('snd_ens1370 6.1 own reset');
    expect(svg).toContain('>own reset: service</text>');
  });
});
