// The transmit-stall detector on scripted txstat replies (kmod/PROTOCOL.md):
// an idle link, a saturated one, a real stall, the kernel's TX timeouts, a
// device going away or being restarted, and replies it cannot read.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FailureReport } from '../../../../daemon/core/failure-report.js';
import type { LogFields, Priority } from '../../../../daemon/service/log.js';
import { helperTxstat, parseTxstat, StallDetector, stallThreshold, TxstatError, TxstatRefusedError } from '../../../../daemon/classes/net/stall-detector.js';

interface Tx {
  ifindex: number;
  state: string;
  running: number;
  carrier: number;
  queues: number;
  stopped: number;
  stalled_ms: number;
  watchdog_ms: number;
  tx_packets: number | string;
  inflight?: number;
  completed?: number;
  timeouts: number;
}
const BASE: Tx = { ifindex: 2, state: 'passive', running: 1, carrier: 1, queues: 1, stopped: 0, stalled_ms: 0, watchdog_ms: 5000, tx_packets: 1000, timeouts: 0 };
const tx = (o: Partial<Tx> = {}): string =>
  Object.entries({ ...BASE, ...o })
    .map(([k, v]) => `${k}=${v}`)
    .join(' ');

describe('txstat replies', () => {
  it('reads every field of the protocol', () => {
    expect(parseTxstat('ifindex=3 state=restarting running=0 carrier=1 queues=4 stopped=2 stalled_ms=1200 watchdog_ms=5000 tx_packets=18446744073709551615 timeouts=7')).toEqual({
      ifindex: 3,
      state: 'restarting',
      running: false,
      carrier: true,
      queues: 4,
      stopped: 2,
      stalledMs: 1200,
      watchdogMs: 5000,
      txPackets: 18446744073709551615n,
      timeouts: 7,
    });
  });

  it.each([
    ['', /"" is not key=value/],
    [tx().replace(' timeouts=0', ''), /missing timeouts$/],
    [`${tx()} extra=1`, /unknown field extra$/],
    [`${tx()} queues=1`, /field queues appears twice$/],
    [tx().replace(' ', '  '), /"" is not key=value/],
    [`${tx()} `, /"" is not key=value/],
    [tx({ state: 'busy' }), /state="busy" is not one of passive, restarting, parked$/],
    [tx({ running: 2 }), /running="2" is not 0 or 1$/],
    [tx({ stalled_ms: -5 }), /stalled_ms="-5" is not a decimal count$/],
    [tx().replace('watchdog_ms=5000', 'watchdog_ms=5e3'), /watchdog_ms="5e3" is not a decimal count$/],
    [tx({ tx_packets: '18446744073709551616' }), /tx_packets="18446744073709551616" is not a 64-bit count$/],
    [tx({ stopped: 2 }), /stopped=2 is more than queues=1$/],
    [tx({ ifindex: 0 }), /ifindex=0 is no device$/],
    ['err ENODEV no such device', /"err" is not key=value/],
  ])('refuses %j with a clear reason', (payload, why) => {
    expect(() => parseTxstat(payload)).toThrow(TxstatError);
    expect(() => parseTxstat(payload)).toThrow(why);
    expect(() => parseTxstat(payload)).toThrow(/^malformed txstat reply /);
  });

  it('reads the byte queue counts when the helper gives them, both or neither', () => {
    expect(parseTxstat(tx({ inflight: 1514, completed: 4294967295 }))).toMatchObject({ inflight: 1514, completed: 4294967295 });
    expect(parseTxstat(tx())).not.toHaveProperty('inflight');
    expect(() => parseTxstat(tx({ inflight: 3 }))).toThrow(/inflight without completed$/);
    expect(() => parseTxstat(tx({ inflight: 3, completed: 4294967296 }))).toThrow(/completed=4294967296 is more than 32 bits$/);
  });

  it('caps the threshold at half the kernel watchdog period, unless the device has no watchdog', () => {
    expect(stallThreshold(1000, 5000)).toBe(1000);
    expect(stallThreshold(1000, 1500)).toBe(750);
    expect(stallThreshold(1000, 0)).toBe(1000);
  });
});

describe('stall detector', () => {
  let replies: Map<string, (string | Error)[]>;
  let reports: FailureReport[];
  let logs: { priority: Priority; message: string; fields?: LogFields }[];
  let now: number;
  let watched: string[];
  let detector: StallDetector;

  beforeEach(() => {
    replies = new Map();
    reports = [];
    logs = [];
    now = 1_000_000;
    watched = ['eth0'];
    detector = new StallDetector({
      txstat: (device) => {
        const next = replies.get(device)?.shift();
        if (next === undefined) return Promise.reject(new Error(`no scripted reply for ${device}`));
        return next instanceof Error ? Promise.reject(next) : Promise.resolve(next);
      },
      devices: () => watched,
      onReport: (r) => reports.push(r),
      logger: { log: (priority, message, fields) => void logs.push({ priority, message, fields }) },
      now: () => now,
    });
  });

  /** One poll every 250 ms with each scripted reply for eth0. */
  async function run(seq: (string | Error)[], device = 'eth0'): Promise<void> {
    for (const reply of seq) {
      replies.set(device, [reply]);
      await detector.pollOnce();
      now += 250;
    }
  }

  it('stays quiet on an idle link: no queue is stopped', async () => {
    await run(Array.from({ length: 40 }, (_, i) => tx({ tx_packets: 1000 + (i % 3 === 0 ? 1 : 0) })));
    expect(reports).toEqual([]);
    expect(logs).toEqual([]);
  });

  it('stays quiet on a saturated link: queues stop and resume, stalled_ms stays small', async () => {
    // A full ring stops the queue until completions wake it: each poll finds it stopped or not,
    // never for long, while packets flow.
    await run(Array.from({ length: 40 }, (_, i) => tx({ queues: 2, stopped: i % 3, stalled_ms: i % 3 ? (i * 7) % 13 : 0, tx_packets: 1000 + 9000 * i })));
    expect(reports).toEqual([]);
  });

  it('reports a real stall once, at the threshold, dated from when transmits stopped', async () => {
    const stalled = [0, 240, 490, 740, 990, 1240, 1490, 1740, 1990, 2240].map((ms) => tx({ stopped: 1, stalled_ms: ms }));
    await run(stalled);
    expect(reports).toHaveLength(1);
    const at = 1_000_000 + 5 * 250; // the poll that saw 1240 ms
    expect(reports[0]).toEqual({
      cls: 'net',
      device: 'eth0',
      kind: 'tx-stall',
      detail: '1 of 1 TX queue(s) stopped with no transmit for 1240 ms (threshold 1000 ms, kernel watchdog 5000 ms)',
      detectedAt: at,
      since: at - 1240,
    });
    expect(logs).toMatchObject([{ priority: 'warning', message: `eth0: tx-stall: ${reports[0]!.detail}`, fields: { SHADOWD_DEVICE: 'eth0' } }]);
  });

  describe('transmit completions (byte queue limits)', () => {
    it('stays quiet while completions move, and on an idle link with nothing in flight', async () => {
      await run(Array.from({ length: 20 }, (_, i) => tx({ inflight: 3000, completed: 1000 + 700 * i })));
      await run(Array.from({ length: 20 }, () => tx({ inflight: 0, completed: 99 })));
      expect(reports).toEqual([]);
    });

    it('reports bytes in flight with no completion for the threshold, once, while the queue still runs', async () => {
      // Lost interrupts on a link that mostly receives: the queue is not stopped, nothing completes.
      await run([tx({ inflight: 0, completed: 500 }), ...Array.from({ length: 8 }, (_, i) => tx({ inflight: 66 * (i + 1), completed: 500 }))]);
      expect(reports).toHaveLength(1);
      const first = 1_000_000 + 250; // the first poll that saw bytes in flight
      expect(reports[0]).toEqual({
        cls: 'net',
        device: 'eth0',
        kind: 'tx-stall',
        detail:
          'transmit completions stopped: 330 byte(s) handed to the driver, none completed for 1000 ms ' +
          '(threshold 1000 ms, kernel watchdog 5000 ms; lost interrupts look like this)',
        detectedAt: first + 1000,
        since: first,
      });
    });

    it('reports the next episode only after completions moved again, and never without carrier or when down', async () => {
      const stuck = (n: number, c: number, o: Partial<Tx> = {}) => Array.from({ length: n }, () => tx({ inflight: 200, completed: c, ...o }));
      await run([...stuck(8, 7), ...stuck(8, 7)]);
      expect(reports).toHaveLength(1);
      await run([tx({ inflight: 0, completed: 207 }), ...stuck(8, 207, { carrier: 0 }), ...stuck(8, 207, { running: 0 })]);
      expect(reports).toHaveLength(1);
      // Carrier back: the wait counts from then, not from before the carrier went.
      await run(stuck(4, 207));
      expect(reports).toHaveLength(1);
      await run(stuck(1, 207));
      expect(reports).toHaveLength(2);
    });

    it('takes a wrapped (negative) in-flight difference for nothing in flight', async () => {
      // A completion between the helper's two reads: num_queued - num_completed = -60 in 32 bits.
      const wrapped = 2 ** 32 - 60;
      await run(Array.from({ length: 12 }, () => tx({ inflight: wrapped, completed: 500 })));
      expect(reports).toEqual([]);
      // Summed over queues in an unsigned long: one wrapped queue beside a real 100 bytes.
      await run(Array.from({ length: 12 }, () => tx({ queues: 2, inflight: wrapped + 100, completed: 500 })));
      expect(reports).toEqual([]);
      // Real bytes in flight with no completion are still a stall.
      await run(Array.from({ length: 8 }, () => tx({ inflight: 2 ** 28, completed: 500 })));
      expect(reports).toHaveLength(1);
      expect(reports[0]!.detail).toMatch(/^transmit completions stopped: 268435456 byte\(s\)/);
    });

    it('counts a wrapped completion count as progress', async () => {
      await run([tx({ inflight: 100, completed: 4294967200 }), ...Array.from({ length: 8 }, (_, i) => tx({ inflight: 100, completed: (4294967200 + 100 * (i + 1)) % 2 ** 32 }))]);
      expect(reports).toEqual([]);
    });
  });

  it('reports the next episode only after the queue made progress', async () => {
    await run([1000, 1250, 1500].map((ms) => tx({ stopped: 1, stalled_ms: ms })));
    expect(reports).toHaveLength(1);
    // A transmit went out (stalled_ms fell), then the queue stuck again.
    await run([300, 550, 800, 1050, 1300].map((ms) => tx({ stopped: 1, stalled_ms: ms })));
    expect(reports.map((r) => r.detail.match(/for (\d+) ms/)?.[1])).toEqual(['1000', '1050']);
    // Or the queue was woken altogether.
    await run([tx(), tx({ stopped: 1, stalled_ms: 1100 })]);
    expect(reports).toHaveLength(3);
  });

  it('fires before the kernel watchdog when its period is short', async () => {
    await run([500, 760].map((ms) => tx({ stopped: 1, stalled_ms: ms, watchdog_ms: 1500 })));
    expect(reports.map((r) => r.detail)).toEqual(['1 of 1 TX queue(s) stopped with no transmit for 760 ms (threshold 750 ms, kernel watchdog 1500 ms)']);
  });

  it('does not call a stopped queue a stall without carrier, on a device that is down, or while the helper restarts or parked it', async () => {
    await run([
      tx({ stopped: 1, stalled_ms: 3000, carrier: 0 }),
      tx({ stopped: 1, stalled_ms: 3250, running: 0 }),
      tx({ stopped: 1, stalled_ms: 3500, state: 'restarting' }),
      tx({ stopped: 1, stalled_ms: 3750, state: 'parked' }),
    ]);
    expect(reports).toEqual([]);
  });

  it('reports a stall that began before the detector started, on the first poll', async () => {
    await run([tx({ stopped: 1, stalled_ms: 4000 })]);
    expect(reports).toMatchObject([{ kind: 'tx-stall', since: 1_000_000 - 4000 }]);
  });

  it('reports each rise of the kernel TX timeout count, not the count it started with', async () => {
    await run([tx({ timeouts: 3 }), tx({ timeouts: 3 }), tx({ timeouts: 4 }), tx({ timeouts: 6 })]);
    expect(reports.map((r) => [r.kind, r.detail])).toEqual([
      ['tx-timeout', "the kernel's TX watchdog timed out once since the last poll (4 in all)"],
      ['tx-timeout', "the kernel's TX watchdog timed out 2 times since the last poll (6 in all)"],
    ]);
  });

  describe("the taps' TX watchdog record, which names no namespace", () => {
    it("is the watched device's when its own count grew since the last poll; the next poll does not report it again", async () => {
      await run([tx({ timeouts: 3 })]);
      replies.set('eth0', [tx({ timeouts: 4 })]);
      expect(await detector.tapTimeout('eth0')).toEqual({ kind: 'new' });
      await run([tx({ timeouts: 4 })]);
      expect(reports).toEqual([]);
    });

    it("is another namespace's when the watched device counted none: a same-named device of the same driver elsewhere", async () => {
      await run([tx({ timeouts: 3 })]);
      replies.set('eth0', [tx({ timeouts: 3 })]);
      const verdict = await detector.tapTimeout('eth0');
      expect(verdict).toEqual({ kind: 'not-ours', why: "the eth0 shadowd watches counted no TX timeout (3 in all): another namespace's device of that name and driver" });
      expect(reports).toEqual([]);
    });

    it('is already reported when a poll saw the count grow moments before the record came', async () => {
      await run([tx({ timeouts: 3 }), tx({ timeouts: 4 })]);
      expect(reports).toHaveLength(1);
      replies.set('eth0', [tx({ timeouts: 4 })]);
      expect(await detector.tapTimeout('eth0')).toEqual({ kind: 'seen' });
      // Long after, the same count is no longer a fresh report: a new record with no new count is not ours.
      now += 10_000;
      replies.set('eth0', [tx({ timeouts: 4 })]);
      expect((await detector.tapTimeout('eth0')).kind).toBe('not-ours');
    });

    it('cannot be told before the first poll or when the helper does not answer (the polls decide); a device made anew counts from zero', async () => {
      const first = await detector.tapTimeout('eth0');
      expect(first.kind === 'not-ours' && first.why).toMatch(/has not read eth0's TX status yet/);
      await run([tx({ timeouts: 3 })]);
      // Made anew since (another ifindex): its own count is from zero, so a timeout on it is ours, none is not.
      replies.set('eth0', [tx({ ifindex: 9, timeouts: 1 })]);
      expect((await detector.tapTimeout('eth0')).kind).toBe('new');
      await run([tx({ timeouts: 3 })]);
      replies.set('eth0', [tx({ ifindex: 9, timeouts: 0 })]);
      expect((await detector.tapTimeout('eth0')).kind).toBe('not-ours');
      replies.set('eth0', [new TxstatRefusedError('ENODEV', 'gone')]);
      const unread = await detector.tapTimeout('eth0');
      expect(unread.kind === 'not-ours' && unread.why).toMatch(/could not be read \(gone\)/);
    });
  });

  it('starts over when the device was restarted (new ifindex or state), re-armed and with a new timeout count', async () => {
    await run([tx({ stopped: 1, stalled_ms: 1500, timeouts: 5 })]);
    expect(reports).toHaveLength(1);
    // Still stuck: no second report; then the helper restarts it and it comes back with a new ifindex.
    await run([
      tx({ stopped: 1, stalled_ms: 1750, timeouts: 5 }),
      tx({ state: 'restarting', timeouts: 5 }),
      tx({ ifindex: 7, timeouts: 0 }),
      tx({ ifindex: 7, stopped: 1, stalled_ms: 1100, timeouts: 0 }),
    ]);
    expect(reports.map((r) => r.kind)).toEqual(['tx-stall', 'tx-stall']);
  });

  it('forgets a device that went away (ENODEV), logging it once, and watches it afresh when it is back', async () => {
    await run([tx({ stopped: 1, stalled_ms: 1500 })]);
    const gone = new TxstatRefusedError('ENODEV', 'shadow_helper refused txstat eth0: ENODEV no such interface');
    await run([gone, gone, gone]);
    expect(logs.filter((l) => l.priority === 'info')).toEqual([
      {
        priority: 'info',
        message: 'eth0: no TX status, the device is gone or has no driver (shadow_helper refused txstat eth0: ENODEV no such interface)',
        fields: { SHADOWD_COMPONENT: 'stall-detector', SHADOWD_CLASS: 'net', SHADOWD_DEVICE: 'eth0' },
      },
    ]);
    await run([tx({ ifindex: 9, stopped: 1, stalled_ms: 1200 })]);
    expect(reports.map((r) => r.kind)).toEqual(['tx-stall', 'tx-stall']);
    expect(logs.at(-2)?.message).toBe('eth0: TX status readable again');
  });

  it('logs a malformed reply once, keeps what it knew, and goes on with the other devices', async () => {
    watched = ['eth0', 'eth1'];
    replies.set('eth1', [tx({ ifindex: 3 }), tx({ ifindex: 3 }), tx({ ifindex: 3 }), tx({ ifindex: 3, stopped: 1, stalled_ms: 2000 })]);
    await run([tx({ stopped: 1, stalled_ms: 1200 }), 'ifindex=2 state=passive', 'ifindex=2 state=passive', tx({ stopped: 1, stalled_ms: 1700 })]);
    const warnings = logs.filter((l) => l.priority === 'warning' && l.message.includes('malformed'));
    expect(warnings.map((l) => l.message)).toEqual([
      'eth0: malformed txstat reply "ifindex=2 state=passive": missing running, carrier, queues, stopped, stalled_ms, watchdog_ms, tx_packets, timeouts',
    ]);
    // The stall eth0 was in before the bad replies is the same episode: reported once.
    expect(reports.map((r) => r.device)).toEqual(['eth0', 'eth1']);
  });

  it('logs a helper it cannot reach once per device, not at every poll', async () => {
    const down = Object.assign(new Error('the shadow_helper module is not loaded (modprobe shadow_helper)'), { code: 'ENOENT' });
    await run([down, down, down, down]);
    expect(logs).toMatchObject([{ priority: 'warning', message: 'eth0: cannot read the TX status: the shadow_helper module is not loaded (modprobe shadow_helper)' }]);
    expect(reports).toEqual([]);
  });

  it('polls every pollMs, one poll at a time, until stopped', async () => {
    vi.useFakeTimers();
    try {
      let calls = 0;
      let inFlight = 0;
      let overlapped = false;
      const d = new StallDetector({
        txstat: async () => {
          calls++;
          inFlight++;
          if (inFlight > 1) overlapped = true;
          await new Promise((r) => setTimeout(r, 100)); // a slow helper
          inFlight--;
          return tx();
        },
        devices: () => ['eth0'],
        onReport: () => undefined,
        logger: { log: () => undefined },
        pollMs: 250,
      });
      d.start();
      await vi.advanceTimersByTimeAsync(1760);
      // The poll under way (since 1750) ends; no other starts.
      const stopped = d.stop();
      await vi.advanceTimersByTimeAsync(200);
      await stopped;
      // Polls at 0, 350, 700, 1050, 1400, 1750: each waits for the one before.
      expect(calls).toBe(6);
      expect(overlapped).toBe(false);
      await vi.advanceTimersByTimeAsync(2000);
      expect(calls).toBe(6);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('stall detector robustness', () => {
  it('logs a poll that failed (a report consumer threw) and keeps polling', async () => {
    const logs: string[] = [];
    let polls = 0;
    const d = new StallDetector({
      txstat: () => {
        polls++;
        return Promise.resolve(tx({ stopped: 1, stalled_ms: 2000, ifindex: polls }));
      },
      devices: () => ['eth0'],
      onReport: () => {
        throw new Error('manager is gone');
      },
      logger: { log: (p, m) => void logs.push(`${p} ${m}`) },
      pollMs: 10,
    });
    d.start();
    await new Promise((r) => setTimeout(r, 80));
    await d.stop();
    expect(polls).toBeGreaterThan(2);
    expect(logs).toContain('err stall detector poll failed: manager is gone');
  });
});

describe('stall detector threshold per device', () => {
  it('asks a threshold function for each device at each poll (a configuration reload changes it)', async () => {
    const thresholds = new Map([
      ['eth0', 3000],
      ['eth1', 500],
    ]);
    const reports: FailureReport[] = [];
    const asked: string[] = [];
    const d = new StallDetector({
      txstat: () => Promise.resolve(tx({ stopped: 1, stalled_ms: 1200, watchdog_ms: 10_000 })),
      devices: () => ['eth0', 'eth1'],
      onReport: (r) => reports.push(r),
      logger: { log: () => undefined },
      thresholdMs: (device) => {
        asked.push(device);
        return thresholds.get(device) ?? 1000;
      },
      now: () => 1_000_000,
    });
    await d.pollOnce();
    expect(reports.map((r) => [r.device, r.detail.match(/threshold (\d+) ms/)?.[1]])).toEqual([['eth1', '500']]);
    expect(asked.sort()).toEqual(['eth0', 'eth1']);
    // eth0's threshold lowered: the stall it has been in is now reported.
    thresholds.set('eth0', 1000);
    await d.pollOnce();
    expect(reports.map((r) => r.device)).toEqual(['eth1', 'eth0']);
  });
});

describe('txstat through the helper', () => {
  it('asks `txstat net:IFACE` and turns an err reply into a TxstatRefusedError with the errno', async () => {
    const asked: string[] = [];
    const client = {
      request: (command: string) => {
        asked.push(command);
        return Promise.resolve(
          command.endsWith('net:eth0') ? { ok: true as const, payload: tx() } : { ok: false as const, errno: 'ENODEV', message: 'no interface net:eth9' },
        );
      },
    };
    const txstat = helperTxstat(() => Promise.resolve(client));
    await expect(txstat('eth0')).resolves.toBe(tx());
    const refused = txstat('eth9');
    await expect(refused).rejects.toBeInstanceOf(TxstatRefusedError);
    await expect(refused).rejects.toMatchObject({ errno: 'ENODEV', message: 'shadow_helper refused txstat net:eth9: ENODEV no interface net:eth9' });
    expect(asked).toEqual(['txstat net:eth0', 'txstat net:eth9']);
  });
});

afterEach(() => vi.useRealTimers());
