// Builds a host harness of bpf/libbpf/tap-format.c (tap-format-harness.c,
// tap-record-harness.c) into a temporary folder, and what bpftrace's JSON
// output makes of a printf'd record: the two tap-format tests' common parts.
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { parseBpftraceLine } from '../../../../daemon/core/bpftrace-output.js';
import { parseTapRecord } from '../../../../daemon/core/tap-record.js';

const here = (p: string): string => new URL(p, import.meta.url).pathname;
export const TAPS_SOURCES = here('../../../../bpf/libbpf/');

export interface Harness {
  path: string;
  remove(): void;
}

/** cc of the harness (a file beside this one) with tap-format.c, warnings as errors. */
export function buildHarness(file: string): Harness {
  const dir = mkdtempSync(join(tmpdir(), 'shadowd-tap-format-'));
  const path = join(dir, file.replace(/\.c$/, ''));
  execFileSync('cc', ['-std=gnu11', '-Wall', '-Wextra', '-Werror', '-I', TAPS_SOURCES, '-o', path, here(`./${file}`), join(TAPS_SOURCES, 'tap-format.c')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  return { path, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A record line as bpftrace 0.17's `-f json` prints its printf (the loader's -f json). */
export function bpftraceJsonPrintf(line: string): string {
  return `${JSON.stringify({ type: 'printf', data: `${line}\n` }).replace(/^\{"type":"printf","data":/, '{"type": "printf", "data": ')}\n`;
}

/** The record harness run on a record's fields: its exit status and what it printed. */
export function printRecord(harness: Harness, mode: 'text' | 'json', args: string[]): { status: number | null; out: string } {
  const r = spawnSync(harness.path, [mode, ...args], { encoding: 'utf8' });
  return { status: r.status, out: r.stdout };
}

/**
 * Holds the record harness to print `line` byte for byte from its fields
 * (`args`), as text and as bpftrace's JSON, and the daemon to read that JSON
 * back as the line's event (unless `readable` says the daemon cannot: a
 * 64-bit edge value is the printer's test, not the reader's).
 */
export function expectPrinted(harness: Harness, line: string, args: string[], readable = true): void {
  expect(printRecord(harness, 'text', args), line).toEqual({ status: 0, out: `${line}\n` });
  const json = printRecord(harness, 'json', args).out;
  expect(json).toBe(bpftraceJsonPrintf(line));
  if (readable) expect(parseBpftraceLine(json.trimEnd())).toEqual({ kind: 'event', event: parseTapRecord(line) });
}
