// What one class's reliability runner (net-reliability.ts, ...) returns: each
// application run classified, and each recovery shadowd made meanwhile.
import type { KernelSeries } from '../../test/vm/rig/cache-paths.js';
import type { AppOutcome } from './outcome.js';
import type { RecoveryTiming } from './recovery-times.js';

export interface ClassRuns {
  outcomes: AppOutcome[];
  recoveries: RecoveryTiming[];
}

export type ClassRunner = (kernels: readonly KernelSeries[], log: (line: string) => void) => Promise<ClassRuns>;
