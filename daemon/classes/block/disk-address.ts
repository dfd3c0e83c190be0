// Which disk a kernel message is about when it names where the disk sits
// rather than the disk: the SCSI error handler speaks of the SCSI device
// ("sd 2:0:0:0: ..."), libata's of the ATA port, link or device ("ata3: ...",
// "ata3.00: ..."). Read from the path /sys/block/DISK links to, which holds
// both (.../ata3/host2/target2:0:0/2:0:0:0/block/sdb). Synchronous, because
// the kernel log parser asks line by line (core/kernel-faults.ts), and only
// for the rare line a rule matched: one readdir and one readlink per disk.
// The sysfs root is a parameter so unit tests run on the guest's captured
// tree (test/fixtures/block/guest-6.1).
import { readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';

/** Where one whole disk sits, as its /sys/block link says. */
export interface DiskPlace {
  disk: string;
  /** N of the ataN port the disk is under (libata's print_id), or null. */
  ataPort: number | null;
  /** The SCSI device's H:C:T:L, or null for a disk that is no SCSI disk (virtio_blk, nvme). */
  scsi: readonly [number, number, number, number] | null;
}

const ATA_PORT = /^ata(\d{1,4})$/;
const SCSI_ADDRESS = /^(\d{1,6}):(\d{1,6}):(\d{1,6}):(\d{1,12})$/;

function placeOf(disk: string, link: string): DiskPlace {
  let ataPort: number | null = null;
  let scsi: DiskPlace['scsi'] = null;
  for (const part of link.split('/')) {
    const port = ATA_PORT.exec(part);
    if (port) ataPort = Number(port[1]);
    const a = SCSI_ADDRESS.exec(part);
    if (a) scsi = [Number(a[1]), Number(a[2]), Number(a[3]), Number(a[4])];
  }
  return { disk, ataPort, scsi };
}

/** Every whole disk with its place; a disk that vanishes while read is left out. */
export function diskPlaces(sysfs = '/sys'): DiskPlace[] {
  let names: string[];
  try {
    names = readdirSync(join(sysfs, 'block')).sort();
  } catch {
    return [];
  }
  const out: DiskPlace[] = [];
  for (const name of names) {
    try {
      out.push(placeOf(name, readlinkSync(join(sysfs, 'block', name))));
    } catch {
      // Gone between the readdir and the readlink (being removed).
    }
  }
  return out;
}

/** The disk on SCSI device H:C:T:L ("2:0:0:0"), or null. */
export function diskAtScsiAddress(address: string, sysfs = '/sys'): string | null {
  const a = SCSI_ADDRESS.exec(address);
  if (!a) return null;
  const want = [Number(a[1]), Number(a[2]), Number(a[3]), Number(a[4])];
  return diskPlaces(sysfs).find((p) => p.scsi !== null && p.scsi.every((n, i) => n === want[i]))?.disk ?? null;
}

/**
 * The disks under ATA port `port`; with `device`, only the one libata calls
 * ataPORT.DEVICE. libata prints a device as its link's port multiplier port
 * plus its number on the link, and adds it to SCSI as channel = PMP port,
 * target = 0 behind a port multiplier, else channel 0, target = its number
 * (ata_dev_printk, ata_scsi_scan_host): either way channel + target.
 */
export function disksOnAta(port: number, device: number | null = null, sysfs = '/sys'): string[] {
  return diskPlaces(sysfs)
    .filter((p) => p.ataPort === port && (device === null || (p.scsi !== null && p.scsi[1] + p.scsi[2] === device && p.scsi[3] === 0)))
    .map((p) => p.disk);
}
