import { describe, expect, it } from 'vitest';
import { classifyFault, percentile, summarize } from '../../../../bench/campaign/outcome.js';
import type { PlannedFault } from '../../../../bench/campaign/plan.js';
import type { CampaignFaultResult } from '../../../vm/guest/campaign-run.js';

const plan = (over: Partial<PlannedFault> = {}): PlannedFault => ({ n: 1, device: 0, cls: 'net', driver: 'e1000', fault: 'tx-hang', sticky: false, moment: 'load', other: null, ...over });
type Rec = CampaignFaultResult['recoveries'][number];
const rec = (result: Rec['result'], startedAt = 1000, error: string | null = null): Rec => ({ id: `r${startedAt}`, device: 'eth0', trigger: 'tx-stall', result, error, phases: {}, startedAt, endedAt: startedAt + 500 });
function result(over: Partial<CampaignFaultResult> = {}): CampaignFaultResult {
  return {
    plan: plan(),
    target: 'eth0',
    inject: 'eth0: fault tx-hang injected',
    recoveries: [rec('recovered')],
    other: null,
    app: { program: 'curl', ok: true, evidence: 'checksum matches', gapMs: 1800 },
    config: null,
    cleanup: null,
    kernel: [],
    daemonLog: '',
    ms: 9000,
    ...over,
  };
}
const outcome = (p: PlannedFault, r: CampaignFaultResult | undefined, died: { why: string; here: boolean } | null = null): string => classifyFault(p, r, died, 3).outcome;

describe('classifyFault', () => {
  it('recovered with the application working when the last recovery recovered and the app checked its data', () => {
    const c = classifyFault(plan(), result(), null, 3);
    expect(c.outcome).toBe('recovered, app working');
    expect(c.gapMs).toBe(1800);
  });

  it('recovered with the application broken when its check failed, or a configuration change was lost', () => {
    expect(outcome(plan(), result({ app: { program: 'curl', ok: false, evidence: 'exit 28', gapMs: 20000 } }))).toBe('recovered, app broken');
    const config = { what: 'mtu of eth0', set: [{ value: '1300', ok: true, error: '' }, { value: '1305', ok: true, error: '' }], after: '1300', kept: false };
    const c = classifyFault(plan({ moment: 'config' }), result({ config }), null, 3);
    expect(c.outcome).toBe('recovered, app broken');
    expect(c.why).toMatch(/1300, 1305, 1300 afterwards/);
    expect(outcome(plan({ moment: 'config' }), result({ config: { ...config, after: '1305', kept: true } }))).toBe('recovered, app working');
  });

  it('a failed recovery followed by one that recovered counts as recovered', () => {
    expect(outcome(plan(), result({ recoveries: [rec('failed', 1000), rec('recovered', 3000)] }))).toBe('recovered, app working');
  });

  it('gave up by policy, saying whether the fault was sticky and the recoveries within the policy', () => {
    const sticky = classifyFault(plan({ sticky: true }), result({ recoveries: [rec('failed', 1), rec('failed', 2), rec('failed', 3), rec('gave-up', 4, 'too many failures')], app: { program: 'curl', ok: false, evidence: 'exit 28', gapMs: null } }), null, 3);
    expect(sticky.outcome).toBe('gave up by policy');
    expect(sticky.why).toMatch(/^sticky fault; .* within the policy .*too many failures/);
    expect(sticky.gapMs).toBeNull();
    const transient = classifyFault(plan(), result({ recoveries: [rec('gave-up', 4)] }), null, 3);
    expect(transient.why).toMatch(/^TRANSIENT/);
  });

  it('not recovered when no recovery started or the last failed', () => {
    expect(outcome(plan(), result({ recoveries: [] }))).toBe('not recovered');
    expect(classifyFault(plan(), result({ recoveries: [] }), null, 3).why).toMatch(/no recovery/);
    expect(outcome(plan(), result({ recoveries: [rec('recovered', 1), rec('failed', 2)] }))).toBe('not recovered');
  });

  it('machine hung or crashed on a kernel crash line after the fault, or where the guest died; later faults of that boot not run', () => {
    expect(outcome(plan(), result({ kernel: ['[12.000] BUG: kernel NULL pointer dereference, address: 0000000000000008'] }))).toBe('machine hung or crashed');
    expect(outcome(plan(), result({ kernel: ['[12.000] INFO: task kworker/0:1:12 blocked for more than 120 seconds.'] }))).toBe('machine hung or crashed');
    // A WARN alone is not a crash.
    expect(outcome(plan(), result({ kernel: ['[12.000] WARNING: CPU: 0 PID: 1 at net/sched/sch_generic.c:525'] }))).toBe('recovered, app working');
    expect(outcome(plan(), undefined, { why: 'the guest stopped answering (timed out)', here: true })).toBe('machine hung or crashed');
    expect(outcome(plan(), undefined, { why: 'the guest stopped answering (timed out)', here: false })).toBe('not run');
    expect(outcome(plan(), undefined)).toBe('not run');
  });

  it('harness error when the campaign step itself threw', () => {
    expect(outcome(plan(), result({ error: 'Error: shadowctl inject failed (1): busy\n  at ...' }))).toBe('harness error');
  });
});

describe('percentile and summarize', () => {
  it('takes the nearest-rank percentile', () => {
    expect(percentile([], 95)).toBeNull();
    expect(percentile([5], 95)).toBe(5);
    expect(percentile(Array.from({ length: 100 }, (_, i) => i + 1), 95)).toBe(95);
    expect(percentile([3, 1, 2], 50)).toBe(2);
  });

  it('counts outcomes overall and per class, with each class\'s gaps', () => {
    const faults = [
      classifyFault(plan(), result(), null, 3),
      classifyFault(plan({ n: 2 }), result({ app: { program: 'curl', ok: true, evidence: '', gapMs: 4000 } }), null, 3),
      classifyFault(plan({ n: 3, cls: 'block', driver: 'ahci', fault: 'fail-stop' }), result({ recoveries: [] }), null, 3),
    ];
    const s = summarize(faults);
    expect(s.counts['recovered, app working']).toBe(2);
    expect(s.counts['not recovered']).toBe(1);
    expect(s.byClass.net).toEqual({ counts: { 'recovered, app working': 2 }, gaps: 2, p95GapMs: 4000, maxGapMs: 4000 });
    expect(s.byClass.block.p95GapMs).toBeNull();
    expect(s.byClass.sound.counts).toEqual({});
  });
});
