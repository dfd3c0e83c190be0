// The host half of the precompiled taps' guest tests (libbpf-block.test.ts,
// libbpf-sound.test.ts): the guest script run from dist/, the taps built
// here (taps-build.ts: clang, bpftool, libbpf-dev), the guest's result line
// read back, and what every side-by-side run must show: nothing failed,
// both tools exited 0 having lost nothing and printed nothing malformed, the
// loader said nothing on stderr (no probe left out), and their records are
// the same once ts= is set aside.
import { existsSync, statSync } from 'node:fs';
import { expect } from 'vitest';
import type { DevicePreset } from '../rig/devices.js';
import { assertGuestOk, runInGuest } from '../rig/guest.js';
import { repoPath } from '../rig/repo-path.js';
import { buildTaps, tapsObject, type TapsBuild } from '../rig/taps-build.js';
import { describeFigures, type SideBySideResult } from '../guest/tap-side-by-side.js';

/** The prototype's guest tests run only with SHADOWD_LIBBPF_TAPS=1: `npm test` (CI) is not held to them yet. */
export const LIBBPF_TAPS_ENABLED = process.env['SHADOWD_LIBBPF_TAPS'] === '1';

/** Builds the taps, once the guest script (guest/NAME.ts) is in dist/ and not older than its source. */
export async function prepareSideBySide(name: string): Promise<TapsBuild> {
  const script = repoPath(`dist/test/vm/guest/${name}.js`);
  const source = repoPath(`test/vm/guest/${name}.ts`);
  if (!existsSync(script) || statSync(script).mtimeMs < statSync(source).mtimeMs) {
    throw new Error(`${script} is missing or older than ${source}: run \`npx tsc -p tsconfig.json\` first`);
  }
  return buildTaps((line) => console.log(`taps: ${line}`));
}

export interface SideBySideRun {
  /** The guest script's name (guest/NAME.ts) and the prefix of its result line. */
  name: string;
  prefix: string;
  taps: TapsBuild;
  /** The class's object (NAME.bpf.o) and program (bpf/NAME.bt). */
  object: string;
  devices: DevicePreset[];
  /** How many probes each tool must say it attached; null: any number but none. */
  probes: { libbpf: number; bpftrace: number | null };
}

/** Runs the guest script, prints the figures, holds the run to what every side-by-side run must show; returns the result line. */
export async function runSideBySide<R extends SideBySideResult>(run: SideBySideRun): Promise<R> {
  const r = await runInGuest({
    command: [process.execPath, repoPath(`dist/test/vm/guest/${run.name}.js`), run.taps.loader, tapsObject(run.taps, run.object), repoPath(`bpf/${run.object}.bt`)],
    devices: run.devices,
    timeoutMs: 280_000,
  });
  const line = r.stdout.split('\n').find((l) => l.startsWith(`${run.prefix} `));
  expect(line, `no ${run.prefix} line in:\n${r.stdout}\n${r.stderr}`).toBeDefined();
  const res = JSON.parse(line!.slice(run.prefix.length + 1)) as R;
  console.log(describeFigures(res));
  expect(res.failures).toEqual([]);
  assertGuestOk(r, `libbpf ${run.object} taps`);
  expect(res.libbpf.probes).toBe(run.probes.libbpf);
  if (run.probes.bpftrace === null) expect(res.bpftrace.probes).toBeGreaterThan(0);
  else expect(res.bpftrace.probes).toBe(run.probes.bpftrace);
  for (const f of [res.libbpf, res.bpftrace]) {
    expect(f.exitCode).toBe(0);
    expect(f.lost).toBe(0);
    expect(f.malformed).toEqual([]);
  }
  // No probe left out, nothing else said.
  expect(res.libbpf.stderr).toBe('');
  expect(res.onlyLibbpf).toEqual([]);
  expect(res.onlyBpftrace).toEqual([]);
  return res;
}
