// How the daemon runs other programs: an argv array, never a shell string.
// The daemon uses node:child_process directly rather than execa: execa's
// module graph alone costs the daemon about 13 MB of resident memory (measured
// with bench/ingest-rate.js), a fifth of its 64 MB budget. The CLI and the
// test rig use execa.
import { execFile, spawn, type ChildProcess } from 'node:child_process';

export interface ProgramResult {
  stdout: string;
  stderr: string;
  /** null when the program was killed by a signal or could not be started. */
  exitCode: number | null;
  /** The program printed more than the caller's limit: it was killed and its output dropped. */
  overflow?: true;
}

/**
 * Runs file with args, collects its output; never throws for a failing program
 * (exitCode tells). Output past maxBytes (per stream) kills the program: what
 * it printed is dropped and the result says `overflow`, so that a huge table
 * never reaches the daemon's small heap.
 */
export function runProgram(file: string, args: readonly string[], timeoutMs = 10_000, maxBytes = 16 * 1024 * 1024): Promise<ProgramResult> {
  return new Promise((resolve) => {
    execFile(file, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: maxBytes }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr, exitCode: 0 });
      const code = (err as NodeJS.ErrnoException & { code?: unknown }).code;
      if (code === 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER') return resolve({ stdout: '', stderr: '', exitCode: null, overflow: true });
      // A numeric code is the exit status; a string one (ENOENT, EACCES) means it never ran.
      resolve({ stdout, stderr: stderr || err.message, exitCode: typeof code === 'number' ? code : null });
    });
  });
}

/** Starts a long-running program with its output piped to us and no stdin. */
export function startProgram(file: string, args: readonly string[]): ChildProcess {
  return spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] });
}
