// bpf/libbpf/tap-format.c on the sound class's records (sound-class.bpf.c,
// taps-event.h), built on the host and run by tap-record-harness.c, which
// fills a record field by field: the line of every printf of
// bpf/sound-class.bt comes out byte for byte, key for key and conversion for
// conversion (%d, %u, 0x%x, 0x%lx, %s, with the values at the edges of each
// width), and so does every record of test/fixtures/sound/tap-records.txt
// (written from those formats: no sound session was recorded in the guest
// yet), in text and in bpftrace's JSON form, which the daemon's reader and
// the sound reducer take.
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SOUND_TAP_EVENTS } from '../../../../daemon/classes/sound/sound-declaration.js';
import { reduceSoundEvent } from '../../../../daemon/classes/sound/sound-reducer.js';
import { parseTapRecord } from '../../../../daemon/core/tap-record.js';
import { hasCc } from '../../host-cc.js';
import { buildHarness, expectPrinted as expectPrintedBy, printRecord, type Harness } from './harness.js';

const here = (p: string): string => new URL(p, import.meta.url).pathname;
const PROGRAM = readFileSync(here('../../../../bpf/sound-class.bt'), 'utf8');
const RECORDS = readFileSync(here('../../../fixtures/sound/tap-records.txt'), 'utf8').split('\n').filter(Boolean);

/** Each printf's format of the .bt, `ev=NAME key=CONV ... comm=%s` (its trailing \n dropped). */
const FORMATS = [...PROGRAM.matchAll(/printf\("(ev=[^"]*)\\n"/g)].map((m) => m[1]!);
const CONVERSIONS = ['%d', '%u', '0x%x', '0x%lx', '%s', '%llu'] as const;
type Conversion = (typeof CONVERSIONS)[number];

/** Each key of a format after ev= with its conversion. */
function fieldsOf(format: string): { key: string; conv: Conversion }[] {
  return format
    .split(' ')
    .slice(1)
    .map((token) => {
      const [key, conv] = token.split('=') as [string, string];
      if (!(CONVERSIONS as readonly string[]).includes(conv)) throw new Error(`${format}: ${token} is not a conversion this test knows`);
      return { key, conv: conv as Conversion };
    });
}

const nameOf = (format: string): string => format.slice('ev='.length, format.indexOf(' '));

/** The values a field takes in turn: typical ones, then the edges of its width. */
const VALUES: Record<Conversion, string[]> = {
  '%d': ['0', '-22', '2147483647', '-2147483648', '3'],
  '%u': ['48000', '0', '4294967295', '2147483648', '7'],
  '0x%x': ['0x8', '0x0', '0xffffffff', '0x80000000', '0x1'],
  '0x%lx': ['0x12c0', '0x0', '0xffffffffffffffff', '0x4000000000000000', '0x100000000'],
  '%s': ['version', 'asound', 'n'.repeat(63), '', 'pcm0p'],
  '%llu': ['5', '80975485640', '18446744073709551615', '1', '9007199254740993'],
};
/** The task's fields: kthread 0 or 1, a pid, any task name (spaces and '=' as they are). */
const TASK: Record<string, string[]> = {
  kthread: ['0', '1'],
  pid: ['278', '1', '4194304'],
  comm: ['aplay', 'kworker/u4:1', 'swapper/0', 'a b=c', 'speaker-test-xy'],
};

/** The .bt's line for a format, its fields' values picked by variant. */
function lineOf(format: string, variant: number): string {
  const fields = fieldsOf(format).map(({ key, conv }, i) => {
    const values = TASK[key] ?? VALUES[conv];
    return `${key}=${values[(variant + i) % values.length]!}`;
  });
  return [`ev=${nameOf(format)}`, ...fields].join(' ');
}

/** Keys whose values are kernel names (%s): the harness takes their bytes in hex. */
const STRING_KEYS = new Set(FORMATS.flatMap((f) => fieldsOf(f).filter((x) => x.conv === '%s' && x.key !== 'comm').map((x) => x.key)));

/** The harness's argv for a record line: its name, task, time, then every other field. */
function harnessArgs(line: string): string[] {
  const commAt = line.indexOf(' comm=');
  const fields = new Map(line.slice(0, commAt).split(' ').map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)] as const));
  const task = ['ev', 'kthread', 'pid', 'ts'].map((k) => fields.get(k) ?? '');
  const comm = Buffer.from(line.slice(commAt + ' comm='.length)).toString('hex');
  const rest = [...fields].filter(([k]) => !['ev', 'kthread', 'pid', 'ts'].includes(k)).map(([k, v]) => `${k}=${STRING_KEYS.has(k) ? Buffer.from(v).toString('hex') : v}`);
  return [...task, comm, ...rest];
}

describe.skipIf(!hasCc())('the sound class\'s records of the precompiled taps (tap-format.c, on the host)', () => {
  let harness: Harness;
  beforeAll(() => {
    harness = buildHarness('tap-record-harness.c');
  }, 60_000);
  afterAll(() => harness.remove());

  const print = (mode: 'text' | 'json', args: string[]) => printRecord(harness, mode, args);
  const expectPrinted = (line: string): void => expectPrintedBy(harness, line, harnessArgs(line));

  it('has a record format for every event the .bt prints, and the .bt prints every event of the class', () => {
    const names = FORMATS.map(nameOf);
    expect(names).toHaveLength(16);
    expect([...new Set(names)].sort()).toEqual([...SOUND_TAP_EVENTS].sort());
    for (const name of names) expect(print('text', [name, '0', '1', '2', '']).status, name).toBe(0);
  });

  it('prints the line of each of the .bt\'s printfs byte for byte, every conversion at the edges of its width', () => {
    for (const format of FORMATS) {
      for (let variant = 0; variant < 5; variant++) expectPrinted(lineOf(format, variant));
    }
  });

  it('prints each record of the sound fixture byte for byte, and the sound reducer reads every one', () => {
    expect(new Set(RECORDS.map((l) => parseTapRecord(l).call))).toEqual(new Set(SOUND_TAP_EVENTS));
    for (const line of RECORDS) {
      expectPrinted(line);
      expect(() => reduceSoundEvent(parseTapRecord(line)), line).not.toThrow();
    }
  });

  it('escapes the bytes of a refused write\'s file name that would break its token', () => {
    const name = Buffer.from('a b=c\\d\n\xff', 'latin1').toString('hex');
    const { out } = print('text', ['info_write', '0', '7', '5', Buffer.from('dd').toString('hex'), `attr=${name}`, `parent=${Buffer.from('asound').toString('hex')}`, 'ret=-5']);
    expect(out).toBe('ev=info_write attr=a\\x20b\\x3dc\\x5cd\\x0a\\xff parent=asound ret=-5 kthread=0 pid=7 ts=5 comm=dd\n');
    expect(parseTapRecord(out).strs).toEqual({ attr: 'a\\x20b\\x3dc\\x5cd\\x0a\\xff', parent: 'asound' });
  });

  it('refuses a record shorter than its event\'s struct, and an event it has no format for', () => {
    const hw = harnessArgs(RECORDS.find((l) => l.startsWith('ev=pcm_hw_params '))!);
    expect(print('text', hw).status).toBe(0);
    // struct tap_pcm_hw_params is 96 bytes; a record cut at its ret is refused whole.
    expect(print('text', [...hw, 'size=88'])).toEqual({ status: 5, out: '' });
    expect(print('text', [...hw, 'size=96']).status).toBe(0);
    expect(print('text', ['pcm_rewind', '0', '1', '2', '']).status).toBe(3);
    // A key the event does not print.
    expect(print('text', ['pcm_close', '0', '1', '2', '', 'state=3']).status).toBe(4);
  });
});
