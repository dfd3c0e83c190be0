// Runs one bpftrace program (an argv array, no shell) and turns its JSON
// output into messages. Restart and back-off policy belong to the caller.
// taps-loader (bpf/libbpf/, precompiled CO-RE objects) prints the same
// output and runs the same way: it is given as `loader`.
import { existsSync } from 'node:fs';
import { readdir, readFile, readlink } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { startProgram } from './run-program.js';
import { parseBpftraceLine, type BpftraceMessage } from './bpftrace-output.js';

/** taps-loader and the precompiled objects it runs in place of bpftrace and a .bt program. */
export interface TapsLoader {
  binary: string;
  objects: readonly string[];
}

export interface BpftraceOptions {
  /** The .bt program file. */
  program: string;
  bpftrace?: string;
  /** Runs taps-loader with these objects instead: it says attached once its programs are (no wait for them to go live). */
  loader?: TapsLoader;
  onMessage: (msg: BpftraceMessage) => void;
  /** bpftrace's own diagnostics (its stderr), a line at a time. */
  onStderr?: (line: string) => void;
  /** Resolves once bpftrace (pid) has really attached its probes; the default watches its attachments. */
  probesLive?: (pid: number) => Promise<void>;
}

export interface BpftraceRun {
  /** Resolves with the probe count once every probe is attached; rejects if bpftrace exits first. */
  attached: Promise<number>;
  /** Resolves when bpftrace has exited, with its exit code (null when killed by a signal). */
  exited: Promise<{ exitCode: number | null; signal: string | null; stderr: string }>;
  /** Ends bpftrace: SIGINT (it detaches and prints its maps), or the signal given. */
  stop(signal?: NodeJS.Signals): void;
}

/** What is kept of bpftrace's stderr for error reports: its last 64 KiB, in whole lines. */
export const STDERR_TAIL_CHARS = 64 * 1024;
/** A stderr line longer than this is cut (and the rest of it dropped): a line is buffered until its newline. */
export const STDERR_LINE_CHARS = 4096;

/**
 * The tail of a stream's text, in whole lines, at most `limit` characters
 * (and a first line saying how many were dropped): bpftrace may print
 * warnings for as long as it runs, and the daemon keeps only what an error
 * report needs. The newest line is always kept, however long.
 */
export class TextTail {
  private readonly lines: string[] = [];
  private size = 0;
  private dropped = 0;

  constructor(private readonly limit: number) {}

  /** Adds one line (without its newline). */
  push(line: string): void {
    this.lines.push(`${line}\n`);
    this.size += line.length + 1;
    while (this.size > this.limit && this.lines.length > 1) {
      this.size -= this.lines.shift()!.length;
      this.dropped++;
    }
  }

  text(): string {
    return (this.dropped > 0 ? `[${this.dropped} earlier line${this.dropped === 1 ? '' : 's'} dropped]\n` : '') + this.lines.join('');
  }
}

/**
 * Splits a stream into lines as readline does, but holds at most `max`
 * characters of a line that has not ended: the rest of an overlong line is
 * dropped and the line is given cut, with "…" at the end.
 */
function boundedLines(input: NodeJS.ReadableStream, max: number, onLine: (line: string) => void): void {
  let pending = '';
  let cut = false;
  input.setEncoding('utf8');
  input.on('data', (chunk: string) => {
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf('\n', start);
      if (!cut) {
        const piece = chunk.slice(start, nl === -1 ? chunk.length : nl);
        const room = max - pending.length;
        cut = piece.length > room;
        pending += cut ? piece.slice(0, room) : piece;
      }
      if (nl === -1) break;
      onLine(cut ? `${pending}…` : pending.replace(/\r$/, ''));
      pending = '';
      cut = false;
      start = nl + 1;
    }
  });
  input.on('end', () => {
    if (pending !== '' || cut) onLine(cut ? `${pending}…` : pending);
  });
}

const LINK_POLL_MS = 100;
/** Attach points stay unchanged this long once bpftrace is done (longer while there are none yet). */
const LINK_STABLE_POLLS = 10;
const NO_LINK_STABLE_POLLS = 30;

/** How many attachments process pid holds: a BPF link per fentry/fexit point, a perf event per kprobe or output buffer. */
async function bpfLinks(pid: number): Promise<number | null> {
  let fds: string[];
  try {
    fds = await readdir(`/proc/${pid}/fd`);
  } catch {
    return null; // gone
  }
  const targets = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
  return targets.filter((t) => t === 'anon_inode:bpf_link' || t === 'anon_inode:[perf_event]').length;
}

/** Whether process pid's main thread waits in epoll_wait: bpftrace reading its output buffers, which it does once every probe is attached. */
async function pollingOutput(pid: number): Promise<boolean> {
  try {
    return (await readFile(`/proc/${pid}/wchan`, 'utf8')).includes('epoll_wait');
  } catch {
    return false;
  }
}

/**
 * bpftrace 0.17 prints attached_probes *before* it attaches them, then attaches
 * them one by one (seconds under emulation), and then waits for output in
 * epoll_wait. The probes are live once it waits there with its attachments
 * unchanged since the last look (or, where the wait cannot be seen, once the
 * attachments stop growing for a while): wait for that, so no event after
 * "attached" is missed.
 */
async function probesLive(pid: number): Promise<void> {
  let last = -1;
  let stable = 0;
  while (stable < (last > 0 ? LINK_STABLE_POLLS : NO_LINK_STABLE_POLLS)) {
    await new Promise((r) => setTimeout(r, LINK_POLL_MS));
    const n = await bpfLinks(pid);
    if (n === null) return; // exited: `exited` reports it
    stable = n === last ? stable + 1 : 0;
    last = n;
    if (stable > 0 && n > 0 && (await pollingOutput(pid))) return;
  }
}

/** util-linux's setpriv, which can give its program a parent-death signal; null where there is none. */
const SETPRIV = ['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null;

/**
 * bpftrace's argv. Under setpriv --pdeathsig, bpftrace is killed as soon as
 * the daemon dies (a kill -9, a crash outside systemd, whose cgroup would end
 * it too): its probes do not stay attached with nobody reading them, and do
 * not slow the next daemon's start, which attaches the same points again.
 */
export function bpftraceArgv(bpftrace: string, program: string, setpriv: string | null = SETPRIV): [string, string[]] {
  return killedWithDaemon(bpftrace, ['-f', 'json', program], setpriv);
}

/** taps-loader's argv, under setpriv --pdeathsig as bpftrace's. */
export function loaderArgv(loader: TapsLoader, setpriv: string | null = SETPRIV): [string, string[]] {
  return killedWithDaemon(loader.binary, ['-f', 'json', ...loader.objects], setpriv);
}

/** A tap program's argv, under setpriv --pdeathsig where there is setpriv. */
function killedWithDaemon(binary: string, args: string[], setpriv: string | null): [string, string[]] {
  return setpriv ? [setpriv, ['--pdeathsig', 'KILL', '--', binary, ...args]] : [binary, args];
}

/** The program that runs the taps, for messages. */
export const tapTool = (opts: Pick<BpftraceOptions, 'loader'>): string => (opts.loader ? 'taps-loader' : 'bpftrace');

export function startBpftrace(opts: BpftraceOptions): BpftraceRun {
  const tool = tapTool(opts);
  const child = startProgram(...(opts.loader ? loaderArgv(opts.loader) : bpftraceArgv(opts.bpftrace ?? 'bpftrace', opts.program)));
  const stderrTail = new TextTail(STDERR_TAIL_CHARS);
  let resolveAttached!: (n: number) => void;
  let rejectAttached!: (e: Error) => void;
  const attached = new Promise<number>((res, rej) => {
    resolveAttached = res;
    rejectAttached = rej;
  });
  // Nobody may be waiting on `attached` when bpftrace fails later; that is reported through `exited`.
  attached.catch(() => undefined);

  createInterface({ input: child.stdout! }).on('line', (line) => {
    // bpftrace separates the maps it prints at exit with blank lines.
    if (line.trim() === '') return;
    const msg = parseBpftraceLine(line);
    if (msg.kind === 'attached' && child.pid !== undefined) {
      if (opts.loader) resolveAttached(msg.probes);
      else void (opts.probesLive ?? probesLive)(child.pid).then(() => resolveAttached(msg.probes));
    }
    opts.onMessage(msg);
  });
  boundedLines(child.stderr!, STDERR_LINE_CHARS, (line) => {
    stderrTail.push(line);
    opts.onStderr?.(line);
  });
  const exited = new Promise<{ exitCode: number | null; signal: string | null; stderr: string }>((resolve) => {
    let spawnError = '';
    child.on('error', (err) => (spawnError = `cannot run ${opts.loader?.binary ?? opts.bpftrace ?? 'bpftrace'}: ${err.message}\n`));
    // 'close' comes after the output streams ended, so every line has been read by then.
    child.on('close', (exitCode, signal) => {
      const stderrText = spawnError + stderrTail.text();
      rejectAttached(new Error(`${tool} exited before attaching (status ${String(exitCode ?? signal)}): ${stderrText.trim()}`));
      resolve({ exitCode, signal, stderr: stderrText });
    });
  });
  return { attached, exited, stop: (signal = 'SIGINT') => void child.kill(signal) };
}
