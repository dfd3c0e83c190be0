// The kernel helper's recovery replies, read strictly (kmod/PROTOCOL.md, proto=2).
import { describe, expect, it } from 'vitest';
import { HelperError } from '../../../daemon/core/helper-client.js';
import { expectPayload, isStageCommand, modulePhases, parseRestartReply, restartErrorSteps, stagedPayload } from '../../../daemon/core/helper-protocol.js';

const WANT = { device: 'eth0', id: 'rmiabc12-0' };
const GOOD =
  'restarted eth0 id=rmiabc12-0 ifindex=2 stop_ms=12 release_ms=3 probe_ms=640 replay_ms=25 open_ms=180 total_ms=860 ' +
  'steps=name:skip,mac:ok,mtu:ok,features:ok,vlan:skip,rings:ok,msglvl:skip,pause:skip,privflags:skip';
/** `restart eth0 rmiabc12-0 reload`: the module's fields and a first step reload. */
const RELOAD =
  'restarted eth0 id=rmiabc12-0 ifindex=2 module=e1000 stop_ms=12 release_ms=3 unload_ms=140 load_ms=310 probe_ms=640 replay_ms=25 open_ms=180 total_ms=1310 ' +
  'steps=reload:ok,name:skip,mac:ok,mtu:ok,open:ok';

describe('parseRestartReply', () => {
  it('reads the ifindex, the timings and the steps', () => {
    expect(parseRestartReply(GOOD, WANT)).toEqual({
      device: 'eth0',
      id: 'rmiabc12-0',
      ifindex: 2,
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
    const r = parseRestartReply('restarted eth0 steps=mac:ok,mtu:fail,open:ok total_ms=5 open_ms=1 replay_ms=1 probe_ms=1 release_ms=1 stop_ms=1 ifindex=7 id=rmiabc12-0', WANT);
    expect(r.ifindex).toBe(7);
    expect(r.steps).toEqual([
      { name: 'mac', result: 'ok' },
      { name: 'mtu', result: 'fail' },
      { name: 'open', result: 'ok' },
    ]);
  });

  it("reads a reload's reply: the module, its unload and load times, and the reload step first", () => {
    expect(parseRestartReply(RELOAD, { ...WANT, how: 'reload' })).toEqual({
      device: 'eth0',
      id: 'rmiabc12-0',
      ifindex: 2,
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
    expect(parseRestartReply(RELOAD, WANT).how).toBe('reload');
    expect(parseRestartReply(GOOD, { ...WANT, how: 'reprobe' }).how).toBe('reprobe');
  });

  it('reads a reload whose module would not unload (the device was probed again with it): still ok, step reload:fail', () => {
    const r = parseRestartReply(RELOAD.replace('reload:ok', 'reload:fail').replace('load_ms=310', 'load_ms=0'), WANT);
    expect(r.how).toBe('reload');
    expect(r.timings.loadMs).toBe(0);
    expect(r.steps[0]).toEqual({ name: 'reload', result: 'fail' });
  });

  it('takes the fields of a reload in any order, and a reload with its step alone', () => {
    const r = parseRestartReply('restarted eth0 steps=reload:ok load_ms=1 total_ms=5 unload_ms=2 open_ms=1 module=e100 replay_ms=1 probe_ms=1 release_ms=1 stop_ms=1 ifindex=7 id=rmiabc12-0', WANT);
    expect(r).toMatchObject({ how: 'reload', module: 'e100', ifindex: 7, steps: [{ name: 'reload', result: 'ok' }] });
  });

  it.each([
    // The reload fields come all together or not at all.
    [GOOD.replace(' ifindex=2', ' ifindex=2 module=e1000'), /it has module but not unload_ms, load_ms: a reload's reply has all of module, unload_ms, load_ms, a re-probe's none/],
    [RELOAD.replace(' module=e1000', ''), /it has unload_ms, load_ms but not module/],
    [RELOAD.replace(' unload_ms=140', ''), /it has module, load_ms but not unload_ms/],
    [RELOAD.replace(' load_ms=310', ''), /it has module, unload_ms but not load_ms/],
    [RELOAD + ' module=e1000', /field module appears twice/],
    // A reload's steps start with reload, and only there.
    [RELOAD.replace('reload:ok,', ''), /the steps of a reload must start with reload, not "name:skip"/],
    [RELOAD.replace('reload:ok,name:skip', 'name:skip,reload:ok'), /the steps of a reload must start with reload/],
    [RELOAD.replace('reload:ok', 'reload:skip'), /step reload has result "skip", not ok or fail/],
    [RELOAD.replace('reload:ok', 'reload:maybe'), /step reload has result "maybe"/],
    [RELOAD.replace('reload:ok,', 'reload:ok,reload:ok,'), /step reload appears twice/],
    [RELOAD.replace(/steps=.*$/, 'steps='), /the steps of a reload must start with reload, not ""/],
    [GOOD.replace('steps=name:skip', 'steps=reload:ok,name:skip'), /step reload is only the first step of a reload/],
    [GOOD.replace('mac:ok', 'reload:ok'), /step reload is only the first step of a reload/],
    // The module's name, and its times, as the kernel prints them.
    [RELOAD.replace('module=e1000', 'module='), /module "" is not a module name/],
    [RELOAD.replace('module=e1000', 'module=e1000/x'), /module "e1000\/x" is not a module name/],
    [RELOAD.replace('unload_ms=140', 'unload_ms=-1'), /unload_ms "-1" is not a decimal number of milliseconds/],
    [RELOAD.replace('load_ms=310', 'load_ms=3.1'), /load_ms "3.1" is not a decimal number of milliseconds/],
  ])('rejects the reload variant %j', (payload, why) => {
    expect(() => parseRestartReply(payload, WANT)).toThrow(HelperError);
    expect(() => parseRestartReply(payload, WANT)).toThrow(why);
  });

  it('rejects the other shape than the one asked for', () => {
    expect(() => parseRestartReply(GOOD, { ...WANT, how: 'reload' })).toThrow(/it is a re-probe's reply, the restart asked for a reload/);
    expect(() => parseRestartReply(RELOAD, { ...WANT, how: 'reprobe' })).toThrow(/it is a reload's reply, the restart asked for none/);
  });

  it.each([
    ['', /it is empty/],
    [GOOD.replace('restarted', 'parked'), /starts with "parked", not "restarted"/],
    [GOOD.replace('restarted eth0', 'restarted eth1'), /it is about "eth1", the restart was for eth0/],
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
    [GOOD.replace('restarted eth0', 'restarted  eth0'), /single spaces/],
    [GOOD + ' ', /single spaces/],
    [GOOD.replace('mac:ok', 'mac:maybe'), /step mac has result "maybe", not ok, skip or fail/],
    [GOOD.replace('mac:ok', 'macok'), /step "macok" is not name:result/],
    [GOOD.replace('mac:ok', 'wol:ok'), /unknown step "wol"/],
    [GOOD.replace('mtu:ok', 'mac:ok'), /step mac appears twice/],
    [GOOD.replace('name:skip,mac:ok', 'mac:ok,name:skip'), /step name is out of order/],
    [GOOD.replace(/steps=.*$/, 'steps='), /step "" is not name:result/],
    [GOOD.replace(/steps=.*$/, 'steps=mac:ok,'), /step "" is not name:result/],
  ])('rejects %j', (payload, why) => {
    expect(() => parseRestartReply(payload, WANT)).toThrow(HelperError);
    expect(() => parseRestartReply(payload, WANT)).toThrow(why);
    expect(() => parseRestartReply(payload, WANT)).toThrow(/unreadable restart reply from shadow_helper/);
  });
});

describe('restartErrorSteps', () => {
  it("reads the steps an err reply's message ends with", () => {
    expect(restartErrorSteps("eth0 id=r1 parked after 900 ms: the driver's open failed: error -5 steps=name:skip,mac:ok,mtu:fail")).toEqual([
      { name: 'name', result: 'skip' },
      { name: 'mac', result: 'ok' },
      { name: 'mtu', result: 'fail' },
    ]);
  });

  it("reads a reload's steps: the module would not load again (reload:fail alone), or the probe failed after it", () => {
    expect(restartErrorSteps('eth0 id=r1 parked after 900 ms: modprobe e1000 failed with exit status 1 steps=reload:fail')).toEqual([{ name: 'reload', result: 'fail' }]);
    expect(restartErrorSteps('eth0 id=r1 parked after 900 ms: probe failed: error -19 steps=reload:ok')).toEqual([{ name: 'reload', result: 'ok' }]);
    expect(restartErrorSteps("eth0 id=r1 parked after 900 ms: the driver's open failed: error -5 steps=reload:ok,name:skip,open:fail")).toEqual([
      { name: 'reload', result: 'ok' },
      { name: 'name', result: 'skip' },
      { name: 'open', result: 'fail' },
    ]);
    expect(restartErrorSteps('x steps=name:ok,reload:ok')).toEqual([]);
  });

  it('gives none for steps=none, no list, or a list it cannot read', () => {
    expect(restartErrorSteps('eth0 id=r1 parked after 900 ms: probe failed: error -19 steps=none')).toEqual([]);
    expect(restartErrorSteps('another restart is running')).toEqual([]);
    expect(restartErrorSteps('x steps=mac:ok,bogus:ok')).toEqual([]);
  });
});

describe('modulePhases', () => {
  it("lists the helper's phases, with a reload's unload and load when it has them", () => {
    const t = { stopMs: 10, releaseMs: 5, probeMs: 600, replayMs: 30, openMs: 205, totalMs: 850 };
    expect(modulePhases(t)).toBe('stop 10, release 5, probe 600, replay 30, open 205 ms');
    expect(modulePhases({ ...t, unloadMs: 120, loadMs: 300 })).toBe('stop 10, release 5, unload 120, load 300, probe 600, replay 30, open 205 ms');
  });
});

describe('stage commands', () => {
  it.each(['stage eth0 rings 256 0 0 256', 'stage eth0 msglvl 7', 'stage eth0 pause 1 0 1', 'stage eth0 privflags 0', 'stage eth0 clear'])('accepts %j', (c) => {
    expect(isStageCommand(c, 'eth0')).toBe(true);
  });

  it.each([
    'stage eth1 clear',
    'stage eth0',
    'stage eth0 rings 256 0 0',
    'stage eth0 rings 256 0 0 256 1',
    'stage eth0 rings -1 0 0 256',
    'stage eth0 pause 2 0 0',
    'stage eth0 msglvl 0x7',
    'stage eth0 wol g',
    'stage eth0  clear',
    'stage eth0 clear\n',
    'restart eth0 r1',
    'inject eth0 tx-hang',
  ])('refuses %j', (c) => {
    expect(isStageCommand(c, 'eth0')).toBe(false);
  });

  it('knows the reply each stage command gets', () => {
    expect(stagedPayload('stage eth0 rings 256 0 0 256')).toBe('staged eth0 rings');
    expect(stagedPayload('stage eth0 clear')).toBe('staged eth0 clear');
  });
});

describe('expectPayload', () => {
  it('accepts exactly the promised payload', () => {
    expect(() => expectPayload('park eth0 r1', 'parked eth0 id=r1', 'parked eth0 id=r1')).not.toThrow();
    expect(() => expectPayload('park eth0 r1', 'parked eth0 id=r2', 'parked eth0 id=r1')).toThrow(
      'unexpected reply from shadow_helper to "park eth0 r1": "parked eth0 id=r2", expected "parked eth0 id=r1"',
    );
  });
});
