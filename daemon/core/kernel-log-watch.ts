// Failure detector on the kernel log: reads /dev/kmsg as records arrive, finds
// the kernel's oops, BUG and WARN reports and those the classes' rules read
// (kernel-faults.ts), blames each on a driver module and reports every device,
// of every class, that module drives. A report blamed on shadow_helper itself
// is a bug in our own module: it goes to onSelfFault, never to recovery.
import { closeSync, constants, openSync, readSync } from 'node:fs';
import type { ModuleDevice } from './device-class.js';
import type { FailureReport } from './failure-report.js';
import { KernelFaultParser, parseKmsgRecord, type KernelFault, type KernelFaultKind, type KernelLogRule } from './kernel-faults.js';
import { handOnReport } from './report-handoff.js';
import type { Logger } from '../service/log.js';

export const SELF_MODULE = 'shadow_helper';

/** A device of some class, with the driver and module behind it (ClassRuntime.moduleDevices). */
export interface ClassDevice extends ModuleDevice {
  cls: string;
}

/** A failure the kernel blamed on our own helper module. */
export interface SelfFault {
  kind: KernelFaultKind;
  driver: string;
  detail: string;
  detectedAt: number;
  since: number;
  /** The kernel's report, line by line. */
  lines: string[];
}

export type FaultOutcome =
  | { kind: 'reports'; reports: FailureReport[] }
  | { kind: 'self'; fault: SelfFault }
  /** Not a failure of a driver shadowd watches (another module, or core kernel code alone): logged, not recovered. */
  | { kind: 'ignored'; why: string };

export interface AttributeOptions {
  /** When the detector decided (Date.now() ms). */
  detectedAt: number;
  /** Wall-clock time (ms) of kernel time 0, to date the failure from its kmsg timestamp. */
  bootWallMs: number;
  selfModule?: string;
  /** The helper's restarts the kernel log showed before the report (FailureReport.restartsBefore). */
  restartsBefore?: readonly string[];
}

/** Who a kernel report is about: pure, so it is tested on recorded reports and a given device list. */
export function attributeFault(fault: KernelFault, devices: readonly ClassDevice[], opts: AttributeOptions): FaultOutcome {
  const selfModule = opts.selfModule ?? SELF_MODULE;
  const since = Math.min(opts.detectedAt, Math.round(opts.bootWallMs + fault.usec / 1000 - fault.startedMsBefore));
  const moduleOf = (d: ClassDevice): string | null => d.module ?? d.driver;
  const self = (driver: string): FaultOutcome => ({
    kind: 'self',
    fault: { kind: fault.kind, driver, detail: fault.detail, detectedAt: opts.detectedAt, since, lines: fault.lines },
  });
  const report = (cls: string, device: string, driver: string | null): FailureReport => ({
    cls,
    device,
    kind: fault.kind,
    detail: fault.detail,
    detectedAt: opts.detectedAt,
    ...(driver ? { driver } : {}),
    since,
    ...(opts.restartsBefore ? { restartsBefore: opts.restartsBefore } : {}),
  });

  if (fault.cls !== null && fault.device === null) {
    return { kind: 'ignored', why: `kernel ${fault.kind} report (${fault.cls} class) names no ${fault.cls} device that exists now` };
  }
  if (fault.cls !== null && fault.device !== null) {
    const cls = fault.cls;
    const mine = devices.filter((d) => d.cls === cls);
    const named = mine.find((d) => d.name === fault.device);
    if (fault.busName !== undefined && named?.bus !== undefined && named.bus !== fault.busName) {
      const kernelSaid = fault.busName === '' ? 'with no bus device' : `at ${fault.busName}`;
      const ours = named.bus === '' ? 'has no bus device' : `is at ${named.bus}`;
      return { kind: 'ignored', why: `kernel ${fault.kind} report names ${fault.device} ${kernelSaid}, but the ${fault.device} shadowd watches ${ours}: another namespace's device of that name` };
    }
    const byDriver = mine.find((d) => d.driver !== null && d.driver === fault.driverName);
    const driver = (named && moduleOf(named)) ?? (byDriver && moduleOf(byDriver)) ?? fault.driverName;
    if (driver === selfModule) return self(driver);
    return { kind: 'reports', reports: [report(cls, fault.device, driver)] };
  }
  if (fault.module === null) return { kind: 'ignored', why: `kernel ${fault.kind} in core kernel code, with no module in its report: no driver to blame` };
  if (fault.module === selfModule) return self(fault.module);
  const affected = devices.filter((d) => moduleOf(d) === fault.module);
  if (affected.length === 0) return { kind: 'ignored', why: `kernel ${fault.kind} in module ${fault.module}, which drives no device shadowd watches` };
  return { kind: 'reports', reports: affected.map((d) => report(d.cls, d.name, fault.module)) };
}

/**
 * The helper's line as a restart begins (kmod/sh_restart.c): "shadow_helper:
 * recovery ID: restarting CLASS:NAME" (or reloading, parking). Where it falls
 * among the records tells a report written before a restart from one after.
 */
const HELPER_RESTART = /^shadow_helper: recovery (\S{1,64}): (?:restarting|reloading the driver of|parking) /;
/** Restarts remembered: more than can be under way or in their check at once. */
const HELPER_RESTARTS_KEPT = 64;

/** What KmsgSource.read returns when the kernel overwrote records before they were read. */
export const KMSG_OVERRUN: unique symbol = Symbol('kmsg overrun');

/** Records of the kernel log, one at a time. */
export interface KmsgSource {
  /** The next record, null when none is waiting, KMSG_OVERRUN when records were lost before this read. */
  read(): string | typeof KMSG_OVERRUN | null;
  close(): void;
}

/** A record is at most 8 KiB (the kernel's limit for one read); a smaller buffer fails with EINVAL. */
const RECORD_BUFFER = 16 * 1024;

function errnoOf(err: unknown): string | undefined {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * Opens /dev/kmsg, where each read() returns one record. Non-blocking and
 * polled by the caller: a blocking read would hold one of libuv's few
 * threadpool threads until the next kernel message, and could not be called
 * off on stop.
 */
export function openKmsg(path = '/dev/kmsg'): KmsgSource {
  let fd: number | null = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const buf = Buffer.allocUnsafe(RECORD_BUFFER);
  return {
    read() {
      if (fd === null) return null;
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (err) {
        const code = errnoOf(err);
        if (code === 'EAGAIN') return null;
        // The kernel has moved this reader on to the oldest record it still keeps.
        if (code === 'EPIPE') return KMSG_OVERRUN;
        throw err;
      }
      return n === 0 ? null : buf.toString('latin1', 0, n);
    },
    close() {
      if (fd !== null) closeSync(fd);
      fd = null;
    },
  };
}

export interface KernelLogWatchOptions {
  logger: Logger;
  onReport: (report: FailureReport) => void;
  /** A report blamed on our own module: logged at err here; never recover from it. */
  onSelfFault: (fault: SelfFault) => void;
  /** Default: openKmsg('/dev/kmsg'). */
  source?: () => KmsgSource;
  /** How often new records are read (default 100 ms). */
  pollMs?: number;
  /**
   * A report without an end line (a dump_stack()-only BUG) is complete this
   * long after it began (default 500 ms; the kernel prints an oops within a
   * few ms, 2.4 ms in the emulated guest).
   */
  settleMs?: number;
  /** Reports for the same device and kind closer than this fold into the first (default 1000 ms): a WARN on a hot path repeats. */
  repeatMs?: number;
  selfModule?: string;
  now?: () => number;
  /** A clock that does not jump, in ms, for settleMs. */
  monotonicMs?: () => number;
  /** Every class's devices with their drivers and modules, read at each report (ClassRuntime.moduleDevices). */
  devices: () => Promise<ClassDevice[]>;
  /** The classes' rules for their own kernel reports (ClassDeclaration.kernelLogRules). */
  rules?: readonly KernelLogRule[];
}

export interface KernelLogStats {
  records: number;
  /** Records the kernel overwrote before we read them. */
  lost: number;
  faults: number;
  reports: number;
}

/** Records read in one go at most; the rest wait for the next turn of the event loop. */
const MAX_RECORDS_PER_TURN = 512;
/** Bounds the skip at start-up should the kernel log faster than we read. */
const MAX_SKIPPED = 1_000_000;

export class KernelLogWatch {
  readonly stats: KernelLogStats = { records: 0, lost: 0, faults: 0, reports: 0 };
  private source: KmsgSource | null = null;
  private timer: NodeJS.Timeout | null = null;
  private readonly parser: KernelFaultParser;
  private lastSeq: number | null = null;
  private overran = false;
  /** When the report being collected began (monotonicMs). */
  private openedAt = 0;
  /**
   * The latest record's kernel time and when we read it. Kernel time is only
   * compared with kernel time: its clock (the scheduler clock) is not
   * CLOCK_MONOTONIC (31 ms apart in the guest) and, not NTP-disciplined,
   * drifts from it over a long uptime. So a report is dated from the last
   * record read, which was at most a poll interval old when read.
   */
  private anchor = { usec: 0, wall: 0 };
  /** The helper's latest restarts in the log: recovery id and record sequence number. */
  private readonly helperRestarts: { id: string; seq: number }[] = [];
  /** Deliveries in order: each may wait for sysfs. */
  private delivering: Promise<void> = Promise.resolve();
  private readonly lastReported = new Map<string, { at: number; folded: number }>();
  private readonly now: () => number;
  private readonly monotonicMs: () => number;

  constructor(private readonly opts: KernelLogWatchOptions) {
    this.parser = new KernelFaultParser(opts.rules ?? []);
    this.now = opts.now ?? Date.now;
    this.monotonicMs = opts.monotonicMs ?? (() => performance.now());
  }

  /**
   * Opens the kernel log and skips what is already in it (boot messages and
   * anything older are not replayed). Throws if it cannot be opened.
   */
  start(): void {
    if (this.source !== null) return;
    const source = (this.opts.source ?? (() => openKmsg()))();
    // Node has no lseek(SEEK_END): read to the end instead (a few ms for a full buffer).
    let skipped = 0;
    try {
      while (skipped < MAX_SKIPPED) {
        const raw = source.read();
        if (raw === null) break;
        if (raw === KMSG_OVERRUN) continue;
        const rec = parseKmsgRecord(raw);
        if (rec) this.lastSeq = rec.seq;
        skipped++;
      }
    } catch (err) {
      source.close();
      throw err;
    }
    this.source = source;
    this.opts.logger.log('info', `watching the kernel log (skipped the ${skipped} records already in it)`, { SHADOWD_COMPONENT: 'kernel-log' });
    this.timer = setInterval(() => this.poll(), this.opts.pollMs ?? 100);
    this.timer.unref();
  }

  /** Stops reading; reports already found are still delivered (see `settled`). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.source?.close();
    this.source = null;
  }

  /** Resolves once every report found so far has been delivered. */
  settled(): Promise<void> {
    return this.delivering;
  }

  private poll(): void {
    try {
      for (let i = 0; i < MAX_RECORDS_PER_TURN && this.source; i++) {
        const raw = this.source.read();
        if (raw === null) break;
        if (raw === KMSG_OVERRUN) this.overran = true;
        else this.take(raw);
      }
    } catch (err) {
      this.opts.logger.log('err', `reading the kernel log failed, no longer watching it: ${err instanceof Error ? err.message : String(err)}`, {
        SHADOWD_COMPONENT: 'kernel-log',
      });
      this.stop();
      return;
    }
    if (this.parser.pending && this.monotonicMs() - this.openedAt >= (this.opts.settleMs ?? 500)) this.deliver(this.parser.flush());
  }

  private take(raw: string): void {
    const rec = parseKmsgRecord(raw);
    if (!rec) {
      this.opts.logger.log('warning', 'skipped an unreadable kernel log record', { SHADOWD_COMPONENT: 'kernel-log', SHADOWD_LINE: raw.slice(0, 200) });
      return;
    }
    this.stats.records++;
    if (this.lastSeq !== null && rec.seq > this.lastSeq + 1) {
      const lost = rec.seq - this.lastSeq - 1;
      this.stats.lost += lost;
      this.opts.logger.log('warning', `the kernel log overran: ${lost} records were overwritten before shadowd read them; a failure among them goes unseen here`, {
        SHADOWD_COMPONENT: 'kernel-log',
      });
    } else if (this.overran) {
      this.opts.logger.log('warning', 'the kernel log overran: records were overwritten before shadowd read them', { SHADOWD_COMPONENT: 'kernel-log' });
    }
    this.overran = false;
    this.lastSeq = rec.seq;
    this.anchor = { usec: rec.usec, wall: this.now() };
    const restart = rec.facility === 0 ? HELPER_RESTART.exec(rec.text) : null;
    if (restart) {
      this.helperRestarts.push({ id: restart[1]!, seq: rec.seq });
      if (this.helperRestarts.length > HELPER_RESTARTS_KEPT) this.helperRestarts.shift();
    }
    const wasPending = this.parser.pending;
    const faults = this.parser.push(rec);
    if (this.parser.pending && (!wasPending || faults.length > 0)) this.openedAt = this.monotonicMs();
    this.deliver(faults);
  }

  private deliver(faults: KernelFault[]): void {
    if (faults.length === 0) return;
    this.stats.faults += faults.length;
    const detectedAt = this.now();
    const bootWallMs = this.anchor.wall - this.anchor.usec / 1000;
    const seen = [...this.helperRestarts];
    const restartsBefore = (fault: KernelFault): string[] => seen.filter((r) => r.seq < fault.seq).map((r) => r.id);
    this.delivering = this.delivering.then(async () => {
      let devices: ClassDevice[] = [];
      try {
        devices = await this.opts.devices();
      } catch (err) {
        this.opts.logger.log('warning', `cannot read the devices to blame a kernel report on: ${err instanceof Error ? err.message : String(err)}`, {
          SHADOWD_COMPONENT: 'kernel-log',
        });
      }
      for (const fault of faults) {
        // A failing consumer must not stop the reports after this one.
        await handOnReport(() => this.dispatch(fault, attributeFault(fault, devices, { detectedAt, bootWallMs, selfModule: this.opts.selfModule, restartsBefore: restartsBefore(fault) })), {
          logger: this.opts.logger,
          what: `kernel ${fault.kind}`,
          fields: { SHADOWD_COMPONENT: 'kernel-log' },
        });
      }
    });
  }

  private dispatch(fault: KernelFault, outcome: FaultOutcome): void {
    const { logger } = this.opts;
    switch (outcome.kind) {
      case 'ignored':
        logger.log('notice', `${outcome.why}; not recovering: ${fault.detail}`, { SHADOWD_COMPONENT: 'kernel-log' });
        return;
      case 'self':
        logger.log('err', `the kernel reported a ${fault.kind} in shadowd's own module ${outcome.fault.driver} (a bug in shadowd; no recovery is attempted): ${fault.detail}`, {
          SHADOWD_COMPONENT: 'kernel-log',
          SHADOWD_DRIVER: outcome.fault.driver,
          SHADOWD_KERNEL_REPORT: fault.lines.join('\n'),
        });
        this.opts.onSelfFault(outcome.fault);
        return;
      case 'reports':
        for (const r of outcome.reports) {
          const key = `${r.cls}:${r.device}\0${r.kind}`;
          const last = this.lastReported.get(key);
          if (last && r.detectedAt - last.at < (this.opts.repeatMs ?? 1000)) {
            last.folded++;
            continue;
          }
          if (last && last.folded > 0) {
            logger.log('info', `${r.device}: ${last.folded} more kernel ${r.kind} report(s) folded into the previous one`, { SHADOWD_COMPONENT: 'kernel-log', SHADOWD_CLASS: r.cls, SHADOWD_DEVICE: r.device });
          }
          this.lastReported.set(key, { at: r.detectedAt, folded: 0 });
          this.stats.reports++;
          logger.log('warning', `${r.device}: kernel ${r.kind}: ${r.detail}`, { SHADOWD_COMPONENT: 'kernel-log', SHADOWD_CLASS: r.cls, SHADOWD_DEVICE: r.device, SHADOWD_DRIVER: r.driver });
          this.opts.onReport(r);
        }
    }
  }
}
