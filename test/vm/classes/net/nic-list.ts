// The NICs a network guest test runs on: its own default list (what CI runs,
// sized to CI's time budget), or SHADOWD_NET_NICS for another set, e.g.
//   SHADOWD_NET_NICS=ne2k-pci:ne2k-pci:tx-hang,rtl8139:8139cp:lost-irq
// Each entry is the test's fields joined by ':' (the QEMU preset first, then
// the driver, then what the test needs: a fault, or a peer preset and
// driver), entries joined by ','. Every preset must be one of the rig's.
import { NIC_PRESETS, type NicPreset } from '../../rig/devices.js';

export const NET_NICS_ENV = 'SHADOWD_NET_NICS';

function preset(word: string, entry: string): NicPreset {
  if (!(word in NIC_PRESETS)) throw new Error(`${NET_NICS_ENV}: '${entry}' names no NIC preset '${word}' (known: ${Object.keys(NIC_PRESETS).join(', ')})`);
  return word as NicPreset;
}

/** `fields` entries of the form PRESET:DRIVER:..., the presets at `presetAt` checked; the default when the variable is unset or empty. */
export function nicList<T extends string[]>(defaults: T[], fields: number, presetAt: readonly number[], env = process.env[NET_NICS_ENV]): T[] {
  if (!env?.trim()) return defaults;
  return env.split(',').map((entry) => {
    const words = entry.trim().split(':');
    if (words.length !== fields || words.some((w) => !w)) throw new Error(`${NET_NICS_ENV}: '${entry}' must have ${fields} ':'-separated fields`);
    for (const i of presetAt) preset(words[i]!, entry);
    return words as T;
  });
}
