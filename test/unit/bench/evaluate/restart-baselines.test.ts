import { describe, expect, it } from 'vitest';
import { baselineRows, parseBareResult, spread, type Baselines } from '../../../../bench/evaluate/restart-baselines.js';
import type { RecoveryTiming } from '../../../../bench/evaluate/recovery-times.js';

const recovery = (driver: string, totalMs: number, detect: number, over: Partial<RecoveryTiming> = {}): RecoveryTiming => ({
  cls: 'sound', driver, kernel: '6.1', fault: 'lost-irq', id: `r${totalMs}`, trigger: 'stream-stall', result: 'recovered', phases: { detect, restart: totalMs - detect }, totalMs, ...over,
});

describe('spread', () => {
  it('is the median with the range and count, the mean of the middle two for an even count, null for none', () => {
    expect(spread([300, 100, 200])).toEqual({ median: 200, min: 100, max: 300, n: 3 });
    expect(spread([100, 200])).toEqual({ median: 150, min: 100, max: 200, n: 2 });
    expect(spread([])).toBeNull();
  });
});

describe('baselineRows', () => {
  const b: Baselines = {
    kernel: '6.1',
    rounds: 2,
    devices: [
      { cls: 'sound', driver: 'snd_ens1370', unit: '0000:00:04.0', service: 'pcm', bare: [{ unbindMs: 5, bindMs: 50, serviceMs: 200 }, { unbindMs: 5, bindMs: 50, serviceMs: 400 }], reset: { none: 'no reset' } },
      { cls: 'net', driver: 'e1000', unit: '0000:00:03.0', service: 'ping', bare: [], reset: { what: 'tx timeout reset', rounds: [{ detectionMs: 5000, serviceMs: 300 }, { detectionMs: 6000, serviceMs: 500 }] }, error: 'no answer' },
    ],
  };

  it('sets each device beside the recovered recoveries of its driver on its kernel only, with and without detection', () => {
    const recs = [
      recovery('snd_ens1370', 2000, 500),
      recovery('snd-ens1370', 4000, 1000),
      recovery('snd_ens1370', 9000, 100, { kernel: '6.12' }),
      recovery('snd_ens1370', 9000, 100, { result: 'failed' }),
      recovery('snd_ens1370', 9000, 100, { cls: 'net' }),
    ];
    const [sound, net] = baselineRows(b, recs);
    expect(sound).toMatchObject({ cls: 'sound', driver: 'snd_ens1370', recovered: { median: 3000, min: 2000, max: 4000, n: 2 }, recoveryOnly: { median: 2250, n: 2 }, bare: { median: 300, n: 2 }, reset: { none: 'no reset' } });
    expect(net).toMatchObject({ recovered: null, bare: null, error: 'no answer', reset: { what: 'tx timeout reset', detection: { median: 5500 }, service: { median: 400 }, total: { median: 5900 } } });
  });
});

describe('parseBareResult', () => {
  it('reads the result line, and nothing from a missing, broken or wrongly shaped one', () => {
    expect(parseBareResult('[bare] x\nBARE_RESULT {"devices":[]}\n')).toEqual({ devices: [] });
    expect(parseBareResult('no result')).toBeNull();
    expect(parseBareResult('BARE_RESULT {"devices":')).toBeNull();
    expect(parseBareResult('BARE_RESULT {"devices":7}')).toBeNull();
    expect(parseBareResult('BARE_RESULT null')).toBeNull();
  });
});
