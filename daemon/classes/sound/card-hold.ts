// Holding every card the daemon watches (`hold sound:cardN MS`,
// kmod/PROTOCOL.md). Without it, the kernel fails a stalled stream's
// reader or writer with EIO after 1.1 buffer lengths (about half a second
// for most players), before a stall can be detected and the card
// restarted; and a prepare or hw_params the driver fails reaches the
// application. Held, they wait up to HoldMs for the restart instead. Every card is held when
// the detectors start and each card as its driver registers it (a restart
// in place does not register it again; a rebind or a new card does).
import type { Logger } from '../../service/log.js';

export interface CardHoldDeps {
  /** Sends one helper command; resolves with the reply's payload, rejects with its error. */
  command: (line: string) => Promise<string>;
  holdMs: (card: string) => number;
  logger: Logger;
}

export class CardHold {
  constructor(private readonly deps: CardHoldDeps) {}

  /** Holds one card; a failure is logged (the card then keeps the kernel's own timeouts), never thrown. */
  async hold(card: string): Promise<void> {
    const ms = this.deps.holdMs(card);
    try {
      const reply = await this.deps.command(`hold sound:${card} ${ms}`);
      this.deps.logger.log('info', `${card}: ${reply}: a stalled stream or a failed prepare waits up to ${ms} ms for a restart`, { SHADOWD_CLASS: 'sound', SHADOWD_DEVICE: card });
    } catch (err) {
      this.deps.logger.log('warning', `${card}: cannot hold the card's streams for a restart (${err instanceof Error ? err.message : String(err)}): a stalled stream fails its application after the kernel's own timeout`, { SHADOWD_CLASS: 'sound', SHADOWD_DEVICE: card });
    }
  }

  async holdAll(cards: readonly string[]): Promise<void> {
    for (const c of cards) await this.hold(c);
  }
}
