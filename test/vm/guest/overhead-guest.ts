// The guest half of bench/passive-overhead.js: bulk TCP downloads over e1000
// with shadowd running and not running, alternating, each with the guest's
// CPU time spent. Prints one JSON object.
// usage: node dist/test/vm/guest/overhead-guest.js URL ROUNDS
import { mkdtempSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { startShadowd } from './shadowd-process.js';

const [url, roundsArg] = process.argv.slice(2);
const rounds = Number(roundsArg);
if (!url || !(rounds > 0)) throw new Error('usage: overhead-guest.js URL ROUNDS');

/** Busy CPU time of the whole guest (all CPUs, kernel included), in clock ticks. */
function busyTicks(): number {
  const cpu = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = cpu as [number, number, number, number, number, number, number, number];
  return user + nice + system + irq + softirq + steal;
}
const TICKS_PER_S = 100; // USER_HZ on x86 Linux
const SETTLE_MS = 3000;

await execa('modprobe', ['e1000']);
await execa('ip', ['link', 'set', 'eth0', 'up']);
await execa('ip', ['addr', 'add', '10.0.2.15/24', 'dev', 'eth0']);
while (readFileSync('/sys/class/net/eth0/carrier', 'utf8').trim() !== '1') await new Promise((r) => setTimeout(r, 100));

const work = mkdtempSync('/tmp/shadowd-overhead-');
const download = async (): Promise<[number, number]> => {
  const { stdout } = await execa('curl', ['-sS', '-o', '/dev/null', '-w', '%{size_download} %{time_total}', url]);
  return stdout.split(' ').map(Number) as [number, number];
};
// The first transfer warms caches on both sides; it counts for neither.
await download();

const results: { mode: 'on' | 'off'; bytes: number; seconds: number; cpuSeconds: number }[] = [];
for (let round = 0; round < rounds; round++) {
  // Alternate which goes first so slow drift of the host favours neither.
  for (const mode of round % 2 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
    const daemon = mode === 'on' ? (await startShadowd(work, () => undefined)).daemon : null;
    // Both ways measured at rest: after shadowd's start-up (or the same pause without it).
    await new Promise((r) => setTimeout(r, SETTLE_MS));
    const before = busyTicks();
    const [bytes, seconds] = await download();
    const after = busyTicks();
    results.push({ mode, bytes, seconds, cpuSeconds: (after - before) / TICKS_PER_S });
    if (daemon) {
      daemon.kill('SIGTERM');
      await daemon;
    }
  }
}
console.log(JSON.stringify(results));
