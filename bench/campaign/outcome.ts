// Each fault of the campaign classified from what its guest observed
// (test/vm/guest/campaign-run.ts), the issue's four ends and what else can
// happen to a run:
// - recovered, app working: shadowd's last recovery of the device since the
//   fault ended `recovered` and the application finished with its data
//   checked (checksum, every acknowledged write read back, aplay exit 0);
// - recovered, app broken: recovered, but the application failed its check,
//   or a configuration change made around the fault was not kept;
// - gave up by policy: shadowd gave up on the device (clean when the fault
//   was sticky and the recoveries before it stayed within the policy);
// - not recovered: no recovery, or the last one failed;
// - machine hung or crashed: the kernel oopsed, hit a BUG, panicked, locked
//   up or hung a task after the fault, or the guest died during it;
// - harness error: the campaign's own step failed (the inject refused, ...);
// - not run: the guest died at an earlier fault of its boot.
import type { CampaignFaultResult } from '../../test/vm/guest/campaign-run.js';
import type { CampaignClass, PlannedFault } from './plan.js';

export const CAMPAIGN_OUTCOMES = ['recovered, app working', 'recovered, app broken', 'gave up by policy', 'not recovered', 'machine hung or crashed', 'harness error', 'not run'] as const;
export type CampaignOutcome = (typeof CAMPAIGN_OUTCOMES)[number];

export interface ClassifiedFault {
  plan: PlannedFault;
  outcome: CampaignOutcome;
  /** Why, in a few words. */
  why: string;
  /** The application's service gap, ms (null when it did not run or the fault was sticky). */
  gapMs: number | null;
  result: CampaignFaultResult | null;
}

/** A kernel line that is a crash or a hang (a WARN is not: the kernel goes on; it is shown as evidence). */
const CRASH = /\bOops\b|\bBUG:|kernel BUG at|Kernel panic|general protection fault|soft lockup|hard LOCKUP|blocked for more than \d+ seconds|rcu_(sched|preempt) detected stall/;

/**
 * One fault's outcome. `guestDied`: why the guest of its boot ended without
 * finishing (a crash, a hang, a time-out), null when it finished; such a
 * boot's first fault without a result is where it died.
 */
export function classifyFault(plan: PlannedFault, res: CampaignFaultResult | undefined, guestDied: { why: string; here: boolean } | null, maxRecoveries: number): ClassifiedFault {
  const base = { plan, result: res ?? null };
  if (!res) {
    if (guestDied?.here) return { ...base, outcome: 'machine hung or crashed', why: guestDied.why, gapMs: null };
    return { ...base, outcome: 'not run', why: guestDied ? `the guest had died at an earlier fault (${guestDied.why})` : 'the guest printed no result for it', gapMs: null };
  }
  const crash = res.kernel.find((l) => CRASH.test(l));
  if (crash) return { ...base, outcome: 'machine hung or crashed', why: `kernel: ${crash}`, gapMs: null };
  if (res.error !== undefined) return { ...base, outcome: 'harness error', why: res.error.split('\n')[0]!, gapMs: null };
  const recs = res.recoveries;
  const summary = recs.map((r) => r.result).join(', ');
  const gaveUp = recs.find((r) => r.result === 'gave-up');
  if (gaveUp) {
    const before = recs.filter((r) => r !== gaveUp && r.startedAt <= gaveUp.startedAt).length;
    const within = before <= maxRecoveries + 1;
    const why = `${plan.sticky ? 'sticky' : 'TRANSIENT'} fault; recoveries: ${summary}; ${within ? 'within' : 'BEYOND'} the policy (${maxRecoveries} recoveries)${gaveUp.error ? `: ${gaveUp.error}` : ''}`;
    return { ...base, outcome: 'gave up by policy', why, gapMs: null };
  }
  const last = recs.at(-1);
  if (!last || last.result !== 'recovered') {
    const app = `; ${res.app.program || 'the application'} ${res.app.ok ? 'worked' : 'failed'}: ${res.app.evidence}`;
    return { ...base, outcome: 'not recovered', why: `${last ? `recoveries: ${summary}${last.error ? ` (${last.error})` : ''}` : 'shadowd started no recovery of the device'}${app}`, gapMs: null };
  }
  const gapMs = plan.sticky ? null : res.app.gapMs;
  if (!res.app.ok) return { ...base, outcome: 'recovered, app broken', why: `${res.app.program}: ${res.app.evidence}`, gapMs };
  if (res.config && !res.config.kept) {
    return { ...base, outcome: 'recovered, app broken', why: `${res.config.what}: set ${res.config.set.map((s) => `${s.value}${s.ok ? '' : ` (failed: ${s.error})`}`).join(', ')}, ${res.config.after} afterwards`, gapMs };
  }
  return { ...base, outcome: 'recovered, app working', why: `${summary}; ${res.app.evidence}`, gapMs };
}

/** The nearest-rank percentile p (0-100) of xs, null for none. */
export function percentile(xs: readonly number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
}

export interface CampaignSummary {
  counts: Record<CampaignOutcome, number>;
  byClass: Record<CampaignClass, { counts: Partial<Record<CampaignOutcome, number>>; gaps: number; p95GapMs: number | null; maxGapMs: number | null }>;
}

export function summarize(faults: readonly ClassifiedFault[]): CampaignSummary {
  const counts = Object.fromEntries(CAMPAIGN_OUTCOMES.map((o) => [o, 0])) as Record<CampaignOutcome, number>;
  const byClass = {} as CampaignSummary['byClass'];
  for (const cls of ['net', 'block', 'sound'] as const) {
    const mine = faults.filter((f) => f.plan.cls === cls);
    const gaps = mine.map((f) => f.gapMs).filter((g): g is number => g !== null);
    const c: Partial<Record<CampaignOutcome, number>> = {};
    for (const f of mine) c[f.outcome] = (c[f.outcome] ?? 0) + 1;
    byClass[cls] = { counts: c, gaps: gaps.length, p95GapMs: percentile(gaps, 95), maxGapMs: gaps.length ? Math.max(...gaps) : null };
  }
  for (const f of faults) counts[f.outcome]++;
  return { counts, byClass };
}
