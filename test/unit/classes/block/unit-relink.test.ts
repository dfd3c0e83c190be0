// Finding a restarted controller's disks again: by identity, not name; the
// map is switched only to the same disk (identity and size); a disk that
// does not come back or comes back different is never written to.
import { describe, expect, it } from 'vitest';
import type { DiskFacts } from '../../../../daemon/classes/block/disk-shadow.js';
import { notSameDisk, relinkUnit, type RelinkDeps } from '../../../../daemon/classes/block/unit-relink.js';

function disk(name: string, over: Partial<DiskFacts> = {}): DiskFacts {
  return {
    name, devt: '8:0', serial: 'S1', wwid: null, model: 'QEMU HARDDISK', sectors: 131072, unit: '0000:00:1f.2', driver: 'ahci',
    scsiAddress: '0:0:0:0', scsiHost: 'host0', settings: {}, map: 'shadow-S1', protection: 'protected by map shadow-S1', ...over,
  };
}

/** Disks that appear under the unit after `appearAfter` polls; records map switches. */
function machine(after: DiskFacts[], appearAfter = 2, failSwitch = false) {
  let polls = 0;
  let clock = 0;
  const switched: string[] = [];
  const deps: RelinkDeps = {
    disksUnder: () => Promise.resolve(++polls > appearAfter ? after.map((d) => d.name) : []),
    readDisk: (name) => Promise.resolve(after.find((d) => d.name === name)!),
    switchMap: (map, sectors, devt) => {
      if (failSwitch) return Promise.reject(new Error('device-mapper: reload ioctl failed: Device or resource busy'));
      switched.push(`${map} ${sectors} ${devt}`);
      return Promise.resolve([['dmsetup', 'reload', map], ['dmsetup', 'resume', '--noflush', map]]);
    },
    sleep: (ms) => {
      clock += ms;
      return Promise.resolve();
    },
    now: () => clock,
  };
  return { deps, switched, polls: () => polls };
}

describe('relinking a restarted unit', () => {
  it('finds both disks of a controller again, under new names, and switches each map', async () => {
    const before = [disk('sda'), disk('sdb', { serial: 'S2', devt: '8:16', map: 'shadow-S2' })];
    const m = machine([disk('sdc', { devt: '8:32' }), disk('sdd', { serial: 'S2', devt: '8:48', map: null })]);
    const out = await relinkUnit(before, m.deps, 30_000);
    expect(out.map((r) => r.after?.name)).toEqual(['sdc', 'sdd']);
    expect(out[1]!.after?.map).toBe('shadow-S2');
    expect(m.switched).toEqual(['shadow-S1 131072 8:32', 'shadow-S2 131072 8:48']);
    expect(out[0]!.steps.map((s) => [s.key, s.ok])).toEqual([['find', true], ['identity', true], ['map', true]]);
  });

  it('never matches a disk whose identity cannot be read by its name, even where the failed disk had no other key', async () => {
    const before = [disk('vda', { serial: null, devt: '254:0', map: 'shadow-vda' })];
    const m = machine([disk('vda', { serial: null, devt: '254:16', identityUnread: true })], 0);
    const [r] = await relinkUnit(before, m.deps, 1_000);
    expect(r!.after).toBeNull();
    expect(r!.steps).toEqual([{ key: 'find', argv: [], ok: false, error: 'vda did not come back under 0000:00:1f.2 within 1000 ms' }]);
    expect(m.switched).toEqual([]);
    expect(notSameDisk(before[0]!, disk('vda', { serial: null, identityUnread: true }))).toMatch(/cannot be read/);
  });

  it('never points a map at a disk of another size, and says so', async () => {
    const m = machine([disk('sda', { sectors: 65536 })]);
    const [r] = await relinkUnit([disk('sda')], m.deps, 30_000);
    expect(r!.after).toBeNull();
    expect(r!.steps.at(-1)).toMatchObject({ key: 'identity', ok: false });
    expect(r!.steps.at(-1)!.error).toContain('size 65536 sectors is not 131072');
    expect(m.switched).toEqual([]);
  });

  it('gives up after the timeout when the disk does not come back; the map keeps holding', async () => {
    const m = machine([disk('sdb', { serial: 'OTHER' })], 0);
    const [r] = await relinkUnit([disk('sda')], m.deps, 1_000);
    expect(r!.after).toBeNull();
    expect(r!.steps).toEqual([{ key: 'find', argv: [], ok: false, error: 'sda did not come back under 0000:00:1f.2 within 1000 ms' }]);
    expect(m.polls()).toBeGreaterThan(3);
  });

  it('reports a map that cannot be switched', async () => {
    const m = machine([disk('sda')], 0, true);
    const [r] = await relinkUnit([disk('sda')], m.deps, 1_000);
    expect(r!.after).toBeNull();
    expect(r!.steps.at(-1)!.error).toMatch(/map shadow-S1 could not be pointed at sda \(8:0\): .*busy; it keeps holding/);
  });

  it('compares identity before size', () => {
    expect(notSameDisk(disk('sda'), disk('sdb', { serial: 'S9' }))).toBe('identity serial:S9 is not serial:S1');
    expect(notSameDisk(disk('sda'), disk('sdb'))).toBeNull();
  });
});
