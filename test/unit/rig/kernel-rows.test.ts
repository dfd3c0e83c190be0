import { describe, expect, it } from 'vitest';
import { kernelRows } from '../../vm/rig/kernel-rows.js';

const CASES: [string, string][] = [
  ['e1000', 'lost-irq'],
  ['pcnet', 'fail-stop'],
  ['i82559er', 'tx-hang'],
];

describe('kernelRows', () => {
  it('runs every case on 6.1 and the picked ones on 6.12 too when no kernel is named', () => {
    expect(kernelRows(CASES, ([preset]) => preset !== 'pcnet', {})).toEqual([
      ['6.1', 'e1000', 'lost-irq'],
      ['6.1', 'pcnet', 'fail-stop'],
      ['6.1', 'i82559er', 'tx-hang'],
      ['6.12', 'e1000', 'lost-irq'],
      ['6.12', 'i82559er', 'tx-hang'],
    ]);
  });

  it('runs every case on the one kernel SHADOWD_GUEST_KERNEL names, and only there', () => {
    expect(kernelRows(CASES, () => false, { SHADOWD_GUEST_KERNEL: '6.12' })).toEqual(CASES.map((c) => ['6.12', ...c]));
    expect(kernelRows(CASES, () => true, { SHADOWD_GUEST_KERNEL: '6.1' })).toEqual(CASES.map((c) => ['6.1', ...c]));
  });

  it('refuses a kernel the rig does not know', () => {
    expect(() => kernelRows(CASES, () => true, { SHADOWD_GUEST_KERNEL: '5.10' })).toThrow(/SHADOWD_GUEST_KERNEL=5.10/);
  });
});
