// The disk rows of the paper's evaluation, in the guest, on one mounted
// filesystem: a compiler (`make -j2` building the kernel's gpio and iio
// tools), an encoder (sox encoding a WAV to FLAC) and a database (SQLite
// committing transactions in a loop), run at the same time so that a fault
// can be injected while all three are under way.
//
//   const reference = await computeDiskAppsReference(inputs, '/dev/shm/ref');  // once, off the disk
//   const apps = await startDiskApps({ dir, runDir, inputs, reference });
//   await apps.underWay();            // every app has made some progress
//   ... inject the fault ...
//   const outcome = await apps.finish();
//   const failures = await verifyDiskApps({ outcome, inputs, reference, device });  // [] = the apps worked
//
// The proof verifyDiskApps checks: every app exited 0; the build's outputs
// and the encoded file are byte-identical to the reference (made on a tmpfs
// in the same guest before the run); every transaction SQLite acknowledged is
// in the database and `PRAGMA integrity_check` is ok, all read back from the
// disk after a remount, not from the page cache; the filesystem was never
// read-only; `umount` then `e2fsck -fn` is clean; and the kernel logged no
// I/O or filesystem error since the apps started.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import Database from 'better-sqlite3';
import { execa } from 'execa';
import { repoPath } from '../../rig/repo-path.js';
import { payloadFor } from './db-writer.js';
import { diskTrouble, kmsgMark, kmsgSince } from './disks.js';
import { sha256File, type DiskAppsInputs } from './inputs.js';

export type AppName = 'compiler' | 'encoder' | 'database';
export const APP_NAMES: readonly AppName[] = ['compiler', 'encoder', 'database'];

/** Fixed so that nothing in the outputs depends on the clock (gcc honours it for __DATE__/__TIME__). */
const SOURCE_DATE_EPOCH = '1700000000';
/** The tree's absolute path as the debug info (-g) names it, wherever the tree is. */
const BUILD_PREFIX = '/src';
const DB_WRITER = repoPath('dist/test/vm/guest/disk-apps/db-writer.js');

// ---- reference ----

export interface CompilerReference {
  /** Every file the build made, relative to the tree, to its sha256. */
  outputs: Record<string, string>;
  /** Lines make printed (one per step: CC, LD, LINK, DESCEND). */
  steps: number;
  ms: number;
}

export interface EncoderReference {
  sha256: string;
  bytes: number;
  ms: number;
}

export interface DiskAppsReference {
  compiler: CompilerReference;
  encoder: EncoderReference;
}

function compilerArgv(tree: string, inputs: DiskAppsInputs): { file: string; args: string[]; env: NodeJS.ProcessEnv } {
  return {
    file: 'make',
    args: ['-C', join(tree, 'tools'), '-j2', ...inputs.makeTargets],
    // In the environment, not on make's command line: the tools' Makefiles
    // append their own flags to CFLAGS (`override CFLAGS +=`), and a
    // command-line CFLAGS would replace them in the sub-makes.
    env: { ...process.env, CFLAGS: `-ffile-prefix-map=${tree}=${BUILD_PREFIX}`, SOURCE_DATE_EPOCH, LC_ALL: 'C' },
  };
}

function encoderArgv(wav: string, flac: string): { file: string; args: string[] } {
  return { file: 'sox', args: ['-D', wav, '-C', '8', flac] };
}

/** Regular files under dir, relative, skipping nothing. */
function listFiles(dir: string, base = dir, out: string[] = []): string[] {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) listFiles(p, base, out);
    else if (e.isFile()) out.push(relative(base, p));
  }
  return out;
}

/**
 * The build's outputs: files that are not in the source, except tools/build's
 * `.NAME.o.cmd` records, which name the tree's absolute path by design
 * (dependency bookkeeping for the next make, not a product of the build).
 */
function isOutput(rel: string, sources: ReadonlySet<string>): boolean {
  if (sources.has(rel)) return false;
  const name = rel.split('/').at(-1)!;
  return !(name.startsWith('.') && name.endsWith('.cmd'));
}

function sourceSet(inputs: DiskAppsInputs): Set<string> {
  return new Set(listFiles(inputs.sourceDir));
}

function hashOutputs(tree: string, sources: ReadonlySet<string>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const rel of listFiles(tree).sort()) if (isOutput(rel, sources)) out[rel] = sha256File(join(tree, rel));
  return out;
}

/**
 * Runs the compiler and the encoder once on `workDir` (a tmpfs, not the disk
 * under test) and records their outputs' hashes: what every later run must
 * reproduce byte for byte.
 */
export async function computeDiskAppsReference(inputs: DiskAppsInputs, workDir: string): Promise<DiskAppsReference> {
  mkdirSync(workDir, { recursive: true });
  const tree = join(workDir, 'tree');
  await execa('cp', ['-a', inputs.sourceDir, tree]);
  const wav = join(workDir, 'in.wav');
  await execa('cp', [inputs.wav, wav]);
  const flac = join(workDir, 'out.flac');
  const build = async (): Promise<CompilerReference> => {
    const t = performance.now();
    const { file, args, env } = compilerArgv(tree, inputs);
    const r = await execa(file, args, { env, all: true, reject: false });
    if (r.exitCode !== 0) throw new Error(`reference build failed (${r.exitCode}):\n${r.all.slice(-3000)}`);
    return { outputs: hashOutputs(tree, sourceSet(inputs)), steps: r.stdout.split('\n').filter((l) => l.trim()).length, ms: Math.round(performance.now() - t) };
  };
  const encode = async (): Promise<EncoderReference> => {
    const t = performance.now();
    const { file, args } = encoderArgv(wav, flac);
    await execa(file, args);
    return { sha256: sha256File(flac), bytes: statSync(flac).size, ms: Math.round(performance.now() - t) };
  };
  const [compiler, encoder] = await Promise.all([build(), encode()]);
  if (Object.keys(compiler.outputs).length === 0) throw new Error('the reference build made no outputs');
  return { compiler, encoder };
}

// ---- a running app ----

export interface AppOutcome {
  app: AppName;
  argv: string[];
  /** null when it did not exit (killed at the deadline, or never started). */
  exitCode: number | null;
  signal: string | null;
  /** Could not be started, or hung past the deadline. */
  error: string | null;
  stderrTail: string;
  /** From the app's start, ms. */
  durationMs: number;
  /** Pieces of progress seen: make's output lines, growth of the encoded file, commits. */
  progress: number;
  /** Longest time between two pieces of progress (the start and the exit count as progress). */
  longestStallMs: number;
  /** When that stall began, ms after the apps started. */
  longestStallFromMs: number;
}

class RunningApp {
  readonly startedAt = performance.now();
  lastProgressAt = this.startedAt;
  progress = 0;
  longestStallMs = 0;
  longestStallFromMs = 0;
  exitCode: number | null = null;
  signal: string | null = null;
  error: string | null = null;
  endedAt: number | null = null;
  stderr = '';
  readonly exited: Promise<void>;

  constructor(
    readonly app: AppName,
    readonly argv: string[],
    readonly child: ChildProcess,
    private readonly t0: number,
  ) {
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (d: string) => (this.stderr = (this.stderr + d).slice(-4000)));
    this.exited = new Promise((resolve) => {
      child.on('error', (e) => {
        this.error = e.message;
        this.endedAt ??= performance.now();
        resolve();
      });
      child.on('close', (code, signal) => {
        this.exitCode = code;
        this.signal = signal;
        this.step(performance.now());
        this.endedAt = performance.now();
        resolve();
      });
    });
  }

  step(now = performance.now(), count = 1): void {
    const gap = now - this.lastProgressAt;
    if (gap > this.longestStallMs) {
      this.longestStallMs = gap;
      this.longestStallFromMs = this.lastProgressAt - this.t0;
    }
    this.lastProgressAt = now;
    this.progress += count;
  }

  get running(): boolean {
    return this.endedAt === null;
  }

  outcome(): AppOutcome {
    // A still-running app's current stall counts too.
    if (this.running) this.step(performance.now(), 0);
    return {
      app: this.app,
      argv: this.argv,
      exitCode: this.exitCode,
      signal: this.signal,
      error: this.error,
      stderrTail: this.stderr.trim().split('\n').slice(-8).join('\n'),
      durationMs: Math.round((this.endedAt ?? performance.now()) - this.startedAt),
      progress: this.progress,
      longestStallMs: Math.round(this.longestStallMs),
      longestStallFromMs: Math.round(this.longestStallFromMs),
    };
  }
}

function lines(stream: NodeJS.ReadableStream | null, onLine: (line: string) => void): void {
  if (!stream) return;
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (d: string) => {
    const parts = (rest + d).split('\n');
    rest = parts.pop()!;
    for (const l of parts) onLine(l);
  });
}

// ---- the three apps on a filesystem ----

export interface DiskAppsOptions {
  /** Mount point of the filesystem under test (its own mount, nothing else on it matters). */
  dir: string;
  /** Somewhere off the disk under test, kept after the run: the ack log goes there. */
  runDir: string;
  inputs: DiskAppsInputs;
  reference: DiskAppsReference;
  /** The database keeps committing at least this long, and until the other two have exited. Default 0. */
  minDatabaseMs?: number;
  /** finish() gives up on apps still running after this long from the start. Default 240 s. */
  deadlineMs?: number;
  log?: (line: string) => void;
}

export interface DiskAppsOutcome {
  dir: string;
  /** Copying the tree and the WAV onto the disk, before the apps started. */
  setupMs: number;
  apps: Record<AppName, AppOutcome>;
  /** ms after the start at which the filesystem was first seen mounted read-only, or null. */
  readOnlyAtMs: number | null;
  /** The ack log (one acknowledged id a line) and how many ids it holds. */
  ackLog: string;
  acked: number;
  /** Kernel log sequence number before the apps started. */
  kmsgMark: number;
  /** Paths on the disk. */
  paths: { tree: string; flac: string; db: string };
}

export interface DiskAppsProgress {
  compilerSteps: number;
  encodedBytes: number;
  commits: number;
  elapsedMs: number;
}

export interface UnderWayOptions {
  /** Fraction of the reference's make steps done. Default 0.3. */
  compilerFraction?: number;
  /**
   * Fraction of the reference's FLAC written. Default 0.1: the encoder runs
   * about 2.5 times as long as the build, and at 0.25 a build on a fast disk
   * (virtio_blk, 17 s) could end before the encoder got there (CI: 37 of 36
   * make steps done at 24.6 % of the FLAC), so no fault found all three
   * running.
   */
  encoderFraction?: number;
  /** Default 20. */
  commits?: number;
  /** Default 120 s. */
  timeoutMs?: number;
}

export interface DiskAppsHandle {
  readonly paths: DiskAppsOutcome['paths'];
  progress(): DiskAppsProgress;
  /** Names of the apps that have exited. */
  exited(): AppName[];
  /** Resolves once every app has made the given progress; rejects if one exits or the time runs out first. */
  underWay(opts?: UnderWayOptions): Promise<DiskAppsProgress>;
  /** Waits for the compiler and the encoder, then stops the database, and reports. */
  finish(): Promise<DiskAppsOutcome>;
}

/** Mount options (per-mount and superblock) of the mount at dir, or null when nothing is mounted there. */
export function mountOptions(dir: string): string[] | null {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] !== dir) continue;
    const sep = f.indexOf('-');
    return [...(f[5] ?? '').split(','), ...(f[sep + 3] ?? '').split(',')];
  }
  return null;
}

/** The kernel's name (sda, dm-0: what ext4 calls it in its messages) of the block device mounted at dir, or null. */
export function mountedDeviceName(dir: string): string | null {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[4] !== dir || !f[2]) continue;
    try {
      return basename(realpathSync(`/sys/dev/block/${f[2]}`));
    } catch {
      return null;
    }
  }
  return null;
}

export async function startDiskApps(opts: DiskAppsOptions): Promise<DiskAppsHandle> {
  const log = opts.log ?? (() => undefined);
  const { dir, inputs, reference } = opts;
  if (!mountOptions(dir)) throw new Error(`nothing is mounted at ${dir}`);
  const setupStart = performance.now();
  const tree = join(dir, 'compiler', 'tree');
  const flac = join(dir, 'encoder', 'out.flac');
  const wav = join(dir, 'encoder', 'in.wav');
  const db = join(dir, 'database', 'apps.db');
  for (const d of ['compiler', 'encoder', 'database']) mkdirSync(join(dir, d), { recursive: true });
  await execa('cp', ['-a', inputs.sourceDir, tree]);
  await execa('cp', [inputs.wav, wav]);
  if (sha256File(wav) !== inputs.wavSha256) throw new Error(`${wav} differs from ${inputs.wav} right after the copy`);
  await execa('sync', ['-f', dir]);
  const setupMs = Math.round(performance.now() - setupStart);
  mkdirSync(opts.runDir, { recursive: true });
  const ackLog = join(opts.runDir, 'acks.log');
  const mark = kmsgMark();
  const t0 = performance.now();
  log(`setup ${setupMs} ms; starting the compiler, the encoder and the database on ${dir}`);

  const c = compilerArgv(tree, inputs);
  const compiler = new RunningApp('compiler', [c.file, ...c.args], spawn(c.file, c.args, { env: c.env, stdio: ['ignore', 'pipe', 'pipe'] }), t0);
  lines(compiler.child.stdout, (l) => {
    if (l.trim()) compiler.step();
  });
  const e = encoderArgv(wav, flac);
  const encoder = new RunningApp('encoder', [e.file, ...e.args], spawn(e.file, e.args, { stdio: ['ignore', 'ignore', 'pipe'] }), t0);
  const dbArgs = [DB_WRITER, '--db', db, '--acks', ackLog];
  const database = new RunningApp('database', [process.execPath, ...dbArgs], spawn(process.execPath, dbArgs, { stdio: ['pipe', 'pipe', 'pipe'] }), t0);
  let commits = 0;
  lines(database.child.stdout, (l) => {
    if (/^\d+$/.test(l)) {
      commits++;
      database.step();
    }
  });
  const apps: Record<AppName, RunningApp> = { compiler, encoder, database };

  // Encoder progress: the FLAC growing. The read-only watch: the mount's options.
  // Read-only: the superblock's flag in mountinfo, or ext4's own message.
  // Debian's 6.1 (backported from 6.7) only shuts the filesystem down on an
  // error and prints "Remounting filesystem read-only" without setting
  // SB_RDONLY, so the message is the one sign of it.
  const fsDevice = mountedDeviceName(dir);
  const roMessage = new RegExp(`EXT4-fs \\(${fsDevice ?? '\\S+'}\\): Remounting filesystem read-only`);
  const readOnlyNow = (): boolean => !!mountOptions(dir)?.includes('ro') || kmsgSince(mark).some((r) => roMessage.test(r.text));
  let ticks = 0;
  let encodedBytes = 0;
  let readOnlyAtMs: number | null = null;
  const poll = setInterval(() => {
    try {
      const size = statSync(flac).size;
      if (size > encodedBytes) {
        encodedBytes = size;
        encoder.step();
      }
    } catch {
      // not created yet, or the filesystem is gone
    }
    if (readOnlyAtMs === null && ++ticks % 5 === 0 && readOnlyNow()) {
      readOnlyAtMs = Math.round(performance.now() - t0);
      log(`${dir} went read-only (${readOnlyAtMs} ms)`);
    }
  }, 100);

  const progress = (): DiskAppsProgress => ({
    compilerSteps: compiler.progress,
    encodedBytes,
    commits,
    elapsedMs: Math.round(performance.now() - t0),
  });
  const exited = (): AppName[] => APP_NAMES.filter((n) => !apps[n].running);

  return {
    paths: { tree, flac, db },
    progress,
    exited,
    async underWay(u: UnderWayOptions = {}): Promise<DiskAppsProgress> {
      const wantSteps = Math.ceil((u.compilerFraction ?? 0.3) * reference.compiler.steps);
      const wantBytes = Math.ceil((u.encoderFraction ?? 0.1) * reference.encoder.bytes);
      const wantCommits = u.commits ?? 20;
      const until = performance.now() + (u.timeoutMs ?? 120_000);
      for (;;) {
        const p = progress();
        if (p.compilerSteps >= wantSteps && p.encodedBytes >= wantBytes && p.commits >= wantCommits) return p;
        const gone = exited();
        if (gone.length > 0 || performance.now() > until) {
          throw new Error(
            `the apps did not get under way (${gone.length ? `${gone.join(', ')} exited` : 'timed out'}): ` +
              `${p.compilerSteps}/${wantSteps} make steps, ${p.encodedBytes}/${wantBytes} FLAC bytes, ${p.commits}/${wantCommits} commits; ` +
              APP_NAMES.map((n) => `${n}: ${apps[n].stderr.trim().split('\n').slice(-3).join(' | ')}`).join('; '),
          );
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async finish(): Promise<DiskAppsOutcome> {
      const deadline = t0 + (opts.deadlineMs ?? 240_000);
      const waitFor = async (a: RunningApp, until: number): Promise<void> => {
        const left = until - performance.now();
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([a.exited, new Promise<void>((r) => (timer = setTimeout(r, Math.max(0, left))))]);
        clearTimeout(timer);
        if (a.running) {
          a.error = `still running ${Math.round(performance.now() - a.startedAt)} ms after its start: killed`;
          a.child.kill('SIGKILL');
          // A process in uninterruptible sleep may not die: give it 5 s.
          await Promise.race([a.exited, new Promise((r) => setTimeout(r, 5000))]);
        }
      };
      await Promise.all([waitFor(compiler, deadline), waitFor(encoder, deadline)]);
      const minDb = t0 + (opts.minDatabaseMs ?? 0);
      while (database.running && performance.now() < minDb) await new Promise((r) => setTimeout(r, 100));
      if (database.running) database.child.stdin?.end('stop\n');
      await waitFor(database, Math.max(deadline, performance.now() + 30_000));
      clearInterval(poll);
      if (readOnlyAtMs === null && readOnlyNow()) readOnlyAtMs = Math.round(performance.now() - t0);
      const acked = existsSync(ackLog) ? readFileSync(ackLog, 'utf8').split('\n').filter((l) => l).length : 0;
      return {
        dir,
        setupMs,
        apps: { compiler: compiler.outcome(), encoder: encoder.outcome(), database: database.outcome() },
        readOnlyAtMs,
        ackLog,
        acked,
        kmsgMark: mark,
        paths: { tree, flac, db },
      };
    },
  };
}

// ---- the proof ----

export type FailureArea = AppName | 'filesystem' | 'kernel';

export interface DiskAppsFailure {
  area: FailureArea;
  what: string;
}

export interface VerifyOptions {
  outcome: DiskAppsOutcome;
  inputs: DiskAppsInputs;
  reference: DiskAppsReference;
  /** The block device to check with e2fsck -fn after the unmount (after a restart: the disk's current node). */
  device: string;
  /**
   * Kernel names of devices below the filesystem's (the paths of a
   * dm-multipath map: sda, sdb) whose failed requests are expected while
   * their driver restarts: dm requeues them and the filesystem never sees
   * them. Their "error, dev X, sector" lines do not count; every filesystem
   * message and every error on any other device still does. Default: none.
   */
  requestErrorsExpectedOn?: string[];
}

function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

function checkExit(a: AppOutcome, fail: (area: FailureArea, what: string) => void): void {
  if (a.exitCode === 0 && !a.error) return;
  const how = a.error ?? (a.exitCode !== null ? `exited ${a.exitCode}` : `killed by ${a.signal}`);
  fail(a.app, `${how}${a.stderrTail ? `: ${a.stderrTail.replace(/\n/g, ' | ')}` : ''}`);
}

function checkCompiler(opts: VerifyOptions, fail: (area: FailureArea, what: string) => void): void {
  const ref = opts.reference.compiler.outputs;
  let got: Record<string, string>;
  try {
    got = hashOutputs(opts.outcome.paths.tree, sourceSet(opts.inputs));
  } catch (e) {
    fail('compiler', `cannot read the build tree: ${errorText(e)}`);
    return;
  }
  const missing = Object.keys(ref).filter((f) => !(f in got));
  const differ = Object.keys(ref).filter((f) => f in got && got[f] !== ref[f]);
  const extra = Object.keys(got).filter((f) => !(f in ref));
  if (missing.length) fail('compiler', `${missing.length} of ${Object.keys(ref).length} outputs missing: ${missing.slice(0, 6).join(', ')}`);
  if (differ.length) fail('compiler', `${differ.length} outputs differ from the reference: ${differ.slice(0, 6).join(', ')}`);
  if (extra.length) fail('compiler', `${extra.length} files the reference build did not make: ${extra.slice(0, 6).join(', ')}`);
}

function checkEncoder(opts: VerifyOptions, fail: (area: FailureArea, what: string) => void): void {
  try {
    const size = statSync(opts.outcome.paths.flac).size;
    const sha = sha256File(opts.outcome.paths.flac);
    if (sha !== opts.reference.encoder.sha256) {
      fail('encoder', `the FLAC differs from the reference (${size} bytes against ${opts.reference.encoder.bytes})`);
    }
  } catch (e) {
    fail('encoder', `cannot read the FLAC: ${errorText(e)}`);
  }
}

function checkDatabase(opts: VerifyOptions, fail: (area: FailureArea, what: string) => void): void {
  const acked = existsSync(opts.outcome.ackLog)
    ? readFileSync(opts.outcome.ackLog, 'utf8').split('\n').filter((l) => l).map(Number)
    : [];
  if (acked.length === 0) fail('database', 'no transaction was acknowledged');
  let db: Database.Database | null = null;
  try {
    db = new Database(opts.outcome.paths.db, { fileMustExist: true });
    const integrity = (db.pragma('integrity_check') as { integrity_check: string }[]).map((r) => r.integrity_check);
    if (integrity.join() !== 'ok') fail('database', `integrity_check: ${integrity.slice(0, 5).join('; ')}`);
    const get = db.prepare<[number], { v: Buffer }>('SELECT v FROM t WHERE id = ?');
    const missing: number[] = [];
    const wrong: number[] = [];
    for (const id of acked) {
      const row = get.get(id);
      if (!row) missing.push(id);
      else if (!row.v.equals(payloadFor(id))) wrong.push(id);
    }
    if (missing.length) fail('database', `${missing.length} of ${acked.length} acknowledged transactions missing (ids ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', ...' : ''})`);
    if (wrong.length) fail('database', `${wrong.length} acknowledged rows with a wrong payload (ids ${wrong.slice(0, 5).join(', ')})`);
  } catch (e) {
    fail('database', `cannot check the database: ${errorText(e)}`);
  } finally {
    try {
      db?.close();
    } catch {
      // already reported
    }
  }
}

/**
 * Checks the proof; returns every failure found (empty: the apps worked).
 * The contents are checked on the disk, not in the page cache: the
 * filesystem is unmounted, checked with e2fsck -fn, mounted again from
 * `device` (replaying its journal, as the next boot would) and only then
 * are the outputs and the database read. It is left unmounted.
 */
export async function verifyDiskApps(opts: VerifyOptions): Promise<DiskAppsFailure[]> {
  const failures: DiskAppsFailure[] = [];
  const fail = (area: FailureArea, what: string): void => {
    failures.push({ area, what });
  };
  const { outcome } = opts;
  for (const n of APP_NAMES) checkExit(outcome.apps[n], fail);
  if (outcome.readOnlyAtMs !== null) fail('filesystem', `went read-only ${outcome.readOnlyAtMs} ms after the apps started`);
  const u = await execa('umount', [outcome.dir], { reject: false, all: true, timeout: 60_000 });
  if (u.exitCode !== 0) {
    fail('filesystem', `umount: ${u.all.trim() || `exit ${u.exitCode}`}`);
    await execa('umount', ['-l', outcome.dir], { reject: false });
  }
  const fsck = await execa('e2fsck', ['-fn', opts.device], { reject: false, all: true, timeout: 120_000 });
  if (fsck.exitCode !== 0) {
    const out = fsck.all.trim().split('\n');
    fail('filesystem', `e2fsck -fn ${opts.device} exited ${fsck.exitCode}: ${out.slice(0, 4).concat(out.length > 4 ? ['...'] : []).join(' | ')}`);
  }
  const m = await execa('mount', ['-t', 'ext4', opts.device, outcome.dir], { reject: false, all: true, timeout: 60_000 });
  if (m.exitCode !== 0) {
    fail('filesystem', `mounting ${opts.device} again to check the contents: ${m.all.trim() || `exit ${m.exitCode}`}`);
    for (const app of APP_NAMES) fail(app, 'outputs not checked: the filesystem cannot be mounted');
  } else {
    checkCompiler(opts, fail);
    checkEncoder(opts, fail);
    checkDatabase(opts, fail);
    const u2 = await execa('umount', [outcome.dir], { reject: false, all: true, timeout: 60_000 });
    if (u2.exitCode !== 0) fail('filesystem', `umount after the check: ${u2.all.trim()}`);
  }
  const expected = new Set(opts.requestErrorsExpectedOn ?? []);
  const trouble = diskTrouble(kmsgSince(outcome.kmsgMark).filter((r) => !expected.has(/ error, dev (\S+), sector /.exec(r.text)?.[1] ?? '')));
  if (trouble.length) fail('kernel', `${trouble.length} I/O or filesystem errors logged, first: ${trouble.slice(0, 3).join(' | ')}`);
  return failures;
}
