// The lost interrupt detector, for every class: a device that asserts its
// interrupt while the kernel handles none on its line has lost its
// interrupts (a line masked or misrouted, an IRQ the kernel disabled as
// "nobody cared", a controller gone wrong), and its driver waits for an
// event that never comes. The classes' own detectors see that only through
// its effects, and only some of them: a NIC that mostly receives sends
// nothing that could stall; a NIC whose driver reset itself with its
// interrupts gone (an MTU change) never sees its link come back, so it has
// no carrier and nothing queued; a sound card at idle runs no stream.
//
// What is read (pci-interrupt.ts): the PCI function's Interrupt Status bit
// and its IRQ line's handled count, four times a second, for legacy
// interrupts (INTx) only. A stuck interrupt is one pending at every sample
// for LostIrqMs (2 s by default, four samples at least) with no interrupt
// handled on the line meanwhile. A healthy device's interrupt is handled
// within microseconds of being raised, and handling it counts.
//
// No false alarm, by construction:
// - a busy device is pending now and then, but each of its interrupts is
//   handled, and that moves the count;
// - a function whose line has no handler (a driver that polls, one not yet
//   bound) is never judged, nor one whose interrupts were never seen handled
//   and its status never seen clear since it was first watched (or since
//   shadowd last restarted its driver): only a device that worked and
//   stopped is a failure;
// - on a shared line another driver's disable_irq() (a reset, a firmware
//   load) holds every device on it pending with nothing counted, and a
//   restart of this one would not cure that: a shared line must stay stuck
//   three times as long (SHARED_FACTOR) before it is judged;
// - a runtime-suspended function is not read (the read would wake it);
// - a device shadowd is recovering or has parked is left alone, and judged
//   afresh afterwards;
// - MSI and MSI-X functions are not watched (no level to see pending);
// - time is the monotonic clock's: a suspend or a clock step is no stall.
import { handOnReport } from './report-handoff.js';
import type { FailureReport } from './failure-report.js';
import type { InterruptSample } from './pci-interrupt.js';
import { PollLoop } from './poll-loop.js';
import type { Logger } from '../service/log.js';

/** The failure kind this detector reports (failure-report.ts GENERIC_FAILURE_KINDS). */
export const LOST_IRQ_KIND = 'lost-irq';
export const IRQ_POLL_MS = 250;
export const IRQ_LOSS_THRESHOLD_MS = 2000;
/** Samples in a row a stuck interrupt must be seen pending at, whatever the threshold. */
const MIN_STUCK_SAMPLES = 4;
/** How much longer a shared line must stay stuck than one of the device's own. */
export const SHARED_FACTOR = 3;
/** How long a unit found not to be on PCI is not looked for again. */
const NOT_PCI_RECHECK_MS = 30_000;

/** A device of any class, with its restart unit. */
export interface IrqDevice {
  cls: string;
  name: string;
  driver: string | null;
  /** The restart unit (DeviceStatus.bus): the PCI function is found from it. */
  bus: string;
}

export interface IrqLossDeps {
  /** The devices to watch now (present, with a restart unit). */
  devices: () => IrqDevice[];
  /** Whether shadowd is recovering the device or has parked it. */
  held: (cls: string, name: string) => boolean;
  /** The PCI function a restart unit sits on (a sysfs directory), or null when it is not on PCI. */
  functionOf: (bus: string) => Promise<string | null>;
  /** The function's interrupt now, or null when it has none to watch (pci-interrupt.ts readInterruptSample). */
  sample: (fn: string) => Promise<InterruptSample | null>;
  onReport: (f: FailureReport) => void;
  logger: Logger;
  /** How long a function may assert its interrupt unhandled, for its device (the first of the function's); 0: not watched. */
  thresholdMs?: number | ((d: IrqDevice) => number);
  pollMs?: number;
  /** A monotonic clock, ms. */
  now?: () => number;
  /** The wall clock, ms, for the report's times. */
  wallNow?: () => number;
}

interface Track {
  irq: number;
  count: bigint;
  /** An interrupt of this function's line was handled while watched: it worked. */
  seenWorking: boolean;
  /** Its status was seen clear while watched: the bit follows the device. */
  seenClear: boolean;
  /** Pending with the count unchanged since (monotonic ms), or null; and at how many samples in a row. */
  stuckSince: number | null;
  stuckSamples: number;
  reported: boolean;
}

export class IrqLossDetector {
  private readonly tracks = new Map<string, Track>();
  private readonly functions = new Map<string, string>();
  /** Units found not to be on PCI, and when (monotonic ms). */
  private readonly notPci = new Map<string, number>();
  private readonly loop: PollLoop;
  private readonly thresholdMs: (d: IrqDevice) => number;
  private readonly now: () => number;
  private readonly wallNow: () => number;

  constructor(private readonly deps: IrqLossDeps) {
    const t = deps.thresholdMs ?? IRQ_LOSS_THRESHOLD_MS;
    this.thresholdMs = typeof t === 'number' ? () => t : t;
    this.now = deps.now ?? (() => performance.now());
    this.wallNow = deps.wallNow ?? Date.now;
    this.loop = new PollLoop(() => this.round().catch((err: unknown) => this.deps.logger.log('warning', `reading interrupt states failed: ${messageOf(err)}`, { SHADOWD_COMPONENT: 'irq-loss' })), deps.pollMs ?? IRQ_POLL_MS);
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One sample of every watched function; exported for tests. */
  async round(): Promise<void> {
    const byFunction = new Map<string, IrqDevice[]>();
    const heldFunctions = new Set<string>();
    const devices = this.deps.devices();
    const units = new Set(devices.map((d) => d.bus));
    for (const bus of this.functions.keys()) if (!units.has(bus)) this.functions.delete(bus);
    for (const d of devices) {
      const fn = await this.functionOf(d.bus);
      if (fn === null) continue;
      if (this.deps.held(d.cls, d.name)) heldFunctions.add(fn);
      else byFunction.set(fn, [...(byFunction.get(fn) ?? []), d]);
    }
    for (const fn of this.tracks.keys()) if (!byFunction.has(fn) || heldFunctions.has(fn)) this.tracks.delete(fn);
    for (const [fn, devices] of byFunction) {
      if (heldFunctions.has(fn) || devices.some((d) => this.thresholdMs(d) <= 0)) {
        this.tracks.delete(fn);
        continue;
      }
      const s = await this.deps.sample(fn);
      if (s === null || s.actions.length === 0) {
        this.tracks.delete(fn);
        continue;
      }
      this.judge(fn, s, devices);
    }
  }

  private judge(fn: string, s: InterruptSample, devices: IrqDevice[]): void {
    const at = this.now();
    const t = this.tracks.get(fn);
    if (!t || t.irq !== s.irq) {
      this.tracks.set(fn, { irq: s.irq, count: s.count, seenWorking: false, seenClear: !s.pending, stuckSince: null, stuckSamples: 0, reported: false });
      return;
    }
    if (s.count !== t.count) {
      Object.assign(t, { count: s.count, seenWorking: true, seenClear: t.seenClear || !s.pending, stuckSince: null, stuckSamples: 0, reported: false });
      return;
    }
    if (!s.pending) {
      Object.assign(t, { seenClear: true, stuckSince: null, stuckSamples: 0, reported: false });
      return;
    }
    t.stuckSamples++;
    if (t.stuckSince === null) {
      t.stuckSince = at;
      return;
    }
    const threshold = Math.max(...devices.map((d) => this.thresholdMs(d))) * (s.actions.length > 1 ? SHARED_FACTOR : 1);
    if (!t.seenWorking || !t.seenClear || t.reported || t.stuckSamples < MIN_STUCK_SAMPLES || at - t.stuckSince < threshold) return;
    // The round's reads took time: a recovery may have begun meanwhile, and a report now would fail its check.
    if (devices.some((d) => this.deps.held(d.cls, d.name))) {
      this.tracks.delete(fn);
      return;
    }
    t.reported = true;
    const stuckMs = Math.round(at - t.stuckSince);
    const wall = this.wallNow();
    const unit = fn.slice(fn.lastIndexOf('/') + 1);
    // One report per class on the function: a recovery restarts the unit with every device of that class on it.
    const seen = new Set<string>();
    for (const d of devices) {
      if (seen.has(d.cls)) continue;
      seen.add(d.cls);
      const failure: FailureReport = {
        cls: d.cls,
        device: d.name,
        kind: LOST_IRQ_KIND,
        detail: `${unit} has asserted its interrupt (IRQ ${s.irq}${s.actions.length > 1 ? `, shared with ${s.actions.length - 1} other handler(s)` : ''}) for ${stuckMs} ms and none was handled on that line: its interrupts are lost`,
        detectedAt: wall,
        since: wall - stuckMs,
        ...(d.driver ? { driver: d.driver } : {}),
      };
      void handOnReport(() => this.deps.onReport(failure), { logger: this.deps.logger, what: 'lost interrupt', fields: { SHADOWD_COMPONENT: 'irq-loss', SHADOWD_CLASS: d.cls, SHADOWD_DEVICE: d.name } });
    }
  }

  private async functionOf(bus: string): Promise<string | null> {
    // A unit found is remembered while it is watched; one not on PCI (or not there yet) is looked for again later.
    const known = this.functions.get(bus);
    if (known !== undefined) return known;
    const missed = this.notPci.get(bus);
    if (missed !== undefined && this.now() - missed < NOT_PCI_RECHECK_MS) return null;
    const fn = await this.deps.functionOf(bus);
    if (fn !== null) {
      this.functions.set(bus, fn);
      this.notPci.delete(bus);
    } else {
      this.notPci.set(bus, this.now());
      if (this.notPci.size > 1024) this.notPci.delete(this.notPci.keys().next().value as string);
    }
    return fn;
  }
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));
