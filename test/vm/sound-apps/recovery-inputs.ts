// The sources of the sound recovery scenario with shadowd
// (guest/sound-recovery-scenario.ts), made on the host in a fresh folder
// under the host's temp dir (the guest sees it read-only at the same path):
// one source per run (card, application, fault), each unlike every other,
// so that one run's audio in a card's recording can never be mistaken for
// another's:
//   - the player's (aplay) and the game's a rendering of the test signal
//     with a seed of its own, at 44.1 kHz stereo S16 (QEMU's ES1370 plays
//     garbage at 48 kHz), and the mmap game compiled when a run is its;
//   - the speech synthesizer's a paragraph of its own in a voice and pitch
//     of its own, and, as its source, espeak-ng's rendering of it to a WAV
//     file (the same espeak-ng the guest runs: the host's root filesystem);
//   - the recorder (arecord) none: its card records a silent backend.
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { renderTestSignal } from '../audio/test-signal.js';
import { encodeWav } from '../audio/wav.js';
import { compileMmapGame } from './inputs.js';

export const RECOVERY_SOURCE_SECONDS = 8;
export const RECOVERY_RATE = 44100;

/** What a run plays: a WAV file (a player), or a paragraph to speak (espeak-ng, its args and text). */
export type RecoverySource = { kind: 'wav'; wav: string } | { kind: 'speech'; args: string[]; text: string; wav: string };

export interface RecoveryInputs {
  dir: string;
  /** By run key (recoveryRunKey); none for a recorder's run (arecord-hw: it records, its card on a silent backend). */
  sources: Record<string, RecoverySource>;
  /** The compiled mmap game, when a run is the game's. */
  mmapGame?: string;
}

/** A run's key: the card's driver, the application and the fault ('manual' for `shadowctl recover`). */
export function recoveryRunKey(driver: string, app: string, fault: string): string {
  return `${driver}/${app}/${fault}`;
}

/** Paragraphs unlike each other (no sentence in common), one per speech run. */
const PARAGRAPHS = [
  'A lighthouse keeper counted seven ships before dawn. Each carried lanterns of a different colour, and none of them stopped at the harbour.',
  'Grandmother baked bread on Thursdays. The kitchen smelled of rye and caraway, and the children waited by the window for the first warm slice.',
  'The orchestra tuned while snow fell outside the concert hall. A violinist dropped her bow, laughed quietly, and began the opening bars again.',
  'Somewhere in the desert a fox dug under a stone. It found a beetle, a coin from an old empire, and a cool place to sleep through the afternoon.',
  'Engineers measured the bridge at midnight when the traffic was thin. The steel cables hummed in the wind like the strings of an enormous harp.',
  'My neighbour repairs bicycles in his garage. He whistles old jazz tunes, oils every chain twice, and never charges for a puncture.',
  'The museum opened a room of clocks from every century. Some ticked loudly, some were silent, and one chimed thirteen times at noon.',
  'Rain drummed on the tin roof of the mountain hut. Two climbers played cards by candlelight and argued about the route for tomorrow morning.',
];
/** Voices and pitches, one per speech run, so that two runs on one card never sound alike. */
const VOICES: string[][] = [
  ['-v', 'en', '-s', '165', '-p', '35'],
  ['-v', 'en+f3', '-s', '160', '-p', '70'],
  ['-v', 'en+m3', '-s', '170', '-p', '50'],
  ['-v', 'en+f2', '-s', '155', '-p', '60'],
  ['-v', 'en+m7', '-s', '175', '-p', '30'],
  ['-v', 'en+f4', '-s', '165', '-p', '80'],
  ['-v', 'en+m2', '-s', '160', '-p', '45'],
  ['-v', 'en+f1', '-s', '170', '-p', '55'],
];

/** The sources for every run key given; apps are 'aplay-hw' and 'game' (a WAV each), 'espeak' (speech) or 'arecord-hw' (none). */
export async function makeRecoveryInputs(keys: readonly string[]): Promise<RecoveryInputs> {
  const dir = await mkdtemp(join(tmpdir(), 'shadowd-sound-recovery-'));
  const sources: Record<string, RecoverySource> = {};
  let seed = 11;
  let speech = 0;
  for (const key of keys) {
    const app = key.split('/')[1];
    const file = join(dir, `${key.replace(/\//g, '-')}.wav`);
    if (app === 'espeak') {
      if (speech >= PARAGRAPHS.length) throw new Error(`more speech runs than paragraphs (${PARAGRAPHS.length})`);
      const args = VOICES[speech]!;
      const text = PARAGRAPHS[speech]!;
      speech++;
      await execa('espeak-ng', [...args, '-w', file, text]);
      sources[key] = { kind: 'speech', args, text, wav: file };
    } else if (app === 'arecord-hw') {
      continue;
    } else if (app === 'aplay-hw' || app === 'game') {
      const x = renderTestSignal({ seconds: RECOVERY_SOURCE_SECONDS, rate: RECOVERY_RATE, seed: seed++, amplitude: 0.5, padSeconds: 0.05 });
      await writeFile(file, encodeWav([x, x], RECOVERY_RATE));
      sources[key] = { kind: 'wav', wav: file };
    } else {
      throw new Error(`no source for the application of ${key}`);
    }
  }
  const inputs: RecoveryInputs = { dir, sources };
  if (keys.some((k) => k.split('/')[1] === 'game')) inputs.mmapGame = await compileMmapGame(dir);
  await writeFile(join(dir, 'inputs.json'), JSON.stringify(inputs, null, 2));
  return inputs;
}

/** Reads inputs.json of a folder made by makeRecoveryInputs (in the guest). */
export function loadRecoveryInputs(dir: string): RecoveryInputs {
  return JSON.parse(readFileSync(join(dir, 'inputs.json'), 'utf8')) as RecoveryInputs;
}
