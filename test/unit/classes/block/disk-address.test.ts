// Which disk a SCSI address or an ATA port and device is (disk-address.ts):
// on the sysfs tree captured in the guest (test/fixtures/block/guest-6.1:
// sda on ata_piix's ata1 as SCSI 0:0:0:0, sdb on ahci's ata3 as 2:0:0:0,
// vda on virtio, two dm maps), and on small trees for what that guest has
// not (a PIIX slave device, a disk behind a port multiplier).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { diskAtScsiAddress, diskPlaces, disksOnAta } from '../../../../daemon/classes/block/disk-address.js';

const SYSFS = join(fileURLToPath(new URL('../../../fixtures/block/guest-6.1', import.meta.url)), 'sysfs');

describe('disks by where they sit, on the guest capture', () => {
  it('reads each whole disk\'s ATA port and SCSI address from its /sys/block link', () => {
    expect(diskPlaces(SYSFS)).toEqual([
      { disk: 'dm-0', ataPort: null, scsi: null },
      { disk: 'dm-1', ataPort: null, scsi: null },
      { disk: 'sda', ataPort: 1, scsi: [0, 0, 0, 0] },
      { disk: 'sdb', ataPort: 3, scsi: [2, 0, 0, 0] },
      { disk: 'vda', ataPort: null, scsi: null },
    ]);
  });

  it('finds the disk of a SCSI address, and none for an address with no disk', () => {
    expect(diskAtScsiAddress('0:0:0:0', SYSFS)).toBe('sda');
    expect(diskAtScsiAddress('2:0:0:0', SYSFS)).toBe('sdb');
    expect(diskAtScsiAddress('1:0:0:0', SYSFS)).toBeNull();
    expect(diskAtScsiAddress('2:0:0:1', SYSFS)).toBeNull();
    expect(diskAtScsiAddress('sda', SYSFS)).toBeNull();
  });

  it('finds the disks of an ATA port, and of one device on it', () => {
    expect(disksOnAta(1, 0, SYSFS)).toEqual(['sda']);
    expect(disksOnAta(3, 0, SYSFS)).toEqual(['sdb']);
    expect(disksOnAta(3, null, SYSFS)).toEqual(['sdb']);
    // The PIIX slave position and the empty secondary channel hold no disk here.
    expect(disksOnAta(1, 1, SYSFS)).toEqual([]);
    expect(disksOnAta(2, null, SYSFS)).toEqual([]);
    // ata1 is not ata11, nor a prefix of it.
    expect(disksOnAta(11, null, SYSFS)).toEqual([]);
  });

  it('finds nothing, and does not throw, without a sysfs', () => {
    expect(diskPlaces('/nonexistent/sys')).toEqual([]);
    expect(disksOnAta(1, 0, '/nonexistent/sys')).toEqual([]);
  });
});

describe('disks by where they sit, on made-up trees', () => {
  let dir = '';
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = '';
  });
  const tree = (links: Record<string, string>): string => {
    dir = mkdtempSync(join(tmpdir(), 'disk-address-'));
    mkdirSync(join(dir, 'block'));
    for (const [disk, target] of Object.entries(links)) symlinkSync(target, join(dir, 'block', disk));
    return dir;
  };

  it('a PIIX master and slave: ataN.00 and ataN.01 are SCSI targets 0 and 1', () => {
    const sys = tree({
      sda: '../devices/pci0000:00/0000:00:01.1/ata1/host0/target0:0:0/0:0:0:0/block/sda',
      sdb: '../devices/pci0000:00/0000:00:01.1/ata1/host0/target0:0:1/0:0:1:0/block/sdb',
    });
    expect(disksOnAta(1, 0, sys)).toEqual(['sda']);
    expect(disksOnAta(1, 1, sys)).toEqual(['sdb']);
    expect(disksOnAta(1, null, sys)).toEqual(['sda', 'sdb']);
  });

  it('behind a port multiplier: ataN.PP is SCSI channel PP, target 0', () => {
    const sys = tree({
      sdc: '../devices/pci0000:00/0000:00:1f.2/ata5/host4/target4:2:0/4:2:0:0/block/sdc',
      sdd: '../devices/pci0000:00/0000:00:1f.2/ata5/host4/target4:3:0/4:3:0:0/block/sdd',
    });
    expect(disksOnAta(5, 3, sys)).toEqual(['sdd']);
    expect(disksOnAta(5, 2, sys)).toEqual(['sdc']);
    expect(disksOnAta(5, 0, sys)).toEqual([]);
  });
});
