// The machine as the disk class reads it (block-system.ts) on the sysfs tree
// captured in the guest (test/fixtures/block/guest-6.1: sda on ata_piix
// under the map shadow-capture, sdb on ahci under a linear map, vda on
// virtio_blk mounted straight), with dmsetup's listing parsed from what the
// guest printed. Isolates how sysfs and the maps become a disk's facts and
// its protection; the guest tests run it on a live machine.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SysfsBlockSystem } from '../../../../daemon/classes/block/block-system.js';
import { Dmsetup, parseInfoListing, parseMultipathTableArgs, parseSegments, protectedDisk, type DmMap } from '../../../../daemon/classes/block/dm-map.js';

const FIXTURE = fileURLToPath(new URL('../../../fixtures/block/guest-6.1', import.meta.url));
const text = (f: string): string => readFileSync(join(FIXTURE, 'dmsetup', f), 'utf8');

/** dmsetup's answers as the guest gave them; counts the listings asked for. */
class RecordedDmsetup extends Dmsetup {
  listings = 0;
  override async listMaps(): Promise<DmMap[]> {
    this.listings++;
    const tables = new Map(
      text('table-all.txt')
        .split('\n')
        .filter((l) => l.includes(': '))
        .map((l) => [l.slice(0, l.indexOf(': ')), l.slice(l.indexOf(': ') + 2)] as const),
    );
    return Promise.resolve(
      parseInfoListing(text('info-list.txt')).map((info) => {
        const table = parseSegments(tables.get(info.name) ?? '');
        const mp = table.length === 1 && table[0]!.target === 'multipath' ? parseMultipathTableArgs(table[0]!.args) : null;
        return { info, table, multipath: mp };
      }),
    );
  }
  override async protectingMaps(): Promise<{ map: DmMap; disk: string }[]> {
    return (await this.listMaps()).flatMap((map) => {
      const disk = protectedDisk(map);
      return disk ? [{ map, disk }] : [];
    });
  }
}

function machine() {
  const dm = new RecordedDmsetup();
  let now = 0;
  const sys = new SysfsBlockSystem({ sysfs: join(FIXTURE, 'sysfs'), mountinfo: join(FIXTURE, 'mountinfo'), dmsetup: dm, now: () => now });
  return { dm, sys, tick: (ms: number) => (now += ms) };
}

describe('the disk class on the captured guest tree', () => {
  it('reads each disk with its restart unit, SCSI address, identity and protection', async () => {
    const { sys } = machine();
    expect(await sys.listDisks()).toEqual(['sda', 'sdb', 'vda']);
    const sda = await sys.readDisk('sda');
    expect(sda).toMatchObject({ devt: '8:0', serial: 'shadowd-disk0', unit: '0000:00:01.1', driver: 'ata_piix', scsiAddress: '0:0:0:0', map: 'shadow-capture', protection: 'protected by map shadow-capture' });
    expect(sda.settings['queue/scheduler']).toBeDefined();
    const sdb = await sys.readDisk('sdb');
    expect(sdb.map).toBeNull();
    expect(sdb.protection).toMatch(/^not protected: held by device-mapper \(lin-capture on dm-1\)/);
    const vda = await sys.readDisk('vda');
    expect(vda).toMatchObject({ unit: 'virtio2', driver: 'virtio_blk', scsiAddress: null, scsiHost: null, map: null });
    expect(vda.protection).toMatch(/^not protected: mounted straight from the disk/);
    expect(await sys.mapOver('sda')).toBe('shadow-capture');
    expect(await sys.mapOver('vda')).toBeNull();
    expect(await sys.disksUnder('virtio2')).toEqual(['vda']);
    expect(await sys.moduleOf('ata_piix')).toBe(sda.module ?? null);
  });

  it('lists the maps at most once a second, however often the stall poller asks', async () => {
    const { dm, sys, tick } = machine();
    await sys.readDisk('sda');
    await sys.mapOver('sda');
    await sys.mapOver('sdb');
    expect(dm.listings).toBe(1);
    tick(1001);
    await sys.mapOver('sda');
    expect(dm.listings).toBe(2);
  });

  it('says what uses a disk: a mount, a holder', async () => {
    const { sys } = machine();
    expect(await sys.diskUse('vda')).toMatch(/mounted at /);
    expect(await sys.diskUse('sdb')).toMatch(/held by lin-capture/);
  });
});
