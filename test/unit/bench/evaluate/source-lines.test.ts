import { describe, expect, it } from 'vitest';
import { commentStyleOf, countLines } from '../../../../bench/evaluate/source-lines.js';

describe('countLines', () => {
  it('counts code lines in C, not blank lines or comments', () => {
    const c = ['// SPDX', '#include <x.h>', '', '/*', ' * a comment', ' */', 'int a; /* trailing */', '   ', 'int b; // also', '/* one */ int c;'].join('\n');
    expect(countLines(`${c}\n`, 'c')).toEqual({ lines: 10, code: 4 });
  });
  it('does not take comment markers inside literals for comments', () => {
    expect(countLines('const u = "http://x";\nconst s = \'/*\';\nconst t = 1;\n', 'c')).toEqual({ lines: 3, code: 3 });
    expect(countLines('char *p = "a\\"//b";\n', 'c').code).toBe(1);
  });
  it('follows a template literal across lines and a block comment across lines', () => {
    expect(countLines('const t = `a\n\n// not a comment\n`;\n/* x\n y */\n', 'c')).toEqual({ lines: 6, code: 4 });
  });
  it('counts # comments in make and shell files', () => {
    expect(countLines('# c\nobj-m += x.o\n\n  # indented\nx-y := a.o\n', 'hash')).toEqual({ lines: 5, code: 2 });
  });
});

describe('commentStyleOf', () => {
  it('knows the repository\'s and the kernel\'s source files, and nothing else', () => {
    expect(['a.c', 'a.h', 'a.ts', 'a.bt', 'Makefile', 'a.mk', 'a.sh', 'README.md', 'a.o'].map(commentStyleOf)).toEqual(['c', 'c', 'c', 'c', 'hash', 'hash', 'hash', null, null]);
  });
});
