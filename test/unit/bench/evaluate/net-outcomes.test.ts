import { describe, expect, it } from 'vitest';
import { netOutcomes, type NetRunContext } from '../../../../bench/evaluate/net-outcomes.js';
import type { ScenarioResult } from '../../../vm/classes/net/recovery-scenario-run.js';

const SHA = 'a'.repeat(64);
const ctx: NetRunContext = { driver: 'e1000', kernel: '6.1', fault: 'lost-irq', mode: 'with shadowd', sha256: SHA, crash: null };

function result(over: { copy?: Partial<ScenarioResult['copy']>; window?: Partial<ScenarioResult['window']>; sniffer?: Partial<ScenarioResult['sniffer']> } = {}): ScenarioResult {
  return {
    driver: 'e1000',
    dev: 'eth0',
    ifindexBefore: 2,
    ifindexAfter: 2,
    copy: { exitCode: 0, bytes: 25_165_824, sha256: SHA, stderr: '', ms: 9000, bytesAtFault: 1000, msToFault: 2000, progress: [], ...over.copy },
    window: { why: 'done', sent: 100, answered: 100, unanswered: 0, maxWaitMs: 900, silentMs: 300, error: null, ...over.window },
    sniffer: { aliveAfter: true, capturedAfterFault: 5000, ...over.sniffer },
    txstat: '',
    before: {},
    after: {},
    history: null,
    daemonLog: '',
  };
}
const outcomes = (r: ScenarioResult | undefined, c: Partial<NetRunContext> = {}): string[] => netOutcomes(r, { ...ctx, ...c }).map((o) => `${o.app}: ${o.outcome}`);

describe('netOutcomes', () => {
  it('all three work when the copy is whole, the session answered and the sniffer still captures', () => {
    expect(outcomes(result())).toEqual(['remote copy: works', 'remote window: works', 'packet sniffer: works']);
  });
  it('a copy that exits with an error crashed; one that exits 0 with other bytes broke', () => {
    expect(outcomes(result({ copy: { exitCode: 28, stderr: 'curl: (28) Operation too slow' } }))[0]).toBe('remote copy: app crash');
    expect(outcomes(result({ copy: { sha256: 'b'.repeat(64) } }))[0]).toBe('remote copy: app break');
  });
  it('a session that failed crashed; one that went silent broke', () => {
    expect(outcomes(result({ window: { error: 'read ECONNRESET', why: 'error' } }))[1]).toBe('remote window: app crash');
    expect(outcomes(result({ window: { silentMs: 25_000, unanswered: 40, why: 'give-up' } }))[1]).toBe('remote window: app break');
    expect(outcomes(result({ window: { unanswered: 2 } }))[1]).toBe('remote window: app break');
    expect(outcomes(result({ window: { silentMs: 2000 } }))[1]).toBe('remote window: app break');
  });
  it('a sniffer that exited crashed; one that captures nothing more broke', () => {
    expect(outcomes(result({ sniffer: { aliveAfter: false } }))[2]).toBe('packet sniffer: app crash');
    expect(outcomes(result({ sniffer: { capturedAfterFault: 100 } }))[2]).toBe('packet sniffer: app break');
  });
  it('a system crash outranks everything the applications did; a missing result is said, not guessed', () => {
    expect(outcomes(result(), { crash: 'kernel: Kernel panic' })).toEqual(['remote copy: system crash', 'remote window: system crash', 'packet sniffer: system crash']);
    expect(outcomes(undefined)).toEqual(['remote copy: no result', 'remote window: no result', 'packet sniffer: no result']);
    const failed = { ...result(), error: 'modprobe failed' };
    expect(netOutcomes(failed, ctx)[0]).toMatchObject({ outcome: 'no result', evidence: 'modprobe failed' });
  });
});
