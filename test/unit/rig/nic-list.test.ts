import { describe, expect, it } from 'vitest';
import { nicList } from '../../vm/classes/net/nic-list.js';

describe('nicList (SHADOWD_NET_NICS)', () => {
  const defaults: [string, string, string][] = [['e1000', 'e1000', 'lost-irq']];
  it('gives the defaults when the variable is unset or blank', () => {
    expect(nicList(defaults, 3, [0], undefined)).toBe(defaults);
    expect(nicList(defaults, 3, [0], ' ')).toBe(defaults);
  });
  it('reads entries of PRESET:DRIVER:... joined by commas', () => {
    expect(nicList(defaults, 3, [0], 'ne2k-pci:ne2k-pci:tx-hang, rtl8139:8139cp:lost-irq')).toEqual([
      ['ne2k-pci', 'ne2k-pci', 'tx-hang'],
      ['rtl8139', '8139cp', 'lost-irq'],
    ]);
    expect(nicList(defaults, 4, [0, 2], 'rtl8139:8139cp:e1000:e1000')).toEqual([['rtl8139', '8139cp', 'e1000', 'e1000']]);
  });
  it('refuses an unknown preset, a wrong field count and an empty field', () => {
    expect(() => nicList(defaults, 3, [0], 'ne2k:ne2k-pci:tx-hang')).toThrow(/names no NIC preset 'ne2k'/);
    expect(() => nicList(defaults, 4, [0, 2], 'rtl8139:8139cp:bogus:x')).toThrow(/no NIC preset 'bogus'/);
    expect(() => nicList(defaults, 3, [0], 'e1000:e1000')).toThrow(/must have 3/);
    expect(() => nicList(defaults, 3, [0], 'e1000::lost-irq')).toThrow(/must have 3/);
  });
});
