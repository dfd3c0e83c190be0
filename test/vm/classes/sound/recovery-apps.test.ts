// The sound class end to end with shadowd, in a real 6.1 guest with two of
// the class's drivers (snd-ens1370, snd-intel8x0), in one boot: shadowd runs
// as a user would run it (taps, shadow, detectors, the helper); a player and
// the speech synthesizer each play on each card while a fault is injected
// (lost-irq, fail-stop, fail-prepare). shadowd must detect each failure on
// its own (a stalled stream; a prepare the helper holds) and
// recover the card, and every application must exit 0. A manual
// `shadowctl recover` under a playing player, and status/show/history of the
// cards. The guest side is guest/sound-recovery-scenario.ts. The control
// (the same applications without shadowd, which fail) is apps-control.test.ts;
// the audio itself is proven there and by the helper's tests.
import { existsSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertGuestOk, runInGuest } from '../../rig/guest.js';
import { buildHelperModule } from '../../rig/kmod-build.js';
import { repoPath } from '../../rig/repo-path.js';
import type { SoundRecoveryRun } from '../../guest/sound-recovery-scenario.js';

const SCRIPT = repoPath('dist/test/vm/guest/sound-recovery-scenario.js');
const SOURCE = repoPath('test/vm/guest/sound-recovery-scenario.ts');
/**
 * mpg123 is left out of CI for now: in 1 of 6 of its runs in a bench round
 * (lost-irq on intel8x0; before, fail-prepare on ens1370) it died with
 * "Cannot flush to my output anymore" although its card was recovered. That
 * is open (issue 11); `npm run bench:sound-recovery` runs it and says so.
 */
const APPS = ['aplay-hw', 'espeak'];
const FAULTS = ['lost-irq', 'fail-stop', 'fail-prepare'];

interface Result {
  readyMs: number;
  cards: { name: string; driver: string }[];
  runs: SoundRecoveryRun[];
  manual: { recover?: { exitCode: number; output: string }; player?: { exitCode: number; stderr: string } };
  status: { devices?: { cls: string; name: string }[] } | string;
  history: unknown;
  problems: string[];
}

describe('sound applications with shadowd: a driver failure is detected, the card recovered, the applications go on', () => {
  beforeAll(async () => {
    if (!existsSync(SCRIPT) || statSync(SCRIPT).mtimeMs < statSync(SOURCE).mtimeMs) {
      throw new Error(`${SCRIPT} is missing or older than ${SOURCE}: run \`npx tsc -p tsconfig.json\` first`);
    }
    await buildHelperModule((line) => console.log(`kmod: ${line}`));
  });

  it('recovers ens1370 and intel8x0 under aplay and espeak-ng from every fault', async () => {
    const r = await runInGuest({
      command: [process.execPath, SCRIPT, '--apps', APPS.join(','), '--faults', FAULTS.join(','), '--seconds', '8'],
      devices: ['es1370', 'ac97'],
      timeoutMs: 900_000,
    });
    const line = r.stdout.split('\n').find((l) => l.startsWith('SOUND_RECOVERY '));
    expect(line, `no SOUND_RECOVERY line in:\n${r.stdout}\n${r.stderr}`).toBeDefined();
    const res = JSON.parse(line!.slice('SOUND_RECOVERY '.length)) as Result;
    for (const run of res.runs) {
      const rec = run.recoveries.map((x) => `${x.result} (${x.trigger ?? '?'})`).join(', ');
      console.log(`${run.driver} ${run.app} ${run.fault}: exit ${run.exitCode}, recoveries ${rec || 'none'}, recovered ${run.recoveredAfterMs ?? '-'} ms after the fault`);
    }
    expect(res.problems).toEqual([]);
    assertGuestOk(r, 'sound recovery scenario');
    expect(res.cards.map((c) => c.driver).sort()).toEqual(['snd_ens1370', 'snd_intel8x0']);
    expect(res.runs).toHaveLength(res.cards.length * APPS.length * FAULTS.length);
    for (const run of res.runs) {
      expect(run.exitCode, `${run.driver} ${run.app} ${run.fault}: ${run.stderr}`).toBe(0);
      expect(run.recoveries.length, `${run.driver} ${run.app} ${run.fault}`).toBeGreaterThan(0);
      for (const x of run.recoveries) expect(x.result, `${run.driver} ${run.app} ${run.fault} ${x.id}`).toBe('recovered');
      // Detected by the sound class's own detectors, not by hand.
      expect(run.recoveries[0]!.trigger, `${run.driver} ${run.app} ${run.fault}`).toBe(run.fault === 'fail-prepare' ? 'prepare-failed' : 'stream-stall');
    }
    expect(res.manual.recover?.exitCode).toBe(0);
    expect(res.manual.recover?.output).toMatch(/^sound:card0: recovered in \d+ ms/);
    expect(res.manual.player?.exitCode).toBe(0);
  }, 960_000);
});
