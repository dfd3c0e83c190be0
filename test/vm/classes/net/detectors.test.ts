// The failure detectors on the guest's real kernel (test/vm/guest/detectors-guest.ts):
// what the kernel log and the TX watchdog tracepoint report (the latter once
// the helper's count of the interface's own timeouts confirms it), and what
// they leave alone.
import { describe, expect, it } from 'vitest';
import type { FailureReport } from '../../../../daemon/core/failure-report.js';
import { runInGuest } from '../../rig/guest.js';
import { buildHelperModule, buildModule } from '../../rig/kmod-build.js';
import { repoPath } from '../../rig/repo-path.js';

interface Output {
  probes: number;
  devices: { eth: string; pcnet: string };
  startedAt: number;
  txstopAt: number;
  tapTs: number[];
  verdicts: { kind: string; why?: string }[];
  reports: (FailureReport & { mono: number })[];
  selfFaults: unknown[];
  stats: { records: number; lost: number; faults: number; reports: number };
  logs: { priority: string; message: string }[];
}

describe('failure detectors in the guest', () => {
  it('report a TX timeout twice (kernel log, tracepoint) and a driver WARN, and leave the rest alone', async () => {
    const fixture = await buildModule(repoPath('test/vm/fault-fixture'), 'fault_fixture', () => undefined);
    const helper = await buildHelperModule(() => undefined);
    const r = await runInGuest({
      command: ['node', repoPath('dist/test/vm/guest/detectors-guest.js'), fixture, helper],
      devices: ['e1000', 'pcnet'],
      timeoutMs: 170_000,
    });
    // The guest kernel WARNs on purpose (the fixture twice, pcnet32 once); nothing else may go wrong.
    if (r.exitCode !== 0) throw new Error(`detectors-guest failed (${String(r.exitCode)}):\n${r.stderr}\n${r.console}`);
    for (const p of r.kernelProblems) expect(p).toMatch(/fault_fixture: deliberate warning|dma_free_attrs/);
    const out = JSON.parse(r.stdout) as Output;
    const { eth, pcnet } = out.devices;

    expect(out.selfFaults).toEqual([]);
    expect(out.reports.map((x) => [x.device, x.kind, x.driver ?? null, x.detail.replace(/\d+ ms$/, 'N ms')]).sort()).toEqual(
      [
        [eth, 'tx-timeout', 'e1000', `NETDEV WATCHDOG: ${eth} (e1000): transmit queue 0 timed out N ms`],
        [eth, 'tx-timeout', null, 'kernel TX watchdog: transmit queue 0 timed out (driver e1000)'],
        [pcnet, 'warn', 'pcnet32', expect.stringMatching(/^WARNING: CPU: \d+ PID: \d+ at kernel\/dma\/mapping\.c:\d+ dma_free_attrs\+\S+ \(called from pcnet32_\w+\+\S+ \[pcnet32\]\)$/) as string],
      ].sort(),
    );
    for (const x of out.reports) {
      expect(x.detectedAt).toBeGreaterThanOrEqual(out.startedAt);
      if (x.since !== undefined) expect(x.since).toBeLessThanOrEqual(x.detectedAt);
    }
    // The WARN logged before the watch started is not replayed; the second one is logged, not reported.
    const ignored = out.logs.filter((l) => l.message.includes('which drives no device shadowd watches'));
    expect(ignored).toHaveLength(1);
    expect(ignored[0]).toMatchObject({ priority: 'notice' });
    expect(out.logs.filter((l) => l.message.startsWith('the kernel log overran'))).toHaveLength(1);
    expect(out.stats.lost).toBeGreaterThan(0);

    // The tap's record was the watched interface's by the helper's count: it had grown by the time the record came.
    expect(out.verdicts).toEqual([{ kind: 'new' }]);
    const kmsg = out.reports.find((x) => x.kind === 'tx-timeout' && x.driver)!;
    const tap = out.reports.find((x) => x.kind === 'tx-timeout' && !x.driver)!;
    const fired = out.tapTs[0]!; // the tracepoint, on CLOCK_MONOTONIC, just before the kernel logs the timeout
    console.log(
      `TX timeout on ${eth}: watchdog fired ${(fired - out.txstopAt).toFixed(0)} ms after the queue was stopped; ` +
        `reported by the tracepoint ${(tap.mono - fired).toFixed(1)} ms and by the kernel log ${(kmsg.mono - fired).toFixed(1)} ms later; ` +
        `kernel log: ${out.stats.records} records read, ${out.stats.lost} lost to the overrun`,
    );
    expect(kmsg.mono - fired).toBeLessThan(1000);
    expect(tap.mono - fired).toBeLessThan(1000);
  });
});
