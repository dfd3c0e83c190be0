// Runs inside the guest, as root, for test/vm/kmod/helper-module.test.ts: loads a
// NIC driver and the helper module (allow_faults=1), talks to it through the
// daemon's client, fuzzes the raw device (bytes, framing, CLASS:NAME device
// references and the arguments of every verb, against the NIC and lo), then
// runs the protocol 3 verbs for real
// on the NIC, checks that unprivileged opens are refused and that it unloads;
// finally reloads it without allow_faults and checks that inject is refused.
// Prints one "SMOKE_RESULT <json>" line; exits 1 listing what went wrong.
//   node dist/test/vm/guest/helper-smoke.js --ko PATH [--nic DRIVER] [--fuzz N] [--seed N]
//   node dist/test/vm/guest/helper-smoke.js --try-open   (child mode: report how opening fails)
import { Buffer } from 'node:buffer';
import { spawn, spawnSync } from 'node:child_process';
import console from 'node:console';
import {
  closeSync,
  existsSync,
  openSync,
  read as readCb,
  readdirSync,
  readFileSync,
  readlinkSync,
  readSync,
  statSync,
  write as writeCb,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { release } from 'node:os';
import { basename } from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { loadHelperDeps } from './helper-deps.js';
import {
  HELPER_COMMAND_MAX,
  HELPER_DEVICE,
  HELPER_PROTO,
  openHelper,
  parseHelperReply,
  type HelperReply,
  type HelperVersion,
} from '../../../daemon/core/helper-client.js';
import { mulberry32 } from '../rig/seeded-random.js';

/**
 * What the module must do with one write, by the protocol (kmod/PROTOCOL.md):
 * fail the write with one of `codes`, answer `err` with one of `codes` (a line
 * with several faults may name any of them), or succeed.
 */
type Prediction = { write: string[] } | { err: string[] } | { ok: string };
/** The outcome of one raw write(): bytes written, or the errno name (or text) it failed with. */
type WriteOutcome = { written: number; code?: undefined } | { code: string; written?: undefined };
/** The outcome of one asynchronous read(): the text read, or the errno it failed with. */
type ReadOutcome = { text: string } | { code: string };
/** What the `--try-open` child prints. */
interface TryOpenResult {
  opened: boolean;
  code?: string;
  message?: string;
}
/** Counts of one fuzz run: per outcome ("write EINVAL", "err ENODEV", ...) overall and per kind. */
interface FuzzStats {
  total: number;
  ms: number;
  outcomes: { writeEINVAL: number; writeEMSGSIZE: number; errReply: number };
  /** err replies by ERRNAME. */
  errnames: Record<string, number>;
  /** Cases whose outcome the protocol fixes to one errno, and cases where several were acceptable. */
  determined: number;
  ambiguous: number;
  byKind: Record<string, number>;
  byKindOutcome: Record<string, Record<string, number>>;
}
/** The SMOKE_RESULT object, filled in section by section. */
interface SmokeResult {
  seed: number;
  guestKernel: string;
  nic?: { name: string; driver: string; ifindex: number };
  version?: HelperVersion;
  fuzz?: FuzzStats;
  partialRead?: { bytes: number };
  valid?: {
    txstat: Record<string, string>;
    restart: { ifindex: number; totalMs: number; steps: string };
    during: Record<string, string>;
    busy: string;
    after: Record<string, string>;
    checked: number;
  };
  concurrency?: {
    oneFd: { ops: number; writes: Record<string, number>; nonEmptyReads: number; ms: number };
    fourClients: { requests: number; correct: number };
  };
  nonRoot?: { nobody: string | undefined; rootWithoutCapSysAdmin: string | undefined };
  unload?: { refusedWhileOpen: boolean; rmmod: boolean };
  leftRequester?: { rmmodRefused: boolean; rmmodMs: number; restartEnded: boolean };
  noFaults?: { version: HelperVersion; injectTxHang: string; fuzz: FuzzStats; rmmod: boolean };
  unplugged?: { parked: string; goneMs: number | null; log: string[]; rmmod: boolean };
  ms?: number;
  failures?: number;
}

function isErrnoException(err: unknown): err is NodeJS.ErrnoException {
  return err instanceof Error && 'code' in err;
}
/** The errno name (or HelperError code) carried by `err`, if any. */
function codeOf(err: unknown): string | undefined {
  return isErrnoException(err) && typeof err.code === 'string' ? err.code : undefined;
}
function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
/** `list[index]`, which must exist. */
function itemAt<T>(list: readonly T[], index: number): T {
  const item = list[index];
  if (item === undefined) throw new RangeError(`index ${index} is outside a list of ${list.length}`);
  return item;
}
function bump(counts: Record<string, number>, key: string): void {
  counts[key] = (counts[key] ?? 0) + 1;
}

// This compiled file (dist/.../helper-smoke.js), re-run in --try-open mode under setpriv.
const SCRIPT = fileURLToPath(import.meta.url);
const MODULE = 'shadow_helper';
const NOT_LOADED = `the shadow_helper module is not loaded (${HELPER_DEVICE} is missing)`;
const NO_ROOT = 'permission denied: the helper requires root';

const { values } = parseArgs({
  options: {
    ko: { type: 'string' },
    nic: { type: 'string', default: 'e1000' },
    fuzz: { type: 'string', default: '5000' },
    seed: { type: 'string' },
    'try-open': { type: 'boolean', default: false },
    'restart-and-wait': { type: 'string' },
  },
});

// Child mode: asks for a restart of the given device and waits in the write
// for it to finish, until killed (the parent kills it while it waits).
if (values['restart-and-wait']) {
  const fd = openSync(HELPER_DEVICE, 'r+');
  console.log('asking');
  writeSync(fd, `restart ${values['restart-and-wait']} leaver1\n`);
  process.exit(0);
}

if (values['try-open']) {
  try {
    const client = await openHelper();
    await client.close();
    console.log(JSON.stringify({ opened: true } satisfies TryOpenResult));
  } catch (err) {
    console.log(JSON.stringify({ opened: false, code: codeOf(err), message: messageOf(err) } satisfies TryOpenResult));
  }
  process.exit(0);
}

const failures: string[] = [];
let failureCount = 0;
function fail(message: string): void {
  failureCount++;
  if (failures.length < 40) failures.push(message);
}
function check(cond: boolean, message: string): boolean {
  if (!cond) fail(message);
  return cond;
}
const show = (buf: Buffer): string => JSON.stringify(buf.toString('latin1').slice(0, 60)) + (buf.length > 60 ? `... (${buf.length} bytes)` : '');

function run(cmd: string, args: string[]): { status: number | null; out: string } {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error ? String(r.error) : ''}`.trim() };
}

// Seeded so a failing case can be replayed with --seed.
const seed = values.seed !== undefined ? Number(values.seed) : Math.floor(Math.random() * 2 ** 31);
const rand = mulberry32(seed);
const int = (lo: number, hi: number): number => lo + Math.floor(rand() * (hi - lo + 1));
const pick = <T>(list: readonly T[]): T => itemAt(list, int(0, list.length - 1));
const printable = (n: number, { spaces = false }: { spaces?: boolean } = {}): string => {
  let s = '';
  while (s.length < n) {
    const c = String.fromCharCode(int(0x20, 0x7e));
    if (c !== ' ' || spaces) s += c;
  }
  return s;
};
const fromChars = (chars: string, n: number): string => Array.from({ length: n }, () => chars.charAt(int(0, chars.length - 1))).join('');
const insertAt = (text: string, byte: number): Buffer => {
  const at = int(0, text.length);
  return Buffer.concat([Buffer.from(text.slice(0, at), 'latin1'), Buffer.from([byte]), Buffer.from(text.slice(at), 'latin1')]);
};
const line = (text: string, newline = rand() < 0.5): Buffer => Buffer.from(newline ? `${text}\n` : text, 'latin1');
const VALID = ['ping', 'version'];

// --- the NIC -------------------------------------------------------------------------------
// A real driver's device: the verbs that need a bus device have one to look at.
const modprobe = run('modprobe', [values.nic]);
if (modprobe.status !== 0) {
  console.error(`modprobe ${values.nic} failed: ${modprobe.out}`);
  process.exit(1);
}
const driverOf = (name: string): string | undefined => {
  try {
    return basename(readlinkSync(`/sys/class/net/${name}/device/driver`));
  } catch {
    return undefined;
  }
};
let nic: string | undefined;
for (let tries = 0; nic === undefined && tries < 50; tries++) {
  nic = readdirSync('/sys/class/net').find((n) => driverOf(n) === values.nic);
  if (nic === undefined) await new Promise((r) => setTimeout(r, 100));
}
if (nic === undefined) {
  console.error(`no interface of driver ${values.nic} after modprobe: ${readdirSync('/sys/class/net').join(' ')}`);
  process.exit(1);
}
const NIC: string = nic;
/** The NIC as protocol 3 names it. */
const DEV = `net:${NIC}`;
const up = run('ip', ['link', 'set', NIC, 'up']);
if (up.status !== 0) {
  console.error(`ip link set ${NIC} up failed: ${up.out}`);
  process.exit(1);
}
const sysIfindex = (name: string): number => Number(readFileSync(`/sys/class/net/${name}/ifindex`, 'utf8').trim());
const nicIfindex = sysIfindex(NIC);

// --- the protocol, as kmod/PROTOCOL.md states it --------------------------------------------
interface ModelEnv {
  /** Loaded with allow_faults=1. */
  faults: boolean;
  /** The guest's interfaces, each with whether it has a bus device (a driver's device). */
  ifaces: ReadonlyMap<string, boolean>;
}
const readIfaces = (): Map<string, boolean> =>
  new Map(readdirSync('/sys/class/net').map((n) => [n, existsSync(`/sys/class/net/${n}/device`)] as const));

const VERB_ARGS: Record<string, readonly [number, number]> = {
  version: [0, 0],
  ping: [0, 0],
  txstat: [1, 1],
  stage: [2, 6],
  inject: [2, 3],
  restart: [2, 3],
  park: [2, 2],
  hold: [2, 2],
  periods: [1, 1],
};
const RING_MAX = 2 ** 20;
const U32_MAX = 2 ** 32 - 1;
const STAGE_KEYS: Record<string, { count: number; max: number }> = {
  rings: { count: 4, max: RING_MAX },
  msglvl: { count: 1, max: U32_MAX },
  pause: { count: 3, max: 1 },
  privflags: { count: 1, max: U32_MAX },
  clear: { count: 0, max: 0 },
};
/** The module's class table: each class's own commands (kmod/sh_class.c). */
const CLASS_COMMANDS: Record<string, readonly string[]> = { net: ['txstat', 'stage'], block: [], sound: ['hold', 'periods'] };
const FAULTS = ['tx-hang', 'tx-hang-reset', 'fail-stop', 'lost-irq', 'fail-open', 'fail-mtu', 'fail-mac', 'fail-features', 'fail-rings', 'clear'];
/** The block class's faults; this guest has no disk, so every block:NAME it may name is ENODEV. */
const BLOCK_FAULTS = ['lost-irq', 'fail-stop', 'disk-error', 'clear'];
/** The sound class's faults; this guest has no sound card, so every sound:NAME it may name is ENODEV. */
const SOUND_FAULTS = ['lost-irq', 'fail-stop', 'fail-prepare', 'clear'];
/** The longest `hold` (kmod/sh_sound.h). */
const HOLD_MAX_MS = 60000;
const SH_ID_MAX = 32;

/** A Linux interface name: 1-15 bytes, not "." or "..", no '/', ':' or whitespace. */
const validIfname = (name: string): boolean =>
  name.length >= 1 && name.length <= 15 && name !== '.' && name !== '..' && !/[/:\s]/.test(name);
/** A whole disk's kernel name: 1-31 bytes, not "." or "..", no '/', ':' or whitespace. */
const validDiskName = (name: string): boolean =>
  name.length >= 1 && name.length <= 31 && name !== '.' && name !== '..' && !/[/:\s]/.test(name);
/** A sound card's name: card0 to card31, no leading zero. */
const validCardName = (name: string): boolean => /^card([0-9]|[12][0-9]|3[01])$/.test(name);
const validId = (id: string): boolean => id.length >= 1 && id.length <= SH_ID_MAX && /^[A-Za-z0-9_-]+$/.test(id);
/** "Numbers are decimal": digits only, no sign, no base prefix. */
const validNumber = (text: string, max: number): boolean => /^[0-9]+$/.test(text) && BigInt(text) <= BigInt(max);

/**
 * A CLASS:NAME reference: the first ':' ends the class, which must be in the
 * class table, and the name must be the class's (net: an interface name).
 */
function parseRef(ref: string): { cls: string; name: string } | null {
  const colon = ref.indexOf(':');
  if (colon < 0) return null;
  const cls = ref.slice(0, colon);
  const name = ref.slice(colon + 1);
  const valid = cls === 'block' ? validDiskName(name) : cls === 'sound' ? validCardName(name) : validIfname(name);
  return Object.hasOwn(CLASS_COMMANDS, cls) && valid ? { cls, name } : null;
}

function refErrors(ref: string, needBus: boolean, env: ModelEnv): string[] {
  const parsed = parseRef(ref);
  if (!parsed) return ['EINVAL'];
  const hasBus = parsed.cls === 'net' ? env.ifaces.get(parsed.name) : undefined;
  if (hasBus === undefined) return ['ENODEV'];
  return needBus && !hasBus ? ['ENODEV'] : [];
}

/** What the module must answer to one printable command line. */
function predictCommand(text: string, env: ModelEnv): Prediction {
  const tokens = text.split(' ');
  // Framing: tokens separated by single spaces. Nothing else can be judged then.
  if (tokens.some((t) => t === '')) return { err: ['EINVAL'] };
  const [verb = '', ...args] = tokens;
  const range = VERB_ARGS[verb];
  if (!range) return { err: ['EINVAL'] };
  const errs = new Set<string>();
  // The arity comes first, then (for inject) whether faults are allowed at all.
  if (args.length < range[0] || args.length > range[1]) return { err: ['EINVAL'] };
  if (verb === 'inject' && !env.faults) return { err: ['EPERM'] };
  const arg = (i: number): string => itemAt(args, i);
  // A class's own command for a device of a class without it.
  const cls = parseRef(arg(0))?.cls;
  if ((verb === 'txstat' || verb === 'stage' || verb === 'hold' || verb === 'periods') && cls !== undefined && !CLASS_COMMANDS[cls]?.includes(verb)) return { err: ['EOPNOTSUPP'] };
  switch (verb) {
    case 'txstat':
      for (const e of refErrors(arg(0), false, env)) errs.add(e);
      break;
    case 'stage': {
      const key = STAGE_KEYS[arg(1)];
      const numbers = args.slice(2);
      if (!key || numbers.length !== key.count || !numbers.every((n) => validNumber(n, key.max))) errs.add('EINVAL');
      for (const e of refErrors(arg(0), true, env)) errs.add(e);
      break;
    }
    case 'inject': {
      const fault = arg(1);
      const option = args[2];
      if (!(cls === 'block' ? BLOCK_FAULTS : cls === 'sound' ? SOUND_FAULTS : FAULTS).includes(fault)) errs.add('EINVAL');
      if (option !== undefined && (option !== 'sticky' || fault === 'clear')) errs.add('EINVAL');
      for (const e of refErrors(arg(0), true, env)) errs.add(e);
      break;
    }
    case 'periods':
      for (const e of refErrors(arg(0), false, env)) errs.add(e);
      break;
    case 'hold':
      if (!validNumber(arg(1), HOLD_MAX_MS)) errs.add('EINVAL');
      for (const e of refErrors(arg(0), true, env)) errs.add(e);
      break;
    case 'restart':
    case 'park':
      if (!validId(arg(1))) errs.add('EINVAL');
      if (args[2] !== undefined && args[2] !== 'reload') errs.add('EINVAL');
      for (const e of refErrors(arg(0), true, env)) errs.add(e);
      break;
    default:
      break;
  }
  return errs.size > 0 ? { err: [...errs] } : { ok: verb };
}

/** What the module must do with the bytes of one write(). */
function predict(bytes: Buffer, env: ModelEnv): Prediction {
  const codes = new Set<string>();
  if (bytes.length > HELPER_COMMAND_MAX + 1) codes.add('EMSGSIZE');
  const body = bytes.at(-1) === 0x0a ? bytes.subarray(0, -1) : bytes;
  if (body.length === 0) codes.add('EINVAL');
  if (body.length > HELPER_COMMAND_MAX) codes.add('EMSGSIZE');
  if (body.some((b) => b < 0x20 || b > 0x7e)) codes.add('EINVAL');
  if (codes.size > 0) return { write: [...codes] };
  return predictCommand(body.toString('latin1'), env);
}

// --- fuzz generators --------------------------------------------------------------------------
const NAME_CHARS = 'abcdefghijklmnopqrstuvwxyz0123456789';
const ID_CHARS = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-';
/** Names the module must refuse (EINVAL) or not find (ENODEV); now and then the NIC or lo. */
function ifaceName(): string {
  return pick([
    () => NIC,
    () => 'lo',
    () => pick(['../x', '.', '..', 'a/b', '/', `${NIC}/`, `${NIC}:0`, ':', 'x:y', '..x/..']),
    () => fromChars(NAME_CHARS, int(16, 40)),
    () => printable(int(16, 30)),
    () => `${NIC}${fromChars(NAME_CHARS, 12)}`,
    () => pick(['nosuch', 'ETH0', 'Lo', 'LO', `${NIC}x`, `${NIC}.1`, 'eth1', 'ens3', 'sit0', 'tunl0', 'bond0', 'lo0']),
    () => fromChars(NAME_CHARS, int(1, 15)),
    () => printable(int(1, 15)),
    // Valid names no device has, so that lines reach the lookup (ENODEV).
    () => `${NIC}${int(0, 99)}`,
    () => pick(['eth9', 'ens4', 'wlan0', 'enp0s3', 'veth0', 'br0', 'docker0', 'dummy0', 'can0', 'wg0']),
  ])();
}
/** Malformed CLASS:NAME references: no ':', an empty, unknown, long or odd class, a name the class refuses. */
function badRef(): string {
  return pick([
    () => ifaceName(),
    () => `${pick(['sound', 'block', 'snd', 'NET', 'Net', 'nett', 'ne', 'x', 'net0', 'n"t', "n'", 'net\\', 'ne:t'])}:${pick([NIC, 'lo', 'card0', 'sda'])}`,
    () => pick(['net:', ':', `:${NIC}`, ':lo', 'net::', `net::${NIC}`, `net:${NIC}:`, '::', 'net:net:lo', 'net']),
    () => `${fromChars(NAME_CHARS, int(17, 80))}:${NIC}`,
    () => `${printable(int(1, 24))}:${NIC}`,
    () => `${printable(int(1, 8))}:${printable(int(0, 20))}`,
  ])();
}
/** Device references: mostly the net class's (the NIC, lo, or names to refuse or not find), now and then malformed. */
function deviceRef(): string {
  return rand() < 0.9 ? `net:${ifaceName()}` : badRef();
}
/** Recovery ids, mostly malformed. */
function recoveryId(): string {
  return pick([
    () => pick(['bad!id', 'a.b', 'a/b', '../x', 'id:1', '*', 'r1;', "r'1", 'r1\\', 'r1=', 'r1"']),
    () => fromChars(ID_CHARS, int(SH_ID_MAX + 1, 60)),
    () => `${fromChars(ID_CHARS, int(0, 10))}${pick(['!', '.', '/', ':', '+', '=', '@', '#', '%', '~', '`'])}${fromChars(ID_CHARS, int(0, 10))}`,
    () => printable(int(1, 40)),
    () => fromChars(ID_CHARS, int(1, SH_ID_MAX)),
    () => pick(['r1', 'fuzz1', 'x', '-', '_', 'A'.repeat(SH_ID_MAX)]),
  ])();
}
/** Numbers in many spellings, most of them not plain decimals in range. */
function numberText(max: number): string {
  return pick([
    () => String(int(0, Math.min(max, 4096))),
    () => pick(['-1', '-0', '+0', '+1', '+7', '0x10', '0X1', '1e3', '5.0', '.5', '1,000', '1_000', '0b1', '0o7', 'x1', '1x', 'one']),
    () => pick(['NaN', 'Infinity', '-Infinity', '0x', '+', '-', '++1', '+-1', '07a', '1+', '1-']),
    () => String(max + 1),
    () => String(BigInt(max) + BigInt(int(2, 1_000_000))),
    () => pick(['4294967296', '4294967295', '99999999999', '18446744073709551615', '18446744073709551616', '1048576', '1048577']),
    () => `${'0'.repeat(int(1, 30))}${int(0, 9)}`,
    () => `${int(1, 9)}${fromChars('0123456789', int(9, 40))}`,
    () => printable(int(1, 12)),
  ])();
}
/** A random token after a verb: interesting words mixed with printable noise. */
function noiseToken(): string {
  return pick([
    () => printable(int(1, 20)),
    () => printable(int(1, 3)),
    deviceRef,
    recoveryId,
    () => numberText(pick([1, RING_MAX, U32_MAX])),
    () => pick([...Object.keys(STAGE_KEYS), ...FAULTS, 'sticky', 'Sticky', 'reload', 'bogus', 'RINGS', 'ring', 'msglevel']),
  ])();
}

/** Draws until the protocol says the line must fail: the fuzz never restarts, parks, injects or stages for real. */
function failing(env: ModelEnv, make: () => Buffer): Buffer {
  for (let tries = 0; tries < 200; tries++) {
    const bytes = make();
    if (!('ok' in predict(bytes, env))) return bytes;
  }
  throw new Error('a fuzz generator keeps making well-formed commands');
}

/** Cases with a fixed answer, the protocol's corners; `named` cycles through them in the fuzz. */
function namedCases(env: ModelEnv): [string, string][] {
  if (!env.faults) {
    return [
      [`inject ${DEV} tx-hang`, 'EPERM'],
      [`inject ${DEV} clear`, 'EPERM'],
      [`inject ${DEV} fail-stop sticky`, 'EPERM'],
      [`inject ${DEV} fail-rings`, 'EPERM'],
      [`inject ${DEV} tx-hang sticky`, 'EPERM'],
      // Refused before the device is looked at, whatever it is.
      ['inject sound:card0 tx-hang', 'EPERM'],
      [`inject ${NIC} tx-hang`, 'EPERM'],
      ['inject net: tx-hang', 'EPERM'],
    ];
  }
  return [
    ['txstat net:../x', 'EINVAL'],
    ['txstat net:.', 'EINVAL'],
    ['txstat net:..', 'EINVAL'],
    [`txstat ${DEV}:1`, 'EINVAL'],
    [`txstat net:${'x'.repeat(16)}`, 'EINVAL'],
    [`txstat ${DEV}${'0'.repeat(16 - NIC.length)}`, 'EINVAL'],
    [`txstat ${DEV} extra`, 'EINVAL'],
    ['txstat', 'EINVAL'],
    ['txstat net:nosuch', 'ENODEV'],
    [`txstat net:${'x'.repeat(15)}`, 'ENODEV'],
    [`txstat net:${NIC.toUpperCase()}`, 'ENODEV'],
    // Malformed class references: no ':', an empty, unknown, long or odd class, an empty name.
    [`txstat ${NIC}`, 'EINVAL'],
    ['txstat lo', 'EINVAL'],
    [`txstat sound:${NIC}`, 'EINVAL'],
    [`txstat NET:${NIC}`, 'EINVAL'],
    [`txstat :${NIC}`, 'EINVAL'],
    ['txstat :', 'EINVAL'],
    ['txstat net:', 'EINVAL'],
    ['txstat net::', 'EINVAL'],
    [`txstat net::${NIC}`, 'EINVAL'],
    [`txstat ${'n'.repeat(200)}:${NIC}`, 'EINVAL'],
    [`txstat n"t\\%s%n:${NIC}`, 'EINVAL'],
    [`stage ${DEV} rings 1 2`, 'EINVAL'],
    [`stage ${DEV} rings 1 2 3 99999999999`, 'EINVAL'],
    [`stage ${DEV} rings 1 2 3 ${RING_MAX + 1}`, 'EINVAL'],
    [`stage ${DEV} rings 1 2 3 4 5`, 'EINVAL'],
    [`stage ${DEV} pause 2 0 0`, 'EINVAL'],
    [`stage ${DEV} pause 0 0`, 'EINVAL'],
    [`stage ${DEV} msglvl -1`, 'EINVAL'],
    [`stage ${DEV} msglvl +7`, 'EINVAL'],
    [`stage ${DEV} msglvl 0x7`, 'EINVAL'],
    [`stage ${DEV} msglvl 7.0`, 'EINVAL'],
    [`stage ${DEV} msglvl 4294967296`, 'EINVAL'],
    [`stage ${DEV} privflags 1 2`, 'EINVAL'],
    [`stage ${DEV} bogus 1`, 'EINVAL'],
    [`stage ${DEV} MSGLVL 1`, 'EINVAL'],
    [`stage ${DEV} clear 1`, 'EINVAL'],
    [`stage ${DEV}`, 'EINVAL'],
    ['stage net:nosuch msglvl 1', 'ENODEV'],
    ['stage net:lo msglvl 1', 'ENODEV'],
    ['stage net:lo clear', 'ENODEV'],
    ['stage net:../x msglvl 1', 'EINVAL'],
    [`stage ${NIC} msglvl 1`, 'EINVAL'],
    ['stage sound:card0 clear', 'EOPNOTSUPP'],
    ['hold sound:card0 1000', 'ENODEV'],
    ['hold sound:card00 1000', 'EINVAL'],
    [`hold ${DEV} 1000`, 'EOPNOTSUPP'],
    ['periods sound:card0', 'ENODEV'],
    ['periods sound:card32', 'EINVAL'],
    ['periods sound:card0 1', 'EINVAL'],
    [`periods ${DEV}`, 'EOPNOTSUPP'],
    ['inject sound:card0 fail-prepare', 'ENODEV'],
    ['stage net: clear', 'EINVAL'],
    [`inject ${DEV} nosuch`, 'EINVAL'],
    [`inject ${DEV} TX-HANG`, 'EINVAL'],
    [`inject ${DEV} tx-hang sticky extra`, 'EINVAL'],
    [`inject ${DEV} tx-hang Sticky`, 'EINVAL'],
    [`inject ${DEV} clear sticky`, 'EINVAL'],
    [`inject ${DEV}`, 'EINVAL'],
    ['inject net:lo tx-hang', 'ENODEV'],
    ['inject net:lo clear', 'ENODEV'],
    ['inject net:nosuch tx-hang', 'ENODEV'],
    ['inject net:../x tx-hang', 'EINVAL'],
    [`inject ${NIC} tx-hang`, 'EINVAL'],
    ['inject block:sda disk-error', 'ENODEV'],
    ['inject block:../x fail-stop', 'EINVAL'],
    [`inject :${NIC} clear`, 'EINVAL'],
    [`restart ${DEV} bad!id`, 'EINVAL'],
    [`restart ${DEV} ${'a'.repeat(SH_ID_MAX + 1)}`, 'EINVAL'],
    [`restart ${DEV} r.1`, 'EINVAL'],
    [`restart ${DEV}`, 'EINVAL'],
    [`restart ${DEV} r1 Reload`, 'EINVAL'],
    [`restart ${DEV} r1 reload extra`, 'EINVAL'],
    [`park ${DEV} r1 reload`, 'EINVAL'],
    ['restart net:lo r1 reload', 'ENODEV'],
    [`restart ${DEV} r1 extra`, 'EINVAL'],
    ['restart net:nosuch r1', 'ENODEV'],
    ['restart net:lo r1', 'ENODEV'],
    ['restart net:../x r1', 'EINVAL'],
    [`restart net:${'y'.repeat(16)} r1`, 'EINVAL'],
    [`restart ${NIC} r1`, 'EINVAL'],
    ['restart sound:card0 r1', 'ENODEV'],
    ['restart sound:card32 r1', 'EINVAL'],
    ['restart net: r1', 'EINVAL'],
    [`restart ${'c'.repeat(60)}:${NIC} r1`, 'EINVAL'],
    ['park net:nosuch r1', 'ENODEV'],
    ['park net:lo r1', 'ENODEV'],
    // Well-formed references to devices that are not there, for every verb.
    ['txstat net:eth9', 'ENODEV'],
    [`txstat ${DEV}0`, 'ENODEV'],
    ['stage net:eth9 clear', 'ENODEV'],
    ['stage net:wlan0 msglvl 3', 'ENODEV'],
    ['inject net:eth9 clear', 'ENODEV'],
    ['inject net:veth0 fail-open sticky', 'ENODEV'],
    ['restart net:eth9 r1', 'ENODEV'],
    ['restart net:eth9 r1 reload', 'ENODEV'],
    ['park net:dummy0 r2', 'ENODEV'],
    ['park net:br0 r1', 'ENODEV'],
    ['txstat net:wg0', 'ENODEV'],
    ['stage net:eth9 rings 256 0 0 256', 'ENODEV'],
    ['stage net:can0 pause 1 0 1', 'ENODEV'],
    ['inject net:eth9 lost-irq', 'ENODEV'],
    ['restart net:enp0s3 rescue_1', 'ENODEV'],
    ['park net:eth9 r1', 'ENODEV'],
    [`park ${DEV} bad/id`, 'EINVAL'],
    [`park ${DEV} ${'b'.repeat(SH_ID_MAX + 1)}`, 'EINVAL'],
    [`park ${DEV}`, 'EINVAL'],
    [`park ${NIC} r1`, 'EINVAL'],
    ['park block:sda r1', 'ENODEV'],
    [`park :${NIC} r1`, 'EINVAL'],
  ];
}

type Generator = (env: ModelEnv) => Buffer;
let namedNext = 0;
// Each generator returns the bytes of one write; predict() says what the module must do with them.
const GENERATORS = {
  random() {
    const n = pick([int(0, 3), int(1, 256), int(1, 256), int(257, 700)]);
    const bytes = Buffer.alloc(n);
    // Mostly printable with rare junk, so the per-byte check is reached deep in the line too.
    const junk = rand() < 0.5 ? 1 : 0.03;
    for (let i = 0; i < n; i++) bytes[i] = rand() < junk ? int(0, 255) : int(0x20, 0x7e);
    return bytes;
  },
  tooLong() {
    const n = pick([256, 257, int(258, 4096)]);
    return line(printable(n, { spaces: true }));
  },
  boundary() {
    // 255 characters is the longest line: accepted as bytes, then refused as an unknown verb.
    return line(`x${printable(254)}`);
  },
  nul() {
    // Up to 255 bytes: a longer write is refused for its length before its bytes are looked at.
    if (rand() < 0.2) return Buffer.alloc(int(1, 255));
    return insertAt(pick([...VALID, `txstat ${DEV}`, 'restart net:nosuch r1']), 0);
  },
  control() {
    const byte = pick([int(1, 9), int(11, 31), 0x7f, 0x0d, 0x09, 0x1b]);
    return insertAt(pick([...VALID, 'ping x', `txstat ${DEV}`, `stage ${DEV} msglvl 1`]), byte);
  },
  highBit() {
    return insertAt(pick([...VALID, `txstat ${DEV}`]), int(0x80, 0xff));
  },
  lineBreakInside() {
    return Buffer.from(pick(['ping\nping', '\n\n', 'ping\n\n', '\nping', 'version\nx\n', `txstat ${DEV}\nx`, `park\n${DEV} r1`]), 'latin1');
  },
  empty() {
    return Buffer.from(pick(['', '\n']), 'latin1');
  },
  unknownVerb() {
    let verb: string;
    do verb = rand() < 0.5 ? printable(int(1, 40)) : pick(['PING', 'Ping', 'pingx', 'versio', 'TXSTAT', 'Stage', 'injects', 'rest', 'parked', 'x']);
    while (verb in VERB_ARGS);
    return line(rand() < 0.5 ? verb : `${verb} ${DEV} ${pick(['r1', 'tx-hang', 'msglvl 1'])}`);
  },
  extraArgs() {
    const args = Array.from({ length: int(1, 6) }, () => printable(int(1, 20)));
    return line(`${pick(VALID)} ${args.join(' ')}`);
  },
  tooManyTokens() {
    return line(Array.from({ length: int(9, 40) }, () => printable(int(1, 4))).join(' '));
  },
  badSpacing() {
    const cmd = pick([...VALID, `txstat ${DEV}`, `stage ${DEV} msglvl 1`, `inject ${DEV} tx-hang`, `restart ${DEV} r1`, `park ${DEV} r1`]);
    const words = cmd.split(' ');
    const at = int(0, words.length);
    // A doubled space somewhere, or a leading or trailing one.
    words.splice(at, 0, '');
    return line(pick([words.join(' '), ` ${cmd}`, `${cmd} `, ' ', '   ', `${cmd}   `]));
  },
  txstatArgs(env) {
    return failing(env, () => line(pick([() => `txstat ${deviceRef()}`, () => `txstat ${deviceRef()} ${noiseToken()}`, () => 'txstat'])()));
  },
  stageArgs(env) {
    return failing(env, () => {
      const key = rand() < 0.85 ? pick(Object.keys(STAGE_KEYS)) : pick(['bogus', 'ring', 'RINGS', 'msglevel', 'pause1', printable(int(1, 10))]);
      const spec = STAGE_KEYS[key];
      // Mostly the right count with one bad number; sometimes the wrong count; sometimes a bad name with good numbers.
      const count = spec && rand() < 0.7 ? spec.count : int(0, 4);
      const max = spec?.max ?? U32_MAX;
      const numbers = Array.from({ length: count }, () => (rand() < 0.6 ? String(int(0, Math.min(max, 4096))) : numberText(max)));
      const name = rand() < 0.7 ? DEV : deviceRef();
      return line(['stage', name, key, ...numbers].join(' '));
    });
  },
  injectArgs(env) {
    return failing(env, () => {
      const fault = rand() < 0.6 ? pick(FAULTS) : pick(['nosuch', 'TX-HANG', 'tx_hang', 'txhang', 'fail', 'fail-', 'sticky', printable(int(1, 16))]);
      const option = pick([[], [], ['sticky'], [pick(['Sticky', 'sticky2', 'extra', 'clear', printable(int(1, 8))])], ['sticky', noiseToken()]]);
      const name = rand() < 0.6 ? DEV : deviceRef();
      return line(['inject', name, fault, ...option].join(' '));
    });
  },
  restartArgs(env) {
    return failing(env, () => {
      const verb = pick(['restart', 'park']);
      const name = rand() < 0.6 ? DEV : deviceRef();
      const extra = rand() < 0.15 ? [noiseToken()] : rand() < 0.1 ? [] : [recoveryId()];
      return line([verb, name, ...(extra.length === 1 && rand() < 0.5 ? [recoveryId(), ...extra] : extra)].join(' '));
    });
  },
  classRefs(env) {
    return failing(env, () => {
      const ref = badRef();
      return line(
        pick([
          () => `txstat ${ref}`,
          () => `stage ${ref} ${pick(['msglvl 1', 'clear', 'rings 256 0 0 256', 'pause 1 0 1'])}`,
          () => `inject ${ref} ${pick(['tx-hang', 'clear', 'fail-open sticky'])}`,
          () => `restart ${ref} ${pick(['r1', 'r1 reload'])}`,
          () => `park ${ref} r1`,
        ])(),
      );
    });
  },
  verbNoise(env) {
    return failing(env, () => {
      const verb = pick(['txstat', 'stage', 'inject', 'restart', 'park', 'hold', 'periods']);
      const tokens = Array.from({ length: int(0, 7) }, noiseToken);
      // Often the real NIC first, so the lines reach past the name check.
      if (rand() < 0.5 && tokens.length > 0) tokens[0] = DEV;
      return line([verb, ...tokens].join(' '));
    });
  },
  named(env) {
    const cases = namedCases(env);
    const [text] = itemAt(cases, namedNext++ % cases.length);
    return line(text);
  },
} satisfies Record<string, Generator>;
type Kind = keyof typeof GENERATORS;
const KINDS = Object.keys(GENERATORS) as Kind[];
// Random bytes get the most cases; each targeted kind still gets a couple of hundred.
const SCHEDULE: Kind[] = ['random', 'random', 'random', 'random', ...KINDS.filter((k) => k !== 'random')];

function rawWrite(fd: number, bytes: Buffer): WriteOutcome {
  try {
    return { written: writeSync(fd, bytes, 0, bytes.length) };
  } catch (err) {
    return { code: codeOf(err) ?? String(err) };
  }
}
/** Reads the pending reply in pieces of `chunk` bytes until the module reports none left (read 0). */
function rawRead(fd: number, chunk = 512): string {
  const parts: Buffer[] = [];
  for (;;) {
    const buf = Buffer.alloc(chunk);
    const n = readSync(fd, buf, 0, chunk, null);
    if (n === 0) break;
    parts.push(buf.subarray(0, n));
  }
  return Buffer.concat(parts).toString('latin1');
}
function request(fd: number, text: string): string {
  const w = rawWrite(fd, Buffer.from(`${text}\n`, 'latin1'));
  return w.code ? `write failed: ${w.code}` : rawRead(fd);
}

/** Sends `total` generated cases on `fd` and checks each outcome against the protocol. */
function fuzz(fd: number, total: number, env: ModelEnv, schedule: readonly Kind[], versionLine: string): FuzzStats {
  const named = new Map(namedCases(env));
  const stats: FuzzStats = {
    total,
    ms: 0,
    outcomes: { writeEINVAL: 0, writeEMSGSIZE: 0, errReply: 0 },
    errnames: {},
    determined: 0,
    ambiguous: 0,
    byKind: {},
    byKindOutcome: {},
  };
  const started = performance.now();
  for (let i = 0; i < total; i++) {
    if (i % 250 === 0) check(request(fd, 'version') === versionLine, `version after ${i} fuzz cases is wrong`);
    const kind = itemAt(schedule, i % schedule.length);
    const bytes = GENERATORS[kind](env);
    const want = predict(bytes, env);
    if ('ok' in want) throw new Error(`${kind} made the well-formed command ${show(bytes)}`);
    bump(stats.byKind, kind);
    const kindOutcome = (stats.byKindOutcome[kind] ??= {});
    const wanted = 'write' in want ? want.write : want.err;
    if (wanted.length === 1) stats.determined++;
    else stats.ambiguous++;
    // The corner cases' answers are written down by hand: they check the model as well as the module.
    const namedWant = kind === 'named' ? named.get(bytes.toString('latin1').replace(/\n$/, '')) : undefined;
    if (kind === 'named') {
      check(namedWant !== undefined && wanted.length === 1 && wanted[0] === namedWant, `named ${show(bytes)}: the model says ${wanted.join('|')}`);
    }
    // Leave a reply unread every other case: a rejected write must not let it be read as its own.
    if (i % 2 === 0) rawWrite(fd, Buffer.from('ping\n'));
    const w = rawWrite(fd, bytes);
    const reply = rawRead(fd, int(1, 300));
    const what = `${kind} ${show(bytes)}`;
    if (w.code) {
      bump(kindOutcome, `write ${w.code}`);
      check('write' in want && want.write.includes(w.code), `${what}: write failed with ${w.code}, want ${'write' in want ? 'write' : 'reply err'} ${wanted.join('|')}`);
      check(reply === '', `${what}: rejected write left reply ${JSON.stringify(reply)} readable`);
      if (w.code === 'EINVAL') stats.outcomes.writeEINVAL++;
      if (w.code === 'EMSGSIZE') stats.outcomes.writeEMSGSIZE++;
      continue;
    }
    check(w.written === bytes.length, `${what}: wrote ${w.written} of ${bytes.length}`);
    check(reply.length <= 511, `${what}: a reply of ${reply.length} bytes`);
    let parsed: HelperReply;
    try {
      parsed = parseHelperReply(reply);
    } catch (err) {
      bump(kindOutcome, 'malformed reply');
      fail(`${what}: ${messageOf(err)}`);
      continue;
    }
    bump(kindOutcome, parsed.ok ? 'ok' : `err ${parsed.errno}`);
    if (check(!parsed.ok && 'err' in want && want.err.includes(parsed.errno), `${what}: got ${JSON.stringify(reply)}, want ${'err' in want ? 'reply err' : 'write'} ${wanted.join('|')}`)) {
      stats.outcomes.errReply++;
      if (!parsed.ok) bump(stats.errnames, parsed.errno);
    }
  }
  stats.ms = Math.round(performance.now() - started);
  return stats;
}

const TXSTAT_FIELDS = ['ifindex', 'state', 'running', 'carrier', 'queues', 'stopped', 'stalled_ms', 'watchdog_ms', 'tx_packets', 'inflight', 'completed', 'timeouts'];
/** Parses `ok ifindex=N state=... timeouts=T\n`, checking every field's form; null (and a failure) if it is not that. */
function parseTxstat(reply: string, what: string): Record<string, string> | null {
  const m = /^ok (.*)\n$/.exec(reply);
  if (!check(m !== null, `${what} gave ${JSON.stringify(reply)}`) || !m?.[1]) return null;
  const fields = m[1].split(' ').map((f) => f.split('='));
  const keys = fields.map((f) => f[0]);
  if (!check(JSON.stringify(keys) === JSON.stringify(TXSTAT_FIELDS) && fields.every((f) => f.length === 2), `${what} has fields ${JSON.stringify(m[1])}`)) return null;
  const out = Object.fromEntries(fields.map(([k = '', v = '']) => [k, v]));
  check(out.state === 'passive' || out.state === 'restarting' || out.state === 'parked', `${what}: state=${out.state}`);
  for (const k of ['running', 'carrier']) check(out[k] === '0' || out[k] === '1', `${what}: ${k}=${out[k]}`);
  for (const k of TXSTAT_FIELDS.filter((f) => !['state', 'running', 'carrier'].includes(f))) check(/^(0|[1-9][0-9]*)$/.test(out[k] ?? ''), `${what}: ${k}=${out[k]}`);
  return out;
}
const REPLAY_STEPS = ['name', 'mac', 'mtu', 'features', 'vlan', 'rings', 'msglvl', 'pause', 'privflags', 'open'];

const result: SmokeResult = { seed, guestKernel: release(), nic: { name: NIC, driver: values.nic, ifindex: nicIfindex } };
const started = performance.now();

// --- before load: the client explains what is missing -------------------------------------
check(!existsSync(HELPER_DEVICE), `${HELPER_DEVICE} exists before insmod`);
try {
  await openHelper();
  fail('openHelper() succeeded before the module was loaded');
} catch (err) {
  check(messageOf(err) === NOT_LOADED, `openHelper() before load said ${JSON.stringify(messageOf(err))}`);
}

// --- load --------------------------------------------------------------------------------
if (!values.ko) throw new Error('--ko PATH is required');
loadHelperDeps(values.ko);
const insmod = run('insmod', [values.ko, 'allow_faults=1']);
if (insmod.status !== 0) {
  console.error(`insmod ${values.ko} allow_faults=1 failed: ${insmod.out}`);
  process.exit(1);
}
const st = statSync(HELPER_DEVICE);
check(st.isCharacterDevice(), `${HELPER_DEVICE} is not a character device`);
check((st.mode & 0o7777) === 0o600 && st.uid === 0, `${HELPER_DEVICE} has mode ${(st.mode & 0o7777).toString(8)} uid ${st.uid}, want 0600 root`);

// --- the daemon's client -------------------------------------------------------------------
const client = await openHelper();
const version = await client.version();
result.version = version;
check(version.proto === 3 && HELPER_PROTO === 3, `proto ${version.proto} (client ${HELPER_PROTO})`);
check(JSON.stringify(version.classes) === JSON.stringify(['net', 'block', 'sound']), `version lists classes ${JSON.stringify(version.classes)}, want net,block,sound`);
check(version.faults, 'loaded with allow_faults=1, version says faults=0');
check(version.kernel === release(), `module reports kernel ${version.kernel}, the guest runs ${release()}`);
const pong = await client.request('ping');
check(pong.ok && pong.payload === 'pong', `ping gave ${JSON.stringify(pong)}`);
for (const bad of ['frobnicate', 'ping extra', 'version 1 2', ' ping', 'ping ', 'txstat', `restart ${DEV}`, `txstat ${NIC}`, `txstat sound:${NIC}`]) {
  const r = await client.request(bad);
  check(!r.ok && r.errno === 'EINVAL' && r.message.length > 0, `client request ${JSON.stringify(bad)} gave ${JSON.stringify(r)}`);
}
for (const refused of ['ping\n', 'pi\x00ng', 'x'.repeat(256), '', 'caf\u00e9']) {
  try {
    await client.request(refused);
    fail(`client sent ${JSON.stringify(refused)} instead of refusing it`);
  } catch (err) {
    check(/^refusing to send/.test(messageOf(err)), `client refusal of ${JSON.stringify(refused)} said ${messageOf(err)}`);
  }
}
// Requests issued together on one client are queued, so each gets its own reply.
const together = await Promise.all([client.request('ping'), client.request('version'), client.request('nope'), client.request('ping')]);
check(
  together[0].ok && together[0].payload === 'pong' && together[1].ok && !together[2].ok && together[3].ok,
  `queued requests got ${JSON.stringify(together)}`,
);
await client.close();
const versionLine = (faults: boolean): string =>
  `ok shadow_helper proto=3 version=${version.version} kernel=${version.kernel} faults=${faults ? 1 : 0} classes=net,block,sound\n`;

// --- fuzz the raw device -----------------------------------------------------------------
const ifaces = readIfaces();
check(ifaces.get(NIC) === true && ifaces.get('lo') === false, `interfaces and their bus devices: ${JSON.stringify([...ifaces])}`);
const fd = openSync(HELPER_DEVICE, 'r+');
result.fuzz = fuzz(fd, Number(values.fuzz), { faults: true, ifaces }, SCHEDULE, versionLine(true));
check(sysIfindex(NIC) === nicIfindex && driverOf(NIC) === values.nic, `${NIC} changed during the fuzz`);

// --- reading: in pieces, nothing twice, no file position -----------------------------------
rawWrite(fd, Buffer.from('version\n'));
const bytewise = rawRead(fd, 1);
check(bytewise === versionLine(true), `byte-by-byte read gave ${JSON.stringify(bytewise)}`);
check(rawRead(fd) === '', 'a fully read reply was returned again');
const positioned: [string, () => number][] = [
  ['pread', () => readSync(fd, Buffer.alloc(8), 0, 8, 0)],
  ['pwrite', () => writeSync(fd, Buffer.from('ping\n'), 0, 5, 0)],
];
for (const [what, op] of positioned) {
  try {
    op();
    fail(`${what} on ${HELPER_DEVICE} succeeded`);
  } catch (err) {
    check(codeOf(err) === 'ESPIPE', `${what} failed with ${codeOf(err)}, want ESPIPE`);
  }
}
result.partialRead = { bytes: bytewise.length };

// --- the protocol 3 verbs for real, on the NIC ----------------------------------------------
{
  let checked = 0;
  const expectReply = (command: string, want: string): void => {
    const got = request(fd, command);
    checked++;
    check(got === `${want}\n`, `${command} gave ${JSON.stringify(got)}, want ${JSON.stringify(want)}`);
  };
  const txBefore = parseTxstat(request(fd, `txstat ${DEV}`), `txstat ${DEV}`);
  const sysTxPackets = Number(readFileSync(`/sys/class/net/${NIC}/statistics/tx_packets`, 'utf8').trim());
  if (txBefore) {
    check(Number(txBefore.ifindex) === nicIfindex, `txstat ifindex=${txBefore.ifindex}, sysfs says ${nicIfindex}`);
    check(txBefore.state === 'passive' && txBefore.running === '1', `txstat of an up, untouched ${NIC}: ${JSON.stringify(txBefore)}`);
    check(Number(txBefore.queues) >= 1 && Number(txBefore.stopped) <= Number(txBefore.queues), `txstat queues: ${JSON.stringify(txBefore)}`);
    check(Number(txBefore.watchdog_ms) > 0, `txstat watchdog_ms=${txBefore.watchdog_ms}`);
    check(Number(txBefore.tx_packets) <= sysTxPackets, `txstat tx_packets=${txBefore.tx_packets}, sysfs says ${sysTxPackets} just after`);
  }
  const txLo = parseTxstat(request(fd, 'txstat net:lo'), 'txstat net:lo');
  check(txLo?.ifindex === String(sysIfindex('lo')) && txLo.state === 'passive', `txstat lo: ${JSON.stringify(txLo)}`);
  checked += 2;
  expectReply(`stage ${DEV} msglvl 7`, `ok staged ${DEV} msglvl`);
  expectReply(`stage ${DEV} rings 256 0 0 256`, `ok staged ${DEV} rings`);
  expectReply(`stage ${DEV} pause 1 0 1`, `ok staged ${DEV} pause`);
  expectReply(`stage ${DEV} privflags 0`, `ok staged ${DEV} privflags`);
  expectReply(`stage ${DEV} clear`, `ok staged ${DEV} clear`);
  // Injected and cleared at once: a queue left stopped for the watchdog period would WARN.
  expectReply(`inject ${DEV} tx-hang`, `ok injected ${DEV} tx-hang`);
  expectReply(`inject ${DEV} clear`, `ok cleared ${DEV}`);
  // Error messages name the device as the command did.
  expectReply('txstat net:nosuch', 'err ENODEV no interface net:nosuch');
  expectReply('stage net:lo clear', "err ENODEV net:lo has no bus device: not a driver's device");
  expectReply(`txstat snd:${NIC}`, 'err EINVAL unknown device class "snd" (classes: net,block,sound)');
  // The restart blocks its writer; meanwhile a second descriptor sees it run and is turned away.
  let restartDone = false;
  const restartWrite = new Promise<string>((resolve) => {
    const buf = Buffer.from(`restart ${DEV} fuzz1\n`);
    writeCb(fd, buf, 0, buf.length, null, (err) => {
      restartDone = true;
      resolve(err ? `write failed: ${codeOf(err) ?? String(err)}` : rawRead(fd));
    });
  });
  const probe = openSync(HELPER_DEVICE, 'r+');
  let during: Record<string, string> | null = null;
  let busyReply = '';
  for (const deadline = performance.now() + 30_000; !restartDone && performance.now() < deadline; ) {
    const t = request(probe, `txstat ${DEV}`);
    if (t.includes(' state=restarting ')) {
      during = parseTxstat(t, `txstat ${DEV} during the restart`);
      // Not a name that exists: had the restart just ended, this would be ENODEV, never a second restart.
      busyReply = request(probe, 'park net:nosuch r2');
      break;
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  const restart = await restartWrite;
  closeSync(probe);
  checked += 3;
  check(during?.ifindex === String(nicIfindex), `txstat ${DEV} never saw the restart run, or saw ${JSON.stringify(during)}`);
  check(busyReply.startsWith('err EBUSY '), `park net:nosuch r2 during the restart gave ${JSON.stringify(busyReply)}, want err EBUSY`);
  const m = new RegExp(
    `^ok restarted ${DEV} id=fuzz1 ifindex=(\\d+) stop_ms=\\d+ release_ms=\\d+ probe_ms=\\d+ replay_ms=\\d+ open_ms=\\d+ total_ms=(\\d+) steps=(\\S+)\\n$`,
  ).exec(restart);
  if (check(m !== null, `restart ${DEV} fuzz1 gave ${JSON.stringify(restart)}`) && m) {
    const [, ifindex = '', totalMs = '', steps = ''] = m;
    check(Number(ifindex) === nicIfindex, `restart reports ifindex ${ifindex}, ${NIC} had ${nicIfindex}`);
    const pairs = steps.split(',').map((s) => s.split(':'));
    check(JSON.stringify(pairs.map((p) => p[0])) === JSON.stringify(REPLAY_STEPS), `restart steps ${steps}, want ${REPLAY_STEPS.join(',')}`);
    check(pairs.every((p) => p.length === 2 && (p[1] === 'ok' || p[1] === 'skip')), `restart steps ${steps}: each must be ok or skip`);
    // The name is kept, the device was up (so it is opened again), and the staged settings were cleared.
    check(steps.startsWith('name:ok,') && steps.endsWith(',open:ok'), `restart steps ${steps}: want name:ok ... open:ok`);
    check(['rings', 'msglvl', 'pause', 'privflags'].every((k) => steps.includes(`${k}:skip`)), `restart steps ${steps}: staged settings were cleared`);
    result.valid = {
      txstat: txBefore ?? {},
      restart: { ifindex: Number(ifindex), totalMs: Number(totalMs), steps },
      during: during ?? {},
      busy: busyReply,
      after: {},
      checked,
    };
  }
  const txAfter = parseTxstat(request(fd, `txstat ${DEV}`), `txstat ${DEV} after the restart`);
  checked++;
  check(
    txAfter?.ifindex === String(nicIfindex) && txAfter.state === 'passive' && txAfter.running === '1',
    `txstat ${DEV} after the restart: ${JSON.stringify(txAfter)}`,
  );
  check(sysIfindex(NIC) === nicIfindex && driverOf(NIC) === values.nic, `${NIC} after the restart: ifindex ${sysIfindex(NIC)}, driver ${driverOf(NIC)}`);
  if (result.valid) {
    result.valid.after = txAfter ?? {};
    result.valid.checked = checked;
  }
}

// --- concurrency: many writers and readers on one descriptor (the per-file mutex) ----------
const mix = [
  Buffer.from('ping\n'),
  Buffer.from('version\n'),
  Buffer.from('bogus\n'),
  Buffer.from('ping\x01\n'),
  Buffer.alloc(300, 0x61),
  Buffer.from('\n'),
  Buffer.from(`txstat ${DEV}\n`),
  Buffer.from('restart net:nosuch r1\n'),
  Buffer.from(`txstat ${NIC}\n`),
];
/** Resolves to 'ok', 'short' or the errno name the write failed with. */
const writeAsync = (buf: Buffer): Promise<string> =>
  new Promise((resolve) =>
    writeCb(fd, buf, 0, buf.length, null, (err, n) => resolve(err ? (codeOf(err) ?? String(err)) : n === buf.length ? 'ok' : 'short')),
  );
const readAsync = (): Promise<ReadOutcome> =>
  new Promise((resolve) => {
    const buf = Buffer.alloc(int(1, 64));
    readCb(fd, buf, 0, buf.length, null, (err, n) =>
      resolve(err ? { code: codeOf(err) ?? String(err) } : { text: buf.subarray(0, n).toString('latin1') }),
    );
  });
const CONCURRENT = 2000;
const concurrentStarted = performance.now();
const ops = await Promise.all(
  Array.from({ length: CONCURRENT }, (_, i) => (i % 3 === 2 ? readAsync() : writeAsync(itemAt(mix, i % mix.length)))),
);
const writeResults: Record<string, number> = {};
let readPieces = 0;
for (const op of ops) {
  if (typeof op === 'string') {
    bump(writeResults, op);
    check(['ok', 'EINVAL', 'EMSGSIZE'].includes(op), `concurrent write ended with ${op}`);
  } else if ('code' in op) {
    fail(`concurrent read failed with ${op.code}`);
  } else if (op.text !== '') {
    readPieces++;
    // Racing readers may get any piece of a reply, but only a piece of one line.
    check(/^[\x20-\x7e]*\n?$/.test(op.text), `concurrent read gave ${JSON.stringify(op.text)}`);
  }
}
check(request(fd, 'ping') === 'ok pong\n', 'ping after the concurrent storm failed');
closeSync(fd);

// Several descriptors at once: each keeps its own reply.
const clients = await Promise.all(Array.from({ length: 4 }, () => openHelper()));
let isolated = 0;
await Promise.all(
  clients.map(async (c, n) => {
    for (let i = 0; i < 100; i++) {
      const cmd = itemAt(['ping', 'version', `nope${n}`], (i + n) % 3);
      const r = await c.request(cmd);
      const good =
        cmd === 'ping' ? r.ok && r.payload === 'pong' : cmd === 'version' ? r.ok && r.payload.startsWith('shadow_helper ') : !r.ok && r.message.includes(`nope${n}`);
      if (check(good, `client ${n} sent ${cmd} and got ${JSON.stringify(r)}`)) isolated++;
    }
  }),
);
await Promise.all(clients.map((c) => c.close()));
result.concurrency = {
  oneFd: { ops: CONCURRENT, writes: writeResults, nonEmptyReads: readPieces, ms: Math.round(performance.now() - concurrentStarted) },
  fourClients: { requests: 400, correct: isolated },
};

// --- who may open it -----------------------------------------------------------------------
function tryOpenAs(label: string, setprivArgs: string[]): TryOpenResult | null {
  const r = spawnSync('setpriv', [...setprivArgs, process.execPath, SCRIPT, '--try-open'], { encoding: 'utf8' });
  const last = r.stdout?.trim().split('\n').pop() ?? '';
  let parsed: TryOpenResult;
  try {
    parsed = JSON.parse(last) as TryOpenResult;
  } catch {
    fail(`${label}: setpriv run failed (status ${r.status}): ${r.stdout}${r.stderr}${r.error ? String(r.error) : ''}`);
    return null;
  }
  return parsed;
}
const asNobody = tryOpenAs('nobody', ['--reuid=65534', '--regid=65534', '--clear-groups']);
check(asNobody?.opened === false && asNobody.code === 'EACCES' && asNobody.message === NO_ROOT, `open as nobody: ${JSON.stringify(asNobody)}`);
// Root without CAP_SYS_ADMIN passes the 0600 mode check and must be stopped by the capability check.
const noCap = tryOpenAs('root without CAP_SYS_ADMIN', ['--bounding-set=-sys_admin', '--inh-caps=-sys_admin']);
check(noCap?.opened === false && noCap.code === 'EPERM' && noCap.message === NO_ROOT, `open as root without CAP_SYS_ADMIN: ${JSON.stringify(noCap)}`);
result.nonRoot = { nobody: asNobody?.code, rootWithoutCapSysAdmin: noCap?.code };

// --- a restart whose requester left pins the module until it ends --------------------------
// The requester is killed while its restart waits on the module's workqueue:
// its file is closed, yet the module must not begin to unload under the
// restart. (From the impersonation on, the device's ops pin the module too;
// the job's own reference covers the queue, the check and the stop before
// it, a window this test cannot aim at.)
{
  const leaver = spawn(process.execPath, [SCRIPT, '--restart-and-wait', DEV], { stdio: ['ignore', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => leaver.stdout.once('data', () => resolve()));
  // The write is on its way: the restart is queued or running (it takes hundreds of ms).
  await new Promise((r) => setTimeout(r, 20));
  leaver.kill('SIGKILL');
  await new Promise((r) => leaver.once('exit', r));
  const t0 = performance.now();
  const during = run('rmmod', [MODULE]);
  const duringMs = Math.round(performance.now() - t0);
  check(during.status !== 0 && /in use/i.test(during.out), `rmmod while a left requester's restart ran: exit ${String(during.status)} after ${duringMs} ms: ${during.out}`);
  // The restart goes on to its end; then nothing holds the module.
  let ended = false;
  for (let i = 0; i < 300 && !ended; i++) {
    await new Promise((r) => setTimeout(r, 100));
    ended = /recovery leaver1: \S+ restarted in \d+ ms/.test(run('dmesg', []).out);
  }
  check(ended, "the left requester's restart (recovery leaver1) did not end restarted within 30 s");
  const after = await openHelper();
  const state = await after.request(`txstat ${DEV}`);
  await after.close();
  check(state.ok && state.payload.includes('state=passive'), `after the left requester's restart, txstat ${DEV} gave ${JSON.stringify(state)}`);
  result.leftRequester = { rmmodRefused: during.status !== 0, rmmodMs: duringMs, restartEnded: ended };
}

// --- unload ------------------------------------------------------------------------------
const holder = openSync(HELPER_DEVICE, 'r+');
const busy = run('rmmod', [MODULE]);
check(busy.status !== 0, 'rmmod succeeded while /dev/shadow_helper was open');
closeSync(holder);
const rmmod = run('rmmod', [MODULE]);
check(rmmod.status === 0, `rmmod failed: ${rmmod.out}`);
check(!existsSync(HELPER_DEVICE), `${HELPER_DEVICE} still exists after rmmod`);
check(!existsSync(`/sys/module/${MODULE}`), `/sys/module/${MODULE} still exists after rmmod`);
try {
  await openHelper();
  fail('openHelper() succeeded after rmmod');
} catch (err) {
  check(messageOf(err) === NOT_LOADED, `openHelper() after rmmod said ${JSON.stringify(messageOf(err))}`);
}
result.unload = { refusedWhileOpen: busy.status !== 0, rmmod: rmmod.status === 0 };

// --- without allow_faults: inject is refused, whatever its arguments ------------------------
const insmodPlain = run('insmod', [values.ko]);
if (insmodPlain.status !== 0) {
  fail(`insmod ${values.ko} (without allow_faults) failed: ${insmodPlain.out}`);
} else {
  const plain = await openHelper();
  const plainVersion = await plain.version();
  check(!plainVersion.faults && plainVersion.proto === 3, `loaded without allow_faults, version says ${JSON.stringify(plainVersion)}`);
  const refused = await plain.request(`inject ${DEV} tx-hang`);
  check(!refused.ok && refused.errno === 'EPERM' && refused.message.length > 0, `inject ${DEV} tx-hang without allow_faults gave ${JSON.stringify(refused)}`);
  const tx = await plain.request(`txstat ${DEV}`);
  check(tx.ok && tx.payload.startsWith(`ifindex=${nicIfindex} state=passive `), `txstat ${DEV} after reloading gave ${JSON.stringify(tx)}`);
  await plain.close();
  const plainFd = openSync(HELPER_DEVICE, 'r+');
  const noFaultsFuzz = fuzz(plainFd, 300, { faults: false, ifaces: readIfaces() }, ['injectArgs', 'injectArgs', 'named'], versionLine(false));
  closeSync(plainFd);
  const plainRmmod = run('rmmod', [MODULE]);
  check(plainRmmod.status === 0, `rmmod after the allow_faults=0 phase failed: ${plainRmmod.out}`);
  result.noFaults = {
    version: plainVersion,
    injectTxHang: refused.ok ? `ok ${refused.payload}` : `err ${refused.errno}`,
    fuzz: noFaultsFuzz,
    rmmod: plainRmmod.status === 0,
  };
}

// --- a parked NIC whose PCI device is removed goes with it and no longer pins the module ---
// Last: the NIC is gone afterwards. Before the helper watched bus devices, the interface
// stayed (parked, with nothing behind it) and rmmod was refused for good.
{
  const bdf = basename(readlinkSync(`/sys/class/net/${NIC}/device`));
  const insmod = run('insmod', [values.ko]);
  if (check(insmod.status === 0, `insmod ${values.ko} for the unplug phase failed: ${insmod.out}`)) {
    const client = await openHelper();
    const parked = await client.request(`park ${DEV} unplug1`);
    await client.close();
    check(parked.ok && parked.payload === `parked ${DEV} id=unplug1`, `park ${DEV} unplug1 gave ${JSON.stringify(parked)}`);
    writeFileSync(`/sys/bus/pci/devices/${bdf}/remove`, '1');
    const removedAt = performance.now();
    let goneMs: number | null = null;
    while (performance.now() - removedAt < 10_000) {
      // Not sysfs: the parent's directory goes with it even when the interface stays registered.
      if (run('ip', ['link', 'show', 'dev', NIC]).status !== 0) {
        goneMs = Math.round(performance.now() - removedAt);
        break;
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    check(goneMs !== null, `${NIC} is still registered (ip link show) 10 s after its PCI device ${bdf} was removed while parked`);
    const log = run('dmesg', []).out.split('\n').filter((l) => l.includes('was removed'));
    check(log.some((l) => l.includes(`${NIC}: ${bdf} was removed: the parked interface goes with it`)), `no kernel log line for the removal: ${JSON.stringify(log)}`);
    const rmmodAfter = run('rmmod', [MODULE]);
    check(rmmodAfter.status === 0, `rmmod after the parked NIC's device was removed failed (still pinned?): ${rmmodAfter.out}`);
    result.unplugged = { parked: parked.ok ? parked.payload : `err ${parked.errno}`, goneMs, log, rmmod: rmmodAfter.status === 0 };
  }
}

result.ms = Math.round(performance.now() - started);
result.failures = failureCount;
console.log(`SMOKE_RESULT ${JSON.stringify(result)}`);
if (failureCount > 0) {
  console.error(`${failureCount} check(s) failed (seed ${seed}); the first ${failures.length}:\n${failures.join('\n')}`);
  process.exit(1);
}
