// The kernel's TX watchdog as the taps see it: bpf/netdev-class.bt prints
// ev=xmit_timeout from the net:net_dev_xmit_timeout tracepoint the moment
// dev_watchdog() gives up on a queue, before the driver's own reset runs.
import type { FailureReport } from '../../core/failure-report.js';
import type { TapEvent } from '../../core/tap-record.js';

/** The failure an ev=xmit_timeout tap event stands for, or null for any other event. */
export function txTimeoutFromTap(e: TapEvent, now: number): FailureReport | null {
  const device = e.strs['name'];
  if (e.call !== 'xmit_timeout' || !device) return null;
  const driver = e.strs['driver'];
  return {
    cls: 'net',
    device,
    kind: 'tx-timeout',
    // The tracepoint names the driver, not its module: left to the detail, the manager knows the module.
    detail: `kernel TX watchdog: transmit queue ${e.nums['queue'] ?? '?'} timed out${driver ? ` (driver ${driver})` : ''}`,
    detectedAt: now,
  };
}
