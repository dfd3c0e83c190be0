// A second device class beside the network class, made up for this test: the
// class-agnostic core must serve it through the seam alone. A failure report
// of class `fake` goes through the recovery manager (to a scripted kernel
// helper that speaks the class's terms), the recovery history, the metrics,
// the control socket and the CLI's formatting, and nothing of it touches
// network code; the network shadow's resync leaves the fake class's devices
// in the shared store alone.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatHistory, formatRecovery, formatShow, formatStatus } from '../../../cli/format.js';
import { NET_DECLARATION } from '../../../daemon/classes/net/net-declaration.js';
import { NetdevShadow } from '../../../daemon/classes/net/netdev-shadow.js';
import type { DeviceSnapshot, KeyGroup } from '../../../daemon/classes/net/netdev-snapshot.js';
import { request } from '../../../daemon/control/control-client.js';
import type { Reply, StatusResult } from '../../../daemon/control/control-protocol.js';
import { startControlServer, type ControlServer, type Handler } from '../../../daemon/control/control-server.js';
import { ClassSet } from '../../../daemon/core/class-set.js';
import type { ClassDeclaration } from '../../../daemon/core/device-class.js';
import type { DeviceRef } from '../../../daemon/core/device-ref.js';
import type { DeviceStatus } from '../../../daemon/core/device-status.js';
import type { FailureReport } from '../../../daemon/core/failure-report.js';
import type { HelperClient, HelperReply } from '../../../daemon/core/helper-client.js';
import type { RestartReply } from '../../../daemon/core/helper-protocol.js';
import { RecoveryHistory, type RecoveryRecord } from '../../../daemon/core/recovery-history.js';
import { RecoveryManager, type RecoveryPort } from '../../../daemon/core/recovery-manager.js';
import { RequestError } from '../../../daemon/core/request-error.js';
import { ShadowStore } from '../../../daemon/core/shadow-store.js';
import type { LogFields, Logger, Priority } from '../../../daemon/service/log.js';
import { formatMetrics, Metrics, recordFinished } from '../../../daemon/service/metrics.js';

/** The fake class: its own names, faults, restart steps (no extra reply fields) and failure kind. */
const FAKE: ClassDeclaration = {
  id: 'fake',
  title: 'fake',
  noun: 'fake device',
  names: { valid: (name: string) => /^[a-z][a-z0-9]{0,15}$/.test(name), describe: 'a fake device name (lowercase letters and digits, e.g. dev0)' },
  tapProgram: '/nonexistent/fake-class.bt',
  tapEvents: ['jammed'],
  syncMarker: { argv: ['true'], isMarker: () => false },
  faults: ['jam', 'slow'],
  restartSteps: ['alpha', 'beta'],
  restartFields: [],
  failureKinds: ['fake-jam'],
  holderKinds: ['grab'],
  settings: [],
  attrs: ['slot'],
  kernelLogRules: [],
};

const DEV0: DeviceRef = { cls: 'fake', name: 'dev0' };
const CLASSES = new ClassSet([NET_DECLARATION, FAKE]);

function fakeJam(over: Partial<FailureReport> = {}): FailureReport {
  return { cls: 'fake', device: 'dev0', kind: 'fake-jam', detail: 'the fake queue jammed', detectedAt: Date.now(), driver: 'fakedrv', ...over };
}

/**
 * The kernel helper, scripted for the fake class: it answers exactly these
 * commands and fails the test on any other (a network command above all).
 */
class ScriptedHelper implements HelperClient {
  readonly path = '/dev/fake_helper';
  readonly commands: string[] = [];
  readonly unexpected: string[] = [];
  request(command: string): Promise<HelperReply> {
    this.commands.push(command);
    let m = /^restart fake:dev0 ([A-Za-z0-9_-]+)$/.exec(command);
    if (m) return Promise.resolve({ ok: true, payload: `restarted fake:dev0 id=${m[1]} stop_ms=1 release_ms=1 probe_ms=2 replay_ms=1 open_ms=1 total_ms=6 steps=alpha:ok,beta:skip` });
    m = /^restart fake:dev0 ([A-Za-z0-9_-]+) reload$/.exec(command);
    if (m) {
      return Promise.resolve({
        ok: true,
        payload: `restarted fake:dev0 id=${m[1]} module=fakemod stop_ms=1 release_ms=1 unload_ms=3 load_ms=4 probe_ms=2 replay_ms=1 open_ms=1 total_ms=13 steps=reload:ok,alpha:ok,beta:ok`,
      });
    }
    m = /^park fake:dev0 ([A-Za-z0-9_-]+)$/.exec(command);
    if (m) return Promise.resolve({ ok: true, payload: `parked fake:dev0 id=${m[1]}` });
    m = /^inject fake:dev0 (jam|slow)( sticky)?$/.exec(command);
    if (m) return Promise.resolve({ ok: true, payload: `injected fake:dev0 ${m[1]}` });
    this.unexpected.push(command);
    return Promise.resolve({ ok: false, errno: 'EINVAL', message: `the script has no answer to ${command}` });
  }
  version() {
    return Promise.resolve({ proto: 3, version: '0.3.0', kernel: 'test', faults: true, classes: ['net', 'fake'] });
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

interface Line {
  priority: Priority;
  message: string;
  fields: LogFields;
}

describe('a second device class, fake, beside net', () => {
  let dir: string;
  let store: ShadowStore;
  let history: RecoveryHistory;
  let helper: ScriptedHelper;
  let metrics: Metrics;
  let lines: Line[];
  let logger: Logger;
  let afterRestart: { name: string; reply: RestartReply }[];
  let netAsked: string[];

  /** The fake class's port: dev0 on fakedrv at bus fake0, no replay from a shadow, an after-restart check that records what it got. */
  const fakePort = (): RecoveryPort => ({
    decl: FAKE,
    lookup: (name) => (name === 'dev0' ? { name, driver: 'fakedrv', bus: 'fake0' } : null),
    afterRestart: (name, reply) => {
      afterRestart.push({ name, reply });
      return [];
    },
  });
  /** The network class's port: its real declaration, and a lookup that records being asked (it never should be, for fake:dev0). */
  const netPort = (): RecoveryPort => ({
    decl: NET_DECLARATION,
    lookup: (name) => {
      netAsked.push(name);
      return name === 'eth0' ? { name, driver: 'e1000', bus: '0000:00:03.0' } : null;
    },
  });
  const manager = (): RecoveryManager =>
    new RecoveryManager({
      history,
      logger,
      helper: () => Promise.resolve(helper),
      classes: new Map([
        ['net', netPort()],
        ['fake', fakePort()],
      ]),
      // A policy by class: one recovery of a fake device in the window, then the give-up.
      policy: (ref) => (ref.cls === 'fake' ? { maxRecoveries: 1, backoffMs: 0 } : {}),
      onFinished: (rec) => recordFinished(metrics, rec),
    });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'shadowd-fake-class-'));
    // One file holds the shadow and the history, as in the daemon.
    store = new ShadowStore(join(dir, 'state.db'));
    history = new RecoveryHistory(store.database);
    helper = new ScriptedHelper();
    metrics = new Metrics(Date.parse('2026-12-04T12:00:00Z'));
    lines = [];
    logger = { log: (priority, message, fields = {}) => lines.push({ priority, message, fields }) };
    afterRestart = [];
    netAsked = [];
  });
  afterEach(() => {
    store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A recovery of fake:dev0 from a detector's report, then a second report that gives up and parks it. */
  async function recoverThenGiveUp(m: RecoveryManager): Promise<{ recovered: RecoveryRecord; gaveUp: RecoveryRecord }> {
    // One reading of the clock for both ends, so that detect is 40 ms exactly.
    const detectedAt = Date.now();
    const out = m.report(fakeJam({ detectedAt, since: detectedAt - 40 }));
    if (out.action === 'ignored') throw new Error(out.reason);
    const recovered = await out.done;
    const again = m.report(fakeJam({ detail: 'jammed again' }));
    if (again.action === 'ignored') throw new Error(again.reason);
    const gaveUp = await again.done;
    return { recovered, gaveUp };
  }

  it("recovery manager: restarts and parks fake:dev0 in the class's own terms, asking nothing of the network class", async () => {
    const m = manager();
    const { recovered, gaveUp } = await recoverThenGiveUp(m);
    expect(helper.commands).toEqual([`restart fake:dev0 ${recovered.id}`, `park fake:dev0 ${gaveUp.id}`]);
    expect(helper.unexpected).toEqual([]);
    expect(netAsked).toEqual([]);

    expect(recovered).toMatchObject({
      cls: 'fake',
      device: 'dev0',
      driver: 'fakedrv',
      trigger: 'fake-jam',
      detail: 'the fake queue jammed',
      result: 'recovered',
      error: null,
      method: 'reprobe',
      module: null,
      phases: { detect: 40, module: { stopMs: 1, releaseMs: 1, probeMs: 2, replayMs: 1, openMs: 1, totalMs: 6 } },
    });
    // The class's steps, as its declaration orders them; no daemon replay (the class has none).
    expect(recovered.steps).toEqual([
      { source: 'module', key: 'alpha', result: 'ok' },
      { source: 'module', key: 'beta', result: 'skip' },
    ]);
    // Its after-restart check got the reply, with no extra fields: the class declares none.
    expect(afterRestart).toEqual([
      { name: 'dev0', reply: { device: 'fake:dev0', id: recovered.id, fields: {}, names: {}, how: 'reprobe', module: null, timings: recovered.phases.module, steps: [{ name: 'alpha', result: 'ok' }, { name: 'beta', result: 'skip' }] } },
    ]);

    expect(gaveUp).toMatchObject({ cls: 'fake', device: 'dev0', result: 'gave-up', trigger: 'fake-jam' });
    expect(gaveUp.error).toMatch(new RegExp(`^1 recovery of dev0 in the last 10 min \\(${recovered.id}\\) did not keep its driver running`));
    expect(gaveUp.error).toMatch(/the device is parked .*; run "shadowctl recover fake:dev0" once the cause is fixed; shadowd tries it again in 15 min$/);
    expect(m.deviceState(DEV0)).toMatchObject({ gaveUp: gaveUp.id, recoveryId: null });
    // The give-up is fake:dev0's alone.
    expect(m.deviceState({ cls: 'net', name: 'dev0' })).toEqual({ recoveryId: null, phase: null, gaveUp: null, recent: 0 });
    expect(m.report(fakeJam())).toMatchObject({ action: 'ignored', reason: /^shadowd gave up on dev0 .* on "shadowctl recover fake:dev0", and tries it again on its own$/ });

    // Every line about the recoveries names the class.
    const about = lines.filter((l) => l.fields['SHADOWD_RECOVERY_ID'] !== undefined);
    expect(about.length).toBeGreaterThan(0);
    for (const l of about) expect(l.fields).toMatchObject({ SHADOWD_CLASS: 'fake', SHADOWD_DEVICE: 'dev0' });

    // A person lifts the give-up; a reload has the class's steps after the reload step.
    const manual = await m.recover(DEV0, 'uid 0 (pid 7)', { reload: true });
    expect(manual).toMatchObject({ cls: 'fake', trigger: 'manual', result: 'recovered', method: 'reload', module: 'fakemod' });
    expect(manual.steps.map((s) => `${s.key}:${s.result}`)).toEqual(['reload:ok', 'alpha:ok', 'beta:ok']);
    expect(helper.commands.at(-1)).toBe(`restart fake:dev0 ${manual.id} reload`);
    expect(helper.unexpected).toEqual([]);
    expect(netAsked).toEqual([]);
  });

  it('recovery manager: a helper module without the fake class is refused before any command, saying what to load', async () => {
    const old = new ScriptedHelper();
    old.version = () => Promise.resolve({ proto: 3, version: '0.3.0', kernel: 'test', faults: true, classes: ['net'] });
    helper = old;
    const m = manager();
    m.start();
    await expect(m.recover({ cls: 'fake', name: 'dev0' })).rejects.toMatchObject({
      code: 'EHELPER',
      message: expect.stringContaining('the loaded shadow_helper module (version 0.3.0) has no fake class (it has net)') as string,
    });
    await expect(m.inject({ cls: 'fake', name: 'dev0' }, 'jam')).rejects.toMatchObject({ code: 'EHELPER' });
    const r = m.report({ cls: 'fake', device: 'dev0', kind: 'fake-jam', detail: 'jammed', detectedAt: Date.now() });
    expect(r.action).toBe('started');
    const rec = r.action === 'started' ? await r.done : null;
    expect(rec).toMatchObject({ result: 'failed', error: expect.stringContaining('has no fake class') as string });
    expect(old.commands).toEqual([]);
    await m.stop();
  });

  it("recovery manager: each class's failure kinds, names and faults are its own", async () => {
    const m = manager();
    // A network failure kind is no fake one, and the other way round.
    expect(m.report(fakeJam({ kind: 'tx-timeout' }))).toMatchObject({ action: 'ignored', reason: /^malformed failure report: kind "tx-timeout" is not one of oops, bug, warn, manual, fake-jam \(class fake\)$/ });
    expect(m.report(fakeJam({ cls: 'net', device: 'eth0' }))).toMatchObject({ action: 'ignored', reason: /kind "fake-jam" is not one of .*\(class net\)$/ });
    // The fake class's name rule, not the network one: no capitals.
    expect(m.report(fakeJam({ device: 'Dev0' }))).toMatchObject({ action: 'ignored', reason: /device "Dev0" is not a fake device name/ });
    expect(m.report(fakeJam({ device: 'dev1' }))).toEqual({ action: 'ignored', reason: 'shadowd watches no fake device named dev1' });
    // A generic kind is any class's.
    const warn = m.report(fakeJam({ kind: 'warn', detail: 'WARNING in fakedrv_poll' }));
    expect(warn.action).toBe('started');
    if (warn.action !== 'ignored') expect(await warn.done).toMatchObject({ cls: 'fake', trigger: 'warn', result: 'recovered' });

    expect(await m.inject(DEV0, 'jam', true)).toEqual({ device: 'fake:dev0', fault: 'jam', sticky: true, reply: 'injected fake:dev0 jam' });
    await expect(m.inject(DEV0, 'tx-hang')).rejects.toMatchObject({ code: 'EBADREQ', message: 'fault must be one of jam, slow, clear, not "tx-hang"' });
    await expect(m.recover({ cls: 'fake', name: 'bad/name' })).rejects.toMatchObject({ code: 'EBADREQ', message: /is not a fake device name/ });
    await expect(m.replay(DEV0)).rejects.toMatchObject({ code: 'EUNAVAIL' });
    expect(helper.unexpected).toEqual([]);
  });

  it('recovery history: the rows say their class; a query by class finds them, and a new manager keeps the give-up', async () => {
    const { recovered, gaveUp } = await recoverThenGiveUp(manager());
    expect(history.get(recovered.id)).toEqual(recovered);
    expect(history.list({ cls: 'fake' }).map((r) => [r.id, r.cls, r.device, r.result])).toEqual([
      [gaveUp.id, 'fake', 'dev0', 'gave-up'],
      [recovered.id, 'fake', 'dev0', 'recovered'],
    ]);
    expect(history.list({ cls: 'fake', device: 'dev0', limit: 1 }).map((r) => r.id)).toEqual([gaveUp.id]);
    expect(history.list({ cls: 'net' })).toEqual([]);
    expect(history.list({ cls: 'net', device: 'dev0' })).toEqual([]);
    expect(history.latestRecoveries().map((r) => [r.cls, r.device, r.result])).toEqual([['fake', 'dev0', 'gave-up']]);

    // A daemon started again on the same file keeps fake:dev0 given up, and only it.
    const next = manager();
    next.start();
    expect(next.deviceState(DEV0).gaveUp).toBe(gaveUp.id);
    expect(next.report(fakeJam()).action).toBe('ignored');
    expect(next.deviceState({ cls: 'net', name: 'dev0' }).gaveUp).toBeNull();
    expect(next.deviceState({ cls: 'net', name: 'eth0' }).gaveUp).toBeNull();
    expect(helper.unexpected).toEqual([]);
  });

  it('metrics: the recoveries carry class="fake"', async () => {
    await recoverThenGiveUp(manager());
    metrics.setShadowEntries('fake', [['dev0', 3]]);
    const text = formatMetrics(metrics.snapshot());
    expect(text).toContain('shadowd_recoveries_total{class="fake",device="dev0",driver="fakedrv",result="recovered"} 1\n');
    expect(text).toContain('shadowd_recoveries_total{class="fake",device="dev0",driver="fakedrv",result="gave-up"} 1\n');
    expect(text).toContain('shadowd_shadow_entries{class="fake",device="dev0"} 3\n');
    // The give-up ran no restart: only the recovery is in the duration histogram.
    expect(text).toContain('shadowd_recovery_duration_seconds_count 1\n');
    expect(text).not.toMatch(/class="net"/);
  });

  describe('control socket with the classes net and fake', () => {
    let server: ControlServer;
    let socket: string;
    let seen: unknown[];
    let m: RecoveryManager;

    beforeEach(async () => {
      socket = join(dir, 'control.sock');
      seen = [];
      m = manager();
      const handler: Handler = async (req, peer) => {
        seen.push(req);
        const by = peer ? `uid ${peer.uid} (pid ${peer.pid})` : undefined;
        switch (req.method) {
          case 'recover':
            return m.recover(req.params.device, by, { reload: req.params.reload });
          case 'inject':
            return m.inject(req.params.device, req.params.fault, req.params.sticky, by);
          case 'history':
            return { recoveries: history.list({ cls: req.params.cls ?? req.params.device?.cls, device: req.params.device?.name, limit: req.params.limit }) };
          default:
            throw new RequestError('ENOMETHOD', `not in this test: ${req.method}`, req.id);
        }
      };
      server = await startControlServer(socket, handler, logger, CLASSES, {
        peerCredentials: () => ({ pid: 4242, uid: 0, gid: 0 }),
        peerPrivilege: () => ({ granted: true }),
      });
    });
    afterEach(async () => {
      await server.close();
    });

    const ok = <T>(reply: Reply<T>): T => {
      if (!reply.ok) throw new Error(`${reply.error.code} ${reply.error.message}`);
      return reply.result;
    };

    it('a recover request for fake:dev0 parses and reaches the manager; the history asks by class', async () => {
      const rec = ok(await request<RecoveryRecord>(socket, 'recover', { device: 'fake:dev0' }));
      expect(seen).toEqual([{ id: 1, method: 'recover', params: { device: DEV0, reload: false } }]);
      expect(rec).toMatchObject({ cls: 'fake', device: 'dev0', trigger: 'manual', result: 'recovered', detail: 'requested by uid 0 (pid 4242)' });
      expect(helper.commands).toEqual([`restart fake:dev0 ${rec.id}`]);

      const h = ok(await request<{ recoveries: RecoveryRecord[] }>(socket, 'history', { class: 'fake' }));
      expect(seen.at(-1)).toEqual({ id: 1, method: 'history', params: { cls: 'fake', limit: 50 } });
      expect(h.recoveries.map((r) => r.id)).toEqual([rec.id]);
      const byDevice = ok(await request<{ recoveries: RecoveryRecord[] }>(socket, 'history', { device: 'fake:dev0', limit: 5 }));
      expect(byDevice.recoveries.map((r) => r.id)).toEqual([rec.id]);
      expect(ok(await request<{ recoveries: RecoveryRecord[] }>(socket, 'history', { class: 'net' })).recoveries).toEqual([]);
    });

    it("refuses fake:bad/name (the fake class's name rule) and a network fault for a fake device, before the handler", async () => {
      const badName = await request(socket, 'recover', { device: 'fake:bad/name' });
      expect(badName).toMatchObject({ ok: false, error: { code: 'EBADREQ', message: '"device": "bad/name" is not a fake device name: it must be a fake device name (lowercase letters and digits, e.g. dev0)' } });
      const netFault = await request(socket, 'inject', { device: 'fake:dev0', fault: 'tx-hang' });
      expect(netFault).toMatchObject({ ok: false, error: { code: 'EBADREQ', message: '"fault" must be one of jam, slow, clear (the fake class\'s faults)' } });
      // The same fault is the network class's to have.
      const unknownClass = await request(socket, 'recover', { device: 'sound:card0' });
      expect(unknownClass).toMatchObject({ ok: false, error: { code: 'EBADREQ', message: '"device": unknown device class "sound" (classes: net, fake)' } });
      expect(seen).toEqual([]);

      const jam = ok(await request<{ device: string; reply: string }>(socket, 'inject', { device: 'fake:dev0', fault: 'jam' }));
      expect(jam).toMatchObject({ device: 'fake:dev0', reply: 'injected fake:dev0 jam' });
      expect(seen).toEqual([{ id: 1, method: 'inject', params: { device: DEV0, fault: 'jam', sticky: false } }]);
      expect(helper.commands).toEqual(['inject fake:dev0 jam']);
      expect(helper.unexpected).toEqual([]);
    });
  });

  it("the CLI's formatting shows fake:dev0 and the class's steps", async () => {
    const { recovered, gaveUp } = await recoverThenGiveUp(manager());
    const one = formatRecovery(recovered).split('\n');
    expect(one[0]).toBe(`fake:dev0: recovered in ${recovered.phases.total} ms (${recovered.id})`);
    expect(one).toContain('  trigger: fake-jam: the fake queue jammed');
    expect(one).toContain('  driver:  fakedrv');
    expect(one).toContain('  steps:   alpha ok, beta skip');
    expect(formatRecovery(gaveUp).split('\n')[0]).toBe(`fake:dev0: shadowd gave up (${gaveUp.id})`);

    const table = formatHistory({ recoveries: history.list({ cls: 'fake' }) }, 'fake:dev0').split('\n');
    expect(table[0]).toMatch(/^ID\s+DEVICE\s+TRIGGER\s+RESULT\s/);
    expect(table[1]).toMatch(new RegExp(`^${gaveUp.id}\\s+fake:dev0\\s+fake-jam\\s+gave-up\\s`));
    expect(table[2]).toMatch(new RegExp(`^${recovered.id}\\s+fake:dev0\\s+fake-jam\\s+recovered\\s+reprobe\\s`));
    expect(formatHistory({ recoveries: [] }, 'fake:dev0')).toBe('No recoveries recorded for fake:dev0.');

    const dev0: DeviceStatus = { id: 'fake:fake0', cls: 'fake', name: 'dev0', driver: 'fakedrv', bus: 'fake0', mode: 'parked', health: 'ok', keys: 3, holders: 1, attrs: { slot: 3 } };
    const eth0: DeviceStatus = { ...dev0, id: 'bus:0000:00:03.0', cls: 'net', name: 'eth0', driver: 'e1000', bus: '0000:00:03.0', mode: 'passive', attrs: { ifindex: 2 } };
    const idle = { state: 'attached' as const, probes: 3, restarts: 0, events: 10, malformed: 0, lost: 0, lastError: null };
    const status: StatusResult = {
      version: '0.1.0',
      pid: 4242,
      startedAt: Date.now() - 60_000,
      classes: [
        { id: 'net', title: 'network', attrs: ['ifindex'] },
        { id: 'fake', title: 'fake', attrs: ['slot'] },
      ],
      taps: { ...idle, byClass: { net: idle, fake: idle } },
      pendingReads: 0,
      devices: [eth0, dev0],
    };
    // The status table names the class in a column of its own beside the device's name.
    const rows = formatStatus(status).split('\n');
    expect(rows.some((r) => /^DEVICE\s+CLASS\s+DRIVER\s/.test(r))).toBe(true);
    expect(rows.find((r) => r.includes('fakedrv'))).toMatch(/^dev0\s+fake\s+fakedrv\s+fake0\s+parked\s+ok\s+3\s+1$/);
    expect(formatShow({ device: dev0, entries: [], holders: [] }).split('\n')[0]).toBe('fake:dev0 (slot 3, class fake, driver fakedrv at fake0): parked, healthy');
  });

  it("the network shadow's resync leaves the fake class's devices, entries and holders in the store alone", async () => {
    const t0 = Date.now();
    // Two fake devices: one of the network shadow's own name, eth0, to show names do not cross classes.
    store.upsertDevice({ id: 'fake:fake0', cls: 'fake', name: 'dev0', driver: 'fakedrv', bus: 'fake0', attrs: { slot: 3 } }, t0);
    store.upsertDevice({ id: 'fake:fake1', cls: 'fake', name: 'eth0', driver: 'fakedrv', bus: null, attrs: { slot: 4 } }, t0);
    store.setEntry('fake:fake0', 'volume', 7, { pid: 100, comm: 'fakectl' }, t0);
    // A holder whose process is long gone: the network resync drops such holders, but only on its own devices.
    const ghost = 2 ** 31 - 2;
    store.adjustHolder('fake:fake0', 'grab', ghost, 'ghost', 1, t0);

    let links: { ifindex: number; name: string; bus: string | null }[] = [{ ifindex: 2, name: 'eth0', bus: '0000:00:03.0' }];
    const reads: string[] = [];
    const shadow = new NetdevShadow(store, logger, {
      listDevices: () => Promise.resolve(links),
      driverOf: () => Promise.resolve('e1000'),
      snapshot: (name: string, _groups: readonly KeyGroup[]): Promise<DeviceSnapshot> => {
        reads.push(name);
        return Promise.resolve({ identity: { ifindex: 2, name, bus: '0000:00:03.0' }, keys: { mtu: 1500 } });
      },
      refreshDelayMs: 1,
    });
    const fakeBefore = store.devices('fake');
    expect(fakeBefore.map((d) => [d.id, d.name, d.present])).toEqual([
      ['fake:fake0', 'dev0', true],
      ['fake:fake1', 'eth0', true],
    ]);

    await shadow.resync('start');
    expect(reads).toEqual(['eth0']);
    expect(store.devices('net').map((d) => [d.id, d.name, d.present, d.attrs])).toEqual([['bus:0000:00:03.0', 'eth0', true, { ifindex: 2 }]]);
    expect(store.devices('fake')).toEqual(fakeBefore);

    // eth0 is gone: the network shadow marks its own device absent, and only it.
    links = [];
    await shadow.resync('gap');
    expect(store.devices('net').map((d) => [d.name, d.present])).toEqual([['eth0', false]]);
    expect(store.devices('fake')).toEqual(fakeBefore);
    expect(store.entries('fake:fake0').map((e) => [e.key, e.value, e.actor.comm])).toEqual([['volume', 7, 'fakectl']]);
    expect(store.holders('fake:fake0')).toEqual([{ kind: 'grab', pid: ghost, comm: 'ghost', count: 1, since: t0 }]);
    // And the network shadow shows only network devices: not the fake one called eth0.
    expect(shadow.status().map((d) => [d.cls, d.id, d.name])).toEqual([['net', 'bus:0000:00:03.0', 'eth0']]);
    expect(shadow.show('eth0').device.id).toBe('bus:0000:00:03.0');
    expect(() => shadow.show('dev0')).toThrow(/no network device named dev0/);
    await shadow.settled();
  });
});
