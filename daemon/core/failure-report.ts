// What a failure detector tells the recovery manager. Detectors (kernel log,
// TX watchdog tap, stall detector, manual trigger) all speak this one shape so
// the manager, the history and the logs treat every failure alike.

export type FailureKind = 'oops' | 'bug' | 'warn' | 'tx-timeout' | 'tx-stall' | 'manual';

export interface FailureReport {
  /** Interface name, e.g. "eth0". */
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
}
