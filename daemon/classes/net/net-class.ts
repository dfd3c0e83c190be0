// The network class: one shadow for every NIC driver (net-declaration.ts says
// what it is; this starts it). Built from the network shadow
// (netdev-shadow.ts), its replay (netdev-replay.ts), its detectors
// (stall-detector.ts, tx-timeout.ts) and the sysfs reading that blames a
// kernel report on its devices (net-sysfs.ts).
import type { ClassContext, ClassDetectors, ClassRuntime, DeviceClass, DeviceInfo } from '../../core/device-class.js';
import type { RestartReply } from '../../core/helper-protocol.js';
import { shadowReplay, type ReplayPlanner } from '../../core/shadow-replay.js';
import { shadowRuntime } from '../../core/shadow-runtime.js';
import type { ShadowEntry } from '../../core/shadow-store.js';
import { NET_DECLARATION, STALL_THRESHOLD_KEY } from './net-declaration.js';
import { readNetDevices } from './net-sysfs.js';
import { planReplay, planRestartReplay, runReplay, type ReplayStep } from './netdev-replay.js';
import { NetdevShadow } from './netdev-shadow.js';
import { snapshotDevice, type DeviceSnapshot } from './netdev-snapshot.js';
import { helperTxstat, StallDetector } from './stall-detector.js';
import { handleTapTimeout } from './tx-timeout.js';

/** Replaying a NIC's shadow: read with ip/ethtool/tc, plan in dependency order, run as argv. */
export const NET_REPLAY_PLANNER: ReplayPlanner<ShadowEntry, DeviceSnapshot, ReplayStep> = {
  read: (device) => snapshotDevice(device),
  planAll: (entries, current) => planReplay(entries, current),
  planRestart: (entries, current, mark) => {
    const plan = planRestartReplay(entries, current, mark);
    return { steps: plan.steps, left: plan.left };
  },
  run: (device, steps) => runReplay(device, steps),
};

function openNet(ctx: ClassContext): ClassRuntime {
  const shadow = new NetdevShadow(ctx.store, ctx.logger, { restarting: ctx.held });
  const fields = (device: string): Record<string, string> => ({ SHADOWD_DEVICE: device, SHADOWD_CLASS: 'net' });
  const driverOf = (name: string): string | null => shadow.record(name)?.driver ?? null;
  const replay = shadowReplay({
    entries: (name) => ctx.store.entries(shadow.show(name).device.id),
    changes: () => ctx.store.changes,
    sync: async () => {
      await ctx.syncTaps();
      await shadow.caughtUp();
    },
    planner: NET_REPLAY_PLANNER,
    logger: ctx.logger,
    fields,
  });
  return {
    ...shadowRuntime(shadow),

    lookup(name): DeviceInfo | null {
      const d = shadow.record(name);
      return d ? { name: d.name, driver: d.driver, bus: d.bus } : null;
    },
    replay,
    afterRestart(name: string, reply: RestartReply): string[] {
      const known = shadow.record(name)?.attrs['ifindex'];
      const now = reply.fields['ifindex'];
      if (typeof known === 'number' && now !== undefined && known !== now) {
        return [`the interface index changed from ${known} to ${now}: handles bound to the old one are lost`];
      }
      return [];
    },
    moduleDevices: () => readNetDevices(),
    startDetectors(): ClassDetectors {
      const stall = new StallDetector({
        txstat: helperTxstat(ctx.pollHelper),
        devices: () => shadow.status().filter((d) => d.health === 'ok').map((d) => d.name),
        onReport: ctx.report,
        logger: ctx.logger,
        thresholdMs: (device) => Number(ctx.setting(device, driverOf(device), STALL_THRESHOLD_KEY)),
      });
      stall.start();
      return {
        onTapEvent(e) {
          void handleTapTimeout(e, { driverOf: (name) => shadow.record(name)?.driver, verdict: (device) => stall.tapTimeout(device), report: ctx.report, logger: ctx.logger });
        },
        stop: () => stall.stop(),
      };
    },
  };
}

export const netClass: DeviceClass = {
  ...NET_DECLARATION,
  open: openNet,
};
