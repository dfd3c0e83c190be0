// Recovery timeline per driver: how long shadowd takes from detecting a
// transmit hang to the first packet through, beside, in the same guest run,
// a bare unbind + bind of the same device (which restores nothing and saves
// no application) and the driver's own TX-timeout reset (for a hang a reset
// cures). The guest half is test/vm/guest/recovery-timeline.ts.
// Goal (issue 4): detection-to-service <= 1.2 x the bare rebind time.
// usage: node dist/bench/recovery-timeline.js [e1000|pcnet32|e100 ...]
import { describeGuestRun, runInGuest } from '../test/vm/rig/guest.js';
import type { NicPreset } from '../test/vm/rig/devices.js';
import { repoPath } from '../test/vm/rig/repo-path.js';

const PRESETS: Record<string, NicPreset> = { e1000: 'e1000', pcnet32: 'pcnet', e100: 'i82559er' };
const drivers = process.argv.length > 2 ? process.argv.slice(2) : Object.keys(PRESETS);
const unknown = drivers.filter((d) => !(d in PRESETS));
if (unknown.length > 0) {
  console.error(`usage: recovery-timeline.js [${Object.keys(PRESETS).join('|')} ...]; unknown: ${unknown.join(', ')}`);
  process.exit(2);
}

interface Recovery {
  id: string;
  phases: { detect?: number; stage?: number; restart?: number; check?: number; module?: Record<string, number> };
}
interface Timeline {
  bare: { ms: number }[];
  reset: { detectionMs: number; serviceMs: number }[];
  shadowd: { detectionMs: number; serviceMs: number; recovery: Recovery }[];
}

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};
const ms = (x: number | undefined): string => (x === undefined ? '?' : `${Math.round(x)} ms`);
const list = (xs: number[]): string => `median ${ms(median(xs))} (${xs.map((x) => Math.round(x)).join(', ')})`;
let missed = 0;
for (const driver of drivers) {
  const r = await runInGuest({
    command: ['node', repoPath('dist/test/vm/guest/recovery-timeline.js'), driver],
    devices: [PRESETS[driver]!],
    timeoutMs: 600_000,
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith('TIMELINE_RESULT '));
  if (r.exitCode !== 0 || r.kernelProblems.length > 0 || !line) {
    console.error(describeGuestRun(r, `${driver} recovery timeline`));
    process.exit(1);
  }
  const t = JSON.parse(line.slice('TIMELINE_RESULT '.length)) as Timeline;
  const service = median(t.shadowd.map((s) => s.serviceMs));
  const bare = median(t.bare.map((b) => b.ms));
  const ratio = service / bare;
  if (ratio > 1.2) missed++;
  console.log(`${driver}: ${t.shadowd.length} rounds of each, in one guest`);
  console.log(`  shadowd:      detection ${list(t.shadowd.map((s) => s.detectionMs))} after the stall began`);
  console.log(`                detection to first packet through ${list(t.shadowd.map((s) => s.serviceMs))}`);
  for (const { recovery: rec } of t.shadowd) {
    const m = rec.phases.module ?? {};
    console.log(
      `                ${rec.id}: ${rec.phases.stage === undefined ? '' : `stage ${ms(rec.phases.stage)}, `}restart ${ms(rec.phases.restart)} ` +
        `(stop ${ms(m['stopMs'])}, release ${ms(m['releaseMs'])}, probe ${ms(m['probeMs'])}, replay ${ms(m['replayMs'])}, open ${ms(m['openMs'])}), check ${ms(rec.phases.check)}`,
    );
  }
  console.log(`  bare rebind:  unbind + bind + up + address to first packet through ${list(t.bare.map((b) => b.ms))}; restores nothing else`);
  console.log(`  driver reset: kernel watchdog ${list(t.reset.map((x) => x.detectionMs))} after the fault; reset to first packet through ${list(t.reset.map((x) => x.serviceMs))}`);
  console.log(`  ratio detection-to-service / bare rebind (medians): ${ratio.toFixed(2)} (goal <= 1.2): ${ratio <= 1.2 ? 'met' : 'MISSED'}`);
}
process.exit(missed > 0 ? 1 : 0);
