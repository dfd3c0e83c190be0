// The kernel's TX watchdog in the kernel log: the network class's rule for
// core/kernel-faults.ts. dev_watchdog() reports a transmit queue that has
// been stopped too long; the report names the interface, so it is blamed on
// that device directly, and its bus device, which tells the host's eth0 from
// an eth0 of another network namespace.
import type { KernelLogRule, RuleMatch } from '../../core/kernel-faults.js';

// Debian's 6.1.192 (and upstream since 6.9): netdev_crit() from dev_watchdog(),
//   "e1000 0000:00:04.0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 10332 ms"
// prefixed by the parent's driver and bus id; a device without a parent has only "eth0: ".
const WATCHDOG_NETDEV =
  /^(?:(\S+) (\S+) )?([^\s:/]+?)(?: \((?:uninitialized|unregistering|unregistered|released|dummy|unknown)\))?: NETDEV WATCHDOG: CPU: \d+: transmit queue (\d+) timed out (\d+) ms$/;
// Upstream 6.1 to 6.8: the message of a WARN_ONCE, so its WARNING line and stack follow it.
const WATCHDOG_WARN = /^NETDEV WATCHDOG: ([^\s:/]+) \((\S+)\): transmit queue (\d+) timed out(?: (\d+) ms)?$/;

export const TX_WATCHDOG_LOG: KernelLogRule = {
  cls: 'net',
  kind: 'tx-timeout',
  line(text: string): RuleMatch | null {
    const m = WATCHDOG_NETDEV.exec(text);
    if (!m) return null;
    return {
      device: m[3]!,
      driverName: m[1] ?? null,
      busName: m[2] ?? '',
      startedMsBefore: Number(m[5]),
      detail: `NETDEV WATCHDOG: ${m[3]!}${m[1] ? ` (${m[1]})` : ''}: transmit queue ${m[4]!} timed out ${m[5]!} ms`,
    };
  },
  opener(text: string): RuleMatch | null {
    const m = WATCHDOG_WARN.exec(text);
    if (!m) return null;
    return { device: m[1]!, driverName: m[2]!, startedMsBefore: m[4] ? Number(m[4]) : 0, detail: text.trimEnd() };
  },
};
