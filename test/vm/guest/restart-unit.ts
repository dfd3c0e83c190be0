// Guest side: the device a restart of a class device's driver acts on, found
// by walking up sysfs from the class device (a disk, an interface, a sound
// card) to the first ancestor bound to a driver that is not a SCSI device:
// the PCI function (ata_piix, ahci, e1000, snd-intel8x0) or the virtio
// device (virtio_blk, virtio_net). The same walk for every class.
import { existsSync, readlinkSync, realpathSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

export interface RestartUnit {
  /** Bus of the device the driver is bound to: pci or virtio. */
  bus: string;
  driver: string;
  /** The device's name on its bus: 0000:00:01.1, virtio2. */
  id: string;
  /** Its sysfs path. */
  path: string;
}

/** The restart unit of the class device whose `device` link is at `deviceLink` (/sys/block/sda/device, /sys/class/net/eth0/device). */
export function restartUnitAt(deviceLink: string): RestartUnit {
  let dir = realpathSync(deviceLink);
  for (; dir !== '/sys/devices' && dir !== '/'; dir = dirname(dir)) {
    if (!existsSync(join(dir, 'driver')) || !existsSync(join(dir, 'subsystem'))) continue;
    const bus = basename(readlinkSync(join(dir, 'subsystem')));
    if (bus === 'scsi') continue;
    return { bus, driver: basename(readlinkSync(join(dir, 'driver'))), id: basename(dir), path: dir };
  }
  throw new Error(`no driver-bound ancestor of ${deviceLink}`);
}
