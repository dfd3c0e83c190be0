// The paper's disk applications (guest/disk-apps/): a compiler (make -j2
// building the kernel's gpio and iio tools), an encoder (sox, WAV to FLAC)
// and a database (SQLite, WAL, synchronous=FULL) on ext4 straight on a
// scratch disk, on each disk class driver (ata_piix, ahci, virtio_blk), in
// one guest boot. On the first disk they first run without a fault and must
// pass the checker (byte-identical outputs, every acknowledged transaction
// there, integrity_check ok, e2fsck -fn clean, no I/O error logged, never
// read-only, every app exits 0): that proves the checker can pass on a bare
// disk and that what fails in the control is the fault's doing (with
// shadowd, recovery-apps.test.ts, the checker passes on all three drivers).
// Then the control on each disk, without shadowd: mid-run the disk's
// controller driver departs (unbind, then bind of the PCI function or the
// virtio device) and the checker must see the failure.
import { beforeAll, describe, expect, it } from 'vitest';
import { assertGuestOk } from '../../rig/guest.js';
import type { AppName } from '../../guest/disk-apps/apps.js';
import type { DiskAppsRunResult as RunResult } from '../../guest/disk-apps/run.js';
import { CONTROL_DISKS as DISKS, CONTROL_TIMEOUT_MS as GUEST_TIMEOUT_MS, NOFAULT_DISK, runDiskAppsControl } from './disk-apps-runs.js';

const APPS: AppName[] = ['compiler', 'encoder', 'database'];

function summary(r: RunResult): string {
  const apps = APPS.map((n) => {
    const a = r.outcome.apps[n];
    return `${n} exit ${a.exitCode ?? a.signal ?? a.error} in ${(a.durationMs / 1000).toFixed(1)} s, longest stall ${(a.longestStallMs / 1000).toFixed(1)} s`;
  });
  return `${r.driver} ${r.run}: ${apps.join('; ')}; acked ${r.outcome.acked}; read-only ${r.outcome.readOnlyAtMs === null ? 'never' : `at ${r.outcome.readOnlyAtMs} ms`}`;
}

describe('disk applications without shadowd: they work, and a driver failure breaks them (the control)', () => {
  const results = new Map<string, RunResult>();
  let stdout = '';
  beforeAll(async () => {
    const { guest: r, results: found } = await runDiskAppsControl((l) => console.log(l));
    stdout = r.stdout;
    console.log(`guest: ${(r.totalMs / 1000).toFixed(0)} s in all\n${r.stdout.split('\n').filter((l) => !l.startsWith('DISK_APPS_RESULT ')).join('\n')}`);
    assertGuestOk(r, 'disk applications scenario');
    for (const [key, res] of found) results.set(key, res);
  }, GUEST_TIMEOUT_MS + 60_000);

  function result(driver: string, run: string): RunResult {
    const r = results.get(`${driver}/${run}`);
    expect(r, `no ${run} result for ${driver} in:\n${stdout}`).toBeDefined();
    return r!;
  }

  it.each([NOFAULT_DISK])('without a fault on %s (driver %s) the applications work and the checker passes', (_preset, driver) => {
    const r = result(driver, 'nofault');
    console.log(summary(r));
    expect(r.failures, summary(r)).toEqual([]);
    for (const n of APPS) {
      expect(r.outcome.apps[n].exitCode).toBe(0);
      expect(r.outcome.apps[n].progress).toBeGreaterThan(1);
    }
    expect(r.outcome.acked).toBeGreaterThan(20);
  });

  it.each(DISKS)('control: the %s controller driver (%s) departs mid-run and the applications see the failure', (_preset, driver) => {
    const r = result(driver, 'control');
    console.log(`${summary(r)}; fault at ${r.faultAtMs} ms (${JSON.stringify(r.progressAtFault)}), ${JSON.stringify(r.fault?.steps)}; disk ${r.diskBefore} came back as ${r.diskAfter}`);
    for (const f of r.failures) console.log(`  ${driver} control, ${f.area}: ${f.what}`);
    // The fault landed mid-run: every app had made progress and none had ended.
    expect(r.progressAtFault).not.toBeNull();
    expect(r.progressAtFault!.compilerSteps).toBeGreaterThan(0);
    expect(r.progressAtFault!.encodedBytes).toBeGreaterThan(0);
    expect(r.progressAtFault!.commits).toBeGreaterThan(0);
    expect(r.diskAfter, "the disk was not found again after the restart").not.toBeNull();
    // The failure is observed: the kernel logged I/O errors on the departed
    // disk, and at least one application failed (an error exit, or outputs
    // or acknowledged data not there).
    const areas = new Set(r.failures.map((f) => f.area));
    expect(areas.has('kernel'), JSON.stringify(r.failures)).toBe(true);
    expect(APPS.some((n) => areas.has(n)), JSON.stringify(r.failures)).toBe(true);
    expect(APPS.some((n) => r.outcome.apps[n].exitCode !== 0), JSON.stringify(r.outcome.apps)).toBe(true);
  });
});
