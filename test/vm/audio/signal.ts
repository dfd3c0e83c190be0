// Signal helpers of the audio proof: band-limited resampling to the analysis
// rate, a radix-2 FFT, and normalised cross-correlation (local by direct sum,
// global by FFT).

/**
 * Resamples `x` (at `fromRate`) to `toRate` with a Hann-windowed sinc
 * low-pass, evaluated at each output instant: no aliasing of what lies above
 * the new Nyquist frequency. The cutoff is `cutoffHz`, at most 0.45 of the
 * lower rate (the default).
 */
export function resample(x: Float32Array, fromRate: number, toRate: number, cutoffHz?: number): Float32Array {
  const ratio = fromRate / toRate;
  const maxCutoff = 0.45 * Math.min(fromRate, toRate);
  if (fromRate === toRate && (cutoffHz === undefined || cutoffHz >= maxCutoff)) return Float32Array.from(x);
  const n = Math.floor((x.length * toRate) / fromRate);
  const out = new Float32Array(n);
  const cutoff = Math.min(maxCutoff, cutoffHz ?? maxCutoff) / fromRate; // in cycles per input sample
  const half = Math.ceil(8 / (2 * cutoff)); // 8 zero crossings each side
  const tap = (d: number): number => {
    const w = 0.5 + 0.5 * Math.cos((Math.PI * d) / half);
    const a = 2 * Math.PI * cutoff * d;
    return 2 * cutoff * (d === 0 ? 1 : Math.sin(a) / a) * w;
  };
  // Integer rates repeat the output instants' fractional phase every
  // toRate / gcd outputs: the taps of each phase are then computed once
  // (8 kHz from 44.1 kHz: 80 phases), not once per output sample.
  const g = Number.isInteger(fromRate) && Number.isInteger(toRate) ? gcd(fromRate, toRate) : 0;
  const phases = g > 0 ? toRate / g : 0;
  const phaseTaps = phases > 0 && phases <= MAX_PHASES ? Array.from({ length: phases }, (_, p) => {
    const t = (p * fromRate) / toRate;
    const first = Math.ceil(t - half);
    return { first, taps: Float64Array.from({ length: Math.floor(t + half) - first + 1 }, (_, j) => tap(first + j - t)) };
  }) : null;
  for (let k = 0; k < n; k++) {
    let acc = 0;
    if (phaseTaps) {
      const { first, taps } = phaseTaps[k % phases]!;
      const base = Math.floor(k / phases) * (fromRate / g) + first;
      const j0 = Math.max(0, -base);
      const j1 = Math.min(taps.length - 1, x.length - 1 - base);
      for (let j = j0; j <= j1; j++) acc += x[base + j]! * taps[j]!;
    } else {
      const t = k * ratio;
      const hi = Math.min(x.length - 1, Math.floor(t + half));
      for (let i = Math.max(0, Math.ceil(t - half)); i <= hi; i++) acc += x[i]! * tap(i - t);
    }
    out[k] = acc;
  }
  return out;
}

/** More phases than this are computed per output sample (a rate pair with no small common period). */
const MAX_PHASES = 4096;

function gcd(a: number, b: number): number {
  while (b) [a, b] = [b, a % b];
  return a;
}

/** In-place radix-2 complex FFT (inverse without the 1/n scale). */
export function fft(re: Float64Array, im: Float64Array, inverse = false): void {
  const n = re.length;
  if (n & (n - 1)) throw new Error(`FFT size ${n} is not a power of two`);
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j]!, re[i]!];
      [im[i], im[j]] = [im[j]!, im[i]!];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = ((inverse ? 2 : -2) * Math.PI) / len;
    const wr = Math.cos(ang);
    const wi = Math.sin(ang);
    for (let i = 0; i < n; i += len) {
      let cr = 1;
      let ci = 0;
      for (let j = 0; j < len / 2; j++) {
        const a = i + j;
        const b = a + len / 2;
        const tr = re[b]! * cr - im[b]! * ci;
        const ti = re[b]! * ci + im[b]! * cr;
        re[b] = re[a]! - tr;
        im[b] = im[a]! - ti;
        re[a] = re[a]! + tr;
        im[a] = im[a]! + ti;
        const ncr = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = ncr;
      }
    }
  }
}

export function energy(x: Float32Array, start: number, len: number): number {
  let e = 0;
  for (let i = start; i < start + len; i++) e += x[i]! * x[i]!;
  return e;
}

export function rms(x: Float32Array, start = 0, len = x.length - start): number {
  return len > 0 ? Math.sqrt(energy(x, start, len) / len) : 0;
}

export function dot(a: Float32Array, aStart: number, b: Float32Array, bStart: number, len: number): number {
  let s = 0;
  for (let i = 0; i < len; i++) s += a[aStart + i]! * b[bStart + i]!;
  return s;
}

/** Normalised cross-correlation of a[aStart..+len] with b[bStart..+len] (0 when either is all zero). */
export function ncc(a: Float32Array, aStart: number, b: Float32Array, bStart: number, len: number): number {
  const ea = energy(a, aStart, len);
  const eb = energy(b, bStart, len);
  return ea > 0 && eb > 0 ? dot(a, aStart, b, bStart, len) / Math.sqrt(ea * eb) : 0;
}

export interface Hit {
  offset: number;
  score: number;
}

/** Best NCC of `block` against `hay` at offsets lo..hi (clamped). */
export function searchLocal(block: Float32Array, hay: Float32Array, lo: number, hi: number): Hit | null {
  const len = block.length;
  lo = Math.max(0, lo);
  hi = Math.min(hay.length - len, hi);
  if (hi < lo) return null;
  const eBlock = energy(block, 0, len);
  if (eBlock === 0) return null;
  let eWin = energy(hay, lo, len);
  let best: Hit | null = null;
  for (let o = lo; o <= hi; o++) {
    if (o > lo) eWin += hay[o + len - 1]! ** 2 - hay[o - 1]! ** 2;
    if (eWin <= 1e-12) continue;
    const s = dot(block, 0, hay, o, len) / Math.sqrt(eBlock * eWin);
    if (!best || s > best.score) best = { offset: o, score: s };
  }
  return best;
}

/** A haystack prepared once for any number of global searches by FFT. */
export class Haystack {
  readonly size: number;
  private readonly re: Float64Array;
  private readonly im: Float64Array;
  private readonly prefix: Float64Array;

  constructor(readonly x: Float32Array, maxBlock: number) {
    let size = 1;
    while (size < x.length + maxBlock) size <<= 1;
    this.size = size;
    this.re = new Float64Array(size);
    this.im = new Float64Array(size);
    this.re.set(x);
    fft(this.re, this.im);
    this.prefix = new Float64Array(x.length + 1);
    for (let i = 0; i < x.length; i++) this.prefix[i + 1] = this.prefix[i]! + x[i]! * x[i]!;
  }

  /** Best NCC of `block` at any offset; windows with less than `minEnergy` of the block's energy are skipped. */
  search(block: Float32Array, minEnergyRatio = 1e-4): Hit | null {
    const len = block.length;
    if (len > this.x.length) return null;
    const eBlock = energy(block, 0, len);
    if (eBlock === 0) return null;
    const re = new Float64Array(this.size);
    const im = new Float64Array(this.size);
    re.set(block);
    fft(re, im);
    // hay * conj(block): the correlation at each lag.
    for (let i = 0; i < this.size; i++) {
      const hr = this.re[i]!;
      const hi = this.im[i]!;
      const br = re[i]!;
      const bi = -im[i]!;
      re[i] = hr * br - hi * bi;
      im[i] = hr * bi + hi * br;
    }
    fft(re, im, true);
    let best: Hit | null = null;
    for (let o = 0; o + len <= this.x.length; o++) {
      const eWin = this.prefix[o + len]! - this.prefix[o]!;
      if (eWin < eBlock * minEnergyRatio || eWin <= 1e-12) continue;
      const s = re[o]! / this.size / Math.sqrt(eBlock * eWin);
      if (!best || s > best.score) best = { offset: o, score: s };
    }
    return best;
  }
}
