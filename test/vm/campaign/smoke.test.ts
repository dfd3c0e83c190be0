// The fault campaign's smoke run in CI (issue 14): the same code as
// `npm run campaign` (bench/campaign/run.ts), 10 faults from a fixed seed in
// one boot, every class with its applications checking their data. Each
// transient fault must end recovered with its application working, each
// sticky one in a give-up by policy, and the guest must neither crash nor
// hang. The full campaign (200 faults and more) is a bench, not a test.
import { existsSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildHelperModule } from '../rig/kmod-build.js';
import { repoPath } from '../rig/repo-path.js';
import { runCampaign } from '../../../bench/campaign/run.js';
import { renderCampaign } from '../../../bench/campaign/report.js';

const SCRIPT = repoPath('dist/test/vm/guest/campaign-run.js');
const SOURCE = repoPath('test/vm/guest/campaign-run.ts');
export const SMOKE_FAULTS = 10;
/** Seed 14's first 10 faults touch 9 of the 9 drivers, all four moments and a sticky fault (pcnet32 lost-irq, idle). */
export const SMOKE_SEED = 14;

describe('fault campaign, smoke run', () => {
  beforeAll(async () => {
    if (!existsSync(SCRIPT) || statSync(SCRIPT).mtimeMs < statSync(SOURCE).mtimeMs) {
      throw new Error(`${SCRIPT} is missing or older than ${SOURCE}: run \`npx tsc -p tsconfig.json\` first`);
    }
    await buildHelperModule((line) => console.log(`kmod: ${line}`), '6.1');
  });

  it(`${SMOKE_FAULTS} faults of seed ${SMOKE_SEED}: transient ones recovered with the applications working, sticky ones given up by policy`, async () => {
    const run = await runCampaign({ faults: SMOKE_FAULTS, seed: SMOKE_SEED, perBoot: SMOKE_FAULTS, kernel: '6.1', log: (l) => console.log(l) });
    const report = renderCampaign(run, 'test', new Date().toISOString());
    const wrong = run.faults.filter((f) => f.outcome !== (f.plan.sticky ? 'gave up by policy' : 'recovered, app working'));
    expect(wrong.map((f) => `${f.plan.n} ${f.plan.driver} ${f.plan.fault}${f.plan.sticky ? ' sticky' : ''} at ${f.plan.moment}: ${f.outcome}: ${f.why}`), report).toEqual([]);
    expect(run.fsck.every((f) => f.exitCode === 0), report).toBe(true);
  }, 900_000);
});
