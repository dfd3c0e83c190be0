// The disk class's device names: a whole disk's kernel name (sda, vda,
// nvme0n1, mmcblk0). The one copy of the rule, for the control socket, the
// configuration, the helper protocol and the recovery manager.
import type { NameRule } from '../../core/device-ref.js';

/** 1-31 bytes of letters, digits, '_', '-' and '.', not "." or "..": what the kernel names disks with (DISK_NAME_LEN is 32). */
export function isDiskName(name: string): boolean {
  return typeof name === 'string' && /^[A-Za-z0-9_.-]{1,31}$/.test(name) && name !== '.' && name !== '..';
}

export const DISK_NAME: NameRule = {
  valid: isDiskName,
  describe: 'a whole disk\'s kernel name (1-31 letters, digits, "_", "-" or "."; e.g. sda, vda)',
};
