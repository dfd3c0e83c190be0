// The sound class: one shadow for every ALSA card driver
// (sound-declaration.ts says what it is; this starts it). Built from the
// sound shadow (sound-shadow.ts), the mixer replay (mixer-replay.ts), the
// stream stall detector (stream-stall-detector.ts), the refusal of a restart
// that would hang (unkept-file-refusal.ts) and the machine as
// sound-system.ts reads and drives it.
//
// The helper keeps the card, its PCMs, its controls and the applications'
// open files across the driver's restart, and replays mixer values and
// stream parameters itself. The daemon's replay then compares the card's
// mixer with the shadow and sets back what the restart still lost.
import type { ClassContext, ClassDetectors, ClassRuntime, DeviceClass, DeviceInfo, ModuleDevice, ReplayReport } from '../../core/device-class.js';
import { handOnReport } from '../../core/report-handoff.js';
import { shadowReplay } from '../../core/shadow-replay.js';
import { shadowRuntime } from '../../core/shadow-runtime.js';
import type { ShadowEntry } from '../../core/shadow-store.js';
import type { MixerControl } from './amixer-contents.js';
import { csetArgv } from './amixer-contents.js';
import { cardName, cardNumber } from './card-name.js';
import { planMixer, planRestartMixer, type MixerStep } from './mixer-replay.js';
import { CardHold } from './card-hold.js';
import { parsePeriods } from './period-positions.js';
import { HOLD_KEY, SOUND_DECLARATION, STALL_THRESHOLD_KEY, STREAM_STALL } from './sound-declaration.js';
import { substreamKey } from './substream-address.js';
import type { FailureReport } from '../../core/failure-report.js';
import type { TapEvent } from '../../core/tap-record.js';
import { SoundShadow } from './sound-shadow.js';
import { AlsaSoundSystem, type SoundSystem } from './sound-system.js';
import { isWatchedState, StreamStallDetector, type WatchedStream } from './stream-stall-detector.js';
import { unkeptFileRefusal } from './unkept-file-refusal.js';

export function openSound(ctx: ClassContext, sys: SoundSystem): ClassRuntime {
  const fields = (device: string): Record<string, string> => ({ SHADOWD_DEVICE: device, SHADOWD_CLASS: 'sound' });
  const shadow = new SoundShadow(ctx.store, ctx.logger, { sys, held: (name) => ctx.held(name) });

  // The card's mixer as the replay read it, and the card's number (for the writes made while it was held).
  interface MixerNow {
    card: number;
    controls: MixerControl[];
  }
  const replay = shadowReplay<ShadowEntry, MixerNow, MixerStep>({
    entries: (name) => ctx.store.entries(shadow.show(name).device.id),
    changes: () => ctx.store.changes,
    sync: async () => {
      await ctx.syncTaps();
      await shadow.caughtUp();
    },
    planner: {
      read: async (name) => {
        const n = cardNumber(name);
        const mixer = await sys.readMixer(n);
        if (mixer.problems.length > 0) ctx.logger.log('warning', `${name}: mixer elements that did not read are not replayed: ${mixer.problems.join('; ')}`, fields(name));
        // What was written while shadowd held the card is what the card has now, by its writer.
        shadow.creditUnread(n, mixer.controls);
        return { card: n, controls: mixer.controls };
      },
      planAll: (entries, current) => planMixer(entries, current.controls),
      planRestart: (entries, current, mark) => planRestartMixer(entries, current.controls, mark, shadow.unreadKeys(current.card)),
      run: async (name, steps) => {
        const n = cardNumber(name);
        const report: ReplayReport = { device: name, steps: [] };
        for (const s of steps) {
          let argv: string[] = [];
          try {
            argv = csetArgv(n, s.numid, s.values);
            await sys.setControl(n, s.numid, s.values);
            report.steps.push({ key: s.key, argv, ok: true });
          } catch (err) {
            report.steps.push({ key: s.key, argv, ok: false, error: messageOf(err) });
          }
        }
        // The taps' events of the replay's own writes (the card is still held: noted as unread) are not an
        // administrator's: dropped. Then the card as it is now, values and streams, credited to the replay's
        // snapshot, and what others wrote meanwhile to its writer.
        if (steps.length > 0) {
          try {
            await ctx.syncTaps();
            await shadow.caughtUp();
          } catch (err) {
            ctx.logger.log('warning', `${name}: the shadow could not catch up with the taps after the replay (${messageOf(err)}): its own writes may be credited to amixer`, fields(name));
          }
          shadow.forgetUnread(n, steps.map((s) => s.numid));
        }
        await shadow.readCard(n);
        return report;
      },
    },
    logger: ctx.logger,
    fields,
  });

  const runningStreams = (): WatchedStream[] => {
    const out: WatchedStream[] = [];
    for (const card of shadow.allCards()) {
      const name = cardName(card.identity.number);
      if (ctx.held(name)) continue;
      for (const [key, s] of card.streams) {
        if (!isWatchedState(key, s.state)) continue;
        const hw = s.hw_params;
        out.push({ card: name, key, periodMs: hw && hw.rate > 0 ? (hw.period_size * 1000) / hw.rate : null });
      }
    }
    return out;
  };

  return {
    ...shadowRuntime(shadow),
    lookup(name): DeviceInfo | null {
      const d = shadow.recordOf(name);
      return d?.present ? { name: d.name, driver: d.driver, bus: d.bus } : null;
    },
    replay,
    async refuseRestart(name) {
      const n = cardNumber(name);
      return unkeptFileRefusal(n, shadow.card(n)?.identity.driver ?? null, await sys.soundFileHolders());
    },
    afterRestart(name, reply) {
      const before = cardNumber(name);
      const now = reply.fields['card'];
      if (now !== undefined && now !== before) {
        return [`the card came back as card${now}, not ${name}: applications and configuration that name card ${before} (hw:${before}) lose it`];
      }
      return [];
    },
    async moduleDevices(): Promise<ModuleDevice[]> {
      const out: ModuleDevice[] = [];
      for (const n of await sys.listCards()) {
        try {
          const id = await sys.readIdentity(n);
          out.push({ name: cardName(n), driver: id.driver, module: id.module });
        } catch {
          // Gone since the list: nothing to blame on it.
        }
      }
      return out;
    },
    startDetectors(): ClassDetectors {
      const driverOf = (card: string): string | null => shadow.card(cardNumber(card))?.identity.driver ?? null;
      const hold = new CardHold({
        command: async (line) => {
          const r = await (await ctx.helper()).request(line);
          if (!r.ok) throw new Error(`${r.errno} ${r.message}`);
          return r.payload;
        },
        holdMs: (card) => Number(ctx.setting(card, driverOf(card), HOLD_KEY)),
        logger: ctx.logger,
      });
      const holding = sys.listCards().then((cards) => hold.holdAll(cards.map(cardName)), (err: unknown) => {
        ctx.logger.log('warning', `cannot list the sound cards to hold them: ${messageOf(err)}`, { SHADOWD_CLASS: 'sound' });
      });
      const det = new StreamStallDetector({
        streams: runningStreams,
        read: (card, key) => sys.readStatus(cardNumber(card), key),
        periods: async (card) => {
          const r = await (await ctx.pollHelper()).request(`periods sound:${card}`);
          if (!r.ok) throw new Error(`${r.errno} ${r.message}`);
          return parsePeriods(r.payload, card);
        },
        thresholdMs: (card) => Number(ctx.setting(card, shadow.card(cardNumber(card))?.identity.driver ?? null, STALL_THRESHOLD_KEY)),
        onReport: ctx.report,
        logger: ctx.logger,
        driverOf,
      });
      det.start();
      return {
        onTapEvent(e) {
          // A card its driver registered (a new card, or one rebound): held too.
          if (e.call === 'card_register' && e.nums['ret'] === 0 && typeof e.nums['card'] === 'number') void hold.hold(cardName(e.nums['card']));
          const failed = drainFailure(e, Date.now(), driverOf);
          if (failed && !ctx.held(failed.device)) {
            ctx.logger.log('warning', `${failed.device}: ${STREAM_STALL}: ${failed.detail}`, { ...fields(failed.device), SHADOWD_COMPONENT: 'detector' });
            // Called from the taps' output reader: a failing consumer must not take the taps down.
            void handOnReport(() => ctx.report(failed), { logger: ctx.logger, what: STREAM_STALL, fields: { SHADOWD_COMPONENT: 'taps' } });
          }
        },
        stop: async () => {
          await holding;
          await det.stop();
        },
      };
    },
  };
}

/**
 * A drain the kernel failed (the taps' pcm_drain_failed): it waited 1.1
 * buffer lengths for a period interrupt of the draining stream and gave up
 * ("DMA or IRQ trouble?"). That is a stalled stream, and the only sign of
 * one that stalls in a player's drain: the kernel gives up sooner than the
 * stall detector's threshold, and the player may ignore the error. Null for
 * any other event.
 */
export function drainFailure(e: TapEvent, now: number, driverOf: (card: string) => string | null): FailureReport | null {
  if (e.call !== 'pcm_drain_failed') return null;
  const { card, dev, stream, sub } = e.nums;
  if (typeof card !== 'number' || typeof dev !== 'number' || typeof sub !== 'number' || (stream !== 0 && stream !== 1)) return null;
  const device = cardName(card);
  const key = substreamKey({ dev, stream, sub });
  const driver = driverOf(device);
  return {
    cls: 'sound',
    device,
    kind: STREAM_STALL,
    detail: `${key} stopped advancing in its drain: the kernel gave up waiting for its period interrupt and failed the drain with EIO (DMA or IRQ trouble)`,
    detectedAt: now,
    ...(driver ? { driver } : {}),
  };
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** The class, given the machine it runs on (a fake one in unit tests). */
export function soundClassOn(sys: () => SoundSystem): DeviceClass {
  return { ...SOUND_DECLARATION, open: (ctx) => openSound(ctx, sys()) };
}

export const soundClass: DeviceClass = soundClassOn(() => new AlsaSoundSystem());
