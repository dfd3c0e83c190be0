// The sound class's view of sysfs and of processes' open files: the cards
// (/sys/class/sound/cardN), each card's identity (its id string, its bus
// device, the driver bound to that and the driver's module), and which
// processes hold which of a card's device files open (/proc/PID/fd links
// into /dev/snd). Roots are parameters so unit tests run on fixture trees.
import { readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { isCardName } from './card-name.js';
import { linkBase, readText } from '../../core/sysfs-text.js';

export interface CardIdentity {
  number: number;
  /** The card's id string (AudioPCI, I82801AAICH), as /sys/class/sound/cardN/id has it. */
  id: string | null;
  /** The bus device the card's driver is bound to (0000:00:04.0): the restart unit. */
  bus: string | null;
  driver: string | null;
  /** The module the driver lives in (null: built in, or unknown). */
  module: string | null;
}

/** The numbers of the cards in /sys/class/sound, ascending; none when the sound core is not loaded. */
export async function listCards(sysfs = '/sys'): Promise<number[]> {
  let names: string[];
  try {
    names = await readdir(join(sysfs, 'class', 'sound'));
  } catch {
    return [];
  }
  return names.filter(isCardName).map((n) => Number(n.slice(4))).sort((a, b) => a - b);
}

/** A card's identity; throws when the card is not there. */
export async function readCardIdentity(card: number, sysfs = '/sys'): Promise<CardIdentity> {
  const dir = join(sysfs, 'class', 'sound', `card${card}`);
  const number = await readText(join(dir, 'number'));
  if (number === null) throw new Error(`card${card} is not in ${join(sysfs, 'class', 'sound')}`);
  if (number !== String(card)) throw new Error(`card${card}: its number file says ${JSON.stringify(number)}`);
  const device = join(dir, 'device');
  const driver = await linkBase(join(device, 'driver'));
  return {
    number: card,
    id: await readText(join(dir, 'id')),
    bus: await linkBase(device),
    driver,
    module: driver === null ? null : await linkBase(join(device, 'driver', 'module')),
  };
}

/** A process's open file under /dev/snd. */
export interface SoundFileHolder {
  pid: number;
  comm: string;
  /** The file's name under /dev/snd: pcmC0D0p, controlC0, hwC0D0, midiC0D0, timer, seq. */
  file: string;
}

/** /dev/snd names that belong to card N: controlCN, pcmCNDx[pc], hwCNDx, midiCNDx, comprCNDx. */
export function fileCard(file: string): number | null {
  const m = /^(?:controlC(\d+)|(?:pcm|hw|midi|compr)C(\d+)D\d+[pc]?)$/.exec(file);
  if (!m) return null;
  return Number(m[1] ?? m[2]);
}

/** The card files the helper keeps open across a restart: the PCMs and the control device. */
export function isKeptFile(file: string): boolean {
  return /^(?:controlC\d+|pcmC\d+D\d+[pc])$/.test(file);
}

/** Every process's open files under /dev/snd (processes that go while this runs are skipped). */
export async function soundFileHolders(proc = '/proc', dev = '/dev/snd'): Promise<SoundFileHolder[]> {
  let pids: string[];
  try {
    pids = (await readdir(proc)).filter((p) => /^\d+$/.test(p)).sort((a, b) => Number(a) - Number(b));
  } catch {
    return [];
  }
  const out: SoundFileHolder[] = [];
  const prefix = `${dev}/`;
  for (const p of pids) {
    let fds: string[];
    try {
      fds = (await readdir(join(proc, p, 'fd'))).sort((a, b) => Number(a) - Number(b));
    } catch {
      continue;
    }
    let comm: string | null = null;
    for (const fd of fds) {
      let target: string;
      try {
        target = await readlink(join(proc, p, 'fd', fd));
      } catch {
        continue;
      }
      if (!target.startsWith(prefix)) continue;
      comm ??= (await readText(join(proc, p, 'comm'))) ?? '?';
      out.push({ pid: Number(p), comm, file: target.slice(prefix.length) });
    }
  }
  return out;
}

/** A process's name, or null when it is gone. */
export function processName(pid: number, proc = '/proc'): Promise<string | null> {
  return readText(join(proc, String(pid), 'comm'));
}
