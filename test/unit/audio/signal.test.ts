// The audio proof's resampler: a tone below the cutoff comes through at its
// level and phase, one above it is removed, and the taps computed once per
// phase (integer rates) give what the per-sample taps give.
import { describe, expect, it } from 'vitest';
import { resample, rms } from '../../vm/audio/signal.js';

const tone = (hz: number, rate: number, seconds: number): Float32Array =>
  Float32Array.from({ length: Math.round(rate * seconds) }, (_, i) => 0.5 * Math.sin((2 * Math.PI * hz * i) / rate));

describe('resample', () => {
  it.each([44100, 48000, 22050])('keeps a 440 Hz tone from %i Hz to 8 kHz (level and phase), away from the ends', (from) => {
    const out = resample(tone(440, from, 1), from, 8000, 1600);
    expect(out.length).toBe(8000);
    const want = tone(440, 8000, 1);
    let worst = 0;
    for (let i = 400; i < 7600; i++) worst = Math.max(worst, Math.abs(out[i]! - want[i]!));
    expect(worst).toBeLessThan(5e-3);
  });

  it('removes a 3 kHz tone above a 1.6 kHz cutoff', () => {
    const out = resample(tone(3000, 44100, 1), 44100, 8000, 1600);
    expect(rms(out, 400, 7200)).toBeLessThan(0.01 * rms(tone(3000, 8000, 1)));
  });

  it('gives the same samples with taps made per phase (integer rates) as with taps made per sample', () => {
    const x = tone(440, 44100, 0.5).map((v, i) => v + 0.2 * Math.sin(i * 0.37));
    const perPhase = resample(x, 44100, 8000, 1600);
    // A rate a hair off an integer has no common period with 8 kHz: every output sample gets its own taps.
    const perSample = resample(x, 44100 * (1 + 1e-15), 8000, 1600);
    expect(Math.abs(perSample.length - perPhase.length)).toBeLessThanOrEqual(1);
    let worst = 0;
    for (let i = 0; i < Math.min(perPhase.length, perSample.length); i++) worst = Math.max(worst, Math.abs(perPhase[i]! - perSample[i]!));
    expect(worst).toBeLessThan(1e-6);
  });
});
