// Classes for the control socket's tests: the network class's real
// declaration, and a second class, a stand-in for block, so that references,
// faults and bare names can be told apart between two classes.
import { ClassSet } from '../../../daemon/core/class-set.js';
import type { ClassDeclaration } from '../../../daemon/core/device-class.js';
import { NET_DECLARATION, NET_FAULTS } from '../../../daemon/classes/net/net-declaration.js';

export { NET_FAULTS };

/** A disk class of the tests' own: lowercase names (sda, nvme0n1, and also "eth0" or "data", as two classes may share a name). */
export const TEST_BLOCK: ClassDeclaration = {
  ...NET_DECLARATION,
  id: 'block',
  title: 'disk',
  noun: 'disk',
  names: { valid: (name: string) => /^[a-z][a-z0-9]{0,31}$/.test(name), describe: 'a disk name (lowercase letters and digits, e.g. sda)' },
  faults: ['fail-io', 'slow-io'],
  restartSteps: [],
  restartFields: [],
  failureKinds: [],
  holderKinds: [],
  settings: [],
  attrs: [],
  kernelLogRules: [],
};
export const BLOCK_FAULTS = TEST_BLOCK.faults;

/** net and block, in that order (error messages list them so). */
export const TEST_CLASSES = new ClassSet([NET_DECLARATION, TEST_BLOCK]);

/** Only the network class: what shadowd registers today. */
export const NET_ONLY = new ClassSet([NET_DECLARATION]);
