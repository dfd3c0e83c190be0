// The sound class's own failure detector: a RUNNING stream, or a playback
// stream DRAINING the end of what its application wrote, whose hardware
// position (hw_ptr in /proc/asound/cardN/pcmXY/subZ/status) stops
// advancing, or whose period interrupts stop. A driver that stopped
// answering leaves its streams RUNNING with the position frozen. A card that
// lost its interrupt often still moves the position when asked (the DMA
// goes on), but its readers and writers, woken by period interrupts, stop:
// the stream's position at its last period interrupt, which the helper
// reports (period-positions.ts), is what shows it. Either way the
// application hangs in a read or write until the kernel fails it with EIO
// (the card's hold, card-hold.ts, makes that wait longer than detection and
// restart take).
//
// Cheap: the detector reads nothing unless the shadow has a stream RUNNING
// or DRAINING (from the taps and the re-reads), then one small file per
// such stream per poll (100 ms). Reading status makes the core ask the driver for its
// position (snd_pcm_update_hw_ptr), so a stream that plays advances at every
// read, interrupt or not.
//
// A draining playback stream is judged as a running one: the DMA plays on
// until the buffer is empty, its position and its period interrupts move
// all along, and the core ends the drain (the stream leaves DRAINING) when
// the position reaches the end. A fault that lands during the drain would
// otherwise leave the application in its drain until the kernel's wait
// fails it (the card's hold). A capture stream's drain stops the DMA at
// once: it is not expected to move.
//
// No false alarms: the state in the same read decides. A PAUSED, PREPARED,
// SETUP or SUSPENDED stream, or a DRAINING capture, is not expected to move; an XRUN is
// the application's (it did not keep up), not the driver's; and a card
// shadowd holds (restarting its driver) is not polled. A stall must last the
// threshold and at least two of the stream's periods (a long period moves
// the position only at its end on some hardware).
import type { FailureReport } from '../../core/failure-report.js';
import type { Logger } from '../../service/log.js';
import type { PeriodPositions } from './period-positions.js';
import type { PcmStatus } from './proc-asound.js';
import { STREAM_STALL } from './sound-declaration.js';
import { PollLoop } from '../../core/poll-loop.js';
import { handOnReport } from '../../core/report-handoff.js';
import { parseSubstreamKey } from './substream-address.js';

/** A stream the shadow believes RUNNING, or DRAINING (playback). */
export interface WatchedStream {
  card: string;
  /** pcm0p/sub0 */
  key: string;
  /** One period in ms (period_size / rate), null when not known. */
  periodMs: number | null;
}

export interface StreamStallDeps {
  /** Streams to watch now: RUNNING (or DRAINING playback, isWatchedState) in the shadow, on cards shadowd does not hold. */
  streams: () => readonly WatchedStream[];
  read: (card: string, key: string) => Promise<PcmStatus>;
  /** Each running stream's position at its last period interrupt, or null when it cannot be told. */
  periods?: (card: string) => Promise<PeriodPositions | null>;
  thresholdMs: (card: string) => number;
  onReport: (r: FailureReport) => void;
  logger: Logger;
  driverOf?: (card: string) => string | null;
  /** Default 100 ms: a stall is seen within a tenth of a second of its threshold. */
  intervalMs?: number;
  now?: () => number;
}

/**
 * A stream as last seen. The helper lists only streams set up with period
 * interrupts (a sound server's timer-scheduled stream has none), each of
 * which must raise one every period from its start.
 */
interface Track {
  hwPtr: bigint;
  progressAt: number;
  reported: boolean;
  irqPos: bigint | null;
  irqMovedAt: number;
}

/** A round longer than this delays detection noticeably: said in the debug log. */
const SLOW_ROUND_MS = 1000;

export class StreamStallDetector {
  private readonly tracks = new Map<string, Track>();
  /** The last error reading a card's interrupt positions, logged once. */
  private readonly periodsError = new Map<string, string>();
  private readonly loop: PollLoop;
  private readonly now: () => number;

  constructor(private readonly deps: StreamStallDeps) {
    this.now = deps.now ?? Date.now;
    this.loop = new PollLoop(() => this.poll(), deps.intervalMs ?? 100);
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One round over the running streams. */
  async poll(): Promise<void> {
    const streams = this.deps.streams();
    const ids = new Set(streams.map(id));
    for (const k of this.tracks.keys()) if (!ids.has(k)) this.tracks.delete(k);
    const periods = new Map<string, PeriodPositions | null>();
    const began = this.now();
    for (const c of new Set(streams.map((s) => s.card))) periods.set(c, await this.periodsOf(c));
    const periodsMs = this.now() - began;
    for (const s of streams) {
      let status: PcmStatus;
      try {
        status = await this.deps.read(s.card, s.key);
      } catch {
        // Closed or gone between the list and the read: the next round sees.
        this.tracks.delete(id(s));
        continue;
      }
      // A card whose restart began during this round is the helper's now.
      if (!this.deps.streams().some((w) => id(w) === id(s))) {
        this.tracks.delete(id(s));
        continue;
      }
      this.observe(s, status, periods.get(s.card)?.get(s.key) ?? null);
    }
    const roundMs = this.now() - began;
    if (roundMs > SLOW_ROUND_MS) {
      this.deps.logger.log('debug', `a stall detection round took ${roundMs} ms (${periodsMs} ms for the interrupt positions): stalls are seen that much later`, { SHADOWD_CLASS: 'sound', SHADOWD_COMPONENT: 'detector' });
    }
  }

  /** The card's interrupt positions; null when the helper cannot tell (then the position alone judges). */
  private async periodsOf(card: string): Promise<PeriodPositions | null> {
    try {
      const got = (await this.deps.periods?.(card)) ?? null;
      this.periodsError.delete(card);
      return got;
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (this.periodsError.get(card) !== msg) {
        this.periodsError.set(card, msg);
        this.deps.logger.log('info', `${card}: cannot read its streams' interrupt positions (${msg}); lost interrupts are told by the position alone meanwhile`, { SHADOWD_CLASS: 'sound', SHADOWD_DEVICE: card, SHADOWD_COMPONENT: 'detector' });
      }
      return null;
    }
  }

  private observe(s: WatchedStream, status: PcmStatus, irqPos: bigint | null): void {
    const k = id(s);
    const now = this.now();
    const t = this.tracks.get(k);
    if (!isWatchedState(s.key, status.state) || status.hwPtr === null) {
      this.tracks.delete(k);
      return;
    }
    if (!t) {
      this.tracks.set(k, { hwPtr: status.hwPtr, progressAt: now, reported: false, irqPos, irqMovedAt: now });
      this.deps.logger.log('debug', `${s.card}: watching ${s.key}, ${status.state} at position ${status.hwPtr}, interrupt position ${irqPos ?? 'unknown'}`, { SHADOWD_CLASS: 'sound', SHADOWD_DEVICE: s.card, SHADOWD_COMPONENT: 'detector' });
      return;
    }
    // RUNNING into DRAINING is the same stream playing on: its stall, if any, goes on counting.
    if (status.hwPtr !== t.hwPtr) {
      t.hwPtr = status.hwPtr;
      t.progressAt = now;
    }
    if (irqPos === null) {
      // Unknown this round (the helper did not answer, or lists no period interrupts for it): not judged by it.
      t.irqPos = null;
    } else if (irqPos !== t.irqPos) {
      t.irqPos = irqPos;
      t.irqMovedAt = now;
    }
    const positionStalled = now - t.progressAt;
    const irqStalled = irqPos !== null ? now - t.irqMovedAt : 0;
    if (positionStalled === 0 && irqStalled === 0) {
      t.reported = false;
      return;
    }
    const why = positionStalled >= irqStalled
      ? `its hardware position stayed at ${status.hwPtr}`
      : `its period interrupts stopped (the last at position ${t.irqPos}) while the position moved to ${status.hwPtr}`;
    this.report(s, status.state, now, why, Math.max(positionStalled, irqStalled));
  }

  /** Reports the stream, in @state as last read, once it has been stalled (@stalled ms, for the reason given) past its threshold. */
  private report(s: WatchedStream, state: string, now: number, why: string, stalled: number): void {
    const t = this.tracks.get(id(s));
    if (!t) return;
    const threshold = Math.max(this.deps.thresholdMs(s.card), 2 * (s.periodMs ?? 0));
    if (t.reported || stalled < threshold) return;
    t.reported = true;
    const detail = `${s.key} is ${state} and ${why} for ${stalled} ms (threshold ${threshold} ms)`;
    this.deps.logger.log('warning', `${s.card}: ${STREAM_STALL}: ${detail}`, { SHADOWD_CLASS: 'sound', SHADOWD_DEVICE: s.card, SHADOWD_COMPONENT: 'detector' });
    const driver = this.deps.driverOf?.(s.card) ?? undefined;
    const report: FailureReport = { cls: 'sound', device: s.card, kind: STREAM_STALL, detail, detectedAt: now, since: now - stalled, ...(driver ? { driver } : {}) };
    void handOnReport(() => this.deps.onReport(report), { logger: this.deps.logger, what: STREAM_STALL, fields: { SHADOWD_COMPONENT: 'detector' } });
  }
}

/**
 * Whether a stream in @state is expected to move: RUNNING, or DRAINING
 * playback (the end of what was written still plays). A capture stream's
 * drain has stopped its DMA.
 */
export function isWatchedState(key: string, state: string | null): state is 'RUNNING' | 'DRAINING' {
  if (state === 'RUNNING') return true;
  return state === 'DRAINING' && parseSubstreamKey(0, key)?.stream === 0;
}

function id(s: Pick<WatchedStream, 'card' | 'key'>): string {
  return `${s.card}/${s.key}`;
}
