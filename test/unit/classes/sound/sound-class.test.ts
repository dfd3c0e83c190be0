// The sound class runtime on a fake machine: lookup, the refusal of a
// restart another file of the card would hang, the card-number check after
// a restart, module blame, the mixer replay (whole and after a restart's
// mark), and the stall detector wired to the shadow's running and
// draining streams, and a drain the kernel failed reported as a stall.
import { describe, expect, it } from 'vitest';
import { drainFailure, openSound } from '../../../../daemon/classes/sound/sound-class.js';
import type { ClassContext } from '../../../../daemon/core/device-class.js';
import type { FailureReport } from '../../../../daemon/core/failure-report.js';
import type { RestartReply } from '../../../../daemon/core/helper-protocol.js';
import { ShadowStore } from '../../../../daemon/core/shadow-store.js';
import { parseTapRecord } from '../../../../daemon/core/tap-record.js';
import { es1370, fakeSoundSystem } from './fake-sound-system.js';

function context(store: ShadowStore, held: Set<string>, reports: FailureReport[] = []): ClassContext {
  return {
    logger: { log: () => undefined },
    store,
    helper: () => Promise.reject(new Error('no helper here')),
    pollHelper: () => Promise.reject(new Error('no helper here')),
    syncTaps: () => Promise.resolve(),
    report: (f) => reports.push(f),
    held: (n) => held.has(n),
    setting: () => 200,
  };
}

/**
 * The sound class on a machine with card0, resynced, after the taps saw
 * aplay open, set up and start its pcm0p/sub0, then the events named in
 * @after (such as 'pcm_drain') on it.
 */
async function startedStream(held: Set<string>, reports: FailureReport[], ...after: string[]) {
  const m = fakeSoundSystem([es1370(0)]);
  const rt = openSound(context(new ShadowStore(':memory:'), held, reports), m.sys);
  await rt.resync('start-up');
  const S = 'card=0 dev=0 stream=0 sub=0';
  const tail = 'kthread=0 pid=300 ts=1 comm=aplay';
  rt.applyEvents([
    parseTapRecord(`ev=pcm_open ${S} ret=0 ${tail}`),
    parseTapRecord(`ev=pcm_hw_params ${S} access=0x8 format0=0x4 format1=0x0 channels=2 rate=48000 period_size=480 periods=4 buffer_size=1920 ret=0 ${tail}`),
    parseTapRecord(`ev=pcm_start ${S} state=3 ${tail}`),
    ...after.map((ev) => parseTapRecord(`ev=${ev} ${S} ${tail}`)),
  ]);
  return { m, rt };
}

const reply = (card: number): RestartReply => ({
  device: 'sound:card0',
  id: 'r1',
  fields: { card },
  names: {},
  how: 'reprobe',
  module: null,
  timings: {},
  steps: [],
} as unknown as RestartReply);

/** The volume element's shadow key. */
const vol = "mixer/MIXER:'Master Playback Volume'";

/** The sound class on a machine with card0, read once; `held` says which cards shadowd holds. */
async function cardOnce() {
  const held = new Set<string>();
  const m = fakeSoundSystem([es1370(0)]);
  const rt = openSound(context(new ShadowStore(':memory:'), held), m.sys);
  await rt.resync('start-up');
  return { held, m, rt };
}

describe('sound class runtime', () => {
  it('looks a present card up by name with its driver and bus device', async () => {
    const m = fakeSoundSystem([es1370(0)]);
    const rt = openSound(context(new ShadowStore(':memory:'), new Set()), m.sys);
    await rt.resync('start-up');
    expect(rt.lookup('card0')).toEqual({ name: 'card0', driver: 'snd_ens1370', bus: '0000:00:04.0' });
    expect(rt.lookup('card1')).toBeNull();
    expect(rt.list()).toMatchObject([{ cls: 'sound', name: 'card0', health: 'ok', keys: 2, attrs: { card: 0, id: 'AudioPCI' } }]);
  });

  it('refuses a restart while a process holds a MIDI or hwdep file of the card; allows it with PCM and control files only', async () => {
    const m = fakeSoundSystem([es1370(0)]);
    const rt = openSound(context(new ShadowStore(':memory:'), new Set()), m.sys);
    await rt.resync('start-up');
    m.holders.push({ pid: 278, comm: 'aplay', file: 'pcmC0D0p' }, { pid: 279, comm: 'alsamixer', file: 'controlC0' });
    expect(await rt.refuseRestart!('card0')).toBeNull();
    m.holders.push({ pid: 300, comm: 'amidi', file: 'midiC0D0' });
    expect(await rt.refuseRestart!('card0')).toContain('restarting snd_ens1370 of card0 would wait for files the helper cannot keep open across it: amidi[300] holds /dev/snd/midiC0D0');
  });

  it('says when the card came back under another number', () => {
    const rt = openSound(context(new ShadowStore(':memory:'), new Set()), fakeSoundSystem([]).sys);
    expect(rt.afterRestart('card0', reply(0))).toEqual([]);
    expect(rt.afterRestart('card0', reply(2))).toEqual(['the card came back as card2, not card0: applications and configuration that name card 0 (hw:0) lose it']);
  });

  it('names each card\'s driver and module for the kernel log\'s blame', async () => {
    const m = fakeSoundSystem([es1370(0), es1370(1)]);
    const rt = openSound(context(new ShadowStore(':memory:'), new Set()), m.sys);
    expect(await rt.moduleDevices()).toEqual([
      { name: 'card0', driver: 'snd_ens1370', module: 'snd_ens1370' },
      { name: 'card1', driver: 'snd_ens1370', module: 'snd_ens1370' },
    ]);
  });

  it('replays the mixer: everything that differs by hand, only what the restart lost after one', async () => {
    const store = new ShadowStore(':memory:');
    const m = fakeSoundSystem([es1370(0)]);
    const rt = openSound(context(store, new Set()), m.sys);
    await rt.resync('start-up');
    // The driver's new instance comes up with its defaults.
    m.cards.get(0)!.controls[1]!.values = ['0', '0'];
    m.cards.get(0)!.controls[0]!.values = ['off', 'off'];
    const whole = await rt.replay.replay('card0');
    expect(whole.steps).toEqual([
      { key: "mixer/MIXER:'Master Playback Switch'", argv: ['amixer', '-q', '-c', '0', '--', 'cset', 'numid=1', 'on,on'], ok: true },
      { key: "mixer/MIXER:'Master Playback Volume'", argv: ['amixer', '-q', '-c', '0', '--', 'cset', 'numid=2', '20,20'], ok: true },
    ]);
    expect(m.sets).toEqual(['card0 numid=1 on,on', 'card0 numid=2 20,20']);
    // A restart: the volume is lost; someone set the switch off during the recovery, which stays.
    const mark = rt.replay.mark('card0');
    m.cards.get(0)!.controls[1]!.values = ['0', '0'];
    m.cards.get(0)!.controls[0]!.values = ['off', 'off'];
    rt.applyEvents([parseTapRecord('ev=ctl_write card=0 numid=1 iface=2 dev=0 sub=0 index=0 ret=0 kthread=0 pid=500 ts=9 comm=amixer')]);
    m.sets.length = 0;
    const after = await rt.replay.replay('card0', mark);
    expect(after.steps.map((s) => s.key)).toEqual(["mixer/MIXER:'Master Playback Volume'"]);
    expect(m.sets).toEqual(['card0 numid=2 20,20']);
    expect(rt.show('card0').entries.find((e) => e.key === "mixer/MIXER:'Master Playback Switch'")).toMatchObject({ value: ['off', 'off'], setBy: { pid: 500, comm: 'amixer' } });
  });

  it('leaves an element written while shadowd held the card as the card has it after the restart, credited to its writer', async () => {
    const { held, m, rt } = await cardOnce();
    const sw = "mixer/MIXER:'Master Playback Switch'";
    // The volume is written as the card fails (its re-read's turn comes once the card is held); the restart keeps it.
    rt.applyEvents([parseTapRecord('ev=ctl_write card=0 numid=2 iface=2 dev=0 sub=0 index=0 ret=0 kthread=0 pid=500 ts=9 comm=amixer')]);
    held.add('card0');
    const mark = rt.replay.mark('card0');
    m.cards.get(0)!.controls[1]!.values = ['27', '27'];
    // The restart lost the switch; a write of it lands during the replay's own catching up, after its read of the card.
    m.cards.get(0)!.controls[0]!.values = ['off', 'off'];
    const readMixer = m.sys.readMixer.bind(m.sys);
    m.sys.readMixer = async (n) => {
      const r = await readMixer(n);
      rt.applyEvents([parseTapRecord('ev=ctl_write card=0 numid=1 iface=2 dev=0 sub=0 index=0 ret=0 kthread=0 pid=501 ts=10 comm=amixer')]);
      return r;
    };
    m.sets.length = 0;
    const after = await rt.replay.replay('card0', mark);
    expect(after.steps).toEqual([]);
    expect(m.sets).toEqual([]);
    const entries = rt.show('card0').entries;
    expect(entries.find((e) => e.key === vol)).toMatchObject({ value: ['27', '27'], setBy: { pid: 500, comm: 'amixer' } });
    expect(entries.find((e) => e.key === sw)).toMatchObject({ value: ['off', 'off'], setBy: { pid: 501, comm: 'amixer' } });
    // Without those writes the same restart is replayed: the shadow's values go back.
    m.sys.readMixer = readMixer;
    const again = rt.replay.mark('card0');
    m.cards.get(0)!.controls[1]!.values = ['0', '0'];
    const replayed = await rt.replay.replay('card0', again);
    expect(replayed.steps.map((s) => s.key)).toEqual([vol]);
    expect(m.sets).toEqual(['card0 numid=2 27,27']);
  });

  it('does not take the replay\'s own writes, seen while the card is held, for an administrator\'s', async () => {
    const { held, m, rt } = await cardOnce();
    const before = rt.show('card0').entries.find((e) => e.key === vol)!.setBy;
    held.add('card0');
    const mark = rt.replay.mark('card0');
    m.cards.get(0)!.controls[1]!.values = ['0', '0'];
    // The replay's amixer cset comes back through the taps as a write while the card is still held.
    const setControl = m.sys.setControl.bind(m.sys);
    m.sys.setControl = async (n, numid, values) => {
      await setControl(n, numid, values);
      rt.applyEvents([parseTapRecord(`ev=ctl_write card=0 numid=${numid} iface=2 dev=0 sub=0 index=0 ret=0 kthread=0 pid=777 ts=11 comm=amixer`)]);
    };
    const r = await rt.replay.replay('card0', mark);
    expect(r.steps.map((s) => s.key)).toEqual([vol]);
    held.delete('card0');
    rt.applyEvents([parseTapRecord('ev=pcm_open card=0 dev=0 stream=0 sub=0 ret=0 kthread=0 pid=300 ts=12 comm=aplay')]);
    await new Promise((res) => setTimeout(res, 20));
    expect(rt.show('card0').entries.find((e) => e.key === vol)).toMatchObject({ value: ['20', '20'], setBy: before });
  });

  it('reports a failed set as a failed step', async () => {
    const m = fakeSoundSystem([es1370(0)]);
    const rt = openSound(context(new ShadowStore(':memory:'), new Set()), m.sys);
    await rt.resync('start-up');
    m.cards.get(0)!.controls[1]!.values = ['0', '0'];
    m.sys.setControl = () => Promise.reject(new Error('amixer: Invalid argument'));
    const r = await rt.replay.replay('card0');
    expect(r.steps).toEqual([{ key: "mixer/MIXER:'Master Playback Volume'", argv: ['amixer', '-q', '-c', '0', '--', 'cset', 'numid=2', '20,20'], ok: false, error: 'amixer: Invalid argument' }]);
  });

  it('watches the running streams of cards it does not hold for a stall', async () => {
    const reports: FailureReport[] = [];
    const held = new Set<string>();
    const { m, rt } = await startedStream(held, reports);
    m.statuses.set('card0/pcm0p/sub0', { state: 'RUNNING', ownerPid: 300, hwPtr: 1000n });
    const det = rt.startDetectors();
    try {
      for (let i = 0; i < 100 && reports.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(reports).toMatchObject([{ cls: 'sound', device: 'card0', kind: 'stream-stall', driver: 'snd_ens1370' }]);
      // Held: not watched, whatever its position does.
      held.add('card0');
      reports.length = 0;
      await new Promise((r) => setTimeout(r, 600));
      expect(reports).toEqual([]);
    } finally {
      await det.stop();
    }
  });

  it('watches a draining playback stream as a running one', async () => {
    const reports: FailureReport[] = [];
    const { m, rt } = await startedStream(new Set(), reports, 'pcm_drain');
    m.statuses.set('card0/pcm0p/sub0', { state: 'DRAINING', ownerPid: 300, hwPtr: 1000n });
    const det = rt.startDetectors();
    try {
      for (let i = 0; i < 100 && reports.length === 0; i++) await new Promise((r) => setTimeout(r, 20));
      expect(reports).toMatchObject([{ cls: 'sound', device: 'card0', kind: 'stream-stall', driver: 'snd_ens1370' }]);
      expect(reports[0]!.detail).toMatch(/^pcm0p\/sub0 is DRAINING and its hardware position stayed at 1000/);
    } finally {
      await det.stop();
    }
  });

  it('reports a drain the kernel failed (its period interrupt never came) as a stall of the card, not while shadowd holds the card', async () => {
    const failed = parseTapRecord('ev=pcm_drain_failed card=1 dev=0 stream=0 sub=0 ret=-5 kthread=0 pid=300 ts=1 comm=aplay');
    expect(drainFailure(failed, 1234, () => 'snd_intel8x0')).toEqual({
      cls: 'sound',
      device: 'card1',
      kind: 'stream-stall',
      detail: 'pcm0p/sub0 stopped advancing in its drain: the kernel gave up waiting for its period interrupt and failed the drain with EIO (DMA or IRQ trouble)',
      detectedAt: 1234,
      driver: 'snd_intel8x0',
    });
    expect(drainFailure(parseTapRecord('ev=pcm_drain card=1 dev=0 stream=0 sub=0 kthread=0 pid=300 ts=1 comm=aplay'), 1, () => null)).toBeNull();
    const reports: FailureReport[] = [];
    const held = new Set<string>();
    const m = fakeSoundSystem([es1370(0)]);
    const rt = openSound(context(new ShadowStore(':memory:'), held, reports), m.sys);
    await rt.resync('start-up');
    const det = rt.startDetectors();
    try {
      const ev = parseTapRecord('ev=pcm_drain_failed card=0 dev=0 stream=0 sub=0 ret=-5 kthread=0 pid=300 ts=1 comm=aplay');
      det.onTapEvent?.(ev);
      expect(reports).toMatchObject([{ cls: 'sound', device: 'card0', kind: 'stream-stall', driver: 'snd_ens1370' }]);
      held.add('card0');
      det.onTapEvent?.(ev);
      expect(reports).toHaveLength(1);
    } finally {
      await det.stop();
    }
  });
});
