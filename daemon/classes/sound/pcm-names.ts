// ALSA's names for the numbers the taps print (include/uapi/sound/asound.h):
// PCM states, access types, sample formats, timestamp modes. The shadow keeps
// names, as /proc/asound prints them, so that what the taps say and what a
// re-read finds compare equal. A number with no name here is kept as
// `#N`, never dropped.

export const PCM_STATES = ['OPEN', 'SETUP', 'PREPARED', 'RUNNING', 'XRUN', 'DRAINING', 'PAUSED', 'SUSPENDED', 'DISCONNECTED'] as const;
export type PcmState = (typeof PCM_STATES)[number];

const ACCESS = ['MMAP_INTERLEAVED', 'MMAP_NONINTERLEAVED', 'MMAP_COMPLEX', 'RW_INTERLEAVED', 'RW_NONINTERLEAVED'];

const FORMATS: Record<number, string> = {
  0: 'S8', 1: 'U8', 2: 'S16_LE', 3: 'S16_BE', 4: 'U16_LE', 5: 'U16_BE', 6: 'S24_LE', 7: 'S24_BE', 8: 'U24_LE', 9: 'U24_BE',
  10: 'S32_LE', 11: 'S32_BE', 12: 'U32_LE', 13: 'U32_BE', 14: 'FLOAT_LE', 15: 'FLOAT_BE', 16: 'FLOAT64_LE', 17: 'FLOAT64_BE',
  18: 'IEC958_SUBFRAME_LE', 19: 'IEC958_SUBFRAME_BE', 20: 'MU_LAW', 21: 'A_LAW', 22: 'IMA_ADPCM', 23: 'MPEG', 24: 'GSM',
  25: 'S20_LE', 26: 'S20_BE', 27: 'U20_LE', 28: 'U20_BE', 31: 'SPECIAL', 32: 'S24_3LE', 33: 'S24_3BE', 34: 'U24_3LE',
  35: 'U24_3BE', 36: 'S20_3LE', 37: 'S20_3BE', 38: 'U20_3LE', 39: 'U20_3BE', 40: 'S18_3LE', 41: 'S18_3BE', 42: 'U18_3LE',
  43: 'U18_3BE', 44: 'G723_24', 45: 'G723_24_1B', 46: 'G723_40', 47: 'G723_40_1B', 48: 'DSD_U8', 49: 'DSD_U16_LE',
  50: 'DSD_U32_LE', 51: 'DSD_U16_BE', 52: 'DSD_U32_BE',
};

const TSTAMP_MODES = ['NONE', 'ENABLE'];

function named(names: ArrayLike<string> | Record<number, string>, n: number): string {
  return (names as Record<number, string | undefined>)[n] ?? `#${n}`;
}

/** The state's name; null for a number ALSA does not have. */
export function pcmStateName(n: number): PcmState | null {
  return Number.isInteger(n) && n >= 0 && n < PCM_STATES.length ? PCM_STATES[n]! : null;
}

export function isPcmState(s: string): s is PcmState {
  return (PCM_STATES as readonly string[]).includes(s);
}

export const accessName = (n: number): string => named(ACCESS, n);
export const formatName = (n: number): string => named(FORMATS, n);
export const tstampModeName = (n: number): string => named(TSTAMP_MODES, n);
