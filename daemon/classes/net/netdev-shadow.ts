// The network class shadow in passive mode: one shadow for every NIC driver.
// It adopts each network device that has a driver (a bus parent), applies tap
// events to the reduced log, re-reads key groups the events do not carry the
// values of, and re-reads everything after a gap in the event stream. It
// watches the daemon's own network namespace: an ifindex and a name are
// unique only within one, and any user may make a namespace with an ifindex
// 2 or an eth0 of its own, so every other namespace's event is left alone.
import { statSync } from 'node:fs';
import { readdir, readlink } from 'node:fs/promises';
import { basename } from 'node:path';
import { runProgram } from '../../core/run-program.js';
import type { DeviceStatus, ShowResult } from '../../core/device-status.js';
import { storedByName, storedShow, storedStatus } from '../../core/stored-device.js';
import type { Logger } from '../../service/log.js';
import { reduceEvent } from './netdev-reducer.js';
import { ALL_GROUPS, KEY_GROUPS, snapshotDevice, SnapshotError, TOOL_OUTPUT_LIMIT, type DeviceSnapshot, type KeyGroup, type OversizedGroup } from './netdev-snapshot.js';
import { SNAPSHOT_ACTOR, type Actor, type DeviceRecord, type ShadowStore } from '../../core/shadow-store.js';
import type { TapEvent } from '../../core/tap-record.js';

export interface WatchedDevice {
  id: string;
  ifindex: number;
  name: string;
  driver: string | null;
  bus: string | null;
}

export interface NetdevShadowDeps {
  snapshot?: (name: string, groups: readonly KeyGroup[]) => Promise<DeviceSnapshot>;
  listDevices?: () => Promise<{ ifindex: number; name: string; bus: string | null }[]>;
  driverOf?: (name: string) => Promise<string | null>;
  now?: () => number;
  /** How long tap events may gather before their re-reads run (they often come in bursts). */
  refreshDelayMs?: number;
  /** How much reading rtnetlink broadcasts may ask for at once, in ms of reading (HINT_BURST_MS). */
  hintBurstMs?: number;
  /** Hinted re-reads take at most 1/hintCostFactor of the time beyond the burst (HINT_COST_FACTOR). */
  hintCostFactor?: number;
  /** How long hints must pause before a hinted re-read (HINT_QUIET_MS). */
  hintQuietMs?: number;
  /**
   * Whether shadowd is restarting this device's driver: the helper keeps the
   * net_device, but the taps still see the driver let go of it and take it back.
   */
  restarting?: (name: string) => boolean;
  /** The network namespace watched (its inode number, the taps' netns=); the daemon's own by default. */
  netns?: number;
}

/** The inode number of this process's network namespace: what the taps print as netns= for its devices. */
function ownNetns(): number {
  return statSync('/proc/self/ns/net').ino;
}

/** The network class's id (its sysfs class name). */
const CLS = 'net';

/** How long after a re-read found a change a process's event about it (received then, read later) still takes the credit. */
const PROVISIONAL_MS = 3000;

/** An actor, and whether it is a kernel thread (a kworker finishing someone's change). */
interface Credit extends Actor {
  kthread: boolean;
  /** When the daemon received the event (ms since the epoch). */
  seen: number;
}
const SNAPSHOT_CREDIT: Credit = { ...SNAPSHOT_ACTOR, kthread: false, seen: 0 };

/** For the journal: `ip (pid 812)`, `kworker/u8:2 (pid 40, kernel)`. */
function creditName(c: Credit): string {
  return c.pid === null ? c.comm : `${c.comm} (pid ${String(c.pid)}${c.kthread ? ', kernel' : ''})`;
}

/**
 * Whether `a` rather than `b` gets the credit for a group's next value: a
 * process seen by a tap beats the snapshot, a user process beats a kernel
 * thread, and otherwise the later one wins.
 */
function outranks(a: Credit, b: Credit): boolean {
  if (a.pid === null) return b.pid === null;
  if (b.pid === null) return true;
  return !a.kthread || b.kthread;
}

/**
 * The credit for a group once another event asks for its re-read: the
 * higher-ranked one (outranks), dated by the earliest process event it stands
 * for. A read credited to a kernel thread gives the credit to a process seen
 * within PROVISIONAL_MS of it; when several processes' hints wait for one
 * read, the first of them may be the one that made the change.
 */
function mergeCredit(held: Credit | undefined, actor: Credit): Credit {
  if (!held) return actor;
  if (!outranks(actor, held)) return held;
  const processes = !held.kthread && held.pid !== null && !actor.kthread && actor.pid !== null;
  return processes && held.seen < actor.seen ? { ...actor, seen: held.seen } : actor;
}

const GROUP_OF_KEY = new Map<string, KeyGroup>(
  Object.entries(KEY_GROUPS).flatMap(([group, keys]) => keys.map((k): [string, KeyGroup] => [k, group as KeyGroup])),
);

/** A device's stable identity: its bus address survives ifindex and name changes. */
export function deviceId(bus: string | null, name: string): string {
  return bus ? `bus:${bus}` : `name:${name}`;
}

async function listNetDevices(): Promise<{ ifindex: number; name: string; bus: string | null }[]> {
  const { stdout, stderr, exitCode } = await runProgram('ip', ['-json', '-details', 'link', 'show']);
  if (exitCode !== 0) throw new Error(`ip link show failed (exit ${String(exitCode)}): ${stderr.trim()}`);
  const links = JSON.parse(stdout) as { ifindex: number; ifname: string; parentdev?: string }[];
  return links.map((l) => ({ ifindex: l.ifindex, name: l.ifname, bus: l.parentdev ?? null }));
}

async function driverOfDevice(name: string): Promise<string | null> {
  try {
    return basename(await readlink(`/sys/class/net/${name}/device/driver`));
  } catch {
    return null;
  }
}

/**
 * Hinted re-reads (NetdevShadow.hint) draw on a budget of reading time: it
 * holds at most HINT_BURST_MS and refills at 1 ms per HINT_COST_FACTOR ms, so
 * an administrator's changes are read at once while a storm of broadcasts
 * (a routing daemon loading a table) costs about a tenth of the time...
 */
const HINT_COST_FACTOR = 10;
export const HINT_BURST_MS = 3000;
/** ...and a change is in the shadow within this long of its broadcast. */
const HINT_MAX_GAP_MS = 30_000;
/**
 * The taps leave out a process's hints that follow its printed one of the
 * same group within 50 ms (bpf/netdev-class.bt, rtnl_hint): a hinted read
 * waits until hints have paused this long (HINT_MAX_DEFER_MS at most), and
 * one that starts sooner after the last hint is followed by one more.
 */
export const HINT_QUIET_MS = 60;
/** The taps' own window (bpf/netdev-class.bt): within it after a hint, changes may be unannounced. */
const TAPS_HINT_WINDOW_MS = 50;
/** A hinted read waits for a pause in the hints no longer than this. */
const HINT_MAX_DEFER_MS = 1000;

export class NetdevShadow {
  private readonly watched = new Map<number, WatchedDevice>();
  /** ifindex → group → who gets the credit for what the re-read finds. */
  private pending = new Map<number, Map<KeyGroup, Credit>>();
  private timer: NodeJS.Timeout | null = null;
  /** Groups rtnetlink broadcasts asked to re-read on every device, not yet scheduled. */
  private hinted = new Map<KeyGroup, Credit>();
  private hintTimer: NodeJS.Timeout | null = null;
  /** The hinted groups in the next batch of re-reads (its cost is drawn from the budget). */
  private hintsInNextBatch = new Map<KeyGroup, Credit>();
  /** performance.now() of the last hint, and of the first of those waiting. */
  private lastHintAt = -Infinity;
  private firstHintAt = -Infinity;
  /** A read once more (of changes the taps may have left unannounced) starts no sooner than this. */
  private againAfter = -Infinity;
  private readonly hintQuietMs: number;
  /** A batch holding hinted re-reads is queued or running. */
  private hintBatchRunning = false;
  /** Reading time (ms) hinted re-reads may still take at once, as of budgetAt (performance.now()). */
  private budgetMs: number;
  private budgetAt = 0;
  private readonly hintBurstMs: number;
  private readonly hintCostFactor: number;
  private refreshing: Promise<void> = Promise.resolve();
  /** Devices whose re-read is queued or running. */
  private readsInFlight = 0;
  /** device\0group of the groups last found too large to keep (TOOL_OUTPUT_LIMIT). */
  private readonly oversized = new Set<string>();
  /** device\0key → when a re-read found its value and could credit only a kernel thread. */
  private readonly provisional = new Map<string, number>();
  private readonly snapshot: NonNullable<NetdevShadowDeps['snapshot']>;
  private readonly listDevices: NonNullable<NetdevShadowDeps['listDevices']>;
  private readonly driverOf: NonNullable<NetdevShadowDeps['driverOf']>;
  private readonly now: () => number;
  private readonly refreshDelayMs: number;

  private readonly restarting: (name: string) => boolean;
  private readonly netns: number;

  constructor(
    private readonly store: ShadowStore,
    private readonly logger: Logger,
    deps: NetdevShadowDeps = {},
  ) {
    this.snapshot = deps.snapshot ?? ((name, groups) => snapshotDevice(name, groups));
    this.restarting = deps.restarting ?? (() => false);
    this.listDevices = deps.listDevices ?? listNetDevices;
    this.driverOf = deps.driverOf ?? driverOfDevice;
    this.now = deps.now ?? Date.now;
    this.refreshDelayMs = deps.refreshDelayMs ?? 20;
    this.hintBurstMs = deps.hintBurstMs ?? HINT_BURST_MS;
    this.hintCostFactor = deps.hintCostFactor ?? HINT_COST_FACTOR;
    this.budgetMs = this.hintBurstMs;
    this.hintQuietMs = deps.hintQuietMs ?? HINT_QUIET_MS;
    this.netns = deps.netns ?? ownNetns();
  }

  /**
   * Adopts every network device with a driver and reads its whole state. Run
   * at start and after a gap in the event stream. What the device reports now
   * replaces what the shadow held; values it still has keep their setter.
   */
  async resync(why: string): Promise<void> {
    const devices = (await this.listDevices()).filter((d) => d.bus !== null);
    const seen = new Set<string>();
    for (const d of devices) {
      const dev = this.adopt(d.ifindex, d.name, d.bus, await this.driverOf(d.name));
      seen.add(dev.id);
      await this.refreshNow(dev, new Map(ALL_GROUPS.map((g) => [g, SNAPSHOT_CREDIT])));
    }
    // Only the network class's devices: another class's are that class's to mark absent.
    for (const known of this.store.devices(CLS)) {
      if (known.present && !seen.has(known.id)) this.store.setPresent(known.id, false, this.now());
    }
    for (const [ifindex, dev] of this.watched) if (!seen.has(dev.id)) this.watched.delete(ifindex);
    // A holder whose process is gone released its reference when it exited.
    const live = await this.livePids();
    for (const id of seen) this.store.dropHoldersExcept(id, live);
    this.logger.log('info', `read the state of ${devices.length} network device(s) (${why})`, { SHADOWD_CLASS: CLS });
  }

  private async livePids(): Promise<Set<number>> {
    const entries = await readdir('/proc').catch(() => [] as string[]);
    return new Set(entries.filter((e) => /^\d+$/.test(e)).map(Number));
  }

  private resyncing: Promise<void> | null = null;
  private resyncAgain: string | null = null;

  /**
   * Re-reads every device after a gap in the event stream. Gaps that come while
   * a re-read runs are folded into one more, so a storm of lost events cannot
   * pile up re-reads.
   */
  requestResync(why: string): Promise<void> {
    if (this.resyncing) {
      this.resyncAgain = why;
      return this.resyncing;
    }
    this.resyncing = (async () => {
      let reason: string | null = why;
      while (reason !== null) {
        this.resyncAgain = null;
        await this.resync(reason).catch((err: unknown) =>
          this.logger.log('err', `re-reading the devices failed: ${err instanceof Error ? err.message : String(err)}`, { SHADOWD_CLASS: CLS }),
        );
        reason = this.resyncAgain;
      }
      this.resyncing = null;
    })();
    return this.resyncing;
  }

  /** Applies one batch of tap events in one transaction, then schedules the re-reads they call for. */
  applyBatch(events: readonly TapEvent[]): void {
    this.store.transaction(() => {
      for (const e of events) this.applyEvent(e);
    });
  }

  private applyEvent(e: TapEvent): void {
    // Another namespace's device (or hint): its ifindex and name may be those of one of ours.
    if (e.nums['netns'] !== this.netns) return;
    const at = this.now();
    const actor: Credit = { pid: e.pid, comm: e.comm, kthread: e.nums['kthread'] === 1, seen: at };
    const ifindex = e.nums['ifindex'] ?? 0;
    for (const action of reduceEvent(e)) {
      if (action.kind === 'refresh-all') {
        this.hint(action.groups, actor);
        continue;
      }
      if (action.kind === 'registered') {
        if (action.bus) this.onRegistered(ifindex, e.strs['name'] ?? '', action.bus, action.driver);
        continue;
      }
      const dev = this.watched.get(ifindex);
      if (!dev) continue; // a device without a driver (lo, veth, bridge) or not yet adopted
      switch (action.kind) {
        case 'set':
          if (this.store.setEntry(dev.id, action.key, action.value, actor, at)) {
            this.logger.log('debug', `${dev.name}: ${action.key} = ${JSON.stringify(action.value)} by ${e.comm}[${e.pid}]`, this.fields(dev));
          }
          break;
        case 'refresh':
          this.schedule(ifindex, action.groups, actor);
          break;
        case 'holder': {
          const count = this.store.adjustHolder(dev.id, action.holder, e.pid, e.comm, action.delta, at);
          this.logger.log('info', `${dev.name}: ${e.comm}[${e.pid}] ${action.delta > 0 ? 'took' : 'released'} ${action.holder} (holds ${count})`, this.fields(dev));
          break;
        }
        case 'unregistered':
          // During shadowd's own restart or park the helper keeps the device.
          if (this.restarting(dev.name)) {
            this.logger.log('debug', `${dev.name}: its driver let go of it; shadow_helper keeps the device`, this.fields(dev));
            break;
          }
          this.watched.delete(ifindex);
          this.pending.delete(ifindex);
          this.store.setPresent(dev.id, false, at);
          this.logger.log('notice', `${dev.name} disappeared; its shadow is kept`, this.fields(dev));
          break;
        case 'renamed':
          this.logger.log('info', `${dev.name} was renamed to ${action.newName} by ${e.comm}[${e.pid}]`, this.fields(dev));
          dev.name = action.newName;
          this.store.upsertDevice({ id: dev.id, cls: CLS, name: dev.name, driver: dev.driver, bus: dev.bus, attrs: { ifindex } }, at);
          break;
      }
    }
  }

  private onRegistered(ifindex: number, name: string, bus: string, driver: string | null): void {
    const id = deviceId(bus, name);
    const known = this.store.devices(CLS).some((d) => d.id === id);
    const dev = this.adopt(ifindex, name, bus, driver);
    if (known) {
      // A re-probed device comes up with the driver's defaults: the shadow keeps
      // what was configured, for replay, instead of learning the defaults.
      if (this.restarting(name)) this.logger.log('debug', `${name}: the restarted driver took it back`, this.fields(dev));
      else this.logger.log('notice', `${name} appeared again (${driver ?? 'unknown driver'} at ${bus}); its shadow of ${this.store.entryCount(id)} keys is kept`, this.fields(dev));
    } else {
      this.logger.log('info', `watching new device ${name} (${driver ?? 'unknown driver'} at ${bus})`, this.fields(dev));
      this.schedule(ifindex, ALL_GROUPS, SNAPSHOT_CREDIT);
    }
  }

  private adopt(ifindex: number, name: string, bus: string | null, driver: string | null): WatchedDevice {
    const id = deviceId(bus, name);
    const dev: WatchedDevice = { id, ifindex, name, driver, bus };
    this.watched.set(ifindex, dev);
    this.store.upsertDevice({ id, cls: CLS, name, driver, bus, attrs: { ifindex } }, this.now());
    return dev;
  }

  private schedule(ifindex: number, groups: readonly KeyGroup[], actor: Credit): void {
    let byGroup = this.pending.get(ifindex);
    if (!byGroup) this.pending.set(ifindex, (byGroup = new Map<KeyGroup, Credit>()));
    for (const g of groups) byGroup.set(g, mergeCredit(byGroup.get(g), actor));
    this.timer ??= setTimeout(() => {
      this.timer = null;
      this.startPending();
    }, this.refreshDelayMs);
  }

  /**
   * An rtnetlink broadcast (a route, neighbour, address or qdisc changed
   * somewhere) names no device: the groups are re-read on every device. A
   * storm of them (ARP from the LAN, a routing daemon loading a table) must
   * not keep the daemon spawning `ip`: the reads they ask for spend a budget
   * of reading time (hintBurstMs at most, refilled at 1/hintCostFactor of
   * the time); once it is spent, the next read waits until it is refilled.
   * Hints are read once they have paused hintQuietMs.
   */
  private hint(groups: readonly KeyGroup[], actor: Credit): void {
    this.logger.log('debug', `rtnl_hint: ${groups.join(',')} changed, said ${creditName(actor)}`, { SHADOWD_CLASS: CLS });
    this.lastHintAt = performance.now();
    if (this.hinted.size === 0) this.firstHintAt = this.lastHintAt;
    for (const g of groups) this.hinted.set(g, mergeCredit(this.hinted.get(g), actor));
    // While a hinted batch runs its cost is not known yet: its end arms the timer.
    if (!this.hintBatchRunning) this.armHintTimer();
  }

  /** The reading budget as of now (ms). */
  private budgetNow(now: number): number {
    return Math.min(this.hintBurstMs, this.budgetMs + (now - this.budgetAt) / this.hintCostFactor);
  }

  /** When the waiting hints may be read: once the budget is not overdrawn and they paused (or have waited long enough). */
  private hintsDueAt(): number {
    const refilledAt = this.budgetMs >= 0 ? 0 : this.budgetAt - this.budgetMs * this.hintCostFactor;
    return Math.max(refilledAt, this.againAfter, Math.min(this.lastHintAt + this.hintQuietMs, this.firstHintAt + HINT_MAX_DEFER_MS));
  }

  private armHintTimer(): void {
    this.hintTimer ??= setTimeout(() => {
      this.hintTimer = null;
      // More hints came meanwhile: wait for their pause too.
      if (this.hintsDueAt() - performance.now() > 1) this.armHintTimer();
      else this.releaseHints();
    }, Math.max(this.refreshDelayMs, this.hintsDueAt() - performance.now()));
  }

  /** Schedules the hinted groups on every device and starts the reads. */
  private releaseHints(): void {
    const hinted = this.hinted;
    this.hinted = new Map();
    for (const idx of this.watched.keys()) for (const [g, actor] of hinted) this.schedule(idx, [g], actor);
    for (const [g, actor] of hinted) this.hintsInNextBatch.set(g, actor);
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
      this.startPending();
    }
  }

  /** Queues the re-reads asked for so far behind those already running. */
  private startPending(): void {
    const work = this.pending;
    const hinted = this.hintsInNextBatch;
    this.pending = new Map();
    this.hintsInNextBatch = new Map();
    this.readsInFlight += work.size;
    if (hinted.size > 0) this.hintBatchRunning = true;
    this.refreshing = this.refreshing.then(async () => {
      const started = performance.now();
      // The taps print one hint per namespace, group and process per 50 ms:
      // changes may follow the last hint by that long, unannounced. Read once
      // more after the gap.
      const again = started - this.lastHintAt < TAPS_HINT_WINDOW_MS;
      for (const [idx, groups] of work) {
        const dev = this.watched.get(idx);
        if (dev) await this.refreshNow(dev, groups);
        this.readsInFlight--;
      }
      const ended = performance.now();
      if (hinted.size === 0) return;
      this.budgetMs = Math.max(-HINT_MAX_GAP_MS / this.hintCostFactor, this.budgetNow(ended) - (ended - started));
      this.budgetAt = ended;
      this.hintBatchRunning = false;
      if (again) {
        // (A timer may fire a millisecond early: the margin keeps this one the last.)
        this.againAfter = this.lastHintAt + TAPS_HINT_WINDOW_MS + 2;
        for (const [g, actor] of hinted) if (!this.hinted.has(g)) this.hinted.set(g, actor);
      }
      if (this.hinted.size > 0) this.armHintTimer();
    });
  }

  /**
   * Resolves once the re-reads asked for by the events applied so far, and a
   * re-read of every device under way (after a gap), have been applied; those
   * asked for later are not waited for, so a steady stream of events cannot
   * hold it up. Waiting re-reads start now rather than after their gathering
   * delay. After Ingest.sync, the shadow then holds everything the taps saw
   * until the sync began.
   */
  async caughtUp(): Promise<void> {
    if (this.hinted.size > 0) {
      if (this.hintTimer !== null) clearTimeout(this.hintTimer);
      this.hintTimer = null;
      this.releaseHints();
    }
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
      this.startPending();
    }
    const refreshing = this.refreshing;
    const resyncing = this.resyncing;
    await refreshing;
    await resyncing;
  }

  /** Devices with a re-read waiting or running: the shadow is catching up with them. */
  pendingReads(): number {
    return this.pending.size + this.readsInFlight + (this.hinted.size > 0 ? this.watched.size : 0);
  }

  /** Resolves once every re-read scheduled so far has been applied (for tests and orderly shutdown). */
  async settled(): Promise<void> {
    while (this.timer !== null || this.hinted.size > 0 || this.pending.size > 0) await new Promise((r) => setTimeout(r, this.refreshDelayMs));
    await this.refreshing;
  }

  private async refreshNow(dev: WatchedDevice, groups: ReadonlyMap<KeyGroup, Credit>): Promise<void> {
    let snap: DeviceSnapshot;
    try {
      snap = await this.snapshot(dev.name, [...groups.keys()]);
    } catch (err) {
      // The device may have gone between the event and the read; the unregister event says so.
      const message = err instanceof Error ? err.message : String(err);
      this.logger.log(err instanceof SnapshotError ? 'warning' : 'err', `could not read ${dev.name}: ${message}`, this.fields(dev));
      return;
    }
    this.noteOversized(dev, groups, snap.oversized ?? []);
    const at = this.now();
    // A change that arrived while the read ran may be what the read found.
    const arrived = this.pending.get(dev.ifindex);
    this.store.transaction(() => {
      for (const [key, value] of Object.entries(snap.keys)) {
        if (value === undefined) continue;
        const group = GROUP_OF_KEY.get(key);
        const asked = (group && groups.get(group)) ?? SNAPSHOT_CREDIT;
        const late = group && arrived?.get(group);
        const actor = late && outranks(late, asked) ? late : asked;
        const slot = `${dev.id}\0${key}`;
        if (this.store.setEntry(dev.id, key, value, actor, at, 'observe')) {
          this.logger.log('debug', `${dev.name}: ${key} changed, credited to ${creditName(actor)}`, this.fields(dev));
          // Credited to a kernel thread for now: the process that asked for the
          // change may be reported a moment later (the taps lag the reads).
          if (actor.kthread) this.provisional.set(slot, at);
          else this.provisional.delete(slot);
        } else if (!actor.kthread && actor.pid !== null && actor.seen - (this.provisional.get(slot) ?? -Infinity) <= PROVISIONAL_MS) {
          this.logger.log('debug', `${dev.name}: ${key} credited to ${creditName(actor)} instead of the kernel thread that read it first`, this.fields(dev));
          this.store.setEntry(dev.id, key, value, actor, at, 'set');
          this.provisional.delete(slot);
        }
      }
    });
  }

  /** Says once when a group of a device becomes too large to keep, and once when it fits again. */
  private noteOversized(dev: WatchedDevice, read: ReadonlyMap<KeyGroup, Credit>, oversized: readonly OversizedGroup[]): void {
    for (const o of oversized) {
      const slot = `${dev.id}\0${o.group}`;
      if (this.oversized.has(slot)) continue;
      this.oversized.add(slot);
      this.logger.log(
        'warning',
        `${dev.name}: \`${o.what}\` printed more than ${String(TOOL_OUTPUT_LIMIT >> 20)} MiB: its ${KEY_GROUPS[o.group].join(', ')} are too many to keep; the shadow holds none and a restart leaves them as they are`,
        this.fields(dev),
      );
    }
    for (const group of read.keys()) {
      const slot = `${dev.id}\0${group}`;
      if (!this.oversized.has(slot) || oversized.some((o) => o.group === group)) continue;
      this.oversized.delete(slot);
      this.logger.log('notice', `${dev.name}: its ${KEY_GROUPS[group].join(', ')} fit the shadow again`, this.fields(dev));
    }
  }

  private fields(dev: WatchedDevice): Record<string, string> {
    return { SHADOWD_DEVICE: dev.name, SHADOWD_DRIVER: dev.driver ?? '', SHADOWD_CLASS: CLS };
  }

  /** The device of that name: the present one, else the kept shadow of one that is gone. */
  record(name: string): DeviceRecord | undefined {
    return storedByName(this.store, CLS, name);
  }

  status(): DeviceStatus[] {
    return this.store.devices(CLS).map((d) => storedStatus(this.store, d));
  }

  show(name: string): ShowResult {
    return storedShow(this.store, CLS, 'network device', name);
  }
}
