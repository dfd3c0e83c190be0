// The network devices with the driver and module behind each, from sysfs:
// what the kernel log detector blames an oops, BUG or WARN in a module on.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { ModuleDevice } from '../../core/device-class.js';
import { linkBase } from '../../core/sysfs-text.js';

/**
 * Every interface in /sys/class/net (the daemon's own network namespace's),
 * with its bus device ('' for none); driver null for one without a bus device
 * (lo, veth, bridge).
 */
export async function readNetDevices(sysfs = '/sys'): Promise<ModuleDevice[]> {
  const names = await readdir(join(sysfs, 'class', 'net'));
  return Promise.all(
    names.sort().map(async (name) => {
      const device = join(sysfs, 'class', 'net', name, 'device');
      const bus = (await linkBase(device)) ?? '';
      const driver = await linkBase(join(device, 'driver'));
      const module = driver === null ? null : await linkBase(join(device, 'driver', 'module'));
      return { name, driver, module, bus };
    }),
  );
}
