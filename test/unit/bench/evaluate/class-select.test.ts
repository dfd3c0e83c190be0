import { describe, expect, it } from 'vitest';
import { keepOtherClasses, leftOut, parseClasses, parsePrevious, type Rows } from '../../../../bench/evaluate/class-select.js';
import type { AppOutcome } from '../../../../bench/evaluate/outcome.js';
import type { RecoveryTiming } from '../../../../bench/evaluate/recovery-times.js';
import type { EvaluationData } from '../../../../bench/evaluate/report.js';

const ALL = ['net', 'block', 'sound'];
const run = (cls: string, app: string, outcome: AppOutcome['outcome'] = 'works'): AppOutcome => ({ app, program: 'p', cls, driver: 'd', kernel: '6.1', fault: 'f', mode: 'with shadowd', outcome, evidence: '' });
const recovery = (cls: string, id: string): RecoveryTiming => ({ cls, driver: 'd', kernel: '6.1', fault: 'f', id, trigger: 't', result: 'recovered', phases: {}, totalMs: 1 });

/** The last full run: every class ran (sound with two applications it had no run of). */
const previous: Rows & Pick<EvaluationData, 'generatedAt' | 'commit'> = {
  generatedAt: '2026-12-01T10:00:00.000Z',
  commit: 'aaa1111',
  reliability: {
    outcomes: [run('net', 'remote copy'), run('block', 'compiler', 'app crash'), run('sound', 'mp3 player', 'app break')],
    notRun: {},
    appsNotRun: [{ cls: 'sound', app: 'game', mode: 'with shadowd', why: 'no game yet' }],
  },
  recoveries: [recovery('net', 'n1'), recovery('block', 'b1'), recovery('sound', 's1')],
};

/** A run of sound alone: the others left out. */
function soundOnly(): Rows {
  return {
    reliability: {
      outcomes: [run('sound', 'mp3 player'), run('sound', 'speech synthesizer')],
      notRun: { net: leftOut('--classes sound'), block: leftOut('--classes sound') },
      appsNotRun: [{ cls: 'sound', app: 'audio recorder', mode: 'with shadowd', why: 'no recorder yet' }],
    },
    recoveries: [recovery('sound', 's2')],
  };
}

describe('parseClasses', () => {
  it('gives the classes asked for in the registry\'s order, once each', () => {
    expect(parseClasses('sound', ALL)).toEqual(['sound']);
    expect(parseClasses(' sound , net,sound', ALL)).toEqual(['net', 'sound']);
    expect(parseClasses('net,block,sound', ALL)).toEqual(ALL);
  });
  it('names what it does not know, and refuses an empty list', () => {
    expect(() => parseClasses('sound,disk', ALL)).toThrow('--classes: "disk" is not one of net, block, sound');
    expect(() => parseClasses('', ALL)).toThrow(/--classes: "" is not one of/);
    expect(() => parseClasses('net,', ALL)).toThrow(/--classes: "" is not one of/);
  });
});

describe('parsePrevious', () => {
  it('reads an evaluation.json, and refuses what is not one', () => {
    expect(parsePrevious(JSON.stringify(previous)).commit).toBe('aaa1111');
    expect(() => parsePrevious('{"reliability":')).toThrow();
    expect(() => parsePrevious('null')).toThrow(/not the JSON of an evaluation/);
    expect(() => parsePrevious('{"reliability":{"outcomes":[]},"recoveries":[]}')).toThrow(/not the JSON of an evaluation/);
  });
});

describe('keepOtherClasses', () => {
  it('keeps every row of the classes left out from the last run, with where they come from, and takes the class run from this run', () => {
    const { rows, kept } = keepOtherClasses(soundOnly(), previous, ['sound'], ALL);
    expect(kept).toEqual(['net', 'block']);
    expect(rows.reliability.outcomes.map((o) => `${o.cls} ${o.app} ${o.outcome}`)).toEqual(['net remote copy works', 'block compiler app crash', 'sound mp3 player works', 'sound speech synthesizer works']);
    expect(rows.recoveries.map((r) => r.id)).toEqual(['n1', 'b1', 's2']);
    // The left-out marks are gone: those classes have their old rows.
    expect(rows.reliability.notRun).toEqual({});
    // Sound's own not-run applications are this run's, not the last one's.
    expect(rows.reliability.appsNotRun).toEqual([{ cls: 'sound', app: 'audio recorder', mode: 'with shadowd', why: 'no recorder yet' }]);
    expect(rows.reliability.keptFrom).toEqual({ net: { generatedAt: previous.generatedAt, commit: 'aaa1111' }, block: { generatedAt: previous.generatedAt, commit: 'aaa1111' } });
  });

  it('keeps the run a class was measured in through runs that left it out again, and what it said of a class it did not run', () => {
    const first = keepOtherClasses(soundOnly(), previous, ['sound'], ALL).rows;
    const again = keepOtherClasses(
      { reliability: { outcomes: [run('net', 'remote window')], notRun: { block: leftOut('--classes net'), sound: leftOut('--classes net') }, appsNotRun: [] }, recoveries: [] },
      { ...first, generatedAt: '2026-12-02T10:00:00.000Z', commit: 'bbb2222' },
      ['net'],
      ALL,
    );
    expect(again.kept).toEqual(['block', 'sound']);
    expect(again.rows.reliability.keptFrom).toEqual({ block: { generatedAt: previous.generatedAt, commit: 'aaa1111' }, sound: { generatedAt: '2026-12-02T10:00:00.000Z', commit: 'bbb2222' } });
    expect(again.rows.reliability.outcomes.map((o) => o.app)).toEqual(['remote window', 'compiler', 'mp3 player', 'speech synthesizer']);
    // A class the last run said why it did not run keeps that reason.
    const said = keepOtherClasses(soundOnly(), { ...previous, reliability: { outcomes: [], notRun: { net: 'not yet', block: leftOut('--only code-size') } }, recoveries: [] }, ['sound'], ALL);
    expect(said.kept).toEqual(['net']);
    expect(said.rows.reliability.notRun).toEqual({ net: 'not yet', block: leftOut('--classes sound') });
  });

  it('without a last run, or for a class it has nothing of, the class left out says so; a full run is this run\'s rows alone', () => {
    const none = keepOtherClasses(soundOnly(), null, ['sound'], ALL);
    expect(none.kept).toEqual([]);
    expect(none.rows.reliability.notRun).toEqual({ net: 'left out (--classes sound)', block: 'left out (--classes sound)' });
    expect(none.rows.reliability.keptFrom).toBeUndefined();
    expect(none.rows.reliability.outcomes).toHaveLength(2);
    const full: Rows = { reliability: { outcomes: [run('sound', 'game'), run('net', 'remote copy')], notRun: {}, appsNotRun: [] }, recoveries: [] };
    const all = keepOtherClasses(full, previous, ALL, ALL);
    expect(all.kept).toEqual([]);
    expect(all.rows.reliability.outcomes.map((o) => o.app)).toEqual(['remote copy', 'game']);
  });
});
