// The failure detectors, started together: the kernel log (oops, BUG, WARN
// for every class, and each class's own kernel reports) and each class's
// own detectors (a stall poller, a tap-event watcher), and the lost
// interrupt detector for every class's PCI devices. Every one speaks
// FailureReport to one `report` function (the policy filter, then the
// recovery manager's).
import type { ClassDetectors } from './device-class.js';
import type { FailureReport } from './failure-report.js';
import type { KernelLogRule } from './kernel-faults.js';
import { IrqLossDetector, type IrqLossDeps } from './irq-loss-detector.js';
import { KernelLogWatch, type ClassDevice, type KernelLogWatchOptions, type SelfFault } from './kernel-log-watch.js';
import { pciFunctionOf, readInterruptSample } from './pci-interrupt.js';
import type { Logger } from '../service/log.js';

export interface DetectorsOptions {
  logger: Logger;
  /** Where every failure goes: the recovery manager's report(). */
  report: (failure: FailureReport) => void;
  /** A kernel report blamed on shadow_helper itself; already logged at err. Never recover from it. */
  onSelfFault?: (fault: SelfFault) => void;
  /** Every class's devices with driver and module, for blaming a kernel report. */
  devices: () => Promise<ClassDevice[]>;
  /** The classes' kernel log rules. */
  rules: readonly KernelLogRule[];
  /** Starts each class's own detectors; by class id. */
  classes: ReadonlyMap<string, () => ClassDetectors>;
  /** false: no kernel log watch (tests); else options for it. */
  kernelLog?: false | Partial<Omit<KernelLogWatchOptions, 'logger' | 'onReport' | 'onSelfFault' | 'devices' | 'rules'>>;
  /** The lost interrupt detector's view of the devices; false (tests): none. functionOf and sample default to sysfs. */
  interrupts?: false | (Pick<IrqLossDeps, 'devices' | 'held'> & Partial<Omit<IrqLossDeps, 'devices' | 'held' | 'onReport' | 'logger'>>);
  now?: () => number;
}

export interface Detectors {
  readonly kernelLog: KernelLogWatch | null;
  readonly interrupts: IrqLossDetector | null;
  /** The classes' own detectors that started, by class id. */
  readonly classes: ReadonlyMap<string, ClassDetectors>;
  stop(): Promise<void>;
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * Starts the detectors. One that cannot start (no /dev/kmsg access, say) is
 * logged at err and left out; the others run.
 */
export function startDetectors(opts: DetectorsOptions): Detectors {
  const { logger } = opts;
  let kernelLog: KernelLogWatch | null = null;
  if (opts.kernelLog !== false) {
    const watch = new KernelLogWatch({
      ...opts.kernelLog,
      logger,
      now: opts.now,
      devices: opts.devices,
      rules: opts.rules,
      onReport: opts.report,
      onSelfFault: (f) => opts.onSelfFault?.(f),
    });
    try {
      watch.start();
      kernelLog = watch;
    } catch (err) {
      logger.log('err', `cannot watch the kernel log, so oops, BUG and WARN reports go unseen: ${messageOf(err)}`, { SHADOWD_COMPONENT: 'kernel-log' });
    }
  }
  let interrupts: IrqLossDetector | null = null;
  if (opts.interrupts) {
    interrupts = new IrqLossDetector({
      functionOf: (bus) => pciFunctionOf(bus),
      sample: (fn) => readInterruptSample(fn),
      ...opts.interrupts,
      onReport: opts.report,
      logger,
    });
    interrupts.start();
  }
  const started = new Map<string, ClassDetectors>();
  for (const [cls, start] of opts.classes) {
    try {
      started.set(cls, start());
    } catch (err) {
      logger.log('err', `cannot start the ${cls} class's detectors: ${messageOf(err)}`, { SHADOWD_COMPONENT: 'detectors', SHADOWD_CLASS: cls });
    }
  }
  return {
    kernelLog,
    interrupts,
    classes: started,
    async stop() {
      kernelLog?.stop();
      await Promise.all([...[...started.values()].map((d) => d.stop()), kernelLog?.settled(), interrupts?.stop()]);
    },
  };
}
