// What shadowd reports of one device, for every class alike: the rows of
// `shadowctl status` and the head of `shadowctl show`. Class-specific
// attributes (a NIC's ifindex) go in attrs, named by the class's declaration.

export interface DeviceStatus {
  /** Stable identity within the class: the bus address where there is one, else the name. */
  id: string;
  /** The device's class (its sysfs class name). */
  cls: string;
  name: string;
  driver: string | null;
  /** The bus device the driver is bound to: the restart unit. */
  bus: string | null;
  /** passive: the driver runs it; active: a recovery is under way; parked: recovery gave up, the helper holds it. */
  mode: 'passive' | 'active' | 'parked';
  /** ok: present and watched; absent: the device is gone (its shadow is kept). */
  health: 'ok' | 'absent';
  keys: number;
  holders: number;
  /** The class's own attributes (ClassDeclaration.attrs), e.g. { ifindex: 2 }. */
  attrs: Record<string, number | string>;
}

export interface ShowEntry {
  key: string;
  value: unknown;
  setBy: { pid: number | null; comm: string };
  /** ms since the epoch */
  at: number;
}

/** A reference a process holds on the device (a class's holder kinds: net's promiscuity, allmulti). */
export interface HolderStatus {
  kind: string;
  pid: number;
  comm: string;
  count: number;
  since: number;
}

export interface ShowResult {
  device: DeviceStatus;
  entries: ShowEntry[];
  holders: HolderStatus[];
}
