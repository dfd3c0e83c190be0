// The audio proof on synthetic captures: each case is built from the test
// signal rendered at the capture's own rate (no shared resampler), quantised
// to S16 through a WAV file like QEMU's, and must get the verdict it deserves.
import { describe, expect, it } from 'vitest';
import { describeProof, proofFailures, proveSound, type ProofReport } from '../../vm/audio/proof.js';
import { renderTestSignal, testSignalAt } from '../../vm/audio/test-signal.js';
import { encodeWav, parseWav, type Wav } from '../../vm/audio/wav.js';

const SECONDS = 8;
const SRC_RATE = 44100;

function wavOf(x: Float32Array, rate: number, channels = 2): Wav {
  return parseWav(encodeWav(Array.from({ length: channels }, () => x), rate));
}

const source = wavOf(renderTestSignal({ seconds: SECONDS, rate: SRC_RATE }), SRC_RATE);

/** A capture made of pieces: source spans [from, to) in seconds (with a gain), silence, or noise. */
type Piece = { src: [number, number]; gain?: number } | { silence: number } | { noise: number; level: number };

function capture(pieces: Piece[], rate = 44100): Wav {
  const f = testSignalAt(SECONDS);
  const out: number[] = [];
  let seed = 12345;
  const rnd = (): number => {
    seed = (seed * 1103515245 + 12345) % 2147483648;
    return seed / 2147483648;
  };
  for (const p of pieces) {
    if ('src' in p) {
      const n = Math.round((p.src[1] - p.src[0]) * rate);
      for (let i = 0; i < n; i++) out.push(0.5 * (p.gain ?? 1) * f(p.src[0] + i / rate));
    } else if ('silence' in p) {
      for (let i = 0; i < Math.round(p.silence * rate); i++) out.push(0);
    } else {
      for (let i = 0; i < Math.round(p.noise * rate); i++) out.push(p.level * (rnd() * 2 - 1));
    }
  }
  return wavOf(Float32Array.from(out), rate);
}

function prove(c: Wav): ProofReport {
  const r = proveSound(source, c);
  console.log(describeProof(r));
  return r;
}

// Correlating seconds of audio is CPU work: on a loaded machine (a guest beside it) a test takes several seconds.
describe('audio proof', { timeout: 30_000 }, () => {
  it('proves a clean copy played late, between silences', () => {
    // 0.73006 s: the copy lies a fraction of an analysis sample off the source's grid.
    const r = prove(capture([{ silence: 0.73006 }, { src: [0, SECONDS] }, { silence: 0.5 }]));
    expect(proofFailures(r)).toEqual([]);
    expect(r.segments).toHaveLength(1);
    expect(r.segments[0]!.score).toBeGreaterThan(0.95);
    expect(r.segments[0]!.captureStartMs).toBeCloseTo(730, -1);
    expect(r.gaps).toEqual([]);
    expect(r.missingMs).toBe(0);
    expect(Math.abs(r.gainDb)).toBeLessThan(0.2);
  });

  it('finds one gap, with the source lost and the silence inserted', () => {
    const r = prove(capture([{ src: [0, 3] }, { silence: 0.5 }, { src: [3.3, SECONDS] }]));
    expect(r.gaps).toHaveLength(1);
    const g = r.gaps[0]!;
    expect(g.atSourceMs).toBeGreaterThan(2980);
    expect(g.atSourceMs).toBeLessThan(3020);
    expect(g.sourceLostMs).toBeGreaterThan(270);
    expect(g.sourceLostMs).toBeLessThan(330);
    expect(g.captureGapMs).toBeGreaterThan(470);
    expect(g.captureGapMs).toBeLessThan(530);
    expect(g.captureSilentMs).toBeGreaterThan(450);
    // The whole source is asked for by default: 300 ms lost fails ...
    expect(proofFailures(r).join('\n')).toContain('never played');
    // ... and passes when the test allows that loss.
    expect(proofFailures(r, { maxLostMs: 350 })).toEqual([]);
  });

  it('passes a single pause with nothing lost (one gap allowed), and reports its length', () => {
    const r = prove(capture([{ src: [0, 5] }, { silence: 0.8 }, { src: [5, SECONDS] }]));
    expect(r.gaps).toHaveLength(1);
    expect(Math.abs(r.gaps[0]!.sourceLostMs)).toBeLessThanOrEqual(20);
    expect(r.gaps[0]!.captureGapMs).toBeGreaterThan(780);
    expect(r.gaps[0]!.captureGapMs).toBeLessThan(820);
    expect(proofFailures(r, { maxLostMs: 20 })).toEqual([]);
  });

  it('fails two gaps', () => {
    const r = prove(capture([{ src: [0, 2] }, { silence: 0.3 }, { src: [2, 5] }, { silence: 0.4 }, { src: [5, SECONDS] }]));
    expect(r.gaps).toHaveLength(2);
    expect(proofFailures(r, { maxLostMs: 20 }).join('\n')).toContain('2 gaps');
  });

  it('fails a repeated segment and says where it comes from', () => {
    const r = prove(capture([{ src: [0, 4] }, { src: [3.5, SECONDS] }]));
    expect(r.repeats.length).toBeGreaterThanOrEqual(1);
    const rep = r.repeats[0]!;
    expect(rep.sourceMs).toBeGreaterThan(3450);
    expect(rep.sourceMs).toBeLessThan(3600);
    expect(rep.captureEndMs - rep.captureStartMs).toBeGreaterThan(400);
    expect(r.missingMs).toBe(0);
    expect(proofFailures(r).join('\n')).toContain('repeated');
  });

  it('fails inserted noise as garbage', () => {
    const r = prove(capture([{ src: [0, 4] }, { noise: 0.3, level: 0.2 }, { src: [4, SECONDS] }]));
    expect(r.garbage).toHaveLength(1);
    expect(r.garbage[0]!.captureStartMs).toBeGreaterThan(3980);
    expect(r.garbage[0]!.captureEndMs).toBeLessThan(4320);
    expect(r.garbage[0]!.captureEndMs - r.garbage[0]!.captureStartMs).toBeGreaterThan(250);
    expect(r.repeats).toEqual([]);
    expect(proofFailures(r).join('\n')).toContain('garbage');
  });

  it('fails a level change across the gap', () => {
    const r = prove(capture([{ src: [0, 4] }, { silence: 0.2 }, { src: [4, SECONDS], gain: 0.5 }]));
    expect(r.gaps).toHaveLength(1);
    expect(r.gaps[0]!.levelChangeDb).toBeCloseTo(-6.02, 0);
    expect(proofFailures(r).join('\n')).toContain('level changed by -6.0 dB');
  });

  it('reports a level step without a gap, which passes only where it is expected', () => {
    const r = prove(capture([{ src: [0, 5] }, { src: [5, SECONDS], gain: 0.5 }]));
    expect(r.gaps).toEqual([]);
    expect(r.levelSteps).toHaveLength(1);
    expect(r.levelSteps[0]!.atSourceMs).toBeGreaterThan(4800);
    expect(r.levelSteps[0]!.atSourceMs).toBeLessThan(5200);
    expect(r.levelSteps[0]!.toDb - r.levelSteps[0]!.fromDb).toBeCloseTo(-6.02, 0);
    expect(proofFailures(r).join('\n')).toContain('unexpected level step');
    expect(proofFailures(r, { expectedLevelSteps: [{ atSourceMs: 5000, toleranceMs: 300 }] })).toEqual([]);
    // An expected step that did not happen fails too.
    const flat = prove(capture([{ src: [0, SECONDS] }]));
    expect(proofFailures(flat, { expectedLevelSteps: [{ atSourceMs: 5000, toleranceMs: 300 }] }).join('\n')).toContain('no level step');
  });

  it.each([
    [44100, 48000],
    [48000, 44100],
  ])('proves a copy across a rate conversion (source %i Hz, capture %i Hz)', (srcRate, capRate) => {
    const src = wavOf(renderTestSignal({ seconds: SECONDS, rate: srcRate }), srcRate);
    const r = proveSound(src, capture([{ silence: 0.30007 }, { src: [0, SECONDS] }, { silence: 0.2 }], capRate));
    console.log(describeProof(r));
    expect(proofFailures(r)).toEqual([]);
    // And a gap is still measured across the conversion.
    const g = proveSound(src, capture([{ src: [0, 4] }, { silence: 0.60003 }, { src: [4.25, SECONDS] }], capRate));
    expect(g.gaps).toHaveLength(1);
    expect(g.gaps[0]!.sourceLostMs).toBeGreaterThan(220);
    expect(g.gaps[0]!.sourceLostMs).toBeLessThan(280);
    expect(g.gaps[0]!.captureGapMs).toBeGreaterThan(570);
    expect(g.gaps[0]!.captureGapMs).toBeLessThan(630);
  });

  it('reports audio that stops (the control: the driver went away)', () => {
    const r = prove(capture([{ src: [0, 3.2] }]));
    expect(r.missingTailMs).toBeGreaterThan(4700);
    expect(proofFailures(r).join('\n')).toContain('never played');
  });

  it('finds nothing in a capture of noise or silence', () => {
    const noise = prove(capture([{ noise: 3, level: 0.3 }]));
    expect(noise.segments).toEqual([]);
    expect(proofFailures(noise)[0]).toContain('not found');
    const silence = prove(capture([{ silence: 2 }]));
    expect(proofFailures(silence)[0]).toContain('not found');
  });

  it("in 'span' mode ignores other sound before and after the source", () => {
    const c = capture([{ noise: 1, level: 0.2 }, { src: [0, SECONDS] }, { noise: 1, level: 0.2 }]);
    expect(proofFailures(proveSound(source, c)).join('\n')).toContain('garbage');
    const r = proveSound(source, c, { window: 'span' });
    expect(proofFailures(r)).toEqual([]);
  });

  it('judges the capture in an explicit window: what plays after the source up to its end is a repeat', () => {
    // The source, then its last 0.3 s once more (a stale ring looping on after the end), then silence and other sound.
    const c = capture([{ silence: 0.5 }, { src: [0, SECONDS] }, { src: [SECONDS - 0.3, SECONDS] }, { silence: 0.5 }, { noise: 1, level: 0.2 }]);
    expect(proofFailures(proveSound(source, c, { window: 'span' }))).toEqual([]);
    const r = proveSound(source, c, { windowMs: [500, 500 + SECONDS * 1000 + 800] });
    expect(r.windowMs[0]).toBeCloseTo(500, 0);
    const f = proofFailures(r);
    expect(f.join('\n')).toContain('repeated');
    expect(f.join('\n')).not.toContain('garbage');
  });
});

describe('test signal', { timeout: 30_000 }, () => {
  it('differs from seed to seed: another seed is not found, it is garbage', () => {
    const other = wavOf(renderTestSignal({ seconds: SECONDS, rate: SRC_RATE, seed: 2 }), SRC_RATE);
    const r = proveSound(source, other);
    expect(r.segments.length).toBeLessThanOrEqual(1);
    expect(r.sourceCoveredMs).toBeLessThan(200);
    expect(proofFailures(r).length).toBeGreaterThan(0);
  });
});
