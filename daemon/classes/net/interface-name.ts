// The network class's device names: interface names as the kernel's
// dev_valid_name() accepts them. The one copy of the rule, for the control
// socket, the configuration, the helper protocol and the recovery manager.
import type { NameRule } from '../../core/device-ref.js';

/** 1-15 bytes (IFNAMSIZ less its NUL), not "." or "..", no '/', ':', whitespace or control characters (a NUL would end the kernel's string). */
export function isInterfaceName(name: string): boolean {
  return typeof name === 'string' && name.length >= 1 && Buffer.byteLength(name) <= 15 && !/[/:\s]/.test(name) && ![...name].some((c) => c.charCodeAt(0) < 0x20 || c.charCodeAt(0) === 0x7f) && name !== '.' && name !== '..';
}

export const INTERFACE_NAME: NameRule = {
  valid: isInterfaceName,
  describe: 'an interface name (1-15 bytes, no "/", ":" or spaces)',
};
