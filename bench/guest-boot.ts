// Guest rig speed: boots the guest N times running `true` and prints the median
// time from QEMU start to the command starting, and the whole cycle.
// usage: node dist/bench/guest-boot.js [RUNS] [--init busybox|systemd]
import { parseArgs } from 'node:util';
import { runInGuest } from '../test/vm/rig/guest.js';

const { values, positionals } = parseArgs({ options: { init: { type: 'string', default: 'busybox' } }, allowPositionals: true });
const runs = Number(positionals[0] ?? 7);
const init = values.init;
if (!Number.isInteger(runs) || runs < 1 || positionals.length > 1 || (init !== 'busybox' && init !== 'systemd')) {
  console.error('usage: guest-boot.js [RUNS] [--init busybox|systemd]  (RUNS: a positive integer, default 7)');
  process.exit(2);
}
/** The busybox init's goal; systemd as PID 1 is measured, not held to it. */
const GOAL = init === 'busybox' ? '; goal <= 5.00 s' : '';

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

const boot: number[] = [];
const total: number[] = [];
for (let i = 0; i < runs; i++) {
  const r = await runInGuest({ command: ['true'], timeoutMs: 90_000, init });
  if (r.exitCode !== 0 || r.bootToCommandMs === null) {
    console.error(`run ${i + 1}: the guest failed (exit ${String(r.exitCode)}):\n${r.console}`);
    process.exit(1);
  }
  boot.push(r.bootToCommandMs);
  total.push(r.totalMs);
  console.log(`run ${i + 1}/${runs}: boot to command ${r.bootToCommandMs.toFixed(0)} ms, whole cycle ${r.totalMs.toFixed(0)} ms`);
}
const s = (ms: number): string => `${(ms / 1000).toFixed(2)} s`;
console.log(`guest boot to command (${init} init): median ${s(median(boot))} (min ${s(Math.min(...boot))}, max ${s(Math.max(...boot))}) over ${runs} runs${GOAL}`);
console.log(`guest whole cycle (QEMU start to exit): median ${s(median(total))}`);
