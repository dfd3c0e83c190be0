// The helper module (protocol 3) in a real 6.1 guest with an e1000 NIC: loads,
// answers the daemon's client, turns thousands of malformed writes, malformed
// CLASS:NAME references and malformed arguments of every verb into the
// protocol's errors without a
// kernel complaint, runs txstat, stage, inject and one restart of the NIC for
// real, refuses unprivileged opens, unloads, and without allow_faults refuses
// inject, and that a restart whose requester was killed keeps the module from
// unloading until it ends. The guest side is guest/helper-smoke.ts, run compiled from
// dist/test/vm/guest/helper-smoke.js.
import { existsSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertGuestOk, currentKernel, runInGuest } from '../rig/guest.js';
import { buildHelperModule } from '../rig/kmod-build.js';
import { repoPath } from '../rig/repo-path.js';

const SMOKE = repoPath('dist/test/vm/guest/helper-smoke.js');
// The guest runs compiled code: the smoke script and the client it imports.
const BUILT_FROM_SOURCE: { built: string; source: string }[] = [
  { built: SMOKE, source: repoPath('test/vm/guest/helper-smoke.ts') },
  { built: repoPath('dist/daemon/core/helper-client.js'), source: repoPath('daemon/core/helper-client.ts') },
];
const FUZZ_CASES = 5000;
const NIC_DRIVER = 'e1000';

interface FuzzStats {
  total: number;
  ms: number;
  outcomes: Record<string, number>;
  errnames: Record<string, number>;
  determined: number;
  ambiguous: number;
  byKind: Record<string, number>;
  byKindOutcome: Record<string, Record<string, number>>;
}
interface SmokeResult {
  seed: number;
  guestKernel: string;
  nic: { name: string; driver: string; ifindex: number };
  version: { proto: number; version: string; kernel: string; faults: boolean; classes: string[] };
  fuzz: FuzzStats;
  valid: {
    restart: { ifindex: number; totalMs: number; steps: string };
    during: Record<string, string>;
    busy: string;
    checked: number;
  };
  concurrency: { oneFd: { ops: number; ms: number }; fourClients: { requests: number; correct: number } };
  nonRoot: { nobody?: string; rootWithoutCapSysAdmin?: string };
  unload: { refusedWhileOpen: boolean; rmmod: boolean };
  leftRequester: { rmmodRefused: boolean; rmmodMs: number; restartEnded: boolean };
  noFaults: { version: { proto: number; faults: boolean }; injectTxHang: string; fuzz: FuzzStats; rmmod: boolean };
  unplugged: { parked: string; goneMs: number | null; log: string[]; rmmod: boolean };
  failures: number;
}

const kinds = (f: FuzzStats): string =>
  Object.entries(f.byKindOutcome)
    .map(([kind, outcomes]) => `${kind} ${f.byKind[kind]} (${Object.entries(outcomes).map(([o, n]) => `${o} ${n}`).join(', ')})`)
    .join('; ');

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

  it('loads, speaks protocol 3, survives fuzzing, restarts the NIC, refuses non-root and unloads', async () => {
    const kernel = await currentKernel();
    const r = await runInGuest({
      command: [process.execPath, SMOKE, '--ko', ko, '--nic', NIC_DRIVER, '--fuzz', String(FUZZ_CASES)],
      devices: [NIC_DRIVER],
      timeoutMs: 150_000,
    });
    assertGuestOk(r, 'helper module smoke test');
    const line = r.stdout.split('\n').find((l) => l.startsWith('SMOKE_RESULT '));
    expect(line, `no SMOKE_RESULT line in:\n${r.stdout}`).toBeDefined();
    const smoke = JSON.parse(line!.slice('SMOKE_RESULT '.length)) as SmokeResult;

    expect(smoke.failures).toBe(0);
    expect(smoke.version.proto).toBe(3);
    expect(smoke.version.classes).toEqual(['net', 'block', 'sound']);
    expect(smoke.version.faults).toBe(true);
    expect(smoke.version.kernel).toBe(kernel.kver);
    expect(smoke.guestKernel).toBe(kernel.kver);
    expect(smoke.nic.driver).toBe(NIC_DRIVER);
    const { writeEINVAL = 0, writeEMSGSIZE = 0, errReply = 0 } = smoke.fuzz.outcomes;
    expect(writeEINVAL + writeEMSGSIZE + errReply).toBe(FUZZ_CASES);
    expect(writeEINVAL).toBeGreaterThan(0);
    expect(writeEMSGSIZE).toBeGreaterThan(0);
    expect(errReply).toBeGreaterThan(0);
    // The argument fuzz reaches past the framing: names that are not there, and malformed arguments.
    expect(smoke.fuzz.errnames.ENODEV ?? 0).toBeGreaterThan(100);
    expect(smoke.fuzz.errnames.EINVAL ?? 0).toBeGreaterThan(1000);
    for (const kind of ['txstatArgs', 'stageArgs', 'injectArgs', 'restartArgs', 'verbNoise', 'named']) {
      expect(smoke.fuzz.byKind[kind] ?? 0, kind).toBeGreaterThan(100);
    }
    expect(smoke.valid.restart.ifindex).toBe(smoke.nic.ifindex);
    expect(smoke.valid.restart.steps).toMatch(/^name:ok,.*,open:ok$/);
    expect(smoke.valid.during).toMatchObject({ ifindex: String(smoke.nic.ifindex), state: 'restarting' });
    expect(smoke.valid.busy).toMatch(/^err EBUSY /);
    expect(smoke.concurrency.fourClients.correct).toBe(smoke.concurrency.fourClients.requests);
    expect(smoke.nonRoot).toEqual({ nobody: 'EACCES', rootWithoutCapSysAdmin: 'EPERM' });
    expect(smoke.unload).toEqual({ refusedWhileOpen: true, rmmod: true });
    // A restart whose requester was killed while it waited held the module: rmmod was refused, the restart ended.
    expect(smoke.leftRequester).toMatchObject({ rmmodRefused: true, restartEnded: true });
    expect(smoke.noFaults.version).toMatchObject({ proto: 3, faults: false });
    expect(smoke.noFaults.injectTxHang).toBe('err EPERM');
    expect(smoke.noFaults.fuzz.errnames.EPERM ?? 0).toBeGreaterThan(100);
    expect(smoke.noFaults.rmmod).toBe(true);
    const log = r.kernelLog.map((l) => l.text);
    const loaded = log.filter((t) => t.startsWith('shadow_helper: loaded, protocol 3'));
    expect(loaded).toEqual([
      expect.stringMatching(/, fault injection allowed$/),
      expect.not.stringMatching(/fault injection/),
      expect.not.stringMatching(/fault injection/),
    ]);
    expect(log.filter((t) => t.startsWith('shadow_helper: unloaded'))).toHaveLength(3);
    // A parked NIC whose PCI device was removed went with it, and the module was free to unload.
    expect(smoke.unplugged.parked).toBe(`parked net:${smoke.nic.name} id=unplug1`);
    expect(smoke.unplugged.goneMs).not.toBeNull();
    expect(smoke.unplugged.rmmod).toBe(true);
    // The kernel log names the device as the protocol does.
    expect(log.some((t) => t === `shadow_helper: fault tx-hang injected into net:${smoke.nic.name}`)).toBe(true);
    expect(log.some((t) => t === `shadow_helper: recovery fuzz1: restarting net:${smoke.nic.name}`)).toBe(true);
    expect(log.some((t) => t.startsWith(`shadow_helper: recovery fuzz1: net:${smoke.nic.name} restarted in `))).toBe(true);
    // Only the restarts asked for (fuzz1, leaver1 whose requester left, and the park before the
    // unplug): no fuzz case got as far as restarting or parking anything.
    expect(log.filter((t) => /shadow_helper: recovery .*: (restarting|parking) /.test(t))).toEqual([
      `shadow_helper: recovery fuzz1: restarting net:${smoke.nic.name}`,
      `shadow_helper: recovery leaver1: restarting net:${smoke.nic.name}`,
      `shadow_helper: recovery unplug1: parking net:${smoke.nic.name}`,
    ]);

    console.log(
      `helper module: guest boot ${Math.round(r.bootToCommandMs ?? -1)} ms, total ${Math.round(r.totalMs)} ms; ` +
        `fuzz ${smoke.fuzz.total} cases (seed ${smoke.seed}) in ${smoke.fuzz.ms} ms: ` +
        `write EINVAL ${writeEINVAL}, write EMSGSIZE ${writeEMSGSIZE}, err reply ${errReply} ${JSON.stringify(smoke.fuzz.errnames)}, ` +
        `errno determined ${smoke.fuzz.determined}, one of several ${smoke.fuzz.ambiguous}; kinds: ${kinds(smoke.fuzz)}; ` +
        `restart of ${smoke.nic.name} in ${smoke.valid.restart.totalMs} ms (${smoke.valid.restart.steps}), ` +
        `meanwhile txstat ${JSON.stringify(smoke.valid.during)} and ${JSON.stringify(smoke.valid.busy)}; ` +
        `without allow_faults: ${smoke.noFaults.fuzz.total} cases ${JSON.stringify(smoke.noFaults.fuzz.errnames)}; ` +
        `${smoke.concurrency.oneFd.ops} concurrent ops on one fd in ${smoke.concurrency.oneFd.ms} ms; ` +
        `non-root open: nobody ${smoke.nonRoot.nobody}, root without CAP_SYS_ADMIN ${smoke.nonRoot.rootWithoutCapSysAdmin}; ` +
        `rmmod during a left requester's restart: refused=${String(smoke.leftRequester.rmmodRefused)} in ${smoke.leftRequester.rmmodMs} ms; ` +
        `parked and unplugged: interface gone in ${String(smoke.unplugged.goneMs)} ms, rmmod ${smoke.unplugged.rmmod ? 'ok' : 'refused'}`,
    );
  });
});
