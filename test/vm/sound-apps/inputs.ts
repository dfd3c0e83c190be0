// The sound applications' inputs, made on the host in a fresh folder under
// the host's temp dir (the guest sees it read-only at the same path):
//   - one source per application and run (no fault, control), each a
//     different rendering of the test signal (seeds 1..6), so that several
//     applications' audio on one card's recording never match each other's
//     source;
//   - the player's mp3 (lame) and, as its source, what mpg123 decodes from it;
//   - the speech synthesizer's text and, as its source, espeak-ng's own
//     rendering of it to a WAV file;
//   - the mmap game, compiled with cc against alsa-lib.
import { readFileSync } from 'node:fs';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { repoPath } from '../rig/repo-path.js';
import { renderTestSignal } from '../audio/test-signal.js';
import { encodeWav } from '../audio/wav.js';

export const SOUND_SOURCE_SECONDS = 8;
export const SOUND_RATE = 44100;
/** What espeak-ng says, per run (each run its own source, so that two runs on one card's recording never match each other). */
export const SPEECH_TEXT: Record<SoundRun, string> = {
  nofault: 'The quick brown fox jumps over the lazy dog. A shadow driver keeps the sound playing while the real driver restarts.',
  control: 'Pack my box with five dozen liquor jugs. Without a shadow driver, the sound stops when the driver goes away.',
};
export type SoundRun = 'nofault' | 'control';
export const SOUND_RUNS: readonly SoundRun[] = ['nofault', 'control'];
/** espeak-ng's voice, speed and pitch per run, the same on the host and in the guest (another voice per run: two sentences in one voice share sounds). */
export const SPEECH_ARGS: Record<SoundRun, string[]> = {
  nofault: ['-v', 'en', '-s', '175', '-p', '40'],
  control: ['-v', 'en+f3', '-s', '160', '-p', '75'],
};

export interface RunInputs {
  /** aplay's source (PCM WAV, 44.1 kHz stereo S16). */
  aplayWav: string;
  /** The game's source. */
  gameWav: string;
  /** The player's file, and what it decodes to. */
  playerMp3: string;
  playerWav: string;
  /** espeak-ng's rendering of SPEECH_TEXT[run]. */
  speechWav: string;
}

export interface SoundInputs {
  dir: string;
  runs: Record<SoundRun, RunInputs>;
  /** The compiled mmap game. */
  mmapGame: string;
}

export async function makeSoundInputs(): Promise<SoundInputs> {
  const dir = await mkdtemp(join(tmpdir(), 'shadowd-sound-'));
  const render = async (name: string, seed: number): Promise<string> => {
    const x = renderTestSignal({ seconds: SOUND_SOURCE_SECONDS, rate: SOUND_RATE, seed, amplitude: 0.5, padSeconds: 0.05 });
    const path = join(dir, name);
    await writeFile(path, encodeWav([x, x], SOUND_RATE));
    return path;
  };
  const runs = {} as Record<SoundRun, RunInputs>;
  for (const [k, run] of SOUND_RUNS.entries()) {
    const aplayWav = await render(`aplay-${run}.wav`, 1 + 3 * k);
    const gameWav = await render(`game-${run}.wav`, 2 + 3 * k);
    const playerIn = await render(`player-in-${run}.wav`, 3 + 3 * k);
    const playerMp3 = join(dir, `player-${run}.mp3`);
    await execa('lame', ['--quiet', '-b', '192', playerIn, playerMp3]);
    const playerWav = join(dir, `player-${run}.wav`);
    await execa('mpg123', ['-q', '-w', playerWav, playerMp3]);
    const speechWav = join(dir, `speech-${run}.wav`);
    await execa('espeak-ng', [...SPEECH_ARGS[run], '-w', speechWav, SPEECH_TEXT[run]]);
    runs[run] = { aplayWav, gameWav, playerMp3, playerWav, speechWav };
  }
  const inputs: SoundInputs = { dir, runs, mmapGame: await compileMmapGame(dir) };
  await writeFile(join(dir, 'inputs.json'), JSON.stringify(inputs, null, 2));
  return inputs;
}

/** The mmap game (mmap-game.c), compiled with cc against alsa-lib into `dir`: its path. */
export async function compileMmapGame(dir: string): Promise<string> {
  const mmapGame = join(dir, 'mmap-game');
  await execa('cc', ['-O2', '-Wall', '-Wextra', '-Werror', '-o', mmapGame, repoPath('test/vm/sound-apps/mmap-game.c'), '-lasound']);
  return mmapGame;
}

/** Reads inputs.json of a folder made by makeSoundInputs (in the guest). */
export function loadSoundInputs(dir: string): SoundInputs {
  return JSON.parse(readFileSync(join(dir, 'inputs.json'), 'utf8')) as SoundInputs;
}
