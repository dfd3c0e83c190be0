// Reads the kernel's own failure reports out of /dev/kmsg records: an oops, a
// BUG and a WARN for every class, and the reports a class's own kernel code
// prints (KernelLogRule: the network class's TX watchdog, say), and blames
// each on a module or a device. Pure (no I/O) so it is tested on kernel
// output recorded in the guest (test/fixtures/kmsg); kernel-log-watch.ts
// feeds it live.

/** One /dev/kmsg record: `PRIO,SEQ,TS_USEC,FLAGS[,...];message` plus ` KEY=value` dictionary lines. */
export interface KmsgRecord {
  /** 0 for the kernel's own messages; userspace writes to /dev/kmsg get 1 (user) or more. */
  facility: number;
  level: number;
  seq: number;
  /** Microseconds since boot (the kernel's local clock). */
  usec: number;
  text: string;
  dict: Record<string, string>;
}

const HEADER = /^(\d+),(\d+),(\d+),[^;]*;/;

/** Undoes /dev/kmsg's escaping: bytes outside printable ASCII, and '\' itself, come as \xNN. */
function unescape(text: string): string {
  return text.replace(/\\x([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** Parses one record as one read() of /dev/kmsg returns it; null when it is not a record. */
export function parseKmsgRecord(raw: string): KmsgRecord | null {
  const m = HEADER.exec(raw);
  if (!m) return null;
  const prio = Number(m[1]);
  const seq = Number(m[2]);
  const usec = Number(m[3]);
  if (!Number.isSafeInteger(prio) || !Number.isSafeInteger(seq) || !Number.isSafeInteger(usec)) return null;
  const [message = '', ...rest] = raw.slice(m[0].length).split('\n');
  const dict: Record<string, string> = {};
  for (const line of rest) {
    if (!line.startsWith(' ')) continue;
    const eq = line.indexOf('=');
    if (eq > 1) dict[line.slice(1, eq)] = unescape(line.slice(eq + 1));
  }
  return { facility: prio >> 3, level: prio & 7, seq, usec, text: unescape(message), dict };
}

/** Splits /dev/kmsg text as `cat /dev/kmsg` saves it into records (a dictionary line starts with a space). */
export function splitKmsgText(text: string): string[] {
  const records: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    if (line.startsWith(' ') && records.length > 0) records[records.length - 1] += `\n${line}`;
    else records.push(line);
  }
  return records;
}

/** A generic kind (oops, bug, warn: GenericFailureKind but 'manual'), or a class's (KernelLogRule.kind). */
export type KernelFaultKind = string;

/** What a class rule reads off one kernel log line that names a device. */
export interface RuleMatch {
  /**
   * The class's device the report is about. null when the kernel named
   * something the rule could not resolve to a device of its class (a disk's
   * SCSI address with no disk on it now, say): the report is logged, not
   * recovered, and `detail` must say what the kernel named.
   */
  device: string | null;
  /** The driver the kernel named, when it did: a driver name, which may differ from its module's. */
  driverName: string | null;
  /**
   * The bus device the kernel named beside the device ("0000:00:04.0"), when
   * the rule reads one; '' when the kernel said the device has none. A name
   * is unique only in its network namespace: the bus tells the host's eth0
   * from a container's.
   */
  busName?: string;
  /** How long before the line the failure began, when the kernel says so; else 0. */
  startedMsBefore: number;
  /** One line for the logs and the history. */
  detail: string;
}

/**
 * A failure report a class's kernel code prints about one of its devices
 * (the network class: the TX watchdog's "transmit queue N timed out").
 * `line`: the record is a whole report. `opener`: the record opens a report
 * whose WARNING line and stack follow (that WARN is part of it, not one of
 * its own).
 */
export interface KernelLogRule {
  cls: string;
  kind: string;
  line?(text: string): RuleMatch | null;
  opener?(text: string): RuleMatch | null;
}

export interface KernelFault {
  kind: KernelFaultKind;
  /** The class whose rule read the report (it names the device); null for an oops, BUG or WARN. */
  cls: string | null;
  /**
   * The module the report blames: the [module] tag of the WARNING or RIP line,
   * else of the first reliable call-trace frame that has one. null when only
   * core kernel code is in the report.
   */
  module: string | null;
  /** The device the kernel named (a class rule's reports only). */
  device: string | null;
  /** The driver the kernel named (a class rule's reports only): a driver name, which may differ from its module's. */
  driverName: string | null;
  /** The bus device the kernel named beside the device (RuleMatch.busName), when it did. */
  busName?: string;
  /** One line for the logs and the history. */
  detail: string;
  /** Kernel time (µs since boot) and sequence number of the report's first record. */
  usec: number;
  seq: number;
  /** How long before `usec` the failure began, when the kernel says so (a rule's match); else 0. */
  startedMsBefore: number;
  /** The report as the kernel printed it (at most MAX_LINES lines), for the logs. */
  lines: string[];
}

/** Longest report kept; an oops with its register dumps is about 60 lines. */
const MAX_LINES = 200;

const WARNING = /^WARNING: CPU: \d+ PID: \d+ at (.*)$/;
const KERNEL_BUG_AT = /^kernel BUG at .*!$/;
const BUG = /^BUG: /;
/** The header die() prints: "Oops: 0000 [#1]", "invalid opcode: 0000 [#1]", "general protection fault, ...: 0000 [#1]". */
const DIE = /^\S.*: [0-9a-f]{4} \[#\d+\]/;
const RIP = /^RIP: 0010:(.*)$/;
/** A frame: " e1000_clean+0x1a/0x2b0 [e1000]"; "? " marks a guess the unwinder could not vouch for. */
const FRAME = /^\s+(\? )?([\w.$]+\+0x[0-9a-f]+\/0x[0-9a-f]+)(?: \[(\w+)(?: [0-9a-f]+)?\])?\s*$/;
const TAG = /\[(\w+)(?: [0-9a-f]+)?\]\s*$/;
const END = /^---\[ end trace [0-9a-f]+ \]---/;

interface Open {
  kind: KernelFaultKind;
  cls: string | null;
  /** What opened it: a WARN's own WARNING line joins a class rule's opened report. */
  opener: 'rule' | 'warning' | 'bug' | 'bug-at' | 'die';
  module: string | null;
  frameModule: string | null;
  frame: string | null;
  rip: string | null;
  device: string | null;
  driverName: string | null;
  head: string;
  usec: number;
  seq: number;
  startedMsBefore: number;
  inTrace: boolean;
  lines: string[];
}

const tagOf = (text: string): string | null => TAG.exec(text)?.[1] ?? null;

/**
 * Turns a stream of kmsg records into kernel failure reports, a record at a
 * time: a report is complete at its "---[ end trace ]---" line, at the next
 * report, or when the caller flushes (a dump_stack()-only BUG has no end line).
 */
export class KernelFaultParser {
  private open: Open | null = null;

  /** The classes' rules (ClassRuntime.kernelLogRules), tried before the generic reports. */
  constructor(private readonly rules: readonly KernelLogRule[] = []) {}

  /** Whether a report is still collecting its lines. */
  get pending(): boolean {
    return this.open !== null;
  }

  push(rec: KmsgRecord): KernelFault[] {
    // Userspace may write anything to /dev/kmsg, but only as facility 1 or above.
    if (rec.facility !== 0) return [];
    const text = rec.text;
    const out: KernelFault[] = [];
    for (const rule of this.rules) {
      const m = rule.line?.(text);
      if (!m) continue;
      // One line, complete in itself; another CPU's report may be open around it.
      out.push({
        kind: rule.kind,
        cls: rule.cls,
        module: null,
        device: m.device,
        driverName: m.driverName,
        ...(m.busName !== undefined ? { busName: m.busName } : {}),
        detail: m.detail,
        usec: rec.usec,
        seq: rec.seq,
        startedMsBefore: m.startedMsBefore,
        lines: [text],
      });
      return out;
    }
    const o = this.open;
    for (const rule of this.rules) {
      const m = rule.opener?.(text);
      if (!m) continue;
      out.push(...this.flush());
      this.start(rec, rule.kind, 'rule', { cls: rule.cls, device: m.device, driverName: m.driverName, startedMsBefore: m.startedMsBefore, head: text.trimEnd() });
      return out;
    }
    const warning = WARNING.exec(text);
    if (warning) {
      if (o && o.opener === 'rule' && o.lines.length < 4) {
        // The rule's report's own WARN (in the class's core code): part of its report.
        o.lines.push(text);
        return out;
      }
      out.push(...this.flush());
      this.start(rec, 'warn', 'warning', { module: tagOf(warning[1]!), head: text });
      return out;
    }
    if (KERNEL_BUG_AT.test(text)) {
      out.push(...this.flush());
      this.start(rec, 'bug', 'bug-at', { head: text });
      return out;
    }
    if (BUG.test(text)) {
      out.push(...this.flush());
      this.start(rec, 'bug', 'bug', { head: text });
      return out;
    }
    if (DIE.test(text)) {
      // die() after "BUG: unable to handle ..." or "kernel BUG at ...": the same failure.
      if (o && (o.opener === 'bug' || o.opener === 'bug-at') && !o.inTrace) {
        if (o.opener === 'bug') o.kind = 'oops';
        o.lines.push(text);
        return out;
      }
      out.push(...this.flush());
      this.start(rec, 'oops', 'die', { head: text });
      return out;
    }
    if (!o) return out;
    if (o.lines.length < MAX_LINES) o.lines.push(text);
    if (END.test(text)) return [...out, ...this.flush()];
    const rip = RIP.exec(text);
    if (rip && o.rip === null) {
      o.rip = rip[1]!.trim();
      o.module ??= tagOf(text);
    } else if (text === 'Call Trace:') {
      o.inTrace = true;
    } else if (o.inTrace && o.frameModule === null) {
      const frame = FRAME.exec(text);
      if (frame && !frame[1] && frame[3]) {
        o.frameModule = frame[3];
        o.frame = `${frame[2]!} [${frame[3]}]`;
      }
    }
    if (o.lines.length >= MAX_LINES) return [...out, ...this.flush()];
    return out;
  }

  /** Completes the report being collected, if any. */
  flush(): KernelFault[] {
    const o = this.open;
    this.open = null;
    if (!o) return [];
    const module = o.module ?? o.frameModule;
    let detail = o.head;
    if (o.opener !== 'rule' && o.kind !== 'warn' && o.rip) detail += ` at ${o.rip}`;
    if (o.module === null && o.frame) detail += ` (called from ${o.frame})`;
    return [
      {
        kind: o.kind,
        cls: o.cls,
        module,
        device: o.device,
        driverName: o.driverName,
        detail,
        usec: o.usec,
        seq: o.seq,
        startedMsBefore: o.startedMsBefore,
        lines: o.lines,
      },
    ];
  }

  private start(
    rec: KmsgRecord,
    kind: KernelFaultKind,
    opener: Open['opener'],
    init: { head: string; cls?: string; module?: string | null; device?: string | null; driverName?: string | null; startedMsBefore?: number },
  ): void {
    this.open = {
      kind,
      cls: init.cls ?? null,
      opener,
      module: init.module ?? null,
      frameModule: null,
      frame: null,
      rip: null,
      device: init.device ?? null,
      driverName: init.driverName ?? null,
      head: init.head,
      usec: rec.usec,
      seq: rec.seq,
      startedMsBefore: init.startedMsBefore ?? 0,
      inTrace: false,
      lines: [rec.text],
    };
  }
}

/** Every complete report in a list of records (raw record text or parsed). */
export function parseKernelFaults(records: readonly (string | KmsgRecord)[], rules: readonly KernelLogRule[] = []): KernelFault[] {
  const parser = new KernelFaultParser(rules);
  const faults: KernelFault[] = [];
  for (const r of records) {
    const rec = typeof r === 'string' ? parseKmsgRecord(r) : r;
    if (rec) faults.push(...parser.push(rec));
  }
  faults.push(...parser.flush());
  return faults;
}
