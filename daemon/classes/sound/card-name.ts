// The sound class's device names: a card's sysfs class device name, card0 to
// card31 (the kernel's SNDRV_CARDS is 32 on Debian). The one copy of the
// rule, for the control socket, the configuration, the helper protocol and
// the recovery manager, and the one place a card's number is read off its
// name.
import type { NameRule } from '../../core/device-ref.js';

const CARD_NAME = /^card([0-9]|[12][0-9]|3[01])$/;

export function isCardName(name: string): boolean {
  return typeof name === 'string' && CARD_NAME.test(name);
}

/** The card number of a card's name (card3 → 3); throws for anything that is not a card name. */
export function cardNumber(name: string): number {
  const m = typeof name === 'string' ? CARD_NAME.exec(name) : null;
  if (!m) throw new Error(`${JSON.stringify(name)} is not a sound card name (card0 to card31)`);
  return Number(m[1]);
}

/** The name of card number n; throws outside 0-31. */
export function cardName(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 31) throw new Error(`${String(n)} is not a sound card number (0 to 31)`);
  return `card${n}`;
}

export const CARD_NAME_RULE: NameRule = {
  valid: isCardName,
  describe: 'a sound card\'s name, card0 to card31 (as in /sys/class/sound)',
};
