// The built daemon (dist/daemon/main.js) as systemd runs it, without a kernel
// to speak of: a fake service manager (a notify socket socat listens on), a
// fake bpftrace that reports its probes attached and some lost events and
// then idles, and a configuration with Protect=no for the whole class, so the
// daemon only reads this machine's interfaces and never acts on them. What is
// checked: a configuration with errors stops the start; STATUS= lines, then
// READY=1 once the socket answers; watchdog pings; SIGHUP and shadowctl
// reload (an erroneous file keeps the running configuration); the metrics
// textfile; STOPPING=1 and shadowd_up 0 at SIGTERM; bpftrace started before
// the daemon loads the rest of itself and opens its state, and killed when
// the start fails after that.
import { execa, type ResultPromise } from 'execa';
import Database from 'better-sqlite3';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { request } from '../../../daemon/control/control-client.js';
import type { ReloadResult, StatusResult } from '../../../daemon/control/control-protocol.js';
import { ShadowStore } from '../../../daemon/core/shadow-store.js';
import { startDatagramSink, type DatagramSink } from '../fake/datagram-sink.js';
import { processRunning } from '../fake/process-running.js';

const MAIN = new URL('../../../dist/daemon/main.js', import.meta.url).pathname;
const isRoot = process.getuid?.() === 0;


/** The environment of a foreground run: no journal, no service manager (whatever runs the tests). */
function plainEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of ['JOURNAL_STREAM', 'INVOCATION_ID', 'NOTIFY_SOCKET', 'WATCHDOG_USEC', 'WATCHDOG_PID', 'CONFIGURATION_DIRECTORY', 'RUNTIME_DIRECTORY', 'STATE_DIRECTORY']) {
    delete env[k];
  }
  return env;
}

describe('shadowd start-up with a bad configuration', () => {
  it('logs each error with file, line and key at err, and exits 1 before touching its state', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shadowd-badconf-'));
    try {
      const conf = join(dir, 'shadowd.conf');
      writeFileSync(conf, '[Daemon]\nLogLevel=loud\n\n[Device eth1]\nprotect=no\n');
      const r = await execa('node', [MAIN, '--config', conf, '--state-dir', join(dir, 'state'), '--runtime-dir', join(dir, 'run'), '--taps', 'bpftrace', '--bpftrace', '/bin/false'], {
        reject: false,
        env: plainEnv(),
        extendEnv: false,
      });
      expect(r.exitCode).toBe(1);
      expect(r.stderr.split('\n')).toEqual([
        `<3>${conf}:2: LogLevel: must be one of err, warning, notice, info, debug, got "loud" SHADOWD_CONFIG=${conf} SHADOWD_CONFIG_LINE=2 SHADOWD_CONFIG_KEY=LogLevel`,
        `<3>${conf}:5: protect: unknown key in [Device eth1] (did you mean Protect?) SHADOWD_CONFIG=${conf} SHADOWD_CONFIG_LINE=5 SHADOWD_CONFIG_KEY=protect`,
        `<3>not starting: ${conf} has 2 errors (docs/configuration.md describes the format)`,
      ]);
      expect(existsSync(join(dir, 'state'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses an unknown --taps engine with exit 2, naming the choices, before anything else', async () => {
    const r = await execa('node', [MAIN, '--taps', 'ebpf'], { reject: false, env: plainEnv(), extendEnv: false });
    expect(r.exitCode).toBe(2);
    expect(r.stderr).toBe('shadowd: --taps must be one of auto, bpftrace, libbpf, not "ebpf"');
  });

  it('--log-level overrides LogLevel=, and a missing file means the defaults', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shadowd-noconf-'));
    try {
      // bpftrace that cannot run: the start fails after the configuration was read.
      const r = await execa(
        'node',
        [MAIN, '--config', join(dir, 'absent.conf'), '--log-level', 'debug', '--state-dir', join(dir, 'state'), '--runtime-dir', join(dir, 'run'), '--taps', 'bpftrace', '--bpftrace', join(dir, 'no-bpftrace')],
        { reject: false, env: plainEnv(), extendEnv: false },
      );
      expect(r.exitCode).toBe(1);
      expect(r.stderr).toContain(`<6>no configuration file at ${join(dir, 'absent.conf')}: every device of every class (net, block, sound) is protected with the default policy`);
      expect(r.stderr).toMatch(/^<3>cannot attach the taps: /m);
      // The run directory it created: 0750.
      expect(statSync(join(dir, 'run')).mode & 0o777).toBe(0o750);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('shadowd under a service manager', () => {
  let dir: string;
  let sink: DatagramSink;
  let daemon: ResultPromise;
  let conf: string;
  let socket: string;
  const texts = (): string[] => sink.datagrams().map((b) => b.toString());
  /** Waits until a datagram after the first `from` matches. */
  async function waitForDatagram(test: (t: string) => boolean, from = 0, timeoutMs = 60_000, mayExit = false): Promise<string> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      const hit = texts().slice(from).find(test);
      if (hit !== undefined) return hit;
      if (!mayExit && daemon.exitCode !== null && daemon.exitCode !== undefined) throw new Error(`shadowd exited: ${texts().join(' | ')}`);
      if (Date.now() > end) throw new Error(`no such datagram; got: ${texts().join(' | ')}`);
      await sleep(50);
    }
  }
  const config = (metrics: string, extra = '') =>
    `[Daemon]\nMetricsTextfile=${join(dir, metrics)}\nMetricsIntervalSec=1\n${extra}\n# Nothing on this machine is ever recovered.\n[Class net]\nProtect=no\n`;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shadowd-service-'));
    sink = await startDatagramSink(join(dir, 'notify.sock'));
    const fake = join(dir, 'bpftrace');
    writeFileSync(
      fake,
      `#!/bin/sh
echo '{"type": "attached_probes", "data": {"probes": 48}}'
sleep 0.2
echo '{"type": "lost_events", "data": {"events": 7}}'
exec sleep 3600
`,
    );
    chmodSync(fake, 0o755);
    conf = join(dir, 'shadowd.conf');
    writeFileSync(conf, config('a.prom'));
    socket = join(dir, 'run', 'control.sock');
    const args = [MAIN, '--config', conf, '--state-dir', join(dir, 'state'), '--runtime-dir', join(dir, 'run'), '--taps', 'bpftrace', '--bpftrace', fake];
    // WATCHDOG_PID must be the daemon's own pid: the shell execs node, keeping its pid.
    daemon = execa('sh', ['-c', 'WATCHDOG_PID=$$ exec node "$@"', 'sh', ...args], {
      reject: false,
      env: { ...plainEnv(), NOTIFY_SOCKET: join(dir, 'notify.sock'), WATCHDOG_USEC: '400000' },
      extendEnv: false,
    });
  }, 30_000);
  afterAll(async () => {
    if (daemon.exitCode === null || daemon.exitCode === undefined) daemon.kill('SIGKILL');
    await daemon;
    sink.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('says what it does in STATUS=, and READY=1 only once the taps are attached and the socket answers', async () => {
    const ready = await waitForDatagram((t) => t.startsWith('READY=1'));
    // One fake bpftrace for every class (their programs merged into one), saying 48 probes.
    expect(ready).toMatch(/^READY=1\nSTATUS=watching \d+ devices? \(net, block, sound\); 48 taps attached$/);
    const all = texts();
    const before = all.slice(0, all.indexOf(ready));
    // Each class reads its devices as soon as its own taps are live, beside the others: in any order.
    expect(before[0]).toBe('STATUS=attaching the taps of net, block, sound (bpftrace compiles them)');
    expect(before.at(-1)).toBe('STATUS=loading the recovery history');
    const reading = before.slice(1, -1);
    expect(reading.map((t) => t.replace(/^STATUS=48 taps attached; /, ''))).toEqual(
      expect.arrayContaining(['reading the network devices', 'reading the disk devices', 'reading the sound devices']),
    );
    expect(reading).toHaveLength(3);
    const status = await request<StatusResult>(socket, 'status');
    expect(status).toMatchObject({ ok: true, result: { taps: { state: 'attached', probes: 48 } } });
    // The runtime directory and the socket: root's (and the shadowd group's, when there is one), nobody else's.
    expect(statSync(join(dir, 'run')).mode & 0o007).toBe(0);
    expect(statSync(socket).mode & 0o007).toBe(0);
  }, 90_000);

  it('feeds the watchdog from its event loop', async () => {
    const from = texts().length;
    await waitForDatagram((t) => t === 'WATCHDOG=1', from, 5000);
    await sleep(600);
    expect(texts().slice(from).filter((t) => t === 'WATCHDOG=1').length).toBeGreaterThanOrEqual(2);
  });

  it('writes the metrics textfile, with the lost tap events', async () => {
    const path = join(dir, 'a.prom');
    // The fake bpftrace (one for every class) lost 7.
    for (let i = 0; i < 100 && !(existsSync(path) && readFileSync(path, 'utf8').includes('lost_total 7')); i++) await sleep(100);
    const text = readFileSync(path, 'utf8');
    expect(text).toContain('\nshadowd_up 1\n');
    expect(text).toContain('\nshadowd_tap_events_lost_total 7\n');
    expect(statSync(path).mode & 0o777).toBe(0o644);
  });

  it('SIGHUP with errors in the file: RELOADING=1, then READY=1 saying it kept the running configuration', async () => {
    writeFileSync(conf, config('b.prom', 'LogLevel=loud\nBogus=1'));
    const from = texts().length;
    daemon.kill('SIGHUP');
    const reloading = await waitForDatagram((t) => t.startsWith('RELOADING=1'), from, 10_000);
    expect(reloading).toMatch(/^RELOADING=1\nMONOTONIC_USEC=\d+\nSTATUS=reloading /);
    const ready = await waitForDatagram((t) => t.startsWith('READY=1'), from, 10_000);
    expect(ready).toMatch(new RegExp(`; ${conf.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} refused \\(2 errors\\), previous configuration in force$`));
    // Still writing the old file.
    await sleep(1500);
    expect(existsSync(join(dir, 'b.prom'))).toBe(false);
    expect(Date.now() - statSync(join(dir, 'a.prom')).mtimeMs).toBeLessThan(3000);
  });

  it('shadowctl reload: refused with the errors, then applied (root only)', async () => {
    const refused = await request<ReloadResult>(socket, 'reload');
    if (!isRoot) {
      expect(refused).toMatchObject({ ok: false, error: { code: 'EPERM' } });
      return;
    }
    if (!refused.ok) throw new Error(refused.error.message);
    expect(refused.result.ok).toBe(false);
    expect(refused.result.errors.map((e) => [e.line, e.key])).toEqual([
      [4, 'LogLevel'],
      [5, 'Bogus'],
    ]);
    writeFileSync(conf, config('b.prom', 'LogLevel=debug'));
    const applied = await request<ReloadResult>(socket, 'reload');
    if (!applied.ok) throw new Error(applied.error.message);
    expect(applied.result).toEqual({ ok: true, file: conf, errors: [], changes: ['LogLevel=debug', `MetricsTextfile=${join(dir, 'b.prom')}`] });
    // The new file replaces the old one.
    for (let i = 0; i < 50 && !existsSync(join(dir, 'b.prom')); i++) await sleep(100);
    expect(existsSync(join(dir, 'b.prom'))).toBe(true);
    expect(existsSync(join(dir, 'a.prom'))).toBe(false);
  });

  it('SIGTERM: STOPPING=1, shadowd_up 0 in the textfile, exit 0', async () => {
    const from = texts().length;
    daemon.kill('SIGTERM');
    const r = await daemon;
    expect(r.exitCode).toBe(0);
    expect(await waitForDatagram((t) => t.startsWith('STOPPING=1'), from, 5000, true)).toBe('STOPPING=1\nSTATUS=stopping on SIGTERM');
    const path = isRoot ? join(dir, 'b.prom') : join(dir, 'a.prom');
    expect(readFileSync(path, 'utf8')).toContain('\nshadowd_up 0\n');
  }, 30_000);
});

describe('shadowd with a state file it cannot use', () => {
  /** Starts the daemon in the foreground on `stateDir` with a fake bpftrace, waits for its status, stops it. */
  async function runOnce(dir: string, stateDir: string): Promise<{ status: StatusResult; stderr: string; exitCode: number | undefined }> {
    const fake = join(dir, 'bpftrace');
    writeFileSync(fake, `#!/bin/sh\necho '{"type": "attached_probes", "data": {"probes": 48}}'\nexec sleep 3600\n`);
    chmodSync(fake, 0o755);
    const conf = join(dir, 'shadowd.conf');
    writeFileSync(conf, '[Class net]\nProtect=no\n');
    const socket = join(dir, 'run', 'control.sock');
    const daemon = execa('node', [MAIN, '--config', conf, '--state-dir', stateDir, '--runtime-dir', join(dir, 'run'), '--taps', 'bpftrace', '--bpftrace', fake], {
      reject: false,
      env: plainEnv(),
      extendEnv: false,
    });
    try {
      const end = Date.now() + 60_000;
      for (;;) {
        if (daemon.exitCode !== null && daemon.exitCode !== undefined) throw new Error(`shadowd exited ${daemon.exitCode}: ${String((await daemon).stderr)}`);
        if (existsSync(socket)) {
          const reply = await request<StatusResult>(socket, 'status').catch(() => null);
          if (reply?.ok) {
            daemon.kill('SIGTERM');
            const r = await daemon;
            return { status: reply.result, stderr: String(r.stderr), exitCode: r.exitCode };
          }
        }
        if (Date.now() > end) throw new Error('shadowd did not answer within 60 s');
        await sleep(100);
      }
    } finally {
      if (daemon.exitCode === null || daemon.exitCode === undefined) daemon.kill('SIGKILL');
      await daemon;
    }
  }

  it('moves a corrupt state file aside, says so at err with both paths, and runs on a new one', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shadowd-corrupt-'));
    try {
      const stateDir = join(dir, 'state');
      mkdirSync(stateDir);
      const garbage = Buffer.alloc(32 * 1024, 0x5a);
      writeFileSync(join(stateDir, 'state.db'), garbage);
      const { status, stderr, exitCode } = await runOnce(dir, stateDir);
      expect(exitCode).toBe(0);
      const aside = status.persistence?.movedAside ?? '';
      expect(aside).toMatch(new RegExp(`^${join(stateDir, 'state.db')}\\.corrupt-\\d{8}T\\d{6}Z$`));
      expect(status.persistence).toMatchObject({ state: 'ok', path: join(stateDir, 'state.db') });
      expect(readFileSync(aside).equals(garbage)).toBe(true);
      expect(stderr).toContain(`<3>${join(stateDir, 'state.db')} is corrupt (file is not a database): moved it aside to ${aside}`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it('refuses a newer shadowd\'s state file, having started bpftrace first, and leaves no bpftrace nor program behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shadowd-newer-'));
    try {
      const stateDir = join(dir, 'state');
      mkdirSync(stateDir);
      const path = join(stateDir, 'state.db');
      new ShadowStore(path).close();
      const db = new Database(path);
      db.prepare("UPDATE meta SET v = '99' WHERE k = 'schema'").run();
      db.close();
      // A bpftrace that compiles for as long as it is let: its pid says whether it outlives the start.
      const fake = join(dir, 'bpftrace');
      writeFileSync(fake, `#!/bin/sh\necho $$ > ${join(dir, 'pid')}\nexec sleep 3600\n`);
      chmodSync(fake, 0o755);
      const r = await execa('node', [MAIN, '--config', join(dir, 'absent.conf'), '--log-level', 'debug', '--state-dir', stateDir, '--runtime-dir', join(dir, 'run'), '--taps', 'bpftrace', '--bpftrace', fake], {
        reject: false,
        env: plainEnv(),
        extendEnv: false,
      });
      expect(r.exitCode).toBe(1);
      const lines = r.stderr.split('\n');
      const at = (re: RegExp): number => lines.findIndex((l) => re.test(l));
      const refused = at(new RegExp(`^<3>cannot open the state in ${stateDir}: ${path}: state schema 99 is not the supported \\d+ \\(a newer shadowd wrote it`));
      expect(refused).toBeGreaterThan(-1);
      // bpftrace first, then the rest of the daemon's modules and the state, while it compiles.
      expect(at(/^<7>starting bpftrace /)).toBeGreaterThan(-1);
      expect(at(/^<7>starting bpftrace /)).toBeLessThan(at(/^<7>start-up: service modules loaded /));
      expect(at(/^<7>start-up: service modules loaded /)).toBeLessThan(refused);
      const pid = Number(readFileSync(join(dir, 'pid'), 'utf8'));
      for (let i = 0; i < 50 && processRunning(pid); i++) await sleep(100);
      expect(processRunning(pid)).toBe(false);
      expect(readdirSync(join(dir, 'run'))).toEqual([]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);

  it('runs without persistence, degraded, when the state file cannot be opened', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'shadowd-nostate-'));
    try {
      // A regular file where the state directory should be: neither it nor the file in it can be made.
      const stateDir = join(dir, 'state');
      writeFileSync(stateDir, '');
      const { status, stderr, exitCode } = await runOnce(dir, stateDir);
      expect(exitCode).toBe(0);
      expect(status.persistence).toMatchObject({ state: 'degraded', path: join(stateDir, 'state.db'), nextRetryAt: null });
      expect(stderr).toMatch(/^<3>cannot open .*state\.db: .*; running without persistence/m);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 90_000);
});
