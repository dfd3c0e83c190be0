// The network applications' outcomes (the seed's remote copy, remote window
// and packet sniffer), read from one NIC's result of the scenario
// (test/vm/classes/net/recovery-scenario-run.ts). The thresholds are those
// the recovery test holds shadowd to: a copy works when its checksum is the
// source's, a session when at most one line went unanswered and it was never
// silent for 2 s, a sniffer when it still captures (over 100 packets) after
// the fault.
import type { ScenarioResult } from '../../test/vm/classes/net/recovery-scenario-run.js';
import type { AppOutcome, Outcome } from './outcome.js';

export interface NetRunContext {
  driver: string;
  kernel: string;
  fault: string;
  mode: AppOutcome['mode'];
  /** The served file's checksum. */
  sha256: string;
  /** Set when the guest run was a system crash (outcome.ts systemCrash). */
  crash: string | null;
}

const lastLine = (text: string): string => text.trim().split('\n').at(-1) ?? '';

/** The three applications' outcomes on one NIC; `res` undefined or with an error when the scenario gave no result for it. */
export function netOutcomes(res: ScenarioResult | undefined, ctx: NetRunContext): AppOutcome[] {
  const base = { cls: 'net', driver: ctx.driver, kernel: ctx.kernel, fault: ctx.fault, mode: ctx.mode };
  const one = (app: string, program: string, judge: (r: ScenarioResult) => [Outcome, string]): AppOutcome => {
    if (ctx.crash) return { ...base, app, program, outcome: 'system crash', evidence: ctx.crash };
    if (!res || res.error !== undefined) return { ...base, app, program, outcome: 'no result', evidence: res?.error ?? 'the scenario printed no result for this NIC' };
    const [outcome, evidence] = judge(res);
    return { ...base, app, program, outcome, evidence };
  };
  return [
    one('remote copy', 'curl', ({ copy }) => {
      if (copy.exitCode !== 0) return ['app crash', `exit ${copy.exitCode} after ${copy.bytes} bytes: ${lastLine(copy.stderr)}`];
      if (copy.sha256 !== ctx.sha256) return ['app break', `exit 0 but the file differs (${copy.bytes} bytes, sha256 ${copy.sha256.slice(0, 12)})`];
      return ['works', `${copy.bytes} bytes, checksum matches; done ${copy.ms} ms after the fault`];
    }),
    one('remote window', 'echo session', ({ window: w }) => {
      if (w.error !== null) return ['app crash', `connection failed: ${w.error}`];
      if (w.unanswered > 1 || w.silentMs >= 2000) return ['app break', `silent for ${w.silentMs} ms, ${w.unanswered} of ${w.sent} lines unanswered (${w.why})`];
      return ['works', `${w.answered}/${w.sent} lines answered, longest wait ${w.maxWaitMs} ms`];
    }),
    one('packet sniffer', 'tcpdump', ({ sniffer: s }) => {
      if (!s.aliveAfter) return ['app crash', 'tcpdump exited'];
      if (s.capturedAfterFault <= 100) return ['app break', `still running, ${s.capturedAfterFault} packets captured after the fault`];
      return ['works', `${s.capturedAfterFault} packets captured after the fault`];
    }),
  ];
}
