// The sound class's applications as the guest scripts run them, and the
// cards they run on: a player (aplay, on the card's hw: device and through
// Debian's default device, dmix), the mp3 player (mpg123), the speech
// synthesizer (espeak-ng), the recorder (arecord). Shared by the helper's
// test (sound-helper.ts) and the end-to-end scenario with shadowd
// (sound-recovery-scenario.ts).
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';

export interface Card {
  name: string;
  number: number;
  driver: string;
  bus: string;
}

/** An application on one card: its argv and environment, and the stream it runs (status file under /proc/asound/cardN). */
export interface SoundApp {
  argv(card: Card, wav: string, seconds: number): string[];
  env?(card: Card): Record<string, string>;
  stream: 'pcm0p' | 'pcm0c';
}

const SPEECH = 'The shadow driver watches the calls between the kernel and the driver. When the driver fails, the shadow stands in for it, restarts it, and puts back what the applications had set. The music keeps playing, and the speech goes on to the end of the paragraph.';

export const SOUND_APPS: Record<string, SoundApp> = {
  'aplay-hw': { argv: (c, wav) => ['aplay', '-q', '-D', `hw:${c.number},0`, wav], stream: 'pcm0p' },
  // Debian's default device for these cards: plug over dmix.
  'aplay-dmix': { argv: (c, wav) => ['aplay', '-q', '-D', `default:CARD=${c.number}`, wav], stream: 'pcm0p' },
  'mpg123-hw': { argv: (c, wav) => ['mpg123', '-q', '-a', `hw:${c.number},0`, wav.replace(/\.wav$/, '.mp3')], stream: 'pcm0p' },
  // espeak-ng speaks to the default device; ALSA_CARD picks the card.
  espeak: { argv: () => ['espeak-ng', '-s', '120', SPEECH], env: (c) => ({ ALSA_CARD: String(c.number) }), stream: 'pcm0p' },
  'arecord-hw': { argv: (c, _wav, seconds) => ['arecord', '-q', '-D', `hw:${c.number},0`, '-f', 'S16_LE', '-c', '2', '-r', '48000', '-d', String(seconds), '/tmp/sound-rec.wav'], stream: 'pcm0c' },
};

export function checkAppNames(names: readonly string[]): void {
  for (const a of names) if (!SOUND_APPS[a]) throw new Error(`unknown app ${a} (${Object.keys(SOUND_APPS).join(', ')})`);
}

export function soundCards(): Card[] {
  const out: Card[] = [];
  for (const name of readdirSync('/sys/class/sound')) {
    const m = /^card(\d+)$/.exec(name);
    if (!m) continue;
    const dev = join('/sys/class/sound', name, 'device');
    out.push({ name, number: Number(m[1]), driver: basename(readlinkSync(join(dev, 'driver'))), bus: basename(readlinkSync(dev)) });
  }
  return out.sort((a, b) => a.number - b.number);
}

/** The stream's hw_ptr, or null when it is not running. */
export function hwPtr(card: Card, stream: string): number | null {
  const f = `/proc/asound/card${card.number}/${stream}/sub0/status`;
  const text = existsSync(f) ? readFileSync(f, 'utf8') : '';
  if (!/state: RUNNING/.test(text)) return null;
  const m = /hw_ptr\s*:\s*(\d+)/.exec(text);
  return m ? Number(m[1]) : null;
}

export async function waitRunning(card: Card, stream: string, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (hwPtr(card, stream) !== null) return true;
    await sleep(50);
  }
  return false;
}

/** A sweep of @seconds (unambiguous to align against what a card played) at @path, and its mp3 beside it. */
export async function soundSource(path: string, seconds: number): Promise<void> {
  await execa('sox', ['-n', '-r', '48000', '-c', '2', '-b', '16', path, 'synth', String(seconds), 'sine', '200-2000', 'vol', '0.5']);
  await execa('lame', ['--quiet', path, path.replace(/\.wav$/, '.mp3')]);
}

export async function loadSoundDrivers(): Promise<void> {
  for (const m of ['snd-ens1370', 'snd-intel8x0', 'snd-hda-intel']) await execa('modprobe', [m], { reject: false });
  await sleep(1500);
}

/**
 * Sets the card's playback volumes to 100 % and unmutes them, as a real
 * system's `alsactl restore` would. Needed: the drivers load with Master
 * (and AC97's PCM) at 0 and muted, which QEMU's AC97 and HDA models ignore
 * until the first mixer write, which then silences the card (measured: the
 * game's volume change made the rest of its stream digital silence).
 */
export async function initMixer(alsa: number): Promise<void> {
  const { stdout } = await execa('amixer', ['-c', String(alsa), 'scontrols']);
  for (const name of ['Master', 'PCM', 'Front', 'Headphone', 'Speaker']) {
    if (stdout.includes(`'${name}',0`)) await execa('amixer', ['-c', String(alsa), '-q', 'sset', name, '100%', 'unmute']);
  }
}

/** The mixer element the game turns down: PCM where the card has one, else Master. */
export async function pickMixerElement(alsa: number): Promise<string> {
  const { stdout } = await execa('amixer', ['-c', String(alsa), 'scontrols']);
  for (const name of ['PCM', 'Master']) if (stdout.includes(`'${name}',0`)) return name;
  throw new Error(`card ${alsa} has no PCM or Master mixer element:\n${stdout}`);
}

/**
 * The raw playback volume of the element's first channel (amixer sget),
 * null when amixer cannot read it. A playback volume reads "Front Left:
 * Playback 24 [77%] ..."; a volume common to playback and capture (ES1370's
 * PCM) "Front Left: 24 [77%] ... Playback [on] ...".
 */
export async function mixerVolume(alsa: number, element: string): Promise<number | null> {
  const r = await execa('amixer', ['-c', String(alsa), 'sget', element], { reject: false });
  const m = r.exitCode === 0 ? /^\s*[A-Za-z ]+:\s*(?:Playback )?(\d+) \[/m.exec(r.stdout) : null;
  return m ? Number(m[1]) : null;
}
