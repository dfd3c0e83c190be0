// The seed's four outcomes of an application through a driver failure, and
// how a guest run shows the worst of them. An application *works* when it
// finished correctly (its data proven: a checksum, the audio, an integrity
// check); it *breaks* when it keeps running but lost data or function; it
// *crashes* when it exited with an error; the *system crashes* when the
// kernel oopsed, panicked or hung. Each class's classifier says which, with
// the evidence, from what its scenario observed.
import type { GuestResult } from '../../test/vm/rig/guest.js';

export const OUTCOMES = ['works', 'app break', 'app crash', 'system crash'] as const;
export type Outcome = (typeof OUTCOMES)[number];

export interface AppOutcome {
  /** The seed's application name (seed-figures.ts). */
  app: string;
  /** What ran as that application here: `curl`, `mpg123`, ... */
  program: string;
  cls: string;
  driver: string;
  kernel: string;
  fault: string;
  mode: 'without shadowd' | 'with shadowd';
  /** 'no result': the scenario gave none for it (its harness failed; evidence says how). */
  outcome: Outcome | 'no result';
  /** What was observed, in a few words. */
  evidence: string;
}

/** One of the seed's applications that a class's runner did not run in one mode, and why (report.ts: its cell says 'not run'). */
export interface AppNotRun {
  cls: string;
  app: string;
  mode: AppOutcome['mode'];
  why: string;
}

/** A kernel report that is a crash or a hang (a WARN is not: the kernel goes on). */
const CRASH = /\bOops\b|\bBUG:|kernel BUG at|Kernel panic|general protection fault|soft lockup|hard LOCKUP|blocked for more than \d+ seconds|rcu_(sched|preempt) detected stalls/;

/** Why the guest run is a system crash (a kernel crash or hang, or a guest that never finished), or null. */
export function systemCrash(g: Pick<GuestResult, 'exitCode' | 'timedOut' | 'kernelProblems'>): string | null {
  const crash = g.kernelProblems.find((p) => CRASH.test(p));
  if (crash) return `kernel: ${crash.split('\n').find((l) => CRASH.test(l))?.trim() ?? crash.split('\n')[0]}`;
  if (g.timedOut) return 'the guest stopped answering (timed out)';
  if (g.exitCode === null) return 'the guest died before its command finished';
  return null;
}
