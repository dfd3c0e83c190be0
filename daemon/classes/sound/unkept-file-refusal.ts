// Why a card's restart would hang: the helper keeps a card's PCM and control
// files open across its driver's restart, but no other file of the card (a
// hardware-dependent device hwCxDy, a raw MIDI port midiCxDy, a compressed
// stream comprCxDy). The kernel's unbind waits, uninterruptibly, until every
// file of the card is closed (sound-facts.md §1): a process that holds one
// of those and does not let go would hang the restart, with the device lock
// held. So such a holder refuses the restart before anything is touched.
import { fileCard, isKeptFile, type SoundFileHolder } from './sound-sysfs.js';

/** The reason to refuse restarting card `card`'s driver, or null when every open file of the card is one the helper keeps. */
export function unkeptFileRefusal(card: number, driver: string | null, holders: readonly SoundFileHolder[]): string | null {
  const unkept = holders.filter((h) => fileCard(h.file) === card && !isKeptFile(h.file));
  if (unkept.length === 0) return null;
  const who = unkept.map((h) => `${h.comm}[${h.pid}] holds /dev/snd/${h.file}`);
  return (
    `restarting ${driver ?? 'the driver'} of card${card} would wait for files the helper cannot keep open across it: ${who.join('; ')}. ` +
    'The kernel does not finish a sound card\'s unbind until every file of the card is closed; close them (or stop those processes) and recover again (docs/sound.md)'
  );
}
