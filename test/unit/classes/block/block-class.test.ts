// The disk class's runtime on a fake machine: a controller with two disks,
// one protected by a map. Isolates what the class decides (refusing a
// restart that would hurt an unprotected disk in use; the replay after a
// restart finding both disks again and putting the settings back); the
// guest tests run it on real drivers and device-mapper.
import { describe, expect, it } from 'vitest';
import { openBlock } from '../../../../daemon/classes/block/block-class.js';
import type { BlockSystem } from '../../../../daemon/classes/block/block-system.js';
import type { DiskFacts } from '../../../../daemon/classes/block/disk-shadow.js';
import type { ClassContext } from '../../../../daemon/core/device-class.js';
import { ShadowStore } from '../../../../daemon/core/shadow-store.js';
import { parseTapRecord } from '../../../../daemon/core/tap-record.js';

function disk(name: string, over: Partial<DiskFacts> = {}): DiskFacts {
  return {
    name, devt: '8:0', serial: `S-${name}`, wwid: null, model: 'QEMU HARDDISK', sectors: 131072, unit: '0000:00:1f.2', driver: 'ahci', module: 'ahci',
    scsiAddress: '0:0:0:0', scsiHost: 'host0', settings: { 'queue/scheduler': 'mq-deadline', 'queue/read_ahead_kb': '128' }, map: null, protection: 'not protected', ...over,
  };
}

function machine() {
  const disks = new Map<string, DiskFacts>([
    ['sda', disk('sda', { map: 'shadow-S-sda', protection: 'protected by map shadow-S-sda' })],
    ['sdb', disk('sdb', { devt: '8:16', scsiAddress: '1:0:0:0', scsiHost: 'host1' })],
  ]);
  const uses = new Map<string, string>();
  const writes: string[] = [];
  const switched: string[] = [];
  const failed: string[] = [];
  const sys: BlockSystem = {
    listDisks: () => Promise.resolve([...disks.keys()]),
    readDisk: (n) => (disks.has(n) ? Promise.resolve(structuredClone(disks.get(n)!)) : Promise.reject(new Error(`no ${n}`))),
    readSetting: (n, k) => Promise.resolve({ diskseq: disks.get(n)?.diskseq ?? null, value: disks.get(n)?.settings[k] ?? null }),
    disksUnder: (u) => Promise.resolve([...disks.values()].filter((d) => d.unit === u).map((d) => d.name)),
    readIo: () => Promise.resolve({ inflight: 0, completed: 0, pathFailed: false }),
    writeSetting: (n, k, v) => {
      writes.push(`${n} ${k}=${v}`);
      disks.get(n)!.settings[k] = v;
      return Promise.resolve();
    },
    switchMap: (map, sectors, devt) => {
      switched.push(`${map} ${devt}`);
      return Promise.resolve([['dmsetup', 'resume', '--noflush', map]]);
    },
    failHeldIo: (map) => {
      failed.push(map);
      return Promise.resolve(['dmsetup', 'message', map, '0', 'fail_if_no_path']);
    },
    createMap: () => Promise.reject(new Error('not here')),
    moduleOf: () => Promise.resolve('ahci'),
    diskUse: (n) => Promise.resolve(uses.get(n) ?? null),
    mapOver: (n) => Promise.resolve(disks.get(n)?.map ?? null),
  };
  return { disks, uses, writes, switched, failed, sys };
}

/** A tap record at tap-clock time ts (ns). */
const tap = (body: string, ts: number, pid = 1, comm = 'kworker'): ReturnType<typeof parseTapRecord> => parseTapRecord(`ev=${body} kthread=0 pid=${pid} ts=${ts} comm=${comm}`);

function context(store: ShadowStore, held: Set<string>): ClassContext {
  return {
    logger: { log: () => undefined },
    store,
    helper: () => Promise.reject(new Error('no helper here')),
    pollHelper: () => Promise.reject(new Error('no helper here')),
    syncTaps: () => Promise.resolve(),
    report: () => undefined,
    held: (n) => held.has(n),
    setting: (_n, _d, key) => (key === 'CreateMap' ? false : key === 'LostDiskHoldMs' ? 50 : 5000),
  };
}

describe('disk class runtime', () => {
  it('refuses a restart while another disk on the controller is in use without a map; allows it once that disk is unused', async () => {
    const m = machine();
    const rt = openBlock(context(new ShadowStore(':memory:'), new Set()), m.sys);
    await rt.resync('start');
    m.uses.set('sdb', 'mounted at /srv');
    const why = await rt.refuseRestart!('sda');
    expect(why).toBe('restarting ahci of 0000:00:1f.2 would fail the I/O of every disk on it: sdb is in use (mounted at /srv) and not under a map (docs/disks.md: protecting a disk)');
    m.uses.clear();
    expect(await rt.refuseRestart!('sda')).toBeNull();
  });

  it('after a restart: finds both disks again under new names, puts back what the restart lost, then switches the map', async () => {
    const m = machine();
    const store = new ShadowStore(':memory:');
    const held = new Set<string>();
    const rt = openBlock(context(store, held), m.sys);
    await rt.resync('start');
    // Someone tuned both disks before the failure; the shadow saw it.
    m.disks.get('sda')!.settings['queue/read_ahead_kb'] = '2048';
    m.disks.get('sdb')!.settings['queue/scheduler'] = 'none';
    await rt.resync('tuned');
    held.add('sda');
    const mark = rt.replay.mark('sda');
    // The controller's driver restarted: the disks are back with defaults, as sdc and sdd.
    const sdc = disk('sdc', { serial: 'S-sda', devt: '8:32' });
    const sdd = disk('sdd', { serial: 'S-sdb', devt: '8:48', scsiAddress: '1:0:0:0', scsiHost: 'host1' });
    m.disks.clear();
    m.disks.set('sdc', sdc).set('sdd', sdd);
    const report = await rt.replay.replay('sda', mark);
    expect(report.notBack).toBeUndefined();
    expect(m.switched).toEqual(['shadow-S-sda 8:32']);
    expect(m.writes.sort()).toEqual(['sdc queue/read_ahead_kb=2048', 'sdd queue/scheduler=none']);
    expect(report.steps.map((s) => [s.key, s.ok])).toEqual([
      ['sda:find', true], ['sda:identity', true], ['sda:queue/read_ahead_kb', true], ['sda:map', true],
      ['sdb:find', true], ['sdb:identity', true], ['sdb:queue/scheduler', true],
    ]);
    expect(rt.list().map((d) => [d.name, d.attrs['map']])).toEqual([['sdc', 'shadow-S-sda'], ['sdd', '']]);
    expect(rt.afterRestart('sda', { fields: {} } as never)).toEqual(['the disk came back as sdc: its map and shadow follow it, but anything that names sda must use sdc']);
  });

  it('carries a setting written on the failed disk during the restart to the disk that comes back, and leaves one written on the disk that came back', async () => {
    const m = machine();
    m.disks.get('sda')!.diskseq = '7';
    m.disks.get('sdb')!.diskseq = '8';
    const store = new ShadowStore(':memory:');
    const held = new Set<string>();
    const rt = openBlock(context(store, held), m.sys);
    await rt.resync('start');
    // The recovery holds sda; sdb, on the same controller, goes with it.
    held.add('sda');
    const mark = rt.replay.mark('sda');
    // After the restart began, an administrator tunes the failed sda (still there, hung) and sdb...
    m.disks.get('sda')!.settings['queue/read_ahead_kb'] = '4096';
    m.disks.get('sdb')!.settings['queue/read_ahead_kb'] = '1024';
    rt.applyEvents([tap('sysfs_write attr=read_ahead_kb kobj=queue parent=sda grandparent=block ret=5', 10, 77, 'tuned'), tap('sysfs_write attr=read_ahead_kb kobj=queue parent=sdb grandparent=block ret=5', 11, 77, 'tuned')]);
    await rt.caughtUp();
    // ...then the driver lets go: sda comes back as sdc, sdb under its own name (another diskseq), and udev sets sdb's scheduler.
    m.disks.clear();
    const sdc = disk('sdc', { serial: 'S-sda', devt: '8:32', diskseq: '9' });
    const sdb = disk('sdb', { devt: '8:16', scsiAddress: '1:0:0:0', scsiHost: 'host1', diskseq: '10', settings: { 'queue/scheduler': 'bfq', 'queue/read_ahead_kb': '128' } });
    m.disks.set('sdc', sdc).set('sdb', sdb);
    rt.applyEvents([
      tap('disk_del name=sda major=8 minor=0', 20),
      tap('disk_del name=sdb major=8 minor=16', 21),
      tap('disk_add name=sdc major=8 minor=32 ret=0', 30),
      tap('disk_add name=sdb major=8 minor=16 ret=0', 31),
      tap('sysfs_write attr=scheduler kobj=queue parent=sdb grandparent=block ret=4', 40, 88, 'systemd-udevd'),
    ]);
    await rt.caughtUp();
    const report = await rt.replay.replay('sda', mark);
    // Both read-aheads go to the disks that came back; sdb keeps the scheduler set on it during the recovery.
    expect(m.writes.sort()).toEqual(['sdb queue/read_ahead_kb=1024', 'sdc queue/read_ahead_kb=4096']);
    expect(report.steps.map((s) => s.key)).toContain('sda:queue/read_ahead_kb');
    expect(store.entries('serial:S-sdb').find((e) => e.key === 'queue/scheduler')).toMatchObject({ value: 'bfq', actor: { comm: 'systemd-udevd' } });
    expect(rt.list().map((d) => [d.name, d.health])).toEqual([['sdb', 'ok'], ['sdc', 'ok']]);
  });

  it('does not take the value of the disk that came back for one written to the failed disk whose event comes late: the replay puts back the old one', async () => {
    const m = machine();
    m.disks.get('sda')!.diskseq = '7';
    m.disks.get('sda')!.settings['queue/read_ahead_kb'] = '2048';
    const store = new ShadowStore(':memory:');
    const held = new Set<string>();
    const logs: string[] = [];
    const rt = openBlock({ ...context(store, held), logger: { log: (_p, msg) => void logs.push(msg) } }, m.sys);
    await rt.resync('start');
    held.add('sda');
    const mark = rt.replay.mark('sda');
    // sda comes back under its own name with the driver's default; the write to the failed sda (ts 10) is seen only now.
    m.disks.set('sda', disk('sda', { diskseq: '12', map: 'shadow-S-sda', protection: 'protected by map shadow-S-sda' }));
    rt.applyEvents([tap('disk_del name=sda major=8 minor=0', 20), tap('disk_add name=sda major=8 minor=0 ret=0', 30), tap('sysfs_write attr=read_ahead_kb kobj=queue parent=sda grandparent=block ret=5', 10, 77, 'tuned')]);
    await rt.caughtUp();
    await rt.replay.replay('sda', mark);
    expect(m.writes).toEqual(['sda queue/read_ahead_kb=2048']);
    expect(store.entries('serial:S-sda').find((e) => e.key === 'queue/read_ahead_kb')).toMatchObject({ value: '2048' });
    expect(logs.some((l) => /sda: tuned\[77\] wrote queue\/read_ahead_kb while shadowd restarts/.test(l))).toBe(true);
  });

  it('says the disk is not back when it does not return: its map is never pointed elsewhere', async () => {
    const m = machine();
    const held = new Set<string>();
    const rt = openBlock(context(new ShadowStore(':memory:'), held), m.sys);
    await rt.resync('start');
    held.add('sda');
    const mark = rt.replay.mark('sda');
    m.disks.delete('sda');
    m.disks.get('sdb')!.serial = 'S-sdb';
    // A disk of another size where sda was.
    m.disks.set('sde', disk('sde', { serial: 'S-sda', sectors: 4096 }));
    const report = await rt.replay.replay('sda', mark);
    expect(report.notBack).toMatch(/sde is not sda: size 4096 sectors is not 131072; nothing is written to it; map shadow-S-sda holds sda's I\/O until 50 ms after the restart began \(LostDiskHoldMs\), then fails it unless the disk is back/);
    expect(m.switched).toEqual([]);
    // Once the recovery is over, the hold runs out and the map fails what it held.
    expect(m.failed).toEqual([]);
    held.clear();
    await expect.poll(() => m.failed, { timeout: 3000 }).toEqual(['shadow-S-sda']);
  });

  it('puts a disk that appears later under a map when CreateMap asks for it, but not one coming back from a restart', async () => {
    const m = machine();
    const made: string[] = [];
    m.sys.createMap = (f) => {
      made.push(f.name);
      const d = m.disks.get(f.name)!;
      d.map = `shadow-${f.serial ?? f.name}`;
      d.protection = `protected by map ${d.map}`;
      return Promise.resolve(d.map);
    };
    const store = new ShadowStore(':memory:');
    const held = new Set<string>();
    const ctx: ClassContext = { ...context(store, held), setting: (n, _d, key) => (key === 'CreateMap' ? n !== 'sdb' : 5000) };
    const rt = openBlock(ctx, m.sys);
    await rt.resync('start');
    expect(made).toEqual([]);
    // A driver loaded after start shows a new disk.
    m.disks.set('vda', disk('vda', { devt: '254:0', unit: 'virtio2', driver: 'virtio_blk', scsiAddress: null, scsiHost: null }));
    rt.applyEvents([parseTapRecord('ev=disk_add name=vda major=254 minor=0 ret=0 kthread=0 pid=9 ts=1 comm=modprobe')]);
    await rt.caughtUp();
    await expect.poll(() => rt.list().find((d) => d.name === 'vda')?.attrs['map']).toBe('shadow-S-vda');
    expect(made).toEqual(['vda']);
    // A disk a restart brings back is the replay's to link, never mapped anew.
    held.add('sda');
    m.disks.delete('sda');
    m.disks.set('sdc', disk('sdc', { serial: 'S-sda', devt: '8:32' }));
    rt.applyEvents([parseTapRecord('ev=disk_add name=sdc major=8 minor=32 ret=0 kthread=0 pid=9 ts=1 comm=kworker')]);
    await rt.caughtUp();
    expect(made).toEqual(['vda']);
  });
});
