// The declarations of the classes of registry.ts, in its order, without their
// runtimes: what the daemon needs before its taps start (their programs,
// modules and markers; the configuration's keys). main.ts starts bpftrace
// from these and loads the runtimes (registry.ts: every shadow, reducer and
// replay, about a second of module loading under emulation) while bpftrace
// compiles. test/unit/classes/declarations.test.ts holds the two lists to
// each other.
import type { ClassDeclaration } from '../core/device-class.js';
import { BLOCK_DECLARATION } from './block/block-declaration.js';
import { NET_DECLARATION } from './net/net-declaration.js';
import { SOUND_DECLARATION } from './sound/sound-declaration.js';

export const DECLARATIONS: readonly ClassDeclaration[] = [
  NET_DECLARATION,
  BLOCK_DECLARATION,
  SOUND_DECLARATION,
];
