// The recovery manager against a fake kernel helper that records the commands
// it gets and answers from a script, a real (in-memory) history, and fake
// timers for the back-off. The network class reaches it through a
// RecoveryPort built from its real declaration (names, faults, failure kinds,
// restart steps and fields) with a fake lookup, replay and afterRestart; the
// manager no longer stages ethtool values (that moved to the network class,
// daemon/classes/net/netdev-staging.ts).
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { NET_DECLARATION } from '../../../daemon/classes/net/net-declaration.js';
import { netClass } from '../../../daemon/classes/net/net-class.js';
import type { ClassReplay } from '../../../daemon/core/device-class.js';
import type { DeviceRef } from '../../../daemon/core/device-ref.js';
import type { FailureReport } from '../../../daemon/core/failure-report.js';
import { HelperError, type HelperClient, type HelperReply } from '../../../daemon/core/helper-client.js';
import type { LogFields, Logger, Priority } from '../../../daemon/service/log.js';
import {
  MESSAGE_FAILURE_DETECTED,
  MESSAGE_GAVE_UP,
  MESSAGE_RECOVERED,
  MESSAGE_RECOVERY_FAILED,
  MESSAGE_RECOVERY_STARTED,
  MESSAGE_REPLAY_STEP_FAILED,
} from '../../../daemon/service/message-ids.js';
import * as messageIds from '../../../daemon/service/message-ids.js';
import { RECOVERY_ID, RecoveryHistory, type RecoveryRecord } from '../../../daemon/core/recovery-history.js';
import {
  RecoveryManager,
  SLOW_RESTART_MS,
  checkFailureReport,
  type RecoveryManagerOptions,
  type RecoveryPort,
  type ReplayReport,
} from '../../../daemon/core/recovery-manager.js';
import { RequestError } from '../../../daemon/core/request-error.js';
import { ShadowStore } from '../../../daemon/core/shadow-store.js';
import type { RestartReply } from '../../../daemon/core/helper-protocol.js';

type Answer = (command: string) => HelperReply | Promise<HelperReply>;

/** Answers as a healthy module does, naming devices CLASS:NAME (e1000 being a loadable module that drives one device). */
function healthy(command: string): HelperReply {
  const [verb, dev, arg, option] = command.split(' ');
  switch (verb) {
    case 'restart':
      if (option === 'reload') {
        return {
          ok: true,
          payload: `restarted ${dev} id=${arg} ifindex=2 module=e1000 stop_ms=10 release_ms=5 unload_ms=120 load_ms=300 probe_ms=600 replay_ms=30 open_ms=205 total_ms=1270 steps=reload:ok,name:skip,mac:ok,mtu:ok,features:ok`,
        };
      }
      return {
        ok: true,
        payload: `restarted ${dev} id=${arg} ifindex=2 stop_ms=10 release_ms=5 probe_ms=600 replay_ms=30 open_ms=205 total_ms=850 steps=name:skip,mac:ok,mtu:ok,features:ok`,
      };
    case 'park':
      return { ok: true, payload: `parked ${dev} id=${arg}` };
    case 'inject':
      return arg === 'clear' ? { ok: true, payload: `cleared ${dev}` } : { ok: true, payload: `injected ${dev} ${arg}` };
    default:
      return { ok: false, errno: 'EINVAL', message: `unknown command '${verb}'` };
  }
}

class FakeHelper implements HelperClient {
  readonly path = '/dev/fake_helper';
  readonly commands: string[] = [];
  answer: Answer = healthy;
  request(command: string): Promise<HelperReply> {
    this.commands.push(command);
    return Promise.resolve(this.answer(command));
  }
  version() {
    return Promise.resolve({ proto: 3, version: '0.3.0', kernel: 'test', faults: true, classes: ['net'] });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
  verbs(): string[] {
    return this.commands.map((c) => c.split(' ')[0]!);
  }
}

interface Line {
  priority: Priority;
  message: string;
  fields: LogFields;
}

function failure(over: Partial<FailureReport> = {}): FailureReport {
  return { cls: 'net', device: 'eth0', kind: 'tx-timeout', detail: 'transmit queue 0 timed out', detectedAt: Date.now(), ...over };
}

/** A network device reference. */
const net = (name: string): DeviceRef => ({ cls: 'net', name });
const ETH0 = net('eth0');
const ETH1 = net('eth1');

/** A class replay from a replay function; its mark, unless given, is 0 (nothing waits on it but the replay). */
function replayer(replay: ClassReplay['replay'], mark: ClassReplay['mark'] = () => Promise.resolve(0)): ClassReplay {
  return { mark, replay };
}

/** What a test may give the network class's port beside its declaration. */
type PortParts = Partial<Omit<RecoveryPort, 'decl'>>;

/** The interface index the fake shadow knows for eth0 and eth1. */
const KNOWN_IFINDEX = 2;

/** The network class's after-restart check as net-class.ts words it, against the fake shadow's index. */
function ifindexCheck(_name: string, reply: RestartReply): string[] {
  const now = reply.fields['ifindex'];
  return now !== undefined && now !== KNOWN_IFINDEX ? [`the interface index changed from ${KNOWN_IFINDEX} to ${now}: handles bound to the old one are lost`] : [];
}

describe('RecoveryManager', () => {
  let helper: FakeHelper;
  let history: RecoveryHistory;
  let lines: Line[];
  let logger: Logger;
  let helperMissing: boolean;

  /**
   * The network class as the manager sees it: its real declaration, eth0 and
   * eth1 on e1000 (interface index 2, as healthy() answers), no replay, and
   * what the test adds.
   */
  const netPort = (parts: PortParts = {}): RecoveryPort => ({
    decl: NET_DECLARATION,
    lookup: (name) => (name === 'eth0' || name === 'eth1' ? { name, driver: 'e1000', bus: name === 'eth0' ? '0000:00:03.0' : '0000:00:04.0' } : null),
    afterRestart: ifindexCheck,
    ...parts,
  });
  const make = (over: Partial<RecoveryManagerOptions> = {}, port: PortParts = {}): RecoveryManager =>
    new RecoveryManager({
      history,
      logger,
      helper: () =>
        helperMissing ? Promise.reject(new HelperError('the shadow_helper module is not loaded (modprobe shadow_helper)', { code: 'ENOENT' })) : Promise.resolve(helper),
      classes: new Map([['net', netPort(port)]]),
      ...over,
    });
  const byId = (id: string) => lines.filter((l) => l.fields['MESSAGE_ID'] === id);

  beforeEach(() => {
    vi.useFakeTimers({ now: new Date('2025-11-27T15:00:00Z') });
    helper = new FakeHelper();
    history = new RecoveryHistory(new Database(':memory:'));
    lines = [];
    logger = { log: (priority, message, fields = {}) => lines.push({ priority, message, fields }) };
    helperMissing = false;
  });
  afterEach(() => {
    history.close();
    vi.useRealTimers();
  });

  it('message ids are 32 lowercase hex characters, all different', () => {
    const ids = Object.values(messageIds);
    expect(ids.length).toBeGreaterThanOrEqual(6);
    for (const id of ids) expect(id).toMatch(/^[0-9a-f]{32}$/);
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('recovers a failed device: restart, check, passive; timed, logged and recorded', async () => {
    const m = make();
    const out = m.report(failure({ since: Date.now() - 1200, driver: 'e1000' }));
    expect(out.action).toBe('started');
    if (out.action === 'ignored') throw new Error('ignored');
    expect(out.id).toMatch(RECOVERY_ID);
    const rec = await out.done;
    // Nothing is staged: the restart is the one command.
    expect(helper.commands).toEqual([`restart net:eth0 ${out.id}`]);
    expect(rec).toMatchObject({
      id: out.id,
      cls: 'net',
      device: 'eth0',
      driver: 'e1000',
      trigger: 'tx-timeout',
      detail: 'transmit queue 0 timed out',
      result: 'recovered',
      error: null,
      merged: 0,
      phases: { detect: 1200, restart: 0, check: 0, total: 0, module: { stopMs: 10, releaseMs: 5, probeMs: 600, replayMs: 30, openMs: 205, totalMs: 850 } },
    });
    expect(rec.phases.stage).toBeUndefined();
    expect(rec.steps.map((s) => `${s.key}:${s.result}`)).toEqual(['name:skip', 'mac:ok', 'mtu:ok', 'features:ok']);
    expect(history.get(out.id)).toEqual(rec);

    for (const id of [MESSAGE_FAILURE_DETECTED, MESSAGE_RECOVERY_STARTED, MESSAGE_RECOVERED]) expect(byId(id)).toHaveLength(1);
    expect(byId(MESSAGE_FAILURE_DETECTED)[0]).toMatchObject({ priority: 'warning', fields: { SHADOWD_PHASE: 'detected', SHADOWD_PHASE_MS: 1200 } });
    expect(byId(MESSAGE_RECOVERY_STARTED)[0]?.fields).toMatchObject({ SHADOWD_PHASE: 'active' });
    expect(byId(MESSAGE_RECOVERED)[0]).toMatchObject({ priority: 'notice', fields: { SHADOWD_PHASE: 'passive', SHADOWD_PHASE_MS: 0 } });
    const recoveryLines = lines.filter((l) => l.fields['SHADOWD_RECOVERY_ID'] === out.id);
    expect(recoveryLines.map((l) => l.fields['SHADOWD_PHASE'])).toEqual(['detected', 'active', 'active', 'check', 'passive']);
    for (const l of recoveryLines) expect(l.fields).toMatchObject({ SHADOWD_DEVICE: 'eth0', SHADOWD_DRIVER: 'e1000', SHADOWD_CLASS: 'net' });
  });

  it('says so when the kernel takes too long to restart the driver, once, and not for a restart that ends in time', async () => {
    let release: (() => void) | null = null;
    helper.answer = async (c) => {
      if (c.startsWith('restart')) await new Promise<void>((r) => (release = r));
      return healthy(c);
    };
    const m = make();
    const out = m.report(failure());
    if (out.action === 'ignored') throw new Error('ignored');
    const stuck = () => lines.filter((l) => l.message.includes('has not finished restarting'));
    await vi.advanceTimersByTimeAsync(SLOW_RESTART_MS - 1);
    expect(stuck()).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(stuck()).toHaveLength(1);
    expect(stuck()[0]).toMatchObject({ priority: 'warning', fields: { SHADOWD_RECOVERY_ID: out.id, SHADOWD_PHASE: 'active' } });
    await vi.advanceTimersByTimeAsync(5 * SLOW_RESTART_MS);
    expect(stuck()).toHaveLength(1);
    release!();
    expect((await out.done).result).toBe('recovered');

    helper.answer = healthy;
    const again = m.recover(ETH1);
    await vi.advanceTimersByTimeAsync(2 * SLOW_RESTART_MS);
    expect((await again).result).toBe('recovered');
    expect(stuck()).toHaveLength(1);
  });

  it('times each phase', async () => {
    helper.answer = async (c) => {
      await new Promise((r) => setTimeout(r, c.startsWith('restart') ? 850 : 5));
      return healthy(c);
    };
    const replay = async (device: string): Promise<ReplayReport> => {
      await new Promise((r) => setTimeout(r, 40));
      return { device, steps: [{ key: 'coalesce', argv: ['ethtool', '-C', device, 'rx-usecs', '3'], ok: true }] };
    };
    const m = make({}, { replay: replayer(replay) });
    const out = m.report(failure());
    if (out.action === 'ignored') throw new Error('ignored');
    await vi.advanceTimersByTimeAsync(1000);
    const rec = await out.done;
    expect(rec.phases).toMatchObject({ restart: 850, check: 40, total: 890 });
    expect(rec.phases.stage).toBeUndefined();
    expect(rec.steps.at(-1)).toEqual({ source: 'daemon', key: 'coalesce', result: 'ok', argv: ['ethtool', '-C', 'eth0', 'rx-usecs', '3'] });
    // The log says what the shadow set back.
    expect(lines.map((l) => l.message)).toContain('eth0: replay check done in 40 ms: replayed coalesce');
  });

  it('marks the shadow as the restart is sent and hands the mark to the replay after it; a replay on request gets none', async () => {
    const events: string[] = [];
    helper.answer = (c) => {
      events.push(c.split(' ')[0]!);
      return healthy(c);
    };
    const marks: Promise<number>[] = [];
    // The class's replay is not told the recovery's id: which recovery it serves is the one the device is in as it runs.
    const got: { recovery: string | null; phase: string | null; mark: Promise<number> | undefined }[] = [];
    let m: RecoveryManager | null = null;
    m = make(
      {},
      {
        replay: replayer(
          (device, mark) => {
            events.push('replay');
            const st = m!.deviceState(net(device));
            got.push({ recovery: st.recoveryId, phase: st.phase, mark });
            return Promise.resolve({ device, steps: [] });
          },
          (device) => {
            events.push(`mark ${device}`);
            const mark = Promise.resolve(41 + marks.length);
            marks.push(mark);
            return mark;
          },
        ),
      },
    );
    const out = m.report(failure());
    if (out.action === 'ignored') throw new Error('ignored');
    expect((await out.done).result).toBe('recovered');
    // As the restart goes out; the replay waits on it only once the restart is done.
    expect(events).toEqual(['mark eth0', 'restart', 'replay']);
    expect(got).toEqual([{ recovery: out.id, phase: 'check', mark: marks[0] }]);
    expect(await got[0]!.mark).toBe(41);

    const replayed = await m.replay(ETH0);
    expect(replayed.trigger).toBe('replay');
    expect(got.at(-1)).toEqual({ recovery: null, phase: null, mark: undefined });
    expect(marks).toHaveLength(1);
  });

  it('a mark that fails is logged, never left unhandled, and fails only the replay that waits on it', async () => {
    const m = make(
      {},
      {
        replay: replayer(
          async (device, mark) => {
            await mark;
            return { device, steps: [] };
          },
          () => Promise.reject(new Error('no marker came back from CPU 1 within 5000 ms')),
        ),
      },
    );
    const rec = await m.recover(ETH0);
    expect([rec.result, rec.error]).toEqual(['recovered', 'replay from the shadow failed: no marker came back from CPU 1 within 5000 ms']);
    expect(lines.map((l) => `${l.priority} ${l.message}`)).toContain('warning eth0: could not mark the shadow as the restart began: no marker came back from CPU 1 within 5000 ms');
    // A restart that fails leaves its mark to nobody: still no unhandled rejection (vitest would report it).
    helper.answer = (c) => (c.startsWith('restart') ? { ok: false, errno: 'EIO', message: 'probe failed' } : healthy(c));
    expect((await m.recover(ETH0)).result).toBe('failed');
  });

  it('merges a report for a device already recovering into that recovery', async () => {
    let release: () => void = () => undefined;
    helper.answer = (c) => (c.startsWith('restart') ? new Promise((r) => (release = () => r(healthy(c)))) : healthy(c));
    const m = make();
    const first = m.report(failure());
    await vi.advanceTimersByTimeAsync(0);
    expect(m.isActive(ETH0)).toBe(true);
    const second = m.report(failure({ kind: 'tx-stall', detail: 'queue 0 stopped for 1200 ms' }));
    expect(second.action).toBe('merged');
    if (first.action === 'ignored' || second.action === 'ignored') throw new Error('ignored');
    expect(second.id).toBe(first.id);
    expect(history.get(first.id)?.merged).toBe(1);
    release();
    const rec = await second.done;
    expect(rec.merged).toBe(1);
    expect(helper.verbs()).toEqual(['restart']);
    expect(m.isActive(ETH0)).toBe(false);
    expect(lines.some((l) => /tx-stall failure report merged into recovery/.test(l.message))).toBe(true);
  });

  it('merges a kernel log report read during the check whose line came before the restart, and fails the recovery on one after it', async () => {
    const replay = async (device: string): Promise<ReplayReport> => {
      await new Promise((r) => setTimeout(r, 500));
      return { device, steps: [] };
    };
    const m = make({}, { replay: replayer(replay) });
    const first = m.report(failure());
    if (first.action === 'ignored') throw new Error(first.reason);
    await vi.advanceTimersByTimeAsync(200);
    expect(m.deviceState(ETH0)).toMatchObject({ recoveryId: first.id, phase: 'check' });
    // Written before the helper's restart line: the failure being recovered, read late.
    const late = m.report(failure({ kind: 'tx-timeout', detail: 'transmit queue 0 timed out 8244 ms', restartsBefore: ['older'] }));
    expect(late).toMatchObject({ action: 'merged', id: first.id });
    expect(m.deviceState(ETH0)).toMatchObject({ recoveryId: first.id, phase: 'check' });
    // Written after it: the restart did not cure the device.
    const after = m.report(failure({ kind: 'tx-timeout', detail: 'transmit queue 0 timed out 300 ms', restartsBefore: ['older', first.id] }));
    expect(after.action).toBe('started');
    await vi.advanceTimersByTimeAsync(300);
    expect(await first.done).toMatchObject({ result: 'failed', merged: 1, error: 'the device failed again during the check (tx-timeout): transmit queue 0 timed out 300 ms' });
  });

  it('fails a recovery whose device fails again during its check, and recovers the new failure within the policy, after the back-off', async () => {
    // The replay (the check phase) takes 500 ms; the stall detector reports again 200 ms into it.
    const replay = async (device: string): Promise<ReplayReport> => {
      await new Promise((r) => setTimeout(r, 500));
      return { device, steps: [{ key: 'coalesce', argv: ['ethtool', '-C', device, 'rx-usecs', '3'], ok: true }] };
    };
    const finished: RecoveryRecord[] = [];
    const m = make({ onFinished: (r) => finished.push(structuredClone(r)) }, { replay: replayer(replay) });
    const first = m.report(failure());
    if (first.action === 'ignored') throw new Error(first.reason);
    await vi.advanceTimersByTimeAsync(200);
    expect(m.deviceState(ETH0)).toMatchObject({ recoveryId: first.id, phase: 'check' });
    const again = m.report(failure({ kind: 'tx-stall', detail: 'transmit queue 0 stopped for 1100 ms', since: Date.now() - 1100 }));
    expect(again.action).toBe('started');
    if (again.action === 'ignored') throw new Error(again.reason);
    expect(again.id).not.toBe(first.id);

    // The first ends there, failed, saying why; recorded, journalled and counted like any failure.
    const reason = 'the device failed again during the check (tx-stall): transmit queue 0 stopped for 1100 ms';
    expect(history.get(first.id)).toMatchObject({ result: 'failed', error: reason, merged: 0, phases: { check: 200, total: 200 } });
    expect(finished.map((r) => [r.id, r.result, r.error])).toEqual([[first.id, 'failed', reason]]);
    const failedLine = byId(MESSAGE_RECOVERY_FAILED).find((l) => l.fields['SHADOWD_RECOVERY_ID'] === first.id);
    expect(failedLine).toMatchObject({ priority: 'warning', fields: { SHADOWD_PHASE: 'check', SHADOWD_FAILURE: 'tx-stall', SHADOWD_DEVICE: 'eth0' } });
    expect(failedLine?.message).toBe(
      `eth0: recovery ${first.id} failed: ${reason}; restarting the driver did not cure it, so the failure is recovered anew within the recovery limit`,
    );
    // The new failure is announced as such and becomes the device's recovery.
    const detected = byId(MESSAGE_FAILURE_DETECTED).find((l) => l.fields['SHADOWD_RECOVERY_ID'] === again.id);
    expect(detected?.message).toBe(`eth0: driver e1000 failed again after recovery ${first.id} restarted it (tx-stall): transmit queue 0 stopped for 1100 ms`);
    expect(m.deviceState(ETH0)).toMatchObject({ recoveryId: again.id, phase: 'backoff', recent: 1 });
    // A report before the new restart describes the same failure: merged into the new recovery.
    expect(m.report(failure())).toMatchObject({ action: 'merged', id: again.id });

    // The replay under way finishes; its steps go into the failed record, which stays failed.
    await vi.advanceTimersByTimeAsync(300);
    const firstRec = await first.done;
    expect(firstRec).toMatchObject({ result: 'failed', error: reason, phases: { check: 200, total: 200 } });
    expect(firstRec.steps.at(-1)).toMatchObject({ source: 'daemon', key: 'coalesce', result: 'ok' });
    expect(history.get(first.id)).toEqual(firstRec);
    expect(helper.verbs()).toEqual(['restart']);

    // The back-off (2 s) counts from the failure report, not from the end of the replay.
    await vi.advanceTimersByTimeAsync(1699);
    expect(helper.verbs()).toEqual(['restart']);
    await vi.advanceTimersByTimeAsync(1);
    expect(helper.verbs()).toEqual(['restart', 'restart']);
    expect(helper.commands.at(-1)).toBe(`restart net:eth0 ${again.id}`);
    await vi.advanceTimersByTimeAsync(500);
    const next = await again.done;
    expect(next).toMatchObject({ trigger: 'tx-stall', detail: 'transmit queue 0 stopped for 1100 ms', result: 'recovered', merged: 1, phases: { detect: 1100, wait: 2000 } });
    expect(history.list().map((r) => [r.id, r.result])).toEqual([
      [again.id, 'recovered'],
      [first.id, 'failed'],
    ]);
    expect(m.deviceState(ETH0)).toMatchObject({ recoveryId: null, recent: 2 });
    await vi.advanceTimersByTimeAsync(600_000);
    expect(helper.verbs()).toEqual(['restart', 'restart']);
  });

  it('still merges a report that comes before the restart completed (back-off, restart)', async () => {
    const m = make({}, { replay: replayer((device) => Promise.resolve({ device, steps: [] })) });
    const a = m.report(failure());
    if (a.action === 'ignored') throw new Error(a.reason);
    await a.done;
    // The second recovery waits its back-off, then its restart hangs until released.
    let release: () => void = () => undefined;
    helper.answer = (c) => (c.startsWith('restart') ? new Promise((r) => (release = () => r(healthy(c)))) : healthy(c));
    const b = m.report(failure());
    if (b.action === 'ignored') throw new Error(b.reason);
    expect(m.report(failure({ kind: 'oops', detail: 'BUG in e1000_clean_tx_irq' }))).toMatchObject({ action: 'merged', id: b.id });
    await vi.advanceTimersByTimeAsync(1000);
    expect(m.deviceState(ETH0).phase).toBe('backoff');
    expect(m.report(failure())).toMatchObject({ action: 'merged', id: b.id });
    await vi.advanceTimersByTimeAsync(1000);
    expect(m.deviceState(ETH0).phase).toBe('active');
    expect(m.report(failure({ kind: 'tx-stall', detail: 'transmit queue 0 stopped for 1100 ms' }))).toMatchObject({ action: 'merged', id: b.id });
    release();
    const rec = await b.done;
    expect(rec).toMatchObject({ result: 'recovered', error: null, merged: 3 });
    expect(lines.filter((l) => l.fields['SHADOWD_RECOVERY_ID'] === b.id && /failure report merged into recovery/.test(l.message)).map((l) => l.fields['SHADOWD_PHASE'])).toEqual([
      'backoff',
      'backoff',
      'active',
    ]);
    expect(byId(MESSAGE_RECOVERY_FAILED)).toHaveLength(0);
    await m.idle();
    expect(helper.verbs()).toEqual(['restart', 'restart']);
    expect(history.list().map((r) => r.result)).toEqual(['recovered', 'recovered']);
  });

  it('gives up on a failure that comes back in every check, after the limit; tries again 15 min later, then 30 min, and never loops', async () => {
    let m: RecoveryManager | null = null;
    const outcomes: string[] = [];
    // A sticky fault: 100 ms into each check the stall detector reports the queue stopped again.
    const replay = async (device: string): Promise<ReplayReport> => {
      await new Promise((r) => setTimeout(r, 100));
      outcomes.push(m?.report(failure({ kind: 'tx-stall', detail: 'transmit queue 0 stopped for 1100 ms' })).action ?? 'none');
      await new Promise((r) => setTimeout(r, 100));
      return { device, steps: [] };
    };
    m = make({}, { replay: replayer(replay) });
    const out = m.report(failure({ kind: 'tx-stall', detail: 'transmit queue 0 stopped for 1100 ms' }));
    if (out.action === 'ignored') throw new Error(out.reason);
    // 3 restarts (back-off 2 s, then 4 s), then the give-up: well within a minute.
    await vi.advanceTimersByTimeAsync(60_000);
    await m.idle();
    expect(outcomes).toEqual(['started', 'started', 'started']);
    expect(helper.verbs()).toEqual(['restart', 'restart', 'restart', 'park']);
    const all = history.list().reverse();
    expect(all.map((r) => r.result)).toEqual(['failed', 'failed', 'failed', 'gave-up']);
    for (const r of all.slice(0, 3)) expect(r.error).toBe('the device failed again during the check (tx-stall): transmit queue 0 stopped for 1100 ms');
    expect(all.slice(1, 3).map((r) => r.phases.wait)).toEqual([2000, 4000]);
    const gaveUp = all[3]!;
    expect(gaveUp.error).toMatch(new RegExp(`^3 recoveries of eth0 in the last 10 min \\(${all[0]!.id}, ${all[1]!.id}, ${all[2]!.id}\\) did not keep its driver running`));
    expect(helper.commands.at(-1)).toBe(`park net:eth0 ${gaveUp.id}`);
    expect(byId(MESSAGE_RECOVERY_FAILED).map((l) => l.fields['SHADOWD_PHASE'])).toEqual(['check', 'check', 'check']);
    expect(byId(MESSAGE_GAVE_UP)).toHaveLength(1);
    expect(m.deviceState(ETH0)).toMatchObject({ recoveryId: null, gaveUp: gaveUp.id });
    expect(gaveUp.error).toMatch(/once the cause is fixed; shadowd tries it again in 15 min$/);
    // Parked: later reports are ignored and nothing more is sent until the cool-down has passed.
    const ignored = m.report(failure());
    expect(ignored).toMatchObject({ action: 'ignored', reason: expect.stringMatching(/, and tries it again on its own$/) as unknown });
    await vi.advanceTimersByTimeAsync(gaveUp.endedAt! + 15 * 60_000 - Date.now() - 1);
    expect(helper.verbs()).toHaveLength(4);
    await vi.advanceTimersByTimeAsync(60_000);
    await m.idle();
    // The retry is a recovery of its own; the fault is still there: three more restarts and a give-up, with a longer cool-down.
    const again = history.list().reverse().slice(4);
    expect(again.map((r) => [r.trigger, r.result])).toEqual([
      ['retry', 'failed'],
      ['tx-stall', 'failed'],
      ['tx-stall', 'failed'],
      ['tx-stall', 'gave-up'],
    ]);
    expect(again[0]!.detail).toBe(`tried again 15 min after shadowd gave up (${gaveUp.id})`);
    expect(again[3]!.error).toMatch(/; shadowd tries it again in 30 min$/);
    expect(helper.verbs()).toHaveLength(8);
    await vi.advanceTimersByTimeAsync(30 * 60_000 - 60_000);
    expect(helper.verbs()).toHaveLength(8);
    await vi.advanceTimersByTimeAsync(60_000);
    await m.idle();
    expect(helper.verbs()).toHaveLength(12);
    expect(history.list()[0]!.error).toMatch(/; shadowd tries it again in 1 h$/);
  });

  it('backs off between recoveries (2 s, doubling), gives up after 3 in the window, and with retries off never loops', async () => {
    const m = make({ policy: { retryMs: 0, retryMaxMs: 0 } });
    const done: RecoveryRecord[] = [];
    const run = async (): Promise<void> => {
      const out = m.report(failure());
      if (out.action === 'ignored') throw new Error(out.reason);
      done.push(await out.done);
    };
    await run();
    expect(helper.verbs()).toEqual(['restart']);

    // The second waits 2 s after the first ended.
    let next = run();
    await vi.advanceTimersByTimeAsync(1999);
    expect(helper.verbs()).toEqual(['restart']);
    expect(m.deviceState(ETH0).phase).toBe('backoff');
    await vi.advanceTimersByTimeAsync(1);
    await next;
    expect(helper.verbs()).toEqual(['restart', 'restart']);
    expect(done[1]?.phases.wait).toBe(2000);

    // The third, 4 s.
    next = run();
    await vi.advanceTimersByTimeAsync(3999);
    expect(helper.verbs()).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    await next;
    expect(done[2]?.phases.wait).toBe(4000);

    // The fourth within 10 minutes gives up and parks the device.
    await run();
    const gaveUp = done[3]!;
    expect(helper.commands.at(-1)).toBe(`park net:eth0 ${gaveUp.id}`);
    expect(gaveUp.result).toBe('gave-up');
    expect(gaveUp.error).toMatch(new RegExp(`^3 recoveries of eth0 in the last 10 min \\(${done[0]!.id}, ${done[1]!.id}, ${done[2]!.id}\\) did not keep its driver running`));
    // Parked as the class says it leaves a parked device.
    expect(gaveUp.error).toMatch(/; the device is parked \(no carrier \(operationally down, its addresses and routes kept\); nothing calls into its driver\); run "shadowctl recover net:eth0" once the cause is fixed$/);
    expect(byId(MESSAGE_GAVE_UP)).toHaveLength(1);
    expect(byId(MESSAGE_GAVE_UP)[0]).toMatchObject({ priority: 'err', fields: { SHADOWD_PHASE: 'gave-up', SHADOWD_RECOVERY_ID: gaveUp.id } });
    expect(m.deviceState(ETH0)).toMatchObject({ gaveUp: gaveUp.id, phase: null });

    // Later reports are ignored, however many, and nothing else is sent.
    for (let i = 0; i < 20; i++) expect(m.report(failure()).action).toBe('ignored');
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(helper.verbs()).toEqual(['restart', 'restart', 'restart', 'park']);
    expect(lines.filter((l) => /failure report ignored/.test(l.message)).map((l) => l.priority)).toEqual(['notice', ...Array<string>(19).fill('debug')]);
    expect(history.list().map((r) => r.result)).toEqual(['gave-up', 'recovered', 'recovered', 'recovered']);

    // A manual recover lifts the give-up and runs at once.
    const manual = await m.recover(ETH0, 'uid 0 (pid 42)');
    expect(manual).toMatchObject({ trigger: 'manual', result: 'recovered', detail: `requested by uid 0 (pid 42) after shadowd had given up (${gaveUp.id})` });
    expect(manual.phases.wait).toBeUndefined();
    expect(m.deviceState(ETH0)).toMatchObject({ gaveUp: null, recent: 1 });
    expect(m.report(failure()).action).toBe('started');
  });

  it('counts only the recoveries within the window', async () => {
    const m = make();
    for (let i = 0; i < 3; i++) {
      const out = m.report(failure());
      if (out.action === 'ignored') throw new Error(out.reason);
      await vi.advanceTimersByTimeAsync(10_000);
      await out.done;
    }
    await vi.advanceTimersByTimeAsync(10 * 60_000);
    const out = m.report(failure());
    if (out.action === 'ignored') throw new Error(out.reason);
    expect((await out.done).result).toBe('recovered');
    expect(out.id).not.toBe('');
    expect(helper.verbs()).toEqual(['restart', 'restart', 'restart', 'restart']);
  });

  it('retries a restart the driver did not survive (EIO), then gives up on a fault that stays', async () => {
    helper.answer = (c) =>
      c.startsWith('restart')
        ? { ok: false, errno: 'EIO', message: `net:eth0 id=${c.split(' ')[2]} parked after 700 ms: the driver's open failed: error -5 steps=name:skip,mac:ok,mtu:fail` }
        : healthy(c);
    const m = make({ policy: { retryMs: 0, retryMaxMs: 0 } });
    const out = m.report(failure({ kind: 'oops', detail: 'BUG in e1000_clean' }));
    if (out.action === 'ignored') throw new Error(out.reason);
    const first = await out.done;
    expect(first).toMatchObject({ result: 'failed', trigger: 'oops' });
    expect(first.error).toBe(
      `shadow_helper could not restart eth0 with a module reload: EIO net:eth0 id=${first.id} parked after 700 ms: the driver's open failed: error -5 steps=name:skip,mac:ok,mtu:fail`,
    );
    expect(first.steps).toEqual([
      { source: 'module', key: 'name', result: 'skip' },
      { source: 'module', key: 'mac', result: 'ok' },
      { source: 'module', key: 'mtu', result: 'fail' },
    ]);
    expect(byId(MESSAGE_REPLAY_STEP_FAILED)[0]?.fields).toMatchObject({ SHADOWD_STEP: 'mtu', SHADOWD_RECOVERY_ID: first.id });
    expect(byId(MESSAGE_RECOVERY_FAILED)[0]).toMatchObject({ priority: 'warning', fields: { SHADOWD_PHASE: 'active' } });
    // The retry is a new recovery, after the back-off.
    await vi.advanceTimersByTimeAsync(2000 + 4000);
    await m.idle();
    expect(helper.verbs()).toEqual(['restart', 'restart', 'restart', 'park']);
    // An oops: each attempt, the retries too, reloads the module.
    expect(helper.commands.slice(0, 3).every((c) => c.endsWith(' reload'))).toBe(true);
    const all = history.list();
    expect(all.map((r) => r.result)).toEqual(['gave-up', 'failed', 'failed', 'failed']);
    expect(all[2]?.detail).toMatch(new RegExp(`^retry after ${first.id} failed: `));
    expect(all.every((r) => r.trigger === 'oops')).toBe(true);
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(helper.verbs()).toHaveLength(4);
  });

  it('does not retry what a retry cannot fix', async () => {
    helper.answer = (c) => (c.startsWith('restart') ? { ok: false, errno: 'ENODEV', message: 'no interface eth0' } : healthy(c));
    const m = make();
    const out = m.report(failure());
    if (out.action === 'ignored') throw new Error(out.reason);
    expect((await out.done).result).toBe('failed');
    expect(byId(MESSAGE_RECOVERY_FAILED)[0]?.priority).toBe('err');
    await vi.advanceTimersByTimeAsync(600_000);
    expect(helper.verbs()).toEqual(['restart']);
  });

  it('says the module is not loaded: a failed recovery for a detector, an EHELPER refusal for a person', async () => {
    helperMissing = true;
    const m = make();
    const out = m.report(failure());
    if (out.action === 'ignored') throw new Error(out.reason);
    expect(await out.done).toMatchObject({ result: 'failed', error: 'the shadow_helper module is not loaded (modprobe shadow_helper)' });
    await expect(m.recover(ETH0)).rejects.toThrow(new RequestError('EHELPER', 'the shadow_helper module is not loaded (modprobe shadow_helper)'));
    await expect(m.inject(ETH0, 'tx-hang')).rejects.toMatchObject({ code: 'EHELPER', message: 'the shadow_helper module is not loaded (modprobe shadow_helper)' });
  });

  it('fails a recovery whose restart reply it cannot read', async () => {
    helper.answer = (c) => (c.startsWith('restart') ? { ok: true, payload: 'restarted net:eth0 id=zzz' } : healthy(c));
    const m = make();
    const out = m.report(failure());
    if (out.action === 'ignored') throw new Error(out.reason);
    const rec = await out.done;
    expect(rec.result).toBe('failed');
    // The network class's declared field (ifindex) is the first one it misses.
    expect(rec.error).toMatch(/^unreadable restart reply from shadow_helper "restarted net:eth0 id=zzz": missing ifindex/);
  });

  it('recovers with a note when a replay step fails, and logs each failed step', async () => {
    helper.answer = (c) => {
      const r = healthy(c);
      return r.ok && c.startsWith('restart') ? { ok: true, payload: r.payload.replace('mtu:ok', 'mtu:fail') } : r;
    };
    let m: RecoveryManager | null = null;
    const replay = (device: string): Promise<ReplayReport> => {
      // Run in the check of a recovery of that device.
      expect(m?.deviceState(net(device))).toMatchObject({ recoveryId: expect.stringMatching(RECOVERY_ID) as unknown, phase: 'check' });
      return Promise.resolve({
        device,
        steps: [
          { key: 'coalesce', argv: ['ethtool', '-C', device, 'rx-usecs', '3'], ok: false, error: 'Operation not supported' },
          { key: 'wol', argv: ['ethtool', '-s', device, 'wol', 'g'], ok: true },
        ],
      });
    };
    m = make({}, { replay: replayer(replay) });
    const out = m.report(failure());
    if (out.action === 'ignored') throw new Error(out.reason);
    const rec = await out.done;
    expect(rec.result).toBe('recovered');
    expect(rec.error).toBe('the driver refused replay step mtu; 1 of 2 replay steps failed: coalesce');
    expect(byId(MESSAGE_REPLAY_STEP_FAILED).map((l) => [l.fields['SHADOWD_STEP'], l.fields['SHADOWD_PHASE']])).toEqual([
      ['mtu', 'active'],
      ['coalesce', 'check'],
    ]);
    expect(rec.steps.find((s) => s.key === 'coalesce')).toEqual({
      source: 'daemon',
      key: 'coalesce',
      result: 'fail',
      argv: ['ethtool', '-C', 'eth0', 'rx-usecs', '3'],
      error: 'Operation not supported',
    });
  });

  it('fails a recovery whose replay says the device is not back (a disk that did not return), and retries it within the policy', async () => {
    let calls = 0;
    const replay = (device: string): Promise<ReplayReport> => {
      calls++;
      return Promise.resolve({
        device,
        steps: [{ key: 'find', argv: [], ok: false, error: 'sda did not come back within 30000 ms' }],
        notBack: 'sda did not come back within 30000 ms: map shadow-x keeps holding its I/O',
      });
    };
    // (No retry after the give-up: runAllTimers would run it too.)
    const m = make({ policy: { maxRecoveries: 2, backoffMs: 0, retryMs: 0, retryMaxMs: 0 } }, { replay: replayer(replay) });
    const out = m.report(failure());
    if (out.action === 'ignored') throw new Error(out.reason);
    const rec = await out.done;
    expect(rec.result).toBe('failed');
    expect(rec.error).toBe('the device is not back in service after the restart: sda did not come back within 30000 ms: map shadow-x keeps holding its I/O');
    expect(rec.steps.find((s) => s.key === 'find')?.result).toBe('fail');
    await vi.runAllTimersAsync();
    await m.idle();
    // The retry ran its own replay, then the policy gave up.
    expect(calls).toBe(2);
    expect(m.deviceState(net('eth0')).gaveUp).not.toBeNull();
  });

  it('refuses a restart the class says would make things worse, before sending anything, and does not retry it', async () => {
    const m = make({}, { refuseRestart: (name) => Promise.resolve(name === 'eth0' ? 'sdb is in use (mounted at /srv) and not under a map' : null) });
    const out = m.report(failure());
    if (out.action === 'ignored') throw new Error(out.reason);
    const rec = await out.done;
    expect(rec.result).toBe('failed');
    expect(rec.error).toBe('refused before touching the device: sdb is in use (mounted at /srv) and not under a map');
    expect(rec.steps).toEqual([{ source: 'daemon', key: 'refuse', result: 'fail', error: 'sdb is in use (mounted at /srv) and not under a map' }]);
    expect(helper.commands.filter((c) => c.startsWith('restart'))).toEqual([]);
    await vi.runAllTimersAsync();
    expect(helper.commands.filter((c) => c.startsWith('restart'))).toEqual([]);
  });

  it("takes the helper's refusal (EOPNOTSUPP) as final: the device is left as it was, not retried, not parked", async () => {
    const why = 'a restart would lose what the driver holds: a driver-mode XDP program is attached (the fresh driver would not run it)';
    helper.answer = (c) => (c.startsWith('restart') ? { ok: false, errno: 'EOPNOTSUPP', message: why } : healthy(c));
    const m = make({ policy: { maxRecoveries: 1, backoffMs: 0 } });
    const out = m.report(failure());
    if (out.action === 'ignored') throw new Error(out.reason);
    const rec = await out.done;
    expect(rec.result).toBe('failed');
    expect(rec.error).toBe(`refused before touching the device: shadow_helper: ${why}`);
    expect(rec.steps).toContainEqual({ source: 'module', key: 'refuse', result: 'fail', error: why });
    await vi.runAllTimersAsync();
    await m.idle();
    expect(helper.commands.filter((c) => c.startsWith('restart'))).toHaveLength(1);
    expect(helper.commands.filter((c) => c.startsWith('park'))).toEqual([]);
  });

  it('ignores malformed reports and devices it does not watch', () => {
    const m = make();
    expect(m.report(failure({ device: 'a/b' }))).toMatchObject({ action: 'ignored', reason: /device "a\/b" is not an interface name/ });
    expect(m.report(failure({ kind: 'meltdown' }))).toMatchObject({ action: 'ignored', reason: /kind "meltdown" is not one of/ });
    expect(m.report(failure({ device: 'wlan0' }))).toEqual({ action: 'ignored', reason: 'shadowd watches no network device named wlan0' });
    // A class the manager was not given, and a report without a class.
    expect(m.report(failure({ cls: 'sound', device: 'card0' }))).toMatchObject({ action: 'ignored', reason: 'malformed failure report: class "sound" is not one of net' });
    expect(m.report(failure({ cls: undefined as never }))).toMatchObject({ action: 'ignored', reason: /class undefined is not one of net/ });
    const classes = new Map([['net', { decl: NET_DECLARATION, lookup: () => null }]]);
    expect(checkFailureReport(failure({ detectedAt: NaN }), classes)).toBe('detectedAt is not a time');
    expect(checkFailureReport(failure(), classes)).toBeNull();
    expect(helper.commands).toEqual([]);
  });

  it('manual recover: refuses an unknown device, joins one under way, resets the back-off', async () => {
    const m = make();
    await expect(m.recover(net('eth9'))).rejects.toMatchObject({ code: 'ENODEV', message: 'shadowd watches no network device named eth9' });
    await expect(m.recover(net('bad/name'))).rejects.toMatchObject({ code: 'EBADREQ' });
    await expect(m.recover({ cls: 'sound', name: 'card0' })).rejects.toMatchObject({ code: 'EBADREQ', message: 'unknown device class "sound"' });
    const first = m.report(failure());
    if (first.action === 'ignored') throw new Error(first.reason);
    await first.done;
    // A report waits in its back-off; a manual recover runs it at once.
    const waiting = m.report(failure());
    if (waiting.action === 'ignored') throw new Error(waiting.reason);
    await vi.advanceTimersByTimeAsync(500);
    expect(m.deviceState(ETH0).phase).toBe('backoff');
    const joined = await m.recover(ETH0);
    expect(joined.id).toBe(waiting.id);
    expect(joined.result).toBe('recovered');
    expect(joined.phases.wait).toBe(500);
    expect(helper.verbs()).toEqual(['restart', 'restart']);
  });

  it('replay: recorded as a recovery of trigger replay; refused while recovering or unavailable', async () => {
    await expect(make().replay(ETH0)).rejects.toMatchObject({ code: 'EUNAVAIL' });
    const calls: string[] = [];
    const replay = (device: string, mark?: Promise<number>): Promise<ReplayReport> => {
      // The whole shadow: no restart's mark.
      calls.push(`${device} ${mark === undefined ? 'whole' : 'since mark'}`);
      return Promise.resolve({ device, steps: [{ key: 'mtu', argv: ['ip', 'link', 'set', device, 'mtu', '1400'], ok: true }] });
    };
    const m = make({}, { replay: replayer(replay) });
    const rec = await m.replay(ETH0, 'uid 0 (pid 7)');
    expect(rec).toMatchObject({ trigger: 'replay', result: 'replayed', detail: 'requested by uid 0 (pid 7)', error: null });
    expect(rec.steps).toEqual([{ source: 'daemon', key: 'mtu', result: 'ok', argv: ['ip', 'link', 'set', 'eth0', 'mtu', '1400'] }]);
    expect(calls).toEqual(['eth0 whole']);
    expect(history.get(rec.id)).toEqual(rec);
    await expect(m.replay(net('eth9'))).rejects.toMatchObject({ code: 'ENODEV' });

    helper.answer = (c) => (c.startsWith('restart') ? new Promise(() => undefined) : healthy(c));
    m.report(failure());
    await vi.advanceTimersByTimeAsync(0);
    await expect(m.replay(ETH0)).rejects.toMatchObject({ code: 'EBUSY' });
    // A replay does not count against the recovery limit.
    expect(m.deviceState(ETH1).recent).toBe(0);
  });

  it('replay: a failed step fails the replay, and a throwing replayer is reported', async () => {
    let fail = true;
    const replay = (device: string): Promise<ReplayReport> =>
      fail ? Promise.resolve({ device, steps: [{ key: 'wol', argv: ['ethtool', '-s', device, 'wol', 'g'], ok: false, error: 'not supported' }] }) : Promise.reject(new Error('ip not found'));
    const m = make({}, { replay: replayer(replay) });
    expect(await m.replay(ETH0)).toMatchObject({ result: 'failed', error: '1 of 1 replay steps failed: wol' });
    fail = false;
    expect(await m.replay(ETH0)).toMatchObject({ result: 'failed', error: 'replay failed: ip not found' });
  });

  it('inject: sends the fault, reports the module refusing it', async () => {
    const m = make();
    expect(await m.inject(ETH0, 'tx-hang', true)).toEqual({ device: 'net:eth0', fault: 'tx-hang', sticky: true, reply: 'injected net:eth0 tx-hang' });
    expect(await m.inject(ETH0, 'clear')).toEqual({ device: 'net:eth0', fault: 'clear', sticky: false, reply: 'cleared net:eth0' });
    expect(helper.commands).toEqual(['inject net:eth0 tx-hang sticky', 'inject net:eth0 clear']);
    helper.answer = () => ({ ok: false, errno: 'EPERM', message: 'fault injection is disabled' });
    await expect(m.inject(ETH0, 'fail-stop')).rejects.toThrow(
      new RequestError('EHELPER', 'shadow_helper refused "inject net:eth0 fail-stop": EPERM fault injection is disabled (fault injection is off: load shadow_helper with allow_faults=1)'),
    );
    await expect(m.inject(ETH0, 'explode')).rejects.toMatchObject({ code: 'EBADREQ' });
    await expect(m.inject(ETH0, 'clear', true)).rejects.toMatchObject({ code: 'EBADREQ' });
    // Faults are the class's own, and only registered classes are asked for.
    await expect(m.inject({ cls: 'block', name: 'sda' }, 'tx-hang')).rejects.toMatchObject({ code: 'EBADREQ', message: 'unknown device class "block"' });
    await expect(m.inject(net('a/b'), 'tx-hang')).rejects.toMatchObject({ code: 'EBADREQ' });
    helper.answer = () => ({ ok: true, payload: 'injected net:eth0 fail-mtu' });
    await expect(m.inject(ETH0, 'fail-mac')).rejects.toMatchObject({ code: 'EHELPER', message: /unexpected reply from shadow_helper/ });
  });

  it('takes up where a killed daemon left off: interrupted rows closed, recent recoveries counted, a give-up kept', async () => {
    const now = Date.now();
    const row = (id: string, over: Partial<RecoveryRecord>): RecoveryRecord => ({
      id,
      cls: 'net',
      device: 'eth0',
      driver: 'e1000',
      trigger: 'tx-timeout',
      detail: '',
      startedAt: now - 60_000,
      endedAt: now - 59_000,
      result: 'recovered',
      phases: {},
      steps: [],
      error: null,
      merged: 0,
      method: null,
      module: null,
      ...over,
    });
    history.insert(row('old1', { device: 'eth1', startedAt: now - 3_600_000, endedAt: now - 3_599_000 }));
    history.insert(row('a1', { device: 'eth1', startedAt: now - 5000, endedAt: null, result: 'in-progress' }));
    history.insert(row('g1', { result: 'gave-up' }));
    const m = make();
    m.start();
    expect(history.get('a1')).toMatchObject({ result: 'interrupted', endedAt: now });
    expect(lines.some((l) => l.priority === 'warning' && /recovery a1 \(tx-timeout\) was interrupted/.test(l.message))).toBe(true);
    expect(m.deviceState(ETH0).gaveUp).toBe('g1');
    expect(m.report(failure()).action).toBe('ignored');
    // eth1: the interrupted one counts, so the next waits its back-off.
    expect(m.deviceState(ETH1).recent).toBe(1);
    const out = m.report(failure({ device: 'eth1' }));
    if (out.action === 'ignored') throw new Error(out.reason);
    await vi.advanceTimersByTimeAsync(1999);
    expect(helper.commands).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect((await out.done).result).toBe('recovered');
    // eth0's give-up ended 59 s before the start: its retry is due 15 min after it, not after the start.
    await vi.advanceTimersByTimeAsync(15 * 60_000 - 59_000 - 2000 - 1000);
    expect(helper.commands.filter((c) => c.includes('net:eth0'))).toEqual([]);
    await vi.advanceTimersByTimeAsync(1000);
    await m.idle();
    expect(history.list()[0]).toMatchObject({ device: 'eth0', trigger: 'retry', result: 'recovered', detail: 'tried again 15 min after shadowd gave up (g1)' });
    expect(m.deviceState(ETH0).gaveUp).toBeNull();
  });

  it('counts no recovery from before a manual recover when it starts again', () => {
    const now = Date.now();
    const row = (id: string, startedAt: number, trigger: RecoveryRecord['trigger']): RecoveryRecord => ({
      id,
      cls: 'net',
      device: 'eth0',
      driver: 'e1000',
      trigger,
      detail: '',
      startedAt,
      endedAt: startedAt + 1000,
      result: 'recovered',
      phases: {},
      steps: [],
      error: null,
      merged: 0,
      method: null,
      module: null,
    });
    for (const [i, at] of [-50_000, -40_000, -30_000].entries()) history.insert(row(`s${i}`, now + at, 'tx-stall'));
    history.insert(row('m1', now - 20_000, 'manual'));
    history.insert(row('s3', now - 10_000, 'tx-stall'));
    const m = make();
    m.start();
    // The manual recovery and the one after it: recover() had reset the count before them.
    expect(m.deviceState(ETH0).recent).toBe(2);
  });

  it('takes its policy from the constructor and checks it', async () => {
    expect(() => make({ policy: { maxRecoveries: 0 } })).toThrow(/maxRecoveries must be an integer of at least 1, not 0/);
    expect(() => make({ policy: { backoffMs: 5000, backoffMaxMs: 1000 } })).toThrow(/backoffMaxMs \(1000\) is less than backoffMs \(5000\)/);
    expect(() => make({ policy: { windowMs: 1.5 } })).toThrow(RangeError);
    const m = make({ policy: { maxRecoveries: 1, backoffMs: 100 } });
    expect(() => make({ policy: { retryMs: 60_000, retryMaxMs: 1000 } })).toThrow(/retryMaxMs \(1000\) is less than retryMs \(60000\)/);
    expect(m.policy).toEqual({ maxRecoveries: 1, windowMs: 600_000, backoffMs: 100, backoffMaxMs: 60_000, retryMs: 900_000, retryMaxMs: 21_600_000 });
    const a = m.report(failure());
    if (a.action === 'ignored') throw new Error(a.reason);
    await a.done;
    const b = m.report(failure());
    if (b.action === 'ignored') throw new Error(b.reason);
    expect((await b.done).result).toBe('gave-up');
    expect(b.id).not.toBe(a.id);
  });

  it("takes a per-device policy (a configuration file's sections), falling back on the default when it is bad", async () => {
    const asked: string[] = [];
    const m = make({
      policy: (ref, driver) => {
        asked.push(`${ref.cls}:${ref.name}`);
        return ref.name === 'eth1' ? { maxRecoveries: 1 } : driver === 'e1000' ? { backoffMs: -1 } : {};
      },
    });
    expect(m.policyFor(ETH1, 'e1000')).toMatchObject({ maxRecoveries: 1, backoffMs: 2000 });
    expect(m.policyFor(ETH0, 'e1000')).toEqual({ maxRecoveries: 3, windowMs: 600_000, backoffMs: 2000, backoffMaxMs: 60_000, retryMs: 900_000, retryMaxMs: 21_600_000 });
    expect(asked).toEqual(['net:eth1', 'net:eth0']);
    expect(lines.some((l) => l.priority === 'err' && /eth0: unusable recovery policy, using the default: .*backoffMs/.test(l.message))).toBe(true);
    for (const expected of ['recovered', 'gave-up']) {
      const out = m.report(failure({ device: 'eth1' }));
      if (out.action === 'ignored') throw new Error(out.reason);
      expect((await out.done).result).toBe(expected);
    }
  });

  it('inject: refused when the configuration turns fault injection off; clearing still works', async () => {
    const m = make({ faultInjection: () => false });
    await expect(m.inject(ETH0, 'tx-hang')).rejects.toMatchObject({ code: 'EUNAVAIL', message: /turned off in the shadowd configuration/ });
    expect(await m.inject(ETH0, 'clear')).toMatchObject({ reply: 'cleared net:eth0' });
    expect(helper.commands).toEqual(['inject net:eth0 clear']);
  });

  it('caps the back-off', async () => {
    const m = make({ policy: { maxRecoveries: 10, backoffMs: 2000, backoffMaxMs: 5000 } });
    const waits: (number | undefined)[] = [];
    for (let i = 0; i < 4; i++) {
      const out = m.report(failure());
      if (out.action === 'ignored') throw new Error(out.reason);
      // Only as much time passes as the back-off takes: each report comes right after the last recovery.
      let ended = false;
      void out.done.then(() => (ended = true));
      await vi.advanceTimersByTimeAsync(0);
      while (!ended) await vi.advanceTimersByTimeAsync(100);
      waits.push((await out.done).phases.wait);
    }
    expect(waits).toEqual([undefined, 2000, 4000, 5000]);
  });

  it('stop: drops a recovery waiting in its back-off and takes no more reports', async () => {
    const m = make();
    const a = m.report(failure());
    if (a.action === 'ignored') throw new Error(a.reason);
    await a.done;
    const b = m.report(failure());
    if (b.action === 'ignored') throw new Error(b.reason);
    await m.stop();
    expect(await b.done).toMatchObject({ result: 'interrupted', error: 'shadowd stopped before the restart' });
    expect(m.report(failure()).action).toBe('ignored');
    await expect(m.recover(ETH0)).rejects.toMatchObject({ code: 'EBUSY' });
    expect(helper.verbs()).toEqual(['restart']);
  });

  it('onFinished: called once per ended recovery or replay with its final record; a throwing one is logged, not fatal', async () => {
    const finished: RecoveryRecord[] = [];
    const m = make(
      {
        policy: { maxRecoveries: 1 },
        onFinished: (r) => {
          finished.push(structuredClone(r));
          if (r.result === 'replayed') throw new Error('metrics broke');
        },
      },
      { replay: replayer((device) => Promise.resolve({ device, steps: [] })) },
    );
    const a = m.report(failure());
    if (a.action === 'ignored') throw new Error(a.reason);
    const first = await a.done;
    const b = m.report(failure());
    if (b.action === 'ignored') throw new Error(b.reason);
    const second = await b.done;
    const replayed = await m.replay(ETH1);
    expect(finished.map((r) => [r.cls, r.device, r.driver, r.result, r.trigger])).toEqual([
      ['net', 'eth0', 'e1000', 'recovered', 'tx-timeout'],
      ['net', 'eth0', 'e1000', 'gave-up', 'tx-timeout'],
      ['net', 'eth1', 'e1000', 'replayed', 'replay'],
    ]);
    // The records as the history has them: ended, timed.
    expect(finished[0]).toEqual(first);
    expect(finished[1]).toEqual(second);
    expect(finished[0]!.endedAt! - finished[0]!.startedAt).toBe(finished[0]!.phases.total);
    expect(replayed.result).toBe('replayed');
    expect(lines.some((l) => l.priority === 'err' && l.message === `onFinished for recovery ${replayed.id} failed: metrics broke`)).toBe(true);
  });

  describe("after the restart: what the class finds wrong with the device (net: its interface index changed)", () => {
    /** healthy(), with the restarted device at another interface index. */
    const atIndex = (ifindex: number) => (c: string): HelperReply => {
      const r = healthy(c);
      return r.ok && c.startsWith('restart') ? { ok: true, payload: r.payload.replace('ifindex=2', `ifindex=${ifindex}`) } : r;
    };

    it("is handed the helper's reply, with the class's fields, and its notes go into a recovered record", async () => {
      const got: { name: string; reply: RestartReply }[] = [];
      const m = make(
        {},
        {
          afterRestart: (name, reply) => {
            got.push({ name, reply });
            return ifindexCheck(name, reply);
          },
        },
      );
      const same = await m.recover(ETH0);
      expect(same).toMatchObject({ result: 'recovered', error: null });
      expect(got).toEqual([
        {
          name: 'eth0',
          reply: expect.objectContaining({ device: 'net:eth0', id: same.id, fields: { ifindex: 2 }, how: 'reprobe', module: null }) as unknown,
        },
      ]);

      helper.answer = atIndex(7);
      const moved = await m.recover(ETH0);
      const note = 'the interface index changed from 2 to 7: handles bound to the old one are lost';
      expect(moved).toMatchObject({ result: 'recovered', error: note });
      expect(got.at(-1)?.reply.fields).toEqual({ ifindex: 7 });
      expect(history.get(moved.id)?.error).toBe(note);
      expect(byId(MESSAGE_RECOVERED).at(-1)?.message).toContain(`with problems: ${note}`);
    });

    it('comes after the notes of the restart and the replay, and is not asked after a failed restart', async () => {
      helper.answer = (c) => {
        const r = atIndex(9)(c);
        return r.ok && c.startsWith('restart') ? { ok: true, payload: r.payload.replace('mtu:ok', 'mtu:fail') } : r;
      };
      let asked = 0;
      const m = make(
        {},
        {
          afterRestart: (name, reply) => {
            asked++;
            return ifindexCheck(name, reply);
          },
          replay: replayer((device) => Promise.resolve({ device, steps: [{ key: 'wol', argv: ['ethtool', '-s', device, 'wol', 'g'], ok: false, error: 'not supported' }] })),
        },
      );
      const rec = await m.recover(ETH0);
      expect(rec.error).toBe(
        'the driver refused replay step mtu; 1 of 1 replay steps failed: wol; the interface index changed from 2 to 9: handles bound to the old one are lost',
      );
      expect(asked).toBe(1);
      helper.answer = (c) => (c.startsWith('restart') ? { ok: false, errno: 'EIO', message: 'probe failed' } : healthy(c));
      expect((await m.recover(ETH0)).result).toBe('failed');
      expect(asked).toBe(1);
    });

    it('a check that throws is a note, not a failed recovery', async () => {
      const m = make(
        {},
        {
          afterRestart: () => {
            throw new Error('no such device in the shadow');
          },
        },
      );
      expect(await m.recover(ETH0)).toMatchObject({ result: 'recovered', error: 'the after-restart check failed: no such device in the shadow' });
    });

    it("the network class's own check (net-class.ts), on a shadow that holds eth0 at index 2", async () => {
      const store = new ShadowStore(':memory:');
      try {
        const runtime = netClass.open({
          logger,
          store,
          helper: () => Promise.resolve(helper),
          pollHelper: () => Promise.resolve(helper),
          syncTaps: () => Promise.resolve(),
          report: () => undefined,
          held: () => false,
          setting: () => 1000,
        });
        store.upsertDevice({ id: 'bus:0000:00:03.0', cls: 'net', name: 'eth0', driver: 'e1000', bus: '0000:00:03.0', attrs: { ifindex: 2 } }, Date.now());
        const m = make({}, { lookup: (name) => runtime.lookup(name), afterRestart: (name, reply) => runtime.afterRestart(name, reply) });
        expect(await m.recover(ETH0)).toMatchObject({ result: 'recovered', driver: 'e1000', error: null });
        helper.answer = atIndex(5);
        expect(await m.recover(ETH0)).toMatchObject({ result: 'recovered', error: 'the interface index changed from 2 to 5: handles bound to the old one are lost' });
        // A device the shadow does not hold is none the manager recovers.
        await expect(m.recover(ETH1)).rejects.toMatchObject({ code: 'ENODEV', message: 'shadowd watches no network device named eth1' });
      } finally {
        store.close();
      }
    });
  });

  describe('restart method: a re-probe, or a module reload when the driver\'s code is suspect', () => {
    /** The helper refusing `restart ... reload` untouched with this reply, and answering the rest as healthy() does. */
    const refusingReload = (errno: string, message: string) => (c: string): HelperReply => (c.endsWith(' reload') ? { ok: false, errno, message } : healthy(c));

    it.each(['oops', 'bug'] as const)('%s blamed on the driver: the restart reloads its module; recorded, timed and journalled', async (kind) => {
      const m = make();
      const out = m.report(failure({ kind, detail: 'BUG: unable to handle page fault in e1000_clean [e1000]', driver: 'e1000' }));
      if (out.action === 'ignored') throw new Error(out.reason);
      const rec = await out.done;
      expect(helper.commands).toEqual([`restart net:eth0 ${out.id} reload`]);
      expect(rec).toMatchObject({
        result: 'recovered',
        error: null,
        method: 'reload',
        module: 'e1000',
        phases: { module: { stopMs: 10, releaseMs: 5, unloadMs: 120, loadMs: 300, probeMs: 600, replayMs: 30, openMs: 205, totalMs: 1270 } },
      });
      expect(rec.steps.map((st) => `${st.key}:${st.result}`)).toEqual(['reload:ok', 'name:skip', 'mac:ok', 'mtu:ok', 'features:ok']);
      expect(history.get(out.id)).toEqual(rec);
      expect(byId(MESSAGE_RECOVERY_STARTED)[0]).toMatchObject({
        message: `eth0: recovery ${out.id} restarting driver e1000 and reloading its module; the shadow answers for it meanwhile`,
        fields: { SHADOWD_RESTART_METHOD: 'reload' },
      });
      const restarted = lines.find((l) => l.message.startsWith('eth0: driver restarted'));
      expect(restarted).toMatchObject({
        priority: 'info',
        message: 'eth0: driver restarted (module e1000 reloaded) in 0 ms (stop 10, release 5, unload 120, load 300, probe 600, replay 30, open 205 ms)',
        fields: { SHADOWD_RESTART_METHOD: 'reload', SHADOWD_MODULE: 'e1000', SHADOWD_PHASE: 'active' },
      });
    });

    it.each(['tx-stall', 'tx-timeout', 'warn'] as const)('%s: a plain restart (re-probe), recorded as such', async (kind) => {
      const m = make();
      const out = m.report(failure({ kind }));
      if (out.action === 'ignored') throw new Error(out.reason);
      const rec = await out.done;
      expect(helper.commands).toEqual([`restart net:eth0 ${out.id}`]);
      expect(rec).toMatchObject({ result: 'recovered', method: 'reprobe', module: null });
      expect(rec.phases.module).toEqual({ stopMs: 10, releaseMs: 5, probeMs: 600, replayMs: 30, openMs: 205, totalMs: 850 });
      expect(byId(MESSAGE_RECOVERY_STARTED)[0]?.fields).toMatchObject({ SHADOWD_RESTART_METHOD: 'reprobe' });
      expect(lines.find((l) => l.message.startsWith('eth0: driver restarted'))?.message).toBe(
        'eth0: driver restarted in 0 ms (stop 10, release 5, probe 600, replay 30, open 205 ms)',
      );
    });

    it.each([
      ['EOPNOTSUPP', 'driver e1000 is built into the kernel: it cannot be reloaded'],
      ['EOPNOTSUPP', 'a reload needs a PCI device (eth0 is on platform)'],
      ['EBUSY', 'driver e1000 drives 2 devices: reloading it would restart the others without their shadow'],
      ['ENODEV', '0000:00:04.0 has no driver'],
    ])('a reload refused untouched (%s %s): a notice, then a plain restart in the same recovery, noted', async (errno, message) => {
      helper.answer = refusingReload(errno, message);
      const m = make();
      const out = m.report(failure({ kind: 'oops', detail: 'Oops in e1000_xmit_frame [e1000]' }));
      if (out.action === 'ignored') throw new Error(out.reason);
      const rec = await out.done;
      expect(helper.commands).toEqual([`restart net:eth0 ${out.id} reload`, `restart net:eth0 ${out.id}`]);
      const note = `the module reload was refused (${errno} ${message}): the driver was restarted without it`;
      expect(rec).toMatchObject({ result: 'recovered', method: 'reprobe', module: null, error: note });
      expect(rec.steps.map((st) => st.key)).toEqual(['name', 'mac', 'mtu', 'features']);
      expect(lines.filter((l) => l.message.includes('cannot reload'))).toEqual([
        {
          priority: 'notice',
          message: `eth0: shadow_helper cannot reload driver e1000's module (${errno} ${message}); restarting the driver without a reload`,
          fields: expect.objectContaining({ SHADOWD_RECOVERY_ID: out.id, SHADOWD_PHASE: 'active', SHADOWD_RESTART_METHOD: 'reprobe' }) as unknown,
        },
      ]);
      expect(byId(MESSAGE_RECOVERED)[0]?.message).toContain(`with problems: ${note}`);
      expect(byId(MESSAGE_RECOVERY_FAILED)).toEqual([]);
    });

    it('does not fall back when the refusal is not about the reload: another restart running is retried as a reload', async () => {
      let busy = true;
      helper.answer = (c) => (busy && c.startsWith('restart') ? { ok: false, errno: 'EBUSY', message: 'another restart is running' } : healthy(c));
      const m = make();
      const out = m.report(failure({ kind: 'bug' }));
      if (out.action === 'ignored') throw new Error(out.reason);
      const first = await out.done;
      expect(first).toMatchObject({ result: 'failed', method: 'reload', error: 'shadow_helper could not restart eth0 with a module reload: EBUSY another restart is running' });
      expect(helper.commands).toEqual([`restart net:eth0 ${first.id} reload`]);
      busy = false;
      await vi.advanceTimersByTimeAsync(2000);
      await m.idle();
      const retry = history.list()[0]!;
      expect(retry).toMatchObject({ result: 'recovered', method: 'reload', module: 'e1000', trigger: 'bug' });
      expect(helper.commands).toEqual([`restart net:eth0 ${first.id} reload`, `restart net:eth0 ${retry.id} reload`]);
    });

    it('a module that would not unload: the device was probed again with it; recovered, with a warning and a note, not a failed replay step', async () => {
      helper.answer = (c) => {
        const r = healthy(c);
        return r.ok && c.endsWith(' reload') ? { ok: true, payload: r.payload.replace('reload:ok', 'reload:fail').replace('load_ms=300', 'load_ms=0') } : r;
      };
      const m = make();
      const out = m.report(failure({ kind: 'oops' }));
      if (out.action === 'ignored') throw new Error(out.reason);
      const rec = await out.done;
      const note = 'module e1000 would not unload: the device was probed again with the module as it was';
      expect(rec).toMatchObject({ result: 'recovered', method: 'reload', module: 'e1000', error: note });
      expect(rec.steps[0]).toEqual({ source: 'module', key: 'reload', result: 'fail' });
      expect(byId(MESSAGE_REPLAY_STEP_FAILED)).toEqual([]);
      expect(lines.find((l) => l.message === `eth0: ${note} (the kernel log says why)`)).toMatchObject({ priority: 'warning', fields: { SHADOWD_STEP: 'reload', SHADOWD_MODULE: 'e1000' } });
      expect(lines.find((l) => l.message.startsWith('eth0: driver restarted'))?.message).toBe(
        'eth0: driver restarted (module e1000 not reloaded) in 0 ms (stop 10, release 5, unload 120, load 0, probe 600, replay 30, open 205 ms)',
      );
    });

    it("a reload the driver did not come back from: failed with the helper's reason and its steps, retried", async () => {
      helper.answer = (c) =>
        c.endsWith(' reload') ? { ok: false, errno: 'EIO', message: `net:eth0 id=${c.split(' ')[2]} parked after 900 ms: modprobe e1000 failed with exit status 1 steps=reload:fail` } : healthy(c);
      const m = make({ policy: { maxRecoveries: 1 } });
      const out = m.report(failure({ kind: 'oops' }));
      if (out.action === 'ignored') throw new Error(out.reason);
      const rec = await out.done;
      expect(rec).toMatchObject({ result: 'failed', method: 'reload', module: null });
      expect(rec.error).toBe(`shadow_helper could not restart eth0 with a module reload: EIO net:eth0 id=${rec.id} parked after 900 ms: modprobe e1000 failed with exit status 1 steps=reload:fail`);
      expect(rec.steps).toEqual([{ source: 'module', key: 'reload', result: 'fail' }]);
      expect(byId(MESSAGE_REPLAY_STEP_FAILED)).toEqual([]);
      expect(byId(MESSAGE_RECOVERY_FAILED)[0]?.priority).toBe('warning');
    });

    it('fails a reload answered with a re-probe\'s reply (the helper did not do what was asked)', async () => {
      helper.answer = (c) => healthy(c.replace(/ reload$/, ''));
      const m = make();
      const out = m.report(failure({ kind: 'oops' }));
      if (out.action === 'ignored') throw new Error(out.reason);
      const rec = await out.done;
      expect(rec.result).toBe('failed');
      expect(rec.error).toMatch(/^unreadable restart reply from shadow_helper ".*": it is a re-probe's reply, the restart asked for a reload$/);
    });

    it('an oops merged before the restart began makes it a reload; one merged once it began does not', async () => {
      const m = make();
      const first = m.report(failure());
      if (first.action === 'ignored') throw new Error(first.reason);
      await first.done;
      // The next waits its back-off: an oops merged then is in time.
      const second = m.report(failure({ kind: 'tx-stall' }));
      if (second.action === 'ignored') throw new Error(second.reason);
      await vi.advanceTimersByTimeAsync(500);
      expect(m.deviceState(ETH0).phase).toBe('backoff');
      expect(m.report(failure({ kind: 'oops', detail: 'Oops in e1000_clean [e1000]' })).action).toBe('merged');
      expect(lines.some((l) => l.message.includes("merged into recovery") && l.message.includes("its restart will reload the driver's module"))).toBe(true);
      await vi.advanceTimersByTimeAsync(1500);
      expect(await second.done).toMatchObject({ result: 'recovered', method: 'reload', merged: 1 });

      let release: () => void = () => undefined;
      helper.answer = (c) => (c.startsWith('restart') ? new Promise((r) => (release = () => r(healthy(c)))) : healthy(c));
      const third = m.report(failure({ kind: 'tx-stall' }));
      if (third.action === 'ignored') throw new Error(third.reason);
      await vi.advanceTimersByTimeAsync(4000);
      expect(m.deviceState(ETH0).phase).toBe('active');
      // The row says which restart is under way, should shadowd be killed now.
      expect(history.get(third.id)).toMatchObject({ result: 'in-progress', method: 'reprobe' });
      expect(m.report(failure({ kind: 'bug' })).action).toBe('merged');
      release();
      expect(await third.done).toMatchObject({ result: 'recovered', method: 'reprobe', merged: 1 });
      expect(helper.commands.at(-1)).toBe(`restart net:eth0 ${third.id}`);
    });

    it('manual: a reload when asked (the give-up of an oops loop lifted), a re-probe when not', async () => {
      const m = make();
      const plain = await m.recover(ETH0, 'uid 0 (pid 7)');
      expect(plain).toMatchObject({ trigger: 'manual', result: 'recovered', method: 'reprobe', detail: 'requested by uid 0 (pid 7)' });
      expect(helper.commands).toEqual([`restart net:eth0 ${plain.id}`]);
      const reloaded = await m.recover(ETH0, 'uid 0 (pid 8)', { reload: true });
      expect(reloaded).toMatchObject({ trigger: 'manual', result: 'recovered', method: 'reload', module: 'e1000', detail: 'requested by uid 0 (pid 8), with a module reload' });
      expect(helper.commands.at(-1)).toBe(`restart net:eth0 ${reloaded.id} reload`);
      expect(lines.some((l) => l.message === 'eth0: recovery requested by uid 0 (pid 8), with a module reload')).toBe(true);

      // Refused: the same fallback as for a detector's recovery.
      helper.answer = refusingReload('EOPNOTSUPP', 'driver e1000 is built into the kernel: it cannot be reloaded');
      const refused = await m.recover(ETH0, undefined, { reload: true });
      expect(refused).toMatchObject({ result: 'recovered', method: 'reprobe', error: expect.stringMatching(/^the module reload was refused \(EOPNOTSUPP driver e1000 is built/) as unknown });
      expect(helper.commands.slice(-2)).toEqual([`restart net:eth0 ${refused.id} reload`, `restart net:eth0 ${refused.id}`]);
    });

    it('manual --reload joining a recovery: it reloads if its restart has not begun, and says so when it has', async () => {
      const m = make();
      const first = m.report(failure());
      if (first.action === 'ignored') throw new Error(first.reason);
      await first.done;
      const waiting = m.report(failure());
      if (waiting.action === 'ignored') throw new Error(waiting.reason);
      await vi.advanceTimersByTimeAsync(500);
      const joined = await m.recover(ETH0, undefined, { reload: true });
      expect(joined).toMatchObject({ id: waiting.id, method: 'reload', result: 'recovered' });
      expect(helper.commands.at(-1)).toBe(`restart net:eth0 ${waiting.id} reload`);

      let release: () => void = () => undefined;
      helper.answer = (c) => (c.startsWith('restart') ? new Promise((r) => (release = () => r(healthy(c)))) : healthy(c));
      const running = m.report(failure());
      if (running.action === 'ignored') throw new Error(running.reason);
      // Past its back-off: its restart has been sent.
      await vi.advanceTimersByTimeAsync(5000);
      expect(m.deviceState(ETH0).phase).toBe('active');
      const late = m.recover(ETH0, undefined, { reload: true });
      await vi.advanceTimersByTimeAsync(0);
      release();
      const rec = await late;
      expect(rec).toMatchObject({ id: running.id, method: 'reprobe', result: 'recovered', error: 'a module reload was asked for once the restart had begun: none was done' });
      expect(lines.some((l) => l.priority === 'notice' && l.message.endsWith('its restart began without a module reload, so none is done (ask again once it has ended)'))).toBe(true);
    });
  });

  it('never restarts two devices of one bus device (the restart unit) at once; devices on other buses do not wait', async () => {
    const releases: (() => void)[] = [];
    helper.answer = (c) => (c.startsWith('restart') ? new Promise((r) => releases.push(() => r(healthy(c)))) : healthy(c));
    const bus = (name: string): string | null => (name === 'eth0' || name === 'eth1' ? '0000:00:03.0' : name === 'eth2' ? '0000:00:04.0' : null);
    const m = make({}, { lookup: (name) => (bus(name) ? { name, driver: 'e1000', bus: bus(name) } : null) });
    const a = m.report(failure());
    const b = m.report(failure({ device: 'eth1' }));
    const c = m.report(failure({ device: 'eth2' }));
    if (a.action === 'ignored' || b.action === 'ignored' || c.action === 'ignored') throw new Error('ignored');
    await vi.advanceTimersByTimeAsync(0);
    // eth1 shares eth0's controller: it waits; eth2 is on another.
    expect(helper.commands).toEqual([`restart net:eth0 ${a.id}`, `restart net:eth2 ${c.id}`]);
    expect(m.deviceState(ETH1)).toMatchObject({ recoveryId: b.id, phase: 'detected' });
    expect(m.isActive(ETH1)).toBe(false);
    releases.shift()!();
    expect(await a.done).toMatchObject({ result: 'recovered' });
    await vi.advanceTimersByTimeAsync(0);
    expect(helper.commands.at(-1)).toBe(`restart net:eth1 ${b.id}`);
    for (const release of releases.splice(0)) release();
    expect((await b.done).result).toBe('recovered');
    expect((await c.done).result).toBe('recovered');
  });

  it('makes unique ids that the helper accepts, even within one millisecond', async () => {
    const m = make({ policy: { maxRecoveries: 100, backoffMs: 0 } });
    const ids = new Set<string>();
    for (let i = 0; i < 50; i++) {
      const out = m.report(failure());
      if (out.action === 'ignored') throw new Error(out.reason);
      ids.add((await out.done).id);
    }
    expect(ids.size).toBe(50);
    for (const id of ids) expect(id).toMatch(RECOVERY_ID);
    expect(history.list({ limit: 100 })).toHaveLength(50);
  });
});
