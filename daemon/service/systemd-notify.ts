// The service manager protocol (sd_notify): readiness, status lines, watchdog
// keep-alives, reload and stop. Outside systemd (no NOTIFY_SOCKET) every call
// is a no-op and koffi is never loaded.
import { libsystemd, type Libsystemd } from './libsystemd.js';

export interface Notifier {
  /** True when messages go to a service manager. */
  readonly enabled: boolean;
  /** READY=1, with a STATUS= line when given. Send again after a reload. */
  ready(status?: string): boolean;
  /** STATUS=: one line `systemctl status` shows. */
  status(text: string): boolean;
  /** WATCHDOG=1: the keep-alive WatchdogSec= expects. */
  watchdog(): boolean;
  /** RELOADING=1: a reload began; finish it with ready(). */
  reloading(status?: string): boolean;
  /** STOPPING=1. */
  stopping(status?: string): boolean;
  /** How often to send WATCHDOG=1: half of WatchdogSec=, as systemd advises; null when the watchdog is off. */
  watchdogIntervalMs(): number | null;
  /**
   * Sends WATCHDOG=1 every watchdogIntervalMs() from a timer on the event
   * loop, so a wedged loop stops the keep-alives and systemd restarts the
   * service. The timer does not keep the process alive. Returns a stop function.
   */
  startWatchdog(): () => void;
}

/** The message text for one notification: newlines in a status would start a new assignment. */
export function notifyMessage(assignments: Record<string, string>): string {
  return Object.entries(assignments)
    .map(([k, v]) => `${k}=${v.replace(/[\r\n]+/g, ' ')}`)
    .join('\n');
}

function monotonicUsec(): string {
  // process.hrtime is CLOCK_MONOTONIC on Linux, the clock MONOTONIC_USEC= wants.
  return (process.hrtime.bigint() / 1000n).toString();
}

const NOOP: Notifier = {
  enabled: false,
  ready: () => false,
  status: () => false,
  watchdog: () => false,
  reloading: () => false,
  stopping: () => false,
  watchdogIntervalMs: () => null,
  startWatchdog: () => () => undefined,
};

/**
 * A notifier for this process. `env` and `load` are for tests: the real ones
 * are process.env and libsystemd().
 */
export function notifier(env: NodeJS.ProcessEnv = process.env, load: () => Libsystemd | null = libsystemd): Notifier {
  if (!env['NOTIFY_SOCKET']) return NOOP;
  const lib = load();
  if (!lib) return NOOP;
  const send = (assignments: Record<string, string>): boolean => lib.notify(notifyMessage(assignments)) > 0;
  const withStatus = (base: Record<string, string>, status: string | undefined) => (status === undefined ? base : { ...base, STATUS: status });
  const self: Notifier = {
    enabled: true,
    ready: (status) => send(withStatus({ READY: '1' }, status)),
    status: (text) => send({ STATUS: text }),
    watchdog: () => send({ WATCHDOG: '1' }),
    // MONOTONIC_USEC is what systemd 253+ wants with RELOADING=1; older versions ignore it.
    reloading: (status) => send(withStatus({ RELOADING: '1', MONOTONIC_USEC: monotonicUsec() }, status)),
    stopping: (status) => send(withStatus({ STOPPING: '1' }, status)),
    watchdogIntervalMs: () => {
      const usec = lib.watchdogUsec();
      return usec > 0 ? Math.max(1, Math.floor(usec / 2000)) : null;
    },
    startWatchdog: () => {
      const interval = self.watchdogIntervalMs();
      if (interval === null) return () => undefined;
      self.watchdog();
      const timer = setInterval(() => self.watchdog(), interval);
      timer.unref();
      return () => clearInterval(timer);
    },
  };
  return self;
}
