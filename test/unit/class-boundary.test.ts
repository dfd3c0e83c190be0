// The class boundary, kept by a test. The network class lives in
// daemon/classes/net/ (and, in the kernel module, kmod/sh_net*); nothing else
// may speak of network devices, and the daemon's folders import each other in
// one direction only:
//
//   main.ts → anything
//   service/ → core/, control/, classes/registry.ts (never a class itself)
//   control/ → core/; service/log.ts for types, service/message-ids.ts
//   core/    → core/ only; service/log.ts for types, service/message-ids.ts
//              (two leaves of service/ that import nothing of the daemon)
//   classes/X/ → core/, its own folder; service/ and control/ for types only;
//              never another class, never the registry
//   classes/registry.ts → the classes; imported only by main.ts and service/
//   (and so classes/declarations.ts, the classes' declarations alone)
//
// Comments do not count: they are stripped before identifiers are matched, so
// core/device-class.ts may say "(net: ifindex)" in an example. String
// literals do count: a log message, an argv or a class id in the core is the
// core knowing the class. Each violation is reported as file:line: word.
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

/** What no code outside the network class may name. Case-insensitive unless the identifier is only ever spelled one way. */
const NETWORK_WORDS: readonly RegExp[] = [
  /ifindex/gi,
  /IFNAMSIZ/g,
  /interface[-_]?name/gi, // isInterfaceName, INTERFACE_NAME, interface-name.js
  /interface names?/g, // "not an interface name" (not the keyword: interface NameRule)
  /dev_valid_name/g,
  /<=?\s*1[56]\b|\b1-15\b/g, // IFNAMSIZ written as a number: 15 bytes and the NUL
  /\bnetwork/gi,
  /\beth\d/g, // example device names: eth0
  /ethtool/gi,
  /net_device/gi,
  /netdev/gi, // NETDEV_*, register_netdev, netdev-shadow.js
  /(['"`])net(?=\1|:)/g, // 'net' as a class id, 'net:eth0' as a device reference
  /rtnl/gi,
  /txstat/gi,
  /tx[-_ ]?stall/gi,
  /tx[-_ ]?timeout/gi,
  /xmit/gi,
  /promisc/gi,
  /allmulti/gi,
  /netif/gi,
  /\bndo_/g,
  /\bsk_?buff|\bskb/g,
  /\bnapi/gi,
  /\bether|\beth_/g,
];

/** Blanks out [start, end) ranges, keeping newlines so lines keep their numbers. */
function blank(text: string, ranges: readonly (readonly [number, number])[]): string {
  const chars = text.split('');
  for (const [start, end] of ranges) for (let i = start; i < end; i++) if (chars[i] !== '\n') chars[i] = ' ';
  return chars.join('');
}

/** Every comment of a TypeScript file, found by the compiler (so // in a string, template or regular expression is no comment). */
function tsComments(sf: ts.SourceFile): [number, number][] {
  const ranges: [number, number][] = [];
  const seen = new Set<number>();
  const visit = (node: ts.Node): void => {
    if (node.kind >= ts.SyntaxKind.FirstJSDocNode && node.kind <= ts.SyntaxKind.LastJSDocNode) return;
    const children = node.getChildren(sf);
    if (children.length > 0) {
      children.forEach(visit);
      return;
    }
    if (seen.has(node.pos)) return;
    seen.add(node.pos);
    // A comment on the line of the token before is its trailing comment; the rest lead this token.
    for (const r of ts.getTrailingCommentRanges(sf.text, node.pos) ?? []) ranges.push([r.pos, r.end]);
    for (const r of ts.getLeadingCommentRanges(sf.text, node.pos) ?? []) ranges.push([r.pos, r.end]);
  };
  visit(sf);
  return ranges;
}

/** Every comment of a C file: // and block comments outside string and character literals. */
function cComments(text: string): [number, number][] {
  const ranges: [number, number][] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '/' && text[i + 1] === '/') {
      const end = text.indexOf('\n', i);
      ranges.push([i, end < 0 ? text.length : end]);
      i = end < 0 ? text.length : end;
    } else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      ranges.push([i, end < 0 ? text.length : end + 2]);
      i = end < 0 ? text.length : end + 2;
    } else if (c === '"' || c === "'") {
      for (i++; i < text.length && text[i] !== c && text[i] !== '\n'; i++) if (text[i] === '\\') i++;
      i++;
    } else {
      i++;
    }
  }
  return ranges;
}

/** `file:line: word` for every network word in the code (comments stripped) of one file. */
export function networkWords(file: string, code: string): string[] {
  const out = new Set<string>();
  code.split('\n').forEach((line, index) => {
    for (const re of NETWORK_WORDS) {
      for (const m of line.matchAll(re)) {
        // The whole identifier (or quoted literal) the match is part of.
        let start = m.index;
        let end = m.index + m[0].length;
        while (start > 0 && /[\w$]/.test(line[start - 1]!)) start--;
        while (end < line.length && /[\w$]/.test(line[end]!)) end++;
        if (m[1] !== undefined) end = line.includes(m[1], end) ? line.indexOf(m[1], end) + 1 : line.length; // the whole literal
        out.add(`${file}:${index + 1}: ${line.slice(start, end)}`);
      }
    }
  });
  return [...out];
}

function walk(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => (d.isDirectory() ? walk(join(dir, d.name)) : [join(dir, d.name)]));
}

const rel = (path: string): string => relative(REPO, path).split('\\').join('/');

interface Import {
  line: number;
  /** As written. */
  spec: string;
  /** Repository-relative .ts path, for relative specifiers. */
  target: string | null;
  typeOnly: boolean;
}

/** Every import, re-export and dynamic import of a TypeScript file. */
function importsOf(path: string, sf: ts.SourceFile): Import[] {
  const out: Import[] = [];
  const add = (node: ts.Node, specNode: ts.Expression | undefined, typeOnly: boolean): void => {
    if (!specNode || !ts.isStringLiteral(specNode)) return;
    const spec = specNode.text;
    const target = spec.startsWith('.') ? rel(resolve(dirname(path), spec)).replace(/\.js$/, '.ts') : null;
    out.push({ line: sf.getLineAndCharacterOfPosition(node.getStart(sf)).line + 1, spec, target, typeOnly });
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      const clause = node.importClause;
      const named = clause?.namedBindings;
      const typeOnly =
        clause !== undefined &&
        (clause.isTypeOnly ||
          (clause.name === undefined && named !== undefined && ts.isNamedImports(named) && named.elements.length > 0 && named.elements.every((e) => e.isTypeOnly)));
      add(node, node.moduleSpecifier, typeOnly);
    } else if (ts.isExportDeclaration(node)) {
      const clause = node.exportClause;
      const typeOnly = node.isTypeOnly || (clause !== undefined && ts.isNamedExports(clause) && clause.elements.length > 0 && clause.elements.every((e) => e.isTypeOnly));
      add(node, node.moduleSpecifier, typeOnly);
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword) {
      add(node, node.arguments[0], false);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node, node.argument.literal, true);
    }
    ts.forEachChild(node, visit);
  };
  visit(sf);
  return out;
}

/** The import rules above, for one import of one daemon file; null when it is allowed. */
export function importViolation(file: string, imp: Import): string | null {
  const target = imp.target;
  if (target === null || !target.startsWith('daemon/')) return null;
  const layer = (p: string): string => p.split('/')[1]!;
  const from = layer(file);
  const to = layer(target);
  const say = (why: string): string => `${file}:${imp.line}: imports ${imp.spec} (${why})`;
  if (file === 'daemon/main.ts') return null;
  const registries = ['daemon/classes/registry.ts', 'daemon/classes/declarations.ts'];
  if (to === 'classes') {
    if (registries.includes(target)) {
      return from === 'service' ? null : say('only main.ts and service/ import the registry');
    }
    if (from !== 'classes') return say('outside the classes, only the registry is imported');
  }
  if (from === 'core' || from === 'control') {
    if (to === 'core' || to === from) return null;
    if (target === 'daemon/service/message-ids.ts') return null;
    if (target === 'daemon/service/log.ts' && imp.typeOnly) return null;
    if (to === 'control') return say('core does not import control');
    return say(`${from}/ imports only core/, types from service/log.ts, and service/message-ids.ts`);
  }
  if (from === 'classes') {
    const own = file.split('/').slice(0, 3).join('/');
    if (registries.includes(file)) return to === 'core' || to === 'classes' ? null : say('the registry imports core/ and the classes');
    if (to === 'classes') return target.startsWith(`${own}/`) ? null : say('a class imports no other class, nor the registry');
    if (to === 'service' || to === 'control') return imp.typeOnly ? null : say(`a class imports ${to}/ for types only`);
  }
  return null;
}

const daemonFiles = walk(join(REPO, 'daemon')).filter((p) => p.endsWith('.ts')).sort();
const sources = daemonFiles.map((path) => {
  const text = readFileSync(path, 'utf8');
  const sf = ts.createSourceFile(path, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  return { file: rel(path), path, text, sf };
});

/**
 * The one place the core may name the network class: migrating a state file
 * written before classes existed, when every device was a NIC with an ifindex
 * column. Each exemption names the file, the word and the text of its line,
 * so it covers that statement and nothing written later.
 */
const MIGRATION_EXEMPTIONS: readonly { file: string; word: string; line: RegExp }[] = [
  { file: 'daemon/core/shadow-store.ts', word: 'ifindex', line: /json_object\('ifindex', ifindex\)|DROP COLUMN ifindex|columns\.includes\('ifindex'\) \? 1 :/ },
  { file: 'daemon/core/recovery-history.ts', word: "'net'", line: /SELECT rowid, id, 'net', device/ },
];

function exempt(violation: string, sourceText: string): boolean {
  const m = /^(.+?):(\d+): (.+)$/.exec(violation);
  if (!m) return false;
  const text = sourceText.split('\n')[Number(m[2]) - 1] ?? '';
  return MIGRATION_EXEMPTIONS.some((e) => e.file === m[1] && e.word === m[3] && e.line.test(text));
}

describe('the class boundary', () => {
  it('no network identifier in the daemon outside daemon/classes/net/', () => {
    const violations = sources
      .filter((s) => !s.file.startsWith('daemon/classes/net/'))
      .flatMap((s) => networkWords(s.file, blank(s.text, tsComments(s.sf))).filter((v) => !exempt(v, s.text)));
    expect(violations).toEqual([]);
  });

  it("no network identifier in kmod/ outside the network class's files (kmod/sh_net*)", () => {
    const violations = walk(join(REPO, 'kmod'))
      // The module's sources; *.mod.c is what modpost generates from them.
      .filter((p) => /\.[ch]$/.test(p) && !p.endsWith('.mod.c') && !/^sh_net/.test(p.split('/').at(-1)!))
      .sort()
      .flatMap((p) => {
        const text = readFileSync(p, 'utf8');
        return networkWords(rel(p), blank(text, cComments(text)));
      });
    expect(violations).toEqual([]);
  });

  it('the daemon imports in one direction: main → service → control → core, classes → core', () => {
    const violations = sources.flatMap((s) => importsOf(s.path, s.sf).flatMap((imp) => importViolation(s.file, imp) ?? []));
    expect(violations).toEqual([]);
  });
});

describe('the boundary check', () => {
  const ts1 = (text: string): string => {
    const sf = ts.createSourceFile('x.ts', text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
    return blank(text, tsComments(sf));
  };

  it('ignores comments, not strings, templates or code', () => {
    const code = ts1(
      [
        '// unlike ethtool, this reads nothing',
        "const url = 'file://x'; // ifindex",
        '/** The device (net: ifindex). */',
        "const a = `${1}//${'rtnl'}`; const re = /\\/\\/ netdev/;",
        "const cls = 'net'; const ref = \"net:eth0\"; const mask = 'netmask';",
        'function f(knownIfindex: number) { return knownIfindex; } /* allmulti */',
      ].join('\n'),
    );
    expect(networkWords('x.ts', code)).toEqual([
      'x.ts:4: netdev',
      'x.ts:4: rtnl',
      'x.ts:5: eth0',
      "x.ts:5: 'net'",
      'x.ts:5: "net:eth0"',
      'x.ts:6: knownIfindex',
    ]);
  });

  it('strips C comments, but not comment-like text in strings', () => {
    const text = '/* struct net_device */\n#include <linux/netdevice.h>\nconst char *s = "// ethtool"; // rtnl_lock\n';
    expect(networkWords('k.c', blank(text, cComments(text)))).toEqual(['k.c:2: netdevice', 'k.c:3: ethtool']);
  });

  it('tells type-only imports from value imports', () => {
    const sf = ts.createSourceFile(
      join(REPO, 'daemon/classes/x/y.ts'),
      [
        "import type { Logger } from '../../service/log.js';",
        "import { type Priority } from '../../service/log.js';",
        "import { PRIORITY, type Priority as P } from '../../service/log.js';",
        "import { helper } from '../net/net-class.js';",
        "export { z } from '../../control/control-protocol.js';",
        "const m = await import('../../service/metrics.js');",
      ].join('\n'),
      ts.ScriptTarget.Latest,
      true,
    );
    const found = importsOf(join(REPO, 'daemon/classes/x/y.ts'), sf).map((imp) => importViolation('daemon/classes/x/y.ts', imp));
    expect(found).toEqual([
      null,
      null,
      'daemon/classes/x/y.ts:3: imports ../../service/log.js (a class imports service/ for types only)',
      'daemon/classes/x/y.ts:4: imports ../net/net-class.js (a class imports no other class, nor the registry)',
      'daemon/classes/x/y.ts:5: imports ../../control/control-protocol.js (a class imports control/ for types only)',
      'daemon/classes/x/y.ts:6: imports ../../service/metrics.js (a class imports service/ for types only)',
    ]);
  });
});
