// Puts a network device's shadow back onto the device as it is now: after an
// administrator reloaded its driver by hand (`shadowctl replay IFACE`), and
// after a restart by the kernel helper, for what the restart lost.
// planReplay compares the shadow with a snapshot read now and returns the
// ip / ethtool / tc / bridge commands (argv arrays) that set the keys which
// differ, in dependency order; planRestartReplay does so only for keys nobody
// changed since the restart began; runReplay runs them once each and reports.
import { runProgram, type ProgramResult } from '../../core/run-program.js';
import { interfaceArgProblem } from './interface-name.js';
import { isEui64LinkLocal, type ConfigKey, type DeviceSnapshot, type JsonValue } from './netdev-snapshot.js';

export interface ReplayStep {
  key: string;
  argv: string[];
}

export type ReplayReport = { device: string; steps: { key: string; argv: string[]; ok: boolean; error?: string }[] };

/** A difference between shadow and device that the plan leaves as it is, and why. */
export interface ReplayGap {
  key: string;
  reason: string;
}

/** A device's shadow: key → value as the shadow stores it, or the store's entries for the device. */
export type ShadowValues = Readonly<Record<string, JsonValue | undefined>> | readonly ShadowPair[];
interface ShadowPair {
  readonly key: string;
  readonly value: JsonValue;
}
const isPairList = (s: ShadowValues): s is readonly ShadowPair[] => Array.isArray(s);

/** key → value of a shadow given either way. */
export function shadowValues(shadow: ShadowValues): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  const pairs: [string, JsonValue | undefined][] = isPairList(shadow) ? shadow.map((e) => [e.key, e.value]) : Object.entries(shadow);
  for (const [k, v] of pairs) if (v !== undefined) out[k] = v;
  return out;
}

type Obj = { readonly [k: string]: JsonValue };
const isObj = (v: JsonValue | undefined): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
const isCount = (v: JsonValue | undefined): v is number => typeof v === 'number' && Number.isInteger(v) && v >= 0;
const onOff = (b: boolean): string => (b ? 'on' : 'off');
const strings = (v: JsonValue | undefined): string[] | null => (Array.isArray(v) && v.every((s) => typeof s === 'string') ? v : null);
const objects = (v: JsonValue | undefined): Obj[] | null => (Array.isArray(v) && v.every((o) => isObj(o)) ? v : null);
const str = (v: JsonValue | undefined): string | null => (typeof v === 'string' ? v : null);
const show = (v: JsonValue | undefined): string => (typeof v === 'string' ? v : JSON.stringify(v) ?? 'nothing');

/** A list of objects, each picked into its typed form; null if any does not fit. */
function listOf<T>(v: JsonValue | undefined, pick: (o: Obj) => T | null): T[] | null {
  const list = objects(v);
  if (!list) return null;
  const out: T[] = [];
  for (const o of list) {
    const t = pick(o);
    if (t === null) return null;
    out.push(t);
  }
  return out;
}
// The shapes netdev-snapshot.ts gives these keys.
type Addr4 = { address: string; label: string | null };
const addr4s = (v: JsonValue | undefined): Addr4[] | null =>
  listOf(v, (o) => (typeof o['address'] === 'string' ? { address: o['address'], label: str(o['label']) } : null));
type Vlan = { name: string; protocol: string; id: number };
const vlanList = (v: JsonValue | undefined): Vlan[] | null =>
  listOf(v, (o) => (typeof o['name'] === 'string' && interfaceArgProblem(o['name']) === null && typeof o['protocol'] === 'string' && isCount(o['id']) ? { name: o['name'], protocol: o['protocol'], id: o['id'] } : null));
type Neighbour = { dst: string; lladdr: string | null };
const neighbourList = (v: JsonValue | undefined): Neighbour[] | null =>
  listOf(v, (o) => (typeof o['dst'] === 'string' ? { dst: o['dst'], lladdr: str(o['lladdr']) } : null));
type Route = { dst: string; gateway: string | null; all: Obj };
const routeList = (v: JsonValue | undefined): Route[] | null =>
  listOf(v, (o) => (typeof o['dst'] === 'string' ? { dst: o['dst'], gateway: str(o['gateway']), all: o } : null));

/** JSON with object keys sorted: equality of values regardless of key order (lists are kept in order, the snapshot sorts them). */
function canonical(v: JsonValue | undefined): string {
  if (v === undefined) return 'undefined';
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  if (isObj(v)) return `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canonical(v[k])}`).join(',')}}`;
  return JSON.stringify(v);
}

interface Ctx {
  dev: string;
  shadow: Readonly<Record<string, JsonValue>>;
  current: Readonly<Record<string, JsonValue | undefined>>;
}
interface Out {
  step(argv: string[]): void;
  /** A step that runs before all others, see EARLY_ORDER. */
  early(argv: string[]): void;
  gap(reason: string): void;
}
/** Plans one key whose shadow value `want` differs from what the device has now (`have`, undefined if not read). */
type Planner = (want: JsonValue, have: JsonValue | undefined, ctx: Ctx, out: Out) => void;

const link = (ctx: Ctx, ...args: string[]): string[] => ['ip', 'link', 'set', 'dev', ctx.dev, ...args];
const unexpected = (out: Out, want: JsonValue): void => out.gap(`unexpected shadow value ${JSON.stringify(want).slice(0, 200)}`);

/** The fields of an ethtool settings object (numbers, on/off) that differ, as `ethtool OPTION DEV name value...`. */
function ethtoolFields(option: string, fields: readonly (readonly [string, string])[]): Planner {
  return (want, have, ctx, out) => {
    // null: the driver has no such settings.
    if (want === null) return;
    if (!isObj(want)) return unexpected(out, want);
    const args = fields.flatMap(([field, param]) => {
      const v = want[field];
      if (isObj(have) && have[field] === v) return [];
      if (typeof v === 'boolean') return [param, onOff(v)];
      return isCount(v) ? [param, String(v)] : [];
    });
    if (args.length > 0) out.step(['ethtool', option, ctx.dev, ...args]);
  };
}

/** Boolean maps (features, private flags): the names whose value differs, as `ethtool OPTION DEV name on|off...`. */
function ethtoolFlags(option: string): Planner {
  return (want, have, ctx, out) => {
    if (want === null) return;
    if (!isObj(want)) return unexpected(out, want);
    const args = Object.entries(want).flatMap(([name, v]) => (typeof v === 'boolean' && (!isObj(have) || have[name] !== v) ? [name, onOff(v)] : []));
    if (args.length > 0) out.step(['ethtool', option, ctx.dev, ...args]);
  };
}

/** `ethtool -c` prints these labels; `ethtool -C` takes them as parameters, except the four "-frame-low/high" it spells "-frames-". */
const COALESCE_PARAMS = new Set([
  'adaptive-rx', 'adaptive-tx', 'stats-block-usecs', 'sample-interval', 'pkt-rate-low', 'pkt-rate-high',
  'rx-usecs', 'rx-frames', 'rx-usecs-irq', 'rx-frames-irq', 'tx-usecs', 'tx-frames', 'tx-usecs-irq', 'tx-frames-irq',
  'rx-usecs-low', 'rx-frames-low', 'tx-usecs-low', 'tx-frames-low', 'rx-usecs-high', 'rx-frames-high', 'tx-usecs-high', 'tx-frames-high',
]);

/** List keys: delete what the device has and the shadow does not, then add what is missing. */
function listPlanner<T extends JsonValue>(
  parse: (v: JsonValue | undefined) => T[] | null,
  del: ((item: T, ctx: Ctx) => string[]) | null,
  add: (item: T, ctx: Ctx) => string[],
): Planner {
  return (want, have, ctx, out) => {
    const wanted = parse(want);
    if (!wanted) return unexpected(out, want);
    const present = parse(have) ?? [];
    const wantedSet = new Set(wanted.map(canonical));
    const presentSet = new Set(present.map(canonical));
    for (const item of present) {
      if (wantedSet.has(canonical(item))) continue;
      if (del) out.early(del(item, ctx));
      else out.gap(`${JSON.stringify(item)} is not in the shadow; left in place`);
    }
    for (const item of wanted) if (!presentSet.has(canonical(item))) out.step(add(item, ctx));
  };
}

const isLinkLocal = (addr: string): boolean => /^fe[89ab][0-9a-f]:/i.test(addr);

function routeArgs(verb: 'add' | 'del', r: Route, ctx: Ctx): string[] {
  const opt = (name: string, v: JsonValue | undefined): string[] => (typeof v === 'string' || typeof v === 'number' ? [name, String(v)] : []);
  // The snapshot does not keep the family: an IPv6 route has a ':' in its destination or gateway.
  const v6 = r.dst.includes(':') || (r.gateway?.includes(':') ?? false);
  return [
    'ip', ...(v6 ? ['-6'] : []), 'route', verb,
    ...(typeof r.all['type'] === 'string' ? [r.all['type']] : []),
    r.dst,
    ...opt('via', r.gateway ?? undefined), ...opt('metric', r.all['metric']), ...opt('proto', r.all['protocol']), ...opt('scope', r.all['scope']),
    'dev', ctx.dev,
  ];
}

/** fq_codel keeps times in 1024 ns units and prints them rounded down to µs: the µs value that prints back as `shown`. */
export function codelMicros(shown: number): number {
  const units = Math.ceil((shown * 125) / 128);
  return Math.ceil((units * 128) / 125);
}

/** tc arguments that re-create a root qdisc from its `tc -json` options; a string says why it cannot. */
function qdiscArgs(kind: string, options: JsonValue | undefined): { create: string[]; change: string[] } | string {
  const o = isObj(options) ? options : {};
  const extra = (allowed: string[]): string[] => Object.keys(o).filter((k) => !allowed.includes(k));
  const n = (k: string): number | null => (isCount(o[k]) ? o[k] : null);
  switch (kind) {
    case 'pfifo':
    case 'bfifo': {
      const limit = n('limit');
      return limit === null || extra(['limit']).length > 0 ? `${kind} options ${JSON.stringify(o)} not understood` : { create: ['limit', String(limit)], change: ['limit', String(limit)] };
    }
    case 'tbf': {
      // tc's JSON leaves out peakrate, so a tbf with minburst cannot be re-created.
      const rest = extra(['rate', 'burst', 'lat', 'limit']);
      const rate = n('rate');
      const burst = n('burst');
      const lat = n('lat');
      const limit = n('limit');
      if (rest.length > 0 || rate === null || burst === null || (lat === null && limit === null)) {
        return `tbf options ${JSON.stringify(o)} cannot be given back to tc${rest.length > 0 ? ` (${rest.join(', ')})` : ''}`;
      }
      // rate is in bytes/s ("bps" to tc), burst and limit in bytes, lat in µs.
      const args = ['rate', `${rate}bps`, 'burst', String(burst), ...(lat !== null ? ['latency', `${lat}us`] : ['limit', String(limit)])];
      return { create: args, change: args };
    }
    case 'fq_codel': {
      const rest = extra(['limit', 'flows', 'quantum', 'target', 'interval', 'memory_limit', 'ecn', 'ce_threshold', 'drop_batch']);
      if (rest.length > 0) return `fq_codel options ${rest.join(', ')} cannot be given back to tc`;
      const count = (k: string, name = k): string[] => (n(k) === null ? [] : [name, String(n(k))]);
      const time = (k: string): string[] => (n(k) === null ? [] : [k, `${codelMicros(n(k)!)}us`]);
      const common = [
        ...count('limit'), ...count('quantum'), ...time('target'), ...time('interval'), ...time('ce_threshold'),
        ...count('memory_limit'), ...count('drop_batch'), o['ecn'] === true ? 'ecn' : 'noecn',
      ];
      // The kernel refuses to change the number of flows of an existing fq_codel.
      return { create: [...count('flows'), ...common], change: common };
    }
    default:
      return `replaying a ${kind} root qdisc is not supported`;
  }
}

/** One planner per configuration key, in the order the plan runs them. */
const PLANNERS: Record<ConfigKey, Planner> = {
  // Address and MTU first, while a freshly loaded device is still down. A
  // driver that cannot change its address while up (eth_mac_addr) fails the
  // step: taking a running device down for it would drop its traffic.
  mac: (want, _have, ctx, out) => {
    // null: a device without a link-layer address.
    if (typeof want === 'string') out.step(link(ctx, 'address', want));
    else if (want !== null) unexpected(out, want);
  },
  mtu: (want, _have, ctx, out) => (isCount(want) ? out.step(link(ctx, 'mtu', String(want))) : unexpected(out, want)),
  txqueuelen: (want, _have, ctx, out) => (isCount(want) ? out.step(link(ctx, 'txqueuelen', String(want))) : unexpected(out, want)),
  // An empty alias clears it.
  alias: (want, _have, ctx, out) => (want === null || typeof want === 'string' ? out.step(link(ctx, 'alias', want ?? '')) : unexpected(out, want)),
  // Extra altnames are left: udev names a device as it probes it.
  altnames: listPlanner(strings, null, (name, ctx) => ['ip', 'link', 'property', 'add', 'dev', ctx.dev, 'altname', name]),

  // Driver settings, before the device opens with them.
  features: ethtoolFlags('-K'),
  rings: ethtoolFields('-G', [['rx', 'rx'], ['rx_mini', 'rx-mini'], ['rx_jumbo', 'rx-jumbo'], ['tx', 'tx']]),
  pause: ethtoolFields('-A', [['autonegotiate', 'autoneg'], ['rx', 'rx'], ['tx', 'tx']]),
  coalesce: (want, have, ctx, out) => {
    if (want === null) return;
    if (!isObj(want)) return unexpected(out, want);
    const args: string[] = [];
    for (const [label, v] of Object.entries(want)) {
      if (isObj(have) && have[label] === v) continue;
      const param = label.replace(/^(rx|tx)-frame-(low|high)$/, '$1-frames-$2');
      if (!COALESCE_PARAMS.has(param) || (typeof v !== 'boolean' && !isCount(v))) out.gap(`coalescing parameter ${label} = ${JSON.stringify(v)} has no ethtool -C form`);
      else args.push(param, typeof v === 'boolean' ? onOff(v) : String(v));
    }
    if (args.length > 0) out.step(['ethtool', '-C', ctx.dev, ...args]);
  },
  channels: ethtoolFields('-L', [['rx', 'rx'], ['tx', 'tx'], ['other', 'other'], ['combined', 'combined']]),
  private_flags: ethtoolFlags('--set-priv-flags'),
  msglvl: (want, _have, ctx, out) => {
    if (want === null) return;
    if (isCount(want)) out.step(['ethtool', '-s', ctx.dev, 'msglvl', String(want)]);
    else unexpected(out, want);
  },
  // VLANs on top go with their lower device. Only the VLAN devices come back
  // (down): their own configuration is not in this device's shadow. One that
  // is not in the shadow is left, with whatever configuration it carries.
  vlans: listPlanner(vlanList, null, (v, ctx) => ['ip', 'link', 'add', 'link', ctx.dev, 'name', v.name, 'type', 'vlan', 'protocol', v.protocol, 'id', String(v.id)]),
  master: (want, _have, ctx, out) => {
    if (typeof want === 'string') out.step(link(ctx, 'master', want));
    else if (want === null) out.step(link(ctx, 'nomaster'));
    else unexpected(out, want);
  },

  // Down goes early instead: then the address can change on drivers that refuse to while up (pcnet32).
  admin_up: (want, _have, ctx, out) => (typeof want === 'boolean' ? (want ? out.step(link(ctx, 'up')) : out.early(link(ctx, 'down'))) : unexpected(out, want)),
  // Link settings once the device is open: a driver that resets its PHY when
  // it opens (e100) forgets the modes it was told to advertise while down.
  link_settings: (want, have, ctx, out) => {
    if (want === null || (isObj(want) && want['autoneg'] === null)) return;
    if (!isObj(want)) return unexpected(out, want);
    if (want['autoneg'] === false) {
      const speed = want['speed'];
      const duplex = typeof want['duplex'] === 'string' ? want['duplex'].toLowerCase() : '';
      // A speed or duplex the link did not report (link down) cannot be forced back.
      out.step(['ethtool', '-s', ctx.dev, 'autoneg', 'off', ...(isCount(speed) ? ['speed', String(speed)] : []), ...(duplex === 'full' || duplex === 'half' ? ['duplex', duplex] : [])]);
      return;
    }
    const wanted = strings(want['advertised']) ?? [];
    // Named modes change one bit each: switch on the missing ones and off the extra ones the device advertises now.
    const now = isObj(have) && have['autoneg'] === true ? (strings(have['advertised']) ?? []) : [];
    const modes = [...wanted.filter((m) => !now.includes(m)).flatMap((m) => [m, 'on']), ...now.filter((m) => !wanted.includes(m)).flatMap((m) => [m, 'off'])];
    out.step(['ethtool', '-s', ctx.dev, 'autoneg', 'on', ...(modes.length > 0 ? ['advertise', ...modes] : [])]);
  },
  wol: (want, _have, ctx, out) => {
    if (want === null) return;
    if (typeof want === 'string' && /^[pumbagsfd]+$/.test(want)) out.step(['ethtool', '-s', ctx.dev, 'wol', want]);
    else unexpected(out, want);
  },

  // The flags an administrator set; the counts below include every holder.
  promisc_flag: (want, _have, ctx, out) => (typeof want === 'boolean' ? out.step(link(ctx, 'promisc', onOff(want))) : unexpected(out, want)),
  allmulti_flag: (want, _have, ctx, out) => (typeof want === 'boolean' ? out.step(link(ctx, 'allmulticast', onOff(want))) : unexpected(out, want)),
  // Reference counts held by sniffers' sockets, bridge ports and the kernel's
  // own fallbacks: no tool sets them; their holders take them again, or not.
  promiscuity: () => undefined,
  allmulti: () => undefined,

  // Stack state last: taking a device down drops its routes and IPv6
  // addresses, so they are added once it is up. IPv4: a label that only
  // differs is not re-applied, which would mean deleting the address, and the
  // kernel drops its routes and secondaries with it.
  ipv4: (want, have, ctx, out) => {
    const wanted = addr4s(want);
    if (!wanted) return unexpected(out, want);
    const present = addr4s(have) ?? [];
    // Backwards: secondaries tend to sort after their primary, whose deletion would take them along.
    for (const a of [...present].reverse()) if (!wanted.some((w) => w.address === a.address)) out.early(['ip', 'addr', 'del', a.address, 'dev', ctx.dev]);
    for (const a of wanted) {
      const now = present.find((p) => p.address === a.address);
      if (now) {
        if (now.label !== a.label) out.gap(`${a.address} has label ${show(now.label)}, ${show(a.label)} in the shadow`);
        continue;
      }
      // An alias label follows the device's current name, as the kernel renames labels with the device.
      const label = a.label === null || a.label === ctx.dev ? null : a.label.includes(':') ? `${ctx.dev}:${a.label.slice(a.label.indexOf(':') + 1)}` : a.label;
      out.step(['ip', 'addr', 'add', a.address, 'dev', ctx.dev, ...(label === null ? [] : ['label', label])]);
    }
  },
  ipv6: (want, have, ctx, out) => {
    const macs = [ctx.shadow['mac'], ctx.current['mac']].map((m) => (typeof m === 'string' ? m : null));
    // Link-local addresses the kernel derives from the MAC (this one or the old one) are not configuration.
    const kernels = (a: string): boolean => macs.some((m) => isEui64LinkLocal(a.split('/')[0]!, m));
    const wanted = strings(want);
    if (!wanted) return unexpected(out, want);
    const present = strings(have) ?? [];
    // Another link-local the device has now is the kernel's own (stable-privacy or random modes): left.
    for (const a of present) if (!wanted.includes(a) && !kernels(a) && !isLinkLocal(a)) out.early(['ip', '-6', 'addr', 'del', a, 'dev', ctx.dev]);
    for (const a of wanted) if (!present.includes(a) && !kernels(a)) out.step(['ip', '-6', 'addr', 'add', a, 'dev', ctx.dev]);
  },
  routes: (want, have, ctx, out) => {
    // null: the table was too large to keep (TOOL_OUTPUT_LIMIT); whoever made it re-installs it.
    if (want === null) return out.gap('the routing table was too large for the shadow to keep; its routes are left as they are');
    const wanted = routeList(want);
    if (!wanted) return unexpected(out, want);
    const present = routeList(have) ?? [];
    const wantedSet = new Set(wanted.map((r) => canonical(r.all)));
    const presentSet = new Set(present.map((r) => canonical(r.all)));
    for (const r of present) if (!wantedSet.has(canonical(r.all))) out.early(routeArgs('del', r, ctx));
    // Directly connected routes first: a gateway must be reachable when its route is added.
    const missing = wanted.filter((r) => !presentSet.has(canonical(r.all)));
    for (const r of [...missing.filter((r) => r.gateway === null), ...missing.filter((r) => r.gateway !== null)]) out.step(routeArgs('add', r, ctx));
  },
  neighbours: (want, have, ctx, out) => {
    const wanted = neighbourList(want);
    if (!wanted) return unexpected(out, want);
    const present = neighbourList(have) ?? [];
    for (const n of present) if (!wanted.some((w) => w.dst === n.dst)) out.early(['ip', 'neigh', 'del', n.dst, 'dev', ctx.dev]);
    for (const n of wanted) {
      const now = present.find((p) => p.dst === n.dst);
      if (now && now.lladdr === n.lladdr) continue;
      // ip cannot make a permanent entry without a link-layer address.
      if (n.lladdr === null) out.gap(`permanent neighbour ${n.dst} has no link-layer address`);
      // replace: a dynamic entry for the same address may be there (the snapshot reads only permanent ones).
      else out.step(['ip', 'neigh', 'replace', n.dst, 'lladdr', n.lladdr, 'dev', ctx.dev, 'nud', 'permanent']);
    }
  },
  multicast: listPlanner(strings, (m, ctx) => ['ip', 'maddr', 'del', m, 'dev', ctx.dev], (m, ctx) => ['ip', 'maddr', 'add', m, 'dev', ctx.dev]),
  unicast: listPlanner(
    strings,
    (m, ctx) => ['bridge', 'fdb', 'del', m, 'dev', ctx.dev, 'self'],
    (m, ctx) => ['bridge', 'fdb', 'add', m, 'dev', ctx.dev, 'self', 'permanent'],
  ),
  qdisc: (want, have, ctx, out) => {
    // null: no root qdisc was shown (a device never opened has only noop), which no tool brings back.
    if (want === null) return out.gap(`the shadow has no root qdisc (the device had not been opened); ${show(isObj(have) ? have['kind'] : have)} is left`);
    if (!isObj(want) || typeof want['kind'] !== 'string' || typeof want['handle'] !== 'string') return unexpected(out, want);
    const now = isObj(have) ? have : null;
    const kind = want['kind'];
    const handle = want['handle'];
    if (handle === '0:') {
      // The kernel's default, attached when the device opens: deleting what replaced it brings it back.
      if (now && now['handle'] !== '0:') out.step(['tc', 'qdisc', 'del', 'dev', ctx.dev, 'root']);
      else if (now) out.gap(`the default root qdisc is ${show(now['kind'])} now, ${kind} in the shadow (net.core.default_qdisc changed?)`);
      return;
    }
    const args = qdiscArgs(kind, want['options']);
    if (typeof args === 'string') return out.gap(args);
    const nowOptions = now && isObj(now['options']) ? now['options'] : {};
    const wantOptions = isObj(want['options']) ? want['options'] : {};
    const sameHandle = now?.['handle'] === handle;
    // A qdisc is changed in place only into its own kind (and fq_codel keeps its flow count); otherwise it is replaced.
    const inPlace = sameHandle && now?.['kind'] === kind && (kind !== 'fq_codel' || nowOptions['flows'] === wantOptions['flows']);
    if (sameHandle && !inPlace) out.step(['tc', 'qdisc', 'del', 'dev', ctx.dev, 'root']);
    // The shadow's handle, so that the result compares equal to it.
    out.step(['tc', 'qdisc', 'replace', 'dev', ctx.dev, 'root', 'handle', handle, kind, ...(inPlace ? args.change : args.create)]);
  },
};

/**
 * Deletions of what the device has and the shadow does not run before every
 * other step, while it is all still there: taking the device down or changing
 * its address takes routes and IPv6 addresses with it, and deleting an address
 * takes its routes. So routes go before the addresses they use, and taking the
 * device down (when the shadow has it down) comes last of these.
 */
const EARLY_ORDER: readonly ConfigKey[] = ['routes', 'neighbours', 'ipv6', 'ipv4', 'multicast', 'unicast', 'admin_up'];

/** The steps that make `current` match `shadow`, and the differences they leave. */
export function planReplayWithGaps(shadow: ShadowValues, current: DeviceSnapshot): { steps: ReplayStep[]; gaps: ReplayGap[] } {
  const values = shadowValues(shadow);
  const ctx: Ctx = { dev: current.identity.name, shadow: values, current: current.keys };
  const steps: ReplayStep[] = [];
  const early: ReplayStep[] = [];
  const gaps: ReplayGap[] = [];
  for (const [key, planner] of Object.entries(PLANNERS) as [ConfigKey, Planner][]) {
    const want = values[key];
    const have = current.keys[key];
    if (want === undefined || canonical(want) === canonical(have)) continue;
    planner(want, have, ctx, {
      step: (argv) => steps.push({ key, argv }),
      early: (argv) => early.push({ key, argv }),
      gap: (reason) => gaps.push({ key, reason }),
    });
  }
  for (const key of Object.keys(values)) if (!(key in PLANNERS)) gaps.push({ key, reason: 'not a configuration key replay knows' });
  const rank = (s: ReplayStep): number => EARLY_ORDER.indexOf(s.key as ConfigKey);
  // sort is stable: a key's own deletions keep their order.
  return { steps: [...early.sort((a, b) => rank(a) - rank(b)), ...steps], gaps };
}

/**
 * The commands that make the device, as `current` (a snapshot read now) shows
 * it, match its shadow: only for keys that differ, in dependency order. Keys
 * missing from `current` are treated as unknown and set in full.
 */
export function planReplay(shadow: ShadowValues, current: DeviceSnapshot): ReplayStep[] {
  return planReplayWithGaps(shadow, current).steps;
}

/** A shadow entry with the store's change counter, as ShadowStore.entries gives it. */
export interface CountedShadowEntry {
  readonly key: string;
  readonly value: JsonValue;
  readonly seq: number;
}

/**
 * The replay after a restart by the kernel helper: what the restart lost, and
 * nothing else. The net_device survives a restart, and the helper puts the
 * driver's settings back itself, so what may differ afterwards is what a
 * fresh driver instance resets (its coalescing, channels or link settings, an
 * MTU its probe sets) or what the failed driver misreported.
 *
 * `mark` is the store's change counter (ShadowStore.changes) as the restart
 * was sent, once the shadow had caught up with the taps; `current` was read
 * after the restart, and the shadow has caught up with the taps again since
 * (Ingest.sync, NetdevShadow.caughtUp). A key whose shadow entry is unchanged
 * since the mark was not set by anyone during the recovery: where the device
 * differs from it, the restart lost it, and the plan puts it back. A key whose
 * entry changed after the mark was set by someone around the recovery (or
 * re-read from the device): the device has that value or a newer one, and
 * writing the shadow's could undo a write the shadow has not seen yet, so it
 * is left as the device has it and named in `left` (when it differs).
 */
export function planRestartReplay(
  entries: readonly CountedShadowEntry[],
  current: DeviceSnapshot,
  mark: number,
): { steps: ReplayStep[]; gaps: ReplayGap[]; left: string[] } {
  const unchanged = entries.filter((e) => e.seq <= mark);
  const left = entries
    .filter((e) => e.seq > mark && e.key in PLANNERS && canonical(e.value) !== canonical(current.keys[e.key as ConfigKey]))
    .map((e) => e.key);
  return { ...planReplayWithGaps(unchanged, current), left };
}

export type RunProgram = (file: string, args: string[]) => Promise<ProgramResult>;

/** Why a step failed, from its result, or null if it did what it asked. */
function stepError(argv: readonly string[], r: ProgramResult): string | null {
  const said = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(0, 4).join('; ');
  // ethtool -K exits 0 when the driver took some of the features and not others; it lists those as "name: off [requested on]".
  const refused = argv[0] === 'ethtool' && argv[1] === '-K' ? r.stdout.split('\n').filter((l) => /\[requested (on|off)\]/.test(l)).map((l) => l.trim()) : [];
  const refusedText = refused.length > 0 ? `the driver did not apply ${refused.join(', ')}` : '';
  if (r.exitCode === null) return `${argv[0]} did not run to completion: ${said || 'no message'}`;
  if (r.exitCode !== 0) return `exit ${r.exitCode}: ${[said || 'no message', refusedText].filter(Boolean).join('; ')}`;
  return refusedText || null;
}

/**
 * Runs each step once, in order, through `run` (argv, no shell). A failed step
 * (a setting the driver refuses, a tool missing) is reported and the rest
 * still run: one key the driver will not take must not keep the others away.
 */
export async function runReplay(device: string, plan: readonly ReplayStep[], run: RunProgram = runProgram): Promise<ReplayReport> {
  const steps: ReplayReport['steps'] = [];
  // Every step names the device: none runs with a name a program could read as an option.
  const badName = interfaceArgProblem(device);
  for (const { key, argv } of plan) {
    const [file, ...args] = argv;
    let error: string | null;
    if (file === undefined) error = 'empty command';
    else if (badName) error = `not run: ${badName}`;
    else {
      try {
        error = stepError(argv, await run(file, args));
      } catch (err) {
        error = `could not run ${file}: ${err instanceof Error ? err.message : String(err)}`;
      }
    }
    steps.push(error === null ? { key, argv: [...argv], ok: true } : { key, argv: [...argv], ok: false, error });
  }
  return { device, steps };
}
