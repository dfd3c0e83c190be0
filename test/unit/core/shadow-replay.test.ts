// The daemon's replays from a class's shadow (core/shadow-replay.ts, with the
// network class's planner) while another process configures the device (test/vm/classes/net/recovery-policy.test.ts's loop, in the
// guest): a real shadow and store, fed by taps that lag the device as
// bpftrace's buffers do, a device that a restart resets as a fresh driver
// instance would, and a recorded runner in place of ip and ethtool.
import { describe, expect, it } from 'vitest';
import type { LogFields, Priority } from '../../../daemon/service/log.js';
import { NET_REPLAY_PLANNER } from '../../../daemon/classes/net/net-class.js';
import type { ReplayReport } from '../../../daemon/classes/net/netdev-replay.js';
import { planReplay, runReplay } from '../../../daemon/classes/net/netdev-replay.js';
import { NetdevShadow } from '../../../daemon/classes/net/netdev-shadow.js';
import { KEY_GROUPS, type DeviceSnapshot, type JsonValue, type KeyGroup } from '../../../daemon/classes/net/netdev-snapshot.js';
import { shadowReplay } from '../../../daemon/core/shadow-replay.js';
import { ShadowStore } from '../../../daemon/core/shadow-store.js';
import type { TapEvent } from '../../../daemon/core/tap-record.js';
import { RECORDED_NETNS } from '../../fixtures/netns.js';

const BUS = '0000:00:03.0';
const ID = `bus:${BUS}`;

/** What a fresh driver instance resets (the net_device and the helper's replay keep the rest). */
const DRIVER_DEFAULTS: Record<string, JsonValue> = { coalesce: { 'rx-usecs': 0 } };

/**
 * eth0, configured by "other processes" through set(): each change is on the
 * device at once, and its tap event waits in the taps until a sync (or the
 * test's settle) hands it to the shadow.
 */
function rig() {
  const device: Record<string, JsonValue> = { admin_up: true, mtu: 1400, txqueuelen: 1000, msglvl: 7, coalesce: { 'rx-usecs': 3 } };
  const inFlight: TapEvent[] = [];
  const lines: { priority: Priority; message: string; fields?: LogFields }[] = [];
  const logger = { log: (priority: Priority, message: string, fields?: LogFields) => void lines.push({ priority, message, fields }) };
  const store = new ShadowStore(':memory:');
  const read = (name: string, groups: readonly KeyGroup[]): Promise<DeviceSnapshot> => {
    const keys: Record<string, JsonValue> = {};
    for (const g of groups) for (const k of KEY_GROUPS[g]) if (k in device) keys[k] = device[k]!;
    return Promise.resolve({ identity: { ifindex: 2, name, bus: BUS }, keys });
  };
  const shadow = new NetdevShadow(store, logger, {
    netns: RECORDED_NETNS,
    snapshot: read,
    listDevices: () => Promise.resolve([{ ifindex: 2, name: 'eth0', bus: BUS }]),
    driverOf: () => Promise.resolve('e1000'),
    refreshDelayMs: 5,
  });
  let pid = 500;
  const event = (call: string, nums: Record<string, number>, comm: string): TapEvent => ({
    call,
    nums: { ifindex: 2, netns: RECORDED_NETNS, ret: 0, ...nums },
    masks: {},
    strs: { name: 'eth0' },
    pid: pid++,
    tsNs: 0n,
    comm,
  });
  const set = (key: 'mtu' | 'txqueuelen' | 'msglvl' | 'coalesce', value: JsonValue): void => {
    device[key] = value;
    if (key === 'mtu') inFlight.push(event('mtu', { mtu: value as number }, 'ip'));
    if (key === 'txqueuelen') inFlight.push(event('txqueuelen', { qlen: value as number }, 'ip'));
    // ethtool's netlink notifications name the setting, not its value: the shadow re-reads it.
    if (key === 'msglvl') inFlight.push(event('ethtool_notify', { msg: 8 }, 'ethtool'));
    if (key === 'coalesce') inFlight.push(event('ethtool_notify', { msg: 21 }, 'ethtool'));
  };
  /** Hands the shadow every tap event so far and waits for the re-reads they ask for. */
  const settle = async (): Promise<void> => {
    shadow.applyBatch(inFlight.splice(0));
    await shadow.caughtUp();
  };
  let syncs = 0;
  let syncFails: string | null = null;
  const ran: string[] = [];
  const replayer = shadowReplay({
    entries: () => store.entries(ID),
    changes: () => store.changes,
    // As Ingest.sync then NetdevShadow.caughtUp: every event printed before the call is applied by the end,
    // and its re-reads are done; later ones may still be in the taps.
    sync: async () => {
      syncs++;
      if (syncFails) throw new Error(syncFails);
      const before = inFlight.length;
      await new Promise((resolve) => setTimeout(resolve, 1));
      shadow.applyBatch(inFlight.splice(0, before));
      await shadow.caughtUp();
    },
    logger,
    fields: (name) => ({ SHADOWD_CLASS: 'net', SHADOWD_DEVICE: name }),
    planner: {
      ...NET_REPLAY_PLANNER,
      read: (name) => read(name, Object.keys(KEY_GROUPS) as KeyGroup[]),
      run: (name, steps) =>
        runReplay(name, steps, (file, args) => {
          ran.push([file, ...args].join(' '));
          return Promise.resolve({ exitCode: 0, stdout: '', stderr: '' });
        }),
    },
  });
  return {
    device,
    store,
    shadow,
    set,
    settle,
    replayer,
    ran,
    lines,
    syncs: () => syncs,
    failSync: (why: string | null) => (syncFails = why),
    /** The driver restarted: the net_device and the helper's replays keep the rest; a fresh instance's own settings are its defaults. */
    restart: (): void => void Object.assign(device, DRIVER_DEFAULTS),
    value: (key: string): JsonValue | undefined => store.entries(ID).find((e) => e.key === key)?.value,
  };
}

const argv = (r: ReplayReport): string[] => r.steps.map((s) => s.argv.join(' '));

describe('replay after a restart while another process configures the device', () => {
  it('puts back what the restart lost and undoes none of the writes made around it, though the taps lag', async () => {
    const r = rig();
    await r.shadow.resync('start-up');
    // The loop: the queue length and MTU only go up; the message level changes too.
    r.set('txqueuelen', 501);
    r.set('mtu', 1301);
    await r.settle();
    // Written just before the recovery, still in the taps' buffers as the restart is sent.
    r.set('txqueuelen', 502);
    r.set('msglvl', 3);
    const mark = r.replayer.mark('eth0');
    // During the restart, through the shadow that answers for the driver (the net_device keeps them).
    r.set('txqueuelen', 503);
    r.set('mtu', 1302);
    r.restart();
    await mark;
    // After it, before the replay reads the device; none of it, nor what was set during the restart, has reached the shadow.
    r.set('txqueuelen', 504);
    r.set('msglvl', 4);
    expect([r.value('txqueuelen'), r.value('mtu'), r.value('msglvl')], 'the shadow lags the device').toEqual([502, 1301, 3]);

    // What the replay did before: the shadow as it stands, against the device read now.
    const lagging = planReplay(r.store.entries(ID), { identity: { ifindex: 2, name: 'eth0', bus: BUS }, keys: { ...r.device } }).map((s) => s.argv.join(' '));
    expect(lagging, 'a plan from the lagging shadow rolls the loop back').toEqual([
      'ip link set dev eth0 mtu 1301',
      'ip link set dev eth0 txqueuelen 502',
      'ethtool -C eth0 rx-usecs 3',
      'ethtool -s eth0 msglvl 3',
    ]);

    const report = await r.replayer.replay('eth0', mark);
    // Only the coalescing the fresh driver reset; the loop's values stay as the device has them.
    expect(argv(report)).toEqual(['ethtool -C eth0 rx-usecs 3']);
    expect(r.ran).toEqual(['ethtool -C eth0 rx-usecs 3']);
    expect([r.device['txqueuelen'], r.device['mtu'], r.device['msglvl']]).toEqual([504, 1302, 4]);
    // The shadow caught up with all of it.
    expect([r.value('txqueuelen'), r.value('mtu'), r.value('msglvl')]).toEqual([504, 1302, 4]);
    expect(r.syncs()).toBe(2);
    r.store.close();
  });

  it('names what it left because it changed during the recovery and differs from the shadow', async () => {
    const r = rig();
    await r.shadow.resync('start-up');
    const mark = r.replayer.mark('eth0');
    await mark;
    r.set('mtu', 1350);
    await r.settle();
    // A write after the replay read the device reaches the shadow before it plans: not written back over a newer one.
    const replaying = r.replayer.replay('eth0', mark);
    r.set('mtu', 1360);
    expect(argv(await replaying)).toEqual([]);
    expect(r.value('mtu')).toBe(1360);
    expect(r.lines.filter((l) => l.priority === 'info').map((l) => l.message)).toContain('eth0: mtu changed during the recovery: left as the device has it');
    r.store.close();
  });

  it('replays nothing when the shadow cannot catch up after the restart; marks with the counter as sent when it cannot before', async () => {
    const r = rig();
    await r.shadow.resync('start-up');
    const changesAtRestart = r.store.changes;
    r.set('txqueuelen', 700);
    r.failSync('no marker came back from CPU 1 within 5000 ms');
    const mark = r.replayer.mark('eth0');
    expect(await mark).toBe(changesAtRestart);
    expect(r.lines.map((l) => `${l.priority} ${l.message}`)).toContain(
      'warning eth0: the shadow could not catch up with the taps as the restart began (no marker came back from CPU 1 within 5000 ms): ' +
        'what it had not seen by then counts as set during the recovery, and the replay leaves it as the device has it',
    );
    r.restart();
    await expect(r.replayer.replay('eth0', mark)).rejects.toThrow(
      'the shadow could not catch up with the taps (no marker came back from CPU 1 within 5000 ms); nothing was replayed, so as not to undo configuration it has not seen',
    );
    expect(r.ran).toEqual([]);
    // Caught up again: the write it had not seen counts as made during the recovery, and stays.
    r.failSync(null);
    expect(argv(await r.replayer.replay('eth0', mark))).toEqual(['ethtool -C eth0 rx-usecs 3']);
    expect(r.device['txqueuelen']).toBe(700);
    r.store.close();
  });
});

describe('shadowctl replay: the whole shadow, from a shadow brought up to date', () => {
  it('after a reload by hand, sets every key that differs to the latest value set, not to what the lagging shadow held', async () => {
    const r = rig();
    await r.shadow.resync('start-up');
    r.set('txqueuelen', 600);
    r.set('mtu', 1380);
    await r.settle();
    r.set('txqueuelen', 601);
    // The administrator reloads the driver: a new net_device, with the driver's defaults, and then asks for the replay.
    Object.assign(r.device, { mtu: 1500, txqueuelen: 1000, msglvl: 7, ...DRIVER_DEFAULTS });
    expect(argv(await r.replayer.replay('eth0'))).toEqual(['ip link set dev eth0 mtu 1380', 'ip link set dev eth0 txqueuelen 601', 'ethtool -C eth0 rx-usecs 3']);
    r.store.close();
  });

  it('still replays when the shadow cannot be brought up to date, and says so', async () => {
    const r = rig();
    await r.shadow.resync('start-up');
    r.failSync('the taps are not attached (restarting)');
    r.restart();
    expect(argv(await r.replayer.replay('eth0'))).toEqual(['ethtool -C eth0 rx-usecs 3']);
    expect(r.lines.map((l) => `${l.priority} ${l.message}`)).toContain(
      'warning eth0: replaying a shadow that may not have caught up with the taps: the taps are not attached (restarting)',
    );
    r.store.close();
  });
});
