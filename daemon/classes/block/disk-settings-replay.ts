// Puts a disk's settings back after its driver was restarted (or, for
// `shadowctl replay block:DISK`, after an administrator did it by hand): the
// keys whose value in the shadow differs from the disk's now, in the order
// the kernel needs them (the I/O scheduler before its tunables, which exist
// only once it is chosen). After a restart, only keys nobody changed since
// the restart began: a change made during the recovery stays.
import type { CountedEntry } from '../../core/shadow-replay.js';
import type { JsonValue } from '../../core/json-value.js';

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

/** The scheduler first, its tunables next, the rest after, each group by key. */
function rank(key: string): number {
  if (key === 'queue/scheduler') return 0;
  if (key.startsWith('queue/iosched/')) return 1;
  return 2;
}

function byKernelOrder(a: SettingStep, b: SettingStep): number {
  return rank(a.key) - rank(b.key) || a.key.localeCompare(b.key);
}

/**
 * Every key whose shadow value differs from the disk's. An iosched tunable is
 * compared only when the disk runs the shadow's scheduler or will once the
 * plan sets it; tunables of another scheduler do not exist on the disk.
 */
export function planSettings(entries: readonly SettingEntry[], current: Readonly<Record<string, string>>): SettingStep[] {
  const steps: SettingStep[] = [];
  for (const e of entries) {
    if (NOT_REPLAYED.has(e.key) || typeof e.value !== 'string') continue;
    const now = current[e.key];
    if (now === undefined && !e.key.startsWith('queue/iosched/')) continue; // the disk has no such attribute
    if (now !== e.value) steps.push({ key: e.key, value: e.value });
  }
  return steps.sort(byKernelOrder);
}

/** planSettings for what a restart lost: keys changed in the shadow since `mark` are left as the disk has them. */
export function planRestartSettings(entries: readonly SettingEntry[], current: Readonly<Record<string, string>>, mark: number): { steps: SettingStep[]; left: string[] } {
  const changed = new Set(entries.filter((e) => e.seq > mark).map((e) => e.key));
  const all = planSettings(entries, current);
  return { steps: all.filter((s) => !changed.has(s.key)), left: all.filter((s) => changed.has(s.key)).map((s) => s.key) };
}
