import { describe, expect, it } from 'vitest';
import { durationMs, encodeWav, mono, parseWav } from '../../vm/audio/wav.js';

const left = Float32Array.from([0, 0.5, -0.5, 0.25]);
const right = Float32Array.from([0.1, -0.1, 0.2, -0.2]);

describe('WAV reading', () => {
  it.each(['s16', 's32', 'f32'] as const)('reads back %s stereo', (format) => {
    const w = parseWav(encodeWav([left, right], 48000, format));
    expect(w).toMatchObject({ rate: 48000, channels: 2, format, frames: 4, headerRepaired: false });
    for (let i = 0; i < 4; i++) {
      expect(w.data[0]![i]).toBeCloseTo(left[i]!, 4);
      expect(w.data[1]![i]).toBeCloseTo(right[i]!, 4);
    }
    expect(mono(w)[1]).toBeCloseTo(0.2, 4);
    expect(durationMs(w)).toBeCloseTo((4 / 48000) * 1000, 6);
  });

  it("tolerates QEMU's unfinished header (sizes 0) and a truncated file (sizes too big)", () => {
    const full = encodeWav([left, right], 44100);
    const unfinished = Uint8Array.from(full);
    const v = new DataView(unfinished.buffer);
    v.setUint32(4, 0, true);
    v.setUint32(40, 0, true);
    // QEMU's data arrives in stdio-buffer pieces: a half frame at the end is cut off.
    const w = parseWav(unfinished.subarray(0, full.length - 2));
    expect(w).toMatchObject({ frames: 3, headerRepaired: true });
    expect(w.data[0]![2]).toBeCloseTo(-0.5, 4);
    const truncated = parseWav(full.subarray(0, 44 + 8));
    expect(truncated).toMatchObject({ frames: 2, headerRepaired: true });
  });

  it('reads 8-bit, 24-bit and WAVE_FORMAT_EXTENSIBLE files, skipping unknown chunks', () => {
    // A hand-made extensible 24-bit mono file with a LIST chunk before the data.
    const samples = [0x400000, -0x400000]; // +0.5, -0.5
    const fmt = new Uint8Array(48);
    const fv = new DataView(fmt.buffer);
    fmt.set([...'fmt '].map((c) => c.charCodeAt(0)), 0);
    fv.setUint32(4, 40, true);
    fv.setUint16(8, 0xfffe, true); fv.setUint16(10, 1, true); fv.setUint32(12, 8000, true);
    fv.setUint32(16, 24000, true); fv.setUint16(20, 3, true); fv.setUint16(22, 24, true);
    fv.setUint16(24, 22, true); fv.setUint16(26, 24, true); fv.setUint32(28, 4, true);
    fv.setUint16(32, 1, true); // sub-format: PCM
    const list = Uint8Array.from([...'LIST'].map((c) => c.charCodeAt(0)).concat([3, 0, 0, 0, 1, 2, 3, 0]));
    const data = new Uint8Array(8 + 6);
    const dv = new DataView(data.buffer);
    data.set([...'data'].map((c) => c.charCodeAt(0)), 0);
    dv.setUint32(4, 6, true);
    samples.forEach((s, i) => {
      dv.setUint8(8 + 3 * i, s & 0xff); dv.setUint8(9 + 3 * i, (s >> 8) & 0xff); dv.setInt8(10 + 3 * i, s >> 16);
    });
    const body = [...fmt, ...list, ...data];
    const head = new Uint8Array(12);
    const hv = new DataView(head.buffer);
    head.set([...'RIFF'].map((c) => c.charCodeAt(0)), 0);
    hv.setUint32(4, 4 + body.length, true);
    head.set([...'WAVE'].map((c) => c.charCodeAt(0)), 8);
    const w = parseWav(Uint8Array.from([...head, ...body]));
    expect(w).toMatchObject({ rate: 8000, channels: 1, format: 's24', frames: 2, headerRepaired: false });
    expect(Array.from(w.data[0]!)).toEqual([0.5, -0.5]);

    const u8 = encodeWav([Float32Array.from([0])], 8000);
    const u8v = new DataView(u8.buffer);
    u8v.setUint16(32, 1, true); u8v.setUint16(34, 8, true); u8v.setUint32(40, 2, true);
    u8[44] = 192; u8[45] = 64;
    expect(Array.from(parseWav(u8).data[0]!)).toEqual([0.5, -0.5]);
  });

  it('refuses what is not a PCM WAV file', () => {
    expect(() => parseWav(new TextEncoder().encode('ID3 not a wav file at all'))).toThrow('not a RIFF WAVE');
    const bad = encodeWav([left], 8000);
    new DataView(bad.buffer).setUint16(20, 2, true); // ADPCM
    expect(() => parseWav(bad)).toThrow('unsupported WAV sample format');
    expect(() => parseWav(encodeWav([left], 8000).subarray(0, 36))).toThrow('no data chunk');
  });
});
