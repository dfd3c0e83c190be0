// The device classes shadowd runs: one line per class. Adding a class is a
// folder beside this file that exports a DeviceClass
// (core/device-class.ts) and a line here; nothing else in the daemon
// names a class.
import type { DeviceClass } from '../core/device-class.js';
import { blockClass } from './block/block-class.js';
import { netClass } from './net/net-class.js';
import { soundClass } from './sound/sound-class.js';

export const CLASSES: readonly DeviceClass[] = [
  netClass,
  blockClass,
  soundClass,
];
