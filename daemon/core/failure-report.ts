// What a failure detector tells the recovery manager. Detectors (the kernel
// log for every class, and each class's own: a network TX watchdog, a
// stall poller, ...) all speak this one shape, so the manager, the history
// and the logs treat every failure alike.

/**
 * Failures any class can have: a driver's oops, BUG or WARN in the kernel
 * log, a person's request, and a device whose interrupts are lost
 * (irq-loss-detector.ts).
 */
export const GENERIC_FAILURE_KINDS = ['oops', 'bug', 'warn', 'manual', 'lost-irq'] as const;
export type GenericFailureKind = (typeof GENERIC_FAILURE_KINDS)[number];

/** A generic kind, or one a class declares (ClassDeclaration.failureKinds, e.g. net's tx-stall). */
export type FailureKind = string;

export interface FailureReport {
  /** The device's class (its sysfs class name), e.g. "net". */
  cls: string;
  /** The device's name in its class, e.g. "eth0". */
  device: string;
  kind: FailureKind;
  /** One line for the logs and the history, e.g. "transmit queue 0 stopped for 1200 ms". */
  detail: string;
  /** When the detector decided (Date.now() ms). */
  detectedAt: number;
  /** The driver's module name, when the detector knows it. */
  driver?: string;
  /** When the failure began, if the evidence says (e.g. the stall's start): detection latency = detectedAt - since. */
  since?: number;
  /**
   * A kernel log report only: the helper's recent restarts (their recovery
   * ids) that the kernel log showed before the report's line. A report read
   * during a recovery's check whose line came before that recovery's
   * restart is late evidence of the failure being recovered, not a new one.
   */
  restartsBefore?: readonly string[];
}
