// The tap contract, checked on the host: for every class in the registry, the
// events its bpftrace program prints, the events its declaration says it
// prints (ClassDeclaration.tapEvents) and the events its reducer takes or
// deliberately leaves are the same set; every record the program can print
// parses (core/tap-record.ts); and the reducer reads only fields the program
// prints for that event. checkTapContract returns every problem it finds, so
// the last block of tests can show it failing when either side loses an
// event.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { CLASSES } from '../../../daemon/classes/registry.js';
import { NOT_REDUCED, reduceEvent, REDUCED_EVENTS } from '../../../daemon/classes/net/netdev-reducer.js';
import { NOT_REDUCED as BLOCK_NOT_REDUCED, reduceBlockEvent, REDUCED_EVENTS as BLOCK_REDUCED } from '../../../daemon/classes/block/block-reducer.js';
import { NOT_REDUCED as SOUND_NOT_REDUCED, reduceSoundEvent, REDUCED_EVENTS as SOUND_REDUCED } from '../../../daemon/classes/sound/sound-reducer.js';
import type { DeviceClass } from '../../../daemon/core/device-class.js';
import { parseTapRecord, type TapEvent } from '../../../daemon/core/tap-record.js';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** What a class's reducer does with tap events: the events it reduces, the ones it leaves on purpose (with why), and the reducer itself. */
export interface ReducerTable {
  reduced: ReadonlySet<string>;
  notReduced: ReadonlyMap<string, unknown>;
  reduce(e: TapEvent): unknown;
}

/**
 * The one class-specific piece: where each class's reducer table is. A field
 * of ClassDeclaration holding the table would make this map unnecessary.
 */
const REDUCER_TABLES: Readonly<Record<string, ReducerTable>> = {
  net: { reduced: REDUCED_EVENTS, notReduced: NOT_REDUCED, reduce: reduceEvent },
  block: { reduced: BLOCK_REDUCED, notReduced: BLOCK_NOT_REDUCED, reduce: reduceBlockEvent },
  sound: { reduced: SOUND_REDUCED, notReduced: SOUND_NOT_REDUCED, reduce: reduceSoundEvent },
};

/** One printf of a bpftrace program. */
export interface Printf {
  /** 1-based line of `printf`. */
  line: number;
  /** The format string, escapes decoded. */
  format: string;
  /** The literal NAME of a leading `ev=NAME`, or null. */
  ev: string | null;
  /** The keys of its key=value tokens, in order. */
  keys: string[];
}

const KEY = /^[a-z][a-z0-9_]*$/;
const ESCAPES: Record<string, string> = { n: '\n', t: '\t', '\\': '\\', '"': '"' };

/** Every printf call outside comments, with its format string (adjacent literals joined; the arguments may run over any number of lines). */
export function findPrintfs(program: string): { printfs: Printf[]; problems: string[] } {
  const printfs: Printf[] = [];
  const problems: string[] = [];
  let line = 1;
  let i = 0;
  const n = program.length;
  const advance = (to: number): void => {
    for (; i < to && i < n; i++) if (program[i] === '\n') line++;
  };
  /** Reads the string literal at i (which is '"'); returns its decoded text. */
  const readString = (): string => {
    let out = '';
    advance(i + 1);
    while (i < n && program[i] !== '"') {
      if (program[i] === '\\' && i + 1 < n) {
        const c = program[i + 1]!;
        out += ESCAPES[c] ?? `\\${c}`;
        advance(i + 2);
      } else {
        out += program[i];
        advance(i + 1);
      }
    }
    advance(i + 1);
    return out;
  };
  const skipSpace = (): void => {
    while (i < n && /\s/.test(program[i]!)) advance(i + 1);
  };
  while (i < n) {
    const c = program[i]!;
    if (c === '/' && program[i + 1] === '/') {
      const end = program.indexOf('\n', i);
      advance(end < 0 ? n : end);
    } else if (c === '/' && program[i + 1] === '*') {
      const end = program.indexOf('*/', i + 2);
      advance(end < 0 ? n : end + 2);
    } else if (c === '"') {
      readString();
    } else if (/[A-Za-z_]/.test(c)) {
      const word = /^[A-Za-z_][A-Za-z0-9_]*/.exec(program.slice(i))![0];
      const at = line;
      advance(i + word.length);
      if (word !== 'printf') continue;
      skipSpace();
      if (program[i] !== '(') continue;
      advance(i + 1);
      skipSpace();
      if (program[i] !== '"') {
        problems.push(`line ${at}: printf's format is not a string literal`);
        continue;
      }
      let format = readString();
      for (skipSpace(); program[i] === '"'; skipSpace()) format += readString();
      const body = format.endsWith('\n') ? format.slice(0, -1) : format;
      const tokens = body.split(' ').filter((t) => t !== '');
      const ev = /^ev=([a-z][a-z0-9_]*)$/.exec(tokens[0] ?? '')?.[1] ?? null;
      printfs.push({ line: at, format, ev, keys: tokens.map((t) => t.slice(0, Math.max(0, t.indexOf('=')))) });
    } else {
      advance(i + 1);
    }
  }
  return { printfs, problems };
}

const CONVERSION = /%([-+ #0]*)(\d*)(?:\.\d+)?(hh|h|ll|l|z|j|t)?([a-zA-Z%])/g;

/** Values a conversion is filled with: every variant is parsed and reduced. Hex has a letter so a bare %x the parser would take for decimal shows. */
const VARIANTS = [
  { num: '0', hex: 'a', text: 'sh0' },
  { num: '1', hex: '1f', text: 'sh1' },
];

/** A record the printf could print, its conversions filled from the variant; comm= (the rest of the line) gets a comm with a space. Throws on a conversion it does not know. */
export function syntheticRecord(format: string, variant: (typeof VARIANTS)[number]): string {
  const body = format.endsWith('\n') ? format.slice(0, -1) : format;
  const commAt = body.lastIndexOf(' comm=');
  const fill = (text: string, comm: boolean): string =>
    text.replace(CONVERSION, (_m, flags: string, width: string, _len: string | undefined, conv: string) => {
      const pad = (v: string): string => (flags.includes('0') && width ? v.padStart(Number(width), '0') : v);
      switch (conv) {
        case 'd':
        case 'i':
        case 'u':
          return pad(variant.num);
        case 'x':
        case 'X':
          return pad(variant.hex);
        case 's':
          return comm ? 'kworker/0:1 x' : variant.text;
        case '%':
          return '%';
        default:
          throw new Error(`conversion %${conv} has no synthetic value`);
      }
    });
  return commAt < 0 ? fill(body, false) : fill(body.slice(0, commAt), false) + fill(body.slice(commAt), true);
}

/** The event with its nums/masks/strs reads recorded in `read`. */
function watched(e: TapEvent, read: Set<string>): TapEvent {
  const spy = <T extends object>(o: T): T =>
    new Proxy(o, {
      get(target, key, receiver) {
        if (typeof key === 'string') read.add(key);
        return Reflect.get(target, key, receiver) as unknown;
      },
      has(target, key) {
        if (typeof key === 'string') read.add(key);
        return Reflect.has(target, key);
      },
    });
  return { ...e, nums: spy(e.nums), masks: spy(e.masks), strs: spy(e.strs) };
}

export interface ContractInput {
  cls: string;
  /** The program's path as problems name it (relative to the repository). */
  programName: string;
  program: string;
  tapEvents: readonly string[];
  reducer: ReducerTable;
}

/** Every way the program, the declared events and the reducer's table disagree; empty when they keep the contract. */
export function checkTapContract(c: ContractInput): string[] {
  const where = (p: Printf): string => `${c.programName}:${p.line}`;
  const found = findPrintfs(c.program);
  const problems = found.problems.map((p) => `${c.cls}: ${c.programName}: ${p}`);

  const printed = new Map<string, Printf[]>();
  for (const p of found.printfs) {
    if (p.ev === null) {
      problems.push(`${c.cls}: ${where(p)}: printf does not start with a literal ev=NAME: ${JSON.stringify(p.format)}`);
      continue;
    }
    if (!p.format.endsWith('\n')) problems.push(`${c.cls}: ${where(p)}: ev=${p.ev} record does not end the line`);
    if (p.keys.at(-1) !== 'comm') problems.push(`${c.cls}: ${where(p)}: ev=${p.ev} record does not end with comm=`);
    const bad = p.keys.filter((k) => !KEY.test(k));
    if (bad.length > 0) problems.push(`${c.cls}: ${where(p)}: ev=${p.ev} has tokens that are not key=value: ${JSON.stringify(p.format)}`);
    printed.set(p.ev, [...(printed.get(p.ev) ?? []), p]);
  }

  // (a) printed ⇔ declared.
  const declared = new Set<string>();
  for (const ev of c.tapEvents) {
    if (declared.has(ev)) problems.push(`${c.cls}: ev=${ev} is declared twice in tapEvents`);
    declared.add(ev);
  }
  for (const [ev, ps] of printed) {
    if (!declared.has(ev)) problems.push(`${c.cls}: ev=${ev} is printed (${where(ps[0]!)}) but not declared in tapEvents`);
  }
  for (const ev of declared) {
    if (!printed.has(ev)) problems.push(`${c.cls}: ev=${ev} is declared in tapEvents but ${c.programName} never prints it`);
  }

  // (b) every printed record parses, and the reducer takes it or leaves it on purpose, reading only printed fields.
  const { reduced, notReduced } = c.reducer;
  for (const [ev, ps] of printed) {
    if (!reduced.has(ev) && !notReduced.has(ev)) {
      problems.push(`${c.cls}: ev=${ev} is printed (${where(ps[0]!)}) but the reducer neither reduces it nor lists it as not reduced`);
    }
    if (reduced.has(ev) && notReduced.has(ev)) problems.push(`${c.cls}: ev=${ev} is both reduced and listed as not reduced`);
    const keys = new Set(ps.flatMap((p) => p.keys));
    const read = new Set<string>();
    for (const p of ps) {
      for (const variant of VARIANTS) {
        let line: string;
        let e: TapEvent;
        try {
          line = syntheticRecord(p.format, variant);
          e = parseTapRecord(line);
        } catch (err) {
          problems.push(`${c.cls}: ${where(p)}: ev=${ev}: a record it prints does not parse: ${(err as Error).message}`);
          break;
        }
        if (e.call !== ev) problems.push(`${c.cls}: ${where(p)}: ${JSON.stringify(line)} parses as ev=${e.call}`);
        try {
          c.reducer.reduce(watched(e, read));
        } catch (err) {
          problems.push(`${c.cls}: ${where(p)}: the reducer throws on ${JSON.stringify(line)}: ${(err as Error).message}`);
        }
      }
    }
    for (const key of read) {
      if (!keys.has(key)) problems.push(`${c.cls}: the reducer reads ${key}= of ev=${ev}, which no printf of ev=${ev} prints`);
    }
  }

  // (c) the reducer expects nothing the program never prints.
  for (const ev of [...reduced, ...notReduced.keys()]) {
    if (!printed.has(ev)) problems.push(`${c.cls}: the reducer's table lists ev=${ev}, which ${c.programName} never prints`);
  }
  return problems;
}

/**
 * The class's program in this checkout. The declaration's path is right from
 * dist/ (it climbs out of dist/daemon/classes/X/); from the sources it
 * climbs one level too far, so take its part from bpf/ on.
 */
function programOf(cls: DeviceClass): string {
  const parts = cls.tapProgram.split(sep);
  const at = parts.lastIndexOf('bpf');
  if (at < 0) throw new Error(`${cls.id}: tapProgram ${cls.tapProgram} is not under a bpf/ folder`);
  return join(REPO, ...parts.slice(at));
}

function contractOf(cls: DeviceClass): ContractInput {
  const path = programOf(cls);
  const reducer = REDUCER_TABLES[cls.id];
  if (!reducer) throw new Error(`${cls.id}: no reducer table in REDUCER_TABLES`);
  return { cls: cls.id, programName: relative(REPO, path), program: readFileSync(path, 'utf8'), tapEvents: cls.tapEvents, reducer };
}

describe('the tap contract', () => {
  it('knows the reducer table of every class in the registry, and of no other', () => {
    expect(Object.keys(REDUCER_TABLES).sort()).toEqual(CLASSES.map((c) => c.id).sort());
  });

  for (const cls of CLASSES) {
    describe(`class ${cls.id}`, () => {
      it('has its tap program in the checkout', () => {
        expect(existsSync(programOf(cls)), programOf(cls)).toBe(true);
        expect(dirname(relative(REPO, programOf(cls)))).toBe('bpf');
      });

      it('prints exactly the events it declares, each parsed and reduced or left on purpose', () => {
        const contract = contractOf(cls);
        expect(checkTapContract(contract)).toEqual([]);
        // Not vacuous: the program prints records.
        expect(findPrintfs(contract.program).printfs.length).toBeGreaterThanOrEqual(contract.tapEvents.length);
      });
    });
  }
});

/** The names a program defines that live in one namespace once the programs run merged (core/tap-program.ts): its maps and its structs. */
export function programNames(program: string): { maps: Set<string>; structs: Set<string> } {
  const code = program.replace(/\/\/[^\n]*/g, '').replace(/\/\*[\s\S]*?\*\//g, '').replace(/"(?:[^"\\]|\\.)*"/g, '""');
  return {
    maps: new Set([...code.matchAll(/@([A-Za-z_][A-Za-z0-9_]*)/g)].map((m) => m[1]!)),
    structs: new Set([...code.matchAll(/^struct\s+([A-Za-z_][A-Za-z0-9_]*)\s*\{/gm)].map((m) => m[1]!)),
  };
}

describe('the class programs run merged into one bpftrace', () => {
  it('share no map and no struct definition: one class cannot write into another\'s state', () => {
    const seen = new Map<string, string>();
    const clashes: string[] = [];
    for (const cls of CLASSES) {
      const { maps, structs } = programNames(readFileSync(programOf(cls), 'utf8'));
      for (const name of [...[...maps].map((m) => `map @${m}`), ...[...structs].map((st) => `struct ${st}`)]) {
        const other = seen.get(name);
        if (other !== undefined && other !== cls.id) clashes.push(`${name} is in the ${other} and ${cls.id} programs`);
        seen.set(name, cls.id);
      }
    }
    expect(clashes).toEqual([]);
    // Not vacuous: the programs have maps and structs to compare.
    expect([...seen.keys()].filter((n) => n.startsWith('map ')).length).toBeGreaterThan(3);
    expect([...seen.keys()].filter((n) => n.startsWith('struct ')).length).toBeGreaterThan(3);
  });

  it('finds a clash when two programs name one map', () => {
    const a = programNames('kfunc:vmlinux:x { @shared[tid] = 1; } // @commented\n');
    const b = programNames('struct s { int x; }\nkfunc:vmlinux:y { @shared[tid] = 2; printf("@notamap\\n"); }\n');
    expect([...a.maps].filter((m) => b.maps.has(m))).toEqual(['shared']);
    expect([...b.maps]).toEqual(['shared']);
    expect([...b.structs]).toEqual(['s']);
  });
});

describe('the tap contract check', () => {
  const net = CLASSES.find((c) => c.id === 'net');
  if (!net) throw new Error('the registry has no network class');
  const real = contractOf(net);
  const lineOf = (program: string, text: string): number => program.slice(0, program.indexOf(text)).split('\n').length;
  /** The program without the printf statement that starts with `start`. */
  const withoutPrintf = (program: string, start: string): string => {
    const at = program.indexOf(start);
    expect(at).toBeGreaterThanOrEqual(0);
    return program.slice(0, at) + program.slice(program.indexOf(');', at) + 2);
  };

  it('fails when the program stops printing a declared event', () => {
    const program = withoutPrintf(real.program, 'printf("ev=txqueuelen ');
    expect(checkTapContract({ ...real, program })).toEqual([
      'net: ev=txqueuelen is declared in tapEvents but bpf/netdev-class.bt never prints it',
      "net: the reducer's table lists ev=txqueuelen, which bpf/netdev-class.bt never prints",
    ]);
  });

  it('is content with one of two printfs of the same event gone', () => {
    const program = withoutPrintf(real.program, 'printf("ev=rtnl_hint ');
    expect(findPrintfs(program).printfs.length).toBe(findPrintfs(real.program).printfs.length - 1);
    expect(checkTapContract({ ...real, program })).toEqual([]);
  });

  it('fails when the declaration loses an event or gains one the program never prints', () => {
    const tapEvents = [...real.tapEvents.filter((e) => e !== 'carrier_on'), 'carrier_lost'];
    const line = lineOf(real.program, 'printf("ev=carrier_on ');
    expect(checkTapContract({ ...real, tapEvents })).toEqual([
      `net: ev=carrier_on is printed (bpf/netdev-class.bt:${line}) but not declared in tapEvents`,
      'net: ev=carrier_lost is declared in tapEvents but bpf/netdev-class.bt never prints it',
    ]);
  });

  it("fails when the reducer's table loses an event or gains one the program never prints", () => {
    const reduced = new Set([...real.reducer.reduced].filter((e) => e !== 'mtu'));
    reduced.add('mtu_changed');
    const line = lineOf(real.program, 'printf("ev=mtu ');
    expect(checkTapContract({ ...real, reducer: { ...real.reducer, reduced } })).toEqual([
      `net: ev=mtu is printed (bpf/netdev-class.bt:${line}) but the reducer neither reduces it nor lists it as not reduced`,
      "net: the reducer's table lists ev=mtu_changed, which bpf/netdev-class.bt never prints",
    ]);
  });

  it('fails when a field the reducer reads is renamed in the program, or a field would not parse', () => {
    const renamed = real.program.replace('ev=txqueuelen ifindex=%d netns=%u name=%s qlen=%lu', 'ev=txqueuelen ifindex=%d netns=%u name=%s len=%lu');
    expect(renamed).not.toBe(real.program);
    expect(checkTapContract({ ...real, program: renamed })).toEqual([
      'net: the reducer reads qlen= of ev=txqueuelen, which no printf of ev=txqueuelen prints',
    ]);
    const bareHex = real.program.replace('ev=txqueuelen ifindex=%d netns=%u name=%s qlen=%lu', 'ev=txqueuelen ifindex=%d netns=%u name=%s qlen=%lx');
    const line = lineOf(bareHex, 'printf("ev=txqueuelen ');
    expect(checkTapContract({ ...real, program: bareHex })).toEqual([
      `net: bpf/netdev-class.bt:${line}: ev=txqueuelen: a record it prints does not parse: field qlen="a" is not a number`,
    ]);
  });

  it('reads printfs robustly: comments, arguments over several lines, formats that name no event', () => {
    const program = [
      '// printf("ev=in_a_comment x=%d comm=%s\\n", 1, comm);',
      '/* printf("ev=in_a_block x=%d comm=%s\\n",',
      '   1, comm); */',
      'kfunc:vmlinux:f { printf(',
      '    "ev=split x=%d y=0x%llx pid=%d ts=%llu comm=%s\\n",',
      '    1, 2, pid, nsecs, comm); print("printf(\\"ev=in_a_string\\")"); }',
      'kfunc:vmlinux:g { printf("ev=%s pid=%d ts=%llu comm=%s\\n", "dyn", pid, nsecs, comm); }',
    ].join('\n');
    const { printfs, problems } = findPrintfs(program);
    expect(problems).toEqual([]);
    expect(printfs).toEqual([
      { line: 4, format: 'ev=split x=%d y=0x%llx pid=%d ts=%llu comm=%s\n', ev: 'split', keys: ['ev', 'x', 'y', 'pid', 'ts', 'comm'] },
      { line: 7, format: 'ev=%s pid=%d ts=%llu comm=%s\n', ev: null, keys: ['ev', 'pid', 'ts', 'comm'] },
    ]);
    expect(syntheticRecord(printfs[0]!.format, VARIANTS[1]!)).toBe('ev=split x=1 y=0x1f pid=1 ts=1 comm=kworker/0:1 x');
    expect(parseTapRecord(syntheticRecord('ev=mac addr=%02x:%02x pid=%d ts=%llu comm=%s\n', VARIANTS[0]!)).strs['addr']).toBe('0a:0a');
  });
});
