import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { cardInterrupts, parseInterrupts, pciLines, readCardInterrupts } from '../../../../daemon/classes/sound/card-interrupts.js';

// As a 2-CPU 6.1 guest prints it: legacy lines, a shared INTx line, MSI, and the named rows.
const PROC = `           CPU0       CPU1       
  0:         33          0   IO-APIC   2-edge      timer
 10:        512         17   IO-APIC  10-fasteoi   snd_ens1370
 11:       1200        300   IO-APIC  11-fasteoi   snd_intel8x0, virtio1
 24:          5       4000   PCI-MSI 65536-edge      snd_hda_intel:card2
 25:          0          0   PCI-MSI 65537-edge
NMI:          0          0   Non-maskable interrupts
LOC:      12345      23456   Local timer interrupts
ERR:          0
`;

describe('parseInterrupts', () => {
  it('sums the counts over CPUs and lists the handlers of each numbered line', () => {
    const rows = parseInterrupts(PROC);
    expect(rows.get(10)).toEqual({ irq: 10, total: 529n, actions: ['snd_ens1370'] });
    expect(rows.get(11)).toEqual({ irq: 11, total: 1500n, actions: ['snd_intel8x0', 'virtio1'] });
    expect(rows.get(24)).toEqual({ irq: 24, total: 4005n, actions: ['snd_hda_intel:card2'] });
    expect(rows.get(25)?.actions).toEqual([]);
    expect([...rows.keys()]).toEqual([0, 10, 11, 24, 25]);
  });

  it('refuses a table without a CPU header or with a short numbered row', () => {
    expect(() => parseInterrupts('garbage\n 10: 1 2 x\n')).toThrow(/no CPU header/);
    expect(() => parseInterrupts('  CPU0 CPU1\n 10: 5 IO-APIC 10-fasteoi x\n')).toThrow(/line 10 has no 2 counts/);
  });
});

describe('cardInterrupts', () => {
  const rows = parseInterrupts(PROC);
  it('counts a line of its own, and says when another device shares it', () => {
    expect(cardInterrupts(rows, [10])).toEqual({ count: 529n, shared: false, lines: [10] });
    expect(cardInterrupts(rows, [11])).toEqual({ count: 1500n, shared: true, lines: [11] });
    expect(cardInterrupts(rows, [24, 25])).toEqual({ count: 4005n, shared: false, lines: [24, 25] });
    expect(cardInterrupts(rows, [99])).toBeNull();
  });
});

describe('pciLines and readCardInterrupts', () => {
  it('takes the MSI vectors when there are any, else the INTx line', async () => {
    const root = mkdtempSync(join(tmpdir(), 'card-irq-'));
    const intx = join(root, 'intx');
    mkdirSync(intx);
    writeFileSync(join(intx, 'irq'), '10\n');
    const msi = join(root, 'msi');
    mkdirSync(join(msi, 'msi_irqs'), { recursive: true });
    writeFileSync(join(msi, 'irq'), '24\n');
    writeFileSync(join(msi, 'msi_irqs', '25'), 'msi\n');
    writeFileSync(join(msi, 'msi_irqs', '24'), 'msi\n');
    const none = join(root, 'none');
    mkdirSync(none);
    writeFileSync(join(none, 'irq'), '0\n');
    expect(await pciLines(intx)).toEqual([10]);
    expect(await pciLines(msi)).toEqual([24, 25]);
    expect(await pciLines(none)).toEqual([]);
    expect(await pciLines(join(root, 'gone'))).toEqual([]);
    const proc = join(root, 'interrupts');
    writeFileSync(proc, PROC);
    expect(await readCardInterrupts(intx, proc)).toEqual({ count: 529n, shared: false, lines: [10] });
    expect(await readCardInterrupts(none, proc)).toBeNull();
  });
});
