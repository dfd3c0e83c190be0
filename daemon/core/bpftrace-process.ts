// Runs one bpftrace program (an argv array, no shell) and turns its JSON
// output into messages. Restart and back-off policy belong to the caller.
import { readdir, readlink } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import { startProgram } from './run-program.js';
import { parseBpftraceLine, type BpftraceMessage } from './bpftrace-output.js';

export interface BpftraceOptions {
  /** The .bt program file. */
  program: string;
  bpftrace?: string;
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
  stop(): void;
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

/**
 * bpftrace 0.17 prints attached_probes *before* it attaches them, then attaches
 * them one by one (seconds under emulation). The probes are live once its
 * attachments stop growing: wait for that, so no event after "attached" is missed.
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
  }
}

export function startBpftrace(opts: BpftraceOptions): BpftraceRun {
  const child = startProgram(opts.bpftrace ?? 'bpftrace', ['-f', 'json', opts.program]);
  let stderrText = '';
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
      void (opts.probesLive ?? probesLive)(child.pid).then(() => resolveAttached(msg.probes));
    }
    opts.onMessage(msg);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderrText += line + '\n';
    opts.onStderr?.(line);
  });
  const exited = new Promise<{ exitCode: number | null; signal: string | null; stderr: string }>((resolve) => {
    let spawnError = '';
    child.on('error', (err) => (spawnError = `cannot run ${opts.bpftrace ?? 'bpftrace'}: ${err.message}\n`));
    // 'close' comes after the output streams ended, so every line has been read by then.
    child.on('close', (exitCode, signal) => {
      stderrText = spawnError + stderrText;
      rejectAttached(new Error(`bpftrace exited before attaching (status ${String(exitCode ?? signal)}): ${stderrText.trim()}`));
      resolve({ exitCode, signal, stderr: stderrText });
    });
  });
  return { attached, exited, stop: () => void child.kill('SIGINT') };
}
