import { describe, expect, it } from 'vitest';
import { systemCrash } from '../../../../bench/evaluate/outcome.js';
import { outcomeCounts } from '../../../../bench/evaluate/report.js';
import type { AppOutcome } from '../../../../bench/evaluate/outcome.js';

describe('systemCrash', () => {
  const ok = { exitCode: 0, timedOut: false, kernelProblems: [] };
  it('is null for a guest that finished with no kernel report, or with a WARN only', () => {
    expect(systemCrash(ok)).toBeNull();
    expect(systemCrash({ ...ok, kernelProblems: ['e1000 0000:00:03.0: something\nWARNING: CPU: 0 PID: 1 at net/core/dev.c:1 f+0x1/0x2'] })).toBeNull();
  });
  it('names the crash line of an oops, a BUG, a panic or a hung task, and a guest that hung or died', () => {
    expect(systemCrash({ ...ok, kernelProblems: ['x\nBUG: kernel NULL pointer dereference, address: 0\ny'] })).toBe('kernel: BUG: kernel NULL pointer dereference, address: 0');
    expect(systemCrash({ ...ok, kernelProblems: ['INFO: task kworker/0:1:12 blocked for more than 120 seconds.'] })).toMatch(/blocked for more than/);
    expect(systemCrash({ ...ok, exitCode: null, timedOut: true })).toMatch(/stopped answering/);
    expect(systemCrash({ ...ok, exitCode: null })).toMatch(/died/);
  });
});

describe('outcomeCounts', () => {
  const run = (outcome: AppOutcome['outcome']): AppOutcome => ({ app: 'a', program: 'p', cls: 'net', driver: 'd', kernel: '6.1', fault: 'f', mode: 'with shadowd', outcome, evidence: '' });
  it('counts each outcome, worst first, and says when nothing ran', () => {
    expect(outcomeCounts([run('works'), run('app crash'), run('works'), run('no result')], undefined)).toBe('no result 1, app crash 1, works 2');
    expect(outcomeCounts([], 'not yet')).toBe('not run');
    expect(outcomeCounts([], undefined)).toBe('no run');
  });
});
