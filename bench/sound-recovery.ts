// The sound class's recovery, measured: in one guest with two of the class's
// drivers (snd-ens1370, snd-intel8x0) and shadowd running as a user runs it,
// each application plays on each card while each fault is injected, ROUNDS
// times; shadowd must detect and recover every one on its own. Prints per
// driver and fault: recoveries and application exits, then the median and
// max of detection (the failure's start to its report), the restart
// (daemon's view, and the module's), the check and the whole recovery, and
// of the time from the fault's injection to the recovery's end. The guest
// half is test/vm/guest/sound-recovery-scenario.ts (the CI test's, which runs
// one round).
// usage: node dist/bench/sound-recovery.js [--rounds N] [--apps a,b] [--faults a,b]
import { parseArgs } from 'node:util';
import { describeGuestRun, runInGuest } from '../test/vm/rig/guest.js';
import { repoPath } from '../test/vm/rig/repo-path.js';
import type { SoundRecoveryRun } from '../test/vm/guest/sound-recovery-scenario.js';

const { values } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    apps: { type: 'string', default: 'aplay-hw,mpg123-hw' },
    faults: { type: 'string', default: 'lost-irq,fail-stop,fail-prepare' },
  },
});
const rounds = Number(values.rounds);
const apps = values.apps.split(',').filter(Boolean);
const faults = values.faults.split(',').filter(Boolean);
if (!Number.isInteger(rounds) || rounds < 1 || rounds > 50 || apps.length === 0 || faults.length === 0) {
  console.error('usage: sound-recovery.js [--rounds N (1-50, default 3)] [--apps aplay-hw,mpg123-hw,espeak,...] [--faults lost-irq,fail-stop,fail-prepare]');
  process.exit(2);
}

console.log(`sound class: ${rounds} round(s) of ${faults.join(', ')} under ${apps.join(', ')} on ens1370 and intel8x0, shadowd detecting and recovering (${new Date().toISOString()})`);
console.log('Under TCG (QEMU software emulation, 2 vCPUs, no KVM) the times are emulation times, and other guests may share this machine: rough figures.');
const asked = Array.from({ length: rounds }, () => faults).flat();
const r = await runInGuest({
  command: [process.execPath, repoPath('dist/test/vm/guest/sound-recovery-scenario.js'), '--apps', apps.join(','), '--faults', asked.join(','), '--seconds', '8'],
  devices: ['es1370', 'ac97'],
  // Each run: about 25 s of playing and polling; the daemon's start besides.
  timeoutMs: (2 * apps.length * asked.length * 40 + 300) * 1000,
});
const line = r.stdout.split('\n').find((l) => l.startsWith('SOUND_RECOVERY '));
if (!line) {
  console.error(describeGuestRun(r, 'sound recovery bench'));
  process.exit(1);
}
const res = JSON.parse(line.slice('SOUND_RECOVERY '.length)) as { readyMs: number; runs: SoundRecoveryRun[]; problems: string[] };

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const fig = (xs: (number | null | undefined)[]): string => {
  const v = xs.filter((x): x is number => typeof x === 'number');
  return v.length === 0 ? '-' : `${Math.round(median(v))} / ${Math.round(Math.max(...v))}`;
};
interface Phases { detect?: number; restart?: number; check?: number; total?: number; module?: { totalMs?: number } }

console.log(`shadowd answered after ${res.readyMs} ms`);
console.log('driver        fault         runs  recovered  apps ok | detect   restart  module   check    total    fault→end  (ms, median / max)');
let clean = res.problems.length === 0;
for (const driver of [...new Set(res.runs.map((x) => x.driver))]) {
  for (const fault of faults) {
    const runs = res.runs.filter((x) => x.driver === driver && x.fault === fault);
    const first = runs.map((x) => x.recoveries[0]).filter((x) => x !== undefined);
    const phases = first.map((x) => (x as { phases?: Phases }).phases ?? {});
    const recovered = runs.filter((x) => x.recoveries.length > 0 && x.recoveries.every((y) => y.result === 'recovered')).length;
    const appsOk = runs.filter((x) => x.exitCode === 0).length;
    if (recovered !== runs.length || appsOk !== runs.length) clean = false;
    console.log(
      `${driver.padEnd(13)} ${fault.padEnd(13)} ${String(runs.length).padStart(4)}  ${String(recovered).padStart(9)}  ${String(appsOk).padStart(7)} | ` +
        [fig(phases.map((p) => p.detect)), fig(phases.map((p) => p.restart)), fig(phases.map((p) => p.module?.totalMs)), fig(phases.map((p) => p.check)), fig(phases.map((p) => p.total)), fig(runs.map((x) => x.recoveredAfterMs))]
          .map((c) => c.padEnd(8))
          .join(' '),
    );
  }
}
for (const p of res.problems) console.log(`problem: ${p}`);
console.log(`guest: ${(r.totalMs / 1000).toFixed(0)} s, exit ${String(r.exitCode)}${r.timedOut ? ' (timed out)' : ''}, kernel problems ${r.kernelProblems.length}; verdict: ${clean ? 'every fault recovered, every application exited 0' : 'NOT CLEAN'}`);
process.exit(clean && r.exitCode === 0 && !r.timedOut ? 0 : 1);
