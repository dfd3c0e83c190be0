// block-sysfs.ts and disk-identity.ts on the sysfs tree captured in the guest
// (test/fixtures/block/guest-6.1: sda on ata_piix under dm-0 shadow-capture,
// sdb on ahci under dm-1 lin-capture, vda on virtio_blk mounted straight), on
// a writable copy for the settings, and on hostile input.
import { chmodSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  applyDiskSettings,
  disksUnder,
  listDiskNames,
  listDisks,
  parseIoCounters,
  parseMountinfo,
  parseScheduler,
  readDiskSetting,
  readDiskSettings,
  readIoCounters,
  replayOrder,
  restartUnitOf,
  validateDiskName,
  writeDiskSetting,
} from '../../../../daemon/classes/block/block-sysfs.js';
import { parseVpdPage80, parseVpdPage83Wwn, readDiskIdentity, sameDisk, type DiskIdentity } from '../../../../daemon/classes/block/disk-identity.js';

const FIXTURE = fileURLToPath(new URL('../../../fixtures/block/guest-6.1', import.meta.url));
const SYSFS = join(FIXTURE, 'sysfs');
const MOUNTINFO = join(FIXTURE, 'mountinfo');

describe('disks', () => {
  it('lists the whole disks of drivers, not dm', async () => {
    expect(await listDiskNames(SYSFS)).toEqual(['sda', 'sdb', 'vda']);
  });

  it('reads each disk with its holders and mounts, and says whether a map can go under it live', async () => {
    const [sda, sdb, vda] = await listDisks({ sysfs: SYSFS, mountinfo: MOUNTINFO });
    expect(sda).toMatchObject({ name: 'sda', devt: '8:0', sectors: 131072, logicalBlockSize: 512, removable: false, readOnly: false, mounts: [], partitions: [] });
    expect(sda!.holders).toEqual([{ device: 'dm-0', dmName: 'shadow-capture', dmUuid: '' }]);
    expect(sda!.mapLive.possible).toBe(true);
    expect(sda!.mapLive.reason).toMatch(/shadow-capture on dm-0/);
    expect(sdb!.holders).toEqual([{ device: 'dm-1', dmName: 'lin-capture', dmUuid: '' }]);
    expect(vda).toMatchObject({ devt: '254:0', holders: [] });
    expect(vda!.mounts.map((m) => m.mountPoint)).toEqual(['/run/cap b']);
    expect(vda!.mapLive).toMatchObject({ possible: false });
    expect(vda!.mapLive.reason).toMatch(/vda on \/run\/cap b.*EBUSY/);
  });

  it('parses mountinfo with escapes, and refuses what is not mountinfo', () => {
    const m = parseMountinfo(readFileSync(MOUNTINFO, 'utf8'));
    expect(m.find((e) => e.mountPoint === '/run/cap-a')).toMatchObject({ devt: '253:0', fsType: 'ext4', source: '/dev/mapper/shadow-capture', options: 'rw,relatime' });
    expect(() => parseMountinfo('hello world\n')).toThrow(/not a mountinfo line/);
  });

  it('refuses disk names that could leave /sys/block', async () => {
    for (const bad of ['../sda', 'sda/../../x', '', '.', 'a b', 'sda\n', 'x'.repeat(40)]) expect(() => validateDiskName(bad)).toThrow();
    await expect(readDiskSettings('../../etc', SYSFS)).rejects.toThrow(/not a disk name/);
  });
});

describe('restart unit', () => {
  it('is the nearest non-SCSI ancestor with a driver, with bus, driver and module', async () => {
    expect(await restartUnitOf('sda', SYSFS)).toEqual({
      sysfsPath: join(SYSFS, 'devices/pci0000:00/0000:00:01.1'), bus: 'pci', device: '0000:00:01.1', driver: 'ata_piix', module: 'ata_piix',
    });
    expect(await restartUnitOf('sdb', SYSFS)).toMatchObject({ bus: 'pci', device: '0000:00:04.0', driver: 'ahci', module: 'ahci' });
    expect(await restartUnitOf('vda', SYSFS)).toMatchObject({ bus: 'virtio', device: 'virtio2', driver: 'virtio_blk', module: 'virtio_blk' });
  });
  it('finds the disks under a unit (the inverse)', async () => {
    for (const d of ['sda', 'sdb', 'vda']) expect(await disksUnder((await restartUnitOf(d, SYSFS)).sysfsPath, SYSFS)).toEqual([d]);
    expect(await disksUnder(join(SYSFS, 'devices/pci0000:00/0000:00:07.0'), SYSFS)).toEqual([]);
  });
});

describe('identity', () => {
  it('takes the serial from vpd_pg80 on libata and from serial on virtio_blk', async () => {
    expect(await readDiskIdentity('sda', SYSFS)).toEqual({
      serial: 'shadowd-disk0', serialSource: 'device/vpd_pg80', wwn: null, model: 'QEMU HARDDISK', vendor: 'ATA', sectors: 131072, logicalBlockSize: 512, unreadable: false,
    });
    expect(await readDiskIdentity('vda', SYSFS)).toMatchObject({ serial: 'shadowd-disk2', serialSource: 'serial', model: null, unreadable: false });
  });
  it('tells a serial that cannot be read (an error of the device) from one the disk does not have', async () => {
    const root = mkdtempSync(join(tmpdir(), 'identity-'));
    try {
      const dir = join(root, 'block', 'vdx');
      mkdirSync(join(dir, 'queue'), { recursive: true });
      writeFileSync(join(dir, 'size'), '2048\n');
      writeFileSync(join(dir, 'queue', 'logical_block_size'), '512\n');
      // No serial attribute at all: none, and nothing unreadable.
      expect(await readDiskIdentity('vdx', root)).toMatchObject({ serial: null, unreadable: false });
      // An attribute whose read fails (here EISDIR, as a refused GET_ID gives EIO): unknown.
      mkdirSync(join(dir, 'serial'));
      expect(await readDiskIdentity('vdx', root)).toMatchObject({ serial: null, unreadable: true });
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
  it('parses VPD pages and refuses malformed ones', () => {
    const p80 = readFileSync(join(SYSFS, 'devices/pci0000:00/0000:00:01.1/ata1/host0/target0:0:0/0:0:0:0/vpd_pg80'));
    expect(parseVpdPage80(p80)).toBe('shadowd-disk0');
    expect(parseVpdPage80(Buffer.from([0, 0x80, 0, 200, 65]))).toBeNull(); // length past the end
    expect(parseVpdPage80(Buffer.from([0, 0x83, 0, 1, 65]))).toBeNull();
    expect(parseVpdPage80(Buffer.from([0, 0x80, 0, 3, 65, 10, 0]))).toBeNull(); // control characters
    const p83 = readFileSync(join(SYSFS, 'devices/pci0000:00/0000:00:01.1/ata1/host0/target0:0:0/0:0:0:0/vpd_pg83'));
    expect(parseVpdPage83Wwn(p83)).toBeNull(); // QEMU's IDE disk has only vendor and T10 designators
    const naa = Buffer.from([0, 0x83, 0, 12, 0x01, 0x03, 0, 8, 0x50, 0, 0xc5, 0, 0xa1, 0xb2, 0xc3, 0xd4]);
    expect(parseVpdPage83Wwn(naa)).toBe('naa.5000c500a1b2c3d4');
    expect(parseVpdPage83Wwn(Buffer.from([0, 0x83, 0, 12, 0x01, 0x03, 0, 200]))).toBeNull();
  });
  it('same disk: size and serial must match; no serial on both sides is a weak match, said so', () => {
    const a: DiskIdentity = { serial: 'S1', serialSource: 'serial', wwn: null, model: 'M', vendor: 'V', sectors: 100, logicalBlockSize: 512, unreadable: false };
    expect(sameDisk(a, { ...a })).toEqual({ same: true, basis: ['size', 'logical block size', 'serial'], notes: [] });
    expect(sameDisk(a, { ...a, serial: 'S2' })).toMatchObject({ same: false, notes: [expect.stringMatching(/serial differs/)] });
    expect(sameDisk(a, { ...a, sectors: 200 }).same).toBe(false);
    expect(sameDisk(a, { ...a, serial: null }).same).toBe(false);
    const anon = { ...a, serial: null, serialSource: null };
    const weak = sameDisk(anon, { ...anon });
    expect(weak.same).toBe(true);
    expect(weak.notes.join()).toMatch(/neither disk reports a serial/);
    expect(sameDisk(anon, { ...anon, model: 'other' }).same).toBe(false);
  });
});

describe('settings', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'block-sysfs-'));
    cpSync(SYSFS, root, { recursive: true, verbatimSymlinks: true });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('reads one setting with the diskseq of the disk it came from, and none where the disk tells none', async () => {
    writeFileSync(join(root, 'block', 'sda', 'diskseq'), '12\n');
    expect(await readDiskSetting('sda', 'queue/scheduler', root)).toEqual({ diskseq: '12', value: 'mq-deadline' });
    expect(await readDiskSetting('vda', 'device/timeout', root)).toEqual({ diskseq: null, value: null });
    await expect(readDiskSetting('sda', 'uevent', root)).rejects.toThrow(/not a disk setting/);
  });

  it('reads every setting that exists, scheduler parsed', async () => {
    const sda = await readDiskSettings('sda', SYSFS);
    expect(sda).toMatchObject({
      'queue/scheduler': 'mq-deadline', 'queue/iosched/fifo_batch': '16', 'queue/read_ahead_kb': '128', 'queue/nr_requests': '2',
      'device/timeout': '30', 'device/eh_timeout': '10', 'device/queue_depth': '1', 'scsi_disk/cache_type': 'write back',
    });
    expect(sda['host/link_power_management_policy']).toBeUndefined(); // PATA: no LPM
    expect(await readDiskSettings('sdb', SYSFS)).toMatchObject({ 'host/link_power_management_policy': 'max_performance', 'device/queue_depth': '32' });
    const vda = await readDiskSettings('vda', SYSFS);
    expect(vda['queue/scheduler']).toBe('none');
    expect(Object.keys(vda).filter((k) => k.startsWith('device/') || k.startsWith('queue/iosched/'))).toEqual([]);
  });

  it('orders the replay: queue depth, scheduler, its tunables, nr_requests, the rest', () => {
    const order = replayOrder({ 'queue/read_ahead_kb': '1', 'queue/iosched/fifo_batch': '2', 'queue/nr_requests': '3', 'queue/scheduler': 'x', 'device/queue_depth': '4' }).map(([k]) => k);
    expect(order).toEqual(['device/queue_depth', 'queue/scheduler', 'queue/iosched/fifo_batch', 'queue/nr_requests', 'queue/read_ahead_kb']);
  });

  it('writes a setting back, unchanged when equal, skipped when absent or read-only', async () => {
    expect(await writeDiskSetting('sda', 'queue/read_ahead_kb', '512', root)).toEqual({ key: 'queue/read_ahead_kb', value: '512', outcome: 'written' });
    expect(readFileSync(join(root, 'block/sda/queue/read_ahead_kb'), 'utf8')).toBe('512');
    expect((await writeDiskSetting('sda', 'queue/read_ahead_kb', '512', root)).outcome).toBe('unchanged');
    expect(await writeDiskSetting('vda', 'device/timeout', '45', root)).toMatchObject({ outcome: 'skipped', reason: 'vda has no device/timeout' });
    chmodSync(join(root, 'devices/pci0000:00/0000:00:01.1/ata1/host0/target0:0:0/0:0:0:0/queue_depth'), 0o444);
    expect(await writeDiskSetting('sda', 'device/queue_depth', '2', root)).toMatchObject({ outcome: 'skipped', reason: 'device/queue_depth is read-only on sda' });
    expect((await writeDiskSetting('sda', 'queue/scheduler', 'mq-deadline', root)).outcome).toBe('unchanged');
  });

  it('refuses unknown keys and values that are not one line', async () => {
    await expect(writeDiskSetting('sda', 'queue/../../../etc/passwd', 'x', root)).rejects.toThrow(/not a disk setting/);
    await expect(writeDiskSetting('sda', 'queue/iosched/../../x', 'x', root)).rejects.toThrow(/not a disk setting/);
    await expect(writeDiskSetting('sda', 'device/delete', '1', root)).rejects.toThrow(/not a disk setting/);
    await expect(writeDiskSetting('sda', 'queue/read_ahead_kb', '1\n2', root)).rejects.toThrow(/one line/);
    await expect(writeDiskSetting('sda', 'queue/read_ahead_kb', 'x'.repeat(1000), root)).rejects.toThrow(/one line/);
  });

  it('applies a whole set in order, one result each', async () => {
    writeFileSync(join(root, 'block/sdb/queue/nomerges'), '0\n');
    const results = await applyDiskSettings('sdb', { 'queue/nomerges': '2', 'queue/scheduler': 'mq-deadline', 'device/timeout': '30' }, root);
    expect(results.map((r) => [r.key, r.outcome])).toEqual([['queue/scheduler', 'unchanged'], ['device/timeout', 'unchanged'], ['queue/nomerges', 'written']]);
  });

  it('parses the scheduler line strictly', () => {
    expect(parseScheduler('mq-deadline [kyber] bfq none')).toBe('kyber');
    expect(() => parseScheduler('none mq-deadline')).toThrow(/no active scheduler/);
    expect(() => parseScheduler('[a] [b]')).toThrow(/no active scheduler/);
  });
});

describe('I/O counters', () => {
  it('reads inflight and completed counts', async () => {
    const c = await readIoCounters('sda', SYSFS);
    expect(c.inflightReads).toBe(0);
    expect(c.inflightWrites).toBe(0);
    expect(c.readsCompleted).toBeGreaterThan(0);
    expect(parseIoCounters('1 2', '10 0 0 0 20 0 0 0 0 0 0 30 0 0 0 40 0')).toEqual({
      inflightReads: 1, inflightWrites: 2, readsCompleted: 10, writesCompleted: 20, discardsCompleted: 30, flushesCompleted: 40,
    });
    expect(() => parseIoCounters('1', '0 0 0 0 0 0 0 0 0 0 0')).toThrow(/inflight/);
    expect(() => parseIoCounters('1 2', '0 0 0')).toThrow(/stat/);
    expect(() => parseIoCounters('1 -2', '0 0 0 0 0 0 0 0 0 0 0')).toThrow(/inflight/);
  });
});

describe('a partition mounted straight from the disk', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'block-part-'));
    cpSync(SYSFS, root, { recursive: true, verbatimSymlinks: true });
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('says the disk cannot get a map live, naming the partition and mount point', async () => {
    const part = join(root, 'devices/pci0000:00/0000:00:04.0/ata3/host2/target2:0:0/2:0:0:0/block/sdb/sdb1');
    mkdirSync(join(part, 'holders'), { recursive: true });
    writeFileSync(join(part, 'dev'), '8:17\n');
    writeFileSync(join(part, 'partition'), '1\n');
    rmSync(join(root, 'devices/pci0000:00/0000:00:04.0/ata3/host2/target2:0:0/2:0:0:0/block/sdb/holders/dm-1'));
    const mountinfo = join(root, 'mountinfo');
    writeFileSync(mountinfo, '40 29 8:17 / /boot rw,relatime shared:20 - ext4 /dev/sdb1 rw\n');
    const sdb = (await listDisks({ sysfs: root, mountinfo }))[1]!;
    expect(sdb.partitions).toEqual([{ name: 'sdb1', devt: '8:17', holders: [], mounts: [expect.objectContaining({ mountPoint: '/boot' })] }]);
    expect(sdb.mapLive.possible).toBe(false);
    expect(sdb.mapLive.reason).toMatch(/sdb1 on \/boot/);
    // Nothing mounted and nothing held: free to map.
    writeFileSync(mountinfo, '');
    expect((await listDisks({ sysfs: root, mountinfo }))[1]!.mapLive).toEqual({ possible: true, reason: 'not mounted and not held' });
  });
});
