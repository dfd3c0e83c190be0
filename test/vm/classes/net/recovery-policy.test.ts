// The recovery policy's limits on e1000 (guest/recovery-policy.ts), one guest run:
// - a transmit hang that comes back after every restart ends in exactly one
//   give-up after as many recoveries as the configuration file allows, each
//   after its back-off (each recovered, or failed when the hang was reported
//   again during its check); the device is parked with its ifindex, nothing more
//   happens while traffic goes on, the kernel log stays free of warnings, and
//   with the fault cleared shadowd's own retry (GiveUpRetrySec after the
//   give-up) brings the device back, and a manual recover works too;
// - another process setting the MTU, queue length, message level and RX ring
//   and querying the device in a loop while `shadowctl recover` runs 5 times
//   back to back: every recovery ends recovered with no failed replay step,
//   every command of the loop succeeds and none of its writes is undone (the
//   queue length and MTU it raises never go back), its last values are in
//   force on the device and in the shadow afterwards, the ifindex stays,
//   shadowd stays up and answers `shadowctl status`, and the helper logs no
//   warning meanwhile;
// - shadowd killed with SIGKILL while the helper restarts the driver leaves
//   no device stuck: the helper finishes on its own, traffic flows again, and
//   the next shadowd closes the recovery as 'interrupted' without looping,
//   and still recovers a new failure (the manual recoveries reset the count).
import { existsSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import type { StatusResult } from '../../../../daemon/control/control-protocol.js';
import type { RecoveryRecord } from '../../../../daemon/core/recovery-history.js';
import { assertGuestOk, runInGuest, type GuestResult } from '../../rig/guest.js';
import type { KernelLogLine } from '../../rig/kernel-log.js';
import { buildHelperModule } from '../../rig/kmod-build.js';
import { repoPath } from '../../rig/repo-path.js';

const SCRIPT = repoPath('dist/test/vm/guest/recovery-policy.js');

interface Cli {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
}
interface Status {
  pid: number;
  devices: { cls: string; name: string; attrs: Record<string, number | string>; driver: string | null; mode: string; health: string }[];
}
interface PolicyResult {
  dev: string;
  policy: { maxRecoveries: number; backoffSec: number; backoffMaxSec: number; giveUpRetrySec: number };
  ifindexBefore: number;
  giveUp: {
    inject: Cli;
    faultAt: number;
    injectMs: number;
    seenAfterMs: number | null;
    history: RecoveryRecord[];
    txstat: string;
    quiet: { samples: number; historyChanged: string[]; states: string[] };
    parked: {
      history: RecoveryRecord[] | string;
      txstat: string;
      ifindex: number;
      link: { ifindex: number; ifname: string; flags: string[]; operstate: string };
      hasDriver: boolean;
      status: Status;
      repliesDuringQuiet: number;
      daemonAlive: boolean;
    };
  };
  retry: { record: RecoveryRecord | null; afterGiveUpMs: number | null; clearedAfterGiveUpMs: number | null; pingMs: number | null; txstat: string };
  manual: {
    clear: Cli;
    recover: { exitCode: number | undefined; stderr: string; record: RecoveryRecord | string; ms: number };
    pingMs: number | null;
    txstat: string;
    ifindex: number;
    hasDriver: boolean;
  };
  underLoop: {
    recoveries: { exitCode: number | undefined; stderr: string; record: RecoveryRecord | string; at: number; ms: number }[];
    otherRecoveries: RecoveryRecord[];
    loop: { iterations: number; failures: string[]; last: Record<string, number>; stuck: string | null; startedAt: number; ms: number };
    linkChanges: { at: number; mtu: number; qlen: number }[];
    replayLog: { left: string[]; behind: string[] };
    final: { ifindex: number; ipLink: { mtu: number; txqlen: number }; mtu: unknown; txqueuelen: unknown; msglvl: unknown; rings: { rx?: number } | null };
    shadow: { pendingReads: number; mtu: unknown; txqueuelen: unknown; msglvl: unknown; rings: { rx?: number } | null | undefined };
    daemonAlive: boolean;
    pid: number;
    status: { exitCode: number | undefined; stderr: string; result: StatusResult | null };
    pingMs: number | null;
  };
  killed: {
    inject: Cli;
    restartingAfterMs: number | null;
    polls: number;
    recoveryAtKill: RecoveryRecord | null;
    daemonSignal: string | null;
    states: string[];
    backMs: number | null;
    pingMs: number | null;
    ifindex: number;
    hasDriver: boolean;
    txstat: string;
  };
  restarted: {
    readyMs: number;
    history: RecoveryRecord[] | string;
    loop: { samples: number; historyChanged: string[]; states: string[] };
    daemonAlive: boolean;
    pid: number;
    status: Status;
    pingMs: number | null;
    log: string;
  };
  again: { inject: Cli; record: RecoveryRecord | null; ms: number; pingMs: number | null; txstat: string };
  stopped: { exitCode: number | null; signal: string | null; ms: number };
  daemonLog: string;
}

/** Written by the guest script around the configuration loop (KMSG_MARK there). */
const LOOP_MARK = 'shadowd-policy: configuration loop';

/** The helper's lines at warning or worse (but the kernel's note that loading it taints the kernel). */
function helperWarnings(lines: readonly KernelLogLine[]): string[] {
  return lines
    .filter((l) => l.text.startsWith('shadow_helper: ') && l.level <= 4 && l.text !== 'shadow_helper: loading out-of-tree module taints kernel.')
    .map((l) => l.text);
}

/** The kernel log between the guest script's begin and end markers (to the end if the end is missing); null without a begin. */
function between(lines: readonly KernelLogLine[], mark: string): KernelLogLine[] | null {
  const from = lines.findIndex((l) => l.text === `${mark} begin`);
  if (from < 0) return null;
  const to = lines.findIndex((l, i) => i > from && l.text === `${mark} end`);
  return lines.slice(from + 1, to < 0 ? undefined : to);
}

/** The helper's own log line for a recovery id: "recovery ID: net:eth0 restarted|parked in N ms (...)". */
function helperOutcome(run: GuestResult, id: string, dev: string): string | undefined {
  return run.kernelLog.find((l) => l.text.startsWith(`shadow_helper: recovery ${id}: net:${dev} `) && / in \d+ ms/.test(l.text))?.text;
}

describe('recovery policy on e1000: a clean give-up, recoveries under a configuration loop, and shadowd killed mid-recovery', () => {
  beforeAll(async () => {
    if (!existsSync(SCRIPT) || statSync(SCRIPT).mtimeMs < statSync(repoPath('test/vm/guest/recovery-policy.ts')).mtimeMs) {
      throw new Error(`${SCRIPT} is missing or stale: run \`npx tsc -p tsconfig.json\` first`);
    }
    await buildHelperModule((line) => console.log(`kmod: ${line}`));
  });

  it('gives up once on a fault that recurs, recovers under a configuration loop, then survives its own SIGKILL mid-restart', { timeout: 490_000 }, async () => {
    const run = await runInGuest({ command: ['node', SCRIPT], devices: ['e1000'], timeoutMs: 480_000 });
    assertGuestOk(run, 'recovery policy scenario');
    const line = run.stdout.split('\n').find((l) => l.startsWith('POLICY_RESULT '));
    expect(line, `no POLICY_RESULT in:\n${run.stdout}\n${run.stderr}`).toBeDefined();
    const res = JSON.parse(line!.slice('POLICY_RESULT '.length)) as PolicyResult;
    const steps = run.stdout.split('\n').filter((l) => l.startsWith('['));
    const ctx = `\n--- guest ---\n${steps.join('\n')}\n--- shadowd log ---\n${res.daemonLog}`;
    const { dev, policy, ifindexBefore } = res;
    const sig = (rs: RecoveryRecord[]): string[] => rs.map((r) => `${r.id}:${r.trigger}:${r.result}`);

    // The kernel log: no oops/BUG/WARN (assertGuestOk), and nothing from the helper above notice
    // (but the kernel's own note that loading it taints the kernel).
    expect(helperWarnings(run.kernelLog), ctx).toEqual([]);

    // ---- give-up: as many recoveries as the policy allows, each after its back-off, then one give-up.
    const g = res.giveUp;
    expect(g.inject.exitCode, `${g.inject.stderr}${ctx}`).toBe(0);
    expect(g.seenAfterMs, `no give-up within 90 s of the sticky fault${ctx}`).not.toBeNull();
    const attempts = g.history.slice(0, -1);
    const gaveUp = g.history.at(-1)!;
    // Exactly MaxRecoveries attempts, then one give-up. The hang comes back after each restart: an attempt
    // recovers if the stall is reported after its check, and fails (counting as a fresh failure) if it is
    // reported during the check, which a busy host makes likelier.
    const failedAgain = /^the device failed again during the check \((tx-stall|tx-timeout)\): /;
    const outcome = (r: RecoveryRecord): string => {
      if (r.result === 'recovered' || (r.result === 'failed' && failedAgain.test(r.error ?? ''))) return 'recovered or failed again';
      return r.result === 'gave-up' ? 'gave-up' : `${r.result}: ${r.error}`;
    };
    expect(
      g.history.map(outcome),
      `${g.history.map((r) => `${r.id} ${r.trigger} ${r.result}${r.error ? `: ${r.error}` : ''}`).join('\n')}${ctx}`,
    ).toEqual([...Array<string>(policy.maxRecoveries).fill('recovered or failed again'), 'gave-up']);
    expect(attempts.every((r) => r.trigger === 'tx-stall' || r.trigger === 'tx-timeout'), ctx).toBe(true);
    expect(attempts[0]!.startedAt).toBeGreaterThanOrEqual(g.faultAt);
    expect(attempts[0]!.phases.wait, 'the first recovery waits no back-off').toBeUndefined();
    const timeline: string[] = [];
    for (let k = 1; k < attempts.length; k++) {
      const prev = attempts[k - 1]!;
      const cur = attempts[k]!;
      const backoff = Math.min(policy.backoffSec * 1000 * 2 ** (k - 1), policy.backoffMaxSec * 1000);
      // The restart began when the back-off ended: counted from the end of the last attempt.
      // A failure detected after the back-off had run out waits nothing; one detected before waits
      // until it runs out, so its restart begins at the back-off's end (within the ms between the
      // record's start and the wait's).
      const gap = cur.startedAt + (cur.phases.wait ?? 0) - prev.endedAt!;
      timeline.push(`#${k + 1} ${cur.trigger} restart ${gap} ms after #${k} ended (back-off ${backoff} ms, waited ${cur.phases.wait ?? 0} ms)`);
      expect(gap, `${timeline.join('\n')}${ctx}`).toBeGreaterThanOrEqual(backoff - 250);
      if (cur.phases.wait) expect(gap, `${timeline.join('\n')}${ctx}`).toBeLessThanOrEqual(backoff + 250);
    }
    // With a 1 s stall threshold and a 2 s back-off, at least one attempt waited (the back-off was in force).
    expect(attempts.some((r) => (r.phases.wait ?? 0) > 0), `no attempt waited its back-off\n${timeline.join('\n')}`).toBe(true);
    expect(gaveUp.startedAt).toBeGreaterThanOrEqual(attempts.at(-1)!.endedAt!);
    expect(gaveUp.error, ctx).toMatch(new RegExp(`^${policy.maxRecoveries} recoveries of ${dev} in the last 10 min \\(${attempts.map((r) => r.id).join(', ')}\\) .*; the device is parked`));
    expect(helperOutcome(run, gaveUp.id, dev), `the helper did not log parking ${gaveUp.id}`).toMatch(/ parked in \d+ ms/);
    expect(g.txstat).toMatch(/ state=parked running=0 /);
    // Traffic went on for 15 s after the give-up: no recovery, no change, the device parked all along.
    expect(g.quiet.samples, 'too few samples after the give-up').toBeGreaterThanOrEqual(10);
    expect(g.quiet.historyChanged, ctx).toEqual([]);
    expect(g.quiet.states).toEqual(['state=parked running=0']);
    const p = g.parked;
    expect(p.daemonAlive).toBe(true);
    expect(typeof p.history === 'string' ? p.history : sig(p.history), 'shadowctl history --json after the quiet time').toEqual(sig(g.history));
    expect(p.txstat).toMatch(new RegExp(`^ok ifindex=${ifindexBefore} state=parked running=0 `));
    expect(p.ifindex).toBe(ifindexBefore);
    expect([p.link.ifname, p.link.ifindex]).toEqual([dev, ifindexBefore]);
    expect(p.repliesDuringQuiet, 'a parked device carried traffic').toBe(0);
    // Listed once, with its ifindex, present (the helper keeps it) and parked.
    const parkedStatus = p.status.devices.filter((d) => d.name === dev);
    expect(parkedStatus.map((d) => [d.attrs['ifindex'], d.health, d.mode]), JSON.stringify(p.status)).toEqual([[ifindexBefore, 'ok', 'parked']]);
    // The fault cleared, shadowd's own retry brings the device back, GiveUpRetrySec after the give-up.
    const t = res.retry;
    expect(t.clearedAfterGiveUpMs!, `the test cleared the fault after the retry was due (guest too slow), not a shadowd failure${ctx}`).toBeLessThan(res.policy.giveUpRetrySec * 1000);
    expect(t.record && [t.record.trigger, t.record.result, t.record.error], ctx).toEqual(['retry', 'recovered', null]);
    expect(t.afterGiveUpMs!).toBeGreaterThanOrEqual(res.policy.giveUpRetrySec * 1000);
    expect(t.afterGiveUpMs!).toBeLessThan(res.policy.giveUpRetrySec * 1000 + 5000);
    expect(t.pingMs, `no ping reply after the retry${ctx}`).not.toBeNull();
    expect(t.txstat).toMatch(new RegExp(`^ok ifindex=${ifindexBefore} state=passive running=1 carrier=1 `));
    // A person recovers the device too.
    const m = res.manual;
    expect(m.clear.exitCode, m.clear.stderr).toBe(0);
    expect(m.recover.exitCode, `${m.recover.stderr}${ctx}`).toBe(0);
    expect(typeof m.recover.record === 'object' && [m.recover.record.trigger, m.recover.record.result]).toEqual(['manual', 'recovered']);
    expect(m.pingMs, `no ping reply after the manual recovery${ctx}`).not.toBeNull();
    expect(m.txstat).toMatch(new RegExp(`^ok ifindex=${ifindexBefore} state=passive running=1 carrier=1 .* stopped=0 `));
    expect(m.ifindex).toBe(ifindexBefore);

    // ---- shadowctl recover, 5 times, while another process configures and queries the device in a loop.
    const u = res.underLoop;
    const loopCtx = `\nloop: ${JSON.stringify(u.loop)}${ctx}`;
    expect(u.recoveries).toHaveLength(5);
    for (const [i, rec] of u.recoveries.entries()) {
      expect(rec.exitCode, `recover ${i + 1}: ${rec.stderr}${loopCtx}`).toBe(0);
      if (typeof rec.record === 'string') throw new Error(`recover ${i + 1} printed no record: ${rec.record}`);
      const failed = rec.record.steps.filter((st) => st.result === 'fail');
      expect([rec.record.trigger, rec.record.result, rec.record.error, failed], `recover ${i + 1} (${rec.record.id})${loopCtx}`).toEqual(['manual', 'recovered', null, []]);
      expect(helperOutcome(run, rec.record.id, dev), `the helper did not log restarting ${rec.record.id}`).toMatch(/ restarted in \d+ ms/);
    }
    expect(u.otherRecoveries.map((rec) => `${rec.id}:${rec.trigger}:${rec.result}`), `recoveries nobody asked for during the loop${loopCtx}`).toEqual([]);
    expect(u.loop.stuck, `the configuration loop hangs${loopCtx}`).toBeNull();
    expect(u.loop.iterations, loopCtx).toBeGreaterThanOrEqual(1);
    expect(u.loop.failures, loopCtx).toEqual([]);
    // The last value the loop set of each key is in force: on the device, and in the shadow the next recovery replays.
    const { last } = u.loop;
    expect([u.final.mtu, u.final.txqueuelen, u.final.msglvl, u.final.rings?.rx], loopCtx).toEqual([last['mtu'], last['txqueuelen'], last['msglvl'], last['rx']]);
    expect([u.final.ipLink.mtu, u.final.ipLink.txqlen], 'ip -json link').toEqual([last['mtu'], last['txqueuelen']]);
    expect(u.shadow.pendingReads, 'the shadow did not catch up within 10 s of the loop').toBe(0);
    expect([u.shadow.mtu, u.shadow.txqueuelen, u.shadow.msglvl, u.shadow.rings?.rx], `the shadow${loopCtx}`).toEqual([last['mtu'], last['txqueuelen'], last['msglvl'], last['rx']]);
    expect(u.final.ifindex).toBe(ifindexBefore);
    expect(u.daemonAlive).toBe(true);
    expect(u.status.exitCode, `shadowctl status: ${u.status.stderr}`).toBe(0);
    expect(u.status.result?.pid).toBe(u.pid);
    expect(u.status.result?.devices.filter((d) => d.name === dev).map((d) => [d.attrs['ifindex'], d.health, d.mode])).toEqual([[ifindexBefore, 'ok', 'passive']]);
    expect(u.pingMs, `no ping reply after the loop${ctx}`).not.toBeNull();
    const loopKernel = between(run.kernelLog, LOOP_MARK);
    expect(loopKernel, 'the guest script wrote no kernel-log marker before the loop').not.toBeNull();
    expect(helperWarnings(loopKernel!), `the helper warned during the loop${loopCtx}`).toEqual([]);
    // The loop only raises the queue length (from 500; it was 1000 before) and the MTU (from 1300, 1400
    // before; it starts again at 1300 after 100 passes), and each value it set must stay until it sets the
    // next: one going down was put back by someone else, a write of the loop undone. Soft, so that the
    // rest of the run is still judged.
    const during = (at: number): string =>
      u.recoveries
        .map((rec, i) => (typeof rec.record === 'object' && at >= rec.record.startedAt && at <= (rec.record.endedAt ?? Infinity) + 200 ? `recover ${i + 1} (${rec.record.id})` : null))
        .find((x) => x !== null) ?? 'no recovery';
    const undone: string[] = [];
    const before = { mtu: 1400, qlen: 1000 };
    const highest = { mtu: 0, qlen: 0 };
    const seen = { mtu: before.mtu, qlen: before.qlen };
    for (const c of u.linkChanges) {
      for (const key of ['mtu', 'qlen'] as const) {
        if (c[key] === seen[key]) continue;
        seen[key] = c[key];
        if ((highest[key] === 0 && c[key] >= before[key]) || (key === 'mtu' && u.loop.iterations >= 100)) continue;
        if (c[key] < highest[key] || c[key] >= before[key]) undone.push(`+${c.at - u.loop.startedAt} ms: ${key} ${c[key]} after ${highest[key]}, during ${during(c.at)}`);
        else highest[key] = c[key];
      }
    }
    const replaySteps = u.recoveries.map((rec, i) =>
      typeof rec.record === 'object' ? `recover ${i + 1} (${rec.record.id}) replayed: ${rec.record.steps.filter((st) => st.source === 'daemon').map((st) => st.argv?.join(' ') ?? st.key).join('; ') || 'nothing'}` : '',
    );
    // Each replay after a restart had its shadow caught up with the taps (or it would have replayed nothing).
    expect(u.replayLog.behind, `shadowd's shadow could not catch up with the taps${loopCtx}`).toEqual([]);
    expect.soft(undone, `the loop's writes undone (the loop's last values: ${JSON.stringify(last)}):\n${undone.join('\n')}\n${replaySteps.join('\n')}`).toEqual([]);

    // ---- shadowd killed while the helper restarts the driver.
    const k = res.killed;
    expect(k.inject.exitCode, k.inject.stderr).toBe(0);
    expect(k.restartingAfterMs, `the helper never reported state=restarting (${k.polls} polls)${ctx}`).not.toBeNull();
    expect(k.recoveryAtKill?.result, 'the recovery was not in progress when shadowd was killed').toBe('in-progress');
    const killedId = k.recoveryAtKill!.id;
    expect(k.daemonSignal).toBe('SIGKILL');
    expect(k.states[0], 'the restart had ended before the kill').toMatch(/state=restarting/);
    expect(k.backMs, `the device stayed stuck: ${k.states.join(' | ')}`).not.toBeNull();
    expect(k.backMs!).toBeLessThan(5000);
    expect(helperOutcome(run, killedId, dev), `the helper did not finish ${killedId} on its own`).toMatch(/ restarted in \d+ ms/);
    expect(k.pingMs, `no ping reply after the kill${ctx}`).not.toBeNull();
    expect(k.pingMs!).toBeLessThan(10_000);
    expect(k.ifindex).toBe(ifindexBefore);
    expect(k.txstat).toMatch(new RegExp(`^ok ifindex=${ifindexBefore} state=passive running=1 `));
    // The next shadowd: the recovery closed as interrupted, nothing else started, the daemon stays up.
    const r = res.restarted;
    if (typeof r.history === 'string') throw new Error(`shadowctl history after the restart: ${r.history}`);
    const h = r.history;
    expect(sig(h), ctx).toEqual([
      ...sig(g.history),
      `${t.record!.id}:retry:recovered`,
      `${(m.recover.record as RecoveryRecord).id}:manual:recovered`,
      ...u.recoveries.map((rec) => `${(rec.record as RecoveryRecord).id}:manual:recovered`),
      `${killedId}:${k.recoveryAtKill!.trigger}:interrupted`,
    ]);
    expect(h.at(-1)!.endedAt).not.toBeNull();
    expect(r.log).toContain(`recovery ${killedId} (${k.recoveryAtKill!.trigger}) was interrupted`);
    expect(r.loop.samples).toBeGreaterThanOrEqual(5);
    expect(r.loop.historyChanged, ctx).toEqual([]);
    expect(r.loop.states).toEqual(['state=passive running=1']);
    expect(r.daemonAlive).toBe(true);
    expect(r.status.pid).toBe(r.pid);
    expect(r.status.devices.filter((d) => d.name === dev).map((d) => [d.attrs['ifindex'], d.health, d.mode])).toEqual([[ifindexBefore, 'ok', 'passive']]);
    expect(r.pingMs).not.toBeNull();
    // It still recovers within its policy: the manual recovery reset the count, so this is recovered, not given up on.
    const a = res.again;
    expect(a.inject.exitCode, a.inject.stderr).toBe(0);
    expect(a.record && [a.record.result, a.record.error], ctx).toEqual(['recovered', null]);
    expect(a.pingMs).not.toBeNull();
    expect(a.txstat).toMatch(/ state=passive running=1 /);
    expect(res.stopped, 'shadowd did not stop cleanly on SIGTERM').toMatchObject({ exitCode: 0, signal: null });

    const phases = (rec: RecoveryRecord): string => `restart ${rec.phases.restart} ms, total ${rec.phases.total} ms`;
    console.log(
      [
        `give-up: sticky tx-hang (shadowctl inject took ${g.injectMs} ms; times below from its start) with ping traffic; policy MaxRecoveries=${policy.maxRecoveries} BackoffSec=${policy.backoffSec} BackoffMaxSec=${policy.backoffMaxSec}`,
        ...attempts.map((rec, i) => `  #${i + 1} ${rec.id} ${rec.trigger} at +${rec.startedAt - g.faultAt} ms: ${rec.result} (${phases(rec)}, merged ${rec.merged})`),
        ...timeline.map((t) => `  ${t}`),
        `  gave up (${gaveUp.trigger}) at +${gaveUp.startedAt - g.faultAt} ms, ${gaveUp.phases.total} ms to park; seen by the guest ${g.seenAfterMs} ms after the fault`,
        `  then ${g.quiet.samples} samples over 15 s of traffic: no change, parked throughout, 0 ping replies; ifindex ${ifindexBefore} kept; driver bound while parked: ${p.hasDriver}`,
        `  fault cleared ${String(t.clearedAfterGiveUpMs)} ms after the give-up; shadowd's own retry ${String(t.afterGiveUpMs)} ms after the give-up: ${t.record?.result ?? 'none'}, first ping reply ${String(t.pingMs)} ms after it`,
        `  manual recover: ${m.recover.ms} ms, first ping reply ${m.pingMs} ms after it`,
        `loop: ${u.loop.iterations} passes in ${u.loop.ms} ms (last ${JSON.stringify(u.loop.last)}), ${undone.length} of its writes undone, under ${u.recoveries.length} shadowctl recover: ${u.recoveries
          .map((rec) => (typeof rec.record === 'object' ? `${rec.ms} ms (restart ${rec.record.phases.restart}, check ${rec.record.phases.check}, total ${rec.record.phases.total})` : `${rec.ms} ms`))
          .join(', ')}`,
        `  ${u.linkChanges.length} mtu/qlen changes seen; ${loopKernel!.filter((l) => l.level <= 4).length} kernel lines at warning or worse meanwhile; ${u.replayLog.left.length} replays left keys set during the recovery (${[...new Set(u.replayLog.left.map((l) => /: ([^:]*) changed during the recovery/.exec(l)?.[1] ?? '?'))].join(' | ')}); daemon replay steps: ${u.recoveries
          .map((rec) => (typeof rec.record === 'object' ? rec.record.steps.filter((st) => st.source === 'daemon').map((st) => st.argv?.join(' ') ?? st.key).join('; ') || 'none' : '?'))
          .join(' | ')}`,
        `killed: state=restarting seen ${k.restartingAfterMs} ms after the fault (${k.polls} polls); SIGKILL; ${k.states.join(' | ')}`,
        `  passive and running ${k.backMs} ms after the kill, first ping reply ${k.pingMs} ms after it; ifindex ${k.ifindex}`,
        `  second shadowd ready in ${r.readyMs} ms: ${killedId} interrupted, no new recovery in ${r.loop.samples} samples; a new fault then: ${a.record!.trigger}:${a.record!.result} in ${a.ms} ms`,
        `  SIGTERM: shadowd stopped in ${res.stopped.ms} ms`,
      ].join('\n'),
    );
  });
});
