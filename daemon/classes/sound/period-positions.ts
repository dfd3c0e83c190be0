// Where each running stream of a card was at its last period interrupt, as
// the helper reports it (`periods sound:cardN`, kmod/PROTOCOL.md): the
// sound core's hw_ptr_interrupt, which only the driver's interrupt handler
// moves. The sound class's sign of lost interrupts: a card that stops
// interrupting often still moves its streams' position when the position is
// read (the DMA goes on), while its readers and writers, woken by period
// interrupts, stop. Per stream, so a line the card shares with other
// devices (every legacy PCI card) and MSI cards are told apart alike.
import { parseSubstreamKey } from './substream-address.js';

/** The interrupt position per running substream ("pcm0p/sub0"), in frames. */
export type PeriodPositions = ReadonlyMap<string, bigint>;

export class PeriodsReplyError extends Error {}

const FIELD = /^([^=\s]+)=(\d{1,20})$/;

/**
 * Parses the payload of the helper's reply to `periods sound:CARD`:
 * `periods sound:CARD running=N [cut=1] pcmDp/subS=FRAMES ...`. Anything
 * else (another card, a malformed or repeated field, a count that does not
 * match) is an error: the caller then judges the card without it.
 */
export function parsePeriods(payload: string, card: string): PeriodPositions {
  const words = payload.trim().split(/\s+/);
  if (words[0] !== 'periods' || words[1] !== `sound:${card}`) throw new PeriodsReplyError(`not a periods reply for sound:${card}: '${payload.slice(0, 120)}'`);
  const running = /^running=(\d{1,4})$/.exec(words[2] ?? '');
  if (!running) throw new PeriodsReplyError(`periods reply without running=: '${payload.slice(0, 120)}'`);
  let rest = words.slice(3);
  if (rest[0] === 'cut=1') rest = rest.slice(1);
  const out = new Map<string, bigint>();
  for (const w of rest) {
    const m = FIELD.exec(w);
    if (!m) throw new PeriodsReplyError(`malformed field '${w.slice(0, 60)}' in a periods reply`);
    if (!parseSubstreamKey(0, m[1]!)) throw new PeriodsReplyError(`malformed substream '${m[1]!.slice(0, 60)}' in a periods reply`);
    if (out.has(m[1]!)) throw new PeriodsReplyError(`substream ${m[1]} twice in a periods reply`);
    out.set(m[1]!, BigInt(m[2]!));
  }
  if (out.size !== Number(running[1])) throw new PeriodsReplyError(`periods reply says running=${running[1]} but lists ${out.size}`);
  return out;
}
