// What each sound tap event means, on records as bpf/sound-class.bt prints
// them: failed calls change nothing, parameters arrive in ALSA's names, and
// a record whose fields are not what the taps print is an error naming it.
import { describe, expect, it } from 'vitest';
import { reduceSoundEvent, singleBit, SoundEventError } from '../../../../daemon/classes/sound/sound-reducer.js';
import { parseTapRecord } from '../../../../daemon/core/tap-record.js';

const at = { card: 1, dev: 0, stream: 0, sub: 0 };
const rec = (body: string, comm = 'aplay'): ReturnType<typeof parseTapRecord> => parseTapRecord(`${body} kthread=0 pid=300 ts=5 comm=${comm}`);
const pcm = (ev: string, rest = ''): ReturnType<typeof parseTapRecord> => rec(`ev=${ev} card=1 dev=0 stream=0 sub=0 ${rest}`.trim());

describe('sound reducer', () => {
  it('reads a stream\'s life: open, parameters, prepare, start, pause, drain, stop, hw_free, close', () => {
    expect(reduceSoundEvent(pcm('pcm_open', 'ret=0'))).toEqual([{ kind: 'pcm', at, change: { op: 'open' } }]);
    // S16_LE is format 2; RW_INTERLEAVED access 3.
    expect(reduceSoundEvent(pcm('pcm_hw_params', 'access=0x8 format0=0x4 format1=0x0 channels=2 rate=48000 period_size=4800 periods=3 buffer_size=16384 ret=0'))).toEqual([
      { kind: 'pcm', at, change: { op: 'hw_params', params: { access: 'RW_INTERLEAVED', format: 'S16_LE', channels: 2, rate: 48000, period_size: 4800, periods: 3, buffer_size: 16384 } } },
    ]);
    // S24_3LE is format 32: bit 0 of the second word.
    expect(reduceSoundEvent(pcm('pcm_hw_params', 'access=0x1 format0=0x0 format1=0x1 channels=1 rate=8000 period_size=80 periods=4 buffer_size=320 ret=0'))[0]).toMatchObject({
      change: { params: { access: 'MMAP_INTERLEAVED', format: 'S24_3LE' } },
    });
    expect(reduceSoundEvent(pcm('pcm_sw_params', 'tstamp_mode=1 avail_min=0x12c0 start_threshold=0x4000 stop_threshold=0x4000000000000000 silence_threshold=0x0 silence_size=0x0 ret=0'))).toEqual([
      { kind: 'pcm', at, change: { op: 'sw_params', params: { tstamp_mode: 'ENABLE', avail_min: 4800, start_threshold: 16384, stop_threshold: '4611686018427387904', silence_threshold: 0, silence_size: 0 } } },
    ]);
    expect(reduceSoundEvent(pcm('pcm_prepare'))[0]).toMatchObject({ change: { op: 'state', state: 'PREPARED' } });
    expect(reduceSoundEvent(pcm('pcm_start', 'state=3'))[0]).toMatchObject({ change: { op: 'state', state: 'RUNNING' } });
    expect(reduceSoundEvent(pcm('pcm_start', 'state=5'))[0]).toMatchObject({ change: { op: 'state', state: 'DRAINING' } });
    expect(reduceSoundEvent(pcm('pcm_pause', 'push=1'))[0]).toMatchObject({ change: { op: 'state', state: 'PAUSED' } });
    expect(reduceSoundEvent(pcm('pcm_pause', 'push=0'))[0]).toMatchObject({ change: { op: 'state', state: 'RUNNING' } });
    expect(reduceSoundEvent(pcm('pcm_drain'))[0]).toMatchObject({ change: { op: 'drain' } });
    expect(reduceSoundEvent(pcm('pcm_stop', 'state=4'))[0]).toMatchObject({ change: { op: 'state', state: 'XRUN' } });
    expect(reduceSoundEvent(pcm('pcm_hw_free'))[0]).toMatchObject({ change: { op: 'hw_free' } });
    expect(reduceSoundEvent(pcm('pcm_close'))[0]).toMatchObject({ change: { op: 'close' } });
  });

  it('drops calls that failed', () => {
    for (const e of [
      pcm('pcm_open', 'ret=-16'),
      pcm('pcm_hw_params', 'access=0x0 format0=0x0 format1=0x0 channels=0 rate=0 period_size=0 periods=0 buffer_size=0 ret=-22'),
      rec('ev=ctl_write card=0 numid=2 iface=2 dev=0 sub=0 index=0 ret=-1'),
      rec('ev=card_register card=0 ret=-12'),
    ]) {
      expect(reduceSoundEvent(e)).toEqual([]);
    }
  });

  it('asks for a re-read when hw_params succeeded with masks it cannot read as one choice', () => {
    expect(reduceSoundEvent(pcm('pcm_hw_params', 'access=0xa format0=0x4 format1=0x0 channels=2 rate=48000 period_size=1 periods=1 buffer_size=1 ret=0'))).toEqual([
      { kind: 'pcm', at, change: { op: 'hw_params', params: null } },
    ]);
    expect(singleBit(0n)).toBeNull();
    expect(singleBit(6n)).toBeNull();
    expect(singleBit(1n << 40n)).toBe(40);
  });

  it('names the element a process wrote or the driver changed, and cards coming and going', () => {
    expect(reduceSoundEvent(rec('ev=ctl_write card=0 numid=2 iface=2 dev=0 sub=0 index=0 ret=0', 'amixer'))).toEqual([{ kind: 'control', card: 0, numid: 2, how: 'set' }]);
    expect(reduceSoundEvent(rec('ev=ctl_notify card=0 numid=7 mask=1'))).toEqual([{ kind: 'control', card: 0, numid: 7, how: 'changed' }]);
    expect(reduceSoundEvent(rec('ev=card_register card=3 ret=0'))).toEqual([{ kind: 'card', card: 3, op: 'registered' }]);
    expect(reduceSoundEvent(rec('ev=card_disconnect card=3'))).toEqual([{ kind: 'card', card: 3, op: 'disconnected' }]);
    expect(reduceSoundEvent(rec('ev=info_write attr=version parent=asound ret=-5'))).toEqual([]);
  });

  it('throws a SoundEventError, naming the event, on fields the taps never print', () => {
    expect(() => reduceSoundEvent(rec('ev=pcm_open card=1 dev=0 stream=2 sub=0 ret=0'))).toThrow(new SoundEventError('pcm_open: stream=2 is neither playback (0) nor capture (1)'));
    expect(() => reduceSoundEvent(rec('ev=pcm_open card=40 dev=0 stream=0 sub=0 ret=0'))).toThrow('pcm_open: card=40 is no card number');
    expect(() => reduceSoundEvent(rec('ev=pcm_close card=1 stream=0 sub=0'))).toThrow('pcm_close: no dev= field');
    expect(() => reduceSoundEvent(pcm('pcm_stop', 'state=12'))).toThrow('pcm_stop: state=12 is no PCM state');
    expect(() => reduceSoundEvent(pcm('pcm_start'))).toThrow('pcm_start: no state= field');
  });
});
