// The machine as the sound class reads and drives it: the cards and their
// identity (sysfs), each card's mixer (amixer), its open streams
// (/proc/asound) and who holds its device files (/proc/PID/fd). One
// interface, so the shadow, the replay and the detector are tested on a fake
// machine and run on the real one (AlsaSoundSystem) unchanged.
import { runProgram } from '../../core/run-program.js';
import { csetArgv, parseAmixerContents, type MixerControl, type MixerRead } from './amixer-contents.js';
import { readOpenSubstreams, readStatus, type PcmStatus, type ProcSubstream } from './proc-asound.js';
import { listCards, processName, readCardIdentity, soundFileHolders, type CardIdentity, type SoundFileHolder } from './sound-sysfs.js';

export interface SoundSystem {
  listCards(): Promise<number[]>;
  readIdentity(card: number): Promise<CardIdentity>;
  /** Every control element of the card; elements that did not parse are in problems. */
  readMixer(card: number): Promise<MixerRead>;
  /** One element by numid; null when the card has none of that number. */
  readControl(card: number, numid: number): Promise<MixerControl | null>;
  /** Sets an element's values; rejects with amixer's message when it fails. */
  setControl(card: number, numid: number, values: readonly string[]): Promise<void>;
  /** The card's open substreams with their parameters. */
  readSubstreams(card: number): Promise<ProcSubstream[]>;
  /** One substream's status (the stall detector's poll). */
  readStatus(card: number, key: string): Promise<PcmStatus>;
  /** A process's name, or null when it is gone. */
  processName(pid: number): Promise<string | null>;
  /** Every process's open files under /dev/snd. */
  soundFileHolders(): Promise<SoundFileHolder[]>;
}

const AMIXER = 'amixer';

async function amixer(args: string[]): Promise<string> {
  const r = await runProgram(AMIXER, args);
  if (r.exitCode !== 0) throw new Error(`${AMIXER} ${args.join(' ')}: ${r.stderr.trim() || `exit status ${String(r.exitCode)}`}`);
  return r.stdout;
}

export class AlsaSoundSystem implements SoundSystem {
  constructor(
    private readonly sysfs = '/sys',
    private readonly proc = '/proc',
  ) {}

  listCards(): Promise<number[]> {
    return listCards(this.sysfs);
  }

  readIdentity(card: number): Promise<CardIdentity> {
    return readCardIdentity(card, this.sysfs);
  }

  async readMixer(card: number): Promise<MixerRead> {
    return parseAmixerContents(await amixer(['-c', String(card), 'contents']));
  }

  async readControl(card: number, numid: number): Promise<MixerControl | null> {
    const r = await runProgram(AMIXER, ['-c', String(card), 'cget', `numid=${numid}`]);
    // amixer says "Cannot find the given element" (and fails) for a numid the card does not have.
    if (r.exitCode !== 0) {
      if (/Cannot find the given element/i.test(r.stderr)) return null;
      throw new Error(`${AMIXER} -c ${card} cget numid=${numid}: ${r.stderr.trim() || `exit status ${String(r.exitCode)}`}`);
    }
    const read = parseAmixerContents(r.stdout);
    if (read.problems.length > 0) throw new Error(`card${card} numid=${numid}: ${read.problems.join('; ')}`);
    return read.controls.find((c) => c.numid === numid) ?? null;
  }

  async setControl(card: number, numid: number, values: readonly string[]): Promise<void> {
    await amixer(csetArgv(card, numid, values).slice(1));
  }

  readSubstreams(card: number): Promise<ProcSubstream[]> {
    return readOpenSubstreams(card, this.proc);
  }

  readStatus(card: number, key: string): Promise<PcmStatus> {
    return readStatus(card, key, this.proc);
  }

  processName(pid: number): Promise<string | null> {
    return processName(pid, this.proc);
  }

  soundFileHolders(): Promise<SoundFileHolder[]> {
    return soundFileHolders(this.proc);
  }
}
