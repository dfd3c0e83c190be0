// One guest run of the network applications' scenario
// (guest/recovery-scenario.ts): a remote copy from the host's loopback, a
// remote window (an echo session) and a packet sniffer on each NIC through
// its fault, without shadowd (`control`, the NICs fail at once) or with it
// (the NICs one after another under one daemon). Shared by the recovery test
// (recovery-apps.test.ts), which asserts on the results, and by
// `npm run evaluate`, which classifies them.
import { runInGuest, type GuestResult } from '../../rig/guest.js';
import type { NicPreset } from '../../rig/devices.js';
import type { KernelSeries } from '../../rig/cache-paths.js';
import type { LoopbackServer } from '../../rig/loopback-server.js';
import { repoPath } from '../../rig/repo-path.js';
import { nicList, NET_NICS_ENV } from './nic-list.js';

const SCRIPT = repoPath('dist/test/vm/guest/recovery-scenario.js');
const BLOB_PORT = 8080;
const ECHO_PORT = 7007;

export type ScenarioMode = 'control' | 'shadowd';

/** Boot, the scenarios and, with shadowd, the daemon's start (its taps attach in about 40 s under TCG). */
export const SCENARIO_TIMEOUT_MS: Record<ScenarioMode, number> = { control: 240_000, shadowd: 420_000 };

export interface ScenarioResult {
  driver: string;
  /** Set when the NIC's run threw (its other fields are then missing). */
  error?: string;
  dev: string;
  ifindexBefore: number;
  ifindexAfter: number;
  /** ms: from the fault to the copy's end; msToFault: from its start to the fault, for bytesAtFault; progress: [ms after the fault, bytes] every 5 s. */
  copy: { exitCode: number; bytes: number; sha256: string; stderr: string; ms: number; bytesAtFault: number; msToFault: number; progress: [number, number][] };
  window: { why: string; sent: number; answered: number; unanswered: number; maxWaitMs: number; silentMs: number; error: string | null };
  sniffer: { aliveAfter: boolean; capturedAfterFault: number };
  txstat: string;
  before: Record<string, unknown>;
  after: Record<string, unknown> | null;
  history: { recoveries: { id: string; trigger: string; result: string; phases: Record<string, unknown>; steps: { key: string; result: string }[]; error: string | null }[] } | string | null;
  daemonLog: string;
}

/** A NIC of the scenario: its QEMU preset, its driver and the fault it gets. */
export type ScenarioNic = [preset: NicPreset, driver: string, fault: string];

/**
 * The NICs, in the guest's order (NIC i is on nicSubnet(i)): one fault per
 * driver keeps the run short while every fault meets every application.
 * SHADOWD_NET_NICS runs others (PRESET:DRIVER:FAULT,...; nic-list.ts), e.g.
 * ne2k-pci, which CI has no time for (about 140 KB/s under TCG: its copy
 * alone takes 3 minutes): SHADOWD_NET_NICS=ne2k-pci:ne2k-pci:tx-hang.
 */
export function scenarioNics(env = process.env[NET_NICS_ENV]): ScenarioNic[] {
  return nicList<ScenarioNic>(
    [
      ['e1000', 'e1000', 'lost-irq'],
      ['pcnet', 'pcnet32', 'fail-stop'],
      ['i82559er', 'e100', 'tx-hang'],
      ['rtl8139', '8139cp', 'lost-irq'],
    ],
    3,
    [0],
    env,
  );
}

/** Runs the scenario on `nics` in one guest; the guest's result and each NIC's by driver (a NIC whose line never came is absent). */
export async function runRecoveryScenario(opts: {
  mode: ScenarioMode;
  kernel: KernelSeries;
  nics: readonly ScenarioNic[];
  blob: LoopbackServer;
  echo: { port: number };
}): Promise<{ guest: GuestResult; results: Map<string, ScenarioResult> }> {
  const { mode, kernel, nics } = opts;
  const guest = await runInGuest({
    kernel,
    command: [
      'node', SCRIPT, '--mode', mode, ...(mode === 'control' ? ['--parallel'] : []),
      '--blob-port', String(BLOB_PORT), '--echo-port', String(ECHO_PORT),
      ...nics.flatMap(([, driver, fault]) => ['--nic', `${driver}:${fault}`]),
    ],
    devices: nics.map(([preset]) => preset),
    nicSubnets: true,
    forwards: [
      { guestPort: BLOB_PORT, hostPort: opts.blob.port },
      { guestPort: ECHO_PORT, hostPort: opts.echo.port },
    ],
    timeoutMs: SCENARIO_TIMEOUT_MS[mode],
  });
  const results = guest.stdout.split('\n').filter((l) => l.startsWith('SCENARIO_RESULT ')).map((l) => JSON.parse(l.slice('SCENARIO_RESULT '.length)) as ScenarioResult);
  return { guest, results: new Map(results.map((res) => [res.driver, res])) };
}
