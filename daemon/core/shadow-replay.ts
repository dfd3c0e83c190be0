// The daemon's two replays from a class's shadow, and what makes them safe
// while other processes configure the device: `shadowctl replay CLASS:NAME`
// (after an administrator reloaded a driver by hand: the whole shadow, as
// documented), and the replay in a recovery's check, after the kernel helper
// restarted the driver (what the restart lost, and nothing else). The class
// plans the commands (ReplayPlanner); this decides when the shadow may be
// trusted.
//
// The shadow lags the device: tap events wait in bpftrace's per-CPU buffers
// and in the pipe, and values a class re-reads arrive with the re-read an
// event asks for. A plan made from a lagging shadow rewrites what another
// process has just set with what it had set before. So each replay brings
// the shadow up to date with the taps (`sync`: the taps runner's barrier,
// then the class shadow's caughtUp) after reading the device, and the replay
// after a restart leaves alone every key that changed in the shadow since
// the restart began (`mark`, taken as the restart is sent).
import type { ClassReplay, ReplayReport } from './device-class.js';
import type { LogFields, Logger } from '../service/log.js';

/** A shadow entry with the store's change counter, as ShadowStore.entries gives it. */
export interface CountedEntry {
  readonly key: string;
  readonly seq: number;
}

/** What a class knows of replaying its devices: reading one, planning, running the plan. */
export interface ReplayPlanner<Entry extends CountedEntry, Current, Step> {
  /** The device as it is now. */
  read(device: string): Promise<Current>;
  /** Every key of the shadow that differs on the device, in the order to set them. */
  planAll(entries: readonly Entry[], current: Current): Step[];
  /**
   * What the restart lost: keys whose entry has not changed since `mark` and
   * that differ on the device. `left`: keys that changed since the mark and
   * differ, left as the device has them.
   */
  planRestart(entries: readonly Entry[], current: Current, mark: number): { steps: Step[]; left: string[] };
  /** Runs the plan, each step once, and says what each did. */
  run(device: string, steps: readonly Step[]): Promise<ReplayReport>;
}

export interface ShadowReplayDeps<Entry extends CountedEntry, Current, Step> {
  /** The device's shadow entries with their change counter. */
  entries: (device: string) => readonly Entry[];
  /** The store's change counter now (ShadowStore.changes). */
  changes: () => number;
  /** Brings the shadow up to date with every tap event printed before the call, and the re-reads they asked for; rejects when it cannot. */
  sync: () => Promise<void>;
  planner: ReplayPlanner<Entry, Current, Step>;
  logger: Logger;
  /** Journal fields for a device's messages (its class and name). */
  fields: (device: string) => LogFields;
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export function shadowReplay<Entry extends CountedEntry, Current, Step>(deps: ShadowReplayDeps<Entry, Current, Step>): ClassReplay {
  const { planner } = deps;
  return {
    async mark(device) {
      const sent = deps.changes();
      try {
        await deps.sync();
        return deps.changes();
      } catch (err) {
        deps.logger.log(
          'warning',
          `${device}: the shadow could not catch up with the taps as the restart began (${messageOf(err)}): ` +
            'what it had not seen by then counts as set during the recovery, and the replay leaves it as the device has it',
          deps.fields(device),
        );
        return sent;
      }
    },

    async replay(device, restartMark) {
      // The device first, then the shadow up to date: the shadow is then at least as new as what was read.
      const current = await planner.read(device);
      if (restartMark === undefined) {
        try {
          await deps.sync();
        } catch (err) {
          deps.logger.log('warning', `${device}: replaying a shadow that may not have caught up with the taps: ${messageOf(err)}`, deps.fields(device));
        }
        return planner.run(device, planner.planAll(deps.entries(device), current));
      }
      const mark = await restartMark;
      try {
        await deps.sync();
      } catch (err) {
        throw new Error(`the shadow could not catch up with the taps (${messageOf(err)}); nothing was replayed, so as not to undo configuration it has not seen`);
      }
      const plan = planner.planRestart(deps.entries(device), current, mark);
      if (plan.left.length > 0) {
        deps.logger.log('info', `${device}: ${plan.left.join(', ')} changed during the recovery: left as the device has ${plan.left.length === 1 ? 'it' : 'them'}`, deps.fields(device));
      }
      return planner.run(device, plan.steps);
    },
  };
}
