// Guest half of bench/block-restarts.ts: does the disk class hold up over
// many restarts in a row, not just one? In one guest, shadowd runs with
// CreateMap=yes on each scratch disk (ata_piix, ahci, virtio_blk); ext4 is
// made on each map; then, one driver at a time, the three writers of
// block-writer.ts run on that disk's filesystem while `shadowctl recover`
// restarts its controller's driver COUNT times in a row (the disk's name
// changes with each restart: it is followed by its map in shadowctl status).
// Afterwards every acknowledged write is read back (block-writer-run.ts),
// e2fsck -fn runs on the map, and the kernel log since the first restart is
// searched for an error above the map. Before shadowd starts, a bare unbind +
// bind of each controller (nothing on the disk, nothing restored) gives the
// figure the restarts can be set beside.
//   node block-restarts.js [--count N] [SERIAL ...]
// Progress goes to the console (the bench shows it live); prints
// `RESTARTS_DRIVER <json>` (DriverRestarts) after each driver and
// `RESTARTS_RESULT <json>` (RestartsResult) at the end.
import { appendFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { execa } from 'execa';
import { Dmsetup } from '../../../daemon/classes/block/dm-map.js';
import type { RecoveryRecord } from '../../../daemon/core/recovery-history.js';
import { kmsgMark, kmsgSince, unbindBindFault, waitForDisk, type DiskRef } from './disk-apps/disks.js';
import { controlFor, mapOf, rowOfMap, shadowctlFor, type Ctl } from './block-shadowctl.js';
import { startWriters, stopWriters, upperErrors, verifyData, warmUp } from './block-writer-run.js';
import { loadHelper } from './nic-setup.js';
import { startShadowd } from './shadowd-process.js';

export const RESTARTS_PROGRESS = '[restarts';

export interface Restart {
  n: number;
  /** The disk's name when the restart was asked for. */
  disk: string;
  /** Its name afterwards (its map's disk in shadowctl status), or null if none. */
  after: string | null;
  id: string | null;
  result: string;
  error: string | null;
  phases: RecoveryRecord['phases'] | null;
  /** shadowctl recover's own wall time. */
  wallMs: number;
}

export interface DriverRestarts {
  serial: string;
  driver: string;
  map: string;
  dmDevice: string;
  /** Bare unbind + bind of the controller until the disk is back, before shadowd ran, ms. */
  bare: number[];
  restarts: Restart[];
  writers: Record<string, { acked: number; longestStallMs: number; error: string | null; hung: boolean }>;
  missing: Record<string, number>;
  integrity: string;
  fsck: { exitCode: number; output: string };
  /** Kernel log lines naming an error above the map (on dm-N or in ext4). */
  upperErrors: string[];
  /** Kernel log lines with an I/O error below the map (the old disk during a restart: expected), counted. */
  lowerErrorLines: number;
  problems: string[];
}

/** The last line; each driver's DriverRestarts came before it on a `RESTARTS_DRIVER` line. */
export interface RestartsResult {
  count: number;
  daemonExit: number | string | null;
}

const { values, positionals } = parseArgs({ options: { count: { type: 'string', default: '50' } }, allowPositionals: true });
const count = Number(values.count);
const runDir = process.env['SHADOWD_RUNDIR'];
if (!Number.isInteger(count) || count < 1 || !runDir) {
  console.error('usage: block-restarts.js [--count N (>= 1)] [SERIAL ...] (with $SHADOWD_RUNDIR set)');
  process.exit(2);
}
const serials = positionals.length > 0 ? positionals : ['shadowd-disk0', 'shadowd-disk1', 'shadowd-disk2'];
const BARE_ROUNDS = 3;
/** How long one recovery may take before the bench stops waiting for it (the CLI waits 120 s). */
const RECOVERY_WAIT_MS = 300_000;

const t0 = Date.now();
/** Progress, to stderr and the console (the bench host reads the console live). */
const note = (text: string): void => {
  const line = `${RESTARTS_PROGRESS} ${((Date.now() - t0) / 1000).toFixed(0).padStart(5)} s] ${text}`;
  console.error(line);
  try {
    appendFileSync('/dev/console', `${line}\n`);
  } catch {
    // no console: stderr has it
  }
};
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Bare unbind + bind of the disk's controller, no gap: ms until the disk is back. Returns the disk as it came back. */
async function bareRebind(disk: DiskRef): Promise<{ ms: number; disk: DiskRef }> {
  const t = performance.now();
  await unbindBindFault(0)(disk);
  const back = await waitForDisk(disk.serial, 60_000, disk);
  return { ms: performance.now() - t, disk: back };
}

/** The recovery `id` of `name` from shadowctl history once it has ended, or null after RECOVERY_WAIT_MS. */
async function ended(ctl: Ctl, name: string, id: string | null, since: number): Promise<RecoveryRecord | null> {
  const until = Date.now() + RECOVERY_WAIT_MS;
  for (;;) {
    const h = await ctl('history', `block:${name}`, '--json', '--limit', '5');
    const recs = h.exitCode === 0 ? (JSON.parse(h.stdout) as { recoveries: RecoveryRecord[] }).recoveries : [];
    const rec = recs.find((x) => (id !== null ? x.id === id : x.startedAt >= since));
    if (rec && rec.result !== 'in-progress') return rec;
    if (Date.now() > until) return null;
    await sleep(1000);
  }
}

/** Waits until no recovery of any device is in progress; false after RECOVERY_WAIT_MS. */
async function quiet(ctl: Ctl): Promise<boolean> {
  const until = Date.now() + RECOVERY_WAIT_MS;
  for (;;) {
    await sleep(3000);
    const h = await ctl('history', '--json', '--limit', '20');
    const recs = h.exitCode === 0 ? (JSON.parse(h.stdout) as { recoveries: RecoveryRecord[] }).recoveries : [];
    if (h.exitCode === 0 && recs.every((x) => x.result !== 'in-progress')) return true;
    if (Date.now() > until) return false;
  }
}

for (const m of ['ata_piix', 'ahci', 'virtio_blk', 'sd_mod', 'ext4', 'dm-multipath']) await execa('modprobe', [m]);
await loadHelper(false);
const dm = new Dmsetup();

// The bare figure first, while nothing uses the disks.
const disks: DiskRef[] = [];
const bare = new Map<string, number[]>();
for (const serial of serials) {
  let d = await waitForDisk(serial, 30_000);
  const times: number[] = [];
  for (let i = 0; i < BARE_ROUNDS; i++) {
    const r = await bareRebind(d);
    times.push(r.ms);
    d = r.disk;
    // The new disk's partition scan must end before the next unbind takes the disk away under it.
    await sleep(1500);
  }
  note(`${d.unit.driver}: bare unbind + bind until the disk is back: ${times.map((x) => x.toFixed(0)).join(', ')} ms`);
  bare.set(serial, times);
  disks.push(d);
}

// The state database must not live on the 9p run folder (SQLite's locking fails there).
const work = mkdtempSync('/tmp/block-restarts-');
const config = join(work, 'shadowd.conf');
writeFileSync(config, disks.map((d) => `[Device block:${d.name}]\nCreateMap=yes\n`).join('\n'));
const daemonLogFile = join(runDir, 'shadowd.log');
let daemonTail = '';
const started = await startShadowd(work, (t) => {
  appendFileSync(daemonLogFile, t);
  daemonTail = (daemonTail + t).slice(-20_000);
}, ['--config', config, '--log-level', 'debug'], 600_000);
note(`shadowd ready in ${started.readyMs} ms`);
// shadowctl itself asks for each recovery; the polls around it go on the socket from here (a node start each is seconds under TCG).
const ctl = shadowctlFor(work);
const poll = controlFor(work);

const maps = new Map<string, string>();
for (const d of disks) {
  const map = await mapOf(poll, d.name, 60_000, () => daemonTail.slice(-3000));
  const mnt = `/run/block-restarts/${map}`;
  mkdirSync(mnt, { recursive: true });
  await execa('mkfs.ext4', ['-q', '-F', `/dev/mapper/${map}`]);
  await execa('mount', [`/dev/mapper/${map}`, mnt]);
  maps.set(d.serial, map);
}

const out: RestartsResult = { count, daemonExit: null };
for (const d of disks) {
  const map = maps.get(d.serial)!;
  const mnt = `/run/block-restarts/${map}`;
  const dmDevice = (await dm.info({ name: map })).blockDevice;
  const row: DriverRestarts = {
    serial: d.serial,
    driver: d.unit.driver,
    map,
    dmDevice,
    bare: bare.get(d.serial) ?? [],
    restarts: [],
    writers: {},
    missing: {},
    integrity: '',
    fsck: { exitCode: -1, output: '' },
    upperErrors: [],
    lowerErrorLines: 0,
    problems: [],
  };
  let mark = kmsgMark();
  const kernelLines: string[] = [];
  /** The kernel log since the last call, kept as it goes (150 restarts may outrun the ring buffer). */
  const takeKmsg = (): void => {
    const recs = kmsgSince(mark);
    if (recs.length > 0) mark = recs.at(-1)!.seq;
    kernelLines.push(...recs.map((r) => `[${(r.usec / 1e6).toFixed(3)}] ${r.text}`));
  };
  const writers = startWriters(mnt, `restarts-${map}`);
  try {
    await warmUp(writers, 5);
    for (let n = 1; n <= count; n++) {
      const now = await rowOfMap(poll, map);
      if (!now) {
        row.problems.push(`before restart ${n}: no disk is under map ${map} in shadowctl status; stopped`);
        break;
      }
      const since = Date.now();
      const t = performance.now();
      const r = await ctl('recover', `block:${now.name}`, '--json');
      const wallMs = performance.now() - t;
      let id: string | null = null;
      try {
        id = (JSON.parse(r.stdout) as RecoveryRecord).id;
      } catch {
        // the CLI timed out or was refused: the history says what happened
      }
      const rec = await ended(poll, now.name, id, since - 1000);
      const after = await rowOfMap(poll, map);
      const restart: Restart = {
        n,
        disk: now.name,
        after: after?.name ?? null,
        id: rec?.id ?? id,
        result: rec?.result ?? `not ended after ${RECOVERY_WAIT_MS / 1000} s (shadowctl: ${`${r.stdout}${r.stderr}`.trim().slice(0, 300)})`,
        error: rec?.error ?? null,
        phases: rec?.phases ?? null,
        wallMs,
      };
      row.restarts.push(restart);
      takeKmsg();
      note(`${row.driver} ${n}/${count}: ${restart.disk} -> ${restart.after ?? '?'} ${restart.result} in ${restart.phases?.total ?? '?'} ms${restart.error ? ` (${restart.error})` : ''}`);
      if (!rec) {
        row.problems.push(`restart ${n}: ${restart.result}`);
        break;
      }
      // A recovery that failed in its check may be followed by one shadowd starts itself: the next request waits for it.
      if (rec.result !== 'recovered' && !(await quiet(poll))) {
        row.problems.push(`after restart ${n}: a recovery shadowd started itself was still running after ${RECOVERY_WAIT_MS / 1000} s`);
        break;
      }
    }
    await sleep(2000);
  } finally {
    const summaries = await stopWriters(writers, 90_000);
    for (const [mode, s] of Object.entries(summaries)) {
      row.writers[mode] = { acked: s.acked, longestStallMs: s.longestStallMs, error: s.error?.message ?? null, hung: s.hung };
      if (s.hung) row.problems.push(`writer ${mode} still blocked 90 s after the last restart`);
    }
    const acks = Object.fromEntries(Object.entries(summaries).map(([k, v]) => [k, v.acks]));
    try {
      const v = verifyData(mnt, acks);
      row.missing = Object.fromEntries(Object.entries(v.missing).map(([k, ids]) => [k, ids.length]));
      row.integrity = v.integrity;
    } catch (err) {
      row.problems.push(`checking the data: ${(err as Error).message}`);
    }
  }
  const um = await execa('umount', [mnt], { reject: false });
  if (um.exitCode !== 0) row.problems.push(`umount: ${um.stderr}`);
  const fsck = await execa('e2fsck', ['-fn', `/dev/mapper/${map}`], { reject: false, all: true });
  row.fsck = { exitCode: fsck.exitCode ?? -1, output: (fsck.all ?? '').slice(-2000) };
  takeKmsg();
  row.upperErrors = upperErrors(kernelLines, dmDevice).slice(0, 40);
  row.lowerErrorLines = kernelLines.filter((l) => /I\/O error/.test(l) && !new RegExp(`\\b${dmDevice}\\b`).test(l)).length;
  const ok = row.restarts.filter((x) => x.result === 'recovered').length;
  note(`${row.driver}: ${ok}/${row.restarts.length} recovered; missing ${JSON.stringify(row.missing)}; fsck ${row.fsck.exitCode}; errors above the map ${row.upperErrors.length}`);
  // Each driver's figures as soon as they are known: a run cut short keeps them.
  console.log(`RESTARTS_DRIVER ${JSON.stringify(row)}`);
}

started.daemon.kill('SIGTERM');
const exit = await started.daemon;
out.daemonExit = exit.exitCode ?? exit.signal ?? null;
console.log(`RESTARTS_RESULT ${JSON.stringify(out)}`);
