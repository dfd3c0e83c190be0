// A card's open streams as the ALSA core shows them in /proc/asound: per
// substream, its status (state, owner, hardware position), hardware and
// software parameters (sound/core/pcm.c, snd_pcm_substream_proc_*_read).
// The shadow re-reads these at start-up and after a gap in the taps; the
// stall detector reads status alone. Parsers are pure and strict: text that
// is not what the kernel prints is an error naming the file, never a guess.
// The reader takes the /proc root as a parameter so tests run on fixture
// trees.
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { isPcmState, type PcmState } from './pcm-names.js';
import { substreamKey } from './substream-address.js';

/** A frame count: a number where it is exact in JavaScript, else its decimal text (a stop threshold is often the ring's 2^62 boundary). */
export type Frames = number | string;

export function frames(n: bigint): Frames {
  return n <= BigInt(Number.MAX_SAFE_INTEGER) && n >= 0n ? Number(n) : n.toString();
}

export interface HwParams {
  access: string;
  format: string;
  channels: number;
  rate: number;
  period_size: number;
  periods: number;
  buffer_size: number;
}

export interface SwParams {
  tstamp_mode: string;
  avail_min: Frames;
  start_threshold: Frames;
  stop_threshold: Frames;
  silence_threshold: Frames;
  silence_size: Frames;
}

export interface PcmStatus {
  /** null: the substream is closed. */
  state: PcmState | null;
  ownerPid: number | null;
  /** The hardware position in frames (null when closed). */
  hwPtr: bigint | null;
}

export class ProcFormatError extends Error {}

function keyValues(text: string, what: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split('\n')) {
    if (line.trim() === '' || line === '-----') continue;
    const colon = line.indexOf(':');
    if (colon <= 0) throw new ProcFormatError(`${what}: line ${JSON.stringify(line.slice(0, 80))} is not "key: value"`);
    out.set(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return out;
}

function need(m: Map<string, string>, key: string, what: string): string {
  const v = m.get(key);
  if (v === undefined) throw new ProcFormatError(`${what}: no ${key}`);
  return v;
}

function uint(m: Map<string, string>, key: string, what: string): bigint {
  const v = need(m, key, what);
  const first = v.split(' ')[0] ?? '';
  if (!/^\d{1,20}$/.test(first)) throw new ProcFormatError(`${what}: ${key} ${JSON.stringify(v)} is not a count`);
  return BigInt(first);
}

function small(m: Map<string, string>, key: string, what: string): number {
  const n = uint(m, key, what);
  if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new ProcFormatError(`${what}: ${key} ${n} is too large`);
  return Number(n);
}

/** A substream's status file; closed → state null. */
export function parseStatus(text: string, what = 'status'): PcmStatus {
  const t = text.trim();
  if (t === 'closed') return { state: null, ownerPid: null, hwPtr: null };
  const m = keyValues(t, what);
  const state = need(m, 'state', what);
  if (!isPcmState(state)) throw new ProcFormatError(`${what}: state ${JSON.stringify(state)} is not a PCM state`);
  const owner = m.get('owner_pid');
  const ownerPid = owner !== undefined && /^\d{1,9}$/.test(owner) && owner !== '0' ? Number(owner) : null;
  return { state, ownerPid, hwPtr: uint(m, 'hw_ptr', what) };
}

/** A substream's hw_params file; null when closed or not set up yet. */
export function parseHwParams(text: string, what = 'hw_params'): HwParams | null {
  const t = text.trim();
  if (t === 'closed' || t === 'no setup') return null;
  const m = keyValues(t, what);
  const period = small(m, 'period_size', what);
  const buffer = small(m, 'buffer_size', what);
  if (period === 0) throw new ProcFormatError(`${what}: period_size 0`);
  return {
    access: need(m, 'access', what),
    format: need(m, 'format', what),
    channels: small(m, 'channels', what),
    rate: small(m, 'rate', what),
    period_size: period,
    // The runtime's periods is buffer_size / period_size (the file does not print it).
    periods: Math.floor(buffer / period),
    buffer_size: buffer,
  };
}

/** A substream's sw_params file; null when closed or not set up yet. */
export function parseSwParams(text: string, what = 'sw_params'): SwParams | null {
  const t = text.trim();
  if (t === 'closed' || t === 'no setup') return null;
  const m = keyValues(t, what);
  return {
    tstamp_mode: need(m, 'tstamp_mode', what),
    avail_min: frames(uint(m, 'avail_min', what)),
    start_threshold: frames(uint(m, 'start_threshold', what)),
    stop_threshold: frames(uint(m, 'stop_threshold', what)),
    silence_threshold: frames(uint(m, 'silence_threshold', what)),
    silence_size: frames(uint(m, 'silence_size', what)),
  };
}

/** An open substream as /proc shows it. */
export interface ProcSubstream {
  key: string;
  status: PcmStatus;
  hwParams: HwParams | null;
  swParams: SwParams | null;
}

const PCM_DIR = /^pcm(\d{1,3})([pc])$/;
const SUB_DIR = /^sub(\d{1,3})$/;

async function listDir(path: string): Promise<string[]> {
  try {
    return (await readdir(path)).sort();
  } catch {
    return [];
  }
}

/** Every substream folder of a card: pcm0p/sub0, pcm0c/sub0, pcm1p/sub0, ... */
export async function substreamKeys(card: number, proc = '/proc'): Promise<string[]> {
  const base = join(proc, 'asound', `card${card}`);
  const keys: string[] = [];
  for (const pcm of await listDir(base)) {
    const p = PCM_DIR.exec(pcm);
    if (!p) continue;
    for (const sub of await listDir(join(base, pcm))) {
      const s = SUB_DIR.exec(sub);
      if (s) keys.push(substreamKey({ dev: Number(p[1]), stream: p[2] === 'p' ? 0 : 1, sub: Number(s[1]) }));
    }
  }
  return keys;
}

/** A substream's status file, read and parsed. */
export async function readStatus(card: number, key: string, proc = '/proc'): Promise<PcmStatus> {
  const path = join(proc, 'asound', `card${card}`, key, 'status');
  return parseStatus(await readFile(path, 'utf8'), path);
}

/** Every open substream of a card, with its parameters. A substream that closes while it is read is left out. */
export async function readOpenSubstreams(card: number, proc = '/proc'): Promise<ProcSubstream[]> {
  const out: ProcSubstream[] = [];
  for (const key of await substreamKeys(card, proc)) {
    const dir = join(proc, 'asound', `card${card}`, key);
    const status = await readStatus(card, key, proc);
    if (status.state === null) continue;
    const hw = join(dir, 'hw_params');
    const sw = join(dir, 'sw_params');
    out.push({ key, status, hwParams: parseHwParams(await readFile(hw, 'utf8'), hw), swParams: parseSwParams(await readFile(sw, 'utf8'), sw) });
  }
  return out;
}
