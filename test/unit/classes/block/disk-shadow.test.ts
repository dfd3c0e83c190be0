// The disk shadow with a disk source standing in for sysfs and dmsetup: this
// isolates how tap events become shadow state (who set what), how a disk is
// keyed by its identity across a rename, and what a held disk is spared.
// The guest tests read the real sysfs.
import { describe, expect, it } from 'vitest';
import { DiskShadow, diskId, type DiskFacts, type DiskSource } from '../../../../daemon/classes/block/disk-shadow.js';
import { ShadowStore } from '../../../../daemon/core/shadow-store.js';
import { parseTapRecord } from '../../../../daemon/core/tap-record.js';
import type { LogFields, Priority } from '../../../../daemon/service/log.js';

function quietLogger() {
  const lines: { priority: Priority; message: string; fields?: LogFields }[] = [];
  return { lines, log: (priority: Priority, message: string, fields?: LogFields) => void lines.push({ priority, message, fields }) };
}

function disk(name: string, over: Partial<DiskFacts> = {}): DiskFacts {
  return {
    name,
    devt: '8:0',
    serial: `serial-${name}`,
    wwid: null,
    model: 'QEMU HARDDISK',
    sectors: 131072,
    unit: '0000:00:01.1',
    driver: 'ata_piix',
    scsiAddress: '0:0:0:0',
    scsiHost: 'host0',
    settings: { 'queue/scheduler': 'mq-deadline', 'queue/read_ahead_kb': '128', 'device/timeout': '30' },
    map: null,
    protection: 'not protected: Protect is off',
    ...over,
  };
}

/** A machine's disks, changeable by the test, counting reads. */
function fakeSource(initial: DiskFacts[]) {
  const disks = new Map(initial.map((d) => [d.name, d]));
  const reads: string[] = [];
  const source: DiskSource = {
    listDisks: () => Promise.resolve([...disks.keys()]),
    readDisk: (name) => {
      reads.push(name);
      const d = disks.get(name);
      return d ? Promise.resolve(structuredClone(d)) : Promise.reject(new Error(`no disk ${name}`));
    },
    readSetting: (name, key) => {
      reads.push(`${name} ${key}`);
      const d = disks.get(name);
      return Promise.resolve({ diskseq: d?.diskseq ?? null, value: d?.settings[key] ?? null });
    },
  };
  return { disks, reads, source };
}

const write = (attr: string, kobj: string, parent: string, grandparent: string, pid = 500, comm = 'udevadm') =>
  parseTapRecord(`ev=sysfs_write attr=${attr} kobj=${kobj} parent=${parent} grandparent=${grandparent} ret=4 kthread=0 pid=${pid} ts=1 comm=${comm}`);

describe('disk shadow', () => {
  it('adopts the disks a driver serves, by identity, and credits a writer with what its write changed', async () => {
    const store = new ShadowStore(':memory:');
    const src = fakeSource([disk('sda'), disk('vda', { devt: '254:0', unit: 'virtio2', driver: 'virtio_blk', scsiAddress: null, scsiHost: null }), disk('dm-0', { unit: null })]);
    const shadow = new DiskShadow(store, quietLogger(), { source: src.source });
    await shadow.resync('start');
    expect(shadow.status().map((d) => [d.name, d.id, d.bus])).toEqual([
      ['sda', 'serial:serial-sda', '0000:00:01.1'],
      ['vda', 'serial:serial-vda', 'virtio2'],
    ]);
    // The SCSI device's timeout, written through the device's own directory.
    src.disks.get('sda')!.settings['device/timeout'] = '45';
    shadow.applyBatch([write('timeout', '0:0:0:0', 'target0:0:0', 'host0', 42, 'tuned')]);
    await shadow.caughtUp();
    const entry = shadow.show('sda').entries.find((e) => e.key === 'device/timeout');
    expect(entry).toMatchObject({ value: '45', setBy: { pid: 42, comm: 'tuned' } });
    // What the write did not change keeps its setter (the snapshot).
    expect(shadow.show('sda').entries.find((e) => e.key === 'queue/read_ahead_kb')?.setBy.pid).toBeNull();
    // A write to another disk's queue reads only that disk.
    src.reads.length = 0;
    src.disks.get('vda')!.settings['queue/read_ahead_kb'] = '4096';
    shadow.applyBatch([write('read_ahead_kb', 'queue', 'vda', 'block')]);
    await shadow.caughtUp();
    expect(src.reads).toEqual(['vda']);
    expect(shadow.show('vda').entries.find((e) => e.key === 'queue/read_ahead_kb')).toMatchObject({ value: '4096', setBy: { comm: 'udevadm' } });
  });

  it('follows a disk that comes back under another name, and keeps what was set on it', async () => {
    const store = new ShadowStore(':memory:');
    const src = fakeSource([disk('sda', { settings: { 'queue/read_ahead_kb': '512' } })]);
    const shadow = new DiskShadow(store, quietLogger(), { source: src.source });
    await shadow.resync('start');
    const sdb = disk('sdb', { serial: 'serial-sda', settings: { 'queue/read_ahead_kb': '512' } });
    shadow.record(sdb, { pid: null, comm: '(replay)' });
    expect(shadow.status().map((d) => d.name)).toEqual(['sdb']);
    expect(shadow.show('sdb').entries).toHaveLength(1);
    expect(diskId(sdb)).toBe('serial:serial-sda');
  });

  it('neither re-reads whole nor drops a disk shadowd is restarting, and drops one that goes away otherwise', async () => {
    const store = new ShadowStore(':memory:');
    const src = fakeSource([disk('sda'), disk('sdb', { devt: '8:16', scsiAddress: '1:0:0:0', scsiHost: 'host1' })]);
    let held = 'sda';
    const shadow = new DiskShadow(store, quietLogger(), { source: src.source, held: (n) => n === held });
    await shadow.resync('start');
    // sdb was not held at start, so it was read; sda was held and is not known yet.
    expect(shadow.status().map((d) => d.name)).toEqual(['sdb']);
    held = 'sdb';
    src.reads.length = 0;
    shadow.applyBatch([
      parseTapRecord('ev=disk_del name=sdb major=8 minor=16 kthread=0 pid=1 ts=1 comm=sh'),
      write('timeout', '1:0:0:0', 'target1:0:0', 'host1'),
    ]);
    await shadow.caughtUp();
    // The write's one key, never the whole disk.
    expect(src.reads).toEqual(['sdb device/timeout']);
    expect(shadow.status().find((d) => d.name === 'sdb')?.health).toBe('ok');
    held = '';
    shadow.applyBatch([parseTapRecord('ev=disk_del name=sdb major=8 minor=16 kthread=0 pid=1 ts=1 comm=sh')]);
    expect(shadow.status().find((d) => d.name === 'sdb')?.health).toBe('absent');
    expect(() => shadow.show('nope')).toThrow('no disk named nope');
  });

  it('reads only the key written to a held disk, and says when the value cannot be told apart from another disk', async () => {
    const store = new ShadowStore(':memory:');
    const logger = quietLogger();
    const src = fakeSource([disk('sda', { diskseq: '3' }), disk('sdb', { devt: '8:16', scsiAddress: '1:0:0:0', scsiHost: 'host1', diskseq: null })]);
    const held = new Set<string>();
    const heldShadow = new DiskShadow(store, logger, { source: src.source, held: (n) => held.has(n) });
    await heldShadow.resync('start');
    const mark = store.changes;
    held.add('sda').add('sdb');
    src.reads.length = 0;
    src.disks.get('sda')!.settings['device/timeout'] = '60';
    src.disks.get('sdb')!.settings['device/timeout'] = '90';
    heldShadow.applyBatch([write('timeout', '0:0:0:0', 'target0:0:0', 'host0', 5, 'admin'), write('timeout', '1:0:0:0', 'target1:0:0', 'host1', 6, 'admin'), write('rescan', '0:0:0:0', 'target0:0:0', 'host0')]);
    await heldShadow.caughtUp();
    // One key each, no whole-disk read (its identity could be I/O to a hung disk); a rescan names no setting.
    expect(src.reads).toEqual(['sda device/timeout', 'sdb device/timeout']);
    const sda = store.entries('serial:serial-sda').find((e) => e.key === 'device/timeout')!;
    expect(sda).toMatchObject({ value: '60', actor: { pid: 5, comm: 'admin' } });
    expect(sda.seq).toBeGreaterThan(mark);
    expect(heldShadow.carriedOver(sda.seq)).toBe(true);
    // sdb tells no diskseq: its value could be another disk's, so the shadow keeps what it had, and says so.
    expect(store.entries('serial:serial-sdb').find((e) => e.key === 'device/timeout')?.value).toBe('30');
    expect(logger.lines.some((l) => l.priority === 'warning' && /sdb: admin\[6\] wrote device\/timeout/.test(l.message))).toBe(true);
  });

  it('carries over the value the taps carried when the failed disk cannot be read back, and only one written before a disk came back', async () => {
    const store = new ShadowStore(':memory:');
    const logger = quietLogger();
    const src = fakeSource([disk('vda', { devt: '254:0', unit: 'virtio2', driver: 'virtio_blk', scsiAddress: null, scsiHost: null, diskseq: '3' })]);
    let unitHeld = false;
    const shadow = new DiskShadow(store, logger, { source: src.source, heldUnit: (u) => unitHeld && u === 'virtio2' });
    await shadow.resync('start');
    unitHeld = true;
    shadow.beginRestart(['vda']);
    // The failed disk does not answer: its setting cannot be read back.
    src.source.readSetting = () => Promise.reject(new Error('Input/output error'));
    // "4096\n" and "mq-deadline\n", as the taps carry them (len, v0, v1: little-endian bytes).
    const carried = (attr: string, text: string, ts: number) => {
      const b = Buffer.alloc(16);
      b.write(text, 'latin1');
      return parseTapRecord(`ev=sysfs_write attr=${attr} kobj=queue parent=vda grandparent=block ret=${text.length} len=${text.length} v0=0x${b.readBigUInt64LE(0).toString(16)} v1=0x${b.readBigUInt64LE(8).toString(16)} kthread=0 pid=77 ts=${ts} comm=tuned`);
    };
    shadow.applyBatch([carried('read_ahead_kb', '4096\n', 10), carried('scheduler', 'mq-deadline\n', 11)]);
    await shadow.caughtUp();
    const entry = (key: string) => store.entries('serial:serial-vda').find((e) => e.key === key)!;
    expect(entry('queue/read_ahead_kb')).toMatchObject({ value: '4096', actor: { pid: 77, comm: 'tuned' } });
    expect(shadow.carriedOver(entry('queue/read_ahead_kb').seq)).toBe(true);
    expect(entry('queue/scheduler').value).toBe('mq-deadline');
    expect(logger.lines.some((l) => l.priority === 'info' && /vda: queue\/read_ahead_kb = "4096" by tuned\[77\] on the failed disk \(as written: it could not be read back from that disk\)/.test(l.message))).toBe(true);
    // A disk came back under the name (the taps' clock): a later write went to it, not to the failed disk; unread, it is lost, and said so.
    shadow.applyBatch([parseTapRecord('ev=disk_add name=vda major=254 minor=0 ret=0 kthread=0 pid=7 ts=20 comm=kworker'), carried('read_ahead_kb', '8\n', 30)]);
    await shadow.caughtUp();
    expect(entry('queue/read_ahead_kb').value).toBe('4096');
    expect(logger.lines.some((l) => l.priority === 'warning' && /vda: tuned\[77\] wrote queue\/read_ahead_kb while shadowd restarts/.test(l.message))).toBe(true);
    // A write the taps did not carry whole (more than 16 bytes) is lost as before.
    const before = logger.lines.length;
    shadow.applyBatch([carried('read_ahead_kb', '0000000000000000512\n', 12)]);
    await shadow.caughtUp();
    expect(entry('queue/read_ahead_kb').value).toBe('4096');
    expect(logger.lines.slice(before).some((l) => l.priority === 'warning' && /could not be read back/.test(l.message))).toBe(true);
  });

  it('keeps the value the taps carried for a write to a disk that cannot be read as it lands, and none for a disk it does not watch', async () => {
    const store = new ShadowStore(':memory:');
    const logger = quietLogger();
    const src = fakeSource([disk('sda'), disk('dm-0', { unit: null })]);
    const shadow = new DiskShadow(store, logger, { source: src.source });
    await shadow.resync('start');
    // The disk fails as the write lands: its read (identity, settings) fails.
    src.source.readDisk = (name) => Promise.reject(new Error(`${name}: Input/output error`));
    const b = Buffer.alloc(16);
    b.write('512\n');
    const record = (parent: string) =>
      parseTapRecord(`ev=sysfs_write attr=read_ahead_kb kobj=queue parent=${parent} grandparent=block ret=4 len=4 v0=0x${b.readBigUInt64LE(0).toString(16)} v1=0x0 kthread=0 pid=88 ts=5 comm=udevadm`);
    shadow.applyBatch([record('sda'), record('dm-0')]);
    await shadow.caughtUp();
    const entry = store.entries('serial:serial-sda').find((e) => e.key === 'queue/read_ahead_kb')!;
    expect(entry).toMatchObject({ value: '512', actor: { pid: 88, comm: 'udevadm' } });
    // Not during a restart: an ordinary change, which the next replay puts back like any other.
    expect(shadow.carriedOver(entry.seq)).toBe(false);
    expect(logger.lines.some((l) => l.priority === 'info' && l.message === 'sda: queue/read_ahead_kb = "512" by udevadm[88], as written: the disk could not be read')).toBe(true);
    expect(store.devices('block').map((d) => d.name)).toEqual(['sda']);
  });

  it('adopts a disk that appears, and keys a disk with no serial by its name', async () => {
    const store = new ShadowStore(':memory:');
    const src = fakeSource([]);
    const shadow = new DiskShadow(store, quietLogger(), { source: src.source });
    await shadow.resync('start');
    src.disks.set('vdb', disk('vdb', { serial: null, devt: '254:16' }));
    shadow.applyBatch([parseTapRecord('ev=disk_add name=vdb major=254 minor=16 ret=0 kthread=0 pid=7 ts=1 comm=modprobe')]);
    await shadow.caughtUp();
    expect(shadow.status().map((d) => d.id)).toEqual(['name:vdb']);
  });

  it('reads again a disk whose read began before a restart hold ended, so the map the replay linked is not recorded over', async () => {
    const store = new ShadowStore(':memory:');
    const src = fakeSource([disk('vda', { devt: '254:0', unit: 'virtio2', map: 'shadow-x', protection: 'protected by map shadow-x' })]);
    let unitHeld = false;
    const shadow = new DiskShadow(store, quietLogger(), { source: src.source, heldUnit: (u) => unitHeld && u === 'virtio2' });
    await shadow.resync('start');
    // The driver is restarted: vda goes, vdb comes back; the map still points at vda's MAJ:MIN, so a read now sees no map over vdb.
    unitHeld = true;
    src.disks.delete('vda');
    src.disks.set('vdb', disk('vdb', { devt: '254:16', serial: 'serial-vda', unit: 'virtio2', map: null, protection: 'not protected: no map over it' }));
    // A slow read (a virtio serial is device I/O) of the disk that appeared, begun while the unit is held.
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const slow = src.source.readDisk.bind(src.source);
    src.source.readDisk = async (name) => {
      const f = await slow(name);
      await gate;
      return f;
    };
    shadow.applyBatch([parseTapRecord('ev=disk_add name=vdb major=254 minor=16 ret=0 kthread=0 pid=7 ts=1 comm=kworker')]);
    await new Promise((r) => setTimeout(r, 0));
    // The replay links vdb to the map, switches it, and the hold ends while that read is still out.
    src.disks.set('vdb', { ...src.disks.get('vdb')!, map: 'shadow-x', protection: 'protected by map shadow-x' });
    shadow.record(src.disks.get('vdb')!, { pid: null, comm: '(restart)' }, true);
    unitHeld = false;
    shadow.unitReleased();
    release();
    await shadow.caughtUp();
    const row = shadow.status().find((d) => d.name === 'vdb');
    expect(row?.attrs['map']).toBe('shadow-x');
  });

  it('a shadowd started while a disk fails keeps the identity read of the same disk instance before, and only of that instance', async () => {
    const store = new ShadowStore(':memory:');
    const vdb = disk('vdb', { devt: '254:16', unit: 'virtio2', driver: 'virtio_blk', scsiAddress: null, scsiHost: null, diskseq: '7', map: 'shadow-x' });
    // The shadowd before: the disk healthy.
    await new DiskShadow(store, quietLogger(), { source: fakeSource([vdb]).source, bootId: 'boot-a' }).resync('start-up');
    expect(store.devices('block').map((d) => d.attrs['instance'])).toEqual(['boot-a/7']);
    // The next shadowd starts with the disk failing: its serial cannot be read.
    const failing = fakeSource([{ ...vdb, serial: null, model: null }]);
    const log = quietLogger();
    const next = new DiskShadow(store, log, { source: failing.source, bootId: 'boot-a' });
    await next.resync('start-up');
    expect(next.facts('vdb')).toMatchObject({ serial: 'serial-vdb', model: 'QEMU HARDDISK' });
    expect(next.status().map((d) => d.id)).toEqual(['serial:serial-vdb']);
    expect(log.lines.some((l) => l.priority === 'notice' && /vdb: its identity cannot be read now .*\(diskseq 7 of this boot\), serial:serial-vdb/.test(l.message))).toBe(true);
    // Another instance (another diskseq, or another boot) is not taken for it.
    for (const [seq, boot] of [['8', 'boot-a'], ['7', 'boot-b']] as const) {
      const other = new DiskShadow(store, quietLogger(), { source: fakeSource([{ ...vdb, serial: null, diskseq: seq }]).source, bootId: boot });
      await other.resync('start-up');
      expect(other.facts('vdb')?.serial, `${boot}/${seq}`).toBeNull();
    }
    // Without a boot id nothing is kept.
    const blind = new DiskShadow(store, quietLogger(), { source: fakeSource([{ ...vdb, serial: null }]).source });
    await blind.resync('start-up');
    expect(blind.facts('vdb')?.serial).toBeNull();
    // A disk whose identity is unknown (not absent) is adopted with the kept one only, never by its name.
    const unknown = { ...vdb, serial: null, identityUnread: true };
    const kept = new DiskShadow(store, quietLogger(), { source: fakeSource([unknown]).source, bootId: 'boot-a' });
    await kept.resync('start-up');
    expect(kept.facts('vdb')).toMatchObject({ serial: 'serial-vdb' });
    expect(kept.facts('vdb')).not.toHaveProperty('identityUnread');
    const unknownLog = quietLogger();
    const none = new DiskShadow(store, unknownLog, { source: fakeSource([{ ...unknown, diskseq: '9' }]).source, bootId: 'boot-a' });
    await none.resync('start-up');
    expect(none.facts('vdb')).toBeNull();
    expect(unknownLog.lines.some((l) => l.priority === 'warning' && /vdb's identity \(its device does not answer\), and none is kept for it/.test(l.message))).toBe(true);
  });
});
