// The disk (block) class: one shadow for every disk driver
// (block-declaration.ts says what it is; this starts it). Built from the disk
// shadow (disk-shadow.ts), the unit relink after a restart (unit-relink.ts),
// the settings replay (disk-settings-replay.ts), the stall detector
// (io-stall-detector.ts) and the machine's sysfs and device-mapper as
// block-system.ts reads and drives them.
//
// A disk survives its driver only under a map: the daemon keeps each
// protected disk on a single-path multipath map with queue_if_no_path, which
// holds the disk's I/O while the helper restarts the controller's driver;
// the replay then finds the disk again, checks it is the same one and points
// the map at it, which lets the held I/O go.
import type { ClassContext, ClassDetectors, ClassReplay, ClassRuntime, DeviceClass, DeviceInfo, ReplayReport } from '../../core/device-class.js';
import { shadowReplay } from '../../core/shadow-replay.js';
import { shadowRuntime } from '../../core/shadow-runtime.js';
import type { ShadowEntry } from '../../core/shadow-store.js';
import { BLOCK_DECLARATION, CREATE_MAP_KEY, IO_STALL_KEY, LOST_DISK_HOLD_KEY } from './block-declaration.js';
import { planRestartSettings, planSettings, type SettingStep } from './disk-settings-replay.js';
import { DiskShadow, type DiskFacts } from './disk-shadow.js';
import { IoStallDetector } from './io-stall-detector.js';
import { releaseBlockedDisk } from './blocked-device-release.js';
import { LostDiskHold } from './lost-disk-hold.js';
import { SysfsBlockSystem, type BlockSystem } from './block-system.js';
import { relinkUnit } from './unit-relink.js';

/** How long a restarted controller may take to show its disks again (a SCSI scan spins disks up). */
const RELINK_TIMEOUT_MS = 30_000;

export function openBlock(ctx: ClassContext, sys: BlockSystem): ClassRuntime {
  const fields = (device: string): Record<string, string> => ({ SHADOWD_DEVICE: device, SHADOWD_CLASS: 'block' });
  /** Units whose disks the replay is finding again: a disk appearing there is not new. */
  const relinking = new Set<string>();
  /** The names disks came back under in the last restart of their unit: old → new. */
  const cameBackAs = new Map<string, string>();
  const unitHeld = (unit: string): boolean => relinking.has(unit) || shadow.allFacts().some((f) => f.unit === unit && ctx.held(f.name));
  const shadow: DiskShadow = new DiskShadow(ctx.store, ctx.logger, {
    source: sys,
    held: (name) => ctx.held(name),
    heldUnit: unitHeld,
    // A disk that appears later (its driver loaded, a disk plugged in) gets its map then, not at the next gap in the taps.
    appeared: () => void mapAppeared(),
    bootId: sys.bootId?.() ?? '',
  });

  const lostHold = new LostDiskHold({
    holdMs: (d) => Number(ctx.setting(d.name, d.driver, LOST_DISK_HOLD_KEY)),
    busy: (d) => ctx.held(d.name) || (d.unit !== null && unitHeld(d.unit)),
    failHeldIo: (map) => sys.failHeldIo(map),
    logger: ctx.logger,
  });

  const settings = shadowReplay<ShadowEntry, Record<string, string>, SettingStep>({
    entries: (name) => ctx.store.entries(shadow.show(name).device.id),
    changes: () => ctx.store.changes,
    sync: async () => {
      await ctx.syncTaps();
      await shadow.caughtUp();
    },
    planner: {
      read: async (name) => (await sys.readDisk(name)).settings,
      planAll: (entries, current) => planSettings(entries, current),
      planRestart: (entries, current, mark) => planRestartSettings(entries, current, mark, (seq) => shadow.carriedOver(seq)),
      run: async (name, steps) => {
        const report: ReplayReport = { device: name, steps: [] };
        for (const s of steps) {
          const argv = ['write', s.key, s.value];
          try {
            await sys.writeSetting(name, s.key, s.value);
            report.steps.push({ key: s.key, argv, ok: true });
          } catch (err) {
            report.steps.push({ key: s.key, argv, ok: false, error: messageOf(err) });
          }
        }
        return report;
      },
    },
    logger: ctx.logger,
    fields,
  });

  const replay: ClassReplay = {
    mark: (name) => {
      // The restart begins: every mapped disk of the controller is held from now on, for LostDiskHoldMs at most.
      const unit = shadow.facts(name)?.unit;
      const mates = shadow.allFacts().filter((f) => f.name === name || (unit && f.unit === unit));
      for (const f of mates) lostHold.begin(f);
      shadow.beginRestart(mates.map((f) => f.name));
      return settings.mark(name);
    },
    async replay(name, restartMark): Promise<ReplayReport> {
      if (restartMark === undefined) return settings.replay(name);
      const me = shadow.facts(name);
      if (!me) throw new Error(`the shadow holds no disk ${name} to find again`);
      // Every disk of the controller went with its driver: all are found and released together.
      const mates = shadow.allFacts().filter((f) => f.unit !== null && f.unit === me.unit);
      const unit = me.unit ?? '';
      relinking.add(unit);
      try {
        const label = (disk: DiskFacts, key: string): string => (mates.length > 1 ? `${disk.name}:${key}` : key);
        // The settings go back before the map points at the disk (RelinkDeps.beforeSwitch says why).
        const beforeSwitch = async (before: DiskFacts, after: DiskFacts): Promise<ReplayReport['steps']> => {
          shadow.record({ ...after, map: before.map, protection: before.protection }, { pid: null, comm: '(restart)' }, true);
          if (after.name !== before.name) {
            cameBackAs.set(before.name, after.name);
            ctx.logger.log('notice', `${before.name} came back as ${after.name}`, fields(after.name));
          } else {
            cameBackAs.delete(before.name);
          }
          try {
            return (await settings.replay(after.name, restartMark)).steps;
          } catch (err) {
            // The map still goes to the disk: its I/O must not wait on the settings.
            return [{ key: 'settings', argv: [], ok: false, error: messageOf(err) }];
          }
        };
        const results = await relinkUnit(mates, { ...bind(sys), beforeSwitch }, RELINK_TIMEOUT_MS);
        const report: ReplayReport = { device: name, steps: [] };
        const missing: string[] = [];
        for (const r of results) {
          report.steps.push(...r.steps.map((s) => ({ ...s, key: label(r.before, s.key) })));
          if (r.after) {
            lostHold.back(r.before);
            continue;
          }
          const why = r.steps.find((s) => !s.ok)?.error ?? `${r.before.name} is not back`;
          const hold = lostHold.says(r.before);
          missing.push(hold ? `${why}; ${hold}` : why);
        }
        if (missing.length > 0) report.notBack = missing.join('; ');
        return report;
      } finally {
        relinking.delete(unit);
        shadow.unitReleased();
      }
    },
  };

  /** One ensureMaps at a time: two would both find a disk unmapped and both try to map it. */
  let mapping: Promise<unknown> = Promise.resolve();
  const ensureMaps = (): Promise<number> => {
    const run = mapping.then(createMaps, createMaps);
    mapping = run;
    return run;
  };
  const mapAppeared = async (): Promise<void> => {
    if ((await ensureMaps()) > 0) await shadow.requestResync('a disk that appeared was put under a map');
  };

  /** Puts each disk with CreateMap=yes and no map under one; returns how many it made. */
  const createMaps = async (): Promise<number> => {
    let made = 0;
    for (const f of shadow.allFacts()) {
      if (f.map || ctx.held(f.name) || ctx.setting(f.name, f.driver, CREATE_MAP_KEY) !== true) continue;
      try {
        const map = await sys.createMap(f);
        made++;
        ctx.logger.log('notice', `${f.name}: put under map ${map}: a filesystem made on /dev/mapper/${map} survives a restart of driver ${f.driver ?? '(unknown)'}`, fields(f.name));
      } catch (err) {
        ctx.logger.log('warning', `${f.name}: CreateMap is on, but shadowd cannot put it under a map: ${messageOf(err)}`, fields(f.name));
      }
    }
    return made;
  };

  const resync = async (why: string): Promise<void> => {
    await shadow.resync(why);
    // A new map changes its disk's protection: read the disks again only then.
    if ((await ensureMaps()) > 0) await shadow.resync(`${why}, after creating maps`);
  };

  return {
    ...shadowRuntime(shadow),
    // Its own resync: the shadow's, then the maps CreateMap asks for.
    resync,
    lookup(name): DeviceInfo | null {
      const d = shadow.recordOf(name);
      return d?.present ? { name: d.name, driver: d.driver, bus: d.bus } : null;
    },
    replay,
    async refuseRestart(name) {
      const me = shadow.facts(name);
      if (!me?.unit) return null;
      // Every disk on the controller goes with its driver, not only this one.
      const names = await sys.disksUnder(me.unit);
      const unsafe: string[] = [];
      for (const disk of names) {
        // Nothing that could wait on the failed driver: sysfs attributes the kernel holds, and the map list.
        if (await sys.mapOver(disk)) continue;
        const use = await sys.diskUse(disk);
        if (use) unsafe.push(`${disk} is in use (${use}) and not under a map`);
      }
      if (unsafe.length === 0) return null;
      return `restarting ${me.driver ?? 'the driver'} of ${me.unit} would fail the I/O of every disk on it: ${unsafe.join('; ')} (docs/disks.md: protecting a disk)`;
    },
    afterRestart(name) {
      const now = cameBackAs.get(name);
      if (now) return [`the disk came back as ${now}: its map and shadow follow it, but anything that names ${name} must use ${now}`];
      return shadow.recordOf(name)?.present ? [] : [`disk ${name} did not come back: see the recovery's steps`];
    },
    async moduleDevices() {
      const out = [];
      for (const f of shadow.allFacts()) out.push({ name: f.name, driver: f.driver, module: f.driver ? await sys.moduleOf(f.driver) : null });
      return out;
    },
    startDetectors(): ClassDetectors {
      const det = new IoStallDetector({
        disks: () => shadow.allFacts().filter((f) => !ctx.held(f.name) && !(f.unit && unitHeld(f.unit))).map((f) => f.name),
        read: (disk) => sys.readIo(disk),
        thresholdMs: (disk) => Number(ctx.setting(disk, shadow.facts(disk)?.driver ?? null, IO_STALL_KEY)),
        onReport: ctx.report,
        logger: ctx.logger,
        driverOf: (disk) => shadow.facts(disk)?.driver ?? null,
        releaseBlocked: (disk) => releaseBlockedDisk(disk),
      });
      det.start();
      return { stop: () => det.stop() };
    },
  };
}

/** The machine's methods relinkUnit calls, bound to it. */
function bind(sys: BlockSystem): Pick<BlockSystem, 'disksUnder' | 'readDisk' | 'switchMap'> {
  return {
    disksUnder: (unit) => sys.disksUnder(unit),
    readDisk: (name) => sys.readDisk(name),
    switchMap: (map, sectors, devt) => sys.switchMap(map, sectors, devt),
  };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The class, given the machine it runs on (a fake one in unit tests). */
export function blockClassOn(sys: () => BlockSystem): DeviceClass {
  return { ...BLOCK_DECLARATION, open: (ctx) => openBlock(ctx, sys()) };
}

export const blockClass: DeviceClass = blockClassOn(() => new SysfsBlockSystem());
