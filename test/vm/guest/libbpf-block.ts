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
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync, realpathSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { BLOCK_SYNC_MARKER } from '../../../daemon/classes/block/block-declaration.js';
import { parseBpftraceLine } from '../../../daemon/core/bpftrace-output.js';
import { bpftraceArgv } from '../../../daemon/core/bpftrace-process.js';
import type { TapEvent } from '../../../daemon/core/tap-record.js';

const [loader, object, program] = process.argv.slice(2);
if (!loader || !object || !program) throw new Error('usage: libbpf-block.js LOADER OBJECT PROGRAM');

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const failures: string[] = [];
const check = (ok: boolean, what: string): boolean => {
  if (!ok) failures.push(what);
  return ok;
};

export interface TapRecord {
  /** The record as printed (bpftrace's printf text), newline dropped. */
  line: string;
  event: TapEvent;
}

interface Tap {
  name: string;
  child: ChildProcess;
  startedAt: number;
  attachedMs: number | null;
  liveMs: number | null;
  probes: number | null;
  records: TapRecord[];
  lost: number;
  malformed: string[];
  stderr: string;
}

/** Starts a tap program as the daemon does (setpriv --pdeathsig, -f json) and collects what it prints. */
function startTap(name: string, bin: string, prog: string): Tap {
  const startedAt = performance.now();
  const child = spawn(...bpftraceArgv(bin, prog), { stdio: ['ignore', 'pipe', 'pipe'] });
  const tap: Tap = { name, child, startedAt, attachedMs: null, liveMs: null, probes: null, records: [], lost: 0, malformed: [], stderr: '' };
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (tap.stderr += d));
  createInterface({ input: child.stdout }).on('line', (text) => {
    if (text.trim() === '') return;
    const msg = parseBpftraceLine(text);
    if (msg.kind === 'attached') {
      tap.attachedMs = performance.now() - startedAt;
      tap.probes = msg.probes;
    } else if (msg.kind === 'lost') tap.lost += msg.count;
    else if (msg.kind === 'malformed') tap.malformed.push(`${msg.reason}: ${text}`);
    else if (msg.kind === 'event') {
      const data = (JSON.parse(text) as { data: string }).data;
      tap.records.push({ line: data.replace(/\n$/, ''), event: msg.event });
    }
  });
  return tap;
}

/** Runs the class's sync marker (optionally pinned to a CPU); resolves with its pid once it has exited. */
async function marker(cpu?: number): Promise<number> {
  const argv = cpu === undefined ? BLOCK_SYNC_MARKER.argv : ['taskset', '--cpu-list', String(cpu), ...BLOCK_SYNC_MARKER.argv];
  const child = spawn(argv[0]!, argv.slice(1), { stdio: 'ignore' });
  await new Promise((r) => child.on('close', r));
  return child.pid ?? -1;
}

const markerOf = (tap: Tap, pid: number): TapRecord | undefined => tap.records.find((r) => r.event.pid === pid && BLOCK_SYNC_MARKER.isMarker(r.event));

/** Waits until every marker pid has come out of every tap; false on timeout. */
async function seen(taps: readonly Tap[], pids: readonly number[], timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (taps.every((t) => pids.every((p) => markerOf(t, p)))) return true;
    await sleep(50);
  }
  return false;
}

/** Waits for the tap's attached line, then writes markers until one comes out: its probes are live. */
async function waitLive(tap: Tap, timeoutMs = 150_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline && tap.child.exitCode === null) {
    if (tap.attachedMs === null) {
      await sleep(20);
      continue;
    }
    const pid = await marker();
    if (await seen([tap], [pid], 300)) {
      tap.liveMs = performance.now() - tap.startedAt;
      return true;
    }
  }
  return check(false, `${tap.name}: not live after ${timeoutMs} ms (exit ${String(tap.child.exitCode)}): ${tap.stderr}`);
}

function peakRssKb(pid: number | undefined): number | null {
  try {
    return Number(/^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${String(pid)}/status`, 'utf8'))?.[1] ?? NaN);
  } catch {
    return null;
  }
}

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
const libbpf = startTap('libbpf', loader, object);
await waitLive(libbpf);
const bpftrace = startTap('bpftrace', 'bpftrace', program);
await waitLive(bpftrace);
const taps = [libbpf, bpftrace];

const opening = await marker();
check(await seen(taps, [opening]), 'the opening marker did not come out of both taps');
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
// One marker per CPU: bpftrace reads one buffer per CPU, each in its own order.
const closing = await Promise.all(cpus().map((_, cpu) => marker(cpu)));
check(await seen(taps, closing), 'the closing markers did not come out of both taps');
const peaks = taps.map((t) => peakRssKb(t.child.pid));
const exits = await Promise.all(
  taps.map(
    (t) =>
      new Promise<number | null>((resolve) => {
        t.child.on('close', (code) => resolve(code));
        t.child.kill('SIGINT');
      }),
  ),
);

const markerPids = new Set([opening, ...closing]);
/** The tap's records after the opening marker and before the closing ones, markers left out. */
function between(tap: Tap): TapRecord[] {
  const from = markerOf(tap, opening)?.event.tsNs ?? -1n;
  const to = closing.map((p) => markerOf(tap, p)?.event.tsNs ?? 0n).reduce((a, b) => (b < a ? b : a));
  return tap.records.filter((r) => r.event.tsNs > from && r.event.tsNs < to && !(markerPids.has(r.event.pid) && BLOCK_SYNC_MARKER.isMarker(r.event)));
}
const withoutTs = (line: string): string => line.replace(/ ts=\d+ /, ' ');
const hostilePids = new Set(Object.values(hostile));
const compared = taps.map((t) => between(t).filter((r) => !hostilePids.has(r.event.pid)).map((r) => withoutTs(r.line)).sort());
/** What one list has that the other lacks, with multiplicity. */
const missingFrom = (a: string[], b: string[]): string[] => {
  const left = [...b];
  return a.filter((x) => {
    const i = left.indexOf(x);
    if (i < 0) return true;
    left.splice(i, 1);
    return false;
  });
};

const figures = (t: Tap, i: number): Record<string, unknown> => ({
  attachedMs: t.attachedMs === null ? null : Math.round(t.attachedMs),
  liveMs: t.liveMs === null ? null : Math.round(t.liveMs),
  peakRssKb: peaks[i],
  probes: t.probes,
  exitCode: exits[i],
  lost: t.lost,
  malformed: t.malformed,
  stderr: t.stderr,
  records: between(t),
});
const hostileRecords = (pid: number | undefined): Record<string, string[]> =>
  Object.fromEntries(taps.map((t) => [t.name, between(t).filter((r) => r.event.pid === pid).map((r) => r.line)]));
const result = {
  kernel: readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim(),
  failures,
  libbpf: figures(libbpf, 0),
  bpftrace: figures(bpftrace, 1),
  onlyLibbpf: missingFrom(compared[0]!, compared[1]!),
  onlyBpftrace: missingFrom(compared[1]!, compared[0]!),
  sameRecords: compared[0]!.length - missingFrom(compared[0]!, compared[1]!).length,
  hostileComm: hostileRecords(hostile['comm']),
  hostileName: hostileRecords(hostile['name']),
};
console.log(`LIBBPF_BLOCK_RESULT ${JSON.stringify(result, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))}`);
