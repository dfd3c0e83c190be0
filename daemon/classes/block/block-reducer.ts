// What each disk class tap event (bpf/block-class.bt) means for the shadow.
// The taps say which kernel object's attribute a process wrote; this names
// the object, and the shadow (disk-shadow.ts) turns it into the disks whose
// settings it re-reads, crediting the writer. Disks coming and going are
// passed on as such.
import type { TapEvent } from '../../core/tap-record.js';
import { isSettingKey } from './block-sysfs.js';

/** The kernel object an attribute write was about, as the disk shadow can match it to its disks. */
export type WriteTarget =
  /** The disk itself, its queue or its I/O scheduler: the disk's kernel name. */
  | { kind: 'disk'; name: string }
  /** A SCSI device (its timeout, queue depth) or its scsi_disk (cache type): the H:C:T:L address. */
  | { kind: 'scsi'; address: string }
  /** A SCSI host (its link power policy): hostN. */
  | { kind: 'host'; name: string };

export type BlockAction =
  /**
   * key: the disk setting the write changed (block-sysfs.ts isSettingKey),
   * or null for another attribute; value: what was written (writtenValue),
   * or null.
   */
  | { kind: 'write'; target: WriteTarget; attr: string; key: string | null; value: string | null }
  | { kind: 'added'; name: string; devt: string }
  | { kind: 'removed'; name: string; devt: string };

const SCSI_ADDRESS = /^\d+:\d+:\d+:\d+$/;
const SCSI_HOST = /^host\d+$/;

/** The object a sysfs attribute write was about, when it is one a disk's settings live on; else null. */
export function writeTarget(e: TapEvent): WriteTarget | null {
  const kobj = e.strs['kobj'] ?? '';
  const parent = e.strs['parent'] ?? '';
  const grandparent = e.strs['grandparent'] ?? '';
  if (kobj === 'queue' && parent !== '') return { kind: 'disk', name: parent };
  if (kobj === 'iosched' && parent === 'queue' && grandparent !== '') return { kind: 'disk', name: grandparent };
  if (parent === 'block' && kobj !== '') return { kind: 'disk', name: kobj };
  if (SCSI_ADDRESS.test(kobj) && (parent === 'scsi_disk' || parent.startsWith('target'))) return { kind: 'scsi', address: kobj };
  if (SCSI_HOST.test(kobj) && parent === 'scsi_host') return { kind: 'host', name: kobj };
  return null;
}

/** The disk setting key a sysfs attribute write names (queue/read_ahead_kb, device/timeout), or null. */
export function settingKeyOf(e: TapEvent, target: WriteTarget): string | null {
  const attr = e.strs['attr'] ?? '';
  const kobj = e.strs['kobj'] ?? '';
  const parent = e.strs['parent'] ?? '';
  let key: string | null = null;
  if (target.kind === 'disk' && kobj === 'queue') key = `queue/${attr}`;
  else if (target.kind === 'disk' && kobj === 'iosched') key = `queue/iosched/${attr}`;
  else if (target.kind === 'scsi') key = parent === 'scsi_disk' ? `scsi_disk/${attr}` : `device/${attr}`;
  else if (target.kind === 'host') key = `host/${attr}`;
  return key !== null && isSettingKey(key) ? key : null;
}

/** The most of a write the taps carry (block-class.bt: v0 and v1). */
const WRITTEN_MAX = 16;

/**
 * What a sysfs write wrote, as the attribute reads it back: the bytes the
 * taps carried (len, v0 and v1, little-endian) without the line's end or
 * the spaces around it, for a write of at most 16 bytes (every number, every
 * scheduler's name, "write through"); null for a longer write, one that is
 * not plain printable text, or a record without them.
 */
export function writtenValue(e: TapEvent): string | null {
  const len = e.nums['len'];
  const v0 = e.masks['v0'];
  const v1 = e.masks['v1'];
  if (len === undefined || v0 === undefined || v1 === undefined || len < 1 || len > WRITTEN_MAX) return null;
  const bytes = Buffer.alloc(WRITTEN_MAX);
  bytes.writeBigUInt64LE(v0, 0);
  bytes.writeBigUInt64LE(v1, 8);
  // What the attribute's store() took (its return), when it took less than was written.
  const taken = Math.min(len, e.nums['ret'] ?? len);
  if (taken < 1) return null;
  const value = bytes.subarray(0, taken).toString('latin1').trim();
  return /^[\x20-\x7e]+$/.test(value) ? value : null;
}

const REDUCERS = new Map<string, (e: TapEvent) => BlockAction[]>([
  [
    'sysfs_write',
    (e) => {
      // A refused write changed nothing (the sync marker is one).
      if ((e.nums['ret'] ?? -1) < 0) return [];
      const target = writeTarget(e);
      return target ? [{ kind: 'write', target, attr: e.strs['attr'] ?? '', key: settingKeyOf(e, target), value: writtenValue(e) }] : [];
    },
  ],
  [
    'disk_add',
    (e) => ((e.nums['ret'] ?? -1) === 0 && e.strs['name'] ? [{ kind: 'added', name: e.strs['name'], devt: devt(e) }] : []),
  ],
  ['disk_del', (e) => (e.strs['name'] ? [{ kind: 'removed', name: e.strs['name'], devt: devt(e) }] : [])],
]);

function devt(e: TapEvent): string {
  return `${e.nums['major'] ?? -1}:${e.nums['minor'] ?? -1}`;
}

/** Every event the taps print that the shadow takes something from. */
export const REDUCED_EVENTS: ReadonlySet<string> = new Set(REDUCERS.keys());
/** Events the taps print that the shadow leaves, with why: none today. */
export const NOT_REDUCED: ReadonlyMap<string, { kind: 'ignored' | 'elsewhere'; why: string }> = new Map();

export function reduceBlockEvent(e: TapEvent): BlockAction[] {
  return REDUCERS.get(e.call)?.(e) ?? [];
}
