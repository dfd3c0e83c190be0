// The guest half of bench/startup.js: starts shadowd ROUNDS times (stopped
// with SIGTERM between starts), then once more right after a `kill -9` of a
// ready daemon, and reports for each start the time to ready (the daemon's
// "ready" line, and `shadowctl status` answering), the daemon's own start-up
// phases (its --log-level debug "start-up:" lines, in ms since its process
// started), each class's bpftrace (spawned, compiled, probes live) and the
// peak resident memory (VmHWM) of the daemon and of its bpftrace processes.
// Each round starts shadowd once per tap engine asked for (--taps=bpftrace,libbpf:
// bpftrace compiling the .bt programs, or taps-loader running the
// precompiled objects), one after the other, so that their figures come
// from the same boot and the same load.
// Prints `STARTUP_RESULT <json>`.
// usage: node dist/test/vm/guest/startup-bench.js ROUNDS [--taps=ENGINE,...] [MODULE ...]
//   ENGINE: bpftrace, libbpf or auto [default: auto]
//   MODULE: driver modules to load first (the guest's devices: e1000, snd-ens1370 ...)
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { DAEMON_NODE_OPTIONS } from '../../../daemon/service/node-options.js';
import { repoPath } from '../rig/repo-path.js';
import { shadowdEnv } from './shadowd-process.js';

const [roundsArg, ...rest] = process.argv.slice(2);
const rounds = Number(roundsArg);
const tapsArg = rest.find((a) => a.startsWith('--taps='));
const modules = rest.filter((a) => a !== tapsArg);
const engines = (tapsArg?.slice('--taps='.length) ?? 'auto').split(',');
if (!(rounds > 0) || engines.some((e) => !['auto', 'bpftrace', 'libbpf'].includes(e))) throw new Error('usage: startup-bench.js ROUNDS [--taps=ENGINE,...] [MODULE ...]');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const READY_TIMEOUT_MS = 180_000;
/** How often the processes are looked at: often enough for the attach timeline, seldom enough not to slow the guest. */
const SAMPLE_MS = 250;

export interface BpftraceFigures {
  cls: string;
  /** ms after the daemon's spawn, as the daemon logged them (its clock, shifted by its node start). */
  spawnedMs: number | null;
  compiledMs: number | null;
  liveMs: number | null;
  probes: number | null;
  /** Attachments (BPF links, perf events) seen over time: [ms after spawn, count]. */
  links: [number, number][];
  /** ms after spawn when its main thread was first seen waiting in epoll_wait (reading its output buffers: done attaching). */
  pollingMs: number | null;
  peakRssKb: number;
  /** Once ready: resident memory, its anonymous and file-backed parts (shared libraries: LLVM, clang), and the proportional share. */
  now?: MemoryNow;
}

export interface MemoryNow {
  rssKb: number;
  anonKb: number;
  fileKb: number;
  pssKb: number;
}

export interface StartFigures {
  kind: 'fresh' | 'after-kill-9';
  /** --taps as given to the daemon. */
  taps: string;
  /** The program that ran the taps, as the daemon's log says: bpftrace or taps-loader. */
  tool: string | null;
  /** ms from spawn to the daemon's "ready" line reaching us. */
  readyMs: number;
  /** ms from spawn to the first `shadowctl status` that answered after ready. */
  statusMs: number;
  /** The daemon's start-up phases: name → ms since its process started. */
  phases: Record<string, number>;
  bpftrace: BpftraceFigures[];
  daemonPeakRssKb: number;
  totalPeakRssKb: number;
  /** The daemon's memory once ready. */
  daemonNow?: MemoryNow;
  /** bpftrace processes of the killed daemon still running when this start began. */
  leftoverBpftrace?: number;
  /** ms after the kill -9 until the last leftover bpftrace exited (null: still running at ready). */
  leftoverGoneMs?: number | null;
  /** ms from SIGTERM to the daemon's exit. */
  stopMs?: number;
  /** The daemon's --log-level debug "stop:" lines: ms since its stop began. */
  stopPhases?: Record<string, number>;
}

/** The process's children, from its threads' children lists (cheap: no scan of /proc, which would load the guest). */
function children(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      try {
        out.push(...readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ').filter(Boolean).map(Number));
      } catch {
        // the thread is gone
      }
    }
  } catch {
    // the process is gone
  }
  return out;
}

function comm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

function peakRssKb(pid: number): number | null {
  try {
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function memoryNow(pid: number): MemoryNow | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    const kb = (text: string, key: string): number => Number(new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN);
    return { rssKb: kb(status, 'VmRSS'), anonKb: kb(status, 'RssAnon'), fileKb: kb(status, 'RssFile'), pssKb: kb(rollup, 'Pss') };
  } catch {
    return undefined;
  }
}

function links(pid: number): number | null {
  try {
    let n = 0;
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const t = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (t === 'anon_inode:bpf_link' || t === 'anon_inode:[perf_event]') n++;
      } catch {
        // closed meanwhile
      }
    }
    return n;
  } catch {
    return null;
  }
}

function wchan(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/wchan`, 'utf8');
  } catch {
    return '';
  }
}

/** The program a bpftrace process runs: its last argument. */
function programOf(pid: number): string {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    return argv.at(-1) ?? '';
  } catch {
    return '';
  }
}

/** A process that runs taps: bpftrace, or taps-loader. */
const isTapTool = (pid: number): boolean => ['bpftrace', 'taps-loader'].includes(comm(pid));

function bpftracePids(): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number)
    .filter(isTapTool);
}

const CLASS_OF_PROGRAM: Record<string, string> = { 'netdev-class.bt': 'net', 'block-class.bt': 'block', 'sound-class.bt': 'sound' };
/** The class of a bpftrace's program; `all` for the daemon's merged program of every class, and for taps-loader's objects. */
const classOfProgram = (program: string): string => CLASS_OF_PROGRAM[program.split('/').at(-1) ?? ''] ?? (/taps-\d+\.bt$|\.bpf\.o$/.test(program) ? 'all' : program);

interface Running {
  child: ChildProcess;
  figures: StartFigures;
  log: string;
  exited: Promise<void>;
}

async function startOnce(work: string, kind: StartFigures['kind'], taps: string, killedAt?: number): Promise<Running> {
  const env = shadowdEnv(work);
  const leftovers = bpftracePids();
  const t0 = Date.now();
  const child = spawn('node', [...DAEMON_NODE_OPTIONS, repoPath('dist/daemon/main.js'), '--state-dir', join(work, 'state'), '--runtime-dir', join(work, 'run'), '--log-level', 'debug', '--taps', taps], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = new Promise<void>((r) => child.on('close', () => r()));
  const figures: StartFigures = { kind, taps, tool: null, readyMs: 0, statusMs: 0, phases: {}, bpftrace: [], daemonPeakRssKb: 0, totalPeakRssKb: 0 };
  if (kind === 'after-kill-9') {
    figures.leftoverBpftrace = leftovers.length;
    figures.leftoverGoneMs = leftovers.length === 0 ? 0 : null;
  }
  const byClass = new Map<string, BpftraceFigures>();
  const bt = (cls: string): BpftraceFigures => {
    let f = byClass.get(cls);
    if (!f) {
      f = { cls, spawnedMs: null, compiledMs: null, liveMs: null, probes: null, links: [], pollingMs: null, peakRssKb: 0 };
      byClass.set(cls, f);
    }
    return f;
  };
  let readyAt: number | null = null;
  let log = '';
  let pending = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    const now = Date.now() - t0;
    log += chunk;
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) {
      const cls = /SHADOWD_CLASS=(\w+)/.exec(line)?.[1] ?? (/SHADOWD_COMPONENT=ingest/.test(line) ? 'all' : undefined);
      let m;
      if ((m = /stop: (.+) at (\d+) ms/.exec(line))) {
        (figures.stopPhases ??= {})[m[1]!] = Number(m[2]);
      } else if ((m = /start-up: (.+) at (\d+) ms/.exec(line))) {
        figures.phases[m[1]!] = Number(m[2]);
        if (m[1] === 'ready') readyAt = now;
      } else if (cls && (m = /starting (bpftrace|taps-loader) .* at (\d+) ms/.exec(line))) {
        figures.tool = m[1]!;
        bt(cls).spawnedMs = Number(m[2]);
      } else if (cls && (m = /(?:bpftrace compiled the taps \((\d+) probes\)|taps-loader attached (\d+) programs) at (\d+) ms/.exec(line))) {
        bt(cls).probes = Number(m[1] ?? m[2]);
        bt(cls).compiledMs = Number(m[3]);
      } else if (cls && (m = /taps attached: (\d+) probes \(at (\d+) ms\)/.exec(line))) bt(cls).liveMs = Number(m[2]);
    }
  });
  const sample = (): void => {
    const now = Date.now() - t0;
    if (child.pid === undefined) return;
    figures.daemonPeakRssKb = Math.max(figures.daemonPeakRssKb, peakRssKb(child.pid) ?? 0);
    for (const pid of children(child.pid)) {
      if (!isTapTool(pid)) continue;
      const f = bt(classOfProgram(programOf(pid)));
      f.peakRssKb = Math.max(f.peakRssKb, peakRssKb(pid) ?? 0);
      const n = links(pid);
      if (n !== null && f.links.at(-1)?.[1] !== n) f.links.push([now, n]);
      if (f.pollingMs === null && /epoll/.test(wchan(pid))) f.pollingMs = now;
    }
    if (figures.leftoverGoneMs === null && killedAt !== undefined && !leftovers.some(isTapTool)) {
      figures.leftoverGoneMs = Date.now() - killedAt;
    }
  };
  while (readyAt === null) {
    sample();
    if (child.exitCode !== null) throw new Error(`shadowd exited during start-up:\n${log}`);
    if (Date.now() - t0 > READY_TIMEOUT_MS) throw new Error(`shadowd not ready after ${READY_TIMEOUT_MS / 1000} s:\n${log}`);
    await sleep(SAMPLE_MS);
  }
  figures.readyMs = readyAt;
  for (;;) {
    if ((await execa('node', [repoPath('dist/cli/shadowctl.js'), 'status'], { reject: false, env })).exitCode === 0) break;
    await sleep(100);
  }
  figures.statusMs = Date.now() - t0;
  // The peaks once the start-up is over (a resync, the detectors' first rounds).
  await sleep(2000);
  sample();
  if (child.pid !== undefined) {
    figures.daemonNow = memoryNow(child.pid);
    for (const pid of children(child.pid)) if (isTapTool(pid)) bt(classOfProgram(programOf(pid))).now = memoryNow(pid);
  }
  figures.bpftrace = [...byClass.values()].sort((a, b) => a.cls.localeCompare(b.cls));
  figures.totalPeakRssKb = figures.daemonPeakRssKb + figures.bpftrace.reduce((n, f) => n + f.peakRssKb, 0);
  return { child, figures, log, exited };
}

async function stop(r: Running): Promise<void> {
  const t = Date.now();
  r.child.kill('SIGTERM');
  await r.exited;
  r.figures.stopMs = Date.now() - t;
}

function describe(f: StartFigures): string {
  const mem = (m: MemoryNow | undefined): string => (m ? `now RSS ${(m.rssKb / 1024).toFixed(0)} MB (anon ${(m.anonKb / 1024).toFixed(0)}, file ${(m.fileKb / 1024).toFixed(0)}, PSS ${(m.pssKb / 1024).toFixed(0)})` : '');
  const s = (ms: number | null | undefined): string => (ms === null || ms === undefined ? '-' : `${(ms / 1000).toFixed(2)}`);
  const phases = Object.entries(f.phases)
    .map(([k, v]) => `${k} ${s(v)}`)
    .join(', ');
  const bts = f.bpftrace.map((b) => `${b.cls}: spawned ${s(b.spawnedMs)} compiled ${s(b.compiledMs)} live ${s(b.liveMs)} (${String(b.probes)} probes, ${b.links.at(-1)?.[1] ?? 0} links, first link ${s(b.links.find((l) => l[1] > 0)?.[0])}, last ${s(b.links.at(-1)?.[0])}, polling ${s(b.pollingMs)}) peak RSS ${(b.peakRssKb / 1024).toFixed(0)} MB, ${mem(b.now)}`);
  const extra = f.kind === 'after-kill-9' ? ` leftover bpftrace ${String(f.leftoverBpftrace)}, gone ${s(f.leftoverGoneMs)} s after the kill;` : '';
  return `${f.kind} (--taps ${f.taps}: ${f.tool ?? '?'}): ready ${s(f.readyMs)} s, status ${s(f.statusMs)} s;${extra} phases (s since the process started): ${phases}\n  ${bts.join('\n  ')}\n  peak RSS daemon ${(f.daemonPeakRssKb / 1024).toFixed(0)} MB (${mem(f.daemonNow)}), total ${(f.totalPeakRssKb / 1024).toFixed(0)} MB${f.stopMs !== undefined ? `; stop ${s(f.stopMs)} s${f.stopPhases ? ` (${Object.entries(f.stopPhases).map(([k, v]) => `${k} ${s(v)}`).join(', ')})` : ''}` : ''}`;
}

if (modules.length > 0) await execa('modprobe', ['-a', ...modules], { reject: false });
for (const dev of readdirSync('/sys/class/net').filter((d) => d !== 'lo')) await execa('ip', ['link', 'set', dev, 'up'], { reject: false });

const work = mkdtempSync('/tmp/shadowd-startup-');
const starts: StartFigures[] = [];
for (let i = 0; i < rounds; i++) {
  for (const taps of engines) {
    const r = await startOnce(work, 'fresh', taps);
    await stop(r);
    starts.push(r.figures);
    console.log(`start ${i + 1}/${rounds} ${describe(r.figures)}`);
  }
}
// kill -9 of a ready daemon, then a start at once (the unit's RestartSec=2 aside).
for (const taps of engines) {
  const victim = await startOnce(work, 'fresh', taps);
  const killedAt = Date.now();
  victim.child.kill('SIGKILL');
  await victim.exited;
  const again = await startOnce(work, 'after-kill-9', taps, killedAt);
  await stop(again);
  starts.push(again.figures);
  console.log(`start after kill -9 ${describe(again.figures)}`);
}
// What the killed daemon left running.
for (const pid of bpftracePids()) {
  console.log(`bpftrace ${pid} (${programOf(pid)}) still running: killing it`);
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // gone
  }
}
console.log(`STARTUP_RESULT ${JSON.stringify({ starts })}`);
