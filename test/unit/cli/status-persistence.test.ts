// shadowctl status when the shadow state does not reach its file: the line
// that says so (cli/format.ts persistenceLine), from the status reply's
// persistence object (daemon/core/store-health.ts).
import { describe, expect, it } from 'vitest';
import { formatStatus } from '../../../cli/format.js';
import type { PersistenceStatus } from '../../../daemon/core/store-health.js';
import { STATUS_NOW as NOW, statusResult } from '../../fixtures/status-result.js';

const OK: PersistenceStatus = { state: 'ok', path: '/var/lib/shadowd/state.db', code: null, error: null, since: null, pending: 0, retries: 0, nextRetryAt: null, movedAside: null };

const status = (persistence?: PersistenceStatus) => statusResult(persistence ? { persistence } : {});

describe('shadowctl status: persistence', () => {
  it('says nothing when every change is in the file, or the daemon does not report it', () => {
    expect(formatStatus(status(OK), NOW)).not.toMatch(/state/);
    expect(formatStatus(status(), NOW)).not.toMatch(/state/);
  });

  it('says the state is degraded, why, how much waits and when the next retry is', () => {
    const text = formatStatus(
      status({ ...OK, state: 'degraded', code: 'SQLITE_FULL', error: 'database or disk is full', since: NOW - 120_000, pending: 12, retries: 3, nextRetryAt: NOW + 25_000 }),
      NOW,
    );
    const line = text.split('\n')[1];
    expect(line).toMatch(/^state: DEGRADED for 2m/);
    expect(line).toContain('not persisted to /var/lib/shadowd/state.db (SQLITE_FULL: database or disk is full)');
    expect(line).toContain('12 change(s) wait');
    expect(line).toMatch(/next retry in 25s/);
  });

  it('says when there is no file and no retry, and names a corrupt file moved aside', () => {
    const text = formatStatus(status({ ...OK, state: 'degraded', code: 'SQLITE_CANTOPEN', error: 'cannot open /var/lib/shadowd/state.db: unable to open database file', since: NOW }), NOW);
    expect(text).toContain('no retry (restart shadowd once the file can be opened)');
    const aside = formatStatus(status({ ...OK, movedAside: '/var/lib/shadowd/state.db.corrupt-20261204T224114Z' }), NOW);
    expect(aside).toContain('state: /var/lib/shadowd/state.db was corrupt at start and is kept as /var/lib/shadowd/state.db.corrupt-20261204T224114Z');
  });
});
