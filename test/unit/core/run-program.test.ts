// runProgram on real programs: exit statuses, a program that never ran, and
// output past the caller's limit (the program is stopped, its output dropped).
import { describe, expect, it } from 'vitest';
import { runProgram } from '../../../daemon/core/run-program.js';

describe('runProgram', () => {
  it('returns the output and exit status, and never throws for a failing program', async () => {
    expect(await runProgram('printf', ['%s', 'hello'])).toEqual({ stdout: 'hello', stderr: '', exitCode: 0 });
    expect((await runProgram('sh', ['-c', 'echo no >&2; exit 3'])).exitCode).toBe(3);
    const missing = await runProgram('/nonexistent/tool', []);
    expect(missing.exitCode).toBeNull();
    expect(missing.overflow).toBeUndefined();
  });

  it('stops a program that prints more than the limit and drops what it printed', async () => {
    const t0 = Date.now();
    // yes would print forever.
    const r = await runProgram('yes', ['route'], 10_000, 64 * 1024);
    expect(r).toEqual({ stdout: '', stderr: '', exitCode: null, overflow: true });
    expect(Date.now() - t0).toBeLessThan(5000);
    // Just under the limit is read whole.
    const fits = await runProgram('head', ['-c', String(64 * 1024 - 1), '/dev/zero'], 10_000, 64 * 1024);
    expect(fits.exitCode).toBe(0);
    expect(fits.stdout.length).toBe(64 * 1024 - 1);
  });
});
