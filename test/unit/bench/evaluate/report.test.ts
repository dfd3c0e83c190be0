import { describe, expect, it } from 'vitest';
import { renderEvaluation, withReadmeTable, type EvaluationData } from '../../../../bench/evaluate/report.js';
import type { AppOutcome } from '../../../../bench/evaluate/outcome.js';

const part = { files: [], code: 0, lines: 0 };
function data(outcomes: AppOutcome[], notRun: Record<string, string> = {}): EvaluationData {
  return {
    generatedAt: '2026-12-05T23:00:00.000Z',
    commit: 'abc1234',
    codeSize: { classes: [], generic: { core: part, service: part, helper: part }, drivers: [] },
    reliability: { outcomes, notRun },
    recoveries: [],
  };
}
const run = (app: string, mode: AppOutcome['mode'], outcome: AppOutcome['outcome']): AppOutcome => ({ app, program: 'p', cls: 'net', driver: 'e1000', kernel: '6.1', fault: 'lost-irq', mode, outcome, evidence: 'seen | here' });

describe('the reliability table', () => {
  const d = data([run('remote copy', 'without shadowd', 'app crash'), run('remote copy', 'with shadowd', 'works')], { sound: 'not yet', block: 'not yet' });
  it('puts our counts beside the seed\'s row, and "not run" for a class that was not', () => {
    const md = renderEvaluation(d, 'chart.svg');
    expect(md).toContain('| remote copy | net | system crash | works | works | app crash 1 | works 1 |');
    expect(md).toContain('| mp3 player | sound | app crash | app break | works | not run | not run |');
    expect(md).toContain('- sound: not run: not yet');
    // Evidence with a pipe stays in its cell.
    expect(md).toContain('seen \\| here');
  });
  it('says "not run", and why, for an application a class that ran has no run of in a mode, and where kept rows come from', () => {
    const r: EvaluationData['reliability'] = {
      outcomes: [run('game', 'without shadowd', 'app crash')],
      notRun: { block: 'not yet' },
      appsNotRun: [{ cls: 'sound', app: 'game', mode: 'with shadowd', why: 'no game with shadowd yet' }],
      keptFrom: { net: { generatedAt: '2026-12-01T10:00:00.000Z', commit: 'aaa1111' } },
    };
    const md = renderEvaluation({ ...data([]), reliability: r }, 'chart.svg');
    expect(md).toContain('| game | sound | system crash | app crash | works | app crash 1 | not run |');
    // Another application of the class with no run and no reason is not called "not run".
    expect(md).toContain('| audio recorder | sound | system crash | app break | works | no run | no run |');
    expect(md).toContain('- game (sound), with shadowd: not run: no game with shadowd yet');
    expect(md).toContain('- net: left out of this run (--classes); its rows are those of the run at 2026-12-01T10:00:00.000Z (commit aaa1111)');
    const readme = withReadmeTable('<!-- evaluation:reliability:begin -->\n<!-- evaluation:reliability:end -->\n', { ...data([]), reliability: r });
    expect(readme).toContain('block: not run by this command yet (why: [docs/evaluation.md](docs/evaluation.md#reliability)).');
    expect(readme).toContain('game (sound), with shadowd: not run (why: [docs/evaluation.md](docs/evaluation.md#reliability)).');
    expect(readme).toContain('net: left out of this run (--classes); its rows are those of the run at 2026-12-01T10:00:00.000Z (commit aaa1111).');
  });
  it('replaces only the README block between the markers, and leaves a README without them alone', () => {
    const readme = 'intro\n<!-- evaluation:reliability:begin -->\nold table\n<!-- evaluation:reliability:end -->\nrest\n';
    const out = withReadmeTable(readme, d);
    expect(out.startsWith('intro\n<!-- evaluation:reliability:begin -->\n')).toBe(true);
    expect(out).not.toContain('old table');
    expect(out).toContain('| remote copy | net | system crash | works | works | app crash 1 | works 1 |');
    expect(out).toContain('npm run evaluate` at 2026-12-05 23:00 UTC (commit abc1234)');
    expect(out.endsWith('<!-- evaluation:reliability:end -->\nrest\n')).toBe(true);
    expect(withReadmeTable('no markers\n', d)).toBe('no markers\n');
  });
});

describe('the recovery time section', () => {
  const recovery = { cls: 'net', driver: 'e1000', kernel: '6.1', fault: 'lost-irq', id: 'r1', trigger: 'tx-stall', result: 'recovered', phases: { detect: 1000, restart: 800 }, totalMs: 1800 };
  it('sets each driver\'s recoveries beside its bare restart and its own reset, or says there is none and why', () => {
    const d: EvaluationData = {
      ...data([]),
      recoveries: [recovery],
      baselines: {
        kernel: '6.1',
        rounds: 2,
        devices: [
          { cls: 'net', driver: 'e1000', unit: '0000:00:03.0', service: 'a ping answered', bare: [{ unbindMs: 5, bindMs: 90, serviceMs: 1200 }, { unbindMs: 5, bindMs: 90, serviceMs: 1400 }], reset: { what: 'the driver\'s transmit timeout reset', rounds: [{ detectionMs: 5100, serviceMs: 400 }] } },
          { cls: 'block', driver: 'ahci', unit: '0000:00:05.0', service: 'its first block read', bare: [{ unbindMs: 300, bindMs: 900, serviceMs: 2500 }], reset: { none: 'nothing user space can call' }, error: 'disk gone' },
        ],
      },
    };
    const md = renderEvaluation(d, 'chart.svg');
    expect(md).toContain('| net | e1000 | 1,800 | 800 | 1,300 (1,200-1,400) | 5,100 | 400 | a ping answered |');
    expect(md).toContain('| block | ahci |  |  | 2,500 (stopped: disk gone) | none: nothing user space can call |  | its first block read |');
    expect(md).toContain('Own reset: the driver\'s transmit timeout reset.');
  });
  it('says so when the run measured no baselines', () => {
    expect(renderEvaluation({ ...data([]), recoveries: [recovery] }, 'chart.svg')).toContain('Not yet beside a bare unbind + bind');
  });
});
