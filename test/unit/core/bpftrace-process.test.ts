// bpftrace's stderr as the daemon keeps it: a bounded tail for error reports,
// however much a long-running bpftrace prints (against a stand-in program).
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { STDERR_LINE_CHARS, STDERR_TAIL_CHARS, startBpftrace, TextTail } from '../../../daemon/core/bpftrace-process.js';

const dir = mkdtempSync(join(tmpdir(), 'shadowd-bpftrace-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A stand-in bpftrace running the shell script body (argv, no shell string for the daemon). */
function fake(name: string, body: string): string {
  const path = join(dir, name);
  writeFileSync(path, `#!/bin/sh\n${body}\n`);
  chmodSync(path, 0o755);
  return path;
}

describe('TextTail', () => {
  it('keeps the newest whole lines within its limit and says how many it dropped', () => {
    const tail = new TextTail(10);
    tail.push('one');
    expect(tail.text()).toBe('one\n');
    tail.push('two');
    tail.push('three');
    expect(tail.text()).toBe('[1 earlier line dropped]\ntwo\nthree\n');
    tail.push('a line longer than the limit');
    expect(tail.text()).toBe('[3 earlier lines dropped]\na line longer than the limit\n');
  });
});

describe('startBpftrace stderr', () => {
  it('keeps only the last 64 KiB of a flood of warnings, and the last line', async () => {
    // About 10 MB of 100-character lines, then the reason it stopped.
    const bin = fake('flood', "yes 'WARNING: lost events on a ring buffer that is much too small for this rate of events......' | head -n 100000 >&2\necho 'ERROR: the last word' >&2\nexit 3");
    let lines = 0;
    const run = startBpftrace({ program: 'x.bt', bpftrace: bin, onMessage: () => undefined, onStderr: () => lines++ });
    const exit = await run.exited;
    expect(exit.exitCode).toBe(3);
    expect(lines).toBe(100_001);
    expect(exit.stderr.length).toBeLessThanOrEqual(STDERR_TAIL_CHARS + 100);
    expect(exit.stderr).toMatch(/^\[\d+ earlier lines dropped\]\nWARNING: /);
    expect(exit.stderr.endsWith('\nERROR: the last word\n')).toBe(true);
    await expect(run.attached).rejects.toThrow(/status 3\): \[\d+ earlier lines dropped\][^]*ERROR: the last word$/);
  }, 60_000);

  it('cuts a line that never ends instead of holding all of it', async () => {
    const bin = fake('longline', "head -c 2000000 /dev/zero | tr '\\0' y >&2\nexit 1");
    const seen: string[] = [];
    const run = startBpftrace({ program: 'x.bt', bpftrace: bin, onMessage: () => undefined, onStderr: (l) => seen.push(l) });
    const exit = await run.exited;
    expect(exit.exitCode).toBe(1);
    expect(seen).toEqual([`${'y'.repeat(STDERR_LINE_CHARS)}…`]);
    expect(exit.stderr).toBe(`${'y'.repeat(STDERR_LINE_CHARS)}…\n`);
  }, 60_000);

  it('passes short lines through as they are', async () => {
    const bin = fake('short', "printf 'first\\r\\nsecond\\nno newline' >&2\nexit 2");
    const seen: string[] = [];
    const exit = await startBpftrace({ program: 'x.bt', bpftrace: bin, onMessage: () => undefined, onStderr: (l) => seen.push(l) }).exited;
    expect(seen).toEqual(['first', 'second', 'no newline']);
    expect(exit.stderr).toBe('first\nsecond\nno newline\n');
  });
});
