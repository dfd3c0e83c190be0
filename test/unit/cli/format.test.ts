// visible(): what the CLI's human views do to a string from the system before
// printing it. A name chosen by whoever named a process or set an alias must
// neither drive the terminal nor reorder the text around it.
import { describe, expect, it } from 'vitest';
import { visible, visibleDeep } from '../../../cli/format.js';

describe('visible', () => {
  it('leaves printable text, other scripts and emoji alone', () => {
    for (const s of ['eth0', 'enp0s3 (e1000)', 'Größe', 'שלום', 'مرحبا', '声卡', '🎵']) expect(visible(s)).toBe(s);
  });

  it('shows C0, DEL and C1 controls as \\xHH, newlines and tabs included', () => {
    expect(visible('up\x1b]0;owned\x07')).toBe('up\\x1b]0;owned\\x07');
    expect(visible('a\nb\tc\rd')).toBe('a\\x0ab\\x09c\\x0dd');
    expect(visible('\x7f\x9b2J')).toBe('\\x7f\\x9b2J');
  });

  it('shows every bidirectional control and the line and paragraph separators as \\uHHHH', () => {
    const reordering = [0x061c, 0x200e, 0x200f, 0x2028, 0x2029, 0x202a, 0x202b, 0x202c, 0x202d, 0x202e, 0x2066, 0x2067, 0x2068, 0x2069];
    for (const cp of reordering) {
      const shown = visible(`a${String.fromCharCode(cp)}b`);
      expect(shown).toBe(`a\\u${cp.toString(16).padStart(4, '0')}b`);
    }
    // An alias that would read "txt.exe" on a terminal reads as what it is.
    expect(visible('\u202eexe.txt')).toBe('\\u202eexe.txt');
  });

  it('leaves the zero-width joiners that emoji and scripts need alone', () => {
    expect(visible('👩\u200d💻')).toBe('👩\u200d💻');
    expect(visible('क\u200dष')).toBe('क\u200dष');
  });

  it('reaches every string of an answer, keys included', () => {
    expect(visibleDeep({ 'k\u202e': ['v\x1b', { n: 1, s: '\u2066x' }], b: null })).toEqual({ 'k\\u202e': ['v\\x1b', { n: 1, s: '\\u2066x' }], b: null });
  });
});
