// The disk applications survive a disk driver failure with shadowd
// (guest/block-recovery-scenario.ts): shadowd puts each scratch disk under a
// map of its own (CreateMap=yes), the compiler, the encoder and the database
// run on ext4 made on the map, and mid-run a fault is injected into the
// disk's driver: a fail-stop (every command fails in the driver) on
// ata_piix, a disk-side error (the SCSI device offline) on ahci, lost
// interrupts on virtio_blk (whose module is loaded only after shadowd
// started, so its disk's map is made when the disk appears); one fault per driver keeps the run short while
// every fault meets every application. Lost interrupts on an ATA disk are
// left out: with a cache flush in flight, libata's own error handler
// retries the flush (15 + 15 + 30 s) before the unbind can finish, longer
// than this test should take; docs/disks.md says so.
// shadowd must detect the failure by itself, restart the controller's
// driver, find the disk again, put its settings back and point the map at
// it; the applications must finish with the proof of
// disk-apps/apps.ts (byte-identical outputs, every acknowledged transaction
// there, integrity_check ok, e2fsck -fn clean, no I/O error above the map,
// never read-only, every app exits 0). The control, the same applications
// without shadowd and with the driver failing, is apps-control.test.ts.
import { beforeAll, describe, expect, it } from 'vitest';
import { assertGuestOk } from '../../rig/guest.js';
import { buildHelperModule } from '../../rig/kmod-build.js';
import type { AppName } from '../../guest/disk-apps/apps.js';
import type { BlockRecoveryResult, LostDiskResult } from '../../guest/block-recovery-scenario.js';
import { RECOVERY_DISKS as DISKS, RECOVERY_TIMEOUT_MS as GUEST_TIMEOUT_MS, runDiskAppsRecovery } from './disk-apps-runs.js';

const APPS: AppName[] = ['compiler', 'encoder', 'database'];

interface HistoryRecord {
  id: string;
  trigger: string;
  result: string | null;
  error: string | null;
  phases: { detect?: number; restart?: number; check?: number; total?: number };
  steps: { key: string; result: string; error?: string }[];
}

describe('disk applications survive a disk driver failure with shadowd', () => {
  const results = new Map<string, BlockRecoveryResult>();
  let lost: LostDiskResult | null = null;
  let stdout = '';
  beforeAll(async () => {
    await buildHelperModule((line) => console.log(`kmod: ${line}`));
    const run = await runDiskAppsRecovery((l) => console.log(l));
    const r = run.guest;
    stdout = r.stdout;
    console.log(`guest: ${(r.totalMs / 1000).toFixed(0)} s in all\n${r.stdout.split('\n').filter((l) => !l.startsWith('BLOCK_RECOVERY_RESULT ') && !l.startsWith('LOST_DISK_RESULT ')).join('\n')}`);
    assertGuestOk(r, 'disk recovery scenario');
    lost = run.lost;
    for (const [driver, res] of run.results) results.set(driver, res);
  }, GUEST_TIMEOUT_MS + 120_000);

  it.each(DISKS)('%s (driver %s), %s: detected, recovered, and the applications finish with their data intact', (_preset, driver, fault) => {
    const r = results.get(driver);
    expect(r, `no result for ${driver} in:\n${stdout}`).toBeDefined();
    const res = r!;
    const history = res.history as { recoveries: HistoryRecord[] } | string;
    if (typeof history === 'string') throw new Error(`shadowctl history failed: ${history}`);
    const recs = history.recoveries;
    const apps = APPS.map((n) => `${n} exit ${res.outcome.apps[n].exitCode} in ${(res.outcome.apps[n].durationMs / 1000).toFixed(1)} s, longest stall ${(res.outcome.apps[n].longestStallMs / 1000).toFixed(1)} s`);
    console.log(
      `${driver} ${fault}: ${apps.join('; ')}; acked ${res.outcome.acked}; disk ${res.diskBefore} -> ${res.diskAfter}; ` +
        `recoveries ${JSON.stringify(recs.map((x) => ({ trigger: x.trigger, result: x.result, phases: x.phases, error: x.error })))}`,
    );
    expect(res.failures, `${driver} ${fault}:\n${JSON.stringify(res.failures, null, 1)}\n${res.daemonLog}`).toEqual([]);
    for (const n of APPS) expect(res.outcome.apps[n].exitCode, n).toBe(0);
    expect(res.outcome.acked).toBeGreaterThan(20);
    // Found by shadowd's own detection, not asked for; recovered, with every step done.
    expect(recs.length, res.daemonLog).toBeGreaterThanOrEqual(1);
    const last = recs[recs.length - 1]!;
    expect(['io-stall', 'path-failed']).toContain(recs[0]!.trigger);
    expect(last.result, `${last.error}\n${res.daemonLog}`).toBe('recovered');
    expect(last.steps.filter((s) => s.result === 'fail'), JSON.stringify(last.steps)).toEqual([]);
    expect(last.steps.map((s) => s.key)).toEqual(expect.arrayContaining(['find', 'identity', 'map']));
    // The map follows the disk, and what an administrator set on it is back.
    expect(res.statusAfter?.attrs['map'], `no disk shows map ${res.map} in shadowctl status after the recovery:\n${res.daemonLog}`).toBe(res.map);
    expect(res.readAheadAfter).toBe('1024');
  });

  it('fails the held I/O of a disk that does not come back once LostDiskHoldMs has run out, and says why', () => {
    expect(lost, `no lost-disk result in:\n${stdout}`).not.toBeNull();
    const l = lost!;
    console.log(`lost disk ${l.disk}: recover exit ${l.recover.exitCode}: ${l.recover.output}; write issued once the disk was gone ended after ${l.write.endedAfterMs} ms (exit ${l.write.exitCode}: ${l.write.stderr}); table ${l.table}`);
    // The recovery failed (the driver did not come back), and said so.
    expect(l.recover.exitCode, `${l.recover.output}\n${l.daemonLog}`).toBe(1);
    // The write issued once the disk was gone was held, then failed when the hold ran out, as the journal says.
    expect(l.write.heldAt500Ms, l.daemonLog).toBe(true);
    expect(l.write.exitCode, `${l.write.stderr}\n${l.daemonLog}`).not.toBe(0);
    expect(l.write.stderr).toMatch(/Input\/output error/);
    expect(l.daemonLog).toMatch(new RegExp(`not back ${l.holdMs} ms after its driver's restart began: map ${l.map} now fails the I/O it held`));
    // The map no longer holds: queue_if_no_path is off.
    expect(l.table).toMatch(/ multipath 0 /);
  });
});
