// What the disk (block) class is, without starting anything: names, taps,
// faults, restart steps, failure kinds and configuration keys that the
// configuration parser, the control and helper protocols and the CLI read
// (core/device-class.ts, ClassDeclaration). Its runtime is block-class.ts.
//
// How a disk survives its driver: the daemon keeps the disk's filesystem on a
// single-path device-mapper multipath map with queue_if_no_path, which holds
// I/O while the controller's driver is restarted (../../../docs/disks.md).
import { fileURLToPath } from 'node:url';
import type { ClassDeclaration, SyncMarker } from '../../core/device-class.js';
import { booleanSetting, integerSetting } from '../../core/setting-values.js';
import type { TapEvent } from '../../core/tap-record.js';
import { DISK_NAME } from './disk-name.js';
import { EH_GAVE_UP, EH_GAVE_UP_LOG } from './eh-gave-up-log.js';

/**
 * The helper's disk faults (kmod/PROTOCOL.md `inject`): lost-irq silences
 * the controller's interrupts, fail-stop fails every command in the driver,
 * disk-error makes the disk itself reject I/O.
 */
export const BLOCK_FAULTS = ['lost-irq', 'fail-stop', 'disk-error'] as const;

/**
 * The helper's steps in a disk controller restart: the fast teardown of a
 * possibly hung driver (every SCSI disk of the unit offline, its cache write
 * through in the kernel only, no START STOP: the unbind does not wait on the
 * hung driver), then, in a reload, the module's unload and load, then the
 * generic open (always skipped: a disk's users open it).
 */
export const BLOCK_RESTART_STEPS = ['teardown', 'reload', 'open'] as const;

/**
 * Failures only the disk class reports: I/O in flight with no completion
 * past the threshold (io-stall), the protecting map failing the disk's
 * path because the driver failed an I/O (path-failed), and the kernel's
 * libata or SCSI error handling giving up on the disk (eh-gave-up, from the
 * kernel log: eh-gave-up-log.ts).
 */
export const BLOCK_FAILURE_KINDS = ['io-stall', 'path-failed', EH_GAVE_UP] as const;

/** Every ev= that bpf/block-class.bt prints (test/unit/classes/tap-contract.test.ts holds the two to each other). */
export const BLOCK_TAP_EVENTS = ['sysfs_write', 'disk_add', 'disk_del'] as const;

/**
 * A write the block module's parameter refuses (one NUL byte is no number):
 * the taps print it with ret=-22 (bpf/block-class.bt), and nothing changes.
 */
export const SYNC_MARKER_FILE = '/sys/module/block/parameters/events_dfl_poll_msecs';
export const BLOCK_SYNC_MARKER: SyncMarker = {
  argv: ['dd', 'if=/dev/zero', `of=${SYNC_MARKER_FILE}`, 'bs=1', 'count=1', 'conv=notrunc', 'status=none'],
  isMarker: (e: TapEvent) => e.call === 'sysfs_write' && e.strs['attr'] === 'events_dfl_poll_msecs' && e.strs['kobj'] === 'block' && e.strs['parent'] === 'module',
};

export const CREATE_MAP_KEY = 'CreateMap';
export const IO_STALL_KEY = 'StallThresholdMs';
export const LOST_DISK_HOLD_KEY = 'LostDiskHoldMs';

export const BLOCK_DECLARATION: ClassDeclaration = {
  id: 'block',
  title: 'disk',
  noun: 'disk',
  names: DISK_NAME,
  // dist/daemon/classes/block/ → the checkout's bpf/.
  tapProgram: fileURLToPath(new URL('../../../../bpf/block-class.bt', import.meta.url)),
  tapEvents: BLOCK_TAP_EVENTS,
  syncMarker: BLOCK_SYNC_MARKER,
  faults: BLOCK_FAULTS,
  restartSteps: BLOCK_RESTART_STEPS,
  restartFields: ['disks'],
  restartNames: ['unit'],
  failureKinds: BLOCK_FAILURE_KINDS,
  holderKinds: [],
  settings: [
    {
      key: CREATE_MAP_KEY,
      parse: booleanSetting,
      default: false,
      doc: 'shadowd puts the disk under a map of its own (/dev/mapper/shadow-SERIAL) when nothing uses it; a filesystem made on that map survives a restart of the disk\'s driver',
    },
    {
      key: IO_STALL_KEY,
      parse: integerSetting(500, 600_000),
      default: 5000,
      doc: 'I/O in flight on the disk with no completion for this long counts as a failure',
    },
    {
      key: LOST_DISK_HOLD_KEY,
      parse: integerSetting(0, 86_400_000),
      default: 60_000,
      doc: 'when a disk does not come back after its driver\'s restart, its map holds its I/O at most this long from the restart\'s start (never while shadowd still recovers it), then fails it: applications see I/O errors, as without shadowd; 0 holds it until someone acts',
    },
  ],
  attrs: ['map', 'protection'],
  kernelLogRules: [EH_GAVE_UP_LOG],
  parkedAs: 'released, with no driver bound to its controller',
};
