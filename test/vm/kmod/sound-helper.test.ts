// The helper module's sound class in a real 6.1 guest with two of the sound
// class's drivers (snd-ens1370 on QEMU's ES1370, snd-intel8x0 on its AC97),
// in one boot: on each card, a player (aplay on hw:N,0) is playing when a
// fault is injected (lost-irq, fail-stop), or starts after it
// (fail-prepare, and fail-stop on an idle card: fail-stop@idle); fail-stop
// freezes the stream, the first failed prepare or hw_params of a player
// started after the fault is held by the guard and reported in the kernel
// log; a start the driver fails (fail-stop@start: the card fails between a
// piped aplay's prepare and its start) is taken as done by the guard, named
// in the kernel log, and its stream stays still until the restart;
// the helper restarts the card's driver in place (its stop passing the
// held caller by: no stream to hold, well within the hold) and the player
// goes on (or begins) to the end and exits 0; the card keeps its number.
// Bad names, unknown faults and a reload get clear errors, and the kernel
// log has no WARNING, BUG or Oops. The guest side is guest/sound-helper.ts,
// run compiled from dist/test/vm/guest/sound-helper.js. The audio itself is
// checked by the sound class's application tests.
import { existsSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertGuestOk, runInGuest } from '../rig/guest.js';
import { buildHelperModule } from '../rig/kmod-build.js';
import { repoPath } from '../rig/repo-path.js';

const SCRIPT = repoPath('dist/test/vm/guest/sound-helper.js');
const SOURCE = repoPath('test/vm/guest/sound-helper.ts');

interface Run {
  card: string;
  driver: string;
  app: string;
  fault: string;
  stalled: boolean;
  restart: string;
  restartMs: number;
  exitCode: number | undefined;
  stderr: string;
}
interface SoundResult {
  version: string;
  cards: { name: string; number: number; driver: string }[];
  runs: Run[];
  bad: Record<string, string>;
  problems: string[];
}

describe('shadow_helper sound class', () => {
  beforeAll(async () => {
    if (!existsSync(SCRIPT) || statSync(SCRIPT).mtimeMs < statSync(SOURCE).mtimeMs) {
      throw new Error(`${SCRIPT} is missing or older than ${SOURCE}: run \`npx tsc -p tsconfig.json\` first`);
    }
    await buildHelperModule((line) => console.log(`kmod: ${line}`));
  });

  it('restarts ens1370 and intel8x0 in place under a playing aplay, for every fault', async () => {
    const r = await runInGuest({
      command: [process.execPath, SCRIPT, '--apps', 'aplay-hw', '--seconds', '7'],
      devices: ['es1370', 'ac97'],
      timeoutMs: 300_000,
    });
    const line = r.stdout.split('\n').find((l) => l.startsWith('SOUND_RESULT '));
    expect(line, `no SOUND_RESULT line in:\n${r.stdout}\n${r.stderr}`).toBeDefined();
    const res = JSON.parse(line!.slice('SOUND_RESULT '.length)) as SoundResult;
    expect(res.problems).toEqual([]);
    assertGuestOk(r, 'sound helper test');

    expect(res.version).toMatch(/ classes=net,block,sound$/);
    expect(res.cards.map((c) => c.driver).sort()).toEqual(['snd_ens1370', 'snd_intel8x0']);
    for (const card of res.cards) {
      const runs = res.runs.filter((x) => x.card === card.name);
      expect(runs.map((x) => x.fault).sort()).toEqual(['fail-prepare', 'fail-stop', 'fail-stop@idle', 'fail-stop@start', 'lost-irq']);
      for (const x of runs) {
        expect(x.restart, `${card.name} ${x.fault}`).toMatch(new RegExp(`^ok restarted sound:${card.name} id=\\S+ card=${card.number} stop_ms=\\d+ release_ms=0 probe_ms=\\d+ .* steps=mixer:skip,streams:(ok|skip),open:skip$`));
        expect(x.exitCode, `${card.name} ${x.fault}: ${x.stderr}`).toBe(0);
        // The player saw the underrun it recovers from, nothing worse.
        expect(x.stderr, `${card.name} ${x.fault}`).not.toMatch(/error/i);
        if (x.fault !== 'lost-irq') expect(x.stalled, `${card.name} ${x.fault}`).toBe(true);
        // A call held in the guard holds its stream's buffer mutex: the
        // restart's stop passes it by (nothing to pause) instead of waiting
        // out the guest's 5000 ms hold for it.
        if (x.fault === 'fail-prepare' || x.fault === 'fail-stop@idle') {
          expect(x.restart, `${card.name} ${x.fault}`).toMatch(/ steps=mixer:skip,streams:skip,open:skip$/);
          expect(x.restartMs, `${card.name} ${x.fault}`).toBeLessThan(5000);
        }
      }
    }
    expect(res.bad['restart sound:card99 x1']).toMatch(/^err EINVAL 'sound:card99' is not a valid sound card name/);
    expect(res.bad['restart sound:card00 x3']).toMatch(/^err EINVAL /);
    expect(res.bad['inject sound:card0 bogus']).toBe("err EINVAL unknown sound fault 'bogus' (lost-irq, fail-stop, fail-prepare, clear)");
    expect(res.bad['restart sound:card0 x4 reload']).toMatch(/^err EOPNOTSUPP a sound driver's module stays loaded while applications hold its cards/);
  }, 360_000);
});
