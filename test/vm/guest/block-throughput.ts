// Guest half of bench/block-throughput.ts: what the map costs a disk's I/O
// when no driver fails. The disk class keeps every protected disk under a
// single-path dm-multipath map, so every read and write of a protected
// filesystem goes through dm-mpath; this measures fio's sequential and 4k
// random read and write through such a map (made as shadowd makes it:
// defaultMapName + singlePathTable through Dmsetup) against the same disk
// raw, in the same guest, for each disk given (ata_piix, ahci, virtio_blk).
// Each job runs raw, map, bio, bio, map, raw (half the run time each), so a
// drift in the host's load (other guests) weighs on every side alike. `bio`
// is the same map with dm-mpath's `queue_mode bio` (not what shadowd makes):
// it shows what the request-based map's cloning costs. The disk is written
// once through before the jobs, so reads read data, not a sparse image's holes.
//   node block-throughput.js [--runtime SECONDS] [SERIAL ...]
// Prints `THROUGHPUT_RESULT <json>` (ThroughputResult).
import { readFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { Dmsetup, defaultMapName, singlePathTable } from '../../../daemon/classes/block/dm-map.js';
import { readDiskIdentity } from '../../../daemon/classes/block/disk-identity.js';
import { waitForDisk } from './disk-apps/disks.js';

export interface FioJob {
  name: 'seq-read' | 'seq-write' | 'rand-read' | 'rand-write';
  rw: 'read' | 'write' | 'randread' | 'randwrite';
  bs: string;
}
export const FIO_JOBS: readonly FioJob[] = [
  { name: 'seq-read', rw: 'read', bs: '1M' },
  { name: 'seq-write', rw: 'write', bs: '1M' },
  { name: 'rand-read', rw: 'randread', bs: '4k' },
  { name: 'rand-write', rw: 'randwrite', bs: '4k' },
];
const IODEPTH = 16;

/** One target's figures for one job, summed over its samples. */
export interface Figures {
  bytes: number;
  ios: number;
  ms: number;
  /** MB/s (10^6 bytes) of each sample. */
  samples: number[];
}
export interface DiskThroughput {
  serial: string;
  driver: string;
  disk: string;
  map: string;
  /** Queue settings that shape the figures: `scheduler nr_requests [queue_depth]`, of the disk and of each map. */
  queues: { disk: string; map: string; bio: string };
  /** The map with queue_mode bio over the same disk. */
  bioMap: string;
  jobs: { job: FioJob['name']; bs: string; raw: Figures; map: Figures; bio: Figures }[];
}
export interface ThroughputResult {
  runtimeS: number;
  iodepth: number;
  fio: string;
  disks: DiskThroughput[];
}

const { values, positionals } = parseArgs({ options: { runtime: { type: 'string', default: '10' } }, allowPositionals: true });
const runtimeS = Number(values.runtime);
if (!Number.isInteger(runtimeS) || runtimeS < 2) {
  console.error('usage: block-throughput.js [--runtime SECONDS (>= 2)] [SERIAL ...]');
  process.exit(2);
}
const serials = positionals.length > 0 ? positionals : ['shadowd-disk0', 'shadowd-disk1', 'shadowd-disk2'];
const log = (msg: string): void => console.error(`[throughput ${((performance.now() / 1000) | 0).toString().padStart(4)}s] ${msg}`);

interface FioSide {
  io_bytes: number;
  total_ios: number;
  runtime: number;
}

function fioArgs(job: FioJob, device: string): string[] {
  return [`--name=${job.name}`, `--filename=${device}`, `--rw=${job.rw}`, `--bs=${job.bs}`, '--ioengine=libaio', `--iodepth=${IODEPTH}`, '--direct=1'];
}

/** One fio run of `job` on `device` for `seconds`; its read or write side. */
async function fio(job: FioJob, device: string, seconds: number): Promise<FioSide> {
  const r = await execa('fio', [...fioArgs(job, device), '--time_based', `--runtime=${seconds}`, '--ramp_time=1', '--randrepeat=0', '--output-format=json']);
  const out = JSON.parse(r.stdout) as { jobs: { error: number; read: FioSide; write: FioSide }[] };
  const j = out.jobs[0];
  if (!j || j.error !== 0) throw new Error(`fio ${job.name} on ${device}: ${r.stdout.slice(0, 2000)}`);
  return job.rw === 'read' || job.rw === 'randread' ? j.read : j.write;
}

/** `scheduler nr_requests [queue_depth]` of /sys/block/NAME. */
function queueOf(name: string): string {
  const read = (attr: string): string => {
    try {
      return readFileSync(`/sys/block/${name}/${attr}`, 'utf8').trim();
    } catch {
      return '-';
    }
  };
  return `${read('queue/scheduler')} nr_requests ${read('queue/nr_requests')} queue_depth ${read('device/queue_depth')}`;
}

const empty = (): Figures => ({ bytes: 0, ios: 0, ms: 0, samples: [] });
function add(f: Figures, s: FioSide): void {
  f.bytes += s.io_bytes;
  f.ios += s.total_ios;
  f.ms += s.runtime;
  f.samples.push(s.runtime > 0 ? s.io_bytes / 1e3 / s.runtime : 0);
}

for (const m of ['ata_piix', 'ahci', 'virtio_blk', 'sd_mod', 'dm-multipath']) await execa('modprobe', [m]);
const dm = new Dmsetup();
const fioVersion = (await execa('fio', ['--version'])).stdout.trim();
const result: ThroughputResult = { runtimeS, iodepth: IODEPTH, fio: fioVersion, disks: [] };
for (const serial of serials) {
  const d = await waitForDisk(serial, 30_000);
  const identity = await readDiskIdentity(d.name);
  const map = defaultMapName(identity);
  const table = singlePathTable(identity.sectors, d.devno);
  await dm.create(map, table);
  // dm shares its claim on the disk between maps: both sit on it at once.
  const bioMap = `${map}-bio`;
  await dm.create(bioMap, table.replace(' multipath 1 queue_if_no_path ', ' multipath 3 queue_if_no_path queue_mode bio '));
  const mapDev = `/dev/mapper/${map}`;
  const bioDev = `/dev/mapper/${bioMap}`;
  log(`${d.unit.driver}: ${d.name} (${d.devno}, ${identity.sectors} sectors), map ${map}, ${bioMap}`);
  await execa('fio', [...fioArgs({ name: 'seq-write', rw: 'write', bs: '1M' }, d.devPath), '--output-format=terse']);
  const queues = { disk: queueOf(d.name), map: queueOf((await dm.info({ name: map })).blockDevice), bio: queueOf((await dm.info({ name: bioMap })).blockDevice) };
  const row: DiskThroughput = { serial, driver: d.unit.driver, disk: d.name, map, bioMap, queues, jobs: [] };
  const half = Math.max(1, Math.round(runtimeS / 2));
  const rate = (f: Figures): string => `${(f.bytes / 1e3 / f.ms).toFixed(1)} MB/s`;
  for (const job of FIO_JOBS) {
    const raw = empty();
    const onMap = empty();
    const onBio = empty();
    for (const [fig, dev] of [[raw, d.devPath], [onMap, mapDev], [onBio, bioDev], [onBio, bioDev], [onMap, mapDev], [raw, d.devPath]] as const) {
      add(fig, await fio(job, dev, half));
    }
    row.jobs.push({ job: job.name, bs: job.bs, raw, map: onMap, bio: onBio });
    log(`${d.unit.driver} ${job.name}: raw ${rate(raw)}, map ${rate(onMap)}, bio map ${rate(onBio)}`);
  }
  await dm.remove(bioMap);
  await dm.remove(map);
  result.disks.push(row);
}
console.log(`THROUGHPUT_RESULT ${JSON.stringify(result)}`);
