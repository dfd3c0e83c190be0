// The daemon's two replays from the network shadow, and what makes them safe
// while other processes configure the device: `shadowctl replay IFACE` (after
// an administrator reloaded a driver by hand: the whole shadow, as
// documented), and the replay in a recovery's check, after the kernel helper
// restarted the driver (what the restart lost, and nothing else:
// planRestartReplay).
//
// The shadow lags the device: tap events wait in bpftrace's per-CPU buffers
// and in the pipe, and the values of ethtool settings arrive with the re-read
// an event asks for. A plan made from a lagging shadow rewrites what another
// process has just set with what it had set before. So each replay brings the
// shadow up to date with the taps (`sync`: Ingest.sync, then
// NetdevShadow.caughtUp) after reading the device, and the replay after a
// restart leaves alone every key that changed in the shadow since the restart
// began (`mark`, taken as the restart is sent).
import type { Logger } from '../service/log.js';
import { planReplay, planRestartReplay, runReplay, type CountedShadowEntry, type ReplayReport, type RunProgram } from '../classes/net/netdev-replay.js';
import { snapshotDevice, type DeviceSnapshot } from '../classes/net/netdev-snapshot.js';

export interface ShadowReplayDeps {
  /** The device's shadow entries with their change counter (ShadowStore.entries by the device's id). */
  entries: (device: string) => readonly CountedShadowEntry[];
  /** The store's change counter now (ShadowStore.changes). */
  changes: () => number;
  /** Brings the shadow up to date with every tap event printed before the call, and the re-reads they asked for; rejects when it cannot. */
  sync: () => Promise<void>;
  logger: Logger;
  snapshot?: (device: string) => Promise<DeviceSnapshot>;
  run?: RunProgram;
}

export interface ShadowReplay {
  /**
   * What the shadow holds as a restart of `device` is sent: the change
   * counter once the shadow has caught up with the taps. Runs alongside the
   * restart and never rejects: when the shadow cannot catch up, it is the
   * counter as the restart was sent, so what the shadow had not seen yet
   * counts as changed during the recovery and is left alone.
   */
  mark(device: string): Promise<number>;
  /**
   * Replays the shadow onto the device. With the mark of a restart: what the
   * restart lost (planRestartReplay); rejects, replaying nothing, when the
   * shadow cannot catch up with the taps. Without one (`shadowctl replay`):
   * every key that differs, from a shadow brought up to date first if it can
   * be (a warning says when it could not).
   */
  replay(device: string, restartMark?: Promise<number>): Promise<ReplayReport>;
}

const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export function shadowReplay(deps: ShadowReplayDeps): ShadowReplay {
  const snapshot = deps.snapshot ?? ((device: string) => snapshotDevice(device));
  const fields = (device: string): Record<string, string> => ({ SHADOWD_DEVICE: device, SHADOWD_CLASS: 'net' });
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
          fields(device),
        );
        return sent;
      }
    },

    async replay(device, restartMark) {
      // The device first, then the shadow up to date: the shadow is then at least as new as what was read.
      const current = await snapshot(device);
      if (restartMark === undefined) {
        try {
          await deps.sync();
        } catch (err) {
          deps.logger.log('warning', `${device}: replaying a shadow that may not have caught up with the taps: ${messageOf(err)}`, fields(device));
        }
        return runReplay(device, planReplay(deps.entries(device), current), deps.run);
      }
      const mark = await restartMark;
      try {
        await deps.sync();
      } catch (err) {
        throw new Error(`the shadow could not catch up with the taps (${messageOf(err)}); nothing was replayed, so as not to undo configuration it has not seen`);
      }
      const plan = planRestartReplay(deps.entries(device), current, mark);
      if (plan.left.length > 0) {
        deps.logger.log('info', `${device}: ${plan.left.join(', ')} changed during the recovery: left as the device has ${plan.left.length === 1 ? 'it' : 'them'}`, fields(device));
      }
      return runReplay(device, plan.steps, deps.run);
    },
  };
}
