// The configuration the daemon runs with: read at start (errors stop it),
// reloaded on SIGHUP or shadowctl reload (errors keep the running one), and
// what each part of the daemon takes from it: the recovery policy in ms, a
// class's settings (the network class's stall threshold, a test class's
// own), Protect=, fault injection and the log level. Real files, parsed by
// daemon/service/config.ts against the classes given.
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { NET_DECLARATION } from '../../../daemon/classes/net/net-declaration.js';
import { ClassSet } from '../../../daemon/core/class-set.js';
import type { ClassDeclaration } from '../../../daemon/core/device-class.js';
import type { DeviceRef } from '../../../daemon/core/device-ref.js';
import { integerSetting } from '../../../daemon/core/setting-values.js';
import { DEFAULT_CONFIG_PATH, defaultConfig, parseConfig, type Config } from '../../../daemon/service/config.js';
import type { FailureReport } from '../../../daemon/core/failure-report.js';
import type { HelperClient, HelperReply } from '../../../daemon/core/helper-client.js';
import type { LogFields, Priority } from '../../../daemon/service/log.js';
import { MESSAGE_FAILURE_DETECTED } from '../../../daemon/service/message-ids.js';
import { RecoveryHistory } from '../../../daemon/core/recovery-history.js';
import { DEFAULT_POLICY as DEFAULT_RECOVERY_POLICY, RecoveryManager } from '../../../daemon/core/recovery-manager.js';
import { defaultConfigPath, describeChanges, protectFilter, recoveryPolicy, RunningConfig, type RunningConfigOptions } from '../../../daemon/service/running-config.js';

interface Line {
  priority: Priority;
  message: string;
  fields: LogFields;
}

/** A logger that records lines and the level it was set to, as serviceLogger does. */
function recordingLogger(): RunningConfigOptions['logger'] & { lines: Line[]; level: Priority | null } {
  const self = {
    lines: [] as Line[],
    level: null as Priority | null,
    log(priority: Priority, message: string, fields: LogFields = {}) {
      self.lines.push({ priority, message, fields });
    },
    setMinimum(p: Priority) {
      self.level = p;
    },
  };
  return self;
}

/** A second class, to show the running configuration serves any: sound cards with a setting of their own. */
const TEST_SOUND: ClassDeclaration = {
  ...NET_DECLARATION,
  id: 'sound',
  title: 'sound',
  noun: 'sound card',
  names: { valid: (name: string) => /^card\d{1,2}$/.test(name), describe: 'a card name (card0 to card99)' },
  faults: [],
  restartSteps: [],
  restartFields: [],
  failureKinds: [],
  holderKinds: [],
  settings: [{ key: 'PeriodTimeoutMs', parse: integerSetting(10, 10_000), default: 500, doc: 'a period not completed this long counts as a failure' }],
  attrs: [],
  kernelLogRules: [],
};
const CLASSES = new ClassSet([NET_DECLARATION, TEST_SOUND]);

const net = (name: string): DeviceRef => ({ cls: 'net', name });
const sound = (name: string): DeviceRef => ({ cls: 'sound', name });

function config(text: string): Config {
  const r = parseConfig(text, '/x.conf', CLASSES);
  if (!r.ok) throw new Error('bad test config');
  return r.config;
}

const dir = mkdtempSync(join(tmpdir(), 'shadowd-running-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('defaultConfigPath', () => {
  it("is systemd's ConfigurationDirectory= when set, else /etc/shadowd/shadowd.conf", () => {
    expect(defaultConfigPath({})).toBe(DEFAULT_CONFIG_PATH);
    expect(defaultConfigPath({ CONFIGURATION_DIRECTORY: '/etc/shadowd' })).toBe('/etc/shadowd/shadowd.conf');
    expect(defaultConfigPath({ CONFIGURATION_DIRECTORY: '/etc/shadowd/:/etc/other' })).toBe('/etc/shadowd/shadowd.conf');
    expect(defaultConfigPath({ CONFIGURATION_DIRECTORY: '' })).toBe(DEFAULT_CONFIG_PATH);
  });
});

describe('recoveryPolicy', () => {
  it("converts the file's seconds to the manager's ms; the defaults agree", () => {
    expect(
      recoveryPolicy({ protect: true, maxRecoveries: 5, recoveryWindowSec: 3600, backoffSec: 1, backoffMaxSec: 30, giveUpRetrySec: 60, giveUpRetryMaxSec: 600, recoverWarnings: false, lostIrqMs: 1000 }),
    ).toEqual({
      maxRecoveries: 5,
      windowMs: 3_600_000,
      backoffMs: 1000,
      backoffMaxMs: 30_000,
      retryMs: 60_000,
      retryMaxMs: 600_000,
    });
    // The file's defaults and the manager's are the same policy.
    const c = defaultConfig();
    const running = startWith(c);
    expect(running.recoveryPolicy(net('eth0'), 'e1000')).toEqual(DEFAULT_RECOVERY_POLICY);
    expect(running.recoveryPolicy(sound('card0'), null)).toEqual(DEFAULT_RECOVERY_POLICY);
  });
});

describe('describeChanges', () => {
  it('names each changed key as the file would set it, section by section', () => {
    const a = config('[Daemon]\nLogLevel=debug\n[Driver e1000]\nMaxRecoveries=5\n[Device eth1]\nProtect=no\n');
    const b = config('[Daemon]\nAllowFaultInjection=yes\nMetricsTextfile=/m/s.prom\n[Driver e1000]\nMaxRecoveries=5\nStallThresholdMs=3000\n[Device eth2]\nProtect=no\n');
    expect(describeChanges(a, b)).toEqual([
      'LogLevel=info',
      'AllowFaultInjection=yes',
      'MetricsTextfile=/m/s.prom',
      '[Driver e1000] StallThresholdMs=3000',
      '[Device eth1] Protect= (unset)',
      '[Device eth2] Protect=no',
    ]);
    expect(describeChanges(a, a)).toEqual([]);
  });

  it("covers the classes' settings, and prints device sections as written", () => {
    const a = config('[Class sound]\nPeriodTimeoutMs=40\n[Device eth0]\nProtect=no\n');
    const b = config('[Class sound]\nPeriodTimeoutMs=80\n[Class net]\nStallThresholdMs=2000\n[Device eth0]\nProtect=no\n[Device net:eth0]\nProtect=yes\n[Device sound:card1]\nPeriodTimeoutMs=20\n');
    expect(describeChanges(a, b)).toEqual([
      '[Class net] StallThresholdMs=2000',
      '[Class sound] PeriodTimeoutMs=80',
      '[Device net:eth0] Protect=yes',
      '[Device sound:card1] PeriodTimeoutMs=20',
    ]);
    expect(describeChanges(b, a)).toEqual([
      '[Class net] StallThresholdMs= (unset)',
      '[Class sound] PeriodTimeoutMs=40',
      '[Device net:eth0] Protect= (unset)',
      '[Device sound:card1] PeriodTimeoutMs= (unset)',
    ]);
  });
});

/** A RunningConfig on a fixed Config (no file). */
function startWith(c: Config, over: Partial<RunningConfigOptions> = {}): RunningConfig {
  const r = RunningConfig.start({ path: '/x.conf', classes: CLASSES, logger: recordingLogger(), load: () => ({ ok: true, config: c }), ...over });
  if (!r.ok) throw new Error('refused');
  return r.running;
}

describe('RunningConfig', () => {
  let path: string;
  let logger: ReturnType<typeof recordingLogger>;
  let applied: Config[];
  const start = (over: Partial<RunningConfigOptions> = {}) => RunningConfig.start({ path, classes: CLASSES, logger, onApply: (c) => applied.push(c), ...over });
  beforeEach(() => {
    path = join(dir, `shadowd-${Math.random().toString(36).slice(2)}.conf`);
    logger = recordingLogger();
    applied = [];
  });

  it('starts on the defaults when the file is missing', () => {
    const r = start();
    if (!r.ok) throw new Error('refused');
    expect(r.running.config.file).toBeNull();
    expect(r.running.protects(net('eth0'), 'e1000')).toBe(true);
    expect(r.running.protects(sound('card0'), null)).toBe(true);
    expect(r.running.setting(net('eth0'), 'e1000', 'StallThresholdMs')).toBe(1000);
    expect(r.running.setting(sound('card0'), null, 'PeriodTimeoutMs')).toBe(500);
    expect(r.running.faultInjection()).toBe(false);
    expect(logger.level).toBe('info');
    expect(applied).toHaveLength(1);
    expect(logger.lines.at(-1)?.message).toBe(`no configuration file at ${path}: every device of every class (net, sound) is protected with the default policy`);
  });

  it('refuses to start on a file with errors, logging each as file:line: key: message at err', () => {
    writeFileSync(path, '[Daemon]\nLogLevel=loud\n[Class net]\nMaxRecoveries=lots\nprotect=no\n');
    const r = start();
    expect(r.ok).toBe(false);
    expect(applied).toEqual([]);
    expect(logger.lines.map((l) => `${l.priority} ${l.message}`)).toEqual([
      `err ${path}:2: LogLevel: must be one of err, warning, notice, info, debug, got "loud"`,
      `err ${path}:4: MaxRecoveries: must be an integer from 1 to 100, got "lots"`,
      `err ${path}:5: protect: unknown key in [Class net] (did you mean Protect?)`,
    ]);
    expect(logger.lines[1]?.fields).toMatchObject({ SHADOWD_CONFIG: path, SHADOWD_CONFIG_LINE: 4, SHADOWD_CONFIG_KEY: 'MaxRecoveries' });
  });

  it('applies LogLevel= unless --log-level was given; --allow-faults or AllowFaultInjection=yes allows injection', () => {
    writeFileSync(path, '[Daemon]\nLogLevel=debug\n');
    const a = start();
    if (!a.ok) throw new Error('refused');
    expect(logger.level).toBe('debug');
    expect(a.running.faultInjection()).toBe(false);
    const b = start({ logLevel: 'warning', allowFaults: true });
    if (!b.ok) throw new Error('refused');
    expect(logger.level).toBe('warning');
    expect(b.running.faultInjection()).toBe(true);
    writeFileSync(path, '[Daemon]\nAllowFaultInjection=yes\n');
    const c = start();
    if (!c.ok) throw new Error('refused');
    expect(c.running.faultInjection()).toBe(true);
  });

  it('reload: a file with errors changes nothing and says so; a good one is applied whole', () => {
    writeFileSync(path, '[Daemon]\nLogLevel=notice\n[Driver e1000]\nMaxRecoveries=5\nStallThresholdMs=3000\n');
    const r = start();
    if (!r.ok) throw new Error('refused');
    const running = r.running;
    const before = running.config;
    expect(running.recoveryPolicy(net('eth0'), 'e1000').maxRecoveries).toBe(5);

    // An error anywhere: nothing of the file is taken, not even its good lines.
    writeFileSync(path, '[Daemon]\nLogLevel=debug\nAllowFaultInjection=yes\n[Driver e1000]\nMaxRecoveries=0\n[Device eth1]\nProtect=no\n');
    logger.lines.length = 0;
    const refused = running.reload();
    expect(refused).toEqual({
      ok: false,
      file: path,
      errors: [{ file: path, line: 5, key: 'MaxRecoveries', message: 'must be an integer from 1 to 100, got "0"' }],
      changes: [],
    });
    expect(running.config).toBe(before);
    expect(logger.level).toBe('notice');
    expect(running.faultInjection()).toBe(false);
    expect(running.protects(net('eth1'), 'e1000')).toBe(true);
    expect(running.recoveryPolicy(net('eth0'), 'e1000').maxRecoveries).toBe(5);
    expect(running.setting(net('eth0'), 'e1000', 'StallThresholdMs')).toBe(3000);
    expect(applied).toHaveLength(1);
    expect(logger.lines.map((l) => `${l.priority} ${l.message}`)).toEqual([
      `err ${path}:5: MaxRecoveries: must be an integer from 1 to 100, got "0"`,
      `warning configuration reload refused: ${path} has 1 error; the running configuration stays in force`,
    ]);

    // Fixed: everything applies.
    writeFileSync(path, '[Daemon]\nLogLevel=debug\nAllowFaultInjection=yes\n[Driver e1000]\nMaxRecoveries=1\nBackoffSec=10\n[Device eth1]\nProtect=no\n');
    const ok = running.reload();
    expect(ok).toEqual({
      ok: true,
      file: path,
      errors: [],
      changes: ['LogLevel=debug', 'AllowFaultInjection=yes', '[Driver e1000] MaxRecoveries=1', '[Driver e1000] BackoffSec=10', '[Driver e1000] StallThresholdMs= (unset)', '[Device eth1] Protect=no'],
    });
    expect(logger.level).toBe('debug');
    expect(running.faultInjection()).toBe(true);
    expect(running.protects(net('eth1'), 'e1000')).toBe(false);
    expect(running.protects(net('eth0'), 'e1000')).toBe(true);
    expect(running.recoveryPolicy(net('eth0'), 'e1000')).toEqual({ maxRecoveries: 1, windowMs: 600_000, backoffMs: 10_000, backoffMaxMs: 60_000, retryMs: 900_000, retryMaxMs: 21_600_000 });
    expect(running.recoveryPolicy(net('eth0'), 'pcnet32')).toEqual(DEFAULT_RECOVERY_POLICY);
    expect(running.setting(net('eth0'), 'e1000', 'StallThresholdMs')).toBe(1000);
    expect(applied).toHaveLength(2);
    expect(logger.lines.at(-1)).toMatchObject({ priority: 'notice', message: expect.stringMatching(/^configuration reloaded \(read .*\): LogLevel=debug, AllowFaultInjection=yes, /) as unknown });

    // --log-level holds over a reload.
    const pinned = start({ logLevel: 'err' });
    if (!pinned.ok) throw new Error('refused');
    pinned.running.reload();
    expect(logger.level).toBe('err');
  });

  it('reload: a file that was removed means the defaults again', () => {
    writeFileSync(path, '[Device eth1]\nProtect=no\n');
    const r = start();
    if (!r.ok) throw new Error('refused');
    rmSync(path);
    expect(r.running.reload()).toMatchObject({ ok: true, changes: ['[Device eth1] Protect= (unset)'] });
    expect(r.running.protects(net('eth1'), null)).toBe(true);
    expect(logger.lines.at(-1)?.message).toMatch(/is absent: the built-in defaults apply/);
  });

  it('gives a class setting from the device, driver or class section, else its default, and refuses an undeclared key', () => {
    writeFileSync(path, '[Class sound]\nPeriodTimeoutMs=40\n[Driver snd-hda-intel]\nPeriodTimeoutMs=60\n[Device sound:card2]\nPeriodTimeoutMs=20\n[Device net:eth0]\nStallThresholdMs=250\n');
    const r = start();
    if (!r.ok) throw new Error('refused');
    expect(r.running.setting(sound('card2'), 'snd_hda_intel', 'PeriodTimeoutMs')).toBe(20);
    expect(r.running.setting(sound('card1'), 'snd_hda_intel', 'PeriodTimeoutMs')).toBe(60);
    expect(r.running.setting(sound('card1'), null, 'PeriodTimeoutMs')).toBe(40);
    expect(r.running.setting(net('eth0'), null, 'StallThresholdMs')).toBe(250);
    expect(r.running.setting(net('eth1'), null, 'StallThresholdMs')).toBe(1000);
    expect(() => r.running.setting(sound('card1'), null, 'StallThresholdMs')).toThrow('class sound declares no setting "StallThresholdMs"');
  });

  it("refuses another class's setting in a [Class] section, naming its class", () => {
    writeFileSync(path, '[Class sound]\nStallThresholdMs=2000\n');
    expect(start().ok).toBe(false);
    expect(logger.lines.map((l) => l.message)).toEqual([`${path}:2: StallThresholdMs: is a setting of class net, not sound`]);
  });

  it("drives the recovery manager's policy, and a reload changes it for the next recovery", async () => {
    writeFileSync(path, '[Device eth0]\nMaxRecoveries=1\nBackoffSec=0\n');
    const r = start();
    if (!r.ok) throw new Error('refused');
    const running = r.running;
    const commands: string[] = [];
    const helper: HelperClient = {
      path: '/dev/fake',
      request(command: string): Promise<HelperReply> {
        commands.push(command);
        const [verb, dev, id] = command.split(' ');
        if (verb === 'park') return Promise.resolve({ ok: true, payload: `parked ${dev} id=${id}` });
        return Promise.resolve({
          ok: true,
          payload: `restarted ${dev} id=${id} ifindex=2 stop_ms=1 release_ms=1 probe_ms=1 replay_ms=1 open_ms=1 total_ms=5 steps=mtu:ok`,
        });
      },
      version: () => Promise.resolve({ proto: 3, version: 'test', kernel: 'test', faults: true, classes: ['net'] }),
      close: () => Promise.resolve(),
    };
    const history = new RecoveryHistory(new Database(':memory:'));
    const m = new RecoveryManager({
      history,
      logger,
      helper: () => Promise.resolve(helper),
      classes: new Map([['net', { decl: NET_DECLARATION, lookup: (name: string) => ({ name, driver: 'e1000', bus: '0000:00:03.0' }) }]]),
      policy: (ref, driver) => running.recoveryPolicy(ref, driver),
    });
    const fail = (): Promise<string> => {
      const out = m.report({ cls: 'net', device: 'eth0', kind: 'tx-stall', detail: 'stuck', detectedAt: Date.now() });
      if (out.action === 'ignored') throw new Error(out.reason);
      return out.done.then((rec) => rec.result);
    };
    expect(await fail()).toBe('recovered');
    expect(await fail()).toBe('gave-up');
    // Lifted by hand, and the limit raised by a reload: the next failure is recovered again.
    writeFileSync(path, '[Device eth0]\nMaxRecoveries=3\nBackoffSec=0\n');
    expect(running.reload().ok).toBe(true);
    await m.recover(net('eth0'));
    expect(await fail()).toBe('recovered');
    expect(commands.map((c) => c.split(' ')[0])).toEqual(['restart', 'park', 'restart', 'restart']);
    history.close();
  });
});

describe('protectFilter', () => {
  const failure = (over: Partial<FailureReport> = {}): FailureReport => ({ cls: 'net', device: 'eth1', kind: 'oops', detail: 'BUG in e1000_clean', detectedAt: 0, ...over });

  it('passes failures of protected devices on, and logs those of Protect=no devices without recovering them', () => {
    const passed: FailureReport[] = [];
    const logger = recordingLogger();
    let now = 1_000_000;
    const unprotected = new Set(['net:eth1', 'sound:card0']);
    const report = protectFilter((f) => passed.push(f), {
      protects: (ref, driver) => !unprotected.has(`${ref.cls}:${ref.name}`) && driver !== 'pcnet32',
      recoversWarnings: () => true,
      driverOf: (ref) => (ref.name === 'eth2' ? 'pcnet32' : ref.cls === 'sound' ? 'snd_hda_intel' : 'e1000'),
      logger,
      now: () => now,
    });
    report(failure({ device: 'eth0' }));
    report(failure());
    // By driver: the report's own, else the device's.
    report(failure({ device: 'eth2', kind: 'tx-stall', detail: 'queue stuck' }));
    report(failure({ device: 'eth0', driver: 'pcnet32' }));
    // By class: the same name in another class is another device.
    report(failure({ cls: 'sound', device: 'eth1', detail: 'BUG in azx_interrupt' }));
    report(failure({ cls: 'sound', device: 'card0', detail: 'BUG in azx_interrupt' }));
    expect(passed.map((f) => `${f.cls}:${f.device}`)).toEqual(['net:eth0', 'sound:eth1']);
    expect(logger.lines.map((l) => `${l.priority} ${l.message}`)).toEqual([
      'warning net:eth1: driver e1000 failed (oops): BUG in e1000_clean; not recovered: the device has Protect=no',
      'warning net:eth2: driver pcnet32 failed (tx-stall): queue stuck; not recovered: the device has Protect=no',
      'warning net:eth0: driver pcnet32 failed (oops): BUG in e1000_clean; not recovered: the device has Protect=no',
      'warning sound:card0: driver snd_hda_intel failed (oops): BUG in azx_interrupt; not recovered: the device has Protect=no',
    ]);
    expect(logger.lines[0]?.fields).toEqual({ MESSAGE_ID: MESSAGE_FAILURE_DETECTED, SHADOWD_DEVICE: 'eth1', SHADOWD_DRIVER: 'e1000', SHADOWD_CLASS: 'net', SHADOWD_FAILURE: 'oops' });
    // The class field is the report's.
    expect(logger.lines[3]?.fields).toEqual({ MESSAGE_ID: MESSAGE_FAILURE_DETECTED, SHADOWD_DEVICE: 'card0', SHADOWD_DRIVER: 'snd_hda_intel', SHADOWD_CLASS: 'sound', SHADOWD_FAILURE: 'oops' });

    // A device that keeps failing is logged at warning once a minute, at debug between.
    logger.lines.length = 0;
    now += 1000;
    report(failure());
    now += 60_000;
    report(failure());
    expect(logger.lines.map((l) => l.priority)).toEqual(['debug', 'warning']);

    // Protected again (a reload): its failures go on to recovery.
    unprotected.delete('net:eth1');
    report(failure());
    expect(passed.map((f) => `${f.cls}:${f.device}`)).toEqual(['net:eth0', 'sound:eth1', 'net:eth1']);
  });

  it('recovers a driver WARN only where RecoverWarnings=yes; an oops or a stall always', () => {
    const passed: string[] = [];
    const logger = recordingLogger();
    const report = protectFilter((f) => passed.push(`${f.device} ${f.kind}`), {
      protects: () => true,
      recoversWarnings: (ref) => ref.name === 'eth1',
      driverOf: () => 'e1000',
      logger,
    });
    report(failure({ device: 'eth0', kind: 'warn', detail: 'WARNING: CPU: 0 PID: 1 at e1000_main.c:42' }));
    report(failure({ device: 'eth1', kind: 'warn', detail: 'WARNING: CPU: 0 PID: 1 at e1000_main.c:42' }));
    report(failure({ device: 'eth0', kind: 'oops' }));
    report(failure({ device: 'eth0', kind: 'tx-stall', detail: 'queue stuck' }));
    expect(passed).toEqual(['eth1 warn', 'eth0 oops', 'eth0 tx-stall']);
    expect(logger.lines.map((l) => `${l.priority} ${l.message}`)).toEqual([
      'warning net:eth0: driver e1000 failed (warn): WARNING: CPU: 0 PID: 1 at e1000_main.c:42; not recovered: a driver warning recovers only with RecoverWarnings=yes',
    ]);
  });

  it('leaves a malformed report to the manager, which refuses and logs it', () => {
    const passed: unknown[] = [];
    const report = protectFilter((f) => passed.push(f), { protects: () => false, recoversWarnings: () => false, driverOf: () => null, logger: recordingLogger() });
    const bad = { cls: 'net', device: 42 } as unknown as FailureReport;
    const classless = { device: 'eth0' } as unknown as FailureReport;
    report(bad);
    report(classless);
    expect(passed).toEqual([bad, classless]);
  });
});
