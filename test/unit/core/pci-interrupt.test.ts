// The PCI interrupt reads on a sysfs tree made in a temporary directory: a
// NIC on PCI, a virtio disk under its PCI transport, a function with MSI,
// and the kernel's IRQ directory. The guest test reads the real one.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { pciFunctionOf, readInterruptSample } from '../../../daemon/core/pci-interrupt.js';

let root: string;

/** A PCI function with config space whose status word is `status`, on IRQ `irq`. */
function pciFunction(addr: string, status: number, irq: number, msi = false): string {
  const dir = join(root, 'devices', 'pci0000:00', addr);
  mkdirSync(dir, { recursive: true });
  const config = Buffer.alloc(64);
  config.writeUInt16LE(0x8086, 0);
  config.writeUInt16LE(status, 6);
  writeFileSync(join(dir, 'config'), config);
  writeFileSync(join(dir, 'irq'), `${irq}\n`);
  if (msi) {
    mkdirSync(join(dir, 'msi_irqs'));
    writeFileSync(join(dir, 'msi_irqs', '24'), 'msix\n');
  }
  mkdirSync(join(root, 'bus', 'pci', 'devices'), { recursive: true });
  symlinkSync(dir, join(root, 'bus', 'pci', 'devices', addr));
  return dir;
}

function irqLine(irq: number, perCpu: string, actions: string): void {
  const dir = join(root, 'kernel', 'irq', String(irq));
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'per_cpu_count'), `${perCpu}\n`);
  writeFileSync(join(dir, 'actions'), `${actions}\n`);
}

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'pci-irq-'));
});
afterEach(() => rmSync(root, { recursive: true, force: true }));

describe('PCI interrupt reads', () => {
  it('finds the PCI function of a unit on PCI and of a virtio device under its transport; none for a USB device, a unit elsewhere or a hostile name', async () => {
    const nic = pciFunction('0000:00:03.0', 0, 11);
    const transport = pciFunction('0000:00:05.0', 0, 10);
    const virtio = join(transport, 'virtio2');
    mkdirSync(virtio);
    mkdirSync(join(root, 'bus', 'virtio', 'devices'), { recursive: true });
    symlinkSync(virtio, join(root, 'bus', 'virtio', 'devices', 'virtio2'));
    const platform = join(root, 'devices', 'platform', 'serial8250');
    mkdirSync(platform, { recursive: true });
    mkdirSync(join(root, 'bus', 'platform', 'devices'), { recursive: true });
    symlinkSync(platform, join(root, 'bus', 'platform', 'devices', 'serial8250'));
    expect(await pciFunctionOf('0000:00:03.0', root)).toBe(nic);
    expect(await pciFunctionOf('virtio2', root)).toBe(transport);
    expect(await pciFunctionOf('serial8250', root)).toBeNull();
    // A USB NIC under its host controller: the controller's interrupt is not the device's own.
    const ehci = pciFunction('0000:00:1d.0', 0, 16);
    const usb = join(ehci, 'usb1', '1-1', '1-1:1.0');
    mkdirSync(usb, { recursive: true });
    mkdirSync(join(root, 'bus', 'usb', 'devices'), { recursive: true });
    symlinkSync(usb, join(root, 'bus', 'usb', 'devices', '1-1:1.0'));
    expect(await pciFunctionOf('1-1:1.0', root)).toBeNull();
    expect(await pciFunctionOf('nothere', root)).toBeNull();
    expect(await pciFunctionOf('../../etc', root)).toBeNull();
    expect(await pciFunctionOf('..', root)).toBeNull();
  });

  it('reads the Interrupt Status bit, the line handled count on every CPU and its handlers', async () => {
    const fn = pciFunction('0000:00:03.0', 0x0008 | 0x0010, 11);
    irqLine(11, '3,18446744073709551615', 'eth0,snd_ens1370');
    expect(await readInterruptSample(fn, root)).toEqual({ irq: 11, pending: true, count: 18446744073709551618n, actions: ['eth0', 'snd_ens1370'] });
    const quiet = pciFunction('0000:00:04.0', 0x0010, 11);
    expect((await readInterruptSample(quiet, root))?.pending).toBe(false);
  });

  it('describes nothing for MSI, no IRQ, no handler on the line, a runtime-suspended function or one gone', async () => {
    irqLine(11, '5,6', 'eth0');
    irqLine(12, '5,6', '');
    const active = pciFunction('0000:00:03.0', 0x0008, 11);
    mkdirSync(join(active, 'power'));
    writeFileSync(join(active, 'power', 'runtime_status'), 'active\n');
    expect((await readInterruptSample(active, root))?.count).toBe(11n);
    expect(await readInterruptSample(pciFunction('0000:00:04.0', 0x0008, 24, true), root)).toBeNull();
    expect(await readInterruptSample(pciFunction('0000:00:06.0', 0x0008, 0), root)).toBeNull();
    expect(await readInterruptSample(pciFunction('0000:00:08.0', 0x0008, 12), root)).toBeNull();
    const asleep = pciFunction('0000:00:09.0', 0x0008, 11);
    mkdirSync(join(asleep, 'power'));
    writeFileSync(join(asleep, 'power', 'runtime_status'), 'suspended\n');
    expect(await readInterruptSample(asleep, root)).toBeNull();
    expect(await readInterruptSample(join(root, 'devices', 'pci0000:00', '0000:00:07.0'), root)).toBeNull();
  });

  it('describes nothing for a function that does not answer (config reads all ones)', async () => {
    const fn = pciFunction('0000:00:03.0', 0xffff, 11);
    irqLine(11, '3,4', 'eth0');
    expect(await readInterruptSample(fn, root)).toBeNull();
  });

  it('describes nothing when the count cannot be read as numbers', async () => {
    const fn = pciFunction('0000:00:03.0', 0x0008, 11);
    irqLine(11, '3,x', 'eth0');
    expect(await readInterruptSample(fn, root)).toBeNull();
  });
});
