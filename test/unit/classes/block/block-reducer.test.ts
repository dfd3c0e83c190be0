// The disk class's reducer on tap records printed by bpf/block-class.bt in
// the guest (test/fixtures/block/taps-session.txt, by record-block-taps.sh: ata_piix, ahci and
// virtio_blk disks configured through sysfs, then ata_piix unbound and bound).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { BLOCK_SYNC_MARKER } from '../../../../daemon/classes/block/block-declaration.js';
import { reduceBlockEvent, writeTarget, writtenValue } from '../../../../daemon/classes/block/block-reducer.js';
import { parseTapRecord } from '../../../../daemon/core/tap-record.js';

const events = readFileSync(new URL('../../../fixtures/block/taps-session.txt', import.meta.url), 'utf8')
  .split('\n')
  .filter((l) => l !== '')
  .map((l) => parseTapRecord(l));

describe('disk class reducer', () => {
  it('names the disk, SCSI device or host each attribute write was about', () => {
    const writes = events.filter((e) => e.call === 'sysfs_write').map((e) => reduceBlockEvent(e));
    expect(writes.flat()).toEqual([
      { kind: 'write', target: { kind: 'disk', name: 'sda' }, attr: 'read_ahead_kb', key: 'queue/read_ahead_kb', value: '256' },
      { kind: 'write', target: { kind: 'disk', name: 'vda' }, attr: 'nr_requests', key: 'queue/nr_requests', value: '64' },
      { kind: 'write', target: { kind: 'disk', name: 'sdb' }, attr: 'scheduler', key: 'queue/scheduler', value: 'mq-deadline' },
      { kind: 'write', target: { kind: 'disk', name: 'sdb' }, attr: 'fifo_batch', key: 'queue/iosched/fifo_batch', value: '16' },
      { kind: 'write', target: { kind: 'scsi', address: '0:0:0:0' }, attr: 'timeout', key: 'device/timeout', value: '60' },
      // "temporary write through\n": 24 bytes, more than the taps carry.
      { kind: 'write', target: { kind: 'scsi', address: '0:0:0:0' }, attr: 'cache_type', key: 'scsi_disk/cache_type', value: null },
    ]);
  });

  it('names no setting for a write to an attribute the shadow does not keep', () => {
    const rescan = parseTapRecord('ev=sysfs_write attr=rescan kobj=0:0:0:0 parent=target0:0:0 grandparent=host0 ret=1 kthread=0 pid=9 ts=1 comm=sh');
    expect(reduceBlockEvent(rescan)).toEqual([{ kind: 'write', target: { kind: 'scsi', address: '0:0:0:0' }, attr: 'rescan', key: null, value: null }]);
    const ro = parseTapRecord('ev=sysfs_write attr=events_poll_msecs kobj=sda parent=block grandparent= ret=2 kthread=0 pid=9 ts=1 comm=sh');
    expect(reduceBlockEvent(ro)).toEqual([{ kind: 'write', target: { kind: 'disk', name: 'sda' }, attr: 'events_poll_msecs', key: null, value: null }]);
  });

  it('passes disks coming and going on with their device numbers', () => {
    const disks = events.filter((e) => e.call !== 'sysfs_write').flatMap((e) => reduceBlockEvent(e));
    expect(disks).toEqual([
      { kind: 'added', name: 'vda', devt: '254:0' },
      { kind: 'added', name: 'sda', devt: '8:0' },
      { kind: 'added', name: 'sdb', devt: '8:16' },
      { kind: 'removed', name: 'sda', devt: '8:0' },
      { kind: 'added', name: 'sda', devt: '8:0' },
    ]);
  });

  it('takes nothing from refused writes, writes elsewhere in sysfs, or the sync marker', () => {
    const marker = events.find((e) => BLOCK_SYNC_MARKER.isMarker(e));
    expect(marker?.nums['ret']).toBe(-22);
    expect(reduceBlockEvent(marker!)).toEqual([]);
    const driverWrite = events.find((e) => e.strs['attr'] === 'bind')!;
    expect(writeTarget(driverWrite)).toBeNull();
    const failedAdd = parseTapRecord('ev=disk_add name=sdz major=8 minor=400 ret=-12 kthread=0 pid=1 ts=1 comm=x');
    expect(reduceBlockEvent(failedAdd)).toEqual([]);
    const hostWrite = parseTapRecord('ev=sysfs_write attr=link_power_management_policy kobj=host3 parent=scsi_host grandparent=host3 ret=15 kthread=0 pid=9 ts=1 comm=tlp');
    expect(reduceBlockEvent(hostWrite)).toEqual([{ kind: 'write', target: { kind: 'host', name: 'host3' }, attr: 'link_power_management_policy', key: 'host/link_power_management_policy', value: null }]);
  });

  it('reads what a write wrote from the bytes the taps carried, when they carried all of it as plain text', () => {
    const carried = (bytes: Buffer, len = bytes.length) => {
      const b = Buffer.alloc(16);
      bytes.copy(b, 0, 0, 16);
      return parseTapRecord(`ev=sysfs_write attr=x kobj=queue parent=sda grandparent=block ret=${len} len=${len} v0=0x${b.readBigUInt64LE(0).toString(16)} v1=0x${b.readBigUInt64LE(8).toString(16)} kthread=0 pid=1 ts=1 comm=sh`);
    };
    expect(writtenValue(carried(Buffer.from('4096\n')))).toBe('4096');
    expect(writtenValue(carried(Buffer.from('mq-deadline')))).toBe('mq-deadline');
    expect(writtenValue(carried(Buffer.from('write through\n')))).toBe('write through');
    // Sixteen bytes exactly: both numbers used.
    expect(writtenValue(carried(Buffer.from('abcdefghijklmnop')))).toBe('abcdefghijklmnop');
    // More than the taps carry, nothing, control or non-ASCII bytes, a record of an older program (no len): not told.
    expect(writtenValue(carried(Buffer.from('temporary write through\n')))).toBeNull();
    expect(writtenValue(carried(Buffer.alloc(0)))).toBeNull();
    expect(writtenValue(carried(Buffer.from([0x31, 0x00, 0x32])))).toBeNull();
    expect(writtenValue(carried(Buffer.from('caf\xe9', 'latin1')))).toBeNull();
    expect(writtenValue(parseTapRecord('ev=sysfs_write attr=x kobj=queue parent=sda grandparent=block ret=4 kthread=0 pid=1 ts=1 comm=sh'))).toBeNull();
    // A store() that took less than was written: what it took.
    const v0 = Buffer.from('12 34\n\0\0').readBigUInt64LE(0).toString(16);
    expect(writtenValue(parseTapRecord(`ev=sysfs_write attr=x kobj=queue parent=sda grandparent=block ret=2 len=6 v0=0x${v0} v1=0x0 kthread=0 pid=1 ts=1 comm=sh`))).toBe('12');
  });
});
