// shadowctl against a control socket served by the daemon's own server code
// (answering from fixed results): output shapes, human views and exit codes.
// Devices are CLASS:NAME; a bare name is resolved through status (against a
// fake daemon that records what it is asked).
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLASSES } from '../../../daemon/classes/registry.js';
import {
  PROTOCOL_VERSION,
  RequestError,
  type DeviceStatus,
  type HistoryResult,
  type InjectResult,
  type ReloadResult,
  type ShowResult,
  type StatusResult,
} from '../../../daemon/control/control-protocol.js';
import { startControlServer, type ControlServer } from '../../../daemon/control/control-server.js';
import { ClassSet } from '../../../daemon/core/class-set.js';
import { formatRef } from '../../../daemon/core/device-ref.js';
import type { RecoveryRecord } from '../../../daemon/core/recovery-history.js';

const SHADOWCTL = new URL('../../../dist/cli/shadowctl.js', import.meta.url).pathname;
/** The classes shadowd registers, as its service gives them to the control server. */
const DAEMON_CLASSES = new ClassSet(CLASSES);
const DEVICE: DeviceStatus = {
  id: 'bus:0000:00:04.0',
  cls: 'net',
  name: 'eth0',
  driver: 'e1000',
  bus: '0000:00:04.0',
  mode: 'passive',
  health: 'ok',
  keys: 2,
  holders: 1,
  attrs: { ifindex: 2 },
};
const TAPS = { state: 'attached' as const, probes: 48, restarts: 0, events: 1234, malformed: 0, lost: 0, lastError: null };
const STATUS: StatusResult = {
  version: '0.1.0',
  pid: 4242,
  startedAt: Date.now() - 125_000,
  classes: [{ id: 'net', title: 'network', attrs: ['ifindex'] }],
  taps: { ...TAPS, byClass: { net: TAPS } },
  pendingReads: 0,
  devices: [DEVICE, { ...DEVICE, id: 'bus:0000:00:05.0', name: 'eth1', bus: '0000:00:05.0', mode: 'parked', keys: 0, holders: 0, attrs: { ifindex: 3 } }],
};
const SHOW: ShowResult = {
  device: DEVICE,
  entries: [
    { key: 'mtu', value: 1400, setBy: { pid: 300, comm: 'ip' }, at: Date.now() },
    { key: 'features', value: { 'generic-receive-offload': false, 'tx-scatter-gather': true, 'tx-checksum-ip-generic': true }, setBy: { pid: null, comm: '(snapshot)' }, at: Date.now() },
  ],
  holders: [{ kind: 'promiscuity', pid: 501, comm: 'tcpdump', count: 1, since: Date.now() }],
};
/** Names and values chosen by whoever named the process or the device: terminal escapes in each. */
const ESC_SHOW: ShowResult = {
  device: { ...DEVICE, name: 'evil', driver: 'e1000\x1b[2J', bus: '0000:00:04.0\x07', attrs: { ifindex: 2 } },
  entries: [
    { key: 'ifalias', value: 'up\x1b]0;owned\x07', setBy: { pid: 300, comm: 'ip\x1b[31m' }, at: Date.now() },
    { key: 'features', value: { 'rx\x9bgro': true }, setBy: { pid: 301, comm: 'tab\there\x7f' }, at: Date.now() },
  ],
  holders: [{ kind: 'promiscuity', pid: 501, comm: 'line\nbreak\u009b', count: 1, since: Date.now() }],
};

const STARTED = new Date(2025, 10, 27, 15, 0, 1).getTime();
const RECOVERED: RecoveryRecord = {
  id: 'rmihx2k1c-0',
  cls: 'net',
  device: 'eth0',
  driver: 'e1000',
  trigger: 'tx-timeout',
  detail: 'transmit queue 0 timed out',
  startedAt: STARTED,
  endedAt: STARTED + 900,
  result: 'recovered',
  phases: { detect: 1200, restart: 850, check: 40, total: 900, module: { stopMs: 10, releaseMs: 5, probeMs: 600, replayMs: 30, openMs: 205, totalMs: 850 } },
  steps: [
    { source: 'module', key: 'mac', result: 'ok' },
    { source: 'module', key: 'mtu', result: 'skip' },
  ],
  error: null,
  merged: 1,
  method: 'reprobe',
  module: null,
};
/** `recover eth0 --reload`: its module unloaded and loaded again. */
const RELOADED_REC: RecoveryRecord = {
  ...RECOVERED,
  id: 'rmihx2k1c-5',
  trigger: 'manual',
  detail: 'requested by uid 0 (pid 1), with a module reload',
  phases: {
    restart: 1300,
    check: 40,
    total: 1350,
    module: { stopMs: 10, releaseMs: 5, unloadMs: 140, loadMs: 310, probeMs: 600, replayMs: 30, openMs: 205, totalMs: 1300 },
  },
  steps: [
    { source: 'module', key: 'reload', result: 'ok' },
    { source: 'module', key: 'mac', result: 'ok' },
  ],
  merged: 0,
  method: 'reload',
  module: 'e1000',
};
/** A history row written before shadowd recorded the method: the fields absent. */
const OLD_ROW = { ...RECOVERED, id: 'rmihx2k1c-1', method: undefined, module: undefined } as unknown as RecoveryRecord;
const GAVE_UP: RecoveryRecord = {
  ...RECOVERED,
  id: 'rmihx2k1c-3',
  device: 'eth1',
  trigger: 'oops',
  detail: 'BUG: unable to handle page fault in e1000_clean',
  result: 'gave-up',
  phases: { total: 3 },
  steps: [],
  error: '3 recoveries of eth1 in the last 10 min (a, b, c) did not keep its driver running: the failure looks deterministic; the device is parked',
  merged: 0,
  method: null,
};
const REPLAYED: RecoveryRecord = {
  ...RECOVERED,
  id: 'rmihx2k1c-4',
  trigger: 'replay',
  detail: 'requested by uid 0 (pid 1)',
  result: 'replayed',
  phases: { check: 35, total: 35 },
  steps: [{ source: 'daemon', key: 'coalesce', result: 'ok', argv: ['ethtool', '-C', 'eth0', 'rx-usecs', '3'] }],
  merged: 0,
  method: null,
};
const HISTORY: HistoryResult = { recoveries: [REPLAYED, RELOADED_REC, GAVE_UP, RECOVERED, OLD_ROW] };
const RELOADED: ReloadResult = { ok: true, file: '/etc/shadowd/shadowd.conf', errors: [], changes: ['LogLevel=debug', '[Device eth1] Protect=no'] };
const UNCHANGED: ReloadResult = { ok: true, file: '/etc/shadowd/shadowd.conf', errors: [], changes: [] };
const REFUSED: ReloadResult = {
  ok: false,
  file: '/etc/shadowd/shadowd.conf',
  errors: [
    { file: '/etc/shadowd/shadowd.conf', line: 12, key: 'MaxRecoveries', message: 'must be an integer from 1 to 100, got "lots"' },
    { file: '/etc/shadowd/shadowd.conf', line: 15, key: 'protect', message: 'unknown key in [Device eth1] (did you mean Protect?)' },
  ],
  changes: [],
};

describe('shadowctl', () => {
  let dir: string;
  let socket: string;
  let server: ControlServer;
  /** What the next reload answers. */
  let reloadAnswer: ReloadResult = RELOADED;
  /** The params of each recover request, as the daemon got them. */
  const recoverParams: unknown[] = [];
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shadowctl-'));
    socket = join(dir, 'control.sock');
    server = await startControlServer(
      socket,
      (req) => {
        if (req.method === 'status') return Promise.resolve(STATUS);
        if (req.method === 'show' && formatRef(req.params.device) === 'net:eth0') return Promise.resolve(SHOW);
        if (req.method === 'show' && formatRef(req.params.device) === 'net:evil') return Promise.resolve(ESC_SHOW);
        if (req.method === 'show' && formatRef(req.params.device) === 'net:evil2') return Promise.reject(new RequestError('EHELPER', 'driver \x1b[2Jsaid no'));
        if (req.method === 'show') return Promise.reject(new RequestError('ENODEV', `shadowd watches no network device named ${req.params.device.name}`));
        if (req.method === 'recover') recoverParams.push(req.params);
        if (req.method === 'recover' && formatRef(req.params.device) === 'net:eth0') return Promise.resolve(req.params.reload ? RELOADED_REC : RECOVERED);
        if (req.method === 'recover' && formatRef(req.params.device) === 'net:eth1') return Promise.resolve(GAVE_UP);
        if (req.method === 'recover') return Promise.reject(new RequestError('ENODEV', `shadowd watches no network device named ${req.params.device.name}`));
        if (req.method === 'replay') return Promise.resolve(REPLAYED);
        if (req.method === 'inject' && req.params.fault === 'fail-stop') {
          return Promise.reject(new RequestError('EHELPER', 'shadow_helper refused "inject net:eth0 fail-stop": EPERM fault injection is disabled'));
        }
        if (req.method === 'inject') {
          const { fault, sticky } = req.params;
          const device = formatRef(req.params.device);
          return Promise.resolve<InjectResult>({ device, fault, sticky, reply: fault === 'clear' ? `cleared ${device}` : `injected ${device} ${fault}` });
        }
        if (req.method === 'history') {
          const { device, limit } = req.params;
          return Promise.resolve<HistoryResult>({
            recoveries: HISTORY.recoveries.filter((r) => device === undefined || (r.cls === device.cls && r.device === device.name)).slice(0, limit),
          });
        }
        if (req.method === 'reload') return Promise.resolve(reloadAnswer);
        return Promise.resolve({ version: '0.1.0', protocol: PROTOCOL_VERSION });
      },
      { log: () => undefined },
      DAEMON_CLASSES,
      // As root holding CAP_NET_ADMIN, whoever runs the tests.
      { peerCredentials: () => ({ pid: 1, uid: 0, gid: 0 }), peerPrivilege: () => ({ granted: true }) },
    );
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const ctl = (...args: string[]) => execa('node', [SHADOWCTL, '--socket', socket, ...args], { reject: false });

  it('status --json prints the daemon status object', async () => {
    const r = await ctl('status', '--json');
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(STATUS);
  });

  it('status shows a line per device and the taps', async () => {
    const r = await ctl('status');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^shadowd 0\.1\.0 \(pid 4242\), up 2m\d+s; taps attached \(48 probes\); 1234 events, 0 lost, 0 unreadable$/m);
    expect(r.stdout).toMatch(/^DEVICE\s+CLASS\s+DRIVER\s+BUS\s+MODE\s+HEALTH\s+KEYS\s+HOLDERS$/m);
    expect(r.stdout).toMatch(/^eth0\s+net\s+e1000\s+0000:00:04\.0\s+passive\s+ok\s+2\s+1$/m);
    expect(r.stdout).toMatch(/^eth1\s+net\s+e1000\s+0000:00:05\.0\s+parked\s+ok\s+0\s+0$/m);
  });

  it('show --json prints the shadow; show prints keys, setters and holders', async () => {
    const json = await ctl('show', 'net:eth0', '--json');
    expect(json.exitCode).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(SHOW);
    // A bare name, when only one class has a device of that name.
    const bare = await ctl('show', 'eth0', '--json');
    expect(bare.exitCode).toBe(0);
    expect(JSON.parse(bare.stdout)).toEqual(SHOW);
    const human = await ctl('show', 'eth0');
    expect(human.stdout.split('\n')[0]).toBe('net:eth0 (ifindex 2, class net, driver e1000 at 0000:00:04.0): passive, healthy');
    expect(human.stdout).toMatch(/^mtu\s+1400\s+ip\[300\]\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/m);
    expect(human.stdout).toMatch(/^features\s+\{"generic-receive-offload":false,.*…\s+\(snapshot\)/m);
    expect(human.stdout).toMatch(/^promiscuity\s+tcpdump\[501\]\s+1\s+/m);
   }, 30_000);

  it('shows control characters in names and values escaped, and --json exact', async () => {
    const human = await ctl('show', 'net:evil');
    expect(human.exitCode).toBe(0);
    // Nothing a terminal would act on: no C0 but the newlines between lines, no DEL, no C1.
    // eslint-disable-next-line no-control-regex -- looking for control characters is the point
    expect(human.stdout).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(human.stdout.split('\n')[0]).toBe('net:evil (ifindex 2, class net, driver e1000\\x1b[2J at 0000:00:04.0\\x07): passive, healthy');
    expect(human.stdout).toMatch(/^ifalias\s+up\\x1b\]0;owned\\x07\s+ip\\x1b\[31m\[300\]/m);
    expect(human.stdout).toContain('tab\\x09here\\x7f[301]');
    // A structured value is shown as JSON of the escaped strings (its backslash escaped in turn).
    expect(human.stdout).toContain('{"rx\\\\x9bgro":true}');
    expect(human.stdout).toMatch(/^promiscuity\s+line\\x0abreak\\x9b\[501\]\s+1\s+/m);
    const json = await ctl('show', 'net:evil', '--json');
    expect(json.exitCode).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(ESC_SHOW);
    const refused = await ctl('show', 'net:evil2');
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toBe('shadowctl: driver \\x1b[2Jsaid no');
  }, 30_000);

  it('exits 1 with the daemon\'s reason for an unknown device', async () => {
    const r = await ctl('show', 'net:eth9');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe('shadowctl: shadowd watches no network device named eth9');
    const json = await ctl('show', 'net:eth9', '--json');
    expect(json.exitCode).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ code: 'ENODEV', message: 'shadowd watches no network device named eth9' });
   }, 30_000);

  it('exits 2 on a bad command line, with the usage', async () => {
    for (const args of [[], ['frob'], ['show'], ['status', '--bogus']]) {
      const r = await ctl(...args);
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^shadowctl: /m);
      expect(r.stderr).toContain('Options:');
    }
    // Four node processes, one after the other: slow on a loaded machine.
  }, 30_000);

  it('exits 1 when the daemon refuses a malformed interface name, or a class it does not have', async () => {
    const r = await ctl('show', 'net:a/b');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe('shadowctl: "device": "a/b" is not a net device name: it must be an interface name (1-15 bytes, no "/", ":" or spaces)');
    const json = await ctl('recover', 'net:a/b', '--json');
    expect(json.exitCode).toBe(1);
    expect(JSON.parse(json.stdout)).toMatchObject({ code: 'EBADREQ', message: expect.stringContaining('is not a net device name') as string });
    const cls = await ctl('show', 'input:event0');
    expect(cls.exitCode).toBe(1);
    expect(cls.stderr).toBe('shadowctl: "device": unknown device class "input" (classes: net, block, sound)');
  }, 30_000);

  it('exits 3 with a one-line error when shadowd is not running', async () => {
    const r = await execa('node', [SHADOWCTL, '--socket', join(dir, 'none.sock'), 'status'], { reject: false });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toBe(`shadowctl: shadowd is not running (nothing listens on ${join(dir, 'none.sock')})`);
  });

  it('prints help with examples and the exit codes', async () => {
    const r = await ctl('show', '--help');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain("eth0's shadow state");
    const top = await ctl('--help');
    expect(top.stdout).toContain('Exit codes: 0 ok, 1 refused by shadowd, 2 bad usage, 3 shadowd not running, 4');
  });

  it('recover --json prints the recovery record; recover prints the phases', async () => {
    const json = await ctl('recover', 'eth0', '--json');
    expect(json.exitCode).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(RECOVERED);
    const human = await ctl('recover', 'eth0');
    expect(human.exitCode).toBe(0);
    expect(human.stdout.split('\n')).toEqual([
      'net:eth0: recovered in 900 ms (rmihx2k1c-0)',
      '  trigger: tx-timeout: transmit queue 0 timed out',
      '  driver:  e1000',
      '  method:  reprobe',
      '  phases:  detect 1200 ms, restart 850 ms (stop 10, release 5, probe 600, replay 30, open 205 ms), check 40 ms, total 900 ms',
      '  steps:   mac ok, mtu skip',
      '  merged:  1 more failure report',
    ]);
  }, 30_000);

  it("recover --reload asks for the module reload and prints it: method, module, unload and load times; without it, nothing is sent", async () => {
    recoverParams.length = 0;
    const json = await ctl('recover', 'eth0', '--reload', '--json');
    expect(json.exitCode).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(RELOADED_REC);
    const human = await ctl('recover', 'eth0', '--reload');
    expect(human.exitCode).toBe(0);
    expect(human.stdout.split('\n')).toEqual([
      'net:eth0: recovered in 1350 ms (rmihx2k1c-5)',
      '  trigger: manual: requested by uid 0 (pid 1), with a module reload',
      '  driver:  e1000',
      '  method:  reload (module e1000)',
      '  phases:  restart 1300 ms (stop 10, release 5, unload 140, load 310, probe 600, replay 30, open 205 ms), check 40 ms, total 1350 ms',
      '  steps:   reload ok, mac ok',
    ]);
    expect(recoverParams).toEqual([
      { device: { cls: 'net', name: 'eth0' }, reload: true },
      { device: { cls: 'net', name: 'eth0' }, reload: true },
    ]);

    // On the wire: a shadowd from before --reload refuses an unknown parameter, so a plain recover sends none.
    const rawSocket = join(dir, 'raw.sock');
    const seen: unknown[] = [];
    const raw = createServer((c) => {
      c.setEncoding('utf8');
      c.on('data', (line: string) => {
        const req = JSON.parse(line) as { id: number; params: unknown };
        seen.push(req.params);
        c.end(`${JSON.stringify({ id: req.id, ok: true, result: RECOVERED })}\n`);
      });
    });
    await new Promise<void>((resolve) => raw.listen(rawSocket, resolve));
    try {
      for (const args of [['recover', 'net:eth0'], ['recover', 'net:eth0', '--no-reload'], ['recover', 'net:eth0', '--reload']]) {
        expect((await execa('node', [SHADOWCTL, '--socket', rawSocket, ...args], { reject: false })).exitCode).toBe(0);
      }
    } finally {
      await new Promise((resolve) => raw.close(resolve));
    }
    expect(seen).toEqual([{ device: 'net:eth0' }, { device: 'net:eth0' }, { device: 'net:eth0', reload: true }]);
  }, 30_000);

  it('recover --help says what --reload does', async () => {
    const r = await ctl('recover', '--help');
    expect(r.exitCode).toBe(0);
    const flat = r.stdout.replace(/\s+/g, ' ');
    expect(flat).toContain("--reload Also unload and load the driver's module: for a driver whose code is suspect");
    expect(flat).toContain('the driver is restarted without it');
  }, 30_000);

  it('recover exits 1 when the recovery gave up, with the reason, and for an unknown device', async () => {
    const human = await ctl('recover', 'eth1');
    expect(human.exitCode).toBe(1);
    expect(human.stdout).toContain('net:eth1: shadowd gave up (rmihx2k1c-3)');
    expect(human.stdout).toContain('  reason:  3 recoveries of eth1 in the last 10 min (a, b, c) did not keep its driver running');
    const json = await ctl('recover', 'eth1', '--json');
    expect(json.exitCode).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual(GAVE_UP);
    const unknown = await ctl('recover', 'net:eth9', '--json');
    expect(unknown.exitCode).toBe(1);
    expect(JSON.parse(unknown.stdout)).toEqual({ code: 'ENODEV', message: 'shadowd watches no network device named eth9' });
  }, 30_000);

  it('replay --json prints the replay record; replay prints its steps', async () => {
    const json = await ctl('replay', 'eth0', '--json');
    expect(json.exitCode).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(REPLAYED);
    const human = await ctl('replay', 'eth0');
    expect(human.stdout).toContain('net:eth0: configuration replayed in 35 ms (rmihx2k1c-4)');
    expect(human.stdout).toContain('  steps:   coalesce ok');
  }, 30_000);

  it('inject --json prints what the helper did; a refusal exits 1 with its reason', async () => {
    const json = await ctl('inject', 'eth0', 'tx-hang', '--sticky', '--json');
    expect(json.exitCode).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ device: 'net:eth0', fault: 'tx-hang', sticky: true, reply: 'injected net:eth0 tx-hang' });
    const human = await ctl('inject', 'net:eth0', 'clear');
    expect(human.exitCode).toBe(0);
    expect(human.stdout).toBe('net:eth0: injected fault cleared');
    const lostIrq = await ctl('inject', 'eth0', 'lost-irq');
    expect(lostIrq.exitCode).toBe(0);
    expect(lostIrq.stdout).toBe('net:eth0: fault lost-irq injected');
    const refused = await ctl('inject', 'eth0', 'fail-stop');
    expect(refused.exitCode).toBe(1);
    expect(refused.stderr).toBe('shadowctl: shadow_helper refused "inject net:eth0 fail-stop": EPERM fault injection is disabled');
    const refusedJson = await ctl('inject', 'net:eth0', 'fail-stop', '--json');
    expect(JSON.parse(refusedJson.stdout)).toEqual({ code: 'EHELPER', message: 'shadow_helper refused "inject net:eth0 fail-stop": EPERM fault injection is disabled' });
  }, 30_000);

  it('history --json prints the records; history prints a table with phase times in ms', async () => {
    const json = await ctl('history', '--json');
    expect(json.exitCode).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(HISTORY);
    const human = await ctl('history');
    expect(human.exitCode).toBe(0);
    const lines = human.stdout.split('\n');
    expect(lines[0]).toMatch(/^ID\s+DEVICE\s+TRIGGER\s+RESULT\s+METHOD\s+STARTED\s+DETECT\s+WAIT\s+RESTART\s+CHECK\s+TOTAL\s+NOTE$/);
    expect(lines[1]).toMatch(/^rmihx2k1c-4\s+net:eth0\s+replay\s+replayed\s+-\s+2025-11-27 15:00:01\s+-\s+-\s+-\s+35\s+35$/);
    expect(lines[2]).toMatch(/^rmihx2k1c-5\s+net:eth0\s+manual\s+recovered\s+reload\s+2025-11-27 15:00:01\s+-\s+-\s+1300\s+40\s+1350$/);
    expect(lines[3]).toMatch(/^rmihx2k1c-3\s+net:eth1\s+oops\s+gave-up\s+-\s+2025-11-27 15:00:01\s+-\s+-\s+-\s+-\s+3\s+3 recoveries of eth1/);
    expect(lines[4]).toMatch(/^rmihx2k1c-0\s+net:eth0\s+tx-timeout\s+recovered\s+reprobe\s+2025-11-27 15:00:01\s+1200\s+-\s+850\s+40\s+900\s+\+1 merged$/);
    // A row from before shadowd recorded the method.
    expect(lines[5]).toMatch(/^rmihx2k1c-1\s+net:eth0\s+tx-timeout\s+recovered\s+-\s+2025-11-27 15:00:01\s+1200\s+-\s+850\s+40\s+900\s+\+1 merged$/);
    expect(human.stdout.replace(/\s+/g, ' ')).toContain('METHOD: how the driver was restarted (reprobe: the device probed again; reload: its module unloaded and loaded first). Phase times in ms');
    const one = await ctl('history', 'eth0', '--limit', '1', '--json');
    expect(JSON.parse(one.stdout)).toEqual({ recoveries: [REPLAYED] });
    const gaveUp = await ctl('history', 'net:eth1', '--json');
    expect(JSON.parse(gaveUp.stdout)).toEqual({ recoveries: [GAVE_UP] });
    const none = await ctl('history', 'net:eth5');
    expect(none.stdout).toBe('No recoveries recorded for net:eth5.');
  }, 30_000);

  it('exits 2 on bad recovery command lines', async () => {
    const cases = [['recover'], ['recover', 'eth0', '--reloads'], ['replay', 'eth0', '--reload'], ['inject', 'eth0'], ['inject', 'eth0', 'explode'], ['inject', 'eth0', 'clear', '--sticky'], ['history', '--limit', '0'], ['history', '--limit', '1001'], ['history', '--limit', 'x'], ['history', 'eth0', 'eth1']];
    const results = await Promise.all(cases.map((args) => ctl(...args)));
    results.forEach((r, i) => {
      expect(r.exitCode, cases[i]!.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^shadowctl: /m);
    });
    expect(results[1]?.stderr).toContain('shadowctl: Unknown argument: reloads');
    expect(results[2]?.stderr).toContain('shadowctl: Unknown argument: reload');
    expect(results[5]?.stderr).toContain('shadowctl: --sticky applies to a fault, not to clear');
    expect(results[6]?.stderr).toContain('shadowctl: --limit must be an integer from 1 to 1000');
  }, 30_000);

  it('reload --json prints the outcome; reload prints what changed, or each error with file, line and key, and exits 1', async () => {
    reloadAnswer = RELOADED;
    const json = await ctl('reload', '--json');
    expect(json.exitCode).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(RELOADED);
    const human = await ctl('reload');
    expect(human.exitCode).toBe(0);
    expect(human.stdout.split('\n')).toEqual(['shadowd reloaded /etc/shadowd/shadowd.conf; now in force:', '  LogLevel=debug', '  [Device eth1] Protect=no']);
    reloadAnswer = UNCHANGED;
    expect((await ctl('reload')).stdout).toBe('shadowd reloaded /etc/shadowd/shadowd.conf: nothing changed');

    reloadAnswer = REFUSED;
    const refusedJson = await ctl('reload', '--json');
    expect(refusedJson.exitCode).toBe(1);
    expect(JSON.parse(refusedJson.stdout)).toEqual(REFUSED);
    const refused = await ctl('reload');
    expect(refused.exitCode).toBe(1);
    expect(refused.stdout.split('\n')).toEqual([
      'shadowd refused /etc/shadowd/shadowd.conf: 2 errors; it keeps running with its previous configuration',
      '  /etc/shadowd/shadowd.conf:12: MaxRecoveries: must be an integer from 1 to 100, got "lots"',
      '  /etc/shadowd/shadowd.conf:15: protect: unknown key in [Device eth1] (did you mean Protect?)',
    ]);
    reloadAnswer = RELOADED;
    // reload takes no argument.
    const bad = await ctl('reload', 'now');
    expect(bad.exitCode).toBe(2);
  }, 30_000);

  it('reload --help has examples and the exit codes', async () => {
    const r = await ctl('reload', '--help');
    expect(r.exitCode).toBe(0);
    const flat = r.stdout.replace(/\s+/g, ' ');
    expect(r.stdout).toContain('Examples:');
    expect(flat).toContain('Apply the edited configuration, or print its errors with file, line and key');
    expect(flat).toContain('It exits 1 when the file has errors');
    expect(flat).toContain('recover, replay, inject and reload need CAP_NET_ADMIN, which sudo gives (4 otherwise)');
  }, 30_000);

  it('exits 4 when a process without CAP_NET_ADMIN asks to recover, replay, inject or reload; history stays open', async () => {
    const userSocket = join(dir, 'user.sock');
    const userServer = await startControlServer(
      userSocket,
      (req) => Promise.resolve(req.method === 'status' ? STATUS : HISTORY),
      { log: () => undefined },
      DAEMON_CLASSES,
      { peerCredentials: () => ({ pid: 999, uid: 1000, gid: 1000 }), peerPrivilege: () => ({ granted: false, reason: 'it does not hold CAP_NET_ADMIN' }) },
    );
    try {
      const as = (...args: string[]) => execa('node', [SHADOWCTL, '--socket', userSocket, ...args], { reject: false });
      // A bare name is resolved through status, which a user may ask.
      for (const args of [['recover', 'eth0'], ['replay', 'net:eth0'], ['inject', 'eth0', 'tx-hang'], ['reload']]) {
        const r = await as(...args);
        expect(r.exitCode, args.join(' ')).toBe(4);
        expect(r.stderr).toBe(`shadowctl: ${args[0]} changes the system and needs root with CAP_NET_ADMIN (asked by uid 1000, pid 999; it does not hold CAP_NET_ADMIN): run it with sudo`);
      }
      for (const args of [['recover', 'net:eth0', '--json'], ['reload', '--json']]) {
        const json = await as(...args);
        expect(json.exitCode, args.join(' ')).toBe(4);
        expect(JSON.parse(json.stdout)).toMatchObject({ code: 'EPERM' });
      }
      expect((await as('history')).exitCode).toBe(0);
    } finally {
      await userServer.close();
    }
  }, 30_000);

  it('prints help for the recovery commands with examples and exit codes', async () => {
    for (const [cmd, text] of [
      ['recover', "Restart eth0's driver"],
      ['replay', "Set eth0's recorded configuration again"],
      ['inject', 'every restart, until shadowd gives up'],
      ['history', "eth0's last 5 recoveries"],
    ] as const) {
      const r = await ctl(cmd, '--help');
      expect(r.exitCode, cmd).toBe(0);
      // yargs wraps examples and the epilogue at the terminal's width.
      const flat = r.stdout.replace(/\s+/g, ' ');
      expect(r.stdout).toContain('Examples:');
      expect(flat).toContain(text);
      expect(flat).toContain(
        'Exit codes: 0 ok, 1 refused by shadowd, 2 bad usage, 3 shadowd not running, 4 permission denied. recover and replay exit 1 also when they ran and failed',
      );
    }
  }, 30_000);
});

describe('shadowctl: bare device names', () => {
  let dir: string;
  const fakes: Server[] = [];
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'shadowctl-bare-'));
  });
  afterAll(async () => {
    for (const f of fakes) await new Promise((resolve) => f.close(resolve));
    rmSync(dir, { recursive: true, force: true });
  });

  const device = (cls: string, name: string, health: DeviceStatus['health'] = 'ok'): DeviceStatus => ({ ...DEVICE, id: `${cls}-${name}`, cls, name, health, attrs: cls === 'net' ? { ifindex: 7 } : {} });

  /** A daemon that answers every request and records each (method and params, as sent), its status listing these devices. */
  type Ran = { exitCode?: number; stdout: string; stderr: string };
  async function fakeDaemon(name: string, devices: DeviceStatus[]): Promise<{ run: (...args: string[]) => Promise<Ran>; seen: { method: string; params?: Record<string, unknown> }[] }> {
    const path = join(dir, name);
    const seen: { method: string; params?: Record<string, unknown> }[] = [];
    const answer = (method: string, params: Record<string, unknown> = {}): unknown => {
      switch (method) {
        case 'status':
          return { ...STATUS, devices };
        case 'show':
          return SHOW;
        case 'recover':
          return RECOVERED;
        case 'replay':
          return REPLAYED;
        case 'inject':
          return { device: params['device'], fault: params['fault'], sticky: params['sticky'], reply: 'injected' };
        case 'history':
          return { recoveries: [] };
        default:
          return {};
      }
    };
    const fake = createServer((c) => {
      let buffered = '';
      c.setEncoding('utf8');
      c.on('data', (chunk: string) => {
        buffered += chunk;
        let nl: number;
        while ((nl = buffered.indexOf('\n')) >= 0) {
          const req = JSON.parse(buffered.slice(0, nl)) as { id: number; method: string; params?: Record<string, unknown> };
          buffered = buffered.slice(nl + 1);
          seen.push(req.params === undefined ? { method: req.method } : { method: req.method, params: req.params });
          c.write(`${JSON.stringify({ id: req.id, ok: true, result: answer(req.method, req.params) })}\n`);
        }
      });
    });
    await new Promise<void>((resolve) => fake.listen(path, resolve));
    fakes.push(fake);
    return { run: (...args: string[]) => execa('node', [SHADOWCTL, '--socket', path, ...args], { reject: false }), seen };
  }

  it('sends CLASS:NAME of the one class that has a device of that name, after asking status', async () => {
    const { run, seen } = await fakeDaemon('one.sock', [device('net', 'eth0'), device('net', 'eth1', 'absent'), device('block', 'sda'), device('net', 'eth0', 'absent')]);
    const cases = [
      [['show', 'eth0'], { method: 'show', params: { device: 'net:eth0' } }],
      [['recover', 'eth0', '--reload'], { method: 'recover', params: { device: 'net:eth0', reload: true } }],
      [['replay', 'eth0'], { method: 'replay', params: { device: 'net:eth0' } }],
      [['inject', 'eth0', 'tx-hang'], { method: 'inject', params: { device: 'net:eth0', fault: 'tx-hang', sticky: false } }],
      [['history', 'eth0', '--limit', '3'], { method: 'history', params: { device: 'net:eth0', limit: 3 } }],
      // An absent device is still one shadowd knows.
      [['history', 'eth1'], { method: 'history', params: { device: 'net:eth1', limit: 50 } }],
      // Another class's device: the CLI knows only the daemon's answer.
      [['show', 'sda'], { method: 'show', params: { device: 'block:sda' } }],
    ] as const;
    for (const [args, sent] of cases) {
      seen.length = 0;
      const r = await run(...args);
      expect(r.exitCode, args.join(' ')).toBe(0);
      expect(seen, args.join(' ')).toEqual([{ method: 'status' }, sent]);
    }
  }, 30_000);

  it('passes CLASS:NAME as it is, without asking status', async () => {
    const { run, seen } = await fakeDaemon('qualified.sock', [device('net', 'eth0')]);
    for (const ref of ['net:eth0', 'block:data', 'sound:card0', 'net:a/b', 'net:']) {
      seen.length = 0;
      const r = await run('show', ref);
      expect(r.exitCode, ref).toBe(0);
      expect(seen, ref).toEqual([{ method: 'show', params: { device: ref } }]);
    }
  }, 30_000);

  it('exits 1, saying so, when no class has a device of that name, and sends nothing more', async () => {
    const { run, seen } = await fakeDaemon('none.sock', [device('net', 'eth0'), device('block', 'sda')]);
    for (const args of [['show', 'eth7'], ['recover', 'eth01'], ['replay', 'ETH0'], ['inject', 'sdb', 'clear'], ['history', 'eth7']]) {
      seen.length = 0;
      const r = await run(...args);
      const what = args.join(' ');
      expect(r.exitCode, what).toBe(1);
      expect(r.stderr, what).toBe(`shadowctl: shadowd watches no device named ${JSON.stringify(args[1])} (shadowctl status lists them)`);
      expect(r.stdout, what).toBe('');
      expect(seen, what).toEqual([{ method: 'status' }]);
    }
    seen.length = 0;
    const json = await run('show', 'eth7', '--json');
    expect(json.exitCode).toBe(1);
    // As the daemon's own refusals: the error as JSON on stdout.
    expect(JSON.parse(json.stdout)).toEqual({ code: 'ENODEV', message: 'shadowd watches no device named "eth7" (shadowctl status lists them)' });
    expect(seen).toEqual([{ method: 'status' }]);
  }, 30_000);

  it('exits 1 naming each CLASS:NAME when two classes have a device of that name; either one then works', async () => {
    const { run, seen } = await fakeDaemon('two.sock', [device('net', 'data'), device('net', 'eth0'), device('block', 'data')]);
    for (const args of [['show', 'data'], ['recover', 'data'], ['replay', 'data'], ['inject', 'data', 'clear'], ['history', 'data']]) {
      seen.length = 0;
      const r = await run(...args);
      const what = args.join(' ');
      expect(r.exitCode, what).toBe(1);
      expect(r.stderr, what).toBe('shadowctl: 2 classes have a device named data: name one, as block:data or net:data');
      expect(seen, what).toEqual([{ method: 'status' }]);
    }
    for (const ref of ['net:data', 'block:data']) {
      seen.length = 0;
      expect((await run('show', ref)).exitCode, ref).toBe(0);
      expect(seen).toEqual([{ method: 'show', params: { device: ref } }]);
    }
    // The other names stay unambiguous.
    seen.length = 0;
    expect((await run('show', 'eth0')).exitCode).toBe(0);
    expect(seen).toEqual([{ method: 'status' }, { method: 'show', params: { device: 'net:eth0' } }]);
  }, 30_000);

  it('exits 3 when there is no daemon to resolve a bare name with', async () => {
    const r = await execa('node', [SHADOWCTL, '--socket', join(dir, 'absent.sock'), 'show', 'eth0'], { reject: false });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toBe(`shadowctl: shadowd is not running (nothing listens on ${join(dir, 'absent.sock')})`);
  });
});
