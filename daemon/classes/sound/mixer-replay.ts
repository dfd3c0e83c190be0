// Puts a card's mixer back from the shadow: after the helper restarted the
// card's driver (which replays the mixer itself; this checks it and sets
// what is still wrong), or for `shadowctl replay sound:cardN` after an
// administrator reloaded the driver by hand. Elements are matched by their
// id (iface, name, index, device, subdevice), not their numid, and set by the
// numid they have now. After a restart, only elements nobody changed since
// the restart began: a change made during the recovery stays. Pure planning;
// sound-class.ts runs the steps.
import type { CountedEntry } from '../../core/shadow-replay.js';
import type { JsonValue } from '../../core/json-value.js';
import { isReplayable, type MixerControl } from './amixer-contents.js';
import { MIXER_PREFIX } from './sound-shadow.js';

export interface MixerStep {
  /** The shadow's key: mixer/MIXER:'Master Playback Volume'. */
  key: string;
  numid: number;
  values: string[];
}

export interface MixerEntry extends CountedEntry {
  readonly value: JsonValue;
}

function valuesOf(v: JsonValue): string[] | null {
  return Array.isArray(v) && v.length > 0 && v.every((x) => typeof x === 'string') ? v : null;
}

/** Every mixer element whose shadow value differs from the card's now and that the daemon can set (writable, not volatile). */
export function planMixer(entries: readonly MixerEntry[], current: readonly MixerControl[]): MixerStep[] {
  const live = new Map(current.map((c) => [`${MIXER_PREFIX}${c.key}`, c]));
  const steps: MixerStep[] = [];
  for (const e of entries) {
    if (!e.key.startsWith(MIXER_PREFIX)) continue;
    const want = valuesOf(e.value);
    const now = live.get(e.key);
    // An element the card no longer has (the driver's new instance did not make it), or one nobody can set.
    if (!want || !now || !isReplayable(now)) continue;
    if (want.length !== now.values.length) continue;
    if (want.some((v, i) => v !== now.values[i])) steps.push({ key: e.key, numid: now.numid, values: want });
  }
  return steps;
}

/**
 * planMixer for what a restart lost: elements changed in the shadow since
 * `mark`, and those written while the card was held that the shadow has not
 * read yet (`unread`), are left as the card has them.
 */
export function planRestartMixer(
  entries: readonly MixerEntry[],
  current: readonly MixerControl[],
  mark: number,
  unread: ReadonlySet<string> = new Set(),
): { steps: MixerStep[]; left: string[] } {
  const changed = new Set([...entries.filter((e) => e.seq > mark).map((e) => e.key), ...unread]);
  const all = planMixer(entries, current);
  return { steps: all.filter((s) => !changed.has(s.key)), left: all.filter((s) => changed.has(s.key)).map((s) => s.key) };
}
