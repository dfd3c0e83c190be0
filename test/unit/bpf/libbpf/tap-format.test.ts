// bpf/libbpf/tap-format.c, the precompiled taps' record printer, built on the
// host and run by tap-format-harness.c on events given in hex: every record
// bpftrace printed in the guest (test/fixtures/block/taps-session.txt) comes
// out the same from the same fields, in text and in bpftrace's JSON form; a
// kernel name or a task name cannot add a field, a line or a bad byte.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseBpftraceLine } from '../../../../daemon/core/bpftrace-output.js';
import { parseTapRecord, type TapEvent } from '../../../../daemon/core/tap-record.js';
import { hasCc } from '../../host-cc.js';
import { bpftraceJsonPrintf, buildHarness, type Harness } from './harness.js';

const here = (p: string): string => new URL(p, import.meta.url).pathname;
const SESSION = here('../../../fixtures/block/taps-session.txt');

/** taps-event.h's enum tap_ev, and each event's string and number slots in its printf's order (v0, v1: 64-bit patterns). */
const LAYOUT: Record<string, { ev: number; strs: string[]; nums: string[] }> = {
  sysfs_write: { ev: 0, strs: ['attr', 'kobj', 'parent', 'grandparent'], nums: ['ret', 'len', 'v0', 'v1'] },
  disk_add: { ev: 1, strs: ['name'], nums: ['major', 'minor', 'ret'] },
  disk_del: { ev: 2, strs: ['name'], nums: ['major', 'minor'] },
};

interface RawEvent {
  ev: number;
  kthread: number;
  pid: number;
  ts: bigint;
  comm: Buffer;
  strs: Buffer[];
  nums: (number | bigint)[];
}

/** The event a record was printed from (its text fields as plain bytes). */
function rawOf(e: TapEvent): RawEvent {
  const layout = LAYOUT[e.call]!;
  return {
    ev: layout.ev,
    kthread: e.nums['kthread'] ?? 0,
    pid: e.pid,
    ts: e.tsNs,
    comm: Buffer.from(e.comm),
    strs: layout.strs.map((k) => Buffer.from(e.strs[k] ?? '')),
    nums: layout.nums.map((k) => e.nums[k] ?? e.masks[k] ?? 0),
  };
}

describe.skipIf(!hasCc())('tap records of the precompiled taps (tap-format.c, on the host)', () => {
  let harness: Harness;
  beforeAll(() => {
    harness = buildHarness('tap-format-harness.c');
  }, 60_000);
  afterAll(() => harness.remove());

  const print = (mode: 'text' | 'json', e: RawEvent): { status: number | null; out: string } => {
    const strs = [0, 1, 2, 3].map((i) => (e.strs[i] ?? Buffer.alloc(0)).toString('hex'));
    const nums = [0, 1, 2, 3].map((i) => String(BigInt.asIntN(64, BigInt(e.nums[i] ?? 0))));
    const r = spawnSync(harness.path, [mode, String(e.ev), String(e.kthread), String(e.pid), String(e.ts), e.comm.toString('hex'), ...strs, ...nums], { encoding: 'utf8' });
    return { status: r.status, out: r.stdout };
  };
  // "256\n" written: 4 bytes, 0x0a363532 little-endian.
  const base: RawEvent = { ev: 0, kthread: 0, pid: 7, ts: 5n, comm: Buffer.from('sh'), strs: ['read_ahead_kb', 'queue', 'sda', 'block'].map((s) => Buffer.from(s)), nums: [4, 4, 0x0a363532, 0] };

  it('prints each record bpftrace printed in the guest, byte for byte, and its JSON form reads as the same event', () => {
    const lines = readFileSync(SESSION, 'utf8').split('\n').filter(Boolean);
    expect(lines.length).toBeGreaterThan(10);
    for (const line of lines) {
      const raw = rawOf(parseTapRecord(line));
      expect(print('text', raw)).toEqual({ status: 0, out: `${line}\n` });
      const json = print('json', raw).out;
      expect(json).toBe(bpftraceJsonPrintf(line));
      expect(parseBpftraceLine(json.trimEnd())).toEqual({ kind: 'event', event: parseTapRecord(line) });
    }
  });

  it('writes a kernel name\'s space, =, \\, control and non-ASCII bytes as \\xHH, so each name stays one token', () => {
    const hostile = Buffer.from('a b=c\\d\ne\x7f\xc3\xa9\xff', 'latin1');
    const { out } = print('text', { ...base, strs: [hostile, hostile, Buffer.from('ok'), Buffer.alloc(0)] });
    const escaped = 'a\\x20b\\x3dc\\x5cd\\x0ae\\x7f\\xc3\\xa9\\xff';
    expect(out).toBe(`ev=sysfs_write attr=${escaped} kobj=${escaped} parent=ok grandparent= ret=4 len=4 v0=0xa363532 v1=0x0 kthread=0 pid=7 ts=5 comm=sh\n`);
    expect(parseTapRecord(out).strs).toEqual({ attr: escaped, kobj: escaped, parent: 'ok', grandparent: '' });
  });

  it('keeps a task name\'s spaces, = and UTF-8, and escapes its control bytes, \\ and bytes that are not UTF-8', () => {
    const comm = Buffer.from([...Buffer.from('x y=1\n\\é'), 0xff, 0xe9, 0x41]);
    const { out } = print('text', { ...base, comm });
    expect(out).toBe('ev=sysfs_write attr=read_ahead_kb kobj=queue parent=sda grandparent=block ret=4 len=4 v0=0xa363532 v1=0x0 kthread=0 pid=7 ts=5 comm=x y=1\\x0a\\x5cé\\xff\\xe9A\n');
    expect(out.split('\n')).toHaveLength(2);
    const e = parseTapRecord(out);
    expect(e.comm).toBe('x y=1\\x0a\\x5cé\\xff\\xe9A');
    expect(e.nums['ret']).toBe(4);
    // Overlong forms and surrogates are not UTF-8 either.
    expect(print('text', { ...base, comm: Buffer.from([0xc0, 0xaf, 0xed, 0xa0, 0x80]) }).out).toMatch(/ comm=\\xc0\\xaf\\xed\\xa0\\x80\n$/);
    // A multi-byte character cut by the end of the 16-byte comm is escaped, not printed half.
    expect(print('text', { ...base, comm: Buffer.from([...Buffer.from('abcdefghijklmn'), 0xc3, 0xa9]) }).out).toMatch(/ comm=abcdefghijklmné\n$/);
    expect(print('text', { ...base, comm: Buffer.from([...Buffer.from('abcdefghijklmno'), 0xc3]) }).out).toMatch(/ comm=abcdefghijklmno\\xc3\n$/);
  });

  it('stops at the end of a field that fills its buffer (no NUL): 64 bytes of a name, 16 of comm', () => {
    const long = Buffer.alloc(64, 'n');
    const { out } = print('text', { ...base, strs: [long], comm: Buffer.alloc(16, 'c') });
    expect(parseTapRecord(out).strs['attr']).toBe('n'.repeat(64));
    expect(parseTapRecord(out).comm).toBe('c'.repeat(16));
  });

  it('prints a disk added by a kernel worker, negative numbers, and JSON that escapes " and \\', () => {
    const added = print('text', { ...base, ev: 1, kthread: 1, comm: Buffer.from('kworker/u4:3'), strs: [Buffer.from('sda')], nums: [8, 0, -12, 0] }).out;
    expect(added).toBe('ev=disk_add name=sda major=8 minor=0 ret=-12 kthread=1 pid=7 ts=5 comm=kworker/u4:3\n');
    const json = print('json', { ...base, comm: Buffer.from('say "hi"\\') }).out;
    expect(parseBpftraceLine(json.trimEnd())).toMatchObject({ kind: 'event', event: { comm: 'say "hi"\\x5c' } });
  });

  it('refuses an event it has no format for', () => {
    expect(print('text', { ...base, ev: 3 }).status).toBe(3);
  });
});
