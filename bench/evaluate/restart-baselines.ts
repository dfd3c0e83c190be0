// What the evaluation sets shadowd's recoveries beside (issue 14): per
// driver, a bare unbind + bind of its device with nothing restored and no
// application saved, and, where the driver has one that a fault can call up,
// its own reset; measured in one guest boot without shadowd
// (test/vm/guest/bare-restarts.ts) on every device of the reliability runs.
// The summary per driver (medians, with the spread) is pure and unit-tested.
import type { KernelSeries } from '../../test/vm/rig/cache-paths.js';
import type { DevicePreset } from '../../test/vm/rig/devices.js';
import { runInGuest, type GuestResult } from '../../test/vm/rig/guest.js';
import { repoPath } from '../../test/vm/rig/repo-path.js';
import type { BareResult, DeviceBaseline } from '../../test/vm/guest/bare-restarts.js';
import type { RecoveryTiming } from './recovery-times.js';

export type { DeviceBaseline } from '../../test/vm/guest/bare-restarts.js';

export interface Baselines {
  kernel: string;
  rounds: number;
  devices: DeviceBaseline[];
  /** Set when the guest run failed or printed no result: why. */
  error?: string;
}

/** A median and the range it comes from (ms), or null for no values. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  n: number;
}

export function spread(xs: readonly number[]): Spread | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return { median: Math.round(s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2), min: s[0]!, max: s.at(-1)!, n: s.length };
}

/** One driver's row: shadowd's recoveries of it beside its bare restart and its own reset. */
export interface BaselineRow {
  cls: string;
  driver: string;
  /** shadowd: failure to recovered (detection included), and from the report to recovered (detection left out). */
  recovered: Spread | null;
  recoveryOnly: Spread | null;
  bare: Spread | null;
  service: string;
  reset: { what: string; detection: Spread | null; service: Spread | null; total: Spread | null } | { none: string };
  /** What went wrong measuring the baselines, if anything. */
  error?: string;
}

/** The guest's driver names use underscores where modules and the reliability rows may use dashes (snd_ens1370, ne2k-pci). */
const same = (a: string, b: string): boolean => a.replace(/-/g, '_') === b.replace(/-/g, '_');

/** Per driver of `devices`, in their order, beside the recoveries of the same driver on the baselines' kernel. */
export function baselineRows(b: Baselines, recoveries: readonly RecoveryTiming[]): BaselineRow[] {
  const rows: BaselineRow[] = [];
  for (const d of b.devices) {
    const recs = recoveries.filter((r) => r.cls === d.cls && same(r.driver, d.driver) && r.kernel === b.kernel && r.result === 'recovered');
    const reset: BaselineRow['reset'] = 'none' in d.reset
      ? d.reset
      : {
        what: d.reset.what,
        detection: spread(d.reset.rounds.map((r) => r.detectionMs)),
        service: spread(d.reset.rounds.map((r) => r.serviceMs)),
        total: spread(d.reset.rounds.map((r) => r.detectionMs + r.serviceMs)),
      };
    rows.push({
      cls: d.cls,
      driver: d.driver,
      recovered: spread(recs.map((r) => r.totalMs)),
      recoveryOnly: spread(recs.map((r) => r.totalMs - (r.phases.detect ?? 0))),
      bare: spread(d.bare.map((r) => r.serviceMs)),
      service: d.service,
      reset,
      ...(d.error ? { error: d.error } : {}),
    });
  }
  return rows;
}

/** The guest script's result line, or null when there is none or it is not a BareResult. */
export function parseBareResult(stdout: string): BareResult | null {
  const line = stdout.split('\n').find((l) => l.startsWith('BARE_RESULT '));
  if (!line) return null;
  try {
    const r = JSON.parse(line.slice('BARE_RESULT '.length)) as Partial<BareResult> | null;
    return r && Array.isArray(r.devices) ? (r as BareResult) : null;
  } catch {
    return null;
  }
}

const SCRIPT = repoPath('dist/test/vm/guest/bare-restarts.js');
const TIMEOUT_MS = 900_000;

/** One boot without shadowd with every device given (NICs on subnets of their own); the helper module must be built for `kernel`. */
export async function measureBaselines(kernel: KernelSeries, devices: readonly DevicePreset[], modules: readonly string[], rounds: number): Promise<{ baselines: Baselines; guest: GuestResult }> {
  const guest = await runInGuest({
    kernel,
    command: [process.execPath, SCRIPT, '--rounds', String(rounds), '--modules', modules.join(',')],
    devices,
    nicSubnets: true,
    timeoutMs: TIMEOUT_MS,
  });
  const r = parseBareResult(guest.stdout);
  const baselines: Baselines = { kernel, rounds, devices: r?.devices ?? [] };
  if (!r) baselines.error = `the guest printed no result (exit ${guest.exitCode ?? '-'}${guest.timedOut ? ', timed out' : ''}): ${guest.stderr.trim().split('\n').slice(-3).join(' | ')}`;
  return { baselines, guest };
}
