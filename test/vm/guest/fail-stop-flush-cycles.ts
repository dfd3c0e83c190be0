// The helper's fail-stop fault switched on and off on a disk under a
// single-path dm-multipath map (queue_if_no_path) with ext4 on the map and
// fsync-heavy writers, as recovery-apps.test.ts runs it; shared by the block
// helper guest test (block-helper.ts, a few cycles) and the reproducer
// (block-flush-clone-repro.ts, many cycles, then the disk deleted).
//
// Why: on 6.1, a request-based dm map's clone that meets a quiesced path
// queue goes into the path's I/O scheduler (__blk_mq_try_issue_directly()
// drops its bypass_insert), and a clone of a flush was allocated without the
// scheduler's private data (no RQF_ELVPRIV): mq-deadline counts it inserted
// but never completed, and WARNs in dd_exit_sched() when the disk is removed
// ("statistics for priority 1: i 4 m 0 d 4 c 3"). A helper that quiesced the
// path's queue to swap its blk_mq_ops leaked such counts. mq-deadline's
// debugfs `queued` (inserted - completed, per priority) shows the leak
// without removing the disk: with no I/O left it must read "0 0 0".
import { mkdirSync, readFileSync } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { parseScheduler } from '../../../daemon/classes/block/block-sysfs.js';
import { Dmsetup, singlePathTable } from '../../../daemon/classes/block/dm-map.js';

export interface FlushCycleDisk {
  name: string;
  devt: string;
  sectors: number;
}

export interface FlushCycleOptions {
  disk: FlushCycleDisk;
  cycles: number;
  /** Sends one helper command, returns its reply line. */
  helper: (command: string) => string | Promise<string>;
  /** A folder for the mount point. */
  workDir: string;
  map?: string;
  writers?: number;
  log?: (line: string) => void;
}

export interface FlushCycleRecord {
  scheduler: string;
  cycles: number;
  /** Cycles whose path was failed by dm-multipath under the fault (and reinstated after). */
  pathFailed: number;
  /** Writes acknowledged with fdatasync (each a flush through the map). */
  syncedWrites: number;
  writerErrors: string[];
  /** mq-deadline's queued counts (rt be idle) on the path disk before the cycles and once idle after them. */
  queuedBefore: string;
  queuedAfter: string;
  /** The first cycle after which the queued counts differed from before (sampled with I/O under way: a hint, not the verdict). */
  firstRiseAtCycle: number;
  failures: string[];
  ms: number;
}

const BLOCK = 4096;

function queuedOf(disk: string): string {
  try {
    return readFileSync(`/sys/kernel/debug/block/${disk}/sched/queued`, 'utf8').trim();
  } catch (e) {
    return `unreadable: ${e instanceof Error ? e.message : String(e)}`;
  }
}

function dmsetupEnv(): Record<string, string> {
  return { DM_DISABLE_UDEV: '1' };
}

/** Small writes, each followed by fdatasync, over a few blocks of one file: a flush through the map every time. */
async function writerLoop(file: string, stop: { now: boolean }, counts: { synced: number; errors: string[] }): Promise<void> {
  let fh: FileHandle | undefined;
  try {
    fh = await open(file, 'w+');
    const buf = Buffer.alloc(BLOCK, 0x5a);
    for (let i = 0; !stop.now; i++) {
      await fh.write(buf, 0, BLOCK, (i % 16) * BLOCK);
      await fh.datasync();
      counts.synced++;
    }
  } catch (e) {
    counts.errors.push(`${file}: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    await fh?.close().catch(() => undefined);
  }
}

async function waitUntil(test: () => boolean | Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const end = performance.now() + timeoutMs;
  while (!(await test())) {
    if (performance.now() > end) return false;
    await sleep(20);
  }
  return true;
}

/**
 * Makes the map and ext4 on it, runs the writers, and @cycles times: waits
 * for flushes to flow through a live path, injects fail-stop, waits for
 * dm-multipath to fail the path (I/O is then held by queue_if_no_path),
 * clears the fault and reinstates the path. Then stops the writers, unmounts
 * and removes the map, and reads mq-deadline's counts once the disk is idle.
 */
export async function failStopFlushCycles(opts: FlushCycleOptions): Promise<FlushCycleRecord> {
  const t0 = performance.now();
  const { disk, helper } = opts;
  const map = opts.map ?? 'shadowmp-flush';
  const log = opts.log ?? ((): void => undefined);
  const dm = new Dmsetup();
  const failures: string[] = [];
  const rec: FlushCycleRecord = {
    scheduler: '',
    cycles: 0,
    pathFailed: 0,
    syncedWrites: 0,
    writerErrors: [],
    queuedBefore: queuedOf(disk.name),
    queuedAfter: '',
    firstRiseAtCycle: -1,
    failures,
    ms: 0,
  };
  rec.scheduler = parseScheduler(readFileSync(`/sys/block/${disk.name}/queue/scheduler`, 'utf8'));
  if (rec.scheduler !== 'mq-deadline') failures.push(`${disk.name}'s scheduler is ${rec.scheduler}, not mq-deadline: nothing to prove`);
  await dm.create(map, singlePathTable(disk.sectors, disk.devt));
  const dev = `/dev/mapper/${map}`;
  const mnt = join(opts.workDir, `mnt-${map}`);
  mkdirSync(mnt, { recursive: true });
  let mounted = false;
  const stop = { now: false };
  const counts = { synced: 0, errors: [] as string[] };
  let writers: Promise<void>[] = [];
  try {
    await execa('mkfs.ext4', ['-q', '-F', dev]);
    await execa('mount', ['-t', 'ext4', dev, mnt]);
    mounted = true;
    writers = Array.from({ length: opts.writers ?? 3 }, (_, i) => writerLoop(join(mnt, `f${i}`), stop, counts));
    const pathState = async (): Promise<string> => (await dm.multipathStatus({ name: map })).status.paths[0]?.state ?? '?';
    for (let c = 0; c < opts.cycles; c++) {
      // Flushes flowing through a live path when the fault goes on.
      const before = counts.synced;
      if (!(await waitUntil(() => counts.synced >= before + 3 || counts.errors.length > 0, 20_000))) {
        failures.push(`cycle ${c}: no write synced in 20 s (path ${await pathState()})`);
        break;
      }
      const inject = await helper(`inject block:${disk.name} fail-stop`);
      if (inject !== `ok injected block:${disk.name} fail-stop`) {
        failures.push(`cycle ${c}: inject answered ${inject}`);
        break;
      }
      const failed = await waitUntil(async () => (await pathState()) === 'F', 2000);
      const clear = await helper(`inject block:${disk.name} clear`);
      if (clear !== `ok cleared block:${disk.name}`) failures.push(`cycle ${c}: clear answered ${clear}`);
      if (failed) {
        rec.pathFailed++;
        const r = await execa('dmsetup', ['message', map, '0', 'reinstate_path', disk.devt], { reject: false, env: dmsetupEnv() });
        if (r.exitCode !== 0) failures.push(`cycle ${c}: reinstate_path: ${r.stderr}`);
      }
      rec.cycles++;
      if (rec.firstRiseAtCycle < 0 && queuedOf(disk.name) !== rec.queuedBefore) rec.firstRiseAtCycle = c;
      if (counts.errors.length > 0) break;
    }
  } finally {
    stop.now = true;
    await Promise.all(writers);
    rec.syncedWrites = counts.synced;
    rec.writerErrors = counts.errors;
    if (mounted) await execa('umount', [mnt], { reject: false });
    await dm.remove(map).catch((e: unknown) => failures.push(`dmsetup remove ${map}: ${String(e)}`));
  }
  if (counts.errors.length > 0) failures.push(`writers failed: ${counts.errors.join('; ')}`);
  // Nothing goes to the disk now: what mq-deadline still counts as queued was counted in and never out.
  await waitUntil(() => queuedOf(disk.name) === '0 0 0', 3000);
  rec.queuedAfter = queuedOf(disk.name);
  rec.ms = Math.round(performance.now() - t0);
  log(`fail-stop flush cycles on ${disk.name}: ${JSON.stringify(rec)}`);
  return rec;
}
