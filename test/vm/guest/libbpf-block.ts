// Run in the guest: the disk class's taps twice side by side, the precompiled
// CO-RE object under taps-loader and bpf/block-class.bt under bpftrace, each
// started as the daemon starts bpftrace (bpftraceArgv: setpriv, -f json),
// over the same sysfs writes and disks coming and going (the PIIX disk's and
// the virtio disk's drivers unbound and bound again). Prints
// `LIBBPF_BLOCK_RESULT <json>`: each tool's time from spawn to its attached
// line and to its probes live (a sync marker seen), its peak resident memory
// (VmHWM), and every record it printed between an opening marker both saw
// and the closing markers (one per CPU), with the records that differ once
// ts= is set aside. Two writers with hostile names (a comm with a newline, a
// network device named x=y) are printed apart: there the loader escapes what
// bpftrace prints raw.
// usage: node dist/test/vm/guest/libbpf-block.js LOADER OBJECT PROGRAM
import { readdirSync, realpathSync, writeFileSync } from 'node:fs';
import { execa } from 'execa';
import { BLOCK_SYNC_MARKER } from '../../../daemon/classes/block/block-declaration.js';
import { printResult, SideBySide, sleep } from './tap-side-by-side.js';

export type { TapRecord } from './tap-side-by-side.js';

const [loader, object, program] = process.argv.slice(2);
if (!loader || !object || !program) throw new Error('usage: libbpf-block.js LOADER OBJECT PROGRAM');

const run = new SideBySide(BLOCK_SYNC_MARKER);
const check = (ok: boolean, what: string): boolean => run.check(ok, what);
const failures = run.failures;

const boundUnits = (driverDir: string, pattern: RegExp): string[] => readdirSync(driverDir).filter((e) => pattern.test(e));
/** The disk (its /sys/block name) under a controller or virtio device. */
const diskUnder = (unit: string): string | undefined => readdirSync('/sys/block').find((d) => realpathSync(`/sys/block/${d}`).includes(`/${unit}/`));

async function waitDisk(unit: string, timeoutMs = 60_000): Promise<string | undefined> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const disk = diskUnder(unit);
    if (disk || Date.now() > deadline) return disk;
    await sleep(100);
  }
}

/** A sysfs write; a refused one is part of the workload too (ret < 0). */
function write(path: string, value: string): void {
  try {
    writeFileSync(path, value);
  } catch {
    // refused: the taps print it with its errno
  }
}

/** Unbinds the unit from its driver and binds it again; the disk under it comes back. */
async function rebind(driverDir: string, unit: string): Promise<string | undefined> {
  writeFileSync(`${driverDir}/unbind`, unit);
  writeFileSync(`${driverDir}/bind`, unit);
  return waitDisk(unit);
}

// Both taps attach before any driver loads, so the disks' first adds are seen too.
await run.start('libbpf', loader, object);
await run.start('bpftrace', 'bpftrace', program);
await run.open();
const hostile: Record<string, number> = {};
if (failures.length === 0) {
  for (const mod of ['ata_piix', 'virtio_blk', 'sd_mod']) await execa('modprobe', [mod]);
  const PIIX = '/sys/bus/pci/drivers/ata_piix';
  const VIRTIO = '/sys/bus/virtio/drivers/virtio_blk';
  const piixUnit = boundUnits(PIIX, /^[0-9a-f]{4}:/)[0] ?? '';
  const virtioUnit = boundUnits(VIRTIO, /^virtio\d+$/)[0] ?? '';
  const sd = await waitDisk(piixUnit);
  const vd = await waitDisk(virtioUnit);
  if (check(sd !== undefined && vd !== undefined, `no disks: PIIX ${piixUnit} → ${String(sd)}, virtio ${virtioUnit} → ${String(vd)}`)) {
    for (const disk of [sd!, vd!]) {
      const q = `/sys/block/${disk}/queue`;
      write(`${q}/read_ahead_kb`, '256');
      write(`${q}/scheduler`, 'none');
      write(`${q}/scheduler`, 'mq-deadline');
      write(`${q}/iosched/fifo_batch`, '8');
      write(`${q}/scheduler`, 'no-such-scheduler');
    }
    write(`/sys/block/${sd!}/device/timeout`, '31');
    // "temporary": the kernel's view only, no MODE SELECT sent to the disk.
    for (const hctl of readdirSync(`/sys/block/${sd!}/device/scsi_disk`)) write(`/sys/block/${sd!}/device/scsi_disk/${hctl}/cache_type`, 'temporary write back');
    // A task whose name holds a newline, a space and '=' writes a disk attribute.
    const comm = await execa('sh', ['-c', `printf 'x\\ny z=1' > /proc/self/comm; echo 512 > /sys/block/${sd!}/queue/read_ahead_kb; echo $$`]);
    hostile['comm'] = Number(comm.stdout.trim());
    // A kernel object named with '=': a network device (names may hold it).
    await execa('modprobe', ['dummy']);
    if (check((await execa('ip', ['link', 'add', 'x=y', 'type', 'dummy'], { reject: false })).exitCode === 0, 'ip link add x=y type dummy failed')) {
      const named = await execa('sh', ['-c', 'echo 1001 > /sys/class/net/x=y/tx_queue_len; echo $$']);
      hostile['name'] = Number(named.stdout.trim());
      await execa('ip', ['link', 'del', 'x=y']);
    }
    check((await rebind(PIIX, piixUnit)) !== undefined, `the PIIX disk did not come back after ${piixUnit}'s unbind and bind`);
    check((await rebind(VIRTIO, virtioUnit)) !== undefined, `the virtio disk did not come back after ${virtioUnit}'s unbind and bind`);
    // device_add_disk returns a little after its disk shows in /sys/block.
    await sleep(1000);
  }
}
await run.close();
const hostilePids = new Set(Object.values(hostile));
printResult('LIBBPF_BLOCK_RESULT', {
  ...run.result(hostilePids),
  hostileComm: run.recordsOf(hostile['comm']),
  hostileName: run.recordsOf(hostile['name']),
});
