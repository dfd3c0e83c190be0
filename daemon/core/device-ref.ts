// Device references: `CLASS:NAME`, e.g. `net:eth0`, `sound:card0`,
// `block:sda`. CLASS is the kernel's sysfs class name of a registered device
// class; NAME follows that class's own naming rule. The one spelling shared
// by the control socket, the helper protocol, the recovery manager, the
// history and the journal, so that two classes' devices of the same name
// (a NIC and a disk both called "data", say) are never confused.

/** A class's rule for its device names: checked before a name goes anywhere near a shell-less argv, the helper or SQLite. */
export interface NameRule {
  valid(name: string): boolean;
  /** What a valid name looks like, for error messages: e.g. 'an interface name (1-15 bytes, no "/", ":" or spaces)'. */
  describe: string;
}

export interface DeviceRef {
  cls: string;
  name: string;
}

/** Class ids: lowercase sysfs class names. */
export const CLASS_ID = /^[a-z][a-z0-9_]{0,15}$/;

/** `net:eth0`. */
export function formatRef(ref: DeviceRef): string {
  return `${ref.cls}:${ref.name}`;
}

export class DeviceRefError extends Error {}

/**
 * Reads `CLASS:NAME` against the classes known (id → name rule). Throws a
 * DeviceRefError that says what is wrong: no class, an unknown class, or a
 * name the class does not allow. The first ':' separates class and name.
 */
export function parseRef(text: string, classes: ReadonlyMap<string, NameRule>): DeviceRef {
  if (typeof text !== 'string') throw new DeviceRefError('a device reference must be a string');
  const colon = text.indexOf(':');
  const known = [...classes.keys()].join(', ');
  const example = `${[...classes.keys()][0] ?? 'CLASS'}:${text.slice(0, 32) || 'NAME'}`;
  if (colon < 0) throw new DeviceRefError(`${JSON.stringify(text.slice(0, 64))} names no class: write CLASS:NAME (classes: ${known}), e.g. ${example}`);
  if (colon === 0) throw new DeviceRefError(`${JSON.stringify(text.slice(0, 64))} names no class before its ":" (classes: ${known})`);
  const cls = text.slice(0, colon);
  const name = text.slice(colon + 1);
  const rule = CLASS_ID.test(cls) ? classes.get(cls) : undefined;
  if (!rule) throw new DeviceRefError(`unknown device class ${JSON.stringify(cls.slice(0, 32))} (classes: ${known})`);
  if (!rule.valid(name)) throw new DeviceRefError(`${JSON.stringify(name.slice(0, 64))} is not a ${cls} device name: it must be ${rule.describe}`);
  return { cls, name };
}
