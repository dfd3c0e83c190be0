import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { notifier, notifyMessage } from '../../../daemon/service/systemd-notify.js';
import { startDatagramSink, type DatagramSink } from '../fake/datagram-sink.js';

describe('notifyMessage', () => {
  it('joins assignments with newlines and keeps a status on one line', () => {
    expect(notifyMessage({ READY: '1', STATUS: 'attaching taps\nstep 2' })).toBe('READY=1\nSTATUS=attaching taps step 2');
  });
});

describe('notifier outside systemd', () => {
  it('is a no-op and does not load libsystemd without NOTIFY_SOCKET', () => {
    let loads = 0;
    const n = notifier({}, () => {
      loads++;
      return null;
    });
    expect(n.enabled).toBe(false);
    expect([n.ready('x'), n.status('x'), n.watchdog(), n.reloading(), n.stopping()]).toEqual([false, false, false, false, false]);
    expect(n.watchdogIntervalMs()).toBeNull();
    n.startWatchdog()();
    expect(loads).toBe(0);
  });

  it('is a no-op when libsystemd cannot be loaded', () => {
    const n = notifier({ NOTIFY_SOCKET: '/run/systemd/notify' }, () => null);
    expect(n.enabled).toBe(false);
    expect(n.ready()).toBe(false);
  });
});

// The real thing: libsystemd through koffi, sending to a socket socat listens on.
describe('notifier with a notify socket', () => {
  let dir: string;
  let sink: DatagramSink;
  const saved = { ...process.env };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shadowd-notify-'));
    sink = await startDatagramSink(join(dir, 'notify.sock'));
    process.env['NOTIFY_SOCKET'] = join(dir, 'notify.sock');
  });
  afterAll(() => {
    sink.close();
    process.env = saved;
    rmSync(dir, { recursive: true, force: true });
  });

  it('sends READY, STATUS, WATCHDOG, RELOADING and STOPPING datagrams', async () => {
    const n = notifier();
    expect(n.enabled).toBe(true);
    expect(n.status('attaching taps')).toBe(true);
    expect(n.ready('watching 3 devices')).toBe(true);
    expect(n.watchdog()).toBe(true);
    expect(n.reloading()).toBe(true);
    expect(n.stopping()).toBe(true);
    const got = (await sink.waitFor(5)).map((b) => b.toString());
    expect(got.slice(0, 3)).toEqual(['STATUS=attaching taps', 'READY=1\nSTATUS=watching 3 devices', 'WATCHDOG=1']);
    expect(got[3]).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+$/);
    expect(got[4]).toBe('STOPPING=1');
  });

  it('reads the watchdog interval as half of WatchdogSec and feeds it from a timer', async () => {
    process.env['WATCHDOG_USEC'] = '200000';
    process.env['WATCHDOG_PID'] = String(process.pid);
    const n = notifier();
    expect(n.watchdogIntervalMs()).toBe(100);
    const before = sink.datagrams().length;
    const stop = n.startWatchdog();
    await sleep(350);
    stop();
    const pings = (await sink.waitFor(before + 3)).slice(before).map((b) => b.toString());
    expect(pings.length).toBeGreaterThanOrEqual(3);
    expect(new Set(pings)).toEqual(new Set(['WATCHDOG=1']));
    // Another process's watchdog (WATCHDOG_PID not ours) is not ours to feed.
    process.env['WATCHDOG_PID'] = '1';
    expect(notifier().watchdogIntervalMs()).toBeNull();
    delete process.env['WATCHDOG_USEC'];
    delete process.env['WATCHDOG_PID'];
    expect(notifier().watchdogIntervalMs()).toBeNull();
  });
});
