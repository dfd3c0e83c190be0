// Transmit-stall detector: polls the helper module's `txstat IFACE` for each
// watched interface and reports a TX queue that stays stopped without a
// successful transmit, before the kernel's own TX watchdog would fire; and
// reports each TX timeout the kernel counted.
//
// Why no false alarms: an idle link has no stopped queue at all (a queue stops
// only when the driver's ring is full). A saturated link stops its queues
// often, but only until the device completes the transmits in flight and the
// driver wakes the queue; every successful transmit resets stalled_ms, so it
// stays in the order of a ring's drain time (milliseconds), far below the
// threshold. Only a queue that stays stopped with nothing leaving, on a
// running device with carrier (the kernel watchdog's own conditions), reaches
// it. The threshold is at most half the kernel's watchdog period, so the stall
// is reported before the kernel declares the timeout.
//
// Lost interrupts can leave the queue running for a long time: the device
// still sends, but nothing reclaims the ring, and on a link that mostly
// receives the ring fills slowly. Drivers with byte queue limits say how many
// bytes are in flight and how many the device completed; in flight with no
// completion for as long as the threshold is a stall too. A healthy device
// completes within milliseconds, and an idle one has nothing in flight.
import type { FailureReport } from '../../core/failure-report.js';
import type { HelperClient } from '../../core/helper-client.js';
import type { Logger } from '../../service/log.js';

export type TxState = 'passive' | 'restarting' | 'parked';

/** The payload of the helper's `txstat IFACE` reply (kmod/PROTOCOL.md). */
export interface TxStat {
  ifindex: number;
  state: TxState;
  running: boolean;
  carrier: boolean;
  queues: number;
  stopped: number;
  stalledMs: number;
  watchdogMs: number;
  /** A 64-bit counter: kept exact. */
  txPackets: bigint;
  /** Byte queue limits: bytes not yet completed, and completed bytes (32-bit, wraps); absent from an older helper. */
  inflight?: number;
  completed?: number;
  timeouts: number;
}

export class TxstatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TxstatError';
  }
}

const FIELDS = ['ifindex', 'state', 'running', 'carrier', 'queues', 'stopped', 'stalled_ms', 'watchdog_ms', 'tx_packets', 'timeouts'] as const;
/** Added to the reply later: both or neither. */
const BQL_FIELDS = ['inflight', 'completed'] as const;
type Field = (typeof FIELDS)[number] | (typeof BQL_FIELDS)[number];
const STATES: readonly string[] = ['passive', 'restarting', 'parked'];

/** Parses a txstat payload strictly: every field once, nothing else, each value in range. */
export function parseTxstat(payload: string): TxStat {
  const bad = (why: string): TxstatError => new TxstatError(`malformed txstat reply ${JSON.stringify(payload.slice(0, 200))}: ${why}`);
  const values = new Map<Field, string>();
  for (const token of payload.split(' ')) {
    const eq = token.indexOf('=');
    const key = token.slice(0, eq);
    if (eq <= 0) throw bad(`${JSON.stringify(token)} is not key=value`);
    if (!(FIELDS as readonly string[]).includes(key) && !(BQL_FIELDS as readonly string[]).includes(key)) throw bad(`unknown field ${key}`);
    if (values.has(key as Field)) throw bad(`field ${key} appears twice`);
    values.set(key as Field, token.slice(eq + 1));
  }
  const missing = FIELDS.filter((f) => !values.has(f));
  if (missing.length > 0) throw bad(`missing ${missing.join(', ')}`);
  const bql = BQL_FIELDS.filter((f) => values.has(f));
  if (bql.length === 1) throw bad(`${bql[0]} without ${BQL_FIELDS.find((f) => f !== bql[0])}`);
  const text = (f: Field): string => values.get(f)!;
  const uint = (f: Field): number => {
    const v = text(f);
    const n = Number(v);
    if (!/^\d{1,15}$/.test(v) || !Number.isSafeInteger(n)) throw bad(`${f}=${JSON.stringify(v)} is not a decimal count`);
    return n;
  };
  const flag = (f: Field): boolean => {
    const v = text(f);
    if (v !== '0' && v !== '1') throw bad(`${f}=${JSON.stringify(v)} is not 0 or 1`);
    return v === '1';
  };
  const state = text('state');
  if (!STATES.includes(state)) throw bad(`state=${JSON.stringify(state)} is not one of ${STATES.join(', ')}`);
  const packets = text('tx_packets');
  if (!/^\d{1,20}$/.test(packets) || BigInt(packets) >= 1n << 64n) throw bad(`tx_packets=${JSON.stringify(packets)} is not a 64-bit count`);
  const stat: TxStat = {
    ifindex: uint('ifindex'),
    state: state as TxState,
    running: flag('running'),
    carrier: flag('carrier'),
    queues: uint('queues'),
    stopped: uint('stopped'),
    stalledMs: uint('stalled_ms'),
    watchdogMs: uint('watchdog_ms'),
    txPackets: BigInt(packets),
    timeouts: uint('timeouts'),
  };
  if (bql.length === 2) {
    stat.inflight = uint('inflight');
    stat.completed = uint('completed');
    if (stat.completed > 0xffffffff) throw bad(`completed=${stat.completed} is more than 32 bits`);
  }
  if (stat.ifindex === 0) throw bad('ifindex=0 is no device');
  if (stat.stopped > stat.queues) throw bad(`stopped=${stat.stopped} is more than queues=${stat.queues}`);
  return stat;
}

/**
 * Bytes in flight this many or more are no bytes in flight: the helper sums
 * each queue's num_queued - num_completed, two 32-bit counters that wrap, and
 * a helper before the fix (kmod/sh_net.c) let a completion read between the
 * two make a queue's difference negative, which came out as about 2^32. The
 * byte queue limit keeps what is really in flight far below this (a queue's
 * limit is at most 2^28 bytes).
 */
export const INFLIGHT_IMPLAUSIBLE = 2 ** 31;

/** stat's bytes in flight, 0 when it reports none or a wrapped difference (INFLIGHT_IMPLAUSIBLE). */
export function bytesInFlight(stat: Pick<TxStat, 'inflight'>): number {
  const n = stat.inflight ?? 0;
  return n < INFLIGHT_IMPLAUSIBLE ? n : 0;
}

/** The stall threshold for a device: never later than half its kernel watchdog period (0 = the driver has no watchdog). */
export function stallThreshold(configuredMs: number, watchdogMs: number): number {
  return watchdogMs > 0 ? Math.min(configuredMs, Math.floor(watchdogMs / 2)) : configuredMs;
}

/** What the detector remembers of a device between polls. */
export interface TxTrack {
  ifindex: number;
  state: TxState;
  /** stalled_ms as last seen (0 when no queue was stopped). */
  stalledMs: number;
  timeouts: number;
  /** completed as last seen, and since when bytes have been in flight with it unchanged (null: not waiting). */
  completed?: number;
  waitingSince: number | null;
  /** False after a stall was reported, until the queue makes progress or the device is restarted. */
  armed: boolean;
  /** When a poll last saw the timeout count grow (absent: never). */
  timeoutAt?: number;
}

/** One poll's outcome for one device: pure, so every sequence can be scripted in tests. */
export function stepTxTrack(
  prev: TxTrack | undefined,
  stat: TxStat,
  device: string,
  now: number,
  configuredThresholdMs: number,
): { track: TxTrack; reports: FailureReport[] } {
  const stalledMs = stat.stopped > 0 ? stat.stalledMs : 0;
  // A new ifindex or a state change means the device was re-created, restarted or parked: start over.
  const fresh = !prev || prev.ifindex !== stat.ifindex || prev.state !== stat.state;
  const completing = !fresh && stat.completed !== prev.completed;
  const inflight = bytesInFlight(stat);
  // Bytes in flight and the count unchanged since the last poll: waiting since the first such poll.
  // Without carrier or when down the device completes nothing: the wait starts again after.
  const idle = inflight === 0 || stat.completed === undefined || !stat.running || !stat.carrier;
  const waitingSince = idle || fresh || completing ? null : (prev.waitingSince ?? now);
  const track: TxTrack = {
    ifindex: stat.ifindex,
    state: stat.state,
    stalledMs,
    timeouts: stat.timeouts,
    completed: stat.completed,
    waitingSince,
    armed: fresh || prev.armed || stalledMs < prev.stalledMs || completing,
  };
  const timeoutAt = fresh ? undefined : stat.timeouts > prev.timeouts ? now : prev.timeoutAt;
  if (timeoutAt !== undefined) track.timeoutAt = timeoutAt;
  const reports: FailureReport[] = [];
  if (stat.state !== 'passive') return { track, reports };
  if (!fresh && stat.timeouts > prev.timeouts) {
    const n = stat.timeouts - prev.timeouts;
    reports.push({
      cls: 'net',
      device,
      kind: 'tx-timeout',
      detail: `the kernel's TX watchdog timed out ${n === 1 ? 'once' : `${n} times`} since the last poll (${stat.timeouts} in all)`,
      detectedAt: now,
    });
  }
  const threshold = stallThreshold(configuredThresholdMs, stat.watchdogMs);
  if (track.armed && stat.running && stat.carrier && stat.stopped > 0 && stalledMs >= threshold) {
    track.armed = false;
    reports.push({
      cls: 'net',
      device,
      kind: 'tx-stall',
      detail:
        `${stat.stopped} of ${stat.queues} TX queue(s) stopped with no transmit for ${stalledMs} ms ` +
        `(threshold ${threshold} ms, kernel watchdog ${stat.watchdogMs} ms)`,
      detectedAt: now,
      since: now - stalledMs,
    });
  }
  const waitedMs = waitingSince === null ? 0 : now - waitingSince;
  if (track.armed && stat.running && stat.carrier && waitedMs >= threshold) {
    track.armed = false;
    reports.push({
      cls: 'net',
      device,
      kind: 'tx-stall',
      detail:
        `transmit completions stopped: ${inflight} byte(s) handed to the driver, none completed for ${waitedMs} ms ` +
        `(threshold ${threshold} ms, kernel watchdog ${stat.watchdogMs} ms; lost interrupts look like this)`,
      detectedAt: now,
      since: waitingSince ?? now,
    });
  }
  return { track, reports };
}

/** What the helper's count says of a TX timeout the taps saw under a device's name (StallDetector.tapTimeout). */
export type TapTimeoutVerdict =
  | { kind: 'new' }
  | { kind: 'seen' }
  | { kind: 'not-ours'; why: string };

/** A poll that saw the count grow this recently has reported the timeout the taps saw. */
const SEEN_TIMEOUT_MS = 5000;

export interface StallDetectorOptions {
  /** Asks the helper `txstat DEVICE`; resolves with the payload after "ok ", rejects on an `err` reply with a TxstatRefusedError (see helperTxstat). */
  txstat: (device: string) => Promise<string>;
  /** The interfaces to watch, asked at every poll. */
  devices: () => Iterable<string>;
  onReport: (report: FailureReport) => void;
  logger: Logger;
  /** Default 250 ms. */
  pollMs?: number;
  /** Default 1000 ms; capped per device at half its kernel watchdog period. A function is asked at each poll (per-device configuration, reloadable). */
  thresholdMs?: number | ((device: string) => number);
  now?: () => number;
}

/** The helper answered `err ERRNAME message` to txstat (as opposed to not answering at all). */
export class TxstatRefusedError extends Error {
  constructor(
    readonly errno: string,
    message: string,
  ) {
    super(message);
    this.name = 'TxstatRefusedError';
  }
}

/**
 * `txstat` through a helper connection (helper-connection.ts). Best a
 * connection of its own: one client runs one request at a time, and a poll
 * must not wait behind a restart.
 */
export function helperTxstat(client: () => Promise<Pick<HelperClient, 'request'>>): (device: string) => Promise<string> {
  return async (device) => {
    const reply = await (await client()).request(`txstat net:${device}`);
    if (!reply.ok) throw new TxstatRefusedError(reply.errno, `shadow_helper refused txstat net:${device}: ${reply.errno} ${reply.message}`);
    return reply.payload;
  };
}

export class StallDetector {
  private readonly tracks = new Map<string, TxTrack>();
  /** The last problem logged per device, so a lasting one is logged once, not four times a second. */
  private readonly problems = new Map<string, string>();
  private timer: NodeJS.Timeout | null = null;
  private running = false;
  private inFlight: Promise<void> = Promise.resolve();
  private readonly now: () => number;

  constructor(private readonly opts: StallDetectorOptions) {
    this.now = opts.now ?? Date.now;
  }

  start(): void {
    if (this.running) return;
    this.running = true;
    const tick = (): void => {
      this.inFlight = this.pollOnce()
        .catch((err: unknown) =>
          // The device list or a report consumer failed: this poll is lost, the next one runs.
          this.opts.logger.log('err', `stall detector poll failed: ${err instanceof Error ? err.message : String(err)}`, { SHADOWD_COMPONENT: 'stall-detector' }),
        )
        .finally(() => {
          if (!this.running) return;
          this.timer = setTimeout(tick, this.opts.pollMs ?? 250);
          this.timer.unref();
        });
    };
    tick();
  }

  async stop(): Promise<void> {
    this.running = false;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
    await this.inFlight;
  }

  /** Polls every watched device once (the next poll starts only after this one ended). */
  async pollOnce(): Promise<void> {
    const devices = new Set(this.opts.devices());
    for (const name of this.tracks.keys()) if (!devices.has(name)) this.tracks.delete(name);
    for (const name of this.problems.keys()) if (!devices.has(name)) this.problems.delete(name);
    await Promise.all([...devices].map((d) => this.pollDevice(d)));
  }

  private async pollDevice(device: string): Promise<void> {
    const fields = { SHADOWD_COMPONENT: 'stall-detector', SHADOWD_CLASS: 'net', SHADOWD_DEVICE: device };
    let stat: TxStat;
    try {
      stat = parseTxstat(await this.opts.txstat(device));
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      if (err instanceof TxstatRefusedError && err.errno === 'ENODEV') {
        // Gone, or no longer a device with a driver: whatever comes back under this name starts afresh.
        this.tracks.delete(device);
        this.problem(device, 'ENODEV', 'info', `${device}: no TX status, the device is gone or has no driver (${message})`, fields);
      } else if (err instanceof TxstatError) {
        this.problem(device, message, 'warning', `${device}: ${message}`, fields);
      } else {
        this.problem(device, message, 'warning', `${device}: cannot read the TX status: ${message}`, fields);
      }
      return;
    }
    if (this.problems.delete(device)) this.opts.logger.log('info', `${device}: TX status readable again`, fields);
    const threshold = this.opts.thresholdMs;
    const { track, reports } = stepTxTrack(this.tracks.get(device), stat, device, this.now(), typeof threshold === 'function' ? threshold(device) : (threshold ?? 1000));
    this.tracks.set(device, track);
    for (const r of reports) {
      this.opts.logger.log('warning', `${device}: ${r.kind}: ${r.detail}`, fields);
      this.opts.onReport(r);
    }
  }

  /**
   * Whether a TX timeout the taps saw under this name is the watched
   * device's. The tap's record (the net_dev_xmit_timeout tracepoint) names a
   * device and its driver but not its namespace, and another namespace may
   * hold a device of the same name and driver (a VF given to a container);
   * the helper's count is the watched device's own. 'new': it counted a
   * timeout no poll has seen (taken as seen now, so the next poll does not
   * report it again); 'seen': a poll just reported it; else why it is not
   * the watched device's, or cannot be told (then the polls decide).
   */
  async tapTimeout(device: string): Promise<TapTimeoutVerdict> {
    const before = this.tracks.get(device);
    if (!before) return { kind: 'not-ours', why: `the stall detector has not read ${device}'s TX status yet; its polls count the device's own timeouts` };
    let stat: TxStat;
    try {
      stat = parseTxstat(await this.opts.txstat(device));
    } catch (err) {
      return { kind: 'not-ours', why: `${device}'s TX status could not be read (${err instanceof Error ? err.message : String(err)}); the stall detector's polls count the device's own timeouts` };
    }
    const now = this.tracks.get(device);
    if (now && now.ifindex === stat.ifindex && now.timeoutAt !== undefined && this.now() - now.timeoutAt <= SEEN_TIMEOUT_MS) return { kind: 'seen' };
    // Made anew since the last poll (another ifindex): the helper's count is the new device's own, from zero.
    const since = stat.ifindex === before.ifindex ? before.timeouts : 0;
    if (stat.timeouts <= since) {
      return { kind: 'not-ours', why: `the ${device} shadowd watches counted no TX timeout (${stat.timeouts} in all): another namespace's device of that name and driver` };
    }
    if (now && now.ifindex === stat.ifindex && stat.timeouts > now.timeouts) {
      now.timeouts = stat.timeouts;
      now.timeoutAt = this.now();
    }
    return { kind: 'new' };
  }

  private problem(device: string, key: string, priority: 'info' | 'warning', message: string, fields: Record<string, string>): void {
    if (this.problems.get(device) === key) return;
    this.problems.set(device, key);
    this.opts.logger.log(priority, message, fields);
  }
}
