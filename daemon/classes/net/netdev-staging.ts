// The kernel helper's `stage` lines (kmod/PROTOCOL.md) for a device: the
// ethtool settings a `restart` writes into the freshly probed driver, before it
// opens the device, from the values the shadow holds. What the helper does not
// replay itself is left to daemon/netdev-replay.ts.
//
// shadowd does not send them at present: a value staged from
// the shadow wins over one another process sets between the staging and the
// restart, which the daemon cannot rule out from userspace. Staging from the
// shadow is safe again once the helper drops a staged setting that a write
// reaches the driver after.
import { checkHelperCommand, HelperError } from '../../core/helper-client.js';
import { shadowValues, type ShadowValues } from './netdev-replay.js';
import type { JsonValue } from './netdev-snapshot.js';

const U32_MAX = 0xffff_ffff;
/** The largest ring the helper takes (SH_RING_MAX in kmod/sh_control.c); no driver's rings come near it. */
const RING_MAX = 2 ** 20;
const isU32 = (v: JsonValue | undefined): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= U32_MAX;
const isRing = (v: JsonValue | undefined): v is number => isU32(v) && v <= RING_MAX;
const isObj = (v: JsonValue | undefined): v is { readonly [k: string]: JsonValue } => typeof v === 'object' && v !== null && !Array.isArray(v);
const bit = (b: boolean): string => (b ? '1' : '0');

/** The ethtool private-flag word is 32 bits (ETHTOOL_GPFLAGS). */
const PRIV_FLAGS_MAX = 32;

/**
 * The private flags as the bitmask the driver takes: bit i is the i-th flag in
 * the order `ethtool --show-priv-flags` lists them, which is the driver's own
 * bit order (ethtool walks the kernel's bitset by index). The shadow keeps that
 * order: parsePrivFlags inserts the flags as listed, and JSON and SQLite keep
 * insertion order. Not for names that look like array indices, which
 * JavaScript moves first: then the order is unknown and so is the mask (null),
 * as with more than 32 flags, a value that is not on/off, or no flags at all.
 */
export function privFlagsMask(flags: JsonValue | undefined): number | null {
  if (!isObj(flags)) return null;
  const names = Object.keys(flags);
  if (names.length === 0 || names.length > PRIV_FLAGS_MAX || names.some((n) => /^(0|[1-9]\d*)$/.test(n))) return null;
  let mask = 0;
  for (const [i, name] of names.entries()) {
    const on = flags[name];
    if (typeof on !== 'boolean') return null;
    if (on) mask += 2 ** i;
  }
  return mask;
}

/** An interface name as the kernel takes it (dev_valid_name) and the protocol can carry. */
const IFACE = /^(?!\.\.?$)[!-.0-9;-~]{1,15}$/;

/**
 * The lines that stage `device`'s rings, message level, pause and private flags
 * from its shadow for the helper's next restart, preceded by `stage IFACE clear`
 * so nothing staged for an earlier shadow is left. A key the shadow has no
 * value for (the driver lacks the operation) or an unusable value is not staged.
 */
export function stagingCommands(device: string, shadowEntries: ShadowValues): string[] {
  if (!IFACE.test(device)) {
    throw new HelperError(`cannot stage for ${JSON.stringify(device)}: not an interface name`, { code: 'EINVAL' });
  }
  const shadow = shadowValues(shadowEntries);
  const dev = `net:${device}`;
  const lines = [`stage ${dev} clear`];

  const rings = shadow['rings'];
  if (isObj(rings)) {
    // ethtool shows n/a for a ring the driver does not have, whose size the kernel reports as 0.
    const sizes = [rings['rx'], rings['rx_mini'], rings['rx_jumbo'], rings['tx']].map((v) => (v === null || v === undefined ? 0 : v));
    if (sizes.every(isRing) && sizes.some((s) => s !== 0)) lines.push(`stage ${dev} rings ${sizes.join(' ')}`);
  }

  const msglvl = shadow['msglvl'];
  if (isU32(msglvl)) lines.push(`stage ${dev} msglvl ${msglvl}`);

  const pause = shadow['pause'];
  if (isObj(pause) && typeof pause['autonegotiate'] === 'boolean' && typeof pause['rx'] === 'boolean' && typeof pause['tx'] === 'boolean') {
    lines.push(`stage ${dev} pause ${bit(pause['autonegotiate'])} ${bit(pause['rx'])} ${bit(pause['tx'])}`);
  }

  const mask = privFlagsMask(shadow['private_flags']);
  if (mask !== null) lines.push(`stage ${dev} privflags ${mask}`);

  for (const line of lines) checkHelperCommand(line);
  return lines;
}

/** What a `stage` command's reply names: `stage net:eth0 rings 256 0 0 256` → `staged net:eth0 rings`. */
export function stagedPayload(command: string): string {
  const [, device, what] = command.split(' ');
  return `staged ${device ?? ''} ${what ?? ''}`;
}

/**
 * Whether `command` is a well-formed `stage` command for interface `device`
 * (PROTOCOL.md: rings RX RX_MINI RX_JUMBO TX, msglvl N, pause AUTONEG RX TX, privflags N, clear).
 * The staging source is another module's code: only what the protocol allows is sent.
 */
export function isStageCommand(command: string, device: string): boolean {
  const prefix = `stage net:${device} `;
  if (!command.startsWith(prefix)) return false;
  const n = '(0|[1-9][0-9]{0,9})';
  return new RegExp(`^(rings ${n} ${n} ${n} ${n}|msglvl ${n}|pause [01] [01] [01]|privflags ${n}|clear)$`).test(command.slice(prefix.length));
}
