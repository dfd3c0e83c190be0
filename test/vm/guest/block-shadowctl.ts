// shadowctl as the disk class's guest scripts drive it: run against the
// daemon started by shadowd-process.ts, the disks' status rows, and the map
// shadowd put over a disk (CreateMap=yes). A disk's name changes with each
// restart of its controller's driver; its map's does not, so scripts follow
// a disk by its map. Shared by block-recovery-scenario.ts and block-restarts.ts.
import { execa } from 'execa';
import { request } from '../../../daemon/control/control-client.js';
import { shadowdEnv } from './shadowd-process.js';
import { repoPath } from '../rig/repo-path.js';

export interface CtlResult {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
}
export type Ctl = (...args: string[]) => Promise<CtlResult>;

/** shadowctl against the daemon started with the same `work` folder. */
export function shadowctlFor(work: string): Ctl {
  const env = shadowdEnv(work);
  return async (...args) => {
    const r = await execa('node', [repoPath('dist/cli/shadowctl.js'), ...args], { reject: false, env });
    return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
  };
}

/**
 * The read-only commands a benchmark or a scenario polls with, `status
 * --json`, `show CLASS:NAME --json` and `history [CLASS:NAME] --json
 * [--limit N]`, sent on the control socket from
 * this process: the requests and JSON shadowctl sends and prints, without
 * starting node for each poll (seconds under TCG on a loaded host).
 */
export function controlFor(work: string): Ctl {
  const socket = shadowdEnv(work)['SHADOWD_SOCKET']!;
  return async (...args) => {
    const words = args.filter((a) => a !== '--json');
    const [cmd, ...rest] = words;
    let params: Record<string, unknown> | undefined;
    if (cmd === 'history') {
      const at = rest.indexOf('--limit');
      const limit = at >= 0 ? Number(rest[at + 1]) : 50;
      const device = rest.find((w, i) => !w.startsWith('--') && (at < 0 || i !== at + 1));
      params = { limit, ...(device ? { device } : {}) };
    } else if (cmd === 'show' && rest.length === 1) {
      params = { device: rest[0] };
    } else if (cmd !== 'status' || rest.length > 0) {
      throw new Error(`controlFor: only status, show and history, not ${args.join(' ')}`);
    }
    try {
      const reply = await request<unknown>(socket, cmd, params, 30_000);
      return reply.ok ? { exitCode: 0, stdout: JSON.stringify(reply.result), stderr: '' } : { exitCode: 1, stdout: JSON.stringify(reply.error), stderr: reply.error.message };
    } catch (err) {
      return { exitCode: 3, stdout: '', stderr: (err as Error).message };
    }
  };
}

export interface StatusRow {
  cls: string;
  name: string;
  driver: string | null;
  bus: string | null;
  attrs: Record<string, string | number>;
}

/** `shadowctl status --json`'s disk rows. */
export async function blockRows(ctl: Ctl): Promise<StatusRow[]> {
  const r = await ctl('status', '--json');
  if (r.exitCode !== 0) throw new Error(`shadowctl status failed: ${r.stderr}`);
  return (JSON.parse(r.stdout) as { devices: StatusRow[] }).devices.filter((d) => d.cls === 'block');
}

/** Waits for shadowd to report a map over disk `name`; `context` adds to the error (the daemon's log, say). */
export async function mapOf(ctl: Ctl, name: string, timeoutMs: number, context: () => string = () => ''): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const row = (await blockRows(ctl)).find((d) => d.name === name);
    const map = row?.attrs['map'];
    if (typeof map === 'string' && map !== '') return map;
    if (Date.now() > until) throw new Error(`shadowd put no map over ${name}: ${JSON.stringify(row)}\n${context()}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** The disk row whose map is `map` now, or null. */
export async function rowOfMap(ctl: Ctl, map: string): Promise<StatusRow | null> {
  return (await blockRows(ctl)).find((d) => d.attrs['map'] === map) ?? null;
}
