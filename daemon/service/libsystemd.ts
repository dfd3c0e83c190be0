// libsystemd through koffi, for the two things Node cannot do itself: send a
// datagram to a unix socket (sd_notify) and write native journal entries
// (sd_journal_sendv). koffi is loaded on first use only, through require: it
// and the library cost about 6 MB of resident memory (the daemon's budget is
// 64 MB), which a run outside systemd should not pay.
import { createRequire } from 'node:module';
import type * as KoffiModule from 'koffi';

export interface Libsystemd {
  /** sd_notify(0, state): > 0 sent, 0 no NOTIFY_SOCKET, < 0 -errno. */
  notify(state: string): number;
  /** sd_watchdog_enabled(0, &usec): the WatchdogSec= of this process in µs, 0 when off or not ours. */
  watchdogUsec(): number;
  /** sd_journal_sendv over one "FIELD=value" buffer per field: 0 sent (or no journal), < 0 -errno. */
  journalSendv(fields: readonly Buffer[]): number;
}

let loaded: Libsystemd | null | undefined;

/** The library, loaded once; null when koffi or libsystemd.so.0 cannot be loaded. */
export function libsystemd(): Libsystemd | null {
  if (loaded !== undefined) return loaded;
  try {
    const koffi = createRequire(import.meta.url)('koffi') as typeof KoffiModule;
    const lib = koffi.load('libsystemd.so.0');
    const iovec = koffi.struct({ iov_base: 'const void *', iov_len: 'size_t' });
    const sdNotify = lib.func('int sd_notify(int unset_environment, const char *state)');
    const sdWatchdogEnabled = lib.func('int sd_watchdog_enabled(int unset_environment, _Out_ uint64_t *usec)');
    const sdJournalSendv = lib.func('sd_journal_sendv', 'int', [koffi.pointer(iovec), 'int']);
    loaded = {
      notify: (state) => sdNotify(0, state) as number,
      watchdogUsec: () => {
        const usec: [number | bigint] = [0];
        return (sdWatchdogEnabled(0, usec) as number) > 0 ? Number(usec[0]) : 0;
      },
      journalSendv: (fields) => sdJournalSendv(fields.map((b) => ({ iov_base: b, iov_len: b.length })), fields.length) as number,
    };
  } catch {
    loaded = null;
  }
  return loaded;
}
