// Reads the text output of the ethtool queries that have no --json form in
// ethtool 6.1 (-g rings, -c coalesce, -l channels, the plain settings query).
// The output is "Key: value" lines, grouped under "Section:" headers, with
// indented continuation lines for long lists (link modes).

export class EthtoolParseError extends Error {}

/** Section name (or '' before the first header) → key → value. */
export type EthtoolSections = Map<string, Map<string, string>>;

export function parseEthtoolSections(text: string): EthtoolSections {
  const sections: EthtoolSections = new Map([['', new Map<string, string>()]]);
  let current = sections.get('')!;
  let lastKey: string | null = null;
  for (const raw of text.split('\n')) {
    if (raw.trim() === '') continue;
    const m = /^\s*([^:]+?):\s*(.*)$/.exec(raw);
    if (!m) {
      // A continuation of the previous value (link mode lists, message level names).
      if (lastKey === null || !/^\s/.test(raw)) throw new EthtoolParseError(`unexpected line ${JSON.stringify(raw)}`);
      current.set(lastKey, `${current.get(lastKey)} ${raw.trim()}`.trim());
      continue;
    }
    const key = m[1]!.trim();
    const value = m[2]!;
    if (value === '' && !/^\s/.test(raw)) {
      current = new Map();
      sections.set(key, current);
      lastKey = null;
    } else {
      current.set(key, value.trim());
      lastKey = key;
    }
  }
  return sections;
}

function numberOrNull(value: string | undefined, what: string): number | null {
  if (value === undefined || value === 'n/a') return null;
  if (!/^\d+$/.test(value)) throw new EthtoolParseError(`${what}: ${JSON.stringify(value)} is not a number`);
  return Number(value);
}

/** The "Current hardware settings" section of `ethtool -g` or `-l`, as numbers (null for n/a). */
function currentSettings<K extends string>(text: string, query: string, labels: Record<K, string>): Record<K, number | null> {
  const current = parseEthtoolSections(text).get('Current hardware settings');
  if (!current) throw new EthtoolParseError(`ethtool ${query} output has no "Current hardware settings" section`);
  const out = {} as Record<K, number | null>;
  for (const [key, label] of Object.entries(labels) as [K, string][]) out[key] = numberOrNull(current.get(label), `${query} ${label}`);
  return out;
}

export interface RingParams {
  rx: number | null;
  rx_mini: number | null;
  rx_jumbo: number | null;
  tx: number | null;
}

/** `ethtool -g DEV`: the current ring sizes (null where the driver has none). */
export function parseRings(text: string): RingParams {
  return currentSettings(text, '-g', { rx: 'RX', rx_mini: 'RX Mini', rx_jumbo: 'RX Jumbo', tx: 'TX' });
}

export interface Channels {
  rx: number | null;
  tx: number | null;
  other: number | null;
  combined: number | null;
}

/** `ethtool -l DEV`: the current channel counts. */
export function parseChannels(text: string): Channels {
  return currentSettings(text, '-l', { rx: 'RX', tx: 'TX', other: 'Other', combined: 'Combined' });
}

/** `ethtool -c DEV`: every numeric coalescing parameter, plus adaptive rx/tx. */
export function parseCoalesce(text: string): Record<string, number | boolean> {
  const out: Record<string, number | boolean> = {};
  for (const fields of parseEthtoolSections(text).values()) {
    for (const [key, value] of fields) {
      if (key === 'Adaptive RX') {
        // "Adaptive RX: off  TX: off" is one line.
        const m = /^(on|off|n\/a)\s+TX:\s*(on|off|n\/a)$/.exec(value);
        if (!m) throw new EthtoolParseError(`bad adaptive coalescing line ${JSON.stringify(value)}`);
        if (m[1] !== 'n/a') out['adaptive-rx'] = m[1] === 'on';
        if (m[2] !== 'n/a') out['adaptive-tx'] = m[2] === 'on';
      } else if (/^\d+$/.test(value)) {
        out[key] = Number(value);
      }
    }
  }
  return out;
}

export interface LinkSettings {
  autoneg: boolean | null;
  /** Mb/s, or null when the link is down or the speed unknown. */
  speed: number | null;
  duplex: string | null;
  advertised: string[];
  /** Wake-on-LAN modes in ethtool's letters ('d' is disabled), or null if the driver has no WoL. */
  wol: string | null;
  /** Driver message level bitmap, or null if the driver does not report one. */
  msglvl: number | null;
}

/** `ethtool DEV`: link settings, Wake-on-LAN and message level. */
export function parseLinkSettings(text: string): LinkSettings {
  const sections = parseEthtoolSections(text);
  const settings = [...sections.entries()].find(([name]) => name.startsWith('Settings for '))?.[1];
  if (!settings) throw new EthtoolParseError('ethtool output has no "Settings for DEV" section');
  const speed = settings.get('Speed');
  const speedMatch = speed ? /^(\d+)Mb\/s$/.exec(speed) : null;
  const autoneg = settings.get('Auto-negotiation');
  const advertised = settings.get('Advertised link modes');
  const msglvl = settings.get('Current message level');
  const msglvlMatch = msglvl ? /^0x([0-9a-f]+)\b/.exec(msglvl) : null;
  return {
    autoneg: autoneg === undefined ? null : autoneg === 'on',
    speed: speedMatch ? Number(speedMatch[1]) : null,
    duplex: settings.get('Duplex') ?? null,
    advertised: advertised && advertised !== 'Not reported' ? advertised.split(/\s+/) : [],
    wol: settings.get('Wake-on') ?? null,
    msglvl: msglvlMatch ? parseInt(msglvlMatch[1]!, 16) : null,
  };
}

/** `ethtool --show-priv-flags DEV`: the driver's private flags, on or off. */
export function parsePrivFlags(text: string): Record<string, boolean> {
  const sections = parseEthtoolSections(text);
  const flags = [...sections.entries()].find(([name]) => name.startsWith('Private flags for '))?.[1];
  if (!flags) throw new EthtoolParseError('ethtool --show-priv-flags output has no "Private flags for DEV" section');
  const out: Record<string, boolean> = {};
  for (const [flag, value] of flags) {
    if (value !== 'on' && value !== 'off') throw new EthtoolParseError(`private flag ${flag}: ${JSON.stringify(value)} is neither on nor off`);
    out[flag] = value === 'on';
  }
  return out;
}
