// What one class's reliability runner (net-reliability.ts, ...) returns: each
// application run classified, each recovery shadowd made meanwhile, and the
// seed's applications of the class it has no run of in a mode, with why.
import type { KernelSeries } from '../../test/vm/rig/cache-paths.js';
import type { AppNotRun, AppOutcome } from './outcome.js';
import type { RecoveryTiming } from './recovery-times.js';

export interface ClassRuns {
  outcomes: AppOutcome[];
  recoveries: RecoveryTiming[];
  notRun?: AppNotRun[];
}

export type ClassRunner = (kernels: readonly KernelSeries[], log: (line: string) => void) => Promise<ClassRuns>;
