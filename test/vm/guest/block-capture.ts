// Captures, in the guest, what the block class's unit tests parse: a copy of
// the sysfs tree behind each disk (ata_piix, ahci, virtio_blk: the disk's
// attributes, queue/, the device chain's driver, subsystem and module links,
// the SCSI device, disk and host attributes), the mountinfo with one
// filesystem on a map and one straight on a disk, and dmsetup's output for a
// protecting map in each state (healthy, path failed with I/O queued, no
// path, suspended). Written under $SHADOWD_RUNDIR/capture; copied into
// test/fixtures/block/ by hand (see its README).
//   node dist/test/vm/guest/block-capture.js
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, lstatSync, mkdirSync, readdirSync, readlinkSync, realpathSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { execa } from 'execa';

const OUT = join(process.env['SHADOWD_RUNDIR'] ?? '/tmp', 'capture');
const SYS_OUT = join(OUT, 'sysfs');

/** Mirrors one sysfs path (file or symlink) into SYS_OUT; symlink targets get their directory made. */
function mirror(path: string): void {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  const rel = relative('/sys', path);
  const dest = join(SYS_OUT, rel);
  mkdirSync(dirname(dest), { recursive: true });
  if (existsSync(dest) || (() => { try { lstatSync(dest); return true; } catch { return false; } })()) return;
  if (st.isSymbolicLink()) {
    const target = readlinkSync(path);
    symlinkSync(target, dest);
    const resolved = join(SYS_OUT, relative('/sys', resolve(dirname(path), target)));
    mkdirSync(resolved, { recursive: true });
  } else if (st.isDirectory()) {
    mkdirSync(dest, { recursive: true });
  } else if (st.isFile() && st.mode & 0o444) {
    try {
      // Not copyFileSync: sysfs files claim 4096 bytes and libuv's sendfile loop never ends on the short read.
      writeFileSync(dest, readFileSync(path));
    } catch {
      // unreadable attribute (write-only, or an error on read)
    }
  }
}

function mirrorDir(dir: string, recurse = false): void {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return;
  }
  for (const n of names) {
    const p = join(dir, n);
    const st = lstatSync(p);
    if (st.isDirectory() && !st.isSymbolicLink()) {
      if (recurse) mirrorDir(p, true);
    } else mirror(p);
  }
}

function captureDisk(disk: string): void {
  mirror(`/sys/block/${disk}`);
  const real = realpathSync(`/sys/block/${disk}`);
  for (const f of ['dev', 'size', 'removable', 'ro', 'serial', 'stat', 'inflight', 'device', 'subsystem']) mirror(join(real, f));
  mirrorDir(join(real, 'holders'));
  mirrorDir(join(real, 'queue'));
  mirrorDir(join(real, 'queue', 'iosched'));
  for (const h of readdirSync(join(real, 'holders'))) {
    mirror(`/sys/block/${h}`);
    const hr = realpathSync(`/sys/block/${h}`);
    for (const f of ['dev', 'size']) mirror(join(hr, f));
    mirrorDir(join(hr, 'dm'));
  }
  const dev = realpathSync(join(real, 'device'));
  for (const f of ['model', 'vendor', 'wwid', 'vpd_pg80', 'vpd_pg83', 'timeout', 'eh_timeout', 'queue_depth', 'state']) mirror(join(dev, f));
  if (existsSync(join(dev, 'scsi_disk'))) {
    for (const sd of readdirSync(join(dev, 'scsi_disk'))) mirror(join(dev, 'scsi_disk', sd, 'cache_type'));
  }
  for (let p = dev; p !== '/sys/devices' && p !== '/'; p = dirname(p)) {
    mirror(join(p, 'driver'));
    mirror(join(p, 'subsystem'));
    if (existsSync(join(p, 'driver', 'module'))) {
      mirror(join(realpathSync(join(p, 'driver')), 'module'));
    }
    const name = p.split('/').pop()!;
    if (/^host\d+$/.test(name)) mirror(join(p, 'scsi_host', name, 'link_power_management_policy'));
  }
}

async function dm(...args: string[]): Promise<string> {
  const r = await execa('dmsetup', args, { env: { DM_DISABLE_UDEV: '1' }, reject: false, all: true });
  return r.all ?? '';
}

for (const mod of ['ata_piix', 'ahci', 'virtio_blk', 'sd_mod', 'dm-multipath']) await execa('modprobe', [mod]);
for (let i = 0; i < 100 && readdirSync('/sys/block').filter((d) => /^(sd|vd)/.test(d)).length < 3; i++) await new Promise((r) => setTimeout(r, 200));
const disks = readdirSync('/sys/block').filter((d) => /^(sd|vd)/.test(d)).sort();
const driverOf = (d: string): string => {
  for (let p = realpathSync(`/sys/block/${d}/device`); p !== '/sys/devices'; p = dirname(p)) {
    if (existsSync(join(p, 'driver')) && !readlinkSync(join(p, 'subsystem')).endsWith('/scsi')) return readlinkSync(join(p, 'driver')).split('/').pop()!;
  }
  return '?';
};
const byDriver = Object.fromEntries(disks.map((d) => [driverOf(d), d]));
const piix = byDriver['ata_piix']!;
const virtio = byDriver['virtio_blk']!;
const size = readdirSync('/sys/block').length > 0 ? statSync(`/sys/block/${piix}/size`) && (await execa('cat', [`/sys/block/${piix}/size`])).stdout : '';
const devt = (await execa('cat', [`/sys/block/${piix}/dev`])).stdout;

mkdirSync(join(OUT, 'dmsetup'), { recursive: true });
const save = (name: string, text: string): void => writeFileSync(join(OUT, 'dmsetup', name), text);
const INFO = ['info', '-c', '--noheadings', '--separator', '|', '--manglename', 'hex', '-o', 'mangled_name,mangled_uuid,blkdevname,major,minor,open,attr,segments,events'];
const table = `0 ${size} multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 ${devt} 1`;
await dm('create', 'shadow-capture', '--table', table);
await dm('create', 'lin-capture', '--table', `0 2048 linear /dev/${byDriver['ahci']!} 0`);
save('table-healthy.txt', await dm('table', 'shadow-capture'));
save('status-healthy.txt', await dm('status', 'shadow-capture'));
save('info-list.txt', await dm(...INFO));
save('table-all.txt', await dm('table'));
save('table-linear.txt', await dm('table', 'lin-capture'));
// A path failed with a read held in dm.
await dm('message', 'shadow-capture', '0', 'fail_path', devt);
const reader = spawn('dd', ['if=/dev/mapper/shadow-capture', 'of=/dev/null', 'bs=4096', 'count=1', 'iflag=direct'], { stdio: 'ignore' });
const readerDone = new Promise((r) => reader.on('exit', r));
await new Promise((r) => setTimeout(r, 1500));
save('status-failed-queued.txt', await dm('status', 'shadow-capture'));
save('info-open-queued.txt', await dm(...INFO, 'shadow-capture'));
await dm('message', 'shadow-capture', '0', 'reinstate_path', devt);
await readerDone;
save('status-reinstated.txt', await dm('status', 'shadow-capture'));
// Suspended, then no path.
await dm('suspend', '--noflush', 'shadow-capture');
save('info-suspended.txt', await dm(...INFO, 'shadow-capture'));
await dm('reload', 'shadow-capture', '--table', `0 ${size} multipath 1 queue_if_no_path 0 0 0`);
save('info-inactive.txt', await dm(...INFO, 'shadow-capture'));
await dm('resume', '--noflush', 'shadow-capture');
save('table-nopath.txt', await dm('table', 'shadow-capture'));
save('status-nopath.txt', await dm('status', 'shadow-capture'));
await dm('reload', 'shadow-capture', '--table', table);
await dm('resume', '--noflush', 'shadow-capture');
save('table-by-devno.txt', await dm('table', '-j', '253', '-m', '0'));
// Mounts: ext4 on the map, ext4 straight on the virtio disk.
mkdirSync('/run/cap-a', { recursive: true });
mkdirSync('/run/cap b', { recursive: true });
await execa('mkfs.ext4', ['-q', '-F', '/dev/mapper/shadow-capture']);
await execa('mount', ['/dev/mapper/shadow-capture', '/run/cap-a']);
await execa('mkfs.ext4', ['-q', '-F', `/dev/${virtio}`]);
await execa('mount', [`/dev/${virtio}`, '/run/cap b']);
save('info-mounted.txt', await dm(...INFO, 'shadow-capture'));
writeFileSync(join(OUT, 'mountinfo'), readFileSync('/proc/self/mountinfo'));
for (const d of disks) captureDisk(d);
writeFileSync(join(OUT, 'disks.json'), JSON.stringify({ disks, byDriver }, null, 1));
await execa('umount', ['/run/cap-a']);
await execa('umount', ['/run/cap b']);
await dm('remove', 'shadow-capture');
await dm('remove', 'lin-capture');
save('info-empty.txt', await dm(...INFO));
console.log(`captured ${disks.join(' ')} into ${OUT}`);
