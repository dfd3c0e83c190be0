// Runs one bpftrace program (argv only, through execa) and turns its JSON
// output into messages. Restart and back-off policy belong to the caller.
import { createInterface } from 'node:readline';
import { execa, type ResultPromise } from 'execa';
import { parseBpftraceLine, type BpftraceMessage } from './bpftrace-output.js';

export interface BpftraceOptions {
  /** The .bt program file. */
  program: string;
  bpftrace?: string;
  onMessage: (msg: BpftraceMessage) => void;
  /** bpftrace's own diagnostics (its stderr), a line at a time. */
  onStderr?: (line: string) => void;
}

export interface BpftraceRun {
  /** Resolves with the probe count once every probe is attached; rejects if bpftrace exits first. */
  attached: Promise<number>;
  /** Resolves when bpftrace has exited, with its exit code (null when killed by a signal). */
  exited: Promise<{ exitCode: number | null; signal: string | null; stderr: string }>;
  stop(): void;
}

export function startBpftrace(opts: BpftraceOptions): BpftraceRun {
  const child: ResultPromise = execa(opts.bpftrace ?? 'bpftrace', ['-f', 'json', opts.program], {
    stdin: 'ignore',
    buffer: false,
    reject: false,
  });
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
    if (msg.kind === 'attached') resolveAttached(msg.probes);
    opts.onMessage(msg);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    stderrText += line + '\n';
    opts.onStderr?.(line);
  });
  const exited = child.then((r) => {
    const result = { exitCode: r.exitCode ?? null, signal: r.signal ?? null, stderr: stderrText };
    rejectAttached(new Error(`bpftrace exited before attaching (status ${String(r.exitCode ?? r.signal)}): ${stderrText.trim()}`));
    return result;
  });
  return { attached, exited, stop: () => void child.kill('SIGINT') };
}
