// Every class's bpftrace program merged into one, run by one bpftrace
// process. bpftrace 0.17's cost is mostly its own start (its libraries,
// LLVM and clang, BTF) and is paid per process: in the guest under TCG the
// three class programs took 32 s to attach side by side and 370 MB of peak
// resident memory (about 120 MB each), one program with all of them 20 s and
// 133 MB (bench/startup.js). One program takes the classes' definitions
// (struct declarations, before the first probe) first, then every class's
// probes, then one END (bpftrace allows one) with every class's END body.
// A tap record names its event (`ev=NAME`, daemon/core/tap-record.ts); each
// name belongs to one class (its declaration's tapEvents, which the tap
// contract test holds to what its program prints), so every event goes back
// to its class.

export interface ClassProgram {
  cls: string;
  /** The program's file, for messages. */
  path: string;
  text: string;
}

/** Event name (a tap record's `ev=`) → the class whose program prints it; throws if two classes name one event. */
export function eventClasses(classes: readonly { id: string; tapEvents: readonly string[] }[]): Map<string, string> {
  const out = new Map<string, string>();
  for (const c of classes) {
    for (const ev of c.tapEvents) {
      const owner = out.get(ev);
      if (owner !== undefined && owner !== c.id) throw new Error(`the ${c.id} and ${owner} classes both print event ${ev}`);
      out.set(ev, c.id);
    }
  }
  return out;
}

/** A line that starts a probe block (its first attach point, or BEGIN/END). */
export const PROBE_START = /^(?:kfunc|kretfunc|fentry|fexit|kprobe|kretprobe|tracepoint|rawtracepoint|uprobe|uretprobe|usdt|software|hardware|profile|interval|watchpoint|asyncwatchpoint|BEGIN|END)\b/m;
/** An END block as the class programs write it: `END` alone on its line, its body in braces at the start of lines. */
const END_BLOCK = /^END[ \t]*\n?\{[ \t]*\n([\s\S]*?)^\}[ \t]*$/m;

/** Whether a program has a probe (the attach points a kernel lacks may have taken them all). */
export function hasProbe(text: string): boolean {
  return PROBE_START.test(text.replace(/^(?:BEGIN|END)\b/gm, ''));
}

/** Merges the class programs into one program's text; throws if one cannot be split. */
export function mergePrograms(programs: readonly ClassProgram[]): string {
  const preambles: string[] = [];
  const bodies: string[] = [];
  const ends: string[] = [];
  for (const p of programs) {
    const start = PROBE_START.exec(p.text)?.index;
    if (start === undefined) throw new Error(`${p.path}: no probe`);
    preambles.push(`// ${p.path}: definitions\n${p.text.slice(0, start)}`);
    let body = p.text.slice(start);
    const end = END_BLOCK.exec(body);
    if (end) {
      ends.push(`  // ${p.path}\n${end[1]!}`);
      body = body.slice(0, end.index) + body.slice(end.index + end[0].length);
    }
    if (/^END\b/m.test(body)) throw new Error(`${p.path}: an END block that cannot be merged (END, then its body in braces at the start of lines)`);
    bodies.push(`// ${p.path}: probes\n${body}`);
  }
  const end = ends.length > 0 ? [`END\n{\n${ends.join('\n')}}\n`] : [];
  return [...preambles, ...bodies, ...end].join('\n');
}
