// bpf/libbpf/tap-format.c on the network class's records (netdev-class.bpf.c,
// taps-event.h), built on the host and run by tap-record-harness.c, which
// fills a record field by field: the line of every printf of
// bpf/netdev-class.bt comes out byte for byte, key for key and conversion for
// conversion (%d, %u, 0x%x, 0x%llx, %lu, %lld, %s and the address's six
// %02x, with the values at the edges of each width; register with and
// without driver= and bus=, the literal group=4 and ret=0 of two printfs),
// and so does every record bpftrace printed in the guest
// (test/fixtures/netdev/*.jsonl, test/fixtures/kmsg/xmit-timeout-tap.jsonl),
// in text and in bpftrace's JSON form, which the daemon's reader and the
// network reducer take.
import { readFileSync, readdirSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { NET_TAP_EVENTS } from '../../../../daemon/classes/net/net-declaration.js';
import { reduceEvent } from '../../../../daemon/classes/net/netdev-reducer.js';
import { parseTapRecord } from '../../../../daemon/core/tap-record.js';
import { hasCc } from '../../host-cc.js';
import { buildHarness, expectPrinted as expectPrintedBy, printRecord, type Harness } from './harness.js';

const here = (p: string): string => new URL(p, import.meta.url).pathname;
const PROGRAM = readFileSync(here('../../../../bpf/netdev-class.bt'), 'utf8');
const FIXTURE_DIR = here('../../../fixtures/netdev/');
const FIXTURES = [
  ...readdirSync(FIXTURE_DIR).filter((f) => f.endsWith('.jsonl')).sort().map((f) => `${FIXTURE_DIR}${f}`),
  here('../../../fixtures/kmsg/xmit-timeout-tap.jsonl'),
];

const MAC = '%02x:%02x:%02x:%02x:%02x:%02x';
/** Each printf's format of the .bt, `ev=NAME key=CONV ... comm=%s` (its trailing \n dropped). */
const FORMATS = [...new Set([...PROGRAM.matchAll(/printf\("(ev=[^"]*)\\n"/g)].map((m) => m[1]!))];
const CONVERSIONS = ['%d', '%u', '0x%x', '0x%llx', '%lu', '%lld', '%llu', '%s', MAC] as const;
type Conversion = (typeof CONVERSIONS)[number];
type Field = { key: string; conv: Conversion } | { key: string; literal: string };

/** Each key of a format after ev= with its conversion, or its literal value (group=4, ret=0). */
function fieldsOf(format: string): Field[] {
  return format
    .split(' ')
    .slice(1)
    .map((token) => {
      const [key, conv] = token.split('=') as [string, string];
      if ((CONVERSIONS as readonly string[]).includes(conv)) return { key, conv: conv as Conversion };
      if (/^\d+$/.test(conv)) return { key, literal: conv };
      throw new Error(`${format}: ${token} is not a conversion this test knows`);
    });
}

const nameOf = (format: string): string => format.slice('ev='.length, format.indexOf(' '));

/** The values a field takes in turn: typical ones, then the edges of its width. */
const VALUES: Record<Conversion, string[]> = {
  '%d': ['0', '-22', '2147483647', '-2147483648', '2', '-95', '1'],
  '%u': ['4026531840', '0', '4294967295', '2147483648', '16', '36'],
  '0x%x': ['0x1003', '0x0', '0xffffffff', '0x80000000', '0x8100', '0x88a8'],
  '0x%llx': ['0xa001b0000094909', '0x0', '0xffffffffffffffff', '0x8000000000000000', '0x14b89', '0x100000000'],
  '%lu': ['30', '0', '18446744073709551615', '9223372036854775808', '1000', '4294967296'],
  '%lld': ['0', '-32766', '-9223372036854775808', '9223372036854775807', '-1', '-4294967296'],
  '%llu': ['5', '80975485640', '18446744073709551615', '1', '9007199254740993'],
  '%s': ['eth0', 'n'.repeat(63), '', 'eth0.5', 'e1000', '0000:00:04.0', 'x'.repeat(15)],
  [MAC]: ['52:54:00:12:34:56', '00:00:00:00:00:00', 'ff:ff:ff:ff:ff:ff', '33:33:00:00:00:01', '01:00:5e:7f:ff:fa', '80:0a:0b:fe:ef:10'],
};
/** The task's fields: kthread 0 or 1, a pid, any task name (spaces and '=' as they are). */
const TASK: Record<string, string[]> = {
  kthread: ['0', '1'],
  pid: ['243', '1', '4194304', '0'],
  comm: ['ip', 'kworker/u4:1', 'swapper/0', 'a b=c', 'NetworkManager', 'systemd-network'],
};

/** The .bt's line for a format, its fields' values picked by variant. */
function lineOf(format: string, variant: number): string {
  const fields = fieldsOf(format).map((f, i) => {
    if ('literal' in f) return `${f.key}=${f.literal}`;
    const values = TASK[f.key] ?? VALUES[f.conv];
    return `${f.key}=${values[(variant + i) % values.length]!}`;
  });
  return [`ev=${nameOf(format)}`, ...fields].join(' ');
}

/** Keys whose values are kernel names (%s) or addresses: the harness takes their bytes in hex. */
const FIELDS = FORMATS.flatMap(fieldsOf);
const STRING_KEYS = new Set(FIELDS.filter((x) => 'conv' in x && x.conv === '%s' && x.key !== 'comm').map((x) => x.key));
const MAC_KEYS = new Set(FIELDS.filter((x) => 'conv' in x && x.conv === MAC).map((x) => x.key));

/** A token's value as the harness takes it: a name's bytes (its \xHH escapes undone) or an address in hex. */
function harnessValue(key: string, value: string): string {
  if (MAC_KEYS.has(key)) return value.replace(/:/g, '');
  if (!STRING_KEYS.has(key)) return value;
  const bytes = Buffer.from(value.replace(/\\x([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
  return bytes.toString('hex');
}

/** The harness's argv for a record line: its name, task, time, then every other field. */
function harnessArgs(line: string): string[] {
  const commAt = line.indexOf(' comm=');
  const fields = new Map(line.slice(0, commAt).split(' ').map((t) => [t.slice(0, t.indexOf('=')), t.slice(t.indexOf('=') + 1)] as const));
  const task = ['ev', 'kthread', 'pid', 'ts'].map((k) => fields.get(k) ?? '');
  const comm = Buffer.from(line.slice(commAt + ' comm='.length)).toString('hex');
  const rest = [...fields].filter(([k]) => !['ev', 'kthread', 'pid', 'ts'].includes(k)).map(([k, v]) => `${k}=${harnessValue(k, v)}`);
  return [...task, comm, ...rest];
}

function readable(line: string): boolean {
  try {
    parseTapRecord(line);
    return true;
  } catch {
    return false;
  }
}

/** A record line's keys in order, ev= first and comm= last. */
const keysOfLine = (line: string): string[] => line.split(' comm=')[0]!.split(' ').map((t) => t.slice(0, t.indexOf('=')));
const keysOfFormat = (format: string): string[] => keysOfLine(format.replace(/ comm=%s$/, ''));

/** Whether the .bt prints a line of these keys: a record of an older .bt (no netns=, ...) is not one the loader makes. */
const printable = (line: string): boolean => FORMATS.some((f) => keysOfFormat(f).join(' ') === keysOfLine(line).join(' '));

/** Every printf record of a bpftrace JSON file: its line as printed (the JSON line) and its record. */
function fixtureRecords(file: string): { json: string; line: string }[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith('{"type": "printf"'))
    .map((json) => ({ json, line: (JSON.parse(json) as { data: string }).data.replace(/\n$/, '') }))
    .filter((r) => (NET_TAP_EVENTS as readonly string[]).includes(nameOf(`${r.line} `)));
}

describe.skipIf(!hasCc())('the network class\'s records of the precompiled taps (tap-format.c, on the host)', () => {
  let harness: Harness;
  beforeAll(() => {
    harness = buildHarness('tap-record-harness.c');
  }, 60_000);
  afterAll(() => harness.remove());

  const print = (mode: 'text' | 'json', args: string[]) => printRecord(harness, mode, args);
  // The daemon's reader takes a decimal up to 2^53 (a 64-bit edge value is the printer's test, not its).
  const expectPrinted = (line: string): void => expectPrintedBy(harness, line, harnessArgs(line), readable(line));

  it('has a record format for every event the .bt prints, and the .bt prints every event of the class', () => {
    const names = FORMATS.map(nameOf);
    // 35 printfs, of which ethtool_nl_set's two and rtnl_notify's and rtnetlink_send's are the same.
    expect(FORMATS).toHaveLength(33);
    expect([...new Set(names)].sort()).toEqual([...NET_TAP_EVENTS].sort());
    for (const name of names) expect(print('text', [name, '0', '1', '2', '']).status, name).toBe(0);
  });

  it('prints the line of each of the .bt\'s printfs byte for byte, every conversion at the edges of its width', () => {
    for (const format of FORMATS) {
      for (let variant = 0; variant < 7; variant++) expectPrinted(lineOf(format, variant));
    }
  }, 30_000);

  it('prints register with driver= and bus= for a device with a parent, without them for one without', () => {
    const [withParent, without] = FORMATS.filter((f) => nameOf(f) === 'register');
    expect(withParent).toContain(' driver=%s bus=%s ');
    expect(without).not.toContain('driver=');
    // An empty driver (a parent with no driver bound) still prints its key.
    const line = 'ev=register ifindex=2 netns=4026531840 name=eth0 addr=52:54:00:12:34:56 driver= bus=0000:00:04.0 ret=0 kthread=0 pid=243 ts=1 comm=modprobe';
    expectPrinted(line);
    expectPrinted('ev=register ifindex=3 netns=4026531840 name=eth0.5 addr=52:54:00:5a:de:01 ret=0 kthread=0 pid=269 ts=2 comm=ip');
  });

  it('prints each netdev record bpftrace printed in the guest byte for byte, as bpftrace\'s JSON line, and the reducer reads every one', () => {
    const all = FIXTURES.flatMap(fixtureRecords);
    const records = all.filter((r) => printable(r.line));
    // Left out: e1000-lost-events.jsonl's, recorded before the .bt printed netns=.
    const older = all.filter((r) => !printable(r.line));
    expect(older.length).toBeLessThanOrEqual(60);
    for (const { line } of older) expect(line, line).not.toContain(' netns=');
    const seen = new Set<string>();
    for (const { json, line } of records) {
      expect(print('text', harnessArgs(line)), line).toEqual({ status: 0, out: `${line}\n` });
      expect(print('json', harnessArgs(line)).out, line).toBe(`${json}\n`);
      expect(() => reduceEvent(parseTapRecord(line)), line).not.toThrow();
      seen.add(parseTapRecord(line).call);
    }
    expect(records.length).toBeGreaterThanOrEqual(800);
    // The sessions recorded most of the class's events.
    expect(seen.size).toBeGreaterThanOrEqual(25);
  }, 30_000);

  it('escapes the bytes of a device, driver or bus name that would break its token', () => {
    const odd = Buffer.from('a b=c\\d\n\xff', 'latin1').toString('hex');
    const escaped = 'a\\x20b\\x3dc\\x5cd\\x0a\\xff';
    const comm = Buffer.from('ip').toString('hex');
    const rename = print('text', ['rename', '0', '7', '5', comm, 'ifindex=2', 'netns=1', `name=${odd}`, `newname=${odd}`, 'ret=0']).out;
    expect(rename).toBe(`ev=rename ifindex=2 netns=1 name=${escaped} newname=${escaped} ret=0 kthread=0 pid=7 ts=5 comm=ip\n`);
    expect(parseTapRecord(rename).strs).toEqual({ name: escaped, newname: escaped });
    const register = print('text', ['register', '0', '7', '5', comm, 'ifindex=2', 'netns=1', `name=${odd}`, 'addr=525400123456', `driver=${odd}`, `bus=${odd}`, 'ret=0']).out;
    expect(register).toBe(`ev=register ifindex=2 netns=1 name=${escaped} addr=52:54:00:12:34:56 driver=${escaped} bus=${escaped} ret=0 kthread=0 pid=7 ts=5 comm=ip\n`);
    const timeout = print('text', ['xmit_timeout', '1', '0', '5', Buffer.from('swapper/1').toString('hex'), `name=${odd}`, `driver=${odd}`, 'queue=-1']).out;
    expect(timeout).toBe(`ev=xmit_timeout name=${escaped} driver=${escaped} queue=-1 kthread=1 pid=0 ts=5 comm=swapper/1\n`);
  });

  it('refuses a record shorter than its event\'s struct, and a key its event does not print', () => {
    const line = 'ev=features ifindex=2 netns=4026531840 name=eth0 features=0x14b89 wanted=0x14909 hw=0xa001b0000094909 ret=0 kthread=0 pid=243 ts=32009693504 comm=modprobe';
    // struct tap_net_features: tap_task (40) + tap_net_dev (72) + three masks (24) + ret and pad (8).
    expect(print('text', [...harnessArgs(line), 'size=143'])).toEqual({ status: 5, out: '' });
    expect(print('text', [...harnessArgs(line), 'size=144']).status).toBe(0);
    expect(print('text', ['carrier_on', '0', '1', '2', '', 'ret=0']).status).toBe(4);
    expect(print('text', ['link_up', '0', '1', '2', '']).status).toBe(3);
  });
});
