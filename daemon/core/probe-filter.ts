// The probes of a tap program that this kernel cannot attach, taken out before
// bpftrace sees the program. bpftrace refuses a whole program when one of its
// functions or tracepoints does not exist, and one bpftrace runs every class's
// taps: a function renamed or inlined in another kernel release would stop
// every class. Here each missing attach point is dropped (a probe block goes
// when none of its points is left) and reported once, with the records the
// shadow then misses. What bpftrace cannot compile (a struct field that moved)
// still fails the start: that is a bug of the program, not of the kernel.
//
// The program's style is what the class programs use: a probe block starts at
// the beginning of a line with its attach points (a list continued by lines
// ending in a comma), and its body ends with `}` alone at the start of a line.
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { PROBE_START } from './tap-program.js';

/** What the running kernel can attach to. */
export interface KernelProbeIndex {
  /** A traceable function (kprobes, fentry/fexit), of the kernel or of a loaded module. */
  hasFunction(name: string): boolean;
  hasTracepoint(category: string, name: string): boolean;
}

export interface DroppedProbe {
  /** The attach point as the program spells it, e.g. kretfunc:vmlinux:ethnl_set_pse. */
  point: string;
  /** The records (`ev=`) of the block it belonged to. */
  events: string[];
  /** Whether the whole block went (else other attach points of its list remain). */
  blockDropped: boolean;
}

const FUNCTION_POINT = /^(?:kfunc|kretfunc|fentry|fexit|kprobe|kretprobe):(?:[^:\s]+:)?([A-Za-z_][A-Za-z0-9_.]*)$/;
const TRACEPOINT = /^tracepoint:([A-Za-z0-9_]+):([A-Za-z0-9_]+)$/;

/** Whether the kernel has this attach point; true for what cannot be checked (wildcards, BEGIN, intervals). */
export function pointExists(point: string, index: KernelProbeIndex): boolean {
  const fn = FUNCTION_POINT.exec(point);
  if (fn) return index.hasFunction(fn[1]!);
  const tp = TRACEPOINT.exec(point);
  if (tp) return index.hasTracepoint(tp[1]!, tp[2]!);
  return true;
}

/** The program without the attach points the kernel lacks, and what went. */
export function filterProbes(text: string, index: KernelProbeIndex): { text: string; dropped: DroppedProbe[] } {
  const lines = text.split('\n');
  const out: string[] = [];
  const dropped: DroppedProbe[] = [];
  for (let i = 0; i < lines.length; ) {
    if (!PROBE_START.test(lines[i]!)) {
      out.push(lines[i++]!);
      continue;
    }
    let headerEnd = i;
    while (headerEnd < lines.length - 1 && lines[headerEnd]!.trimEnd().endsWith(',')) headerEnd++;
    // The block ends where its braces balance (on its first line, for a one-line block).
    let end = headerEnd;
    for (let depth = 0, opened = false; end < lines.length; end++) {
      for (const ch of lines[end]!) {
        if (ch === '{') {
          depth++;
          opened = true;
        } else if (ch === '}') depth--;
      }
      if (opened && depth <= 0) break;
    }
    // The attach points stop where a predicate (/.../) or the body ({) begins on the header's last line.
    const last = lines[headerEnd]!;
    const cut = last.search(/\s*[/{]/);
    const tail = cut >= 0 ? last.slice(cut) : '';
    const points = [...lines.slice(i, headerEnd), cut >= 0 ? last.slice(0, cut) : last]
      .join(' ')
      .split(',')
      .map((p) => p.trim())
      .filter(Boolean);
    const block = lines.slice(i, end + 1);
    const kept = points.filter((p) => pointExists(p, index));
    if (kept.length < points.length) {
      const events = [...new Set([...block.join('\n').matchAll(/\bev=([a-z0-9_]+)/g)].map((m) => m[1]!))];
      for (const point of points.filter((p) => !kept.includes(p))) dropped.push({ point, events, blockDropped: kept.length === 0 });
    }
    if (kept.length === points.length) out.push(...block);
    else if (kept.length > 0) out.push(`${kept.join(', ')}${tail}`, ...lines.slice(headerEnd + 1, end + 1));
    i = end + 1;
  }
  return { text: out.join('\n'), dropped };
}

/** The kernel's traceable functions and tracepoints, from tracefs; null when tracefs cannot be read. */
export async function readKernelProbeIndex(roots = ['/sys/kernel/tracing', '/sys/kernel/debug/tracing']): Promise<KernelProbeIndex | null> {
  for (const root of roots) {
    let functions: string;
    try {
      functions = await readFile(join(root, 'available_filter_functions'), 'utf8');
    } catch {
      continue;
    }
    // "name" or "name [module]". A function the compiler only left as a clone
    // (name.isra.0) cannot be attached by its plain name: it is missing.
    const names = new Set(functions.split('\n').map((l) => l.split(/\s/, 1)[0]!).filter(Boolean));
    const events = join(root, 'events');
    const tracepoints = new Map<string, boolean>();
    return {
      hasFunction: (name) => names.has(name),
      hasTracepoint: (category, name) => {
        const key = `${category}/${name}`;
        let found = tracepoints.get(key);
        if (found === undefined) {
          found = existsSync(join(events, category, name, 'format'));
          tracepoints.set(key, found);
        }
        return found;
      },
    };
  }
  return null;
}

