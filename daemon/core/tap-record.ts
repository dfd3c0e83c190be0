// One tap event as the bpf/ programs print it: space-separated key=value
// tokens, `ev=` first, `comm=` last (a task name may hold any byte, so it takes
// the rest of the line). Interface names cannot hold whitespace, so they are
// safe as ordinary tokens.
//   ev=change_flags ifindex=2 name=eth0 flags=0x1003 ret=0 pid=144 ts=8596104600 comm=ip

export interface TapEvent {
  /** The class-interface call the tap saw, e.g. change_flags. */
  call: string;
  /** Decimal fields (ifindex, MTU, return values). */
  nums: Record<string, number>;
  /** 0x fields: flag and feature masks, up to 64 bits wide. */
  masks: Record<string, bigint>;
  /** Text fields (see TEXT_FIELDS) other than comm. */
  strs: Record<string, string>;
  pid: number;
  /** Guest monotonic clock, nanoseconds (bpftrace's nsecs). */
  tsNs: bigint;
  comm: string;
}

export class TapRecordError extends Error {}

const DECIMAL = /^-?\d+$/;
const HEX = /^0x[0-9a-fA-F]{1,16}$/;
/** Fields that hold text even when it looks like a number: an interface may be named "42". */
const TEXT_FIELDS = new Set(['name', 'newname', 'driver', 'bus', 'addr', 'attr', 'kobj', 'parent', 'grandparent']);
const KEY = /^[a-z][a-z0-9_]*$/;

export function parseTapRecord(text: string): TapEvent {
  const line = text.endsWith('\n') ? text.slice(0, -1) : text;
  const commAt = line.search(/(?:^| )comm=/);
  if (commAt < 0) throw new TapRecordError('record has no comm= field');
  const comm = line.slice(line.indexOf('comm=', commAt) + 'comm='.length);
  const tokens = line.slice(0, commAt).split(' ').filter((t) => t !== '');
  const fields = new Map<string, string>();
  for (const token of tokens) {
    const eq = token.indexOf('=');
    const key = token.slice(0, eq);
    if (eq < 1 || !KEY.test(key)) throw new TapRecordError(`bad token ${JSON.stringify(token)}`);
    if (fields.has(key)) throw new TapRecordError(`field ${key} appears twice`);
    fields.set(key, token.slice(eq + 1));
  }
  const call = fields.get('ev');
  if (!call || !KEY.test(call)) throw new TapRecordError('record has no valid ev= field');
  const pid = Number(fields.get('pid'));
  const ts = fields.get('ts');
  if (!Number.isSafeInteger(pid) || pid < 0) throw new TapRecordError('record has no valid pid= field');
  if (ts === undefined || !/^\d+$/.test(ts)) throw new TapRecordError('record has no valid ts= field');
  const nums: Record<string, number> = {};
  const masks: Record<string, bigint> = {};
  const strs: Record<string, string> = {};
  for (const [key, value] of fields) {
    if (key === 'ev' || key === 'pid' || key === 'ts') continue;
    if (TEXT_FIELDS.has(key)) strs[key] = value;
    else if (HEX.test(value)) masks[key] = BigInt(value);
    else if (DECIMAL.test(value) && Number.isSafeInteger(Number(value))) nums[key] = Number(value);
    else throw new TapRecordError(`field ${key}=${JSON.stringify(value)} is not a number`);
  }
  return { call, nums, masks, strs, pid, tsNs: BigInt(ts), comm };
}
