// The disk class's impersonator is the kernel's own: a single-path
// dm-multipath map with queue_if_no_path holds a filesystem's I/O while the
// disk's driver restarts, and resubmits it once the map points at the disk
// found again (shared/disk-facts.md §3). This file is that map, through
// `dmsetup`: list maps and their targets, build and parse multipath tables and
// status, create, reload, suspend, resume, remove, and say which maps protect
// which disk. dmsetup runs with an argv array; its output is input and every
// parser rejects what it does not understand.
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { ProgramResult } from '../../core/run-program.js';

// ---------------------------------------------------------------- names

/** DM_NAME_LEN is 128 with the terminating NUL. */
export const DM_NAME_MAX = 127;

/**
 * The characters udev and dmsetup leave as they are (dmsetup's name mangling
 * whitelist): any other is hex-mangled, so a name made of these is the same in
 * the kernel, in /dev/mapper and in dmsetup's output.
 */
const NAME_CHARS = /^[A-Za-z0-9#+\-.:=@_]+$/;

/** Names dmsetup or /dev/mapper give a meaning of their own. */
const RESERVED_NAMES = new Set(['.', '..', 'control']);

export class DmNameError extends Error {
  override name = 'DmNameError';
}

/** Returns name if it is a map name this class may create or address; throws DmNameError saying why not. */
export function validateMapName(name: string): string {
  if (typeof name !== 'string' || name.length === 0) throw new DmNameError('a map name must not be empty');
  if (name.length > DM_NAME_MAX) throw new DmNameError(`map name is ${name.length} characters long; device-mapper allows ${DM_NAME_MAX}`);
  if (!NAME_CHARS.test(name)) {
    throw new DmNameError(`map name ${JSON.stringify(name)} has a character outside A-Z a-z 0-9 # + - . : = @ _`);
  }
  // dmsetup would take a leading '-' as an option.
  if (name.startsWith('-')) throw new DmNameError(`map name ${JSON.stringify(name)} must not start with '-'`);
  if (RESERVED_NAMES.has(name)) throw new DmNameError(`map name ${JSON.stringify(name)} is reserved`);
  return name;
}

export const DEFAULT_NAME_PREFIX = 'shadow-';

/**
 * The default map name for a disk: `shadow-` and its serial (else its WWN),
 * every character outside A-Z a-z 0-9 . _ - replaced by `_`, runs of `_`
 * squeezed, cut to the length dm allows. Throws DmNameError when the disk has
 * neither, or nothing of them survives: then the caller must name the map.
 */
export function defaultMapName(identity: { serial: string | null; wwn: string | null }): string {
  for (const source of [identity.serial, identity.wwn]) {
    if (source === null) continue;
    const cleaned = source
      .trim()
      .replace(/[^A-Za-z0-9._-]/g, '_')
      .replace(/_+/g, '_')
      .replace(/^[_.]+|[_.]+$/g, '');
    if (cleaned.length === 0) continue;
    return validateMapName((DEFAULT_NAME_PREFIX + cleaned).slice(0, DM_NAME_MAX));
  }
  throw new DmNameError('the disk has no serial or WWN to name its map after: give the map a name');
}

/** dmsetup's `\xNN` name mangling undone (names in listings come mangled, see listMaps). */
export function unmangleName(mangled: string): string {
  return mangled.replace(/\\x([0-9a-fA-F]{2})/g, (_m, hex: string) => String.fromCharCode(parseInt(hex, 16)));
}

// ---------------------------------------------------------------- device numbers

export class DmParseError extends Error {
  override name = 'DmParseError';
}

/** Linux's dev_t: 12 bits of major, 20 of minor. */
const MAJOR_MAX = 4095;
const MINOR_MAX = 0xfffff;

/** Returns `MAJ:MIN` in canonical form, or throws DmParseError. */
export function parseDevt(text: string): string {
  const m = /^(\d{1,4}):(\d{1,7})$/.exec(text);
  if (!m) throw new DmParseError(`${JSON.stringify(text)} is not a MAJ:MIN device number`);
  const major = Number(m[1]);
  const minor = Number(m[2]);
  if (major > MAJOR_MAX || minor > MINOR_MAX) throw new DmParseError(`${JSON.stringify(text)} is out of dev_t range`);
  return `${major}:${minor}`;
}

function parseCount(token: string | undefined, what: string, max = 1 << 20): number {
  if (token === undefined) throw new DmParseError(`${what} is missing`);
  if (!/^\d{1,10}$/.test(token)) throw new DmParseError(`${what} ${JSON.stringify(token)} is not a number`);
  const n = Number(token);
  if (n > max) throw new DmParseError(`${what} ${n} is larger than ${max}`);
  return n;
}

function parseSectors(token: string | undefined, what: string): number {
  if (token === undefined || !/^\d{1,16}$/.test(token)) throw new DmParseError(`${what} ${JSON.stringify(token)} is not a sector count`);
  const n = Number(token);
  if (!Number.isSafeInteger(n)) throw new DmParseError(`${what} ${token} is too large`);
  return n;
}

// ---------------------------------------------------------------- tables

/** One line of `dmsetup table` or `dmsetup status`: `START LENGTH TARGET ARGS...`. */
export interface DmSegment {
  start: number;
  length: number;
  target: string;
  args: string[];
}

/** Longest line accepted from dmsetup: a multipath line with a few paths is far shorter. */
const MAX_LINE = 64 * 1024;

/** Parses one segment line. Throws DmParseError on anything else. */
export function parseSegment(line: string): DmSegment {
  if (line.length > MAX_LINE) throw new DmParseError(`table line is ${line.length} characters long`);
  if (/[\0\n\r]/.test(line)) throw new DmParseError('table line has a control character in it');
  const tokens = line.trim().split(/[ \t]+/);
  const [start, length, target, ...args] = tokens;
  if (target === undefined || !/^[a-z][a-z0-9_-]{0,15}$/.test(target)) {
    throw new DmParseError(`${JSON.stringify(line)} is not a device-mapper table line (START LENGTH TARGET ARGS)`);
  }
  return { start: parseSectors(start, 'segment start'), length: parseSectors(length, 'segment length'), target, args };
}

/** The whole output of `dmsetup table NAME` or `dmsetup status NAME` (one line per segment; none for a map without a live table). */
export function parseSegments(text: string): DmSegment[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const segments = lines.map(parseSegment);
  let next = 0;
  for (const s of segments) {
    if (s.start !== next) throw new DmParseError(`segments are not contiguous: one starts at ${s.start}, expected ${next}`);
    next = s.start + s.length;
  }
  return segments;
}

/** A multipath table (dm-mpath's constructor arguments, and what `dmsetup table` prints back). */
export interface MultipathTable {
  /** Feature words, e.g. ['queue_if_no_path'] or ['queue_if_no_path', 'queue_mode', 'bio']. */
  features: string[];
  queueIfNoPath: boolean;
  /** Hardware handler and its arguments; [] for none. */
  hwHandler: string[];
  groups: { selector: string; selectorArgs: string[]; paths: { devt: string; args: string[] }[] }[];
  /** Every path's MAJ:MIN, in table order. */
  paths: string[];
}

/** A reader over the argument words with counted groups, as dm-mpath's own parser reads them. */
class Words {
  private i = 0;
  constructor(
    private readonly words: readonly string[],
    private readonly what: string,
  ) {}
  next(name: string): string {
    const w = this.words[this.i++];
    if (w === undefined) throw new DmParseError(`${this.what}: ${name} is missing`);
    return w;
  }
  count(name: string, max = 1024): number {
    return parseCount(this.next(name), `${this.what}: ${name}`, max);
  }
  group(name: string): string[] {
    const n = this.count(`${name} count`);
    return Array.from({ length: n }, (_v, k) => this.next(`${name} word ${k + 1}`));
  }
  end(): void {
    if (this.i !== this.words.length) throw new DmParseError(`${this.what}: ${this.words.length - this.i} words left over`);
  }
}

/** Parses a multipath target's table arguments (the words after `multipath`). Throws DmParseError. */
export function parseMultipathTableArgs(args: readonly string[]): MultipathTable {
  const w = new Words(args, 'multipath table');
  const features = w.group('feature');
  const hwHandler = w.group('hardware handler');
  const nrGroups = w.count('priority group count');
  const initial = w.count('initial priority group');
  if (initial > nrGroups || (nrGroups > 0 && initial === 0)) {
    throw new DmParseError(`multipath table: initial priority group ${initial} of ${nrGroups}`);
  }
  const groups: MultipathTable['groups'] = [];
  for (let g = 0; g < nrGroups; g++) {
    const selector = w.next('path selector');
    if (!/^[a-z][a-z0-9_-]*$/.test(selector)) throw new DmParseError(`multipath table: path selector ${JSON.stringify(selector)}`);
    const selectorArgs = w.group('selector argument');
    const nrPaths = w.count('path count');
    const pathArgs = w.count('path argument count');
    const paths = [];
    for (let p = 0; p < nrPaths; p++) {
      const devt = parseDevt(w.next('path device'));
      paths.push({ devt, args: Array.from({ length: pathArgs }, () => w.next('path argument')) });
    }
    groups.push({ selector, selectorArgs, paths });
  }
  w.end();
  return {
    features,
    queueIfNoPath: features.includes('queue_if_no_path'),
    hwHandler,
    groups,
    paths: groups.flatMap((g) => g.paths.map((p) => p.devt)),
  };
}

/** A multipath map's one segment: the sector count and its table. Throws DmParseError for anything but exactly one multipath segment from 0. */
export function parseMultipathTable(text: string): { sectors: number; table: MultipathTable } {
  const segments = parseSegments(text);
  if (segments.length !== 1) throw new DmParseError(`expected one multipath segment, got ${segments.length}`);
  const s = segments[0]!;
  if (s.target !== 'multipath') throw new DmParseError(`target is ${s.target}, not multipath`);
  return { sectors: s.length, table: parseMultipathTableArgs(s.args) };
}

function checkSectors(sectors: number): number {
  if (!Number.isSafeInteger(sectors) || sectors <= 0) throw new DmParseError(`sector count ${sectors} must be a positive integer`);
  return sectors;
}

/**
 * `0 SECTORS multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 MAJ:MIN 1`:
 * the map that protects one disk (disk-facts §3.4 step 1).
 */
export function singlePathTable(sectors: number, devt: string): string {
  return `0 ${checkSectors(sectors)} multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 ${parseDevt(devt)} 1`;
}

/**
 * `0 SECTORS multipath 1 queue_if_no_path 0 0 0`: the map with no path, which
 * holds every I/O and drops its reference on the old disk (and so on the
 * driver's module) for a module reload (disk-facts §1, mpath-reload).
 */
export function noPathTable(sectors: number): string {
  return `0 ${checkSectors(sectors)} multipath 1 queue_if_no_path 0 0 0`;
}

// ---------------------------------------------------------------- status

export interface MultipathPathStatus {
  devt: string;
  /** A: active, F: failed. */
  state: 'A' | 'F';
  failCount: number;
  /** The path selector's per-path status words (none for round-robin). */
  selectorInfo: string[];
}

export interface MultipathStatus {
  /**
   * dm-mpath's MPATHF_QUEUE_IO: set on a fresh table until a path is chosen.
   * It does not tell whether I/O is held: a map whose only path failed holds
   * I/O through queue_if_no_path with queue_io 0 (captured in the guest), and
   * dm-mpath reports no count of held requests (nor does dm-N/inflight for
   * request-based dm, which read 0 0 with a read held). A failed path (state
   * F) on a map with queue_if_no_path is the sign that I/O would be held.
   */
  queueIo: boolean;
  pgInitCount: number;
  groups: { state: 'A' | 'E' | 'D'; paths: MultipathPathStatus[] }[];
  paths: MultipathPathStatus[];
}

/** Whether the map has no usable path: none at all, or every one failed (I/O is held or failed, not sent). */
export function noLivePath(status: MultipathStatus): boolean {
  return status.paths.length === 0 || status.paths.every((p) => p.state === 'F');
}

/**
 * Parses a multipath target's status arguments (STATUSTYPE_INFO, the words
 * after `multipath`): `2 QUEUE_IO PG_INIT_COUNT 0 NR_PGS NEXT_PG` then per
 * group `STATE PS_WORDS... NR_PATHS INFO_ARGS` and per path `MAJ:MIN A|F
 * FAILS INFO...`. Throws DmParseError.
 */
export function parseMultipathStatusArgs(args: readonly string[]): MultipathStatus {
  const w = new Words(args, 'multipath status');
  const features = w.group('feature');
  if (features.length !== 2) throw new DmParseError(`multipath status: ${features.length} feature words, expected 2`);
  const [queueIo, pgInit] = features as [string, string];
  if (queueIo !== '0' && queueIo !== '1') throw new DmParseError(`multipath status: queue_io ${JSON.stringify(queueIo)}`);
  const pgInitCount = parseCount(pgInit, 'multipath status: pg_init_count', 2 ** 32);
  w.group('hardware handler status');
  const nrGroups = w.count('priority group count');
  const next = w.count('next priority group');
  if (next > nrGroups) throw new DmParseError(`multipath status: next priority group ${next} of ${nrGroups}`);
  const groups: MultipathStatus['groups'] = [];
  for (let g = 0; g < nrGroups; g++) {
    const state = w.next('group state');
    if (state !== 'A' && state !== 'E' && state !== 'D') throw new DmParseError(`multipath status: group state ${JSON.stringify(state)}`);
    w.group('path selector status');
    const nrPaths = w.count('path count');
    const infoArgs = w.count('path info argument count');
    const paths: MultipathPathStatus[] = [];
    for (let p = 0; p < nrPaths; p++) {
      const devt = parseDevt(w.next('path device'));
      const pathState = w.next('path state');
      if (pathState !== 'A' && pathState !== 'F') throw new DmParseError(`multipath status: path state ${JSON.stringify(pathState)}`);
      const failCount = parseCount(w.next('fail count'), 'multipath status: fail count', 2 ** 32);
      paths.push({ devt, state: pathState, failCount, selectorInfo: Array.from({ length: infoArgs }, () => w.next('path info')) });
    }
    groups.push({ state, paths });
  }
  w.end();
  return { queueIo: queueIo === '1', pgInitCount, groups, paths: groups.flatMap((g) => g.paths) };
}

/** `dmsetup status NAME` of a one-segment multipath map. Throws DmParseError. */
export function parseMultipathStatus(text: string): { sectors: number; status: MultipathStatus } {
  const segments = parseSegments(text);
  if (segments.length !== 1) throw new DmParseError(`expected one multipath segment, got ${segments.length}`);
  const s = segments[0]!;
  if (s.target !== 'multipath') throw new DmParseError(`target is ${s.target}, not multipath`);
  return { sectors: s.length, status: parseMultipathStatusArgs(s.args) };
}

// ---------------------------------------------------------------- info

export interface DmInfo {
  /** The map's name, unmangled. */
  name: string;
  uuid: string;
  /** dm-N, the block device under /sys/block. */
  blockDevice: string;
  /** MAJ:MIN of the map's own block device. */
  devt: string;
  openCount: number;
  liveTable: boolean;
  inactiveTable: boolean;
  suspended: boolean;
  readOnly: boolean;
  /** Segments in the live table (0 without one). */
  segments: number;
  eventNumber: number;
}

/** The columns listMaps and info ask for, in this order, separated by '|'. Mangled names never hold '|' (it is hex-mangled). */
export const INFO_FIELDS = 'mangled_name,mangled_uuid,blkdevname,major,minor,open,attr,segments,events';

/** Parses one line of `dmsetup info -c --noheadings --separator '|' -o INFO_FIELDS`. Throws DmParseError. */
export function parseInfoLine(line: string): DmInfo {
  if (line.length > 4096 || /[\0\r\n]/.test(line)) throw new DmParseError('dmsetup info line is too long or has a control character');
  const f = line.split('|');
  if (f.length !== 9) throw new DmParseError(`dmsetup info line has ${f.length} fields, expected 9: ${JSON.stringify(line)}`);
  const [mangled, uuid, blkdev, major, minor, open, attr, segments, events] = f as [string, string, string, string, string, string, string, string, string];
  if (mangled === '' || !/^[\x21-\x7e]+$/.test(mangled)) throw new DmParseError(`dmsetup info: map name ${JSON.stringify(mangled)}`);
  if (!/^[\x21-\x7e]*$/.test(uuid)) throw new DmParseError(`dmsetup info: uuid ${JSON.stringify(uuid)}`);
  if (!/^dm-\d{1,7}$/.test(blkdev)) throw new DmParseError(`dmsetup info: block device ${JSON.stringify(blkdev)}`);
  const m = /^([L-])([I-])([s-])([rw])$/.exec(attr);
  if (!m) throw new DmParseError(`dmsetup info: attributes ${JSON.stringify(attr)}`);
  return {
    name: unmangleName(mangled),
    uuid: unmangleName(uuid),
    blockDevice: blkdev,
    devt: parseDevt(`${major}:${minor}`),
    openCount: parseCount(open, 'dmsetup info: open count', 2 ** 31),
    liveTable: m[1] === 'L',
    inactiveTable: m[2] === 'I',
    suspended: m[3] === 's',
    readOnly: m[4] === 'r',
    segments: segments === '' ? 0 : parseCount(segments, 'dmsetup info: segments'),
    eventNumber: parseCount(events, 'dmsetup info: event number', 2 ** 32),
  };
}

/** The output of a `dmsetup info -c` listing: one map a line, or `No devices found`. */
export function parseInfoListing(text: string): DmInfo[] {
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  if (lines.length === 1 && lines[0]!.trim() === 'No devices found') return [];
  return lines.map(parseInfoLine);
}

// ---------------------------------------------------------------- protecting

export interface DmMap {
  info: DmInfo;
  /** The live table's segments (none if it has no live table). */
  table: DmSegment[];
  /** Set when the live table is one multipath segment. */
  multipath: MultipathTable | null;
}

/** Why a map is or is not one that protects a disk: a one-segment multipath map with exactly one path and queue_if_no_path. */
export function protectedDisk(map: Pick<DmMap, 'table' | 'multipath'>): string | null {
  if (map.table.length !== 1 || map.multipath === null) return null;
  const mp = map.multipath;
  if (!mp.queueIfNoPath || mp.paths.length !== 1) return null;
  return mp.paths[0]!;
}

// ---------------------------------------------------------------- running dmsetup

export class DmsetupError extends Error {
  override name = 'DmsetupError';
  constructor(
    readonly argv: readonly string[],
    readonly result: ProgramResult,
  ) {
    super(
      `dmsetup ${argv.join(' ')} ${result.exitCode === null ? 'did not run or was killed' : `exited with status ${result.exitCode}`}` +
        (result.stderr.trim() ? `: ${result.stderr.trim()}` : ''),
    );
  }
}

export interface DmsetupOptions {
  /** The dmsetup binary. Default: dmsetup from PATH. */
  dmsetup?: string;
  /** udev's control socket: when it does not exist, dmsetup runs with DM_DISABLE_UDEV=1 and makes /dev/mapper nodes itself. */
  udevControl?: string;
  /** Per call. Default 30 s. */
  timeoutMs?: number;
}

/** How a map is addressed: by a validated name, or (for maps found by listing, whatever their names) by device number. */
export type MapRef = { name: string } | { devt: string };

function refArgs(ref: MapRef): string[] {
  if ('name' in ref) return [validateMapName(ref.name)];
  const [major, minor] = parseDevt(ref.devt).split(':') as [string, string];
  return ['-j', major, '-m', minor];
}

/** Checks that text is one multipath table line this class may load (see parseMultipathTable). */
function checkTable(table: string): string {
  if (/[\n\r\0]/.test(table)) throw new DmParseError('a table must be one line');
  parseMultipathTable(table);
  return table;
}

/**
 * dmsetup, for the multipath maps of the disk class. Suspend and resume exist
 * only with --noflush (see resumeNoFlush).
 */
export class Dmsetup {
  private readonly bin: string;
  private readonly udevControl: string;
  private readonly timeoutMs: number;

  constructor(opts: DmsetupOptions = {}) {
    this.bin = opts.dmsetup ?? 'dmsetup';
    this.udevControl = opts.udevControl ?? '/run/udev/control';
    this.timeoutMs = opts.timeoutMs ?? 30_000;
  }

  /** Whether dmsetup will wait for udev (udev's control socket exists) or do without it (DM_DISABLE_UDEV=1). */
  udevSync(): boolean {
    return existsSync(this.udevControl);
  }

  /** Runs dmsetup with argv; throws DmsetupError when it fails. */
  private run(argv: readonly string[]): Promise<string> {
    const env = this.udevSync() ? process.env : { ...process.env, DM_DISABLE_UDEV: '1' };
    return new Promise((resolve, reject) => {
      execFile(this.bin, argv, { encoding: 'utf8', timeout: this.timeoutMs, maxBuffer: 4 * 1024 * 1024, env }, (err, stdout, stderr) => {
        if (!err) return resolve(stdout);
        const code = (err as NodeJS.ErrnoException & { code?: unknown }).code;
        reject(new DmsetupError(argv, { stdout, stderr: stderr || err.message, exitCode: typeof code === 'number' ? code : null }));
      });
    });
  }

  /** Every map's info (no tables). */
  async listInfo(): Promise<DmInfo[]> {
    return parseInfoListing(await this.run(['info', '-c', '--noheadings', '--separator', '|', '--manglename', 'hex', '-o', INFO_FIELDS]));
  }

  /** Every map with its live table; multipath set for one-segment multipath maps. Maps are addressed by device number, so any name is safe. */
  async listMaps(): Promise<DmMap[]> {
    const infos = await this.listInfo();
    return Promise.all(
      infos.map(async (info) => {
        const table = info.liveTable ? parseSegments(await this.run(['table', ...refArgs({ devt: info.devt })])) : [];
        const mp = table.length === 1 && table[0]!.target === 'multipath' ? parseMultipathTableArgs(table[0]!.args) : null;
        return { info, table, multipath: mp };
      }),
    );
  }

  /** The maps that protect a disk (protectedDisk), each with the disk's MAJ:MIN. */
  async protectingMaps(): Promise<{ map: DmMap; disk: string }[]> {
    const out = [];
    for (const map of await this.listMaps()) {
      const disk = protectedDisk(map);
      if (disk !== null) out.push({ map, disk });
    }
    return out;
  }

  /** One map's info. Throws DmsetupError if there is no such map. */
  async info(ref: MapRef): Promise<DmInfo> {
    const list = parseInfoListing(
      await this.run(['info', '-c', '--noheadings', '--separator', '|', '--manglename', 'hex', '-o', INFO_FIELDS, ...refArgs(ref)]),
    );
    if (list.length !== 1) throw new DmParseError(`dmsetup info gave ${list.length} maps for one`);
    return list[0]!;
  }

  /** The live table's segments. */
  async table(ref: MapRef): Promise<DmSegment[]> {
    return parseSegments(await this.run(['table', ...refArgs(ref)]));
  }

  /** The live table of a multipath map; throws DmParseError if it is not one multipath segment. */
  async multipathTable(ref: MapRef): Promise<{ sectors: number; table: MultipathTable }> {
    return parseMultipathTable(await this.run(['table', ...refArgs(ref)]));
  }

  /** The status of a multipath map; throws DmParseError if it is not one multipath segment. */
  async multipathStatus(ref: MapRef): Promise<{ sectors: number; status: MultipathStatus }> {
    return parseMultipathStatus(await this.run(['status', ...refArgs(ref)]));
  }

  /** Creates map NAME with a multipath table (singlePathTable), live at once. */
  async create(name: string, table: string): Promise<DmInfo> {
    await this.run(['create', validateMapName(name), '--table', checkTable(table)]);
    return this.info({ name });
  }

  /** Loads a multipath table into NAME's inactive slot; resumeNoFlush makes it live. */
  async reload(name: string, table: string): Promise<void> {
    await this.run(['reload', validateMapName(name), '--table', checkTable(table)]);
  }

  /**
   * Suspends NAME without flushing. A flushing suspend turns queue_if_no_path
   * off in dm-mpath's presuspend and fails everything queued (disk-facts §3.1).
   */
  async suspendNoFlush(name: string): Promise<void> {
    await this.run(['suspend', '--noflush', validateMapName(name)]);
  }

  /**
   * Resumes NAME (swapping in a reloaded table) with --noflush, the only
   * resume this class offers. A plain `dmsetup resume` suspends with a flush
   * first: dm-mpath's presuspend clears queue_if_no_path before the
   * filesystem freeze, so every queued I/O fails with EIO, the table is not
   * swapped and queue_if_no_path is lost (disk-facts §1 mpath-flush, §3.1).
   */
  async resumeNoFlush(name: string): Promise<void> {
    await this.run(['resume', '--noflush', validateMapName(name)]);
  }

  /** Reloads NAME onto one path and resumes it --noflush: the swap after a restart (disk-facts §3.4 step 4). */
  async repoint(name: string, sectors: number, devt: string): Promise<void> {
    await this.reload(name, singlePathTable(sectors, devt));
    await this.resumeNoFlush(name);
  }

  /**
   * Stops NAME holding I/O while it has no path: what it holds and what comes
   * fails at once with an I/O error (queue_if_no_path off). A table reload
   * with singlePathTable turns holding on again.
   */
  async failIfNoPath(name: string): Promise<void> {
    await this.run(['message', validateMapName(name), '0', 'fail_if_no_path']);
  }

  /** Removes NAME. Fails (DmsetupError) while it is open. */
  async remove(name: string): Promise<void> {
    await this.run(['remove', validateMapName(name)]);
  }
}
