// The configuration the daemon runs with: read at start (errors stop it),
// reloaded on SIGHUP or shadowctl reload (errors keep the running one), and
// what each part of the daemon takes from it: the recovery policy in ms, the
// stall threshold, Protect=, fault injection and the log level. Real files,
// parsed by daemon/config.ts.
import Database from 'better-sqlite3';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
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

function config(text: string): Config {
  const r = parseConfig(text, '/x.conf');
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
    expect(recoveryPolicy({ protect: true, maxRecoveries: 5, recoveryWindowSec: 3600, backoffSec: 1, backoffMaxSec: 30, stallThresholdMs: 2000 })).toEqual({
      maxRecoveries: 5,
      windowMs: 3_600_000,
      backoffMs: 1000,
      backoffMaxMs: 30_000,
    });
    // The file's defaults and the manager's are the same policy.
    const c = defaultConfig();
    const running = startWith(c);
    expect(running.recoveryPolicy('eth0', 'e1000')).toEqual(DEFAULT_RECOVERY_POLICY);
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
});

/** A RunningConfig on a fixed Config (no file). */
function startWith(c: Config, over: Partial<RunningConfigOptions> = {}): RunningConfig {
  const r = RunningConfig.start({ path: '/x.conf', logger: recordingLogger(), load: () => ({ ok: true, config: c }), ...over });
  if (!r.ok) throw new Error('refused');
  return r.running;
}

describe('RunningConfig', () => {
  let path: string;
  let logger: ReturnType<typeof recordingLogger>;
  let applied: Config[];
  const start = (over: Partial<RunningConfigOptions> = {}) => RunningConfig.start({ path, logger, onApply: (c) => applied.push(c), ...over });
  beforeEach(() => {
    path = join(dir, `shadowd-${Math.random().toString(36).slice(2)}.conf`);
    logger = recordingLogger();
    applied = [];
  });

  it('starts on the defaults when the file is missing', () => {
    const r = start();
    if (!r.ok) throw new Error('refused');
    expect(r.running.config.file).toBeNull();
    expect(r.running.protects('eth0', 'e1000')).toBe(true);
    expect(r.running.faultInjection()).toBe(false);
    expect(logger.level).toBe('info');
    expect(applied).toHaveLength(1);
    expect(logger.lines.at(-1)?.message).toBe(`no configuration file at ${path}: every network device is protected with the default policy`);
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
    expect(running.recoveryPolicy('eth0', 'e1000').maxRecoveries).toBe(5);

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
    expect(running.protects('eth1', 'e1000')).toBe(true);
    expect(running.recoveryPolicy('eth0', 'e1000').maxRecoveries).toBe(5);
    expect(running.stallThresholdMs('eth0', 'e1000')).toBe(3000);
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
    expect(running.protects('eth1', 'e1000')).toBe(false);
    expect(running.protects('eth0', 'e1000')).toBe(true);
    expect(running.recoveryPolicy('eth0', 'e1000')).toEqual({ maxRecoveries: 1, windowMs: 600_000, backoffMs: 10_000, backoffMaxMs: 60_000 });
    expect(running.recoveryPolicy('eth0', 'pcnet32')).toEqual(DEFAULT_RECOVERY_POLICY);
    expect(running.stallThresholdMs('eth0', 'e1000')).toBe(1000);
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
    expect(r.running.protects('eth1', null)).toBe(true);
    expect(logger.lines.at(-1)?.message).toMatch(/is absent: the built-in defaults apply/);
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
      lookup: () => ({ driver: 'e1000', ifindex: 2 }),
      policy: (device, driver) => running.recoveryPolicy(device, driver),
    });
    const fail = (): Promise<string> => {
      const out = m.report({ device: 'eth0', kind: 'tx-stall', detail: 'stuck', detectedAt: Date.now() });
      if (out.action === 'ignored') throw new Error(out.reason);
      return out.done.then((rec) => rec.result);
    };
    expect(await fail()).toBe('recovered');
    expect(await fail()).toBe('gave-up');
    // Lifted by hand, and the limit raised by a reload: the next failure is recovered again.
    writeFileSync(path, '[Device eth0]\nMaxRecoveries=3\nBackoffSec=0\n');
    expect(running.reload().ok).toBe(true);
    await m.recover('eth0');
    expect(await fail()).toBe('recovered');
    expect(commands.map((c) => c.split(' ')[0])).toEqual(['restart', 'park', 'restart', 'restart']);
    history.close();
  });
});

describe('protectFilter', () => {
  const failure = (over: Partial<FailureReport> = {}): FailureReport => ({ device: 'eth1', kind: 'oops', detail: 'BUG in e1000_clean', detectedAt: 0, ...over });

  it('passes failures of protected devices on, and logs those of Protect=no devices without recovering them', () => {
    const passed: FailureReport[] = [];
    const logger = recordingLogger();
    let now = 1_000_000;
    const unprotected = new Set(['eth1']);
    const report = protectFilter((f) => passed.push(f), {
      protects: (device, driver) => !unprotected.has(device) && driver !== 'pcnet32',
      driverOf: (device) => (device === 'eth2' ? 'pcnet32' : 'e1000'),
      logger,
      now: () => now,
    });
    report(failure({ device: 'eth0' }));
    report(failure());
    // By driver: the report's own, else the device's.
    report(failure({ device: 'eth2', kind: 'tx-stall', detail: 'queue stuck' }));
    report(failure({ device: 'eth0', driver: 'pcnet32' }));
    expect(passed.map((f) => f.device)).toEqual(['eth0']);
    expect(logger.lines.map((l) => `${l.priority} ${l.message}`)).toEqual([
      'warning eth1: driver e1000 failed (oops): BUG in e1000_clean; not recovered: the device has Protect=no',
      'warning eth2: driver pcnet32 failed (tx-stall): queue stuck; not recovered: the device has Protect=no',
      'warning eth0: driver pcnet32 failed (oops): BUG in e1000_clean; not recovered: the device has Protect=no',
    ]);
    expect(logger.lines[0]?.fields).toEqual({ MESSAGE_ID: MESSAGE_FAILURE_DETECTED, SHADOWD_DEVICE: 'eth1', SHADOWD_DRIVER: 'e1000', SHADOWD_CLASS: 'net', SHADOWD_FAILURE: 'oops' });

    // A device that keeps failing is logged at warning once a minute, at debug between.
    logger.lines.length = 0;
    now += 1000;
    report(failure());
    now += 60_000;
    report(failure());
    expect(logger.lines.map((l) => l.priority)).toEqual(['debug', 'warning']);

    // Protected again (a reload): its failures go on to recovery.
    unprotected.delete('eth1');
    report(failure());
    expect(passed.map((f) => f.device)).toEqual(['eth0', 'eth1']);
  });

  it('leaves a malformed report to the manager, which refuses and logs it', () => {
    const passed: unknown[] = [];
    const report = protectFilter((f) => passed.push(f), { protects: () => false, driverOf: () => null, logger: recordingLogger() });
    const bad = { device: 42 } as unknown as FailureReport;
    report(bad);
    expect(passed).toEqual([bad]);
  });
});
