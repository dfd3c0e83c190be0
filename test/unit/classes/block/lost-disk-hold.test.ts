// The bound on a lost disk's hold, with a hand-driven clock: the map is told
// to fail its held I/O only when the hold runs out with the disk still not
// back and shadowd no longer recovering the controller, once per loss, never
// with LostDiskHoldMs=0; the guest test (block-recovery-scenario.ts) runs it
// on a real map.
import { describe, expect, it } from 'vitest';
import type { DiskFacts } from '../../../../daemon/classes/block/disk-shadow.js';
import { LostDiskHold } from '../../../../daemon/classes/block/lost-disk-hold.js';

function disk(name: string, over: Partial<DiskFacts> = {}): DiskFacts {
  return {
    name, devt: '8:0', serial: `S-${name}`, wwid: null, model: 'QEMU HARDDISK', sectors: 131072, unit: '0000:00:1f.2', driver: 'ahci',
    scsiAddress: '0:0:0:0', scsiHost: 'host0', settings: {}, map: `shadow-S-${name}`, protection: 'protected', ...over,
  };
}

function rig(holdMs: number) {
  const timers: { fn: () => void; ms: number; cancelled: boolean }[] = [];
  const failed: string[] = [];
  const lines: string[] = [];
  const state = { busy: false };
  const hold = new LostDiskHold({
    holdMs: () => holdMs,
    busy: () => state.busy,
    failHeldIo: (map) => {
      failed.push(map);
      return map === 'shadow-S-bad' ? Promise.reject(new Error('dmsetup exited with status 1')) : Promise.resolve(['dmsetup', 'message', map, '0', 'fail_if_no_path']);
    },
    logger: { log: (_p, m) => void lines.push(m) },
    setTimer: (fn, ms) => {
      const t = { fn, ms, cancelled: false };
      timers.push(t);
      return { cancel: () => (t.cancelled = true) };
    },
  });
  /** Runs the timers due now (not those they set). */
  const fire = async () => {
    for (const t of timers.splice(0)) if (!t.cancelled) t.fn();
    await new Promise((r) => setTimeout(r, 0));
  };
  return { hold, timers, failed, lines, state, fire };
}

describe('lost disk hold', () => {
  it('fails the held I/O when the hold runs out with the disk not back, not while shadowd still recovers it, once, and says so', async () => {
    const r = rig(60_000);
    r.hold.begin(disk('sda'));
    // A retry's restart does not restart the clock.
    r.hold.begin(disk('sda'));
    expect(r.timers.map((t) => t.ms)).toEqual([60_000]);
    expect(r.hold.says(disk('sda'))).toBe("map shadow-S-sda holds sda's I/O until 60000 ms after the restart began (LostDiskHoldMs), then fails it unless the disk is back");
    // Still recovering when the time is up: it looks again a second later.
    r.state.busy = true;
    await r.fire();
    expect(r.failed).toEqual([]);
    expect(r.timers.map((t) => t.ms)).toEqual([1000]);
    r.state.busy = false;
    await r.fire();
    expect(r.failed).toEqual(['shadow-S-sda']);
    expect(r.lines).toEqual([
      "sda: not back 60000 ms after its driver's restart began: map shadow-S-sda now fails the I/O it held (dmsetup message shadow-S-sda 0 fail_if_no_path); applications see I/O errors, as without shadowd",
    ]);
    expect(r.hold.pending()).toBe(0);
  });

  it('fails nothing for a disk that came back in time, or with no map, or with LostDiskHoldMs=0', async () => {
    const r = rig(30_000);
    r.hold.begin(disk('sda'));
    r.hold.back(disk('sdc', { serial: 'S-sda' }));
    r.hold.begin(disk('sdb', { map: null }));
    expect(r.hold.says(disk('sdb', { map: null }))).toBeNull();
    await r.fire();
    expect(r.failed).toEqual([]);
    const forever = rig(0);
    forever.hold.begin(disk('sda'));
    expect(forever.timers).toEqual([]);
    expect(forever.hold.says(disk('sda'))).toBe("map shadow-S-sda holds sda's I/O until the disk is back or someone acts (LostDiskHoldMs=0)");
  });

  it('says so when the map cannot be made to fail its I/O', async () => {
    const r = rig(1000);
    r.hold.begin(disk('bad'));
    await r.fire();
    expect(r.lines[0]).toBe("bad: not back 1000 ms after its driver's restart began, and map shadow-S-bad could not be made to fail the I/O it holds: dmsetup exited with status 1");
  });
});
