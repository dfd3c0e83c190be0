// Native journal entries: one sd_journal_sendv call per log line, each field
// its own "NAME=value" iovec, so `journalctl SHADOWD_DEVICE=eth0` and
// `journalctl MESSAGE_ID=...` find them and `journalctl -x` shows the catalog.
import { libsystemd, type Libsystemd } from './libsystemd.js';
import type { LogFields } from './log.js';

export const SYSLOG_IDENTIFIER = 'shadowd';

/** journald's rule: upper-case letters, digits and underscores, not starting with a digit or underscore (those are trusted fields), at most 64 bytes. */
export function validFieldName(name: string): boolean {
  return /^[A-Z][A-Z0-9_]{0,63}$/.test(name);
}

/** The fields every entry gets from us; a caller's field of the same name is dropped. */
const OWN_FIELDS = new Set(['MESSAGE', 'PRIORITY', 'SYSLOG_IDENTIFIER']);

export interface JournalEntry {
  /** "NAME=value" strings in the order they are sent. */
  fields: string[];
  /** Caller field names that were left out: invalid names, ours, or a MESSAGE_ID that is not 32 hex digits. */
  skipped: string[];
}

/** The fields of one entry, as sd_journal_sendv will get them; priority is syslog's number (3 err ... 7 debug). Pure. */
export function journalEntry(priority: number, message: string, fields: LogFields = {}): JournalEntry {
  const out = [`MESSAGE=${message}`, `PRIORITY=${priority}`, `SYSLOG_IDENTIFIER=${SYSLOG_IDENTIFIER}`];
  const skipped: string[] = [];
  for (const [name, value] of Object.entries(fields)) {
    if (value === undefined || value === null) continue;
    const text = String(value);
    if (!validFieldName(name) || OWN_FIELDS.has(name) || (name === 'MESSAGE_ID' && !/^[0-9a-f]{32}$/.test(text))) {
      skipped.push(name);
      continue;
    }
    out.push(`${name}=${text}`);
  }
  return { fields: out, skipped };
}

/** One buffer per field, the iov_base/iov_len pairs sd_journal_sendv reads. Pure. */
export function journalIovecs(entry: JournalEntry): { iov_base: Buffer; iov_len: number }[] {
  return entry.fields.map((f) => {
    const b = Buffer.from(f, 'utf8');
    return { iov_base: b, iov_len: b.length };
  });
}

export interface JournalWriter {
  /** True when journald accepted the entry (or, as libsystemd does, when there is no journal at all). */
  send(entry: JournalEntry): boolean;
}

/** A writer through libsystemd, or null when it cannot be loaded. */
export function openJournal(load: () => Libsystemd | null = libsystemd): JournalWriter | null {
  const lib = load();
  if (!lib) return null;
  return { send: (entry) => lib.journalSendv(journalIovecs(entry).map((v) => v.iov_base)) >= 0 };
}
