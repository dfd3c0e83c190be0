// Runs inside the guest, as root, for test/vm/helper-module.test.ts: loads the
// helper module, talks to it through the daemon's client, fuzzes the raw
// device, checks that unprivileged opens are refused and that it unloads.
// Prints one "SMOKE_RESULT <json>" line; exits 1 listing what went wrong.
//   node dist/test/vm/guest/helper-smoke.js --ko PATH [--fuzz N] [--seed N]
//   node dist/test/vm/guest/helper-smoke.js --try-open   (child mode: report how opening fails)
import { Buffer } from 'node:buffer';
import { spawnSync } from 'node:child_process';
import console from 'node:console';
import { closeSync, existsSync, openSync, read as readCb, readSync, statSync, write as writeCb, writeSync } from 'node:fs';
import { release } from 'node:os';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { HELPER_DEVICE, openHelper, parseHelperReply, type HelperReply, type HelperVersion } from '../../../daemon/helper-client.js';

/** What a fuzz case's write must lead to: that write errno, an `err EINVAL` reply, or either. */
type Expectation = 'any' | 'err' | 'EINVAL' | 'EMSGSIZE';
interface FuzzCase {
  bytes: Buffer;
  expect: Expectation;
}
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
/** The SMOKE_RESULT object, filled in section by section. */
interface SmokeResult {
  seed: number;
  guestKernel: string;
  version?: HelperVersion;
  fuzz?: {
    total: number;
    ms: number;
    outcomes: { writeEINVAL: number; writeEMSGSIZE: number; errReply: number };
    byKind: Record<string, number>;
  };
  partialRead?: { bytes: number };
  concurrency?: {
    oneFd: { ops: number; writes: Record<string, number>; nonEmptyReads: number; ms: number };
    fourClients: { requests: number; correct: number };
  };
  nonRoot?: { nobody: string | undefined; rootWithoutCapSysAdmin: string | undefined };
  unload?: { refusedWhileOpen: boolean; rmmod: boolean };
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

// This compiled file (dist/.../helper-smoke.js), re-run in --try-open mode under setpriv.
const SCRIPT = fileURLToPath(import.meta.url);
const MODULE = 'shadow_helper';
const NOT_LOADED = `the shadow_helper module is not loaded (${HELPER_DEVICE} is missing)`;
const NO_ROOT = 'permission denied: the helper requires root';

const { values } = parseArgs({
  options: {
    ko: { type: 'string' },
    fuzz: { type: 'string', default: '5000' },
    seed: { type: 'string' },
    'try-open': { type: 'boolean', default: false },
  },
});

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
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
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
const insertAt = (text: string, byte: number): Buffer => {
  const at = int(0, text.length);
  return Buffer.concat([Buffer.from(text.slice(0, at), 'latin1'), Buffer.from([byte]), Buffer.from(text.slice(at), 'latin1')]);
};
const line = (text: string, newline = rand() < 0.5): Buffer => Buffer.from(newline ? `${text}\n` : text, 'latin1');
const VALID = ['ping', 'version'];

// Each generator returns the bytes of one write and what the module must do with them:
// 'EINVAL'/'EMSGSIZE' (write fails with that errno) or 'err' (write succeeds, reply is err EINVAL).
const GENERATORS = {
  random() {
    const n = pick([int(0, 3), int(1, 256), int(1, 256), int(257, 700)]);
    const bytes = Buffer.alloc(n);
    // Mostly printable with rare junk, so the per-byte check is reached deep in the line too.
    const junk = rand() < 0.5 ? 1 : 0.03;
    for (let i = 0; i < n; i++) bytes[i] = rand() < junk ? int(0, 255) : int(0x20, 0x7e);
    return { bytes, expect: 'any' };
  },
  tooLong() {
    const n = pick([256, 257, int(258, 4096)]);
    return { bytes: line(printable(n, { spaces: true })), expect: 'EMSGSIZE' };
  },
  boundary() {
    // 255 characters is the longest line: accepted as bytes, then refused as an unknown verb.
    return { bytes: line(`x${printable(254)}`), expect: 'err' };
  },
  nul() {
    // Up to 255 bytes: a longer write is refused for its length before its bytes are looked at.
    if (rand() < 0.2) return { bytes: Buffer.alloc(int(1, 255)), expect: 'EINVAL' };
    return { bytes: insertAt(pick(VALID), 0), expect: 'EINVAL' };
  },
  control() {
    const byte = pick([int(1, 9), int(11, 31), 0x7f, 0x0d, 0x09, 0x1b]);
    return { bytes: insertAt(pick([...VALID, 'ping x']), byte), expect: 'EINVAL' };
  },
  highBit() {
    return { bytes: insertAt(pick(VALID), int(0x80, 0xff)), expect: 'EINVAL' };
  },
  lineBreakInside() {
    return { bytes: Buffer.from(pick(['ping\nping', '\n\n', 'ping\n\n', '\nping', 'version\nx\n']), 'latin1'), expect: 'EINVAL' };
  },
  empty() {
    return { bytes: Buffer.from(pick(['', '\n']), 'latin1'), expect: 'EINVAL' };
  },
  unknownVerb() {
    let verb: string;
    do verb = rand() < 0.5 ? printable(int(1, 40)) : pick(['PING', 'Ping', 'pingx', 'versio', 'restart', 'inject', 'x']);
    while (VALID.includes(verb));
    return { bytes: line(verb), expect: 'err' };
  },
  extraArgs() {
    const args = Array.from({ length: int(1, 6) }, () => printable(int(1, 20)));
    return { bytes: line(`${pick(VALID)} ${args.join(' ')}`), expect: 'err' };
  },
  tooManyTokens() {
    return { bytes: line(Array.from({ length: int(9, 40) }, () => printable(int(1, 4))).join(' ')), expect: 'err' };
  },
  badSpacing() {
    const verb = pick(VALID);
    return { bytes: line(pick([` ${verb}`, `${verb} `, `${verb}  x`, ' ', '   ', `${verb}   `])), expect: 'err' };
  },
} satisfies Record<string, () => FuzzCase>;
type Kind = keyof typeof GENERATORS;
const KINDS = Object.keys(GENERATORS) as Kind[];
// Random bytes get the most cases; each targeted kind still gets a few hundred.
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

const result: SmokeResult = { seed, guestKernel: release() };
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
const insmod = run('insmod', [values.ko]);
if (insmod.status !== 0) {
  console.error(`insmod ${values.ko} failed: ${insmod.out}`);
  process.exit(1);
}
const st = statSync(HELPER_DEVICE);
check(st.isCharacterDevice(), `${HELPER_DEVICE} is not a character device`);
check((st.mode & 0o7777) === 0o600 && st.uid === 0, `${HELPER_DEVICE} has mode ${(st.mode & 0o7777).toString(8)} uid ${st.uid}, want 0600 root`);

// --- the daemon's client -------------------------------------------------------------------
const client = await openHelper();
const version = await client.version();
result.version = version;
check(version.proto === 1, `proto ${version.proto}`);
check(version.kernel === release(), `module reports kernel ${version.kernel}, the guest runs ${release()}`);
const pong = await client.request('ping');
check(pong.ok && pong.payload === 'pong', `ping gave ${JSON.stringify(pong)}`);
for (const bad of ['frobnicate', 'ping extra', 'version 1 2', ' ping', 'ping ']) {
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
const versionLine = `ok shadow_helper proto=1 version=${version.version} kernel=${version.kernel}\n`;

// --- fuzz the raw device -----------------------------------------------------------------
const fuzzTotal = Number(values.fuzz);
const outcomes = { writeEINVAL: 0, writeEMSGSIZE: 0, errReply: 0 };
const byKind: Record<string, number> = {};
const fd = openSync(HELPER_DEVICE, 'r+');
const fuzzStarted = performance.now();
for (let i = 0; i < fuzzTotal; i++) {
  if (i % 250 === 0) check(request(fd, 'version') === versionLine, `version after ${i} fuzz cases is wrong`);
  const kind = itemAt(SCHEDULE, i % SCHEDULE.length);
  const { bytes, expect } = GENERATORS[kind]();
  byKind[kind] = (byKind[kind] ?? 0) + 1;
  // Leave a reply unread every other case: a rejected write must not let it be read as its own.
  const primed = i % 2 === 0;
  if (primed) rawWrite(fd, Buffer.from('ping\n'));
  const w = rawWrite(fd, bytes);
  const reply = rawRead(fd, int(1, 300));
  if (w.code) {
    check(w.code === 'EINVAL' || w.code === 'EMSGSIZE', `${kind} ${show(bytes)}: write failed with ${w.code}`);
    check(expect === 'any' || expect === w.code, `${kind} ${show(bytes)}: write failed with ${w.code}, want ${expect}`);
    check(reply === '', `${kind} ${show(bytes)}: rejected write left reply ${JSON.stringify(reply)} readable`);
    if (w.code === 'EINVAL') outcomes.writeEINVAL++;
    if (w.code === 'EMSGSIZE') outcomes.writeEMSGSIZE++;
    continue;
  }
  check(w.written === bytes.length, `${kind} ${show(bytes)}: wrote ${w.written} of ${bytes.length}`);
  check(expect === 'any' || expect === 'err', `${kind} ${show(bytes)}: accepted, want write error ${expect}`);
  let parsed: HelperReply;
  try {
    parsed = parseHelperReply(reply);
  } catch (err) {
    fail(`${kind} ${show(bytes)}: ${messageOf(err)}`);
    continue;
  }
  if (check(!parsed.ok && parsed.errno === 'EINVAL', `${kind} ${show(bytes)}: got ${JSON.stringify(reply)}, want err EINVAL`)) {
    outcomes.errReply++;
  }
}
result.fuzz = { total: fuzzTotal, ms: Math.round(performance.now() - fuzzStarted), outcomes, byKind };

// --- reading: in pieces, nothing twice, no file position -----------------------------------
rawWrite(fd, Buffer.from('version\n'));
const bytewise = rawRead(fd, 1);
check(bytewise === versionLine, `byte-by-byte read gave ${JSON.stringify(bytewise)}`);
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

// --- concurrency: many writers and readers on one descriptor (the per-file mutex) ----------
const mix = [
  Buffer.from('ping\n'),
  Buffer.from('version\n'),
  Buffer.from('bogus\n'),
  Buffer.from('ping\x01\n'),
  Buffer.alloc(300, 0x61),
  Buffer.from('\n'),
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
    writeResults[op] = (writeResults[op] ?? 0) + 1;
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

result.ms = Math.round(performance.now() - started);
result.failures = failureCount;
console.log(`SMOKE_RESULT ${JSON.stringify(result)}`);
if (failureCount > 0) {
  console.error(`${failureCount} check(s) failed (seed ${seed}); the first ${failures.length}:\n${failures.join('\n')}`);
  process.exit(1);
}
