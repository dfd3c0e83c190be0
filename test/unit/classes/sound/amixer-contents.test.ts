// The mixer parser on amixer output captured in the 6.1 guest (ES1370), and
// on output it must refuse element by element without losing the rest.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { controlKey, csetArgv, isReplayable, parseAmixerContents } from '../../../../daemon/classes/sound/amixer-contents.js';

const ES1370 = readFileSync(new URL('../../../fixtures/sound/amixer-es1370-contents-head.txt', import.meta.url), 'utf8');

describe('amixer contents', () => {
  it('reads every element of the ES1370 mixer: id, type, access and values', () => {
    const r = parseAmixerContents(ES1370);
    expect(r.problems).toEqual([]);
    expect(r.controls).toHaveLength(12);
    expect(r.controls.find((c) => c.numid === 2)).toEqual({
      numid: 2,
      key: "MIXER:'Master Playback Volume'",
      iface: 'MIXER',
      name: 'Master Playback Volume',
      index: 0,
      device: 0,
      subdevice: 0,
      type: 'INTEGER',
      access: 'rw------',
      values: ['20', '20'],
    });
    // An element with an index keeps it in its key; a CARD element keeps its iface.
    expect(r.controls.find((c) => c.numid === 9)).toMatchObject({ key: "MIXER:'PCM Switch',index=1", index: 1, values: ['off', 'off'] });
    expect(r.controls.find((c) => c.numid === 43)).toMatchObject({ key: "CARD:'Mic +5V bias'", type: 'BOOLEAN', values: ['off'] });
  });

  it('reports an element it cannot read, with its line, and keeps the others', () => {
    const text = [
      "numid=1,iface=MIXER,name='Master Playback Switch'",
      '  ; type=BOOLEAN,access=rw------,values=2',
      '  : values=on,on',
      'garbage line',
      '  : values=1',
      "numid=2,iface=MIXER,name='No Values'",
      '  ; type=INTEGER,access=rw------,values=1,min=0,max=3,step=0',
      "numid=3,iface=MIXER,name='Capture Source'",
      '  ; type=ENUMERATED,access=rw------,values=2,items=2',
      "  ; Item #0 'Mic'",
      "  ; Item #1 'Line'",
      '  : values=1,0',
    ].join('\n');
    const r = parseAmixerContents(text);
    expect(r.controls.map((c) => [c.numid, c.values])).toEqual([
      [1, ['on', 'on']],
      [3, ['1', '0']],
    ]);
    expect(r.problems).toEqual([`line 4 is not an element's id line: "garbage line"`, `element "numid=2,iface=MIXER,name='No Values'": no values line`]);
  });

  it('replays only writable, active, non-volatile elements of the types cset takes back', () => {
    expect(isReplayable({ type: 'INTEGER', access: 'rw------' })).toBe(true);
    expect(isReplayable({ type: 'ENUMERATED', access: 'rw---R--' })).toBe(true);
    expect(isReplayable({ type: 'INTEGER', access: 'r-------' })).toBe(false);
    expect(isReplayable({ type: 'INTEGER', access: 'rwi-----' })).toBe(false);
    expect(isReplayable({ type: 'INTEGER', access: 'rw-v----' })).toBe(false);
    expect(isReplayable({ type: 'BYTES', access: 'rw------' })).toBe(false);
    expect(isReplayable({ type: 'IEC958', access: 'rw------' })).toBe(false);
  });

  it('builds an argv for cset and refuses a value that is not one amixer printed', () => {
    expect(csetArgv(1, 2, ['20', '20'])).toEqual(['amixer', '-q', '-c', '1', '--', 'cset', 'numid=2', '20,20']);
    // A negative value stays a value: amixer's options end at --.
    expect(csetArgv(0, 3, ['-5', '-5'])).toEqual(['amixer', '-q', '-c', '0', '--', 'cset', 'numid=3', '-5,-5']);
    expect(() => csetArgv(0, 2, ['1;reboot'])).toThrow(/not one amixer can set back/);
    expect(() => csetArgv(0, 2, ['a b'])).toThrow(/not one amixer can set back/);
    expect(controlKey({ iface: 'PCM', name: 'IEC958 Playback PCM Stream', index: 0, device: 1, subdevice: 2 })).toBe("PCM:'IEC958 Playback PCM Stream',device=1,subdevice=2");
  });
});
