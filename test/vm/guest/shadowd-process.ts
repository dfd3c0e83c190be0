// Starts shadowd in the guest the way the service runs it (its Node options,
// its own state and socket folders under `work`) and waits until it answers.
// Shared by the guest scripts of the tests, the demo and the benchmarks.
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { DAEMON_NODE_OPTIONS } from '../../../daemon/service/node-options.js';
import { repoPath } from '../rig/repo-path.js';

const READY_TIMEOUT_MS = 120_000;

/** The environment under which shadowctl finds the daemon started with the same `work`. */
export function shadowdEnv(work: string): NodeJS.ProcessEnv {
  return { ...process.env, SHADOWD_SOCKET: join(work, 'run', 'control.sock') };
}

export interface StartedShadowd {
  daemon: ResultPromise;
  readyMs: number;
}

/**
 * Starts shadowd and resolves once `shadowctl status` answers (within
 * readyTimeoutMs: attaching the taps under TCG on a loaded host can take
 * minutes). onLog gets its stderr. Wrapped in an object: a returned
 * subprocess would be awaited to its end.
 */
export async function startShadowd(
  work: string,
  onLog: (text: string) => void,
  extraArgs: string[] = [],
  readyTimeoutMs = READY_TIMEOUT_MS,
  /** More Node options (e.g. --cpu-prof), after the service's own. */
  nodeArgs: string[] = [],
): Promise<StartedShadowd> {
  const env = shadowdEnv(work);
  const started = Date.now();
  let log = '';
  const daemon = execa('node', [...DAEMON_NODE_OPTIONS, ...nodeArgs, repoPath('dist/daemon/main.js'), '--state-dir', join(work, 'state'), '--runtime-dir', join(work, 'run'), ...extraArgs], {
    reject: false,
    env,
  });
  daemon.stderr?.on('data', (d: Buffer) => {
    log += d.toString();
    onLog(d.toString());
  });
  for (;;) {
    if ((await execa('node', [repoPath('dist/cli/shadowctl.js'), 'status'], { reject: false, env })).exitCode === 0) {
      return { daemon, readyMs: Date.now() - started };
    }
    if (daemon.exitCode !== null) throw new Error(`shadowd exited during start-up:\n${log}`);
    if (Date.now() - started > readyTimeoutMs) throw new Error(`shadowd not ready after ${readyTimeoutMs / 1000} s:\n${log}`);
    await new Promise((r) => setTimeout(r, 300));
  }
}
