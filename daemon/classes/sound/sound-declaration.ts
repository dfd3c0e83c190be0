// What the sound class is, without starting anything: names, taps, faults,
// restart steps, failure kinds and configuration keys that the configuration
// parser, the control and helper protocols and the CLI read
// (core/device-class.ts, ClassDeclaration). Its runtime is sound-class.ts.
//
// How a card survives its driver: the helper keeps the card, its PCMs, its
// controls and the applications' open files across the driver's restart and
// replays mixer values and stream parameters itself; the daemon's shadow
// (sound-shadow.ts) is what it checks the card against afterwards
// (docs/sound.md).
import { fileURLToPath } from 'node:url';
import type { ClassDeclaration, SyncMarker } from '../../core/device-class.js';
import { integerSetting } from '../../core/setting-values.js';
import type { TapEvent } from '../../core/tap-record.js';
import { CARD_NAME_RULE } from './card-name.js';
import { HELD_CALL_KINDS, HELD_CALL_RULES } from './prepare-held-log.js';

/**
 * The helper's sound faults (`inject sound:cardN FAULT`): lost-irq silences
 * the card's interrupt (running streams stop advancing), fail-stop fails
 * every PCM entry point of the card (and streams stop advancing),
 * fail-prepare makes the driver's prepare fail with -EIO.
 */
export const SOUND_FAULTS = ['lost-irq', 'fail-stop', 'fail-prepare'] as const;

/** The helper's replay steps after a card's restart, in its order: the mixer values, each open stream's parameters, the opens held meanwhile. */
export const SOUND_RESTART_STEPS = ['mixer', 'streams', 'open'] as const;

/**
 * Failures only the sound class reports: a RUNNING stream whose hardware
 * position or whose period interrupts stopped (stream-stall-detector.ts),
 * a prepare (prepare-failed) or a hw_params (hw-params-failed) the
 * driver failed, which the helper holds for a restart, and a start
 * (start-failed) it failed, which the helper takes as done, the stream
 * waiting for the restart (prepare-held-log.ts).
 */
export const STREAM_STALL = 'stream-stall';
export const SOUND_FAILURE_KINDS = [STREAM_STALL, ...HELD_CALL_KINDS] as const;

/** Every ev= that bpf/sound-class.bt prints (test/unit/classes/tap-contract.test.ts holds the two to each other). */
export const SOUND_TAP_EVENTS = [
  'pcm_open',
  'pcm_close',
  'pcm_hw_params',
  'pcm_sw_params',
  'pcm_prepare',
  'pcm_start',
  'pcm_stop',
  'pcm_drain',
  'pcm_drain_failed',
  'pcm_pause',
  'pcm_hw_free',
  'ctl_write',
  'ctl_notify',
  'card_register',
  'card_disconnect',
  'info_write',
] as const;

/**
 * A write the sound core refuses: /proc/asound/version has no write handler,
 * so one byte written to it fails with -EIO (the taps print it: ev=info_write
 * attr=version parent=asound ret=-5) and nothing changes. It needs no card:
 * the file is there whenever the snd module is loaded, which the taps need
 * anyway.
 */
export const SYNC_MARKER_FILE = '/proc/asound/version';
export const SOUND_SYNC_MARKER: SyncMarker = {
  argv: ['dd', 'if=/dev/zero', `of=${SYNC_MARKER_FILE}`, 'bs=1', 'count=1', 'conv=notrunc', 'status=none'],
  isMarker: (e: TapEvent) => e.call === 'info_write' && e.strs['attr'] === 'version' && e.strs['parent'] === 'asound',
};

export const STALL_THRESHOLD_KEY = 'StallThresholdMs';
export const HOLD_KEY = 'HoldMs';

export const SOUND_DECLARATION: ClassDeclaration = {
  id: 'sound',
  title: 'sound',
  noun: 'sound card',
  names: CARD_NAME_RULE,
  // dist/daemon/classes/sound/ → the checkout's bpf/.
  tapProgram: fileURLToPath(new URL('../../../../bpf/sound-class.bt', import.meta.url)),
  // The ALSA core the taps probe; a machine with no sound card may not have loaded it.
  tapModules: ['snd', 'snd-pcm'],
  tapEvents: SOUND_TAP_EVENTS,
  syncMarker: SOUND_SYNC_MARKER,
  faults: SOUND_FAULTS,
  restartSteps: SOUND_RESTART_STEPS,
  restartFields: ['card'],
  // card0 is the first card.
  restartFieldsFromZero: ['card'],
  failureKinds: SOUND_FAILURE_KINDS,
  // A process with a substream open: what the helper keeps open across a restart.
  holderKinds: ['pcm'],
  settings: [
    {
      key: STALL_THRESHOLD_KEY,
      parse: integerSetting(200, 600_000),
      default: 500,
      doc: 'a RUNNING stream whose hardware position, or whose card\'s interrupt count, has not moved for this long (and for at least two of its periods) counts as a failure',
    },
    {
      key: HOLD_KEY,
      parse: integerSetting(0, 60_000),
      default: 5000,
      doc: 'how long a stalled stream\'s reader or writer, or a prepare or hw_params the driver failed, waits for the card\'s restart before the kernel fails the call (the kernel\'s own wait is about half a second); 0 leaves the kernel\'s',
    },
  ],
  attrs: ['card', 'id'],
  // The helper's guard holding a failed prepare or hw_params. The sound core
  // itself prints nothing about a failing card worth a rule: an oops, BUG or
  // WARN is blamed through moduleDevices().
  kernelLogRules: HELD_CALL_RULES,
  parkedAs: 'its streams stopped and their calls failing, so applications get an error instead of waiting',
};
