// The sound tests' source signal: defined as a function of time, so the same
// sound can be rendered at any sample rate without a resampler (a capture
// "played at 48 kHz" is then an independent rendering, not a resampled copy).
// Two chirps in opposite directions, a melody of random notes, a noise bed
// and a syllable envelope, all drawn from a seed: every 100 ms block is
// unlike every other and every seed unlike every other, so alignment is
// unambiguous (a pure sine is not) and two sources on one recording are told
// apart.
import { mulberry32 } from '../rig/seeded-random.js';

export interface TestSignalOptions {
  seconds: number;
  rate: number;
  /** Peak amplitude, 0..1. */
  amplitude?: number;
  /** Silence before and after, in seconds. */
  padSeconds?: number;
  seed?: number;
}

const prng = mulberry32;

/** Noise as a function of time: values at a fixed 1 kHz lattice, cosine-interpolated (band-limited to about 500 Hz). */
function noiseFn(seconds: number, seed: number): (t: number) => number {
  const r = prng(seed);
  const lattice = Float64Array.from({ length: Math.ceil(seconds * 1000) + 2 }, () => r() * 2 - 1);
  return (t: number) => {
    const x = Math.max(0, t * 1000);
    const i = Math.floor(x);
    const f = (1 - Math.cos(Math.PI * (x - i))) / 2;
    return lattice[i]! * (1 - f) + (lattice[i + 1] ?? 0) * f;
  };
}

/** The signal's value at time t (seconds, 0..seconds); 0 outside. Every seed gives a different sound. */
export function testSignalAt(seconds: number, seed = 1): (t: number) => number {
  const r = prng(seed * 7919 + 17);
  const noise = noiseFn(seconds, seed);
  // A chirp up and a chirp down, with seed-drawn ends.
  const f0 = 150 + 200 * r();
  const f1 = 2500 + 1000 * r();
  const k = Math.log(f1 / f0) / seconds;
  const d0 = 2000 + 1000 * r();
  const d1 = 200 + 200 * r();
  // A "melody": a seed-drawn note (300..2500 Hz) every 150 ms, phase-continuous.
  const noteS = 0.15;
  const notes = Float64Array.from({ length: Math.ceil(seconds / noteS) + 1 }, () => 300 * Math.pow(2500 / 300, r()));
  const notePhase = new Float64Array(notes.length + 1);
  for (let i = 0; i < notes.length; i++) notePhase[i + 1] = notePhase[i]! + 2 * Math.PI * notes[i]! * noteS;
  const envRate = 3 + 3 * r();
  const envPhase = 2 * Math.PI * r();
  return (t: number) => {
    if (t < 0 || t > seconds) return 0;
    // Exponential chirp up: phase = 2π f0 (e^{kt} - 1) / k.
    const up = Math.sin((2 * Math.PI * f0 * (Math.exp(k * t) - 1)) / k);
    // Linear chirp down from d0 to d1.
    const down = Math.sin(2 * Math.PI * (d0 * t - ((d0 - d1) / (2 * seconds)) * t * t));
    const n = Math.min(notes.length - 1, Math.floor(t / noteS));
    const note = Math.sin(notePhase[n]! + 2 * Math.PI * notes[n]! * (t - n * noteS));
    const env = 0.7 + 0.3 * Math.sin(2 * Math.PI * envRate * t + envPhase);
    const fade = Math.min(1, t / 0.01, (seconds - t) / 0.01);
    return fade * env * (0.3 * up + 0.2 * down + 0.3 * note + 0.2 * noise(t));
  };
}

/** The signal rendered at `rate`, mono. */
export function renderTestSignal(opts: TestSignalOptions): Float32Array {
  const pad = opts.padSeconds ?? 0;
  const amp = opts.amplitude ?? 0.5;
  const f = testSignalAt(opts.seconds, opts.seed);
  const n = Math.round((opts.seconds + 2 * pad) * opts.rate);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = amp * f(i / opts.rate - pad);
  return out;
}
