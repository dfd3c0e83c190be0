// The detectors' hand-off of a failure report: what the consumer returns
// comes back; what it throws or rejects with is logged at err with the
// caller's fields, and never thrown on.
import { describe, expect, it } from 'vitest';
import { handOnReport } from '../../../daemon/core/report-handoff.js';
import type { LogFields, Priority } from '../../../daemon/service/log.js';

function handOff(what: string) {
  const lines: { priority: Priority; message: string; fields?: LogFields }[] = [];
  return { lines, how: { logger: { log: (priority: Priority, message: string, fields?: LogFields) => void lines.push({ priority, message, fields }) }, what, fields: { SHADOWD_COMPONENT: 'detector' } } };
}

describe('handOnReport', () => {
  it("resolves with what a synchronous or an asynchronous consumer returns, and logs nothing", async () => {
    const { lines, how } = handOff('io-stall');
    expect(await handOnReport(() => 3, how)).toBe(3);
    expect(await handOnReport(() => Promise.resolve('taken'), how)).toBe('taken');
    expect(lines).toEqual([]);
  });

  it('logs a consumer that throws at err with the caller\'s fields, before it returns, and resolves with undefined', async () => {
    const { lines, how } = handOff('tx-timeout');
    const handed = handOnReport(() => {
      throw new Error('policy filter broke');
    }, how);
    // Logged already: a caller that does not wait keeps its order of logs.
    expect(lines).toEqual([{ priority: 'err', message: 'handing on a tx-timeout report failed: policy filter broke', fields: { SHADOWD_COMPONENT: 'detector' } }]);
    await expect(handed).resolves.toBeUndefined();
  });

  it('logs a consumer that rejects, with an Error or anything else, and does not reject', async () => {
    const { lines, how } = handOff('kernel oops');
    await expect(handOnReport(() => Promise.reject(new Error('manager stopped')), how)).resolves.toBeUndefined();
    // What is under test: a consumer that rejects with something other than an Error.
    // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
    await expect(handOnReport(() => Promise.reject('no reason'), how)).resolves.toBeUndefined();
    expect(lines.map((l) => [l.priority, l.message])).toEqual([
      ['err', 'handing on a kernel oops report failed: manager stopped'],
      ['err', 'handing on a kernel oops report failed: no reason'],
    ]);
  });
});
