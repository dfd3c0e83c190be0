// The fault campaign's smoke run in CI (issue 14): the same code as
// `npm run campaign` (bench/campaign/run.ts), 7 faults from a fixed seed in
// one boot, every class with its applications checking their data. It holds
// the campaign's hard lines: every fault runs (no harness error), the guest
// neither crashes nor hangs, no disk loses an acknowledged write or its
// filesystem's integrity, and a fault shadowd recovered leaves a disk's
// writers working (a setting changed around the fault and not kept is
// reported, not held: the disk class loses one, see below). The full goal (every transient fault recovered
// with its application working, every sticky one given up by policy) is
// not held here yet: the campaign found faults shadowd does not recover
// (lost interrupts on a NIC at idle, fail-stop on an idle HDA card, a
// read_ahead_kb written during a virtio disk's failure replaced by the one
// before it; the report of each run lists them), and the test prints that report rather
// than failing on them until they are fixed. The full campaign (200 faults
// and more) is a bench, not a test.
import { existsSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { buildHelperModule } from '../rig/kmod-build.js';
import { repoPath } from '../rig/repo-path.js';
import { runCampaign } from '../../../bench/campaign/run.js';
import { renderCampaign } from '../../../bench/campaign/report.js';

const SCRIPT = repoPath('dist/test/vm/guest/campaign-run.js');
const SOURCE = repoPath('test/vm/guest/campaign-run.ts');
export const SMOKE_FAULTS = 7;
/**
 * Seed 11440's first 7 faults touch 9 of the 9 drivers (2 of them as the
 * device recovered by hand meanwhile), all five moments (shadowd's restart
 * too) and a sticky fault on a NIC (8139cp tx-hang, during a configuration
 * change), which gives up by policy in bounded time: as much as seed 14's
 * first 10, the smoke run's plan before, in 7 faults' time. (Seed 1015 did
 * too, but its sticky fault, HDA lost-irq at idle, can outlast its player:
 * 136 s in one CI run, 20 s in another.)
 */
export const SMOKE_SEED = 11440;

describe('fault campaign, smoke run', () => {
  beforeAll(async () => {
    if (!existsSync(SCRIPT) || statSync(SCRIPT).mtimeMs < statSync(SOURCE).mtimeMs) {
      throw new Error(`${SCRIPT} is missing or older than ${SOURCE}: run \`npx tsc -p tsconfig.json\` first`);
    }
    await buildHelperModule((line) => console.log(`kmod: ${line}`), '6.1');
  });

  it(`${SMOKE_FAULTS} faults of seed ${SMOKE_SEED} in one boot: every fault runs, no crash or hang, no acknowledged write lost, filesystems clean`, async () => {
    const run = await runCampaign({ faults: SMOKE_FAULTS, seed: SMOKE_SEED, perBoot: SMOKE_FAULTS, kernel: '6.1', log: (l) => console.log(l) });
    const report = renderCampaign(run, 'test', new Date().toISOString());
    console.log(report);
    const line = (f: (typeof run.faults)[number]): string => `${f.plan.n} ${f.plan.driver} ${f.plan.fault}${f.plan.sticky ? ' sticky' : ''} at ${f.plan.moment}: ${f.outcome}: ${f.why}`;
    // A disk's writers failing after a recovery is data lost or an error above the map; a setting not kept (the config moment) is reported only.
    const hard = run.faults.filter((f) => ['machine hung or crashed', 'harness error', 'not run'].includes(f.outcome) || (f.plan.cls === 'block' && f.outcome === 'recovered, app broken' && f.result?.app.ok === false));
    expect(hard.map(line), report).toEqual([]);
    expect(run.fsck.map((f) => `${f.driver}: e2fsck ${f.exitCode}`), report).toEqual(run.fsck.map((f) => `${f.driver}: e2fsck 0`));
    // Every disk the boot used was checked (the plan's and the concurrent moment's).
    const disks = new Set(run.boots.flatMap((b) => b.devices).filter((d) => ['piix-ide', 'ahci', 'virtio-blk'].includes(d)));
    expect(run.fsck.length, report).toBe(disks.size);
  }, 900_000);
});
