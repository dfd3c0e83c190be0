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

/**
 * The name as an argument to the programs the class runs (ip, ethtool, tc,
 * bridge), or null with why it cannot be one. The kernel accepts a name that
 * starts with '-', but `ethtool NAME` would read it as an option (and ethtool
 * has no "--" to end its options): the class does not run a program with such
 * a name, or with one the kernel would not have given.
 */
export function interfaceArgProblem(name: string): string | null {
  if (!isInterfaceName(name)) return `${JSON.stringify(name)} is not an interface name`;
  if (name.startsWith('-')) return `interface name ${JSON.stringify(name)} starts with '-': ethtool would read it as an option`;
  return null;
}
