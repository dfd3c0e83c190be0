// Reads the guest kernel log as /dev/kmsg delivers it and finds the messages
// that mean the kernel went wrong: a test that causes one of these must fail.

export interface KernelLogLine {
  /** Syslog priority 0 (emerg) .. 7 (debug). */
  level: number;
  /** Microseconds since boot. */
  usec: number;
  text: string;
}

/** Parses /dev/kmsg records: "prio,seq,usec,flags;text" plus " KEY=value" continuation lines. */
export function parseKmsg(raw: string): KernelLogLine[] {
  const lines: KernelLogLine[] = [];
  for (const record of raw.split('\n')) {
    if (record.startsWith(' ')) continue; // dictionary continuation (SUBSYSTEM=, DEVICE=)
    const semi = record.indexOf(';');
    if (semi < 0) continue;
    const [prio, , usec] = record.slice(0, semi).split(',');
    const prioNum = Number(prio);
    const usecNum = Number(usec);
    if (!Number.isInteger(prioNum) || !Number.isFinite(usecNum)) continue;
    lines.push({ level: prioNum & 7, usec: usecNum, text: unescapeKmsg(record.slice(semi + 1)) });
  }
  return lines;
}

function unescapeKmsg(text: string): string {
  return text.replace(/\\x([0-9a-f]{2})/g, (_, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

/** The kernel's own words for an oops, BUG, WARN, panic, lockup or memory corruption. */
const PROBLEM_PATTERNS: readonly RegExp[] = [
  /\bOops\b/,
  /\bBUG:/,
  /kernel BUG at/,
  /^WARNING:/,
  /Kernel panic/,
  /general protection fault/,
  /soft lockup/,
  /hard LOCKUP/,
  /blocked for more than \d+ seconds/,
  /rcu_(sched|preempt) detected stalls/,
  /list_(add|del) corruption/,
  /UBSAN:/,
  /possible circular locking dependency/,
];

/** A WARN's own message comes just before its WARNING: line; the register dump follows it. */
const LINES_BEFORE = 2;
const LINES_AFTER = 16;

/**
 * Kernel problem reports, each with the lines around it. A report's own lines
 * (an oops after its BUG: line) belong to it rather than opening another.
 */
export function kernelProblems(lines: readonly KernelLogLine[]): string[] {
  const found: string[] = [];
  let reportedUpTo = 0;
  for (let i = 0; i < lines.length; i++) {
    if (PROBLEM_PATTERNS.some((p) => p.test(lines[i]!.text))) {
      const from = Math.max(reportedUpTo, i - LINES_BEFORE);
      reportedUpTo = i + LINES_AFTER;
      found.push(lines.slice(from, reportedUpTo).map((l) => l.text).join('\n'));
      i = reportedUpTo - 1;
    }
  }
  return found;
}

/** Scans console text (serial output) for the same signs, for guests that died before writing kmsg. */
export function consoleProblems(consoleText: string): string[] {
  return consoleText
    .split('\n')
    .filter((l) => PROBLEM_PATTERNS.some((p) => p.test(l.replace(/^\[\s*[\d.]+\]\s*/, ''))));
}
