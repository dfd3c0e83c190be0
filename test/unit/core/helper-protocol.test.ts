// The kernel helper's recovery commands and replies (kmod/PROTOCOL.md,
// proto=3): composed for a device of any class, read strictly, with the
// class's steps and fields from its declaration (the network class's here).
import { describe, expect, it } from 'vitest';
import { BLOCK_DECLARATION } from '../../../daemon/classes/block/block-declaration.js';
import { NET_DECLARATION } from '../../../daemon/classes/net/net-declaration.js';
import { SOUND_DECLARATION } from '../../../daemon/classes/sound/sound-declaration.js';
import { HelperError } from '../../../daemon/core/helper-client.js';
import {
  expectPayload,
  injectCommand,
  modulePhases,
  parkCommand,
  parseRestartReply,
  restartCommand,
  restartErrorSteps,
  type RestartMethod,
} from '../../../daemon/core/helper-protocol.js';

const WANT: { ref: { cls: string; name: string }; id: string; how?: RestartMethod } = { ref: { cls: 'net', name: 'eth0' }, id: 'rmiabc12-0' };
const parse = (payload: string, want = WANT): ReturnType<typeof parseRestartReply> => parseRestartReply(payload, want, NET_DECLARATION);
const errorSteps = (message: string): ReturnType<typeof restartErrorSteps> => restartErrorSteps(message, NET_DECLARATION);
const GOOD =
  'restarted net:eth0 id=rmiabc12-0 ifindex=2 stop_ms=12 release_ms=3 probe_ms=640 replay_ms=25 open_ms=180 total_ms=860 ' +
  'steps=name:skip,mac:ok,mtu:ok,features:ok,vlan:skip,rings:ok,msglvl:skip,pause:skip,privflags:skip';
/** `restart eth0 rmiabc12-0 reload`: the module's fields and a first step reload. */
const RELOAD =
  'restarted net:eth0 id=rmiabc12-0 ifindex=2 module=e1000 stop_ms=12 release_ms=3 unload_ms=140 load_ms=310 probe_ms=640 replay_ms=25 open_ms=180 total_ms=1310 ' +
  'steps=reload:ok,name:skip,mac:ok,mtu:ok,open:ok';

describe('parseRestartReply', () => {
  it('takes a field the class counts from 0 (card0), and still no negative or non-decimal one', () => {
    const snd = 'restarted sound:card0 id=r1 card=0 stop_ms=48 release_ms=0 probe_ms=3 replay_ms=0 open_ms=0 total_ms=49 steps=mixer:skip,streams:ok,open:skip';
    const want = { ref: { cls: 'sound', name: 'card0' }, id: 'r1' };
    expect(parseRestartReply(snd, want, SOUND_DECLARATION).fields).toEqual({ card: 0 });
    expect(() => parseRestartReply(snd.replace('card=0', 'card=-1'), want, SOUND_DECLARATION)).toThrow(/card "-1" is not a decimal number/);
    expect(() => parseRestartReply(snd.replace('card=0', 'card=00'), want, SOUND_DECLARATION)).toThrow(/card "00"/);
  });

  it('reads the ifindex, the timings and the steps', () => {
    expect(parse(GOOD, WANT)).toEqual({
      device: 'net:eth0',
      id: 'rmiabc12-0',
      fields: { ifindex: 2 },
      names: {},
      how: 'reprobe',
      module: null,
      timings: { stopMs: 12, releaseMs: 3, probeMs: 640, replayMs: 25, openMs: 180, totalMs: 860 },
      steps: [
        { name: 'name', result: 'skip' },
        { name: 'mac', result: 'ok' },
        { name: 'mtu', result: 'ok' },
        { name: 'features', result: 'ok' },
        { name: 'vlan', result: 'skip' },
        { name: 'rings', result: 'ok' },
        { name: 'msglvl', result: 'skip' },
        { name: 'pause', result: 'skip' },
        { name: 'privflags', result: 'skip' },
      ],
    });
  });

  it('takes the fields in any order and a failed step (the driver runs without that setting)', () => {
    const r = parse('restarted net:eth0 steps=mac:ok,mtu:fail,open:ok total_ms=5 open_ms=1 replay_ms=1 probe_ms=1 release_ms=1 stop_ms=1 ifindex=7 id=rmiabc12-0', WANT);
    expect(r.fields).toEqual({ ifindex: 7 });
    expect(r.steps).toEqual([
      { name: 'mac', result: 'ok' },
      { name: 'mtu', result: 'fail' },
      { name: 'open', result: 'ok' },
    ]);
  });

  it("reads a reload's reply: the module, its unload and load times, and the reload step first", () => {
    expect(parse(RELOAD, { ...WANT, how: 'reload' })).toEqual({
      device: 'net:eth0',
      id: 'rmiabc12-0',
      fields: { ifindex: 2 },
      names: {},
      how: 'reload',
      module: 'e1000',
      timings: { stopMs: 12, releaseMs: 3, unloadMs: 140, loadMs: 310, probeMs: 640, replayMs: 25, openMs: 180, totalMs: 1310 },
      steps: [
        { name: 'reload', result: 'ok' },
        { name: 'name', result: 'skip' },
        { name: 'mac', result: 'ok' },
        { name: 'mtu', result: 'ok' },
        { name: 'open', result: 'ok' },
      ],
    });
    // Without an expectation, the shape says which it was.
    expect(parse(RELOAD, WANT).how).toBe('reload');
    expect(parse(GOOD, { ...WANT, how: 'reprobe' }).how).toBe('reprobe');
  });

  it('reads a reload whose module would not unload (the device was probed again with it): still ok, step reload:fail', () => {
    const r = parse(RELOAD.replace('reload:ok', 'reload:fail').replace('load_ms=310', 'load_ms=0'), WANT);
    expect(r.how).toBe('reload');
    expect(r.timings.loadMs).toBe(0);
    expect(r.steps[0]).toEqual({ name: 'reload', result: 'fail' });
  });

  it('takes the fields of a reload in any order, and a reload with its step alone', () => {
    const r = parse('restarted net:eth0 steps=reload:ok load_ms=1 total_ms=5 unload_ms=2 open_ms=1 module=e100 replay_ms=1 probe_ms=1 release_ms=1 stop_ms=1 ifindex=7 id=rmiabc12-0', WANT);
    expect(r).toMatchObject({ how: 'reload', module: 'e100', fields: { ifindex: 7 }, steps: [{ name: 'reload', result: 'ok' }] });
  });

  it.each([
    // The reload fields come all together or not at all.
    [GOOD.replace(' ifindex=2', ' ifindex=2 module=e1000'), /it has module but not unload_ms, load_ms: a reload's reply has all of module, unload_ms, load_ms, a re-probe's none/],
    [RELOAD.replace(' module=e1000', ''), /it has unload_ms, load_ms but not module/],
    [RELOAD.replace(' unload_ms=140', ''), /it has module, load_ms but not unload_ms/],
    [RELOAD.replace(' load_ms=310', ''), /it has module, unload_ms but not load_ms/],
    [RELOAD + ' module=e1000', /field module appears twice/],
    // A reload's steps start with reload, and only there.
    [RELOAD.replace('reload:ok,', ''), /the steps of a reload must have reload first/],
    [RELOAD.replace('reload:ok,name:skip', 'name:skip,reload:ok'), /step reload is out of order \(the helper replays reload, name, /],
    [RELOAD.replace('reload:ok', 'reload:skip'), /step reload has result "skip", not ok, fail$/],
    [RELOAD.replace('reload:ok', 'reload:maybe'), /step reload has result "maybe"/],
    [RELOAD.replace('reload:ok,', 'reload:ok,reload:ok,'), /step reload appears twice/],
    [RELOAD.replace(/steps=.*$/, 'steps='), /step "" is not name:result/],
    [GOOD.replace('steps=name:skip', 'steps=reload:ok,name:skip'), /step reload is only in a reload's steps/],
    [GOOD.replace('mac:ok', 'reload:ok'), /step reload is only in a reload's steps/],
    // The module's name, and its times, as the kernel prints them.
    [RELOAD.replace('module=e1000', 'module='), /module "" is not a module name/],
    [RELOAD.replace('module=e1000', 'module=e1000/x'), /module "e1000\/x" is not a module name/],
    [RELOAD.replace('unload_ms=140', 'unload_ms=-1'), /unload_ms "-1" is not a decimal number of milliseconds/],
    [RELOAD.replace('load_ms=310', 'load_ms=3.1'), /load_ms "3.1" is not a decimal number of milliseconds/],
  ])('rejects the reload variant %j', (payload, why) => {
    expect(() => parse(payload, WANT)).toThrow(HelperError);
    expect(() => parse(payload, WANT)).toThrow(why);
  });

  it('rejects the other shape than the one asked for', () => {
    expect(() => parse(GOOD, { ...WANT, how: 'reload' })).toThrow(/it is a re-probe's reply, the restart asked for a reload/);
    expect(() => parse(RELOAD, { ...WANT, how: 'reprobe' })).toThrow(/it is a reload's reply, the restart asked for none/);
  });

  it.each([
    ['', /it is empty/],
    [GOOD.replace('restarted', 'parked'), /starts with "parked", not "restarted"/],
    [GOOD.replace('restarted net:eth0', 'restarted net:eth1'), /it is about "net:eth1", the restart was for net:eth0/],
    [GOOD.replace('restarted net:eth0', 'restarted eth0'), /it is about "eth0", the restart was for net:eth0/],
    [GOOD.replace('restarted net:eth0', 'restarted sound:eth0'), /it is about "sound:eth0", the restart was for net:eth0/],
    [GOOD.replace('id=rmiabc12-0', 'id=other'), /it is for recovery "other", not rmiabc12-0/],
    [GOOD.replace(' stop_ms=12', ''), /missing stop_ms/],
    [GOOD.replace(' stop_ms=12 release_ms=3', ''), /missing stop_ms, release_ms/],
    [GOOD + ' total_ms=1', /field total_ms appears twice/],
    [GOOD + ' extra=1', /unknown field "extra"/],
    [GOOD + ' junk', /"junk" is not key=value/],
    [GOOD.replace(' ifindex=2', ' =2'), /"=2" is not key=value/],
    [GOOD.replace('ifindex=2', 'ifindex=0'), /ifindex "0" is not a positive decimal number/],
    [GOOD.replace('ifindex=2', 'ifindex=-2'), /ifindex "-2"/],
    [GOOD.replace('probe_ms=640', 'probe_ms=6.4'), /probe_ms "6.4" is not a decimal number of milliseconds/],
    [GOOD.replace('probe_ms=640', 'probe_ms=0640'), /probe_ms "0640"/],
    [GOOD.replace('probe_ms=640', 'probe_ms='), /probe_ms ""/],
    [GOOD.replace('probe_ms=640', 'probe_ms=1e3'), /probe_ms "1e3"/],
    [GOOD.replace('restarted net:eth0', 'restarted  net:eth0'), /single spaces/],
    [GOOD + ' ', /single spaces/],
    [GOOD.replace('mac:ok', 'mac:maybe'), /step mac has result "maybe", not ok, skip, fail/],
    [GOOD.replace('mac:ok', 'macok'), /step "macok" is not name:result/],
    [GOOD.replace('mac:ok', 'wol:ok'), /unknown step "wol"/],
    [GOOD.replace('mtu:ok', 'mac:ok'), /step mac appears twice/],
    [GOOD.replace('name:skip,mac:ok', 'mac:ok,name:skip'), /step name is out of order/],
    [GOOD.replace(/steps=.*$/, 'steps='), /step "" is not name:result/],
    [GOOD.replace(/steps=.*$/, 'steps=mac:ok,'), /step "" is not name:result/],
  ])('rejects %j', (payload, why) => {
    expect(() => parse(payload, WANT)).toThrow(HelperError);
    expect(() => parse(payload, WANT)).toThrow(why);
    expect(() => parse(payload, WANT)).toThrow(/unreadable restart reply from shadow_helper/);
  });
});

describe('parseRestartReply for the disk class', () => {
  // kmod/PROTOCOL.md's examples, as the helper printed them in the guest.
  it('reads the restart unit by name and the disk count', () => {
    const r = parseRestartReply(
      'restarted block:sda id=r1 unit=0000:00:01.1 disks=1 stop_ms=6 release_ms=161 probe_ms=18 replay_ms=0 open_ms=0 total_ms=189 steps=teardown:ok,open:skip',
      { ref: { cls: 'block', name: 'sda' }, id: 'r1' },
      BLOCK_DECLARATION,
    );
    expect(r).toMatchObject({ fields: { disks: 1 }, names: { unit: '0000:00:01.1' }, steps: [{ name: 'teardown', result: 'ok' }, { name: 'open', result: 'skip' }] });
    const reload = parseRestartReply(
      'restarted block:sdb id=r2 unit=0000:00:04.0 disks=1 module=ahci stop_ms=0 release_ms=748 unload_ms=20 load_ms=31 probe_ms=502 replay_ms=0 open_ms=0 total_ms=1302 steps=teardown:ok,reload:ok,open:skip',
      { ref: { cls: 'block', name: 'sdb' }, id: 'r2', how: 'reload' },
      BLOCK_DECLARATION,
    );
    expect(reload).toMatchObject({ how: 'reload', module: 'ahci', names: { unit: '0000:00:04.0' } });
  });

  it('refuses a unit that is no device name, and a reply without one', () => {
    const want = { ref: { cls: 'block', name: 'vda' }, id: 'r3' };
    const tail = 'disks=1 stop_ms=0 release_ms=62 probe_ms=28 replay_ms=0 open_ms=0 total_ms=91 steps=teardown:skip,open:skip';
    expect(() => parseRestartReply(`restarted block:vda id=r3 unit=../x ${tail}`, want, BLOCK_DECLARATION)).toThrow('unit "../x" is not a device name');
    expect(() => parseRestartReply(`restarted block:vda id=r3 ${tail}`, want, BLOCK_DECLARATION)).toThrow('missing unit');
  });
});

describe('restartErrorSteps', () => {
  it("reads the steps an err reply's message ends with", () => {
    expect(errorSteps("eth0 id=r1 parked after 900 ms: the driver's open failed: error -5 steps=name:skip,mac:ok,mtu:fail")).toEqual([
      { name: 'name', result: 'skip' },
      { name: 'mac', result: 'ok' },
      { name: 'mtu', result: 'fail' },
    ]);
  });

  it("reads a reload's steps: the module would not load again (reload:fail alone), or the probe failed after it", () => {
    expect(errorSteps('eth0 id=r1 parked after 900 ms: modprobe e1000 failed with exit status 1 steps=reload:fail')).toEqual([{ name: 'reload', result: 'fail' }]);
    expect(errorSteps('eth0 id=r1 parked after 900 ms: probe failed: error -19 steps=reload:ok')).toEqual([{ name: 'reload', result: 'ok' }]);
    expect(errorSteps("eth0 id=r1 parked after 900 ms: the driver's open failed: error -5 steps=reload:ok,name:skip,open:fail")).toEqual([
      { name: 'reload', result: 'ok' },
      { name: 'name', result: 'skip' },
      { name: 'open', result: 'fail' },
    ]);
    expect(errorSteps('x steps=name:ok,reload:ok')).toEqual([]);
  });

  it('gives none for steps=none, no list, or a list it cannot read', () => {
    expect(errorSteps('eth0 id=r1 parked after 900 ms: probe failed: error -19 steps=none')).toEqual([]);
    expect(errorSteps('another restart is running')).toEqual([]);
    expect(errorSteps('x steps=mac:ok,bogus:ok')).toEqual([]);
  });
});

describe('modulePhases', () => {
  it("lists the helper's phases, with a reload's unload and load when it has them", () => {
    const t = { stopMs: 10, releaseMs: 5, probeMs: 600, replayMs: 30, openMs: 205, totalMs: 850 };
    expect(modulePhases(t)).toBe('stop 10, release 5, probe 600, replay 30, open 205 ms');
    expect(modulePhases({ ...t, unloadMs: 120, loadMs: 300 })).toBe('stop 10, release 5, unload 120, load 300, probe 600, replay 30, open 205 ms');
  });
});

describe('expectPayload', () => {
  it('accepts exactly the promised payload', () => {
    expect(() => expectPayload('park net:eth0 r1', 'parked net:eth0 id=r1', 'parked net:eth0 id=r1')).not.toThrow();
    expect(() => expectPayload('park net:eth0 r1', 'parked net:eth0 id=r2', 'parked net:eth0 id=r1')).toThrow(
      'unexpected reply from shadow_helper to "park net:eth0 r1": "parked net:eth0 id=r2", expected "parked net:eth0 id=r1"',
    );
  });
});

describe('commands', () => {
  const eth0 = { cls: 'net', name: 'eth0' };
  it('names the device as CLASS:NAME', () => {
    expect(restartCommand(eth0, 'r1', 'reprobe')).toBe('restart net:eth0 r1');
    expect(restartCommand(eth0, 'r1', 'reload')).toBe('restart net:eth0 r1 reload');
    expect(parkCommand(eth0, 'r1')).toEqual({ command: 'park net:eth0 r1', expect: 'parked net:eth0 id=r1' });
    expect(injectCommand(eth0, 'tx-hang', true)).toEqual({ command: 'inject net:eth0 tx-hang sticky', expect: 'injected net:eth0 tx-hang' });
    expect(injectCommand(eth0, 'clear', false)).toEqual({ command: 'inject net:eth0 clear', expect: 'cleared net:eth0' });
  });

  it("reads another class's reply with that class's steps and no extra fields", () => {
    const terms = { restartSteps: ['alpha', 'beta'], restartFields: [] };
    const r = parseRestartReply(
      'restarted fake:dev0 id=r1 stop_ms=1 release_ms=1 probe_ms=1 replay_ms=1 open_ms=1 total_ms=5 steps=alpha:ok,beta:skip',
      { ref: { cls: 'fake', name: 'dev0' }, id: 'r1' },
      terms,
    );
    expect(r.fields).toEqual({});
    expect(r.steps.map((x) => x.name)).toEqual(['alpha', 'beta']);
    expect(() => parseRestartReply('restarted fake:dev0 id=r1 ifindex=2 stop_ms=1 release_ms=1 probe_ms=1 replay_ms=1 open_ms=1 total_ms=5 steps=alpha:ok', { ref: { cls: 'fake', name: 'dev0' }, id: 'r1' }, terms)).toThrow(
      /unknown field "ifindex"/,
    );
  });
});
