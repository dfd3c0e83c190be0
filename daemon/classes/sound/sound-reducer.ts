// What each sound class tap event (bpf/sound-class.bt) means for the shadow.
// PCM events change one substream, addressed by card, device, direction
// and substream number (never by the thread that made the call); control
// events name the element a process wrote or the driver changed, whose
// value the shadow re-reads; card events say a card came or is going. A
// failed call changes nothing and is dropped here.
import type { TapEvent } from '../../core/tap-record.js';
import type { HwParams, SwParams } from './proc-asound.js';
import { frames } from './proc-asound.js';
import { accessName, formatName, pcmStateName, tstampModeName, type PcmState } from './pcm-names.js';
import type { SubstreamAddress } from './substream-address.js';

export type PcmChange =
  | { op: 'open' }
  | { op: 'close' }
  /** params null: the call succeeded but what it printed cannot be read as one setting; the shadow re-reads the substream. */
  | { op: 'hw_params'; params: HwParams | null }
  | { op: 'hw_free' }
  | { op: 'sw_params'; params: SwParams }
  | { op: 'state'; state: PcmState }
  /** Drain asked: a RUNNING stream becomes DRAINING (the shadow knows whether it ran). */
  | { op: 'drain' };

export type SoundAction =
  | { kind: 'pcm'; at: SubstreamAddress; change: PcmChange }
  /** set: a process wrote the element; changed: its value changed (after a write, or by the driver). */
  | { kind: 'control'; card: number; numid: number; how: 'set' | 'changed' }
  | { kind: 'card'; card: number; op: 'registered' | 'disconnected' };

export class SoundEventError extends Error {}

function num(e: TapEvent, key: string): number {
  const v = e.nums[key];
  if (v === undefined) throw new SoundEventError(`${e.call}: no ${key}= field`);
  return v;
}

function mask(e: TapEvent, key: string): bigint {
  const v = e.masks[key];
  if (v === undefined) throw new SoundEventError(`${e.call}: no ${key}=0x field`);
  return v;
}

function card(e: TapEvent): number {
  const n = num(e, 'card');
  if (!Number.isInteger(n) || n < 0 || n > 31) throw new SoundEventError(`${e.call}: card=${n} is no card number`);
  return n;
}

function address(e: TapEvent): SubstreamAddress {
  const stream = num(e, 'stream');
  if (stream !== 0 && stream !== 1) throw new SoundEventError(`${e.call}: stream=${stream} is neither playback (0) nor capture (1)`);
  const dev = num(e, 'dev');
  const sub = num(e, 'sub');
  if (dev < 0 || sub < 0) throw new SoundEventError(`${e.call}: dev=${dev} sub=${sub}`);
  return { card: card(e), dev, stream, sub };
}

/** The index of the one bit set in a mask; null unless exactly one is. */
export function singleBit(m: bigint): number | null {
  if (m <= 0n || (m & (m - 1n)) !== 0n) return null;
  let i = 0;
  while (m > 1n) {
    m >>= 1n;
    i++;
  }
  return i;
}

const ok = (e: TapEvent): boolean => e.nums['ret'] === 0;

function stateOf(e: TapEvent): PcmState {
  const state = pcmStateName(num(e, 'state'));
  if (state === null) throw new SoundEventError(`${e.call}: state=${num(e, 'state')} is no PCM state`);
  return state;
}

function pcm(e: TapEvent, change: PcmChange): SoundAction[] {
  return [{ kind: 'pcm', at: address(e), change }];
}

const REDUCERS = new Map<string, (e: TapEvent) => SoundAction[]>([
  ['pcm_open', (e) => (ok(e) ? pcm(e, { op: 'open' }) : [])],
  ['pcm_close', (e) => pcm(e, { op: 'close' })],
  [
    'pcm_hw_params',
    (e) => {
      if (!ok(e)) return [];
      const access = singleBit(mask(e, 'access'));
      const format = singleBit((mask(e, 'format1') << 32n) | mask(e, 'format0'));
      // A successful hw_params leaves one access and one format chosen; anything else is read back from /proc.
      if (access === null || format === null) return pcm(e, { op: 'hw_params', params: null });
      return pcm(e, {
        op: 'hw_params',
        params: {
          access: accessName(access),
          format: formatName(format),
          channels: num(e, 'channels'),
          rate: num(e, 'rate'),
          period_size: num(e, 'period_size'),
          periods: num(e, 'periods'),
          buffer_size: num(e, 'buffer_size'),
        },
      });
    },
  ],
  ['pcm_hw_free', (e) => pcm(e, { op: 'hw_free' })],
  [
    'pcm_sw_params',
    (e) =>
      ok(e)
        ? pcm(e, {
            op: 'sw_params',
            params: {
              tstamp_mode: tstampModeName(num(e, 'tstamp_mode')),
              avail_min: frames(mask(e, 'avail_min')),
              start_threshold: frames(mask(e, 'start_threshold')),
              stop_threshold: frames(mask(e, 'stop_threshold')),
              silence_threshold: frames(mask(e, 'silence_threshold')),
              silence_size: frames(mask(e, 'silence_size')),
            },
          })
        : [],
  ],
  // The core's post-action functions run only when the action succeeded: these carry no ret=.
  ['pcm_prepare', (e) => pcm(e, { op: 'state', state: 'PREPARED' })],
  ['pcm_start', (e) => pcm(e, { op: 'state', state: stateOf(e) })],
  ['pcm_stop', (e) => pcm(e, { op: 'state', state: stateOf(e) })],
  ['pcm_drain', (e) => pcm(e, { op: 'drain' })],
  ['pcm_pause', (e) => pcm(e, { op: 'state', state: num(e, 'push') !== 0 ? 'PAUSED' : 'RUNNING' })],
  ['ctl_write', (e) => (ok(e) && num(e, 'numid') > 0 ? [{ kind: 'control', card: card(e), numid: num(e, 'numid'), how: 'set' }] : [])],
  ['ctl_notify', (e) => (num(e, 'numid') > 0 ? [{ kind: 'control', card: card(e), numid: num(e, 'numid'), how: 'changed' }] : [])],
  ['card_register', (e) => (ok(e) ? [{ kind: 'card', card: card(e), op: 'registered' }] : [])],
  ['card_disconnect', (e) => [{ kind: 'card', card: card(e), op: 'disconnected' }]],
]);

/** Every event the taps print that the shadow takes something from. */
export const REDUCED_EVENTS: ReadonlySet<string> = new Set(REDUCERS.keys());
/** Events the taps print that the shadow leaves, with why. */
export const NOT_REDUCED: ReadonlyMap<string, { kind: 'ignored' | 'elsewhere'; why: string }> = new Map([
  ['info_write', { kind: 'elsewhere', why: 'the sync marker (sound-declaration.ts): the taps runner takes it; nothing changed' }],
  ['pcm_drain_failed', { kind: 'elsewhere', why: 'a failure, reported by the class (sound-class.ts, drainFailure); the stream\'s stop into SETUP comes as its own pcm_stop' }],
]);

/** What an event means; throws a SoundEventError, naming the event, when its fields are not what the taps print. */
export function reduceSoundEvent(e: TapEvent): SoundAction[] {
  return REDUCERS.get(e.call)?.(e) ?? [];
}
