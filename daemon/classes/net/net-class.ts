// The network class: one shadow for every NIC driver (net-declaration.ts says
// what it is; this starts it). Built from the network shadow
// (netdev-shadow.ts), its replay (netdev-replay.ts), its detectors
// (stall-detector.ts, tx-timeout.ts) and the sysfs reading that blames a
// kernel report on its devices.
import type { ClassContext, ClassRuntime, DeviceClass } from '../../core/device-class.js';
import { NET_DECLARATION } from './net-declaration.js';

export const netClass: DeviceClass = {
  ...NET_DECLARATION,
  open(_ctx: ClassContext): ClassRuntime {
    throw new Error('not yet');
  },
};
