// Many restarts in a row under running applications: the disk class must not
// only survive one restart of a controller's driver but every one of a long
// series, losing nothing. In one guest, with shadowd running (CreateMap=yes)
// and three writers (SQLite, append + fsync, O_DIRECT) on ext4 on each disk's
// map, `shadowctl recover` restarts each driver (ata_piix, ahci, virtio_blk)
// COUNT times in a row. Prints per driver: recoveries ok and failed, median
// and max of each phase from shadowctl history, the writers' longest stall,
// a bare unbind + bind of the same controller (nothing on the disk, nothing
// restored) beside them, and whether every acknowledged write is there,
// e2fsck -fn is clean and the kernel logged no error above the map.
// The guest half is test/vm/guest/block-restarts.ts.
// usage: node dist/bench/block-restarts.js [--count N] [ata_piix|ahci|virtio_blk ...]
import { parseArgs } from 'node:util';
import { describeGuestRun, runInGuest } from '../test/vm/rig/guest.js';
import { repoPath } from '../test/vm/rig/repo-path.js';
import { DISK_DRIVER_CHOICES, DISK_PRESETS, diskDriversFrom } from './disk-drivers.js';
import type { DriverRestarts, RestartsResult } from '../test/vm/guest/block-restarts.js';

/** The guest's progress lines on the console (block-restarts.ts's RESTARTS_PROGRESS; importing it would run the guest script). */
const PROGRESS = '[restarts';


const { values, positionals } = parseArgs({ options: { count: { type: 'string', default: '50' } }, allowPositionals: true });
const count = Number(values.count);
const { unknown, serials } = diskDriversFrom(positionals);
if (!Number.isInteger(count) || count < 1 || unknown.length > 0) {
  console.error(`usage: block-restarts.js [--count N (>= 1, default 50)] [${DISK_DRIVER_CHOICES} ...]`);
  process.exit(2);
}

console.log(`disk class: ${count} consecutive shadowctl recover per driver, three writers on ext4 on the map, one guest (${new Date().toISOString()})`);
console.log('Under TCG (QEMU software emulation, 2 vCPUs, no KVM) the times are emulation times, and other guests may share this machine: rough figures.');
// Each restart under TCG: the recovery itself plus three shadowctl runs (a node start each); 60 s is ample.
const timeoutMs = (serials.length * count * 60 + 600) * 1000;
let partial = '';
const r = await runInGuest({
  command: ['node', repoPath('dist/test/vm/guest/block-restarts.js'), '--count', String(count), ...serials],
  devices: DISK_PRESETS,
  diskMiB: 128,
  memoryMiB: 1536,
  timeoutMs,
  onConsole: (text) => {
    // Chunks end anywhere: only whole lines are looked at.
    const lines = (partial + text).split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) if (l.startsWith(PROGRESS)) console.log(`  ${l.trim()}`);
  },
});
const lines = r.stdout.split('\n');
const driverRuns = lines.filter((l) => l.startsWith('RESTARTS_DRIVER ')).map((l) => JSON.parse(l.slice('RESTARTS_DRIVER '.length)) as DriverRestarts);
const last = lines.find((l) => l.startsWith('RESTARTS_RESULT '));
const res: RestartsResult | null = last ? (JSON.parse(last.slice('RESTARTS_RESULT '.length)) as RestartsResult) : null;
if (driverRuns.length === 0) {
  console.error(describeGuestRun(r, 'block restarts'));
  process.exit(1);
}

const sorted = (xs: number[]): number[] => [...xs].sort((a, b) => a - b);
const median = (xs: number[]): number => {
  const s = sorted(xs);
  const m = Math.floor(s.length / 2);
  return s.length === 0 ? NaN : s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fig = (xs: (number | undefined)[]): string => {
  const v = xs.filter((x): x is number => typeof x === 'number');
  return v.length === 0 ? '-' : `median ${Math.round(median(v))} ms, max ${Math.round(Math.max(...v))} ms`;
};

function report(d: DriverRestarts): boolean {
  const ok = d.restarts.filter((x) => x.result === 'recovered');
  const failed = d.restarts.filter((x) => x.result !== 'recovered');
  const p = ok.map((x) => x.phases ?? {});
  const stall = Math.max(...Object.values(d.writers).map((w) => w.longestStallMs));
  const missing = Object.values(d.missing).reduce((a, b) => a + b, 0);
  const writerErrors = Object.entries(d.writers).filter(([, w]) => w.error !== null || w.hung);
  const clean =
    failed.length === 0 &&
    d.restarts.length === count &&
    missing === 0 &&
    Object.keys(d.missing).length === 3 &&
    d.integrity === 'ok' &&
    d.fsck.exitCode === 0 &&
    d.upperErrors.length === 0 &&
    writerErrors.length === 0 &&
    d.problems.length === 0;
  console.log(`${d.driver} (map ${d.map}, ${d.dmDevice}):`);
  console.log(`  recoveries: ${ok.length} ok, ${failed.length} failed, of ${count} asked`);
  for (const f of failed) console.log(`    #${f.n} ${f.disk}: ${f.result}${f.error ? `: ${f.error}` : ''}`);
  console.log(`  recovery total ${fig(p.map((x) => x.total))}`);
  console.log(`    restart (helper) ${fig(p.map((x) => x.restart))}: stop ${fig(p.map((x) => x.module?.stopMs))}, release ${fig(p.map((x) => x.module?.releaseMs))}, probe ${fig(p.map((x) => x.module?.probeMs))}, open ${fig(p.map((x) => x.module?.openMs))}`);
  console.log(`    check (find again, settings, map) ${fig(p.map((x) => x.check))}`);
  console.log(`    shadowctl recover wall time ${fig(ok.map((x) => x.wallMs))}`);
  console.log(`  writers' longest stall: ${stall} ms (${Object.entries(d.writers).map(([k, w]) => `${k} ${w.longestStallMs} ms, ${w.acked} acked`).join('; ')})`);
  console.log(`  bare unbind + bind until the disk is back (no map, no writers, nothing restored): ${fig(d.bare)}`);
  console.log(`  acknowledged writes missing: ${missing} ${JSON.stringify(d.missing)}; SQLite integrity ${d.integrity || '?'}; e2fsck -fn exit ${d.fsck.exitCode}`);
  console.log(`  kernel errors above the map: ${d.upperErrors.length}; I/O error lines below it (the old disk during restarts): ${d.lowerErrorLines}`);
  for (const l of d.upperErrors.slice(0, 10)) console.log(`    ${l}`);
  for (const w of writerErrors) console.log(`  writer ${w[0]}: ${w[1].hung ? 'hung' : w[1].error}`);
  for (const pr of d.problems) console.log(`  problem: ${pr}`);
  if (d.fsck.exitCode !== 0) console.log(`  e2fsck: ${d.fsck.output}`);
  console.log(`  verdict: ${clean ? 'clean' : 'NOT CLEAN'}`);
  return clean;
}

let allClean = true;
for (const d of driverRuns) allClean = report(d) && allClean;
const guestOk = r.exitCode === 0 && !r.timedOut && r.kernelProblems.length === 0 && res !== null;
console.log(`guest: ${(r.totalMs / 1000).toFixed(0)} s, exit ${String(r.exitCode)}${r.timedOut ? ' (timed out)' : ''}, kernel problems ${r.kernelProblems.length}, shadowd exit ${String(res?.daemonExit)}`);
if (!guestOk) console.error(describeGuestRun(r, 'block restarts'));
process.exit(allClean && guestOk && driverRuns.length === serials.length ? 0 : 1);
