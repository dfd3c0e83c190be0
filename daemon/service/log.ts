// Structured log lines. Each line has a syslog priority and fields (device,
// driver, recovery id ...). Under systemd with a journal, each line is a
// native journal entry whose fields are journal fields (see journal.ts).
// Otherwise it goes to stderr with the `<N>` priority prefix that journald and
// systemd read from a service's stderr, the fields following the message as
// KEY=value so a foreground run stays readable.
import { existsSync, fstatSync } from 'node:fs';
import { journalEntry, openJournal, type JournalWriter } from './journal.js';

export const PRIORITY = { err: 3, warning: 4, notice: 5, info: 6, debug: 7 } as const;
export type Priority = keyof typeof PRIORITY;

/** Field names as journald wants them: upper case, digits, underscores. */
export type LogFields = Record<string, string | number | boolean | null | undefined>;

export interface Logger {
  log(priority: Priority, message: string, fields?: LogFields): void;
}

function fieldText(fields: LogFields): string {
  const parts: string[] = [];
  for (const [k, v] of Object.entries(fields)) {
    if (v === undefined || v === null) continue;
    const text = String(v);
    parts.push(`${k}=${/[\s"=]/.test(text) || text === '' ? JSON.stringify(text) : text}`);
  }
  return parts.join(' ');
}

export function formatLogLine(priority: Priority, message: string, fields: LogFields = {}): string {
  const extra = fieldText(fields);
  return `<${PRIORITY[priority]}>${message.replace(/\n/g, ' ')}${extra ? ` ${extra}` : ''}`;
}

export function stderrLogger(minimum: Priority = 'info', write = (line: string) => process.stderr.write(line + '\n')): Logger {
  return {
    log(priority, message, fields) {
      if (PRIORITY[priority] <= PRIORITY[minimum]) write(formatLogLine(priority, message, fields));
    },
  };
}

export type LogTarget = 'journal' | 'stderr';

/** What decides the log target; currentLogEnvironment() reads the real one. */
export interface LogEnvironment {
  env: NodeJS.ProcessEnv;
  /** Whether journald's native socket, /run/systemd/journal/socket, exists. */
  journalSocket: boolean;
  /** "device:inode" of file descriptor 2, the form of $JOURNAL_STREAM; null if it is closed. */
  stderrId: string | null;
}

export const JOURNAL_SOCKET = '/run/systemd/journal/socket';

export function currentLogEnvironment(env: NodeJS.ProcessEnv = process.env): LogEnvironment {
  let stderrId: string | null = null;
  try {
    const st = fstatSync(2);
    stderrId = `${st.dev}:${st.ino}`;
  } catch {
    // fd 2 closed: nothing to compare
  }
  return { env, journalSocket: existsSync(JOURNAL_SOCKET), stderrId };
}

/**
 * The journal when our stderr is the stream systemd connected to the journal
 * ($JOURNAL_STREAM names it; a child of a service inherits the variable with
 * a different stderr, hence the comparison), or when journald's socket is
 * there and we run as a unit ($INVOCATION_ID or $NOTIFY_SOCKET set, e.g. with
 * StandardError= pointing elsewhere). Otherwise stderr: a foreground run.
 */
export function chooseLogTarget(e: LogEnvironment): LogTarget {
  const stream = e.env['JOURNAL_STREAM'];
  if (stream && stream === e.stderrId) return 'journal';
  if (e.journalSocket && (e.env['INVOCATION_ID'] || e.env['NOTIFY_SOCKET'])) return 'journal';
  return 'stderr';
}

/** The daemon's logger: the target is chosen once; the level can change (a configuration reload). */
export interface ServiceLogger extends Logger {
  readonly target: LogTarget;
  setMinimum(minimum: Priority): void;
}

export interface ServiceLoggerOptions {
  /** Default: chooseLogTarget(currentLogEnvironment()). */
  target?: LogTarget;
  /** Default: openJournal(); when there is none the logger writes to stderr. */
  journal?: JournalWriter | null;
  /** Where stderr lines go. */
  write?: (line: string) => void;
}

export function serviceLogger(minimum: Priority = 'info', options: ServiceLoggerOptions = {}): ServiceLogger {
  const write = options.write ?? ((line: string) => process.stderr.write(line + '\n'));
  const wanted = options.target ?? chooseLogTarget(currentLogEnvironment());
  const journal = wanted === 'journal' ? (options.journal !== undefined ? options.journal : openJournal()) : null;
  let level = minimum;
  return {
    target: journal ? 'journal' : 'stderr',
    setMinimum(p) {
      level = p;
    },
    log(priority, message, fields) {
      if (PRIORITY[priority] > PRIORITY[level]) return;
      // A refused entry (journald gone, say) still reaches stderr, which systemd also collects.
      if (journal && journal.send(journalEntry(PRIORITY[priority], message, fields))) return;
      write(formatLogLine(priority, message, fields));
    },
  };
}
