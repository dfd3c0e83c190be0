// The fault campaign's host half, shared by the bench (main.ts) and the CI
// smoke run (test/vm/campaign/smoke.test.ts): plans the faults from the
// seed, runs them in as many boots as --per-boot makes (one shadowd per
// boot; a guest that dies ends its boot's slice only), and classifies every
// fault from what its guest printed (outcome.ts).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runInGuest, type GuestResult } from '../../test/vm/rig/guest.js';
import type { DevicePreset } from '../../test/vm/rig/devices.js';
import type { KernelSeries } from '../../test/vm/rig/cache-paths.js';
import { serveRandomBlob } from '../../test/vm/rig/loopback-server.js';
import { repoPath } from '../../test/vm/rig/repo-path.js';
import { systemCrash } from '../evaluate/outcome.js';
import type { CampaignFaultResult } from '../../test/vm/guest/campaign-run.js';
import { CAMPAIGN_DEVICES, CAMPAIGN_POLICY, planFaults, splitBoots, type PlannedFault } from './plan.js';
import { classifyFault, type ClassifiedFault } from './outcome.js';

/** campaign-run.ts's CAMPAIGN_PROGRESS (importing that module would run the guest script). */
const PROGRESS = '[campaign';
const BLOB_PORT = 8080;
const BLOB_BYTES = 6 * 1024 * 1024;

export interface BootRun {
  faults: number[];
  devices: DevicePreset[];
  bootToCommandMs: number | null;
  totalMs: number;
  exitCode: number | null;
  /** Why the guest ended without finishing its slice, or null. */
  died: string | null;
  /** The kernel's and the console's last lines when it died. */
  tail: string;
}

export interface FsckResult {
  driver: string;
  map: string;
  umount: number;
  exitCode: number;
  output: string;
}

export interface CampaignRun {
  seed: number;
  kernel: KernelSeries;
  plan: PlannedFault[];
  faults: ClassifiedFault[];
  boots: BootRun[];
  fsck: FsckResult[];
}

/** The QEMU presets of the devices a slice uses, in the order the guest expects (CAMPAIGN_DEVICES's). */
export function presetsFor(slice: readonly PlannedFault[]): DevicePreset[] {
  const used = new Set(slice.flatMap((f) => [f.device, ...(f.other !== null ? [f.other] : [])]));
  // piix-ide must be the first disk (it takes the first IDE bus): CAMPAIGN_DEVICES has it first.
  return CAMPAIGN_DEVICES.filter((_, i) => used.has(i)).map((d) => d.preset as DevicePreset);
}

const tagged = (stdout: string, tag: string): string[] => stdout.split('\n').filter((l) => l.startsWith(`${tag} `)).map((l) => l.slice(tag.length + 1));

export async function runCampaign(opts: { faults: number; seed: number; perBoot: number; kernel: KernelSeries; log: (line: string) => void }): Promise<CampaignRun> {
  const plan = planFaults(opts.faults, opts.seed);
  const boots = splitBoots(plan, opts.perBoot);
  const blob = await serveRandomBlob(BLOB_BYTES);
  const dir = mkdtempSync(join(tmpdir(), 'shadowd-campaign-'));
  const out: CampaignRun = { seed: opts.seed, kernel: opts.kernel, plan, faults: [], boots: [], fsck: [] };
  try {
    for (const [b, slice] of boots.entries()) {
      const devices = presetsFor(slice);
      opts.log(`boot ${b + 1}/${boots.length}: faults ${slice[0]!.n}-${slice.at(-1)!.n} on ${devices.join(', ')}`);
      const planFile = join(dir, `plan-${b}.json`);
      writeFileSync(planFile, JSON.stringify(slice));
      let partial = '';
      const guest: GuestResult = await runInGuest({
        kernel: opts.kernel,
        command: ['node', repoPath('dist/test/vm/guest/campaign-run.js'), '--plan', planFile, '--blob-port', String(BLOB_PORT), '--blob-sha', blob.sha256],
        devices,
        nicSubnets: true,
        forwards: [{ guestPort: BLOB_PORT, hostPort: blob.port }],
        diskMiB: 128,
        memoryMiB: 1536,
        // shadowd's start (minutes under TCG with many devices) and each fault's worst case.
        timeoutMs: (600 + slice.length * 240) * 1000,
        onConsole: (text) => {
          const lines = (partial + text).split('\n');
          partial = lines.pop() ?? '';
          for (const l of lines) if (l.startsWith(PROGRESS)) opts.log(`  ${l.trim()}`);
        },
      });
      const results = new Map(tagged(guest.stdout, 'CAMPAIGN_FAULT').map((l) => JSON.parse(l) as CampaignFaultResult).map((r) => [r.plan.n, r]));
      const crash = systemCrash(guest);
      const finished = guest.exitCode === 0 && !guest.timedOut;
      const died = crash ?? (finished ? null : `the guest's campaign exited ${guest.exitCode}: ${guest.stderr.trim().split('\n').slice(-3).join(' | ')}`);
      const firstMissing = slice.find((f) => !results.has(f.n))?.n;
      for (const f of slice) {
        out.faults.push(classifyFault(f, results.get(f.n), died ? { why: died, here: f.n === firstMissing && crash !== null } : null, CAMPAIGN_POLICY.maxRecoveries));
      }
      out.fsck.push(...tagged(guest.stdout, 'CAMPAIGN_FSCK').map((l) => JSON.parse(l) as FsckResult));
      out.boots.push({
        faults: slice.map((f) => f.n),
        devices,
        bootToCommandMs: guest.bootToCommandMs,
        totalMs: guest.totalMs,
        exitCode: guest.exitCode,
        died,
        tail: died ? [...guest.kernelProblems.slice(0, 3), guest.stderr.split('\n').slice(-30).join('\n'), guest.console.split('\n').slice(-30).join('\n')].join('\n---\n') : '',
      });
      opts.log(`  guest ${(guest.totalMs / 1000).toFixed(0)} s${died ? `; ${died}` : ''}`);
    }
  } finally {
    await blob.close();
    rmSync(dir, { recursive: true, force: true });
  }
  return out;
}
