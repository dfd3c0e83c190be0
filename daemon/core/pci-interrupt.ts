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
 * The sysfs directory of the PCI function a restart unit sits on: the unit
 * itself when it is a PCI function (a NIC, a sound card, an AHCI
 * controller), else its nearest PCI parent (a virtio device's transport).
 * Null when the unit is not on PCI, or not there.
 */
export async function pciFunctionOf(unit: string, sysfs = '/sys'): Promise<string | null> {
  if (!UNIT_NAME.test(unit) || unit === '.' || unit === '..') return null;
  let buses: string[];
  try {
    buses = await readdir(join(sysfs, 'bus'));
  } catch {
    return null;
  }
  for (const bus of buses.includes('pci') ? ['pci', ...buses.filter((b) => b !== 'pci')] : buses) {
    let dir: string;
    try {
      dir = await realpath(join(sysfs, 'bus', bus, 'devices', unit));
    } catch {
      continue;
    }
    for (let d = dir; d !== dirname(d) && d.startsWith(join(sysfs, 'devices')); d = dirname(d)) {
      if (PCI_ADDRESS.test(basename(d)) && (await readText(join(d, 'irq'))) !== null) return d;
    }
    return null;
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

/** Handled interrupts on an IRQ line: /sys/kernel/irq/N/per_cpu_count, else the line's row of /proc/interrupts. */
async function irqCount(irq: number, sysfs: string, procfs: string): Promise<bigint | null> {
  const perCpu = await readText(join(sysfs, 'kernel', 'irq', String(irq), 'per_cpu_count'));
  const sum = (cells: string[]): bigint | null => (cells.length > 0 && cells.every((c) => /^\d{1,20}$/.test(c)) ? cells.reduce((a, c) => a + BigInt(c), 0n) : null);
  if (perCpu !== null) return sum(perCpu.split(','));
  const table = await readText(join(procfs, 'interrupts'));
  if (table === null) return null;
  const lines = table.split('\n');
  const cpus = (lines[0] ?? '').trim().split(/\s+/).filter((c) => /^CPU\d+$/.test(c)).length;
  const row = lines.find((l) => l.trimStart().startsWith(`${irq}:`));
  if (!row || cpus === 0) return null;
  return sum(row.trim().split(/\s+/).slice(1, 1 + cpus));
}

/**
 * The function's interrupt now, or null when there is nothing to watch: no
 * IRQ line, MSI or MSI-X enabled, or the function gone.
 */
export async function readInterruptSample(fn: string, sysfs = '/sys', procfs = '/proc'): Promise<InterruptSample | null> {
  try {
    if ((await readdir(join(fn, 'msi_irqs'))).length > 0) return null;
  } catch {
    // no msi_irqs directory: neither MSI nor MSI-X is enabled
  }
  const irqText = await readText(join(fn, 'irq'));
  const irq = Number(irqText);
  if (irqText === null || !/^\d{1,6}$/.test(irqText) || irq === 0) return null;
  const status = await readConfigWord(fn, PCI_STATUS_OFFSET);
  const count = await irqCount(irq, sysfs, procfs);
  // All ones: the function does not answer (surprise-removed, powered off, a bus error): no status to read.
  if (status === null || status === 0xffff || count === null) return null;
  const actions = ((await readText(join(sysfs, 'kernel', 'irq', String(irq), 'actions'))) ?? '').split(',').map((a) => a.trim()).filter((a) => a !== '');
  return { irq, pending: (status & PCI_STATUS_INTERRUPT) !== 0, count, actions };
}
