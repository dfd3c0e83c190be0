// Which classes' applications `npm run evaluate` runs (--classes), and what
// a run that leaves classes out writes for them: their rows of the last
// evaluation.json, kept as they were and said to be, so that a run of one
// class never drops the others' data.
import type { EvaluationData, KeptRows } from './report.js';

const LEFT_OUT = 'left out';
/** What a run that left a class out says of it when there is nothing to keep. */
export const leftOut = (why: string): string => `${LEFT_OUT} (${why})`;

/** The classes named in a --classes value, in `known`'s order, once each; throws with a message naming the bad one. */
export function parseClasses(value: string, known: readonly string[]): string[] {
  const asked = value.split(',').map((c) => c.trim());
  const bad = asked.find((c) => !known.includes(c));
  if (bad !== undefined || value.trim() === '') throw new Error(`--classes: ${JSON.stringify(bad ?? '')} is not one of ${known.join(', ')}`);
  return known.filter((c) => asked.includes(c));
}

/** The rows of the reliability table and the recoveries. */
export type Rows = Pick<EvaluationData, 'reliability' | 'recoveries'>;

/** The last run as its evaluation.json has it; throws when that is not JSON or has no reliability rows and recoveries to keep from. */
export function parsePrevious(text: string): EvaluationData {
  const d = JSON.parse(text) as Partial<EvaluationData> | null;
  const r = d?.reliability;
  if (typeof d !== 'object' || d === null || !Array.isArray(r?.outcomes) || typeof r.notRun !== 'object' || r.notRun === null || !Array.isArray(d.recoveries)) {
    throw new Error('it is not the JSON of an evaluation (no reliability.outcomes, reliability.notRun and recoveries)');
  }
  return d as EvaluationData;
}

/** Whether `d` holds rows of `cls` worth keeping: runs, or a reason it was not run other than having been left out. */
function hasRows(d: Rows, cls: string): boolean {
  const why = d.reliability.notRun[cls];
  return d.reliability.outcomes.some((o) => o.cls === cls) || (d.reliability.appsNotRun ?? []).some((x) => x.cls === cls) || (why !== undefined && !why.startsWith(LEFT_OUT));
}

/**
 * This run's rows, with those of every class in `all` it did not run (not
 * in `ran`) taken from `previous` (the last evaluation.json) where that has
 * any, in `all`'s order; `kept` names those classes. A kept class's
 * provenance is the run it was first measured in.
 */
export function keepOtherClasses(fresh: Rows, previous: (Rows & Pick<EvaluationData, 'generatedAt' | 'commit'>) | null, ran: readonly string[], all: readonly string[]): { rows: Rows; kept: string[] } {
  const kept = previous ? all.filter((c) => !ran.includes(c) && hasRows(previous, c)) : [];
  const from = (c: string): Rows => (previous && kept.includes(c) ? previous : fresh);
  const keptFrom: Record<string, KeptRows> = {};
  for (const c of kept) keptFrom[c] = previous!.reliability.keptFrom?.[c] ?? { generatedAt: previous!.generatedAt, commit: previous!.commit };
  const notRun: Record<string, string> = {};
  for (const c of all) {
    const why = from(c).reliability.notRun[c];
    if (why !== undefined) notRun[c] = why;
  }
  const reliability: Rows['reliability'] = {
    outcomes: all.flatMap((c) => from(c).reliability.outcomes.filter((o) => o.cls === c)),
    notRun,
    appsNotRun: all.flatMap((c) => (from(c).reliability.appsNotRun ?? []).filter((x) => x.cls === c)),
    ...(Object.keys(keptFrom).length > 0 ? { keptFrom } : {}),
  };
  return { rows: { reliability, recoveries: all.flatMap((c) => from(c).recoveries.filter((r) => r.cls === c)) }, kept };
}
