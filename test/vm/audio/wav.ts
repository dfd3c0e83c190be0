// WAV (RIFF) reading and writing for the sound tests: PCM 8/16/24/32-bit and
// IEEE float 32/64, any channel count and rate, WAVE_FORMAT_EXTENSIBLE too.
// Tolerates a header QEMU's wav backend has not finished: it writes the RIFF
// and data sizes only when it exits, so a file read while the guest runs (or
// after QEMU was killed) says 0, and a truncated file can say more than there
// is; the data then runs to the end of the file, cut to whole frames.

export type SampleFormat = 'u8' | 's16' | 's24' | 's32' | 'f32' | 'f64';

export interface Wav {
  rate: number;
  channels: number;
  format: SampleFormat;
  /** Whole frames in the data. */
  frames: number;
  /** One array per channel, samples scaled to [-1, 1). */
  data: Float32Array[];
  /** True when the header's sizes did not describe the data (unfinished or truncated file). */
  headerRepaired: boolean;
}

const WAVE_FORMAT_PCM = 1;
const WAVE_FORMAT_IEEE_FLOAT = 3;
const WAVE_FORMAT_EXTENSIBLE = 0xfffe;

function formatOf(tag: number, bits: number): SampleFormat {
  if (tag === WAVE_FORMAT_PCM) {
    switch (bits) {
      case 8: return 'u8';
      case 16: return 's16';
      case 24: return 's24';
      case 32: return 's32';
    }
  } else if (tag === WAVE_FORMAT_IEEE_FLOAT) {
    if (bits === 32) return 'f32';
    if (bits === 64) return 'f64';
  }
  throw new Error(`unsupported WAV sample format: tag ${tag}, ${bits} bits`);
}

const BYTES: Record<SampleFormat, number> = { u8: 1, s16: 2, s24: 3, s32: 4, f32: 4, f64: 8 };

export function parseWav(buf: Uint8Array): Wav {
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const tag4 = (off: number): string => String.fromCharCode(...buf.subarray(off, off + 4));
  if (buf.byteLength < 12 || tag4(0) !== 'RIFF' || tag4(8) !== 'WAVE') throw new Error('not a RIFF WAVE file');
  let headerRepaired = view.getUint32(4, true) + 8 !== buf.byteLength;
  let fmt: { format: SampleFormat; channels: number; rate: number; blockAlign: number } | null = null;
  let off = 12;
  while (off + 8 <= buf.byteLength) {
    const id = tag4(off);
    const size = view.getUint32(off + 4, true);
    const body = off + 8;
    if (id === 'fmt ') {
      if (size < 16 || body + 16 > buf.byteLength) throw new Error('WAV fmt chunk is too short');
      let tag = view.getUint16(body, true);
      const channels = view.getUint16(body + 2, true);
      const rate = view.getUint32(body + 4, true);
      const blockAlign = view.getUint16(body + 12, true);
      const bits = view.getUint16(body + 14, true);
      if (tag === WAVE_FORMAT_EXTENSIBLE) {
        if (size < 40) throw new Error('WAV extensible fmt chunk is too short');
        tag = view.getUint16(body + 24, true); // the sub-format GUID starts with the format tag
      }
      const format = formatOf(tag, bits);
      if (channels < 1 || rate < 1 || blockAlign !== channels * BYTES[format]) {
        throw new Error(`bad WAV fmt: ${channels} channels, ${rate} Hz, block ${blockAlign}`);
      }
      fmt = { format, channels, rate, blockAlign };
    } else if (id === 'data') {
      if (!fmt) throw new Error('WAV data chunk before its fmt chunk');
      const available = buf.byteLength - body;
      let bytes = size;
      if (size === 0 || size > available) {
        // QEMU writes the sizes at exit only: the data runs to the end of the file.
        if (size !== available) headerRepaired = true;
        bytes = available;
      }
      return decode(buf.subarray(body, body + bytes), fmt, headerRepaired);
    }
    off = body + size + (size & 1);
  }
  throw new Error(fmt ? 'WAV file has no data chunk' : 'WAV file has no fmt chunk');
}

function decode(bytes: Uint8Array, fmt: { format: SampleFormat; channels: number; rate: number; blockAlign: number }, headerRepaired: boolean): Wav {
  const frames = Math.floor(bytes.byteLength / fmt.blockAlign);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const data = Array.from({ length: fmt.channels }, () => new Float32Array(frames));
  const w = BYTES[fmt.format];
  for (let f = 0; f < frames; f++) {
    for (let c = 0; c < fmt.channels; c++) {
      const p = f * fmt.blockAlign + c * w;
      let v: number;
      switch (fmt.format) {
        case 'u8': v = (view.getUint8(p) - 128) / 128; break;
        case 's16': v = view.getInt16(p, true) / 32768; break;
        case 's24': v = ((view.getUint8(p) | (view.getUint8(p + 1) << 8) | (view.getInt8(p + 2) << 16))) / 8388608; break;
        case 's32': v = view.getInt32(p, true) / 2147483648; break;
        case 'f32': v = view.getFloat32(p, true); break;
        case 'f64': v = view.getFloat64(p, true); break;
      }
      data[c]![f] = v;
    }
  }
  return { rate: fmt.rate, channels: fmt.channels, format: fmt.format, frames, data, headerRepaired };
}

/** The channels' mean, one value per frame. */
export function mono(w: Wav): Float32Array {
  if (w.channels === 1) return w.data[0]!;
  const out = new Float32Array(w.frames);
  for (const ch of w.data) for (let i = 0; i < w.frames; i++) out[i]! += ch[i]!;
  for (let i = 0; i < w.frames; i++) out[i]! /= w.channels;
  return out;
}

export function durationMs(w: Pick<Wav, 'frames' | 'rate'>): number {
  return (w.frames / w.rate) * 1000;
}

/** A PCM WAV file (s16 or s32, or f32) of the given channels, interleaving `data`'s arrays. */
export function encodeWav(data: readonly Float32Array[], rate: number, format: 's16' | 's32' | 'f32' = 's16'): Uint8Array {
  const channels = data.length;
  if (channels < 1) throw new Error('a WAV file needs at least one channel');
  const frames = data[0]!.length;
  const w = BYTES[format];
  const dataBytes = frames * channels * w;
  const buf = new Uint8Array(44 + dataBytes);
  const view = new DataView(buf.buffer);
  const str = (off: number, s: string): void => { for (let i = 0; i < 4; i++) buf[off + i] = s.charCodeAt(i); };
  str(0, 'RIFF'); view.setUint32(4, 36 + dataBytes, true); str(8, 'WAVE');
  str(12, 'fmt '); view.setUint32(16, 16, true);
  view.setUint16(20, format === 'f32' ? WAVE_FORMAT_IEEE_FLOAT : WAVE_FORMAT_PCM, true);
  view.setUint16(22, channels, true); view.setUint32(24, rate, true);
  view.setUint32(28, rate * channels * w, true); view.setUint16(32, channels * w, true); view.setUint16(34, w * 8, true);
  str(36, 'data'); view.setUint32(40, dataBytes, true);
  const clamp = (v: number): number => Math.max(-1, Math.min(1, v));
  for (let f = 0; f < frames; f++) {
    for (let c = 0; c < channels; c++) {
      const p = 44 + (f * channels + c) * w;
      const v = data[c]![f]!;
      if (format === 's16') view.setInt16(p, Math.round(clamp(v) * 32767), true);
      else if (format === 's32') view.setInt32(p, Math.round(clamp(v) * 2147483647), true);
      else view.setFloat32(p, v, true);
    }
  }
  return buf;
}
