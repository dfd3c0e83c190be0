// Run in the guest booted with systemd as PID 1 (runInGuest({ init: 'systemd' })):
// shadowd as an administrator gets it. Installs it with scripts/install.sh
// (DKMS included), then checks the service:
//   start      `systemctl start shadowd` returns once the daemon sent READY=1;
//   recovery   `shadowctl inject eth0 tx-hang` on a configured e1000 with a
//              ping running: the journal has the recovery's entries with their
//              fields and one recovery id;
//   kill -9    systemd restarts the daemon, and its status and eth0's shadow
//              are what they were;
//   access     a member of the shadowd group may read but not recover; a user
//              outside it may not even read;
//   watchdog   with WatchdogSec=5 (a drop-in) the daemon keeps feeding it; once
//              stopped with SIGSTOP, systemd restarts it;
//   privilege  the running daemon's bounding set lacks CAP_SYS_MODULE, and a
//              process in its cgroup may open /dev/kmsg but no misc device
//              other than the helper's and device-mapper's;
//   upgrade    install.sh again with the service running: a new release tree,
//              the service restarted onto it, the old tree gone, the helper
//              not rebuilt (same sources);
//   uninstall  the installed uninstall.sh removes everything the manifest
//              lists and keeps shadowd.conf; --purge removes that too.
// Prints `SERVICE_RESULT <json>`, also after a failure (with `error`), for
// test/vm/service/service.test.ts.
import { existsSync, mkdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { execa, type Options } from 'execa';
import { MESSAGE_FAILURE_DETECTED, MESSAGE_RECOVERED, MESSAGE_RECOVERY_STARTED } from '../../../daemon/service/message-ids.js';
import { repoPath } from '../rig/repo-path.js';
import { DRIVER_SETTINGS, interfaceOf, settle } from './nic-setup.js';

const UNIT = 'shadowd.service';
const SHADOWCTL = '/usr/bin/shadowctl';
const MANIFEST = '/usr/lib/shadowd/install-manifest';
const LIBDIR = '/usr/lib/shadowd';
const MODULES_LOAD = '/etc/modules-load.d/shadowd.conf';
/** A misc device every kernel has, that the unit must not let the daemon open. */
const OTHER_MISC = '/dev/cpu_dma_latency';
const CAP_SYS_MODULE = 16;
const CONFIG = '/etc/shadowd/shadowd.conf';
const DROP_IN_DIR = '/etc/systemd/system/shadowd.service.d';
const WATCHDOG_SEC = 5;
const NOBODY = '65534';
const CATALOGUED = [MESSAGE_FAILURE_DETECTED, MESSAGE_RECOVERY_STARTED, MESSAGE_RECOVERED];

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const result: Record<string, unknown> = {};
const t0 = Date.now();
const log = (text: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);

async function run(file: string, args: readonly string[], opts: Options = {}) {
  const r = await execa(file, args, { reject: false, all: true, ...opts });
  return { exitCode: r.exitCode ?? null, stdout: String(r.stdout ?? ''), stderr: String(r.stderr ?? ''), all: String(r.all ?? '') };
}
async function must(file: string, args: readonly string[], opts: Options = {}): Promise<string> {
  const r = await run(file, args, opts);
  if (r.exitCode !== 0) throw new Error(`${file} ${args.join(' ')} exited ${String(r.exitCode)}:\n${r.all}`);
  return r.stdout;
}

/** systemctl show's properties of the unit. */
async function show(): Promise<Record<string, string>> {
  const out = await must('systemctl', ['show', UNIT, '-p', 'ActiveState,SubState,StatusText,MainPID,NRestarts,Result,WatchdogUSec']);
  return Object.fromEntries(out.split('\n').filter(Boolean).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

/** Waits until the unit runs with a main process other than `notPid`. */
async function waitRunning(notPid: string, timeoutMs: number): Promise<Record<string, string>> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const s = await show();
    if (s['ActiveState'] === 'active' && s['SubState'] === 'running' && s['MainPID'] !== '0' && s['MainPID'] !== notPid) return s;
    if (Date.now() > until) throw new Error(`${UNIT} not running again within ${timeoutMs / 1000} s: ${JSON.stringify(s)}`);
    await sleep(250);
  }
}

interface Status {
  pendingReads: number;
  devices: Record<string, unknown>[];
}
interface ShowResult {
  device: Record<string, unknown>;
  entries: Record<string, unknown>[];
}
/** status's devices and the device's shadow entries, once the shadow has caught up with the device. */
async function shadowState(dev: string): Promise<{ devices: Record<string, unknown>[]; entries: Record<string, unknown>[] }> {
  for (let i = 0; ; i++) {
    const status = JSON.parse(await must(SHADOWCTL, ['status', '--json'])) as Status;
    if (status.pendingReads === 0) {
      const shown = JSON.parse(await must(SHADOWCTL, ['show', dev, '--json'])) as ShowResult;
      return { devices: status.devices, entries: shown.entries };
    }
    if (i > 100) throw new Error(`the shadow did not catch up: ${JSON.stringify(status)}`);
    await sleep(200);
  }
}

/** The unit's journal, one object per entry. */
async function journal(): Promise<Record<string, unknown>[]> {
  const out = await must('journalctl', ['-u', UNIT, '-o', 'json', '--no-pager']);
  return out.split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
}

async function installPhase(): Promise<void> {
  const started = Date.now();
  const r = await run(repoPath('scripts/install.sh'), []);
  const manifest = existsSync(MANIFEST) ? readFileSync(MANIFEST, 'utf8') : '';
  result['install'] = {
    exitCode: r.exitCode,
    ms: Date.now() - started,
    output: r.all.split('\n').slice(-80).join('\n'),
    enabled: (await run('systemctl', ['is-enabled', UNIT])).stdout.trim(),
    group: (await run('getent', ['group', 'shadowd'])).stdout.trim(),
    dkms: (await run('dkms', ['status', '-m', 'shadow_helper'])).stdout.trim(),
    moduleFile: (await run('modinfo', ['-n', 'shadow_helper'])).stdout.trim(),
    loaded: existsSync('/sys/module/shadow_helper'),
    catalog: (await run('journalctl', ['--list-catalog', ...CATALOGUED])).stdout.trim(),
    manifestRecords: manifest.split('\n').filter((l) => /^(group|dkms|enabled|version) /.test(l)),
    manifestFiles: manifest.split('\n').filter((l) => l.startsWith('file ')).length,
    release: existsSync(LIBDIR) ? readlinkSync(LIBDIR) : null,
    modulesLoad: existsSync(MODULES_LOAD) ? readFileSync(MODULES_LOAD, 'utf8').split('\n').filter((l) => l && !l.startsWith('#')) : [],
    loadedModules: ['shadow_helper', 'snd', 'snd_pcm'].filter((m) => existsSync(`/sys/module/${m}`)),
    legacyManifest: existsSync('/var/lib/shadowd/install-manifest'),
  };
  if (r.exitCode !== 0) throw new Error(`install.sh failed:\n${r.all}`);
  log(`installed in ${Date.now() - started} ms`);
}

async function setUpDevice(): Promise<string> {
  // Fault injection, for this test only: the module from DKMS, reloaded with
  // allow_faults=1, and the daemon's own switch in its configuration.
  await must('modprobe', ['-r', 'shadow_helper']);
  await must('modprobe', ['shadow_helper', 'allow_faults=1']);
  writeFileSync(CONFIG, '[Daemon]\nAllowFaultInjection=yes\n');
  await must('modprobe', ['e1000']);
  const dev = await interfaceOf('e1000');
  for (const argv of DRIVER_SETTINGS['e1000']!(dev)) await must(argv[0]!, argv.slice(1));
  await settle(dev);
  result['device'] = { dev, allowFaults: readFileSync('/sys/module/shadow_helper/parameters/allow_faults', 'utf8').trim() };
  return dev;
}

async function startPhase(): Promise<void> {
  const started = Date.now();
  const r = await run('systemctl', ['start', UNIT]);
  const ms = Date.now() - started;
  const s = await show();
  result['start'] = { exitCode: r.exitCode, output: r.all, ms, show: s };
  if (r.exitCode !== 0) throw new Error(`systemctl start ${UNIT} failed: ${r.all}`);
  log(`started in ${ms} ms: ${JSON.stringify(s)}`);
}

async function recoveryPhase(dev: string): Promise<void> {
  // The packets the hung transmit queue holds back: the stall detector's evidence.
  const ping = execa('ping', ['-n', '-i', '0.05', '10.0.2.2'], { reject: false, buffer: false });
  try {
    await sleep(1000);
    const asked = Date.now();
    const inject = await run(SHADOWCTL, ['inject', dev, 'tx-hang']);
    let recovery: { id: string; result: string; startedAt: number } | undefined;
    if (inject.exitCode === 0) {
      for (let i = 0; i < 600 && !recovery; i++) {
        await sleep(100);
        const h = await run(SHADOWCTL, ['history', dev, '--json']);
        if (h.exitCode !== 0) continue;
        recovery = (JSON.parse(h.stdout) as { recoveries: { id: string; result: string; startedAt: number }[] }).recoveries.find(
          (x) => x.startedAt >= asked - 1000 && x.result !== 'in-progress',
        );
      }
    }
    // journald may take a moment to have the last entries.
    const wanted = CATALOGUED;
    let entries: Record<string, unknown>[] = [];
    for (let i = 0; i < 50; i++) {
      entries = (await journal()).filter((e) => typeof e['MESSAGE_ID'] === 'string' || e['SHADOWD_RECOVERY_ID'] !== undefined);
      if (wanted.every((id) => entries.some((e) => e['MESSAGE_ID'] === id))) break;
      await sleep(200);
    }
    const keep = ['MESSAGE', 'MESSAGE_ID', 'PRIORITY', 'SYSLOG_IDENTIFIER', '_SYSTEMD_UNIT', '_PID'];
    result['recovery'] = {
      inject,
      recovery: recovery ?? null,
      entries: entries.map((e) => Object.fromEntries(Object.entries(e).filter(([k]) => k.startsWith('SHADOWD_') || keep.includes(k)))),
    };
    log(`recovery ${JSON.stringify(recovery)}`);
  } finally {
    ping.kill('SIGTERM');
    await ping;
  }
  await settle(dev);
}

async function kill9Phase(dev: string): Promise<void> {
  const before = await shadowState(dev);
  const s = await show();
  const killedAt = Date.now();
  process.kill(Number(s['MainPID']), 'SIGKILL');
  const after = await waitRunning(s['MainPID']!, 240_000);
  const restartMs = Date.now() - killedAt;
  result['kill9'] = { before: { unit: s, ...before }, after: { unit: after, ...(await shadowState(dev)) }, restartMs };
  log(`restarted after kill -9 in ${restartMs} ms`);
}

async function accessPhase(dev: string): Promise<void> {
  const gid = (await must('getent', ['group', 'shadowd'])).split(':')[2]!;
  const member = ['--reuid', NOBODY, '--regid', NOBODY, '--groups', gid, '--'];
  const outsider = ['--reuid', NOBODY, '--regid', NOBODY, '--clear-groups', '--'];
  const historyBefore = await must(SHADOWCTL, ['history', dev, '--json']);
  result['access'] = {
    memberStatus: await run('setpriv', [...member, SHADOWCTL, 'status']),
    memberStatusJson: await run('setpriv', [...member, SHADOWCTL, 'status', '--json']),
    memberRecover: await run('setpriv', [...member, SHADOWCTL, 'recover', dev]),
    outsiderStatus: await run('setpriv', [...outsider, SHADOWCTL, 'status']),
    historyUnchanged: (await must(SHADOWCTL, ['history', dev, '--json'])) === historyBefore,
  };
}

/** What the unit lets the running daemon do: its bounding set, and the devices its cgroup may open. */
async function privilegePhase(): Promise<void> {
  const pid = (await show())['MainPID']!;
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const capBnd = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '';
  const cgroup = /^0::(\/.*)$/m.exec(readFileSync(`/proc/${pid}/cgroup`, 'utf8'))?.[1] ?? '';
  // A process that joins the service's cgroup gets its device policy; it opens each node and says how that went.
  const probe = `
    const fs = require('node:fs');
    fs.writeFileSync(process.argv[1], String(process.pid));
    const out = {};
    for (const dev of process.argv.slice(2)) {
      try { fs.closeSync(fs.openSync(dev, 'r')); out[dev] = 'ok'; } catch (e) { out[dev] = e.code; }
    }
    console.log(JSON.stringify(out));`;
  const devices = [OTHER_MISC, '/dev/kmsg'];
  const inside = await run(process.execPath, ['-e', probe, `/sys/fs/cgroup${cgroup}/cgroup.procs`, ...devices]);
  const outside = await run(process.execPath, ['-e', probe, '/sys/fs/cgroup/cgroup.procs', ...devices]);
  const parse = (r: { stdout: string; all: string }): Record<string, string> | string => {
    try {
      return JSON.parse(r.stdout) as Record<string, string>;
    } catch {
      return r.all;
    }
  };
  result['privilege'] = {
    capBnd,
    sysModule: capBnd === '' ? null : Number((BigInt(`0x${capBnd}`) >> BigInt(CAP_SYS_MODULE)) & 1n),
    cgroup,
    inside: parse(inside),
    outside: parse(outside),
    deviceAllow: (await run('systemctl', ['show', UNIT, '-p', 'DeviceAllow', '--value'])).stdout.trim(),
  };
  log(`privilege ${JSON.stringify(result['privilege'])}`);
}

/** install.sh again, with the service running. */
async function upgradePhase(): Promise<void> {
  const before = { unit: await show(), release: readlinkSync(LIBDIR) };
  const started = Date.now();
  const r = await run(repoPath('scripts/install.sh'), []);
  const ms = Date.now() - started;
  const after = { unit: await show(), release: readlinkSync(LIBDIR) };
  const oldTree = `/usr/lib/${before.release}`;
  result['upgrade'] = {
    exitCode: r.exitCode,
    ms,
    output: r.all.split('\n').slice(-60).join('\n'),
    before,
    after,
    oldTreeGone: !existsSync(oldTree),
    newMain: existsSync(`${LIBDIR}/dist/daemon/main.js`),
    // The release trees of the files the running daemon maps (its native modules): the new one's only.
    mapped: [...new Set([...readFileSync(`/proc/${after.unit['MainPID']}/maps`, 'utf8').matchAll(/\/usr\/lib\/(shadowd-releases\/[^/\s]+)\//g)].map((m) => m[1]))],
    dkms: (await run('dkms', ['status', '-m', 'shadow_helper'])).stdout.trim(),
  };
  log(`upgraded in ${ms} ms: ${before.release} -> ${after.release}`);
  if (r.exitCode !== 0) throw new Error(`install.sh (upgrade) failed:\n${r.all}`);
}

async function watchdogPhase(): Promise<void> {
  mkdirSync(DROP_IN_DIR, { recursive: true });
  writeFileSync(`${DROP_IN_DIR}/watchdog-test.conf`, `[Service]\nWatchdogSec=${WATCHDOG_SEC}\n`);
  await must('systemctl', ['daemon-reload']);
  // A restart: the daemon learns the interval from $WATCHDOG_USEC at start.
  const restart = await run('systemctl', ['restart', UNIT]);
  if (restart.exitCode !== 0) throw new Error(`systemctl restart ${UNIT}: ${restart.all}`);
  const fed = await show();
  // More than twice WatchdogSec: a daemon that did not feed it would be gone.
  await sleep(WATCHDOG_SEC * 2500);
  const held = await show();
  const stoppedAt = Date.now();
  process.kill(Number(fed['MainPID']), 'SIGSTOP');
  const after = await waitRunning(fed['MainPID']!, 240_000);
  const restartMs = Date.now() - stoppedAt;
  const systemdSaid = (await must('journalctl', ['-u', UNIT, '-o', 'cat', '--no-pager']))
    .split('\n')
    .filter((l) => /watchdog/i.test(l));
  result['watchdog'] = { fed, held, after, restartMs, systemdSaid };
  log(`restarted ${restartMs} ms after SIGSTOP`);
  rmSync(DROP_IN_DIR, { recursive: true, force: true });
  await must('systemctl', ['daemon-reload']);
}

async function uninstallPhase(): Promise<void> {
  const files = readFileSync(MANIFEST, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('file '))
    .map((l) => l.slice(5));
  const started = Date.now();
  const r = await run('/usr/lib/shadowd/uninstall.sh', []);
  const after = {
    exitCode: r.exitCode,
    ms: Date.now() - started,
    output: r.all.split('\n').slice(-60).join('\n'),
    leftover: files.filter((f) => existsSync(f)),
    manifest: existsSync(MANIFEST),
    unit: (await run('systemctl', ['show', UNIT, '-p', 'LoadState', '--value'])).stdout.trim(),
    enabledLink: existsSync(`/etc/systemd/system/multi-user.target.wants/${UNIT}`),
    dkms: (await run('dkms', ['status', '-m', 'shadow_helper'])).stdout.trim(),
    moduleFile: (await run('modinfo', ['-n', 'shadow_helper'])).exitCode,
    loaded: existsSync('/sys/module/shadow_helper'),
    group: (await run('getent', ['group', 'shadowd'])).exitCode,
    catalog: (await run('journalctl', ['--list-catalog', ...CATALOGUED])).stdout.trim(),
    configKept: existsSync(CONFIG),
  };
  const purge = await run(repoPath('scripts/uninstall.sh'), ['--purge']);
  result['uninstall'] = { ...after, purge: { exitCode: purge.exitCode, output: purge.all, config: existsSync(CONFIG), stateDir: existsSync('/var/lib/shadowd') } };
}

try {
  result['pid1'] = readFileSync('/proc/1/comm', 'utf8').trim();
  await installPhase();
  const dev = await setUpDevice();
  await startPhase();
  await recoveryPhase(dev);
  await kill9Phase(dev);
  await privilegePhase();
  await accessPhase(dev);
  await upgradePhase();
  await watchdogPhase();
  await uninstallPhase();
} catch (err) {
  result['error'] = err instanceof Error ? (err.stack ?? err.message) : String(err);
} finally {
  result['totalMs'] = Date.now() - t0;
  result['daemonJournal'] = (await run('journalctl', ['-u', UNIT, '-o', 'short-monotonic', '--no-pager'])).stdout.split('\n').slice(-150).join('\n');
  console.log(`SERVICE_RESULT ${JSON.stringify(result)}`);
}
