// Passive overhead: bulk TCP throughput over e1000 in the guest with shadowd
// running vs not running, alternating in one run, and the guest's CPU time per
// MB both ways. Goal (issue 3): throughput ratio >= 0.99.
// usage: node dist/bench/passive-overhead.js [ROUNDS] [MB]
import { runInGuest, describeGuestRun } from '../test/vm/rig/guest.js';
import { GUEST_FWD_ADDR } from '../test/vm/rig/devices.js';
import { serveRandomBlob } from '../test/vm/rig/loopback-server.js';
import { repoPath } from '../test/vm/rig/repo-path.js';

const rounds = Number(process.argv[2] ?? 4);
const mb = Number(process.argv[3] ?? 48);
if (!Number.isInteger(rounds) || rounds < 1 || !Number.isInteger(mb) || mb < 1) {
  console.error('usage: passive-overhead.js [ROUNDS] [MB]  (positive integers, default 4 rounds of 48 MB)');
  process.exit(2);
}
const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

const server = await serveRandomBlob(mb * 1024 * 1024);
try {
  const r = await runInGuest({
    command: ['node', repoPath('dist/test/vm/guest/overhead-guest.js'), `http://${GUEST_FWD_ADDR}:8080/blob`, String(rounds)],
    devices: ['e1000'],
    forwards: [{ guestPort: 8080, hostPort: server.port }],
    timeoutMs: 900_000,
  });
  if (r.exitCode !== 0 || r.kernelProblems.length > 0) {
    console.error(describeGuestRun(r, 'passive overhead'));
    process.exit(1);
  }
  const runs = JSON.parse(r.stdout) as { mode: 'on' | 'off'; bytes: number; seconds: number; cpuSeconds: number }[];
  const of = (mode: 'on' | 'off') => runs.filter((x) => x.mode === mode);
  const mbps = (xs: typeof runs) => median(xs.map((x) => x.bytes / 1e6 / x.seconds));
  const cpuPerMb = (xs: typeof runs) => median(xs.map((x) => (x.cpuSeconds * 1000) / (x.bytes / 1e6)));
  for (const x of runs) console.log(`  shadowd ${x.mode.padEnd(3)}: ${(x.bytes / 1e6 / x.seconds).toFixed(1)} MB/s, ${((x.cpuSeconds * 1000) / (x.bytes / 1e6)).toFixed(1)} ms CPU/MB`);
  const on = mbps(of('on'));
  const off = mbps(of('off'));
  const ratio = on / off;
  console.log(`throughput over e1000 (median of ${rounds}, ${mb} MB each): ${off.toFixed(1)} MB/s without shadowd, ${on.toFixed(1)} MB/s with it`);
  console.log(`throughput ratio with/without: ${ratio.toFixed(3)} (goal >= 0.99): ${ratio >= 0.99 ? 'met' : 'MISSED'}`);
  console.log(`guest CPU time per MB: ${cpuPerMb(of('off')).toFixed(1)} ms without shadowd, ${cpuPerMb(of('on')).toFixed(1)} ms with it`);
} finally {
  await server.close();
}
