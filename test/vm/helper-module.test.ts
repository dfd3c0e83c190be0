// The helper module in a real 6.1 guest: loads, answers the daemon's client,
// turns thousands of malformed writes into errors without a kernel complaint,
// refuses unprivileged opens and unloads. The guest side is guest/helper-smoke.ts,
// run compiled from dist/test/vm/guest/helper-smoke.js.
import { existsSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertGuestOk, currentKernel, runInGuest } from './guest.js';
import { buildHelperModule } from './kmod-build.js';
import { repoPath } from './repo-path.js';

const SMOKE = repoPath('dist/test/vm/guest/helper-smoke.js');
// The guest runs compiled code: the smoke script and the client it imports.
const BUILT_FROM_SOURCE: { built: string; source: string }[] = [
  { built: SMOKE, source: repoPath('test/vm/guest/helper-smoke.ts') },
  { built: repoPath('dist/daemon/helper-client.js'), source: repoPath('daemon/helper-client.ts') },
];
const FUZZ_CASES = 5000;

interface SmokeResult {
  seed: number;
  guestKernel: string;
  version: { proto: number; version: string; kernel: string };
  fuzz: { total: number; ms: number; outcomes: Record<string, number>; byKind: Record<string, number> };
  concurrency: { oneFd: { ops: number; ms: number }; fourClients: { requests: number; correct: number } };
  nonRoot: { nobody?: string; rootWithoutCapSysAdmin?: string };
  unload: { refusedWhileOpen: boolean; rmmod: boolean };
  failures: number;
}

describe('shadow_helper module', () => {
  let ko = '';

  beforeAll(async () => {
    // The guest runs the compiled script and client; a stale dist/ would test old code.
    for (const { built, source } of BUILT_FROM_SOURCE) {
      if (!existsSync(built) || statSync(built).mtimeMs < statSync(source).mtimeMs) {
        throw new Error(`${built} is missing or older than ${source}: run \`npx tsc -p tsconfig.json\` first`);
      }
    }
    ko = await buildHelperModule((line) => console.log(`kmod: ${line}`));
  });

  it('loads, speaks protocol 1, survives fuzzing, refuses non-root and unloads', async () => {
    const kernel = await currentKernel();
    const r = await runInGuest({
      command: [process.execPath, SMOKE, '--ko', ko, '--fuzz', String(FUZZ_CASES)],
      timeoutMs: 150_000,
    });
    assertGuestOk(r, 'helper module smoke test');
    const line = r.stdout.split('\n').find((l) => l.startsWith('SMOKE_RESULT '));
    expect(line, `no SMOKE_RESULT line in:\n${r.stdout}`).toBeDefined();
    const smoke = JSON.parse(line!.slice('SMOKE_RESULT '.length)) as SmokeResult;

    expect(smoke.failures).toBe(0);
    expect(smoke.version.proto).toBe(1);
    expect(smoke.version.kernel).toBe(kernel.kver);
    expect(smoke.guestKernel).toBe(kernel.kver);
    const { writeEINVAL = 0, writeEMSGSIZE = 0, errReply = 0 } = smoke.fuzz.outcomes;
    expect(writeEINVAL + writeEMSGSIZE + errReply).toBe(FUZZ_CASES);
    expect(writeEINVAL).toBeGreaterThan(0);
    expect(writeEMSGSIZE).toBeGreaterThan(0);
    expect(errReply).toBeGreaterThan(0);
    expect(smoke.concurrency.fourClients.correct).toBe(smoke.concurrency.fourClients.requests);
    expect(smoke.nonRoot).toEqual({ nobody: 'EACCES', rootWithoutCapSysAdmin: 'EPERM' });
    expect(smoke.unload).toEqual({ refusedWhileOpen: true, rmmod: true });
    const log = r.kernelLog.map((l) => l.text);
    expect(log.some((t) => t.startsWith('shadow_helper: loaded, protocol 1'))).toBe(true);
    expect(log.some((t) => t.startsWith('shadow_helper: unloaded'))).toBe(true);

    console.log(
      `helper module: guest boot ${Math.round(r.bootToCommandMs ?? -1)} ms, total ${Math.round(r.totalMs)} ms; ` +
        `fuzz ${smoke.fuzz.total} cases (seed ${smoke.seed}) in ${smoke.fuzz.ms} ms: ` +
        `write EINVAL ${writeEINVAL}, write EMSGSIZE ${writeEMSGSIZE}, err reply ${errReply}; ` +
        `kinds ${JSON.stringify(smoke.fuzz.byKind)}; ` +
        `${smoke.concurrency.oneFd.ops} concurrent ops on one fd in ${smoke.concurrency.oneFd.ms} ms; ` +
        `non-root open: nobody ${smoke.nonRoot.nobody}, root without CAP_SYS_ADMIN ${smoke.nonRoot.rootWithoutCapSysAdmin}`,
    );
  });
});
