// A PCI function's legacy interrupt (INTx) as sysfs shows it, for the lost
// interrupt detector (irq-loss-detector.ts): whether the function is
// asserting its interrupt now (the Interrupt Status bit of its PCI status
// register, which PCI 2.3 keeps whatever masks the line on its way to the
// CPU), how many times the kernel has handled its IRQ line, and whether a
// handler is on that line at all. Nothing here touches a driver: the
// config space is read through the PCI core, the counts from the kernel's
// IRQ descriptors. Functions with MSI or MSI-X enabled are not described:
// their interrupts are messages, with no level to see pending.
import { open, readdir, realpath } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { readText } from './sysfs-text.js';

/** The PCI status register's Interrupt Status bit (PCI_STATUS_INTERRUPT). */
const PCI_STATUS_INTERRUPT = 0x08;
/** Where the status register sits in config space (PCI_STATUS). */
const PCI_STATUS_OFFSET = 6;
const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
/** A restart unit's name as the classes give it (0000:00:03.0, virtio2): one path component. */
const UNIT_NAME = /^[A-Za-z0-9_.:-]{1,64}$/;

export interface InterruptSample {
  /** The function's IRQ line. */
  irq: number;
  /** The function asserts its interrupt now. */
  pending: boolean;
  /** Interrupts the kernel handled on that line, on every CPU (shared lines count every device's). */
  count: bigint;
  /** Handlers on the line (the names drivers gave request_irq), empty when none. */
  actions: string[];
}

/**
 * The sysfs directory of the PCI function whose interrupt is a restart
 * unit's own: the unit itself when it is a PCI function (a NIC, a sound
 * card, an AHCI controller), or a virtio device's transport (its PCI parent,
 * whose interrupt is the virtio device's). Never another ancestor: a USB
 * device's host controller interrupts for every device on its bus, and a
 * restart of one device cannot cure it. Null otherwise, or when the unit is
 * not there.
 */
export async function pciFunctionOf(unit: string, sysfs = '/sys'): Promise<string | null> {
  if (!UNIT_NAME.test(unit) || unit === '.' || unit === '..') return null;
  for (const bus of ['pci', 'virtio']) {
    let dir: string;
    try {
      dir = await realpath(join(sysfs, 'bus', bus, 'devices', unit));
    } catch {
      continue;
    }
    const fn = bus === 'pci' ? dir : dirname(dir);
    if (!fn.startsWith(join(sysfs, 'devices')) || !PCI_ADDRESS.test(basename(fn))) return null;
    return (await readText(join(fn, 'irq'))) === null ? null : fn;
  }
  return null;
}

/** Two bytes of a function's config space, little-endian; null when they cannot be read (the function is gone). */
async function readConfigWord(fn: string, offset: number): Promise<number | null> {
  let handle;
  try {
    handle = await open(join(fn, 'config'), 'r');
    const buf = Buffer.alloc(2);
    const { bytesRead } = await handle.read(buf, 0, 2, offset);
    return bytesRead === 2 ? buf.readUInt16LE(0) : null;
  } catch {
    return null;
  } finally {
    await handle?.close();
  }
}

/** Handled interrupts on an IRQ line, on every CPU: /sys/kernel/irq/N/per_cpu_count. */
async function irqCount(irq: number, sysfs: string): Promise<bigint | null> {
  const cells = (await readText(join(sysfs, 'kernel', 'irq', String(irq), 'per_cpu_count')))?.split(',');
  if (!cells || cells.length === 0 || !cells.every((c) => /^\d{1,20}$/.test(c))) return null;
  return cells.reduce((a, c) => a + BigInt(c), 0n);
}

/**
 * The function's interrupt now, or null when there is nothing to watch: no
 * IRQ line, MSI or MSI-X enabled, no handler on the line, the function not
 * powered up (a config read would resume a runtime-suspended device and its
 * bridge, four times a second, and a suspended device's status means
 * nothing), or the function gone or not answering.
 */
export async function readInterruptSample(fn: string, sysfs = '/sys'): Promise<InterruptSample | null> {
  try {
    if ((await readdir(join(fn, 'msi_irqs'))).length > 0) return null;
  } catch {
    // no msi_irqs directory: neither MSI nor MSI-X is enabled
  }
  const irqText = await readText(join(fn, 'irq'));
  const irq = Number(irqText);
  if (irqText === null || !/^\d{1,6}$/.test(irqText) || irq === 0) return null;
  const actions = ((await readText(join(sysfs, 'kernel', 'irq', String(irq), 'actions'))) ?? '').split(',').map((a) => a.trim()).filter((a) => a !== '');
  if (actions.length === 0) return null;
  const pm = await readText(join(fn, 'power', 'runtime_status'));
  if (pm !== null && pm !== 'active' && pm !== 'unsupported') return null;
  const count = await irqCount(irq, sysfs);
  if (count === null) return null;
  const status = await readConfigWord(fn, PCI_STATUS_OFFSET);
  // All ones: the function does not answer (surprise-removed, powered off, a bus error): no status to read.
  if (status === null || status === 0xffff) return null;
  return { irq, pending: (status & PCI_STATUS_INTERRUPT) !== 0, count, actions };
}
