// Puts a disk's settings back after its driver was restarted (or, for
// `shadowctl replay block:DISK`, after an administrator did it by hand): the
// keys whose value in the shadow differs from the disk's now, in the order
// the kernel needs them (the I/O scheduler before its tunables, which exist
// only once it is chosen). After a restart, only keys nobody changed since
// the restart began: a change made during the recovery stays.
import type { CountedEntry } from '../../core/shadow-replay.js';
import type { JsonValue } from '../../core/json-value.js';
import { replayOrder } from './block-sysfs.js';

export interface SettingStep {
  key: string;
  value: string;
}

export interface SettingEntry extends CountedEntry {
  readonly value: JsonValue;
}

/**
 * Keys that describe the disk rather than configure it, or that the helper's
 * fast teardown changed on the failed instance on purpose (the cache type
 * turned to write through in the kernel only): never written back.
 */
const NOT_REPLAYED = new Set(['scsi_disk/cache_type']);

/** In the order the kernel needs them (block-sysfs.ts replayOrder: queue depth, scheduler, its tunables, nr_requests, the rest). */
function inKernelOrder(steps: SettingStep[]): SettingStep[] {
  return replayOrder(Object.fromEntries(steps.map((s) => [s.key, s.value]))).map(([key, value]) => ({ key, value }));
}

/**
 * Every key whose shadow value differs from the disk's. An iosched tunable is
 * compared only when the disk runs the shadow's scheduler or will once the
 * plan sets it; tunables of another scheduler do not exist on the disk.
 */
export function planSettings(entries: readonly SettingEntry[], current: Readonly<Record<string, string>>): SettingStep[] {
  const steps: SettingStep[] = [];
  const wanted = entries.filter((e): e is SettingEntry & { value: string } => !NOT_REPLAYED.has(e.key) && typeof e.value === 'string');
  // A scheduler switch resets nr_requests and brings fresh tunables: after one, they are written whatever they read now.
  const switching = wanted.some((e) => e.key === 'queue/scheduler' && current[e.key] !== undefined && current[e.key] !== e.value);
  for (const e of wanted) {
    const now = current[e.key];
    const reset = switching && (e.key === 'queue/nr_requests' || e.key.startsWith('queue/iosched/'));
    if (now === undefined && !e.key.startsWith('queue/iosched/')) continue; // the disk has no such attribute
    if (now !== e.value || reset) steps.push({ key: e.key, value: e.value });
  }
  return inKernelOrder(steps);
}

/**
 * planSettings for what a restart lost: keys changed in the shadow since
 * `mark` are left as the disk has them, except those `carriedOver` (read
 * from the failed disk during the restart, DiskShadow.carriedOver): those
 * were set on the disk before it went, and go to the one that came back.
 */
export function planRestartSettings(
  entries: readonly SettingEntry[],
  current: Readonly<Record<string, string>>,
  mark: number,
  carriedOver: (seq: number) => boolean = () => false,
): { steps: SettingStep[]; left: string[] } {
  const changed = new Set(entries.filter((e) => e.seq > mark && !carriedOver(e.seq)).map((e) => e.key));
  const all = planSettings(entries, current);
  return { steps: all.filter((s) => !changed.has(s.key)), left: all.filter((s) => changed.has(s.key)).map((s) => s.key) };
}
