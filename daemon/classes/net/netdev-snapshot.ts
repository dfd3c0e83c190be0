// Reads a network device's current configuration with the administrator's own
// tools (ip, tc, ethtool), in the representation the shadow keeps: one value
// per configuration key, only what a fresh driver instance or a re-created
// interface would lose. Used when shadowd starts on a configured machine, and
// after a tap reports a change whose new value the event does not carry.
import { runProgram } from '../../core/run-program.js';
import { interfaceArgProblem } from './interface-name.js';
import { parseChannels, parseCoalesce, parseLinkSettings, parsePrivFlags, parseRings } from './ethtool-text.js';

export type { JsonValue } from '../../core/json-value.js';
import type { JsonValue } from '../../core/json-value.js';

/** The configuration keys, grouped by the query that reads them. */
export const KEY_GROUPS = {
  link: ['admin_up', 'mtu', 'mac', 'txqueuelen', 'alias', 'altnames', 'master', 'promisc_flag', 'allmulti_flag', 'promiscuity', 'allmulti'],
  addr: ['ipv4', 'ipv6'],
  route: ['routes'],
  neigh: ['neighbours'],
  maddr: ['multicast'],
  uc: ['unicast'],
  vlan: ['vlans'],
  qdisc: ['qdisc'],
  features: ['features'],
  rings: ['rings'],
  pause: ['pause'],
  settings: ['link_settings', 'wol', 'msglvl'],
  coalesce: ['coalesce'],
  channels: ['channels'],
  privflags: ['private_flags'],
} as const;
export type KeyGroup = keyof typeof KEY_GROUPS;
export type ConfigKey = (typeof KEY_GROUPS)[KeyGroup][number];
export const ALL_GROUPS = Object.keys(KEY_GROUPS) as KeyGroup[];

export class SnapshotError extends Error {}

function asRecord(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SnapshotError(`${what}: expected a JSON object`);
  return v as Record<string, unknown>;
}
function asArray(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v)) throw new SnapshotError(`${what}: expected a JSON array`);
  return v;
}
function parseJson(text: string, what: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new SnapshotError(`${what}: output is not JSON: ${text.slice(0, 200)}`);
  }
}
/** The single object of an `ip -json ... show dev X` or `ethtool --json` answer. */
function only(text: string, what: string): Record<string, unknown> {
  const list = asArray(parseJson(text, what), what);
  if (list.length !== 1) throw new SnapshotError(`${what}: expected one device, got ${list.length}`);
  return asRecord(list[0], what);
}
const sorted = <T>(xs: T[]): T[] => [...xs].sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));

export interface LinkIdentity {
  ifindex: number;
  name: string;
  /** Bus address of the parent device (e.g. 0000:00:03.0), null for virtual devices. */
  bus: string | null;
}

/** `ip -json -details link show dev X` → identity and the link group's keys. */
export function linkKeys(text: string): { identity: LinkIdentity; keys: Record<string, JsonValue> } {
  const link = only(text, 'ip link');
  const flags = asArray(link['flags'], 'ip link flags') as string[];
  const num = (k: string): number => {
    const v = link[k];
    if (typeof v !== 'number') throw new SnapshotError(`ip link: no numeric "${k}"`);
    return v;
  };
  const str = (k: string): string | null => (typeof link[k] === 'string' ? (link[k]) : null);
  return {
    identity: { ifindex: num('ifindex'), name: str('ifname') ?? '', bus: str('parentdev') },
    keys: {
      admin_up: flags.includes('UP'),
      mtu: num('mtu'),
      mac: str('address'),
      txqueuelen: num('txqlen'),
      alias: str('ifalias'),
      altnames: sorted((link['altnames'] as string[] | undefined) ?? []),
      master: str('master'),
      // ip reports the flags an administrator set; the counts include every holder.
      promisc_flag: flags.includes('PROMISC'),
      allmulti_flag: flags.includes('ALLMULTI'),
      promiscuity: num('promiscuity'),
      allmulti: typeof link['allmulti'] === 'number' ? link['allmulti'] : 0,
    },
  };
}

/** The eight 16-bit groups of an IPv6 address, or null if it is not one. */
export function ipv6Groups(addr: string): number[] | null {
  const halves = addr.split('::');
  if (halves.length > 2) return null;
  const parse = (part: string): number[] | null => {
    if (part === '') return [];
    const groups = part.split(':').map((g) => (/^[0-9a-f]{1,4}$/i.test(g) ? parseInt(g, 16) : NaN));
    return groups.some(Number.isNaN) ? null : groups;
  };
  const head = parse(halves[0]!);
  const tail = halves.length === 2 ? parse(halves[1]!) : [];
  if (!head || !tail) return null;
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return null;
  return [...head, ...Array<number>(missing).fill(0), ...tail];
}

/** Whether addr is the link-local address the kernel derives from the MAC (EUI-64): not configuration. */
export function isEui64LinkLocal(addr: string, mac: string | null): boolean {
  const b = mac?.split(':').map((h) => parseInt(h, 16));
  const g = ipv6Groups(addr);
  if (!b || b.length !== 6 || b.some((x) => Number.isNaN(x)) || !g) return false;
  const want = [0xfe80, 0, 0, 0, ((b[0]! ^ 2) << 8) | b[1]!, (b[2]! << 8) | 0xff, 0xfe00 | b[3]!, (b[4]! << 8) | b[5]!];
  return want.every((w, i) => g[i] === w);
}

/** `ip -json addr show dev X` → configured IPv4 and IPv6 addresses (not SLAAC, not the EUI-64 link-local). */
export function addrKeys(text: string, mac: string | null): Record<string, JsonValue> {
  const info = asArray(only(text, 'ip addr')['addr_info'] ?? [], 'ip addr addr_info').map((a) => asRecord(a, 'addr_info'));
  const v4 = info
    .filter((a) => a['family'] === 'inet')
    .map((a) => ({ address: `${String(a['local'])}/${String(a['prefixlen'])}`, label: typeof a['label'] === 'string' ? a['label'] : null }));
  const v6 = info
    .filter((a) => a['family'] === 'inet6' && a['dynamic'] !== true && !isEui64LinkLocal(String(a['local']), mac))
    .map((a) => `${String(a['local'])}/${String(a['prefixlen'])}`);
  return { ipv4: sorted(v4), ipv6: sorted(v6) };
}

/** `ip -json [-6] route show dev X` → routes an administrator added (not the kernel's or router adverts'). */
export function routeEntries(text: string): JsonValue[] {
  return asArray(parseJson(text, 'ip route'), 'ip route')
    .map((r) => asRecord(r, 'route'))
    .filter((r) => r['protocol'] !== 'kernel' && r['protocol'] !== 'ra')
    .map((r) => {
      const route: Record<string, JsonValue> = { dst: String(r['dst']) };
      for (const k of ['gateway', 'metric', 'protocol', 'scope', 'type'] as const) {
        const v = r[k];
        if (typeof v === 'string' || typeof v === 'number') route[k] = v;
      }
      return route;
    });
}

/** `ip -json neigh show dev X nud permanent` → static neighbours. */
export function neighbourKeys(text: string): Record<string, JsonValue> {
  const list = asArray(parseJson(text, 'ip neigh'), 'ip neigh').map((n) => asRecord(n, 'neighbour'));
  return { neighbours: sorted(list.map((n) => ({ dst: String(n['dst']), lladdr: typeof n['lladdr'] === 'string' ? n['lladdr'] : null }))) };
}

/** `ip -json maddr show dev X` → link-layer multicast addresses added by hand (the stack re-adds its own). */
export function maddrKeys(text: string): Record<string, JsonValue> {
  const list = asArray(only(text, 'ip maddr')['maddr'] ?? [], 'ip maddr').map((m) => asRecord(m, 'maddr'));
  return { multicast: sorted(list.filter((m) => m['features'] === 'static' && typeof m['link'] === 'string').map((m) => String(m['link']))) };
}

/** `bridge -json fdb show dev X` → the secondary unicast addresses in the device's own filter ("self"). */
export function unicastKeys(text: string): Record<string, JsonValue> {
  const list = asArray(parseJson(text, 'bridge fdb'), 'bridge fdb').map((e) => asRecord(e, 'fdb entry'));
  const isUnicast = (mac: string): boolean => (parseInt(mac.slice(0, 2), 16) & 1) === 0;
  const own = list.filter((e) => Array.isArray(e['flags']) && (e['flags'] as unknown[]).includes('self') && typeof e['mac'] === 'string');
  return { unicast: sorted(own.map((e) => String(e['mac'])).filter(isUnicast)) };
}

/** `ip -json -details link show type vlan` → the VLANs on top of device `name`, whose filters its driver holds. */
export function vlanKeys(text: string, name: string): Record<string, JsonValue> {
  const links = asArray(parseJson(text, 'ip link type vlan'), 'ip link type vlan').map((l) => asRecord(l, 'vlan link'));
  const vlans = links
    .filter((l) => l['link'] === name)
    .map((l) => {
      const data = asRecord(asRecord(l['linkinfo'] ?? {}, 'linkinfo')['info_data'] ?? {}, 'vlan info');
      return { name: String(l['ifname']), protocol: String(data['protocol']), id: Number(data['id']) };
    });
  return { vlans: sorted(vlans) };
}

/** `tc -json qdisc show dev X` → the root qdisc (kind, handle, options). */
export function qdiscKeys(text: string): Record<string, JsonValue> {
  const list = asArray(parseJson(text, 'tc qdisc'), 'tc qdisc').map((q) => asRecord(q, 'qdisc'));
  const root = list.find((q) => q['root'] === true) ?? null;
  if (!root) return { qdisc: null };
  return { qdisc: { kind: String(root['kind']), handle: String(root['handle']), options: (root['options'] ?? null) as JsonValue } };
}

/** `ethtool --json -k X` → the features an administrator can change, as requested. */
export function featureSettings(text: string): JsonValue {
  const features: Record<string, JsonValue> = {};
  for (const [name, v] of Object.entries(only(text, 'ethtool -k'))) {
    if (name === 'ifname' || typeof v !== 'object' || v === null) continue;
    const f = v as Record<string, unknown>;
    if (f['fixed'] === false && typeof f['requested'] === 'boolean') features[name] = f['requested'];
  }
  return features;
}

/** `ethtool --json -a X` → pause settings. */
export function pauseSettings(text: string): JsonValue {
  const p = only(text, 'ethtool -a');
  return { autonegotiate: p['autonegotiate'] === true, rx: p['rx'] === true, tx: p['tx'] === true };
}

/** Key groups that one ethtool query reads into their one key. */
const ETHTOOL_QUERIES: Partial<Record<KeyGroup, { key: ConfigKey; args: string[]; read: (text: string) => JsonValue }>> = {
  features: { key: 'features', args: ['--json', '-k'], read: featureSettings },
  pause: { key: 'pause', args: ['--json', '-a'], read: pauseSettings },
  rings: { key: 'rings', args: ['-g'], read: (t) => ({ ...parseRings(t) }) },
  coalesce: { key: 'coalesce', args: ['-c'], read: parseCoalesce },
  channels: { key: 'channels', args: ['-l'], read: (t) => ({ ...parseChannels(t) }) },
  privflags: { key: 'private_flags', args: ['--show-priv-flags'], read: parsePrivFlags },
};

/** The driver does not implement this query: the key has no value on this device, which is not an error. */
const UNSUPPORTED = /Operation not supported|not supported by this device/;

interface ToolResult {
  stdout: string;
  stderr: string;
  exitCode: number | null;
  /** The tool printed more than TOOL_OUTPUT_LIMIT and was stopped. */
  overflow?: true;
}
export type RunTool = (file: string, args: string[]) => Promise<ToolResult>;

/**
 * The most one query of one device may print. What an administrator configures
 * by hand fits many times over (1 MiB of `ip -json route` is about 15,000
 * routes); a table larger than that is a routing daemon's or a script's, which
 * re-installs it itself, and parsing it would not fit the daemon's 32 MB heap.
 */
export const TOOL_OUTPUT_LIMIT = 1024 * 1024;

const runTool: RunTool = (file, args) => runProgram(file, args, 10_000, TOOL_OUTPUT_LIMIT);

/** A group whose query printed more than TOOL_OUTPUT_LIMIT: its keys are null (not kept, not replayed). */
export interface OversizedGroup {
  group: KeyGroup;
  /** The query, e.g. `ip route`. */
  what: string;
}

export interface DeviceSnapshot {
  identity: LinkIdentity;
  keys: Partial<Record<ConfigKey, JsonValue>>;
  /** Groups too large to keep (TOOL_OUTPUT_LIMIT); absent when none. */
  oversized?: OversizedGroup[];
}

class OutputTooLarge extends Error {
  constructor(readonly what: string) {
    super(`${what} printed more than ${String(TOOL_OUTPUT_LIMIT)} bytes`);
  }
}

/**
 * Reads the given key groups of device `name`. Keys whose query the driver
 * does not support are set to null; any other tool failure throws.
 */
export async function snapshotDevice(name: string, groups: readonly KeyGroup[] = ALL_GROUPS, run: RunTool = runTool): Promise<DeviceSnapshot> {
  const badName = interfaceArgProblem(name);
  if (badName) throw new SnapshotError(`cannot read ${JSON.stringify(name)}: ${badName}`);
  const query = async (what: string, file: string, args: string[]): Promise<string | null> => {
    const r = await run(file, args);
    if (r.overflow) throw new OutputTooLarge(what);
    if (r.exitCode === 0) return r.stdout;
    if (UNSUPPORTED.test(r.stderr) || UNSUPPORTED.test(r.stdout)) return null;
    throw new SnapshotError(`${what} for ${name} failed (exit ${String(r.exitCode)}): ${(r.stderr || r.stdout).trim()}`);
  };
  const linkText = await query('ip link', 'ip', ['-json', '-details', 'link', 'show', 'dev', name]).catch((err: unknown) => {
    throw err instanceof OutputTooLarge ? new SnapshotError(`cannot read ${name}: ${err.message}`) : err;
  });
  if (linkText === null) throw new SnapshotError(`ip link cannot read ${name}`);
  const link = linkKeys(linkText);
  const mac = typeof link.keys['mac'] === 'string' ? link.keys['mac'] : null;
  // The groups are independent queries: run them side by side.
  const readGroup = async (group: KeyGroup): Promise<Record<string, JsonValue>> => {
    const keys: Record<string, JsonValue> = {};
    const ethtool = ETHTOOL_QUERIES[group];
    if (ethtool) {
      // A driver without the operation leaves the key null.
      const t = await query(`ethtool ${ethtool.args.at(-1)}`, 'ethtool', [...ethtool.args, name]);
      keys[ethtool.key] = t === null ? null : ethtool.read(t);
      return keys;
    }
    switch (group) {
      case 'link':
        Object.assign(keys, link.keys);
        break;
      case 'addr': {
        const t = await query('ip addr', 'ip', ['-json', 'addr', 'show', 'dev', name]);
        if (t !== null) Object.assign(keys, addrKeys(t, mac));
        break;
      }
      case 'route': {
        const v4 = await query('ip route', 'ip', ['-json', '-4', 'route', 'show', 'dev', name]);
        const v6 = await query('ip -6 route', 'ip', ['-json', '-6', 'route', 'show', 'dev', name]);
        keys['routes'] = sorted([...routeEntries(v4 ?? '[]'), ...routeEntries(v6 ?? '[]')]);
        break;
      }
      case 'neigh': {
        const t = await query('ip neigh', 'ip', ['-json', 'neigh', 'show', 'dev', name, 'nud', 'permanent']);
        Object.assign(keys, neighbourKeys(t ?? '[]'));
        break;
      }
      case 'maddr': {
        const t = await query('ip maddr', 'ip', ['-json', 'maddr', 'show', 'dev', name]);
        if (t !== null) Object.assign(keys, maddrKeys(t));
        break;
      }
      case 'uc': {
        const t = await query('bridge fdb', 'bridge', ['-json', 'fdb', 'show', 'dev', name]);
        Object.assign(keys, unicastKeys(t ?? '[]'));
        break;
      }
      case 'vlan': {
        const t = await query('ip link type vlan', 'ip', ['-json', '-details', 'link', 'show', 'type', 'vlan']);
        Object.assign(keys, vlanKeys(t ?? '[]', name));
        break;
      }
      case 'qdisc': {
        const t = await query('tc qdisc', 'tc', ['-json', 'qdisc', 'show', 'dev', name]);
        Object.assign(keys, qdiscKeys(t ?? '[]'));
        break;
      }
      case 'settings': {
        const t = await query('ethtool', 'ethtool', [name]);
        const s = t === null ? null : parseLinkSettings(t);
        // With autonegotiation on, speed and duplex are its outcome, not configuration.
        keys['link_settings'] = s && (s.autoneg === false ? { autoneg: false, speed: s.speed, duplex: s.duplex } : { autoneg: s.autoneg, advertised: s.advertised });
        keys['wol'] = s?.wol ?? null;
        keys['msglvl'] = s?.msglvl ?? null;
        break;
      }
    }
    return keys;
  };
  const oversized: OversizedGroup[] = [];
  const readBounded = async (group: KeyGroup): Promise<Record<string, JsonValue>> => {
    try {
      return await readGroup(group);
    } catch (err) {
      if (!(err instanceof OutputTooLarge)) throw err;
      oversized.push({ group, what: err.what });
      return Object.fromEntries(KEY_GROUPS[group].map((k) => [k, null]));
    }
  };
  const keys = Object.assign({}, ...(await Promise.all(groups.map(readBounded)))) as Record<string, JsonValue>;
  return { identity: link.identity, keys, oversized };
}
