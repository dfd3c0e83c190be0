// The sound shadow with a fake machine (fake-sound-system.ts): how tap
// events become shadow state (who set what, each open substream with its
// owner, parameters and state), what a re-read finds, what a held card is
// spared, and that a record it cannot read loses nothing.
import { describe, expect, it } from 'vitest';
import { SoundShadow } from '../../../../daemon/classes/sound/sound-shadow.js';
import { ShadowStore } from '../../../../daemon/core/shadow-store.js';
import { parseTapRecord } from '../../../../daemon/core/tap-record.js';
import type { LogFields, Priority } from '../../../../daemon/service/log.js';
import { es1370, fakeSoundSystem } from './fake-sound-system.js';

function quietLogger() {
  const lines: { priority: Priority; message: string; fields?: LogFields }[] = [];
  return { lines, log: (priority: Priority, message: string, fields?: LogFields) => void lines.push({ priority, message, fields }) };
}

const ev = (body: string, pid = 300, comm = 'aplay', kthread = 0) => parseTapRecord(`${body} kthread=${kthread} pid=${pid} ts=1 comm=${comm}`);
const S = 'card=0 dev=0 stream=0 sub=0';
const HW = 'access=0x8 format0=0x4 format1=0x0 channels=2 rate=48000 period_size=4800 periods=3 buffer_size=16384 ret=0';

function setup(held = new Set<string>()) {
  const store = new ShadowStore(':memory:');
  const m = fakeSoundSystem([es1370(0)]);
  const logger = quietLogger();
  let now = 1000;
  const shadow = new SoundShadow(store, logger, { sys: m.sys, held: (n) => held.has(n), now: () => now });
  return { store, m, logger, shadow, tick: (ms: number) => (now += ms) };
}

describe('sound shadow', () => {
  it('adopts each card by its bus device and keeps its mixer, credited to the snapshot', async () => {
    const { store, shadow } = setup();
    await shadow.resync('start-up');
    expect(store.devices('sound')).toMatchObject([{ id: 'snd:0000:00:04.0', name: 'card0', driver: 'snd_ens1370', bus: '0000:00:04.0', attrs: { card: 0, id: 'AudioPCI' }, present: true }]);
    const show = shadow.show('card0');
    expect(show.entries.map((e) => [e.key, e.value, e.setBy.comm])).toEqual([
      ["mixer/MIXER:'Master Playback Switch'", ['on', 'on'], '(snapshot)'],
      ["mixer/MIXER:'Master Playback Volume'", ['20', '20'], '(snapshot)'],
    ]);
    expect(() => shadow.show('card5')).toThrow('shadowd watches no sound card named card5');
  });

  it('re-reads an element a process wrote and credits the writer; a driver change is the driver\'s', async () => {
    const { m, shadow } = setup();
    await shadow.resync('start-up');
    m.cards.get(0)!.controls[1]!.values = ['31', '31'];
    shadow.applyBatch([ev('ev=ctl_notify card=0 numid=2 mask=1', 400, 'amixer'), ev('ev=ctl_write card=0 numid=2 iface=2 dev=0 sub=0 index=0 ret=0', 400, 'amixer')]);
    await shadow.caughtUp();
    const vol = shadow.show('card0').entries.find((e) => e.key === "mixer/MIXER:'Master Playback Volume'");
    expect(vol).toMatchObject({ value: ['31', '31'], setBy: { pid: 400, comm: 'amixer' } });
    m.cards.get(0)!.controls[0]!.values = ['off', 'off'];
    shadow.applyBatch([ev('ev=ctl_notify card=0 numid=1 mask=1', 12, 'kworker/0:1', 1)]);
    await shadow.caughtUp();
    expect(shadow.show('card0').entries.find((e) => e.key === "mixer/MIXER:'Master Playback Switch'")).toMatchObject({ value: ['off', 'off'], setBy: { pid: null, comm: '(driver)' } });
    expect(m.reads).toEqual(['mixer 0', 'control 0 2', 'control 0 2', 'control 0 1']);
  });

  it('follows a substream from open to close: owner, parameters, state, holders', async () => {
    const { store, shadow } = setup();
    await shadow.resync('start-up');
    const id = 'snd:0000:00:04.0';
    shadow.applyBatch([ev(`ev=pcm_open ${S} ret=0`), ev(`ev=pcm_hw_params ${S} ${HW}`), ev(`ev=pcm_prepare ${S}`), ev(`ev=pcm_start ${S} state=3`)]);
    const entry = () => shadow.show('card0').entries.find((e) => e.key === 'pcm0p/sub0');
    expect(entry()).toMatchObject({
      value: { state: 'RUNNING', owner: { pid: 300, comm: 'aplay' }, hw_params: { format: 'S16_LE', rate: 48000, period_size: 4800 }, sw_params: null },
      setBy: { pid: 300, comm: 'aplay' },
    });
    expect(store.holders(id)).toMatchObject([{ kind: 'pcm', pid: 300, comm: 'aplay', count: 1 }]);
    expect(shadow.card(0)?.streams.get('pcm0p/sub0')?.state).toBe('RUNNING');
    // An XRUN stop from an interrupt that happened to run on another task is the kernel's, not that task's.
    shadow.applyBatch([ev(`ev=pcm_stop ${S} state=4`, 77, 'bash')]);
    expect(entry()).toMatchObject({ value: { state: 'XRUN' }, setBy: { pid: null, comm: '(kernel)' } });
    shadow.applyBatch([ev(`ev=pcm_prepare ${S}`), ev(`ev=pcm_start ${S} state=3`), ev(`ev=pcm_drain ${S}`)]);
    expect(entry()?.value).toMatchObject({ state: 'DRAINING' });
    shadow.applyBatch([ev(`ev=pcm_stop ${S} state=1`), ev(`ev=pcm_close ${S}`)]);
    expect(entry()?.value).toBeNull();
    expect(store.holders(id)).toEqual([]);
    expect(shadow.card(0)?.streams.size).toBe(0);
  });

  it('re-reads the streams from /proc for what the taps did not show, and closes the ones gone', async () => {
    const { m, store, shadow } = setup();
    m.names.set(278, 'speaker-test');
    m.cards.get(0)!.streams = [
      {
        key: 'pcm0p/sub0',
        status: { state: 'RUNNING', ownerPid: 278, hwPtr: 100n },
        hwParams: { access: 'RW_INTERLEAVED', format: 'S16_LE', channels: 2, rate: 48000, period_size: 4800, periods: 3, buffer_size: 16384 },
        swParams: null,
      },
    ];
    await shadow.resync('start-up');
    expect(store.holders('snd:0000:00:04.0')).toMatchObject([{ pid: 278, comm: 'speaker-test', count: 1 }]);
    expect(shadow.card(0)?.streams.get('pcm0p/sub0')).toMatchObject({ state: 'RUNNING', owner: { pid: 278, comm: 'speaker-test' } });
    // A state change of a substream the shadow never saw opened: read /proc.
    m.cards.get(0)!.streams.push({ key: 'pcm0c/sub0', status: { state: 'PREPARED', ownerPid: 279, hwPtr: 0n }, hwParams: null, swParams: null });
    shadow.applyBatch([ev('ev=pcm_prepare card=0 dev=0 stream=1 sub=0', 279, 'arecord')]);
    await shadow.caughtUp();
    expect(shadow.card(0)?.streams.get('pcm0c/sub0')).toMatchObject({ state: 'PREPARED', owner: { pid: 279, comm: '?' } });
    m.cards.get(0)!.streams = [];
    await shadow.resync('gap');
    expect(shadow.card(0)?.streams.size).toBe(0);
    expect(store.holders('snd:0000:00:04.0')).toEqual([]);
  });

  it('leaves a card shadowd holds alone: no reads, no disappearance', async () => {
    const held = new Set<string>();
    const { m, store, shadow } = setup(held);
    await shadow.resync('start-up');
    held.add('card0');
    m.reads.length = 0;
    shadow.applyBatch([ev('ev=card_disconnect card=0', 1, 'kworker/0:2', 1), ev('ev=ctl_write card=0 numid=2 iface=2 dev=0 sub=0 index=0 ret=0'), ev('ev=card_register card=0 ret=0', 1, 'kworker/0:2', 1)]);
    await shadow.caughtUp();
    await shadow.resync('gap');
    expect(m.reads).toEqual([]);
    expect(store.devices('sound')[0]?.present).toBe(true);
    // Not held: a disconnect is the card going away; its shadow is kept.
    held.delete('card0');
    shadow.applyBatch([ev('ev=card_disconnect card=0', 1, 'kworker/0:2', 1)]);
    expect(store.devices('sound')[0]).toMatchObject({ present: false });
    expect(shadow.show('card0').entries.length).toBe(2);
  });

  it('remembers an element written while the card is held, or not yet re-read as the hold began, and credits its writer at the next read', async () => {
    const held = new Set<string>();
    const { m, store, shadow } = setup(held);
    await shadow.resync('start-up');
    const vol = "mixer/MIXER:'Master Playback Volume'";
    const sw = "mixer/MIXER:'Master Playback Switch'";
    // The writes land before the hold; their re-reads' turn comes after it began.
    shadow.applyBatch([ev('ev=ctl_write card=0 numid=1 iface=2 dev=0 sub=0 index=0 ret=0', 400, 'amixer')]);
    shadow.applyBatch([ev('ev=ctl_write card=0 numid=2 iface=2 dev=0 sub=0 index=0 ret=0', 401, 'amixer')]);
    held.add('card0');
    await shadow.caughtUp();
    // Written while held.
    shadow.applyBatch([ev('ev=ctl_write card=0 numid=1 iface=2 dev=0 sub=0 index=0 ret=0', 402, 'alsactl')]);
    // The driver's own notifications during its restart are not writes.
    shadow.applyBatch([ev('ev=ctl_notify card=0 numid=2 mask=1', 12, 'kworker/0:1', 1)]);
    expect(shadow.unreadKeys(0)).toEqual(new Set([sw, vol]));
    expect(m.reads).toEqual(['mixer 0']);
    const before = store.changes;
    m.cards.get(0)!.controls[0]!.values = ['off', 'off'];
    m.cards.get(0)!.controls[1]!.values = ['27', '27'];
    held.delete('card0');
    await shadow.readCard(0);
    const entries = shadow.show('card0').entries;
    expect(entries.find((e) => e.key === sw)).toMatchObject({ value: ['off', 'off'], setBy: { pid: 402, comm: 'alsactl' } });
    expect(entries.find((e) => e.key === vol)).toMatchObject({ value: ['27', '27'], setBy: { pid: 401, comm: 'amixer' } });
    expect(store.entries('snd:0000:00:04.0').every((e) => !e.key.startsWith('mixer/') || e.seq > before)).toBe(true);
    expect(shadow.unreadKeys(0)).toEqual(new Set());
  });

  it('credits what was written while held from a mixer read by the replay, and keeps what that read did not have', async () => {
    const held = new Set<string>(['card0']);
    const { m, shadow } = setup(held);
    held.delete('card0');
    await shadow.resync('start-up');
    held.add('card0');
    shadow.applyBatch([ev('ev=ctl_write card=0 numid=2 iface=2 dev=0 sub=0 index=0 ret=0', 401, 'amixer'), ev('ev=ctl_write card=0 numid=1 iface=2 dev=0 sub=0 index=0 ret=0', 402, 'amixer')]);
    const controls = structuredClone(m.cards.get(0)!.controls).filter((c) => c.numid === 2);
    controls[0]!.values = ['9', '9'];
    shadow.creditUnread(0, controls);
    expect(shadow.show('card0').entries.find((e) => e.key === "mixer/MIXER:'Master Playback Volume'")).toMatchObject({ value: ['9', '9'], setBy: { pid: 401 } });
    expect(shadow.unreadKeys(0)).toEqual(new Set(["mixer/MIXER:'Master Playback Switch'"]));
  });

  it('keeps a held write unread until a read has its element, and reads a card whose hold ended at the next events', async () => {
    const held = new Set<string>();
    const { m, shadow } = setup(held);
    await shadow.resync('start-up');
    held.add('card0');
    shadow.applyBatch([ev('ev=ctl_write card=0 numid=2 iface=2 dev=0 sub=0 index=0 ret=0', 401, 'amixer')]);
    // A mixer read that lacks the element (it did not read) leaves its writer waiting.
    shadow.creditUnread(0, []);
    expect(shadow.unreadKeys(0)).toEqual(new Set(["mixer/MIXER:'Master Playback Volume'"]));
    // The hold ends before anything read the card: the next events read it, and the writer is credited.
    held.delete('card0');
    m.cards.get(0)!.controls[1]!.values = ['11', '11'];
    shadow.applyBatch([ev('ev=pcm_open card=0 dev=0 stream=0 sub=0 ret=0', 500, 'aplay')]);
    await shadow.caughtUp();
    expect(shadow.unreadKeys(0)).toEqual(new Set());
    expect(shadow.show('card0').entries.find((e) => e.key === "mixer/MIXER:'Master Playback Volume'")).toMatchObject({ value: ['11', '11'], setBy: { pid: 401 } });
  });

  it('takes a held write off the list when its element is read for a later event, credited to the latest writer', async () => {
    const held = new Set<string>(['card0']);
    const { m, shadow } = setup(held);
    held.delete('card0');
    await shadow.resync('start-up');
    held.add('card0');
    shadow.applyBatch([ev('ev=ctl_write card=0 numid=2 iface=2 dev=0 sub=0 index=0 ret=0', 401, 'amixer')]);
    held.delete('card0');
    m.cards.get(0)!.controls[1]!.values = ['12', '12'];
    shadow.applyBatch([ev('ev=ctl_write card=0 numid=2 iface=2 dev=0 sub=0 index=0 ret=0', 402, 'alsamixer')]);
    await shadow.caughtUp();
    expect(shadow.unreadKeys(0)).toEqual(new Set());
    expect(shadow.show('card0').entries.find((e) => e.key === "mixer/MIXER:'Master Playback Volume'")).toMatchObject({ value: ['12', '12'], setBy: { pid: 402 } });
  });

  it('says so and re-reads the card when a record makes no sense, losing nothing', async () => {
    const { m, logger, shadow } = setup();
    await shadow.resync('start-up');
    m.reads.length = 0;
    // The machine has the stream open, as /proc would show it.
    m.cards.get(0)!.streams = [{ key: 'pcm0p/sub0', status: { state: 'OPEN', ownerPid: 300, hwPtr: 0n }, hwParams: null, swParams: null }];
    shadow.applyBatch([ev('ev=pcm_open card=0 dev=0 stream=7 sub=0 ret=0'), ev(`ev=pcm_open ${S} ret=0`)]);
    await shadow.caughtUp();
    expect(logger.lines.some((l) => l.priority === 'err' && l.message.includes('stream=7 is neither playback'))).toBe(true);
    expect(m.reads).toEqual(['mixer 0']);
    expect(shadow.card(0)?.streams.has('pcm0p/sub0')).toBe(true);
  });

  it('adopts a card that registers later, and marks a card gone at the next re-read', async () => {
    const { m, store, shadow } = setup();
    await shadow.resync('start-up');
    m.cards.set(1, es1370(1));
    shadow.applyBatch([ev('ev=card_register card=1 ret=0', 50, 'modprobe')]);
    await shadow.caughtUp();
    expect(store.devices('sound').map((d) => [d.name, d.present])).toEqual([
      ['card0', true],
      ['card1', true],
    ]);
    m.cards.delete(0);
    await shadow.resync('gap');
    expect(store.devices('sound').map((d) => [d.name, d.present])).toEqual([
      ['card0', false],
      ['card1', true],
    ]);
  });
});
