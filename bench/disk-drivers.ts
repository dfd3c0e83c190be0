// The disk drivers the disk benchmarks run, and how a driver named on the
// command line becomes the serial of its disk in the guest: the rig gives
// the Nth disk preset the serial shadowd-diskN, so the preset order here
// fixes the serials (piix-ide first: it takes the first IDE bus). Shared by
// block-restarts.ts and block-throughput.ts.
import type { DiskPreset } from '../test/vm/rig/devices.js';

export const DISK_DRIVERS: readonly (readonly [string, DiskPreset])[] = [
  ['ata_piix', 'piix-ide'],
  ['ahci', 'ahci'],
  ['virtio_blk', 'virtio-blk'],
];

/** Every preset, in serial order: the guest always gets all three disks. */
export const DISK_PRESETS: DiskPreset[] = DISK_DRIVERS.map(([, p]) => p);

/** `a|b|c`, for a usage line. */
export const DISK_DRIVER_CHOICES = DISK_DRIVERS.map(([d]) => d).join('|');

/** The drivers asked for (all when none), the ones not known, and each known one's disk serial. */
export function diskDriversFrom(positionals: readonly string[]): { drivers: string[]; unknown: string[]; serials: string[] } {
  const drivers = positionals.length > 0 ? [...positionals] : DISK_DRIVERS.map(([d]) => d);
  const index = (d: string): number => DISK_DRIVERS.findIndex(([p]) => p === d);
  return {
    drivers,
    unknown: drivers.filter((d) => index(d) < 0),
    serials: drivers.filter((d) => index(d) >= 0).map((d) => `shadowd-disk${index(d)}`),
  };
}
