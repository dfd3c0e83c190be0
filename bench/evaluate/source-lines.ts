// Counts source lines the way the seed's code-size table counts them (lines
// of code): a line that holds anything besides whitespace and comments. C,
// TypeScript and bpftrace share one comment syntax (// and /* */); make and
// shell files use '#'. String and character literals are followed, so a "//"
// or "/*" inside one is not taken for a comment.
import { extname, basename } from 'node:path';

export type CommentStyle = 'c' | 'hash';

export interface LineCount {
  /** Every line, blank and comment lines included. */
  lines: number;
  /** Lines with code on them. */
  code: number;
}

/** The comment syntax of a file by its name, or null for a file that is not source. */
export function commentStyleOf(path: string): CommentStyle | null {
  const name = basename(path);
  if (name === 'Makefile' || name === 'Kbuild') return 'hash';
  switch (extname(name)) {
    case '.c':
    case '.h':
    case '.ts':
    case '.bt':
      return 'c';
    case '.mk':
    case '.sh':
      return 'hash';
    default:
      return null;
  }
}

export function countLines(text: string, style: CommentStyle): LineCount {
  const rows = text.split('\n');
  if (rows.at(-1) === '') rows.pop();
  if (style === 'hash') {
    const code = rows.filter((r) => r.trim() !== '' && !r.trim().startsWith('#')).length;
    return { lines: rows.length, code };
  }
  let code = 0;
  let inBlock = false;
  /** The quote of a literal still open at the end of a line (a template literal may span lines). */
  let inString: string | null = null;
  for (const row of rows) {
    let hasCode = inString !== null;
    for (let i = 0; i < row.length; i++) {
      const ch = row[i]!;
      if (inBlock) {
        if (ch === '*' && row[i + 1] === '/') {
          inBlock = false;
          i++;
        }
      } else if (inString !== null) {
        if (ch === '\\') i++;
        else if (ch === inString) inString = null;
      } else if (ch === '/' && row[i + 1] === '/') {
        break;
      } else if (ch === '/' && row[i + 1] === '*') {
        inBlock = true;
        i++;
      } else if (ch === '"' || ch === "'" || ch === '`') {
        inString = ch;
        hasCode = true;
      } else if (ch.trim() !== '') {
        hasCode = true;
      }
    }
    // Only a template literal continues onto the next line.
    if (inString !== '`') inString = null;
    if (hasCode) code++;
  }
  return { lines: rows.length, code };
}
