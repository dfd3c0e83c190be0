// Proof of sound: does a recording of what a sound card played (QEMU's wav
// backend) contain a source signal whole, in order, with how many gaps, no
// repeated or garbage segment, and at an unchanged level?
//
// Method. Both signals are mixed to mono, low-passed to 1.6 kHz and resampled
// to an analysis rate of 8 kHz, which removes any rate conversion between them
// (44.1 kHz source, 48 kHz dmix, 44.1 kHz QEMU). The source is cut into
// 100 ms blocks; each non-silent block is located in the capture by
// normalised cross-correlation (NCC), first near where the previous block
// predicts it, else anywhere (FFT). Consecutive blocks with the same
// capture-minus-source offset form a segment; each segment is then extended
// in 10 ms steps to its exact ends. Between two consecutive segments lies a
// gap: the source not played (source lost) and the capture time between
// them (silence or other sound). Capture outside every segment that is not
// silent is located in the source: if found it is a repeat, else garbage.
// The level is the RMS ratio of capture over source per matched block;
// per-gap level changes and level steps along the source are reported.
import { Haystack, energy, ncc, resample, rms, searchLocal } from './signal.js';
import { mono, type Wav } from './wav.js';

export interface ProofOptions {
  /** Analysis sample rate (Hz). */
  analysisRate?: number;
  /**
   * Both signals are low-passed to this before analysis (Hz). Well below
   * the analysis Nyquist frequency, so that a capture that lies a fraction
   * of an analysis sample off the source still correlates (at 1.6 kHz and
   * 8 kHz, half a sample costs about 6 % of the NCC, against 12 % at 3.6 kHz).
   */
  bandHz?: number;
  blockMs?: number;
  /** Step of the fine extension of segments and of the silence map. */
  stepMs?: number;
  /** NCC a block must reach to count as found. */
  minScore?: number;
  /** RMS below this (dBFS, on the mono mix) is silence. */
  silenceDb?: number;
  /** Capture-minus-source offsets within this are the same alignment. */
  toleranceMs?: number;
  /** How far around the predicted place the local search looks. */
  localSearchMs?: number;
  /** Non-silent uncovered capture shorter than this is ignored. */
  minUncoveredMs?: number;
  /** A level step smaller than this is not reported. */
  levelToleranceDb?: number;
  /**
   * 'all' (default): the whole capture must be accounted for. 'span': only
   * the capture from the first to the last segment of this source (other
   * applications played before and after it on the same card).
   */
  window?: 'all' | 'span';
  /**
   * The capture analysed for repeats and garbage, [start, end) in ms:
   * overrides `window`. For a source that other sources follow on the same
   * recording: from its first segment to where the next one's begins, so
   * that what the card played after the source's end (a stale ring looping
   * on) is judged too, which 'span' leaves out.
   */
  windowMs?: [number, number];
}

export interface Segment {
  sourceStartMs: number;
  sourceEndMs: number;
  captureStartMs: number;
  captureEndMs: number;
  /** Capture over source, dB. */
  gainDb: number;
  /** Mean NCC of its blocks. */
  score: number;
}

export interface Gap {
  /** Where in the source the played audio broke off. */
  atSourceMs: number;
  /** Where in the capture. */
  atCaptureMs: number;
  /** Source between the two segments that was never played (negative: played twice). */
  sourceLostMs: number;
  /** Capture time between the two segments (negative: overlap). */
  captureGapMs: number;
  /** Of it, silent. */
  captureSilentMs: number;
  /** Gain after the gap minus gain before (dB), over up to 1 s each side. */
  levelChangeDb: number;
}

export interface Interval {
  captureStartMs: number;
  captureEndMs: number;
}
export interface Repeat extends Interval {
  /** Where in the source the repeated audio comes from. */
  sourceMs: number;
  score: number;
}
export interface Garbage extends Interval {
  rmsDb: number;
  /** Best NCC it reached anywhere in the source. */
  bestScore: number;
}
export interface LevelStep {
  atSourceMs: number;
  fromDb: number;
  toDb: number;
}

export interface ProofReport {
  sourceMs: number;
  captureMs: number;
  /** Non-silent source in ms, and how much of it the segments cover. */
  sourceActiveMs: number;
  sourceCoveredMs: number;
  /** Non-silent source not covered by any segment, at the start, the end and in between. */
  missingHeadMs: number;
  missingTailMs: number;
  missingMs: number;
  segments: Segment[];
  gaps: Gap[];
  /** Segments whose capture comes before the previous segment's (source order). */
  outOfOrder: number;
  repeats: Repeat[];
  garbage: Garbage[];
  /** Gain over all matched blocks (dB). */
  gainDb: number;
  levelSteps: LevelStep[];
  /** Capture analysed for repeats and garbage (the whole capture, or the source's span). */
  windowMs: [number, number];
}

const DEFAULTS: Required<Omit<ProofOptions, 'windowMs'>> = {
  analysisRate: 8000,
  bandHz: 1600,
  blockMs: 100,
  stepMs: 10,
  minScore: 0.8,
  silenceDb: -45,
  toleranceMs: 2,
  localSearchMs: 40,
  minUncoveredMs: 30,
  levelToleranceDb: 1,
  window: 'all',
};

const db = (ratio: number): number => 20 * Math.log10(Math.max(ratio, 1e-12));
/** dB of an energy ratio. */
const edb = (ratio: number): number => 10 * Math.log10(Math.max(ratio, 1e-24));

interface BlockMatch {
  block: number;
  src: number;
  cap: number;
  score: number;
  /** Energies of the capture and the source block: the gain is their RMS ratio (which a fraction of a sample's misalignment does not bias). */
  cs: number;
  ss: number;
}

interface Seg {
  src: number;
  srcEnd: number;
  cap: number;
  blocks: BlockMatch[];
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

// One recording is judged for many sources (every run a card played): its
// analysis signal and its FFT are made once per recording, not per proof.
const analyses = new WeakMap<Wav, Map<string, Float32Array>>();
const haystacks = new WeakMap<Float32Array, Map<number, Haystack>>();

/** What `make` gives for (`of`, `key`), made once while `of` lives. */
function memo<O extends object, K, V>(cache: WeakMap<O, Map<K, V>>, of: O, key: K, make: () => V): V {
  const byKey = cache.get(of) ?? new Map<K, V>();
  cache.set(of, byKey);
  const v = byKey.get(key) ?? make();
  byKey.set(key, v);
  return v;
}

/** The WAV mixed to mono, low-passed to `bandHz` and resampled to `rate` (made once per WAV and setting). */
const analysed = (w: Wav, rate: number, bandHz: number): Float32Array => memo(analyses, w, `${rate}/${bandHz}`, () => resample(mono(w), w.rate, rate, bandHz));

/** `x` prepared for global searches of blocks up to `maxBlock` long (made once per signal and size). */
const haystack = (x: Float32Array, maxBlock: number): Haystack => memo(haystacks, x, maxBlock, () => new Haystack(x, maxBlock));

/** Analyses `capture` for `source`; see the file's head for the method. */
export function proveSound(source: Wav, capture: Wav, options: ProofOptions = {}): ProofReport {
  const o = { ...DEFAULTS, ...options };
  const rate = o.analysisRate;
  const s = analysed(source, rate, o.bandHz);
  const c = analysed(capture, rate, o.bandHz);
  const ms = (n: number): number => (n / rate) * 1000;
  const B = Math.round((o.blockMs / 1000) * rate);
  const step = Math.round((o.stepMs / 1000) * rate);
  const tol = Math.max(1, Math.round((o.toleranceMs / 1000) * rate));
  const W = Math.round((o.localSearchMs / 1000) * rate);
  const silence = 10 ** (o.silenceDb / 20);
  const silent = (x: Float32Array, start: number, len: number): boolean => rms(x, start, len) < silence;

  // 1. Locate every non-silent source block.
  const capHay = c.length >= B ? haystack(c, B) : null;
  const matches: BlockMatch[] = [];
  const nBlocks = Math.floor(s.length / B);
  let last: BlockMatch | null = null;
  for (let i = 0; i < nBlocks; i++) {
    const src = i * B;
    if (silent(s, src, B)) continue;
    const block = s.subarray(src, src + B);
    // Continuity first: where the previous block predicts it (a voiced or
    // tonal block also correlates one pitch period off, maybe better), then
    // nearby, then anywhere.
    const predicted = last ? last.cap + (src - last.src) : null;
    let hit = predicted !== null ? searchLocal(block, c, predicted - tol, predicted + tol) : null;
    if (predicted !== null && (!hit || hit.score < o.minScore)) hit = searchLocal(block, c, predicted - W, predicted + W);
    if ((!hit || hit.score < o.minScore) && capHay) {
      const global = capHay.search(block);
      if (global && (!hit || global.score > hit.score)) hit = global;
    }
    if (!hit || hit.score < o.minScore) continue;
    const m: BlockMatch = { block: i, src, cap: hit.offset, score: hit.score, cs: energy(c, hit.offset, B), ss: energy(s, src, B) };
    matches.push(m);
    last = m;
  }

  // 2. Segments: runs of blocks with one alignment.
  const segs: Seg[] = [];
  for (const m of matches) {
    const cur = segs[segs.length - 1];
    if (cur && Math.abs(m.cap - m.src - (cur.cap - cur.src)) <= tol && m.src >= cur.srcEnd) {
      cur.srcEnd = m.src + B;
      cur.blocks.push(m);
    } else {
      segs.push({ src: m.src, srcEnd: m.src + B, cap: m.cap, blocks: [m] });
    }
  }

  // 3. Extend each segment in fine steps up to its neighbours (in source) and the signals' ends.
  const fits = (src: number, cap: number, len: number): boolean => {
    if (src < 0 || cap < 0 || src + len > s.length || cap + len > c.length) return false;
    const ss = silent(s, src, len);
    const cs = silent(c, cap, len);
    if (ss || cs) return ss && cs;
    // The alignment is whole analysis samples; the truth may lie between two.
    let best = ncc(s, src, c, cap, len);
    if (cap >= 1) best = Math.max(best, ncc(s, src, c, cap - 1, len));
    if (cap + 1 + len <= c.length) best = Math.max(best, ncc(s, src, c, cap + 1, len));
    return best >= o.minScore;
  };
  for (let k = 0; k < segs.length; k++) {
    const g = segs[k]!;
    const d = g.cap - g.src;
    const lo = k > 0 ? segs[k - 1]!.srcEnd : 0;
    const hi = k + 1 < segs.length ? segs[k + 1]!.src : s.length;
    // A block only partly played can still reach the score: trim what does not fit, then grow.
    while (g.srcEnd - g.src > step && !fits(g.src, g.src + d, step)) g.src += step;
    while (g.srcEnd - g.src > step && !fits(g.srcEnd - step, g.srcEnd - step + d, step)) g.srcEnd -= step;
    while (g.src - step >= lo && fits(g.src - step, g.src - step + d, step)) g.src -= step;
    while (g.srcEnd + step <= hi && fits(g.srcEnd, g.srcEnd + d, step)) g.srcEnd += step;
    // The last partial step at the source's end.
    const rest = Math.min(hi, s.length) - g.srcEnd;
    if (rest > 0 && rest < step && fits(g.srcEnd, g.srcEnd + d, rest)) g.srcEnd += rest;
    const restLo = g.src - lo;
    if (restLo > 0 && restLo < step && fits(lo, lo + d, restLo)) g.src = lo;
    g.cap = g.src + d;
  }
  // Extension can make neighbours with one alignment meet: merge them.
  for (let k = segs.length - 1; k > 0; k--) {
    const a = segs[k - 1]!;
    const b = segs[k]!;
    if (Math.abs(b.cap - b.src - (a.cap - a.src)) <= tol && b.src - a.srcEnd <= step) {
      a.srcEnd = b.srcEnd;
      a.blocks.push(...b.blocks);
      segs.splice(k, 1);
    }
  }

  const segments: Segment[] = segs.map((g) => {
    const cs = g.blocks.reduce((x, m) => x + m.cs, 0);
    const ss = g.blocks.reduce((x, m) => x + m.ss, 0);
    return {
      sourceStartMs: ms(g.src),
      sourceEndMs: ms(g.srcEnd),
      captureStartMs: ms(g.cap),
      captureEndMs: ms(g.cap + g.srcEnd - g.src),
      gainDb: edb(cs / ss),
      score: g.blocks.reduce((x, m) => x + m.score, 0) / g.blocks.length,
    };
  });

  // 4. Source coverage, in steps.
  const covered = (pos: number): boolean => segs.some((g) => pos >= g.src && pos < g.srcEnd);
  let sourceActive = 0;
  let sourceCovered = 0;
  const missingAt: number[] = [];
  for (let p = 0; p + step <= s.length; p += step) {
    if (silent(s, p, step)) continue;
    sourceActive += step;
    if (covered(p + (step >> 1))) sourceCovered += step;
    else missingAt.push(p);
  }
  const firstSeg = segs[0];
  const lastSeg = segs[segs.length - 1];
  const missingHead = firstSeg ? missingAt.filter((p) => p < firstSeg.src).length * step : sourceActive;
  const missingTail = lastSeg ? missingAt.filter((p) => p >= lastSeg.srcEnd).length * step : 0;

  // 5. Gaps between consecutive segments.
  const gainOver = (blocks: BlockMatch[]): number => edb(blocks.reduce((x, m) => x + m.cs, 0) / blocks.reduce((x, m) => x + m.ss, 0));
  const gaps: Gap[] = [];
  let outOfOrder = 0;
  for (let k = 1; k < segs.length; k++) {
    const a = segs[k - 1]!;
    const b = segs[k]!;
    const aCapEnd = a.cap + a.srcEnd - a.src;
    if (b.cap < a.cap) outOfOrder++;
    let silentCap = 0;
    for (let p = aCapEnd; p + step <= b.cap; p += step) if (silent(c, p, step)) silentCap += step;
    const before = a.blocks.filter((m) => m.src >= a.srcEnd - rate);
    const after = b.blocks.filter((m) => m.src < b.src + rate);
    gaps.push({
      atSourceMs: ms(a.srcEnd),
      atCaptureMs: ms(aCapEnd),
      sourceLostMs: ms(b.src - a.srcEnd),
      captureGapMs: ms(b.cap - aCapEnd),
      captureSilentMs: ms(silentCap),
      levelChangeDb: gainOver(after.length ? after : b.blocks) - gainOver(before.length ? before : a.blocks),
    });
  }

  // 6. Capture not covered by a segment and not silent: a repeat of the source, or garbage.
  const capCovered = (pos: number): boolean => segs.some((g) => pos >= g.cap && pos < g.cap + g.srcEnd - g.src);
  const at = (t: number): number => Math.max(0, Math.min(c.length, Math.round((t / 1000) * rate)));
  const window: [number, number] = options.windowMs
    ? [at(options.windowMs[0]), at(options.windowMs[1])]
    : o.window === 'span' && firstSeg && lastSeg
      ? [Math.min(...segs.map((g) => g.cap)), Math.max(...segs.map((g) => g.cap + g.srcEnd - g.src))]
      : [0, c.length];
  const runs: [number, number][] = [];
  for (let p = window[0]; p + step <= window[1]; p += step) {
    if (silent(c, p, step) || capCovered(p + (step >> 1))) continue;
    const r = runs[runs.length - 1];
    if (r && r[1] === p) r[1] = p + step;
    else runs.push([p, p + step]);
  }
  const minRun = Math.round((o.minUncoveredMs / 1000) * rate);
  const srcHay = s.length >= step ? haystack(s, B) : null;
  const repeats: Repeat[] = [];
  const garbage: Garbage[] = [];
  for (const [start, end] of runs) {
    if (end - start < minRun) continue;
    // Classify it piecewise, in blocks (the last one may be short).
    for (let p = start; p < end; p += B) {
      const len = Math.min(B, end - p);
      if (len < minRun && p > start) {
        // A short tail joins the classification of the piece before it.
        const prev = repeats[repeats.length - 1] ?? garbage[garbage.length - 1];
        if (prev) prev.captureEndMs = ms(end);
        break;
      }
      const hit = srcHay?.search(c.subarray(p, p + len)) ?? null;
      if (hit && hit.score >= o.minScore) {
        const prev = repeats[repeats.length - 1];
        if (prev && prev.captureEndMs === ms(p)) prev.captureEndMs = ms(p + len);
        else repeats.push({ captureStartMs: ms(p), captureEndMs: ms(p + len), sourceMs: ms(hit.offset), score: hit.score });
      } else {
        const prev = garbage[garbage.length - 1];
        if (prev && prev.captureEndMs === ms(p)) prev.captureEndMs = ms(p + len);
        else garbage.push({ captureStartMs: ms(p), captureEndMs: ms(p + len), rmsDb: db(rms(c, p, len)), bestScore: hit?.score ?? 0 });
      }
    }
  }

  // 7. Level steps along the source: medians of 5 blocks' gains either side.
  const gains = matches.map((m) => ({ src: m.src, g: edb(m.cs / m.ss) }));
  const levelSteps: LevelStep[] = [];
  const H = 5;
  let bestK = -1;
  let bestDiff = 0;
  const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
  const meanDiff = (k: number): number => Math.abs(mean(gains.slice(k, k + H).map((x) => x.g)) - mean(gains.slice(k - H, k).map((x) => x.g)));
  const flush = (): void => {
    if (bestK < 0) return;
    // Medians find a step; on their plateau the means peak where it is.
    let at = bestK;
    for (let k = Math.max(H, bestK - H); k <= Math.min(gains.length - H, bestK + H); k++) if (meanDiff(k) > meanDiff(at)) at = k;
    bestK = at;
    levelSteps.push({
      atSourceMs: ms(gains[bestK]!.src),
      fromDb: median(gains.slice(bestK - H, bestK).map((x) => x.g)),
      toDb: median(gains.slice(bestK, bestK + H).map((x) => x.g)),
    });
    bestK = -1;
    bestDiff = 0;
  };
  for (let k = H; k + H <= gains.length; k++) {
    const diff = Math.abs(median(gains.slice(k, k + H).map((x) => x.g)) - median(gains.slice(k - H, k).map((x) => x.g)));
    if (diff > o.levelToleranceDb) {
      if (bestK >= 0 && k - bestK > H) flush();
      if (diff > bestDiff) {
        bestK = k;
        bestDiff = diff;
      }
    } else if (bestK >= 0 && k - bestK > H) flush();
  }
  flush();

  const allCs = matches.reduce((x, m) => x + m.cs, 0);
  const allSs = matches.reduce((x, m) => x + m.ss, 0);
  return {
    sourceMs: ms(s.length),
    captureMs: ms(c.length),
    sourceActiveMs: ms(sourceActive),
    sourceCoveredMs: ms(sourceCovered),
    missingHeadMs: ms(missingHead),
    missingTailMs: ms(missingTail),
    missingMs: ms(missingAt.length * step),
    segments,
    gaps,
    outOfOrder,
    repeats,
    garbage,
    gainDb: matches.length ? edb(allCs / allSs) : -Infinity,
    levelSteps,
    windowMs: [ms(window[0]), ms(window[1])],
  };
}

export interface ProofCriteria {
  /** Gaps allowed (the issue: one at most). */
  maxGaps?: number;
  /** Source that may be lost in all (default 0: the whole source). */
  maxLostMs?: number;
  /** Level change allowed across a gap, dB. */
  maxGapLevelChangeDb?: number;
  /** Source positions (ms) where the level is meant to change (a mixer change); each within toleranceMs. */
  expectedLevelSteps?: { atSourceMs: number; toleranceMs: number }[];
}

/** What keeps the capture from proving the source was played; empty when it does. */
export function proofFailures(r: ProofReport, criteria: ProofCriteria = {}): string[] {
  const maxGaps = criteria.maxGaps ?? 1;
  const maxLost = criteria.maxLostMs ?? 0;
  const maxLevel = criteria.maxGapLevelChangeDb ?? 1;
  const f: string[] = [];
  const f0 = (x: number): string => x.toFixed(0);
  if (r.segments.length === 0) return [`the source (${f0(r.sourceActiveMs)} ms of sound) was not found in the capture at all`];
  if (r.gaps.length > maxGaps) f.push(`${r.gaps.length} gaps (at most ${maxGaps} allowed): at ${r.gaps.map((g) => `${f0(g.atSourceMs)} ms`).join(', ')} of the source`);
  if (r.missingMs > maxLost) f.push(`${f0(r.missingMs)} ms of the source's sound never played (head ${f0(r.missingHeadMs)} ms, tail ${f0(r.missingTailMs)} ms; ${maxLost} ms allowed)`);
  if (r.outOfOrder > 0) f.push(`${r.outOfOrder} segments played out of order`);
  for (const x of r.repeats) f.push(`repeated: capture ${f0(x.captureStartMs)}-${f0(x.captureEndMs)} ms replays the source at ${f0(x.sourceMs)} ms`);
  for (const x of r.garbage) f.push(`garbage: capture ${f0(x.captureStartMs)}-${f0(x.captureEndMs)} ms (${x.rmsDb.toFixed(1)} dBFS) matches no part of the source (best NCC ${x.bestScore.toFixed(2)})`);
  for (const g of r.gaps) {
    if (Math.abs(g.levelChangeDb) > maxLevel) f.push(`the level changed by ${g.levelChangeDb.toFixed(1)} dB across the gap at ${f0(g.atSourceMs)} ms`);
  }
  const expected = criteria.expectedLevelSteps ?? [];
  for (const st of r.levelSteps) {
    if (!expected.some((e) => Math.abs(e.atSourceMs - st.atSourceMs) <= e.toleranceMs)) {
      f.push(`unexpected level step at ${f0(st.atSourceMs)} ms of the source: ${st.fromDb.toFixed(1)} -> ${st.toDb.toFixed(1)} dB`);
    }
  }
  for (const e of expected) {
    if (!r.levelSteps.some((st) => Math.abs(e.atSourceMs - st.atSourceMs) <= e.toleranceMs)) f.push(`no level step near ${f0(e.atSourceMs)} ms of the source`);
  }
  return f;
}

/** A human-readable account of the report, and the verdict under `criteria`. */
export function describeProof(r: ProofReport, criteria: ProofCriteria = {}): string {
  const f0 = (x: number): string => x.toFixed(0);
  const lines = [
    `source ${f0(r.sourceMs)} ms (${f0(r.sourceActiveMs)} ms of sound), capture ${f0(r.captureMs)} ms; ${f0(r.sourceCoveredMs)} ms of the source's sound found, gain ${r.gainDb.toFixed(1)} dB`,
    ...r.segments.map((g, k) => `  segment ${k}: source ${f0(g.sourceStartMs)}-${f0(g.sourceEndMs)} ms at capture ${f0(g.captureStartMs)}-${f0(g.captureEndMs)} ms, gain ${g.gainDb.toFixed(1)} dB, NCC ${g.score.toFixed(3)}`),
    ...r.gaps.map((g) => `  gap at source ${f0(g.atSourceMs)} ms / capture ${f0(g.atCaptureMs)} ms: source lost ${f0(g.sourceLostMs)} ms, capture gap ${f0(g.captureGapMs)} ms (${f0(g.captureSilentMs)} ms silent), level ${g.levelChangeDb >= 0 ? '+' : ''}${g.levelChangeDb.toFixed(1)} dB`),
    ...r.levelSteps.map((x) => `  level step at source ${f0(x.atSourceMs)} ms: ${x.fromDb.toFixed(1)} -> ${x.toDb.toFixed(1)} dB`),
  ];
  const failures = proofFailures(r, criteria);
  lines.push(failures.length === 0 ? 'verdict: PROVEN: the whole source played in order' : `verdict: NOT PROVEN:\n  - ${failures.join('\n  - ')}`);
  return lines.join('\n');
}
