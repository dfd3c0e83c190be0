// The failure detectors, started together: the kernel log (oops, BUG, WARN,
// TX watchdog messages), the transmit-stall poller on the helper's txstat,
// and the TX watchdog tracepoint among the tap events. Each speaks
// FailureReport to one `report` function (the recovery manager's).
import type { FailureReport } from './failure-report.js';
import { KernelLogWatch, type KernelLogWatchOptions, type SelfFault } from './kernel-log-watch.js';
import type { Logger } from '../service/log.js';
import { StallDetector, type StallDetectorOptions } from '../classes/net/stall-detector.js';
import type { TapEvent } from './tap-record.js';

/** The failure an ev=xmit_timeout tap event (bpf/netdev-class.bt) stands for, or null for any other event. */
export function txTimeoutFromTap(e: TapEvent, now: number): FailureReport | null {
  const device = e.strs['name'];
  if (e.call !== 'xmit_timeout' || !device) return null;
  const driver = e.strs['driver'];
  return {
    device,
    kind: 'tx-timeout',
    // The tracepoint names the driver, not its module: left to the detail, the manager knows the module.
    detail: `kernel TX watchdog: transmit queue ${e.nums['queue'] ?? '?'} timed out${driver ? ` (driver ${driver})` : ''}`,
    detectedAt: now,
  };
}

export interface DetectorsOptions {
  logger: Logger;
  /** Where every failure goes: the recovery manager's report(). */
  report: (failure: FailureReport) => void;
  /** A kernel report blamed on shadow_helper itself; already logged at err. Never recover from it. */
  onSelfFault?: (fault: SelfFault) => void;
  /** The interfaces the stall detector polls (the shadow's present devices). */
  devices: () => Iterable<string>;
  /** `txstat` through the helper (stall-detector.ts helperTxstat); without it there is no stall detector. */
  txstat?: (device: string) => Promise<string>;
  stall?: Pick<StallDetectorOptions, 'pollMs' | 'thresholdMs'>;
  /** false: no kernel log watch (tests); else options for it. */
  kernelLog?: false | Partial<Omit<KernelLogWatchOptions, 'logger' | 'onReport' | 'onSelfFault'>>;
  now?: () => number;
}

export interface Detectors {
  readonly kernelLog: KernelLogWatch | null;
  readonly stall: StallDetector | null;
  /** Hand every tap event here (Ingest's onTxTimeout): reports the TX watchdog tracepoint's. */
  onTapEvent(e: TapEvent): void;
  stop(): Promise<void>;
}

/**
 * Starts the detectors. One that cannot start (no /dev/kmsg access, say) is
 * logged at err and left out; the others run.
 */
export function startDetectors(opts: DetectorsOptions): Detectors {
  const { logger } = opts;
  const now = opts.now ?? Date.now;
  let kernelLog: KernelLogWatch | null = null;
  if (opts.kernelLog !== false) {
    const watch = new KernelLogWatch({
      ...opts.kernelLog,
      logger,
      now,
      onReport: opts.report,
      onSelfFault: (f) => opts.onSelfFault?.(f),
    });
    try {
      watch.start();
      kernelLog = watch;
    } catch (err) {
      logger.log('err', `cannot watch the kernel log, so oops, BUG and WARN reports go unseen: ${err instanceof Error ? err.message : String(err)}`, {
        SHADOWD_COMPONENT: 'kernel-log',
      });
    }
  }
  let stall: StallDetector | null = null;
  if (opts.txstat) {
    stall = new StallDetector({ txstat: opts.txstat, devices: opts.devices, onReport: opts.report, logger, now, ...opts.stall });
    stall.start();
  }
  return {
    kernelLog,
    stall,
    onTapEvent(e) {
      const r = txTimeoutFromTap(e, now());
      if (!r) return;
      logger.log('warning', `${r.device}: tx-timeout: ${r.detail}`, { SHADOWD_COMPONENT: 'taps', SHADOWD_DEVICE: r.device });
      try {
        opts.report(r);
      } catch (err) {
        // Called from the taps' output reader: a failing consumer must not take the taps down.
        logger.log('err', `handing on a tx-timeout report failed: ${err instanceof Error ? err.message : String(err)}`, { SHADOWD_COMPONENT: 'taps' });
      }
    },
    async stop() {
      kernelLog?.stop();
      await Promise.all([stall?.stop(), kernelLog?.settled()]);
    },
  };
}
