// The sound class shadow in passive mode: one shadow for every sound card
// driver. Per card it keeps the card's identity, its mixer (every control
// element's values, who set them and when) and each open substream (its
// owner, hardware and software parameters and state), in the shared store.
// PCM tap events are applied as they come: they say what changed. Control
// events name an element; the shadow re-reads its value (a control holds up
// to 128 values, never printed by the taps) and credits the writer. A card
// is keyed by its bus device, not its number: the number is its name.
//
// A card shadowd holds (restarting its driver) is not read. An element
// written while it is held, or written just before and not yet re-read
// when the hold began, is remembered with its writer; the card's next read
// (the replay's, after the restart) credits the value the card then has to
// that writer, so the replay leaves it as set (mixer-replay.ts).
import type { DeviceStatus, ShowResult } from '../../core/device-status.js';
import type { JsonValue } from '../../core/json-value.js';
import { storedByName, storedShow, storedStatus } from '../../core/stored-device.js';
import { SNAPSHOT_ACTOR, type Actor, type DeviceRecord, type ShadowStore } from '../../core/shadow-store.js';
import type { TapEvent } from '../../core/tap-record.js';
import type { Logger } from '../../service/log.js';
import type { MixerControl } from './amixer-contents.js';
import { cardName } from './card-name.js';
import type { HwParams, SwParams } from './proc-asound.js';
import { reduceSoundEvent, type PcmChange } from './sound-reducer.js';
import type { SoundSystem } from './sound-system.js';
import type { CardIdentity } from './sound-sysfs.js';
import { substreamKey } from './substream-address.js';

const CLS = 'sound';

/** Who changed a value when the taps saw a kernel thread, an interrupt or the driver itself do it. */
export const KERNEL_ACTOR: Actor = { pid: null, comm: '(kernel)' };
export const DRIVER_ACTOR: Actor = { pid: null, comm: '(driver)' };

/** An open substream as the shadow keeps it (the value of its pcmXY/subZ entry; null once closed). */
export interface SubstreamState {
  state: string;
  owner: { pid: number; comm: string } | null;
  hw_params: HwParams | null;
  sw_params: SwParams | null;
}

export interface WatchedCard {
  /** The store's id: snd: and the bus device (snd:0000:00:04.0), else snd:cardN. */
  id: string;
  identity: CardIdentity;
  /** The mixer as last read, by numid. */
  controls: Map<number, MixerControl>;
  /** Open substreams by key (pcm0p/sub0). */
  streams: Map<string, SubstreamState>;
}

/** The store key of a mixer element. */
export const mixerKey = (c: Pick<MixerControl, 'key'>): string => `mixer/${c.key}`;
export const MIXER_PREFIX = 'mixer/';

export interface SoundShadowDeps {
  sys: SoundSystem;
  /** Whether shadowd is restarting this card's driver: the helper keeps the card, and the replay reads it back. */
  held?: (name: string) => boolean;
  now?: () => number;
}

export function cardId(identity: Pick<CardIdentity, 'bus' | 'number'>): string {
  return identity.bus ? `snd:${identity.bus}` : `snd:${cardName(identity.number)}`;
}

export class SoundShadow {
  private readonly cards = new Map<number, WatchedCard>();
  /** Elements written while their card was held and not read since, by the card's store id: numid to writer. */
  private readonly unread = new Map<string, Map<number, Actor>>();
  private refreshing: Promise<void> = Promise.resolve();
  private readsInFlight = 0;
  private resyncing: Promise<void> | null = null;
  private resyncAgain: string | null = null;
  private readonly sys: SoundSystem;
  private readonly held: (name: string) => boolean;
  private readonly now: () => number;

  constructor(
    private readonly store: ShadowStore,
    private readonly logger: Logger,
    deps: SoundShadowDeps,
  ) {
    this.sys = deps.sys;
    this.held = deps.held ?? (() => false);
    this.now = deps.now ?? Date.now;
  }

  /** Adopts every card and reads it whole (start-up, after a gap in the taps). */
  async resync(why: string): Promise<void> {
    const numbers = await this.sys.listCards();
    const seen = new Set<string>();
    for (const n of numbers) {
      const known = this.cards.get(n);
      if (this.held(cardName(n))) {
        if (known) seen.add(known.id);
        continue;
      }
      const card = await this.readCard(n);
      if (card) seen.add(card.id);
    }
    for (const known of this.store.devices(CLS)) {
      if (known.present && !seen.has(known.id) && !this.held(known.name)) this.store.setPresent(known.id, false, this.now());
    }
    for (const [n, card] of this.cards) if (!seen.has(card.id)) this.cards.delete(n);
    this.logger.log('info', `read the state of ${seen.size} sound card(s) (${why})`, { SHADOWD_CLASS: CLS });
  }

  /** resync, with gaps that come while one runs folded into one more. */
  requestResync(why: string): Promise<void> {
    if (this.resyncing) {
      this.resyncAgain = why;
      return this.resyncing;
    }
    this.resyncing = (async () => {
      let reason: string | null = why;
      while (reason !== null) {
        this.resyncAgain = null;
        await this.resync(reason).catch((err: unknown) => this.logger.log('err', `re-reading the sound cards failed: ${messageOf(err)}`, { SHADOWD_CLASS: CLS }));
        reason = this.resyncAgain;
      }
      this.resyncing = null;
    })();
    return this.resyncing;
  }

  applyBatch(events: readonly TapEvent[]): void {
    for (const e of events) {
      let actions;
      try {
        actions = reduceSoundEvent(e);
      } catch (err) {
        // The taps printed something this shadow does not understand: say so, and re-read the card rather than guess.
        this.logger.log('err', `a sound tap event did not make sense (${messageOf(err)}); the card is read again`, { SHADOWD_CLASS: CLS });
        const n = e.nums['card'];
        if (n !== undefined && Number.isInteger(n) && n >= 0 && n <= 31) this.schedule(n, () => this.readCard(n));
        continue;
      }
      const actor: Actor = e.nums['kthread'] === 1 ? KERNEL_ACTOR : { pid: e.pid, comm: e.comm };
      for (const a of actions) {
        switch (a.kind) {
          case 'pcm':
            this.pcmChange(a.at.card, substreamKey(a.at), a.change, actor);
            break;
          case 'control': {
            const { card: n, numid } = a;
            // A driver's own notification during a held card's restart is the restart's doing: the replay reads the card.
            const wroteHeld = a.how === 'set' ? () => this.noteUnread(n, numid, actor) : undefined;
            if (this.held(cardName(n))) {
              wroteHeld?.();
              break;
            }
            this.schedule(n, () => this.readControlInto(n, numid, a.how === 'set' ? actor : DRIVER_ACTOR, a.how === 'set' ? 'set' : 'observe'), wroteHeld);
            break;
          }
          case 'card':
            if (this.held(cardName(a.card))) break;
            if (a.op === 'registered') this.schedule(a.card, () => this.readCard(a.card));
            else this.disconnected(a.card);
            break;
        }
      }
    }
    this.readUnheld();
  }

  /** Cards no longer held that still have writes unread (the hold ended before the replay read them): read whole. */
  private readUnheld(): void {
    if (this.unread.size === 0) return;
    for (const [n, card] of this.cards) {
      if (this.unread.has(card.id) && !this.held(cardName(n))) this.schedule(n, () => this.readCard(n));
    }
  }

  private pcmChange(n: number, key: string, change: PcmChange, actor: Actor): void {
    const card = this.cards.get(n);
    if (!card) {
      // A card not adopted yet (its driver is loading): read it whole, streams and all.
      if (!this.held(cardName(n))) this.schedule(n, () => this.readCard(n));
      return;
    }
    const known = card.streams.get(key);
    const owner = actor.pid === null ? null : { pid: actor.pid, comm: actor.comm };
    let next: SubstreamState | null;
    switch (change.op) {
      case 'open':
        next = { state: 'OPEN', owner, hw_params: null, sw_params: null };
        break;
      case 'close':
        if (!known) return;
        next = null;
        break;
      case 'hw_params':
        if (change.params === null) return this.schedule(n, () => this.readStreamsInto(n));
        // An open the taps did not show (they started after it): the caller of hw_params owns it.
        next = { ...(known ?? { owner, sw_params: null }), state: 'SETUP', hw_params: change.params };
        break;
      case 'hw_free':
        if (!known) return;
        next = { ...known, state: 'OPEN', hw_params: null, sw_params: null };
        break;
      case 'sw_params':
        if (!known) return this.schedule(n, () => this.readStreamsInto(n));
        next = { ...known, sw_params: change.params };
        break;
      case 'state':
        if (!known) return this.schedule(n, () => this.readStreamsInto(n));
        next = { ...known, state: change.state };
        break;
      case 'drain':
        if (!known || known.state !== 'RUNNING') return;
        next = { ...known, state: 'DRAINING' };
        break;
    }
    // A stop from an interrupt or another task is the kernel's doing, not that task's.
    const credit = change.op === 'state' && known?.owner && actor.pid !== known.owner.pid ? KERNEL_ACTOR : actor;
    this.setStream(card, key, next, credit, 'set');
  }

  private setStream(card: WatchedCard, key: string, s: SubstreamState | null, actor: Actor, how: 'set' | 'observe'): void {
    const hadOwner = card.streams.get(key)?.owner?.pid ?? null;
    if (s) card.streams.set(key, s);
    else card.streams.delete(key);
    this.store.transaction(() => {
      this.store.setEntry(card.id, key, s as unknown as JsonValue, actor, this.now(), how);
      if (hadOwner !== (s?.owner?.pid ?? null)) this.reconcileHolders(card);
    });
  }

  /** The pcm holders in the store: one per owning process, counting its open substreams. */
  private reconcileHolders(card: WatchedCard): void {
    const want = new Map<number, { comm: string; count: number }>();
    for (const s of card.streams.values()) {
      if (!s.owner) continue;
      const w = want.get(s.owner.pid) ?? { comm: s.owner.comm, count: 0 };
      w.count++;
      want.set(s.owner.pid, w);
    }
    const at = this.now();
    const have = new Map(this.store.holders(card.id).filter((h) => h.kind === 'pcm').map((h) => [h.pid, h.count]));
    for (const [pid, count] of have) if (!want.has(pid)) this.store.adjustHolder(card.id, 'pcm', pid, '', -count, at);
    for (const [pid, w] of want) {
      const delta = w.count - (have.get(pid) ?? 0);
      if (delta !== 0) this.store.adjustHolder(card.id, 'pcm', pid, w.comm, delta, at);
    }
  }

  private disconnected(n: number): void {
    const card = this.cards.get(n);
    if (!card) return;
    this.cards.delete(n);
    this.store.setPresent(card.id, false, this.now());
    this.logger.log('notice', `${cardName(n)} disappeared; its shadow is kept`, this.fields(card));
  }

  /** Queues a read of card n; `ifHeld` runs instead when shadowd holds the card by the time the read's turn comes. */
  private schedule(n: number, read: () => Promise<unknown>, ifHeld?: () => void): void {
    this.readsInFlight++;
    this.refreshing = this.refreshing.then(async () => {
      try {
        if (!this.held(cardName(n))) await read();
        else ifHeld?.();
      } catch (err) {
        this.logger.log('warning', `could not read ${cardName(n)}: ${messageOf(err)}`, { SHADOWD_CLASS: CLS, SHADOWD_DEVICE: cardName(n) });
      } finally {
        this.readsInFlight--;
      }
    });
  }

  /** Reads a card whole: identity, mixer and open streams. Returns null when it is not there. */
  async readCard(n: number): Promise<WatchedCard | null> {
    let identity: CardIdentity;
    try {
      identity = await this.sys.readIdentity(n);
    } catch (err) {
      this.logger.log('warning', `could not read ${cardName(n)}: ${messageOf(err)}`, { SHADOWD_CLASS: CLS, SHADOWD_DEVICE: cardName(n) });
      return null;
    }
    const card = this.adopt(identity);
    try {
      const mixer = await this.sys.readMixer(n);
      if (mixer.problems.length > 0) {
        this.logger.log('warning', `${cardName(n)}: ${mixer.problems.length} mixer element(s) did not read, their shadow is kept as it was: ${mixer.problems.join('; ')}`, this.fields(card));
      }
      this.store.transaction(() => {
        const written = this.takeUnread(card, mixer.controls);
        for (const c of mixer.controls) {
          const writer = written.get(c.numid);
          this.recordControl(card, c, writer ?? SNAPSHOT_ACTOR, writer ? 'set' : 'observe');
        }
      });
    } catch (err) {
      this.logger.log('warning', `${cardName(n)}: could not read its mixer (${messageOf(err)}); its shadow is kept as it was`, this.fields(card));
    }
    await this.readStreamsInto(n);
    return card;
  }

  /** Adopts a card as read now (a card back under another number keeps its shadow: it is keyed by its bus device). */
  adopt(identity: CardIdentity): WatchedCard {
    const id = cardId(identity);
    const name = cardName(identity.number);
    const known = this.store.devices(CLS).find((d) => d.id === id);
    if (!known) this.logger.log('info', `watching sound card ${name} (${identity.id ?? '?'}, ${identity.driver ?? 'unknown driver'} at ${identity.bus ?? '?'})`, { SHADOWD_CLASS: CLS, SHADOWD_DEVICE: name });
    else if (known.name !== name) this.logger.log('notice', `sound card ${known.name} is now ${name}`, { SHADOWD_CLASS: CLS, SHADOWD_DEVICE: name });
    for (const [n, c] of this.cards) if (c.id === id && n !== identity.number) this.cards.delete(n);
    const card: WatchedCard = this.cards.get(identity.number)?.id === id ? this.cards.get(identity.number)! : { id, identity, controls: new Map(), streams: new Map() };
    card.identity = identity;
    this.cards.set(identity.number, card);
    this.store.upsertDevice({ id, cls: CLS, name, driver: identity.driver, bus: identity.bus, attrs: { card: identity.number, id: identity.id ?? '' } }, this.now());
    return card;
  }

  private recordControl(card: WatchedCard, c: MixerControl, actor: Actor, how: 'set' | 'observe'): void {
    card.controls.set(c.numid, c);
    if (this.store.setEntry(card.id, mixerKey(c), c.values, actor, this.now(), how) && actor.pid !== null) {
      this.logger.log('debug', `${cardName(card.identity.number)}: ${c.key} = ${c.values.join(',')} by ${actor.comm}[${actor.pid}]`, this.fields(card));
    }
  }

  private noteUnread(n: number, numid: number, writer: Actor): void {
    const id = this.cards.get(n)?.id;
    // A card not adopted yet is read whole once it is.
    if (id === undefined) return;
    let m = this.unread.get(id);
    if (!m) this.unread.set(id, (m = new Map<number, Actor>()));
    m.set(numid, writer);
  }

  /** The writers of the card's unread elements that `read` has, taken off the list; the others stay for a later read. */
  private takeUnread(card: WatchedCard, read: readonly MixerControl[]): Map<number, Actor> {
    const taken = new Map<number, Actor>();
    const m = this.unread.get(card.id);
    if (!m) return taken;
    for (const c of read) {
      const writer = m.get(c.numid);
      if (writer === undefined) continue;
      taken.set(c.numid, writer);
      m.delete(c.numid);
    }
    if (m.size === 0) this.unread.delete(card.id);
    return taken;
  }

  /** The shadow keys of card n's elements written while it was held and not read since. */
  unreadKeys(n: number): Set<string> {
    const card = this.cards.get(n);
    const keys = new Set<string>();
    for (const numid of (card && this.unread.get(card.id)?.keys()) ?? []) {
      const c = card?.controls.get(numid);
      if (c) keys.add(mixerKey(c));
    }
    return keys;
  }

  /**
   * Credits the elements written while card n was held with the values the
   * card has now (`current`, just read), each to its writer: set after the
   * restart began, so the replay leaves them. An element not in `current`
   * waits for the card's next read.
   */
  creditUnread(n: number, current: readonly MixerControl[]): void {
    const card = this.cards.get(n);
    if (!card) return;
    const written = this.takeUnread(card, current);
    if (written.size === 0) return;
    this.store.transaction(() => {
      for (const c of current) {
        const writer = written.get(c.numid);
        if (writer) this.recordControl(card, c, writer, 'set');
      }
    });
  }

  /** Drops card n's unread writes of these elements: the replay's own (it set them from the shadow). */
  forgetUnread(n: number, numids: Iterable<number>): void {
    const id = this.cards.get(n)?.id;
    const m = id === undefined ? undefined : this.unread.get(id);
    if (!m) return;
    for (const numid of numids) m.delete(numid);
    if (m.size === 0) this.unread.delete(id!);
  }

  private async readControlInto(n: number, numid: number, actor: Actor, how: 'set' | 'observe'): Promise<void> {
    const card = this.cards.get(n) ?? (await this.readCard(n));
    if (!card) return;
    const c = await this.sys.readControl(n, numid);
    if (!c) return;
    // Read now, credited to this event's writer: a write noted while the card was held is read too, and
    // credited to its writer when this event is the driver's own.
    const written = this.takeUnread(card, [c]).get(numid);
    const writer = how === 'observe' ? written : undefined;
    this.recordControl(card, c, writer ?? actor, writer ? 'set' : how);
  }

  /** Reads the card's open substreams from /proc: new ones adopted, closed ones closed in the shadow. */
  private async readStreamsInto(n: number): Promise<void> {
    const card = this.cards.get(n);
    if (!card) return;
    const open = await this.sys.readSubstreams(n);
    const seen = new Set<string>();
    for (const s of open) {
      seen.add(s.key);
      const known = card.streams.get(s.key);
      const pid = s.status.ownerPid;
      const owner = pid === null ? null : known?.owner?.pid === pid ? known.owner : { pid, comm: (await this.sys.processName(pid)) ?? '?' };
      this.setStream(card, s.key, { state: s.status.state ?? 'OPEN', owner, hw_params: s.hwParams, sw_params: s.swParams }, SNAPSHOT_ACTOR, 'observe');
    }
    for (const key of [...card.streams.keys()]) if (!seen.has(key)) this.setStream(card, key, null, SNAPSHOT_ACTOR, 'observe');
    // Holders the store kept from before (a daemon restart) whose streams are gone.
    this.store.transaction(() => this.reconcileHolders(card));
  }

  /** Resolves once the re-reads asked for by the events applied so far are applied. */
  async caughtUp(): Promise<void> {
    await this.refreshing;
    await this.resyncing;
  }

  async settled(): Promise<void> {
    await this.caughtUp();
  }

  pendingReads(): number {
    return this.readsInFlight;
  }

  /** The watched card of that number. */
  card(n: number): WatchedCard | null {
    return this.cards.get(n) ?? null;
  }

  allCards(): WatchedCard[] {
    return [...this.cards.values()];
  }

  /** The device of that name: the present one, else the kept shadow of one that is gone. */
  recordOf(name: string): DeviceRecord | undefined {
    return storedByName(this.store, CLS, name);
  }

  status(): DeviceStatus[] {
    return this.store.devices(CLS).map((d) => storedStatus(this.store, d));
  }

  show(name: string): ShowResult {
    return storedShow(this.store, CLS, 'sound card', name);
  }

  private fields(card: WatchedCard): Record<string, string> {
    return { SHADOWD_DEVICE: cardName(card.identity.number), SHADOWD_DRIVER: card.identity.driver ?? '', SHADOWD_CLASS: CLS };
  }
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
