// Handing a detector's failure report on to its consumer (the recovery
// manager's report(), through the policy filter). Every detector does it from
// somewhere a failing consumer must not take down: the taps' output reader,
// a poll round, the kernel log's delivery of the reports after this one. So
// the hand-off catches what the consumer throws (or, for a consumer that
// returns a promise, rejects with) and logs it at err, and never throws
// itself. One function, so that every detector does it the same way.
import type { LogFields, Logger } from '../service/log.js';

/** Where a failed hand-off is logged, and what it says was handed on. */
export interface HandOff {
  logger: Logger;
  /** What the report is of, as the log names it: `handing on a ${what} report failed: …` ('tx-timeout', 'kernel oops'). */
  what: string;
  /** The journald fields of the log line (SHADOWD_COMPONENT of the caller). */
  fields: LogFields;
}

/**
 * Calls @report and awaits what it returns. Resolves with that value; or,
 * when @report throws or rejects, logs why at err and resolves with
 * undefined. Never rejects. A @report that throws does so before this
 * returns, and is logged before this returns: a synchronous caller may
 * `void` the promise and keep its order of logs.
 */
export async function handOnReport<T>(report: () => T | PromiseLike<T>, how: HandOff): Promise<T | undefined> {
  try {
    return await report();
  } catch (err) {
    how.logger.log('err', `handing on a ${how.what} report failed: ${err instanceof Error ? err.message : String(err)}`, how.fields);
    return undefined;
  }
}
