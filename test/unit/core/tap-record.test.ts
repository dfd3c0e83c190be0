import { describe, expect, it } from 'vitest';
import { parseTapRecord, TapRecordError } from '../../../daemon/core/tap-record.js';

describe('parseTapRecord', () => {
  it('reads numbers, masks, text fields and a comm holding spaces', () => {
    const e = parseTapRecord('ev=change_flags ifindex=2 name=eth0 flags=0x1003 ret=-22 pid=144 ts=8596104600 comm=my tool\n');
    expect(e).toEqual({
      call: 'change_flags',
      nums: { ifindex: 2, ret: -22 },
      masks: { flags: 0x1003n },
      strs: { name: 'eth0' },
      pid: 144,
      tsNs: 8596104600n,
      comm: 'my tool',
    });
  });

  it('keeps 64-bit feature masks exact', () => {
    const e = parseTapRecord('ev=features ifindex=3 features=0xffffffffffffffff pid=1 ts=1 comm=x');
    expect(e.masks['features']).toBe(0xffffffffffffffffn);
  });

  it('treats an interface named like a number as text', () => {
    expect(parseTapRecord('ev=open ifindex=4 name=42 pid=1 ts=1 comm=ip').strs['name']).toBe('42');
  });

  it('takes a comm that itself looks like fields verbatim', () => {
    expect(parseTapRecord('ev=open pid=1 ts=1 comm=a comm=b ev=x').comm).toBe('a comm=b ev=x');
    expect(parseTapRecord('ev=open pid=1 ts=1 comm=').comm).toBe('');
  });

  it.each([
    ['', 'no comm'],
    ['ev=open pid=1 ts=1', 'no comm'],
    ['pid=1 ts=1 comm=x', 'no valid ev'],
    ['ev=Open pid=1 ts=1 comm=x', 'no valid ev'],
    ['ev=open ts=1 comm=x', 'no valid pid'],
    ['ev=open pid=1 comm=x', 'no valid ts'],
    ['ev=open pid=1 ts=-4 comm=x', 'no valid ts'],
    ['ev=open pid=1 pid=2 ts=1 comm=x', 'appears twice'],
    ['ev=open junk pid=1 ts=1 comm=x', 'bad token'],
    ['ev=open =3 pid=1 ts=1 comm=x', 'bad token'],
    ['ev=open mtu=abc pid=1 ts=1 comm=x', 'not a number'],
    ['ev=open mtu=99999999999999999999 pid=1 ts=1 comm=x', 'not a number'],
    ['ev=open flags=0x12345678901234567 pid=1 ts=1 comm=x', 'not a number'],
  ])('rejects %j (%s)', (text, why) => {
    expect(() => parseTapRecord(text)).toThrow(TapRecordError);
    expect(() => parseTapRecord(text)).toThrow(why);
  });
});
