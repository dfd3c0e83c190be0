// The network devices with their bus device, driver and module, read from a
// sysfs-shaped tree as the kernel lays it out (net-sysfs.ts): what the kernel
// log detector blames a module's oops, BUG or WARN on.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { readNetDevices } from '../../../../daemon/classes/net/net-sysfs.js';

describe('reading the network devices from sysfs', () => {
  let root: string;
  beforeEach(() => (root = mkdtempSync(join(tmpdir(), 'sysfs-'))));
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('takes the driver and module names from the symlinks, as sysfs lays them out', () => {
    // /sys/class/net/eth0 -> ../../devices/pci0000:00/0000:00:04.0/net/eth0, and so on.
    const mk = (p: string): void => void mkdirSync(join(root, p), { recursive: true });
    const ln = (target: string, p: string): void => symlinkSync(target, join(root, p));
    mk('module/e1000');
    mk('module/snd_foo');
    mk('bus/pci/drivers/e1000');
    ln('../../../../module/e1000', 'bus/pci/drivers/e1000/module');
    mk('bus/pci/drivers/foo-net'); // a driver whose name is not its module's
    ln('../../../../module/snd_foo', 'bus/pci/drivers/foo-net/module');
    mk('bus/pci/drivers/builtin'); // a built-in driver without a module link
    for (const [bdf, drv] of [['0000:00:04.0', 'e1000'], ['0000:00:05.0', 'foo-net'], ['0000:00:06.0', 'builtin']] as const) {
      mk(`devices/pci0000:00/${bdf}/net`);
      ln(`../../../bus/pci/drivers/${drv}`, `devices/pci0000:00/${bdf}/driver`);
    }
    mk('devices/pci0000:00/0000:00:07.0/net'); // bound to no driver
    mk('devices/virtual/net/lo');
    mk('class/net');
    const dev = (name: string, bdf: string): void => {
      mk(`devices/pci0000:00/${bdf}/net/${name}`);
      ln(`../../../${bdf}`, `devices/pci0000:00/${bdf}/net/${name}/device`);
      ln(`../../devices/pci0000:00/${bdf}/net/${name}`, `class/net/${name}`);
    };
    dev('eth0', '0000:00:04.0');
    dev('eth1', '0000:00:05.0');
    dev('eth2', '0000:00:06.0');
    dev('eth3', '0000:00:07.0');
    ln('../../devices/virtual/net/lo', 'class/net/lo');
    return readNetDevices(root).then((devices) =>
      expect(devices).toEqual([
        { name: 'eth0', driver: 'e1000', module: 'e1000', bus: '0000:00:04.0' },
        { name: 'eth1', driver: 'foo-net', module: 'snd_foo', bus: '0000:00:05.0' },
        { name: 'eth2', driver: 'builtin', module: null, bus: '0000:00:06.0' },
        { name: 'eth3', driver: null, module: null, bus: '0000:00:07.0' },
        // No bus device: the kernel's reports name none either.
        { name: 'lo', driver: null, module: null, bus: '' },
      ]),
    );
  });
});
