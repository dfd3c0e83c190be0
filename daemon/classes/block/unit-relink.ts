// After a disk controller's driver was restarted: finds each disk the
// controller served again (it may come back under another name: sda → sdb),
// checks that it is the same disk (identity and size) before anything is
// written to it, and points its protecting map at it, which releases the I/O
// the map held. A disk that does not come back, or comes back different, is
// never written to: its map keeps holding its I/O (for how long is the
// class's policy, lost-disk-hold.ts), and the report says why.
import type { DiskFacts } from './disk-shadow.js';
import { diskId } from './disk-shadow.js';

export interface RelinkDeps {
  /** The whole disks under a restart unit now, by kernel name. */
  disksUnder(unit: string): Promise<string[]>;
  readDisk(name: string): Promise<DiskFacts>;
  /** Points a map at a disk: a table reload, then a resume without flush. Returns the commands run. */
  switchMap(map: string, sectors: number, devt: string): Promise<string[][]>;
  /**
   * Called for a disk found again and checked, before its map is pointed at
   * it: the settings replay. A queue limit (max_sectors_kb) lowered after the
   * reload would leave the map sending requests the disk refuses, which the
   * map requeues for ever; the reload reads the disk's limits as they are
   * then. Its steps go in the result; it must not throw.
   */
  beforeSwitch?(before: DiskFacts, after: DiskFacts): Promise<RelinkResult['steps']>;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
}

export interface RelinkResult {
  /** The disk as it was before the restart. */
  before: DiskFacts;
  /** The same disk found again, or null. */
  after: DiskFacts | null;
  /** What was done, for the recovery's steps: find, identity, map. */
  steps: { key: string; argv: string[]; ok: boolean; error?: string }[];
}

/** Why `after` is not `before`'s disk, or null when it is: identity (WWN, serial) and size must match. */
export function notSameDisk(before: DiskFacts, after: DiskFacts): string | null {
  if (after.identityUnread) return 'its identity cannot be read (its device does not answer)';
  if (diskId(before) !== diskId(after)) return `identity ${diskId(after)} is not ${diskId(before)}`;
  if (before.sectors !== after.sectors) return `size ${after.sectors} sectors is not ${before.sectors}`;
  return null;
}

/**
 * Waits up to `timeoutMs` for each disk of `before` to appear under its unit
 * (a SCSI host scans its disks asynchronously after the probe), then checks
 * and relinks each. Disks are matched by identity, never by name.
 */
export async function relinkUnit(before: readonly DiskFacts[], deps: RelinkDeps, timeoutMs: number): Promise<RelinkResult[]> {
  const sleep = deps.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = deps.now ?? Date.now;
  const deadline = now() + timeoutMs;
  const found = new Map<string, DiskFacts>();
  const wanted = new Map(before.map((d) => [diskId(d), d]));
  const units = [...new Set(before.map((d) => d.unit).filter((u): u is string => u !== null))];
  for (;;) {
    for (const unit of units) {
      for (const name of await deps.disksUnder(unit).catch(() => [] as string[])) {
        if ([...found.values()].some((f) => f.name === name)) continue;
        const facts = await deps.readDisk(name).catch(() => null);
        // One whose identity cannot be read is nobody's: never matched by its name.
        if (facts && !facts.identityUnread && wanted.has(diskId(facts))) found.set(diskId(facts), facts);
      }
    }
    if (found.size === wanted.size || now() >= deadline) break;
    await sleep(200);
  }
  const results: RelinkResult[] = [];
  for (const b of before) {
    const after = found.get(diskId(b)) ?? null;
    const steps: RelinkResult['steps'] = [];
    const result: RelinkResult = { before: b, after: null, steps };
    results.push(result);
    if (!after) {
      steps.push({ key: 'find', argv: [], ok: false, error: `${b.name} did not come back under ${b.unit ?? '?'} within ${timeoutMs} ms` });
      continue;
    }
    steps.push({ key: 'find', argv: [], ok: true });
    const differs = notSameDisk(b, after);
    if (differs) {
      steps.push({ key: 'identity', argv: [], ok: false, error: `${after.name} is not ${b.name}: ${differs}; nothing is written to it` });
      continue;
    }
    steps.push({ key: 'identity', argv: [], ok: true });
    if (deps.beforeSwitch) steps.push(...(await deps.beforeSwitch(b, after)));
    if (b.map) {
      try {
        const argvs = await deps.switchMap(b.map, after.sectors, after.devt);
        steps.push({ key: 'map', argv: argvs.flat(), ok: true });
      } catch (err) {
        steps.push({ key: 'map', argv: [], ok: false, error: `map ${b.map} could not be pointed at ${after.name} (${after.devt}): ${err instanceof Error ? err.message : String(err)}; it keeps holding the disk's I/O` });
        continue;
      }
    }
    result.after = { ...after, map: b.map, protection: b.protection };
  }
  return results;
}
