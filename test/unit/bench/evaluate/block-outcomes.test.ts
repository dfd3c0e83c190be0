import { describe, expect, it } from 'vitest';
import { blockOutcomes, type BlockRunContext } from '../../../../bench/evaluate/block-outcomes.js';
import type { DiskAppsRunResult } from '../../../vm/guest/disk-apps/run.js';

const ctx: BlockRunContext = { driver: 'ahci', kernel: '6.1', fault: 'disk-error', mode: 'with shadowd', crash: null };
type Res = Pick<DiskAppsRunResult, 'outcome' | 'failures'>;
function app(name: string, exitCode: number | null = 0, error: string | null = null): unknown {
  return { app: name, argv: [], exitCode, signal: exitCode === null ? 'SIGKILL' : null, error, stderrTail: '', durationMs: 30_000, progress: 10, longestStallMs: 2000 };
}
function result(over: { exits?: Partial<Record<'compiler' | 'encoder' | 'database', number | null>>; failures?: Res['failures'] } = {}): Res {
  const e = over.exits ?? {};
  return {
    outcome: { apps: { compiler: app('compiler', e.compiler ?? 0), encoder: app('encoder', e.encoder ?? 0), database: app('database', e.database ?? 0) } } as unknown as Res['outcome'],
    failures: over.failures ?? [],
  };
}
const outcomes = (r: Res | undefined, c: Partial<BlockRunContext> = {}): string[] => blockOutcomes(r, { ...ctx, ...c }).map((o) => `${o.app}: ${o.outcome}`);

describe('blockOutcomes', () => {
  it('works when every app exited 0 and the proof found nothing', () => {
    expect(outcomes(result())).toEqual(['compiler: works', 'encoder: works', 'database: works']);
  });
  it('an error exit is a crash; data wrong with exit 0 is a break; kernel lines alone change nothing', () => {
    const r = result({
      exits: { compiler: 2 },
      failures: [
        { area: 'compiler', what: 'exited 2' },
        { area: 'database', what: '3 of 40 acknowledged transactions missing' },
        { area: 'kernel', what: '2 I/O or filesystem errors logged' },
      ],
    });
    expect(outcomes(r)).toEqual(['compiler: app crash', 'encoder: works', 'database: app break']);
    expect(blockOutcomes(r, ctx)[2]!.evidence).toMatch(/acknowledged transactions missing/);
  });
  it('a damaged filesystem breaks every app that exited 0', () => {
    const r = result({ exits: { encoder: 1 }, failures: [{ area: 'filesystem', what: 'went read-only 3000 ms after the apps started' }] });
    expect(outcomes(r)).toEqual(['compiler: app break', 'encoder: app crash', 'database: app break']);
  });
  it('a system crash outranks the apps; a missing result is said', () => {
    expect(outcomes(result(), { crash: 'kernel: Oops' })).toEqual(['compiler: system crash', 'encoder: system crash', 'database: system crash']);
    expect(outcomes(undefined)).toEqual(['compiler: no result', 'encoder: no result', 'database: no result']);
  });
});
