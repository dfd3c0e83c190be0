// Where a PCM substream lives: card, PCM device, direction and substream
// number, the key of everything the sound class keeps about a stream (never
// the thread that made a call: a stream is opened by one task and stopped
// from an interrupt). Spelled as ALSA's /proc/asound does: pcm0p/sub0 is
// playback substream 0 of PCM device 0, whose files are under
// /proc/asound/cardN/pcm0p/sub0/.

export interface SubstreamAddress {
  card: number;
  dev: number;
  /** 0 playback, 1 capture (SNDRV_PCM_STREAM_*). */
  stream: 0 | 1;
  sub: number;
}

const SUBSTREAM_KEY = /^pcm([0-9]{1,3})([pc])\/sub([0-9]{1,3})$/;

/** pcm0p/sub0: the shadow's key of the substream, and its folder under /proc/asound/cardN/. */
export function substreamKey(a: Omit<SubstreamAddress, 'card'>): string {
  return `pcm${a.dev}${a.stream === 0 ? 'p' : 'c'}/sub${a.sub}`;
}

/** The address of a substream key of card `card`, or null for anything else. */
export function parseSubstreamKey(card: number, key: string): SubstreamAddress | null {
  const m = SUBSTREAM_KEY.exec(key);
  if (!m) return null;
  return { card, dev: Number(m[1]), stream: m[2] === 'p' ? 0 : 1, sub: Number(m[3]) };
}
