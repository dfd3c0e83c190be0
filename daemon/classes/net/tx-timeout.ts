// The kernel's TX watchdog as the taps see it: bpf/netdev-class.bt prints
// ev=xmit_timeout from the net:net_dev_xmit_timeout tracepoint the moment
// dev_watchdog() gives up on a queue, before the driver's own reset runs.
// The tracepoint names the device and its driver but not its network
// namespace, and a name is unique only within one: any user can make an eth0
// of their own (`unshare -rn`). A timeout is a candidate only when the
// driver it names is the driver of the device shadowd watches under that
// name (a user's namespace holds only virtual devices, which have no driver
// to name); and it is ours only when the helper's count of that device's own
// timeouts grew (StallDetector.tapTimeout, asked by net-class.ts), since
// root may give another namespace a device of the same driver and name (a
// VF handed to a container).
import type { FailureReport } from '../../core/failure-report.js';
import { handOnReport } from '../../core/report-handoff.js';
import type { TapEvent } from '../../core/tap-record.js';
import type { Logger } from '../../service/log.js';
import type { TapTimeoutVerdict } from './stall-detector.js';

/** What an ev=xmit_timeout tap event means to shadowd. */
export type TxTimeoutOutcome = { kind: 'report'; report: FailureReport } | { kind: 'ignored'; device: string; why: string };

/**
 * The failure an ev=xmit_timeout tap event stands for, or why it is not one
 * of ours; null for any other event. `driverOf` gives the driver of the
 * device shadowd watches by that name (undefined when it watches none).
 */
export function txTimeoutFromTap(e: TapEvent, now: number, driverOf: (name: string) => string | null | undefined): TxTimeoutOutcome | null {
  const device = e.strs['name'];
  if (e.call !== 'xmit_timeout' || !device) return null;
  const driver = e.strs['driver'] ?? '';
  const ours = driverOf(device);
  if (ours === undefined) return { kind: 'ignored', device, why: `the kernel's TX watchdog timed out on ${device}, which shadowd does not watch` };
  if (ours === null || driver !== ours) {
    const named = driver === '' ? 'with no driver' : `of driver ${driver}`;
    return { kind: 'ignored', device, why: `the kernel's TX watchdog timed out on a ${device} ${named}, but the ${device} shadowd watches has ${ours === null ? 'no driver' : `driver ${ours}`}: another namespace's device of that name` };
  }
  return {
    kind: 'report',
    report: {
      cls: 'net',
      device,
      kind: 'tx-timeout',
      // The tracepoint names the driver, not its module: left to the detail, the manager knows the module.
      detail: `kernel TX watchdog: transmit queue ${e.nums['queue'] ?? '?'} timed out (driver ${driver})`,
      detectedAt: now,
    },
  };
}

export interface TapTimeoutDeps {
  /** The driver of the device shadowd watches by that name (undefined: it watches none). */
  driverOf: (name: string) => string | null | undefined;
  /** The helper's count of the watched device's own timeouts (StallDetector.tapTimeout). */
  verdict: (device: string) => Promise<TapTimeoutVerdict>;
  report: (r: FailureReport) => void;
  logger: Logger;
  now?: () => number;
}

/**
 * What the network class does with a tap event: an ev=xmit_timeout of a
 * watched device's name and driver is reported once the helper's count
 * says it is that device's (a poll that saw it first has reported it); any
 * other is logged with why not. Resolves once handled (the taps' reader
 * does not wait for it).
 */
export async function handleTapTimeout(e: TapEvent, deps: TapTimeoutDeps): Promise<void> {
  const outcome = txTimeoutFromTap(e, (deps.now ?? Date.now)(), deps.driverOf);
  if (!outcome) return;
  if (outcome.kind === 'ignored') {
    deps.logger.log('notice', `${outcome.device}: not recovering: ${outcome.why}`, { SHADOWD_COMPONENT: 'taps', SHADOWD_CLASS: 'net' });
    return;
  }
  const r = outcome.report;
  const verdict = await deps.verdict(r.device);
  if (verdict.kind === 'seen') return;
  if (verdict.kind === 'not-ours') {
    deps.logger.log('notice', `${r.device}: not recovering on the taps' TX watchdog record: ${verdict.why}`, { SHADOWD_COMPONENT: 'taps', SHADOWD_CLASS: 'net' });
    return;
  }
  deps.logger.log('warning', `${r.device}: tx-timeout: ${r.detail}`, { SHADOWD_COMPONENT: 'taps', SHADOWD_DEVICE: r.device, SHADOWD_CLASS: 'net' });
  // A failing consumer must not take the taps down.
  await handOnReport(() => deps.report(r), { logger: deps.logger, what: 'tx-timeout', fields: { SHADOWD_COMPONENT: 'taps' } });
}
