// The recovery policy's two promises, and recoveries under a concurrent
// configuration loop, in one guest run on e1000 with a ping to the QEMU
// gateway every 0.2 s as traffic (test/vm/classes/net/recovery-policy.test.ts):
//   give-up   a transmit hang injected `sticky` comes back after every
//             restart: shadowd recovers the device as often as its policy
//             (a [Device] section of a configuration file) allows, waiting
//             its back-off between attempts, then gives up once, parks the
//             device and stays quiet while the traffic goes on (the fault
//             is cleared at the give-up); shadowd's own retry
//             (GiveUpRetrySec after the give-up) brings the device back,
//             and so does a manual recover;
//   loop      another process sets the MTU, queue length, message level and
//             RX ring and queries the device in a loop (nic-setup.ts's
//             startConfigLoop: restart-check.ts's loop, there run against the
//             helper alone) while `shadowctl recover` runs 5 times back to
//             back: each recovery ends recovered with every replay step done,
//             no command of the loop fails nor is undone (the MTU and queue
//             length, read every 20 ms, never go back), its last values are
//             in force afterwards (on the device and in the shadow), the
//             ifindex stays, shadowd stays up and answers, and the helper
//             logs no warning (between two kernel-log markers the test reads);
//   killed    shadowd is killed (SIGKILL) while the helper restarts the
//             driver: the helper finishes the restart on its own, the device
//             carries traffic again with its ifindex, and the next shadowd
//             closes the recovery as 'interrupted', does not loop, and still
//             recovers a new failure (the manual recoveries reset the count).
// Prints `POLICY_RESULT <json>`: the measurements; the test judges them.
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { request } from '../../../daemon/control/control-client.js';
import type { ShowResult, StatusResult } from '../../../daemon/control/control-protocol.js';
import { openHelper } from '../../../daemon/core/helper-client.js';
import { snapshotDevice } from '../../../daemon/classes/net/netdev-snapshot.js';
import { DAEMON_NODE_OPTIONS } from '../../../daemon/service/node-options.js';
import type { RecoveryRecord } from '../../../daemon/core/recovery-history.js';
import { repoPath } from '../rig/repo-path.js';
import { DRIVER_SETTINGS, helperCommand, interfaceOf, loadHelper, startConfigLoop, startPingProbe, waitForCarrier } from './nic-setup.js';
import { shadowdEnv } from './shadowd-process.js';

const DRIVER = 'e1000';
/**
 * The policy under test, from a configuration file. It differs from the
 * default (2 s doubling up to 60 s) so that the file visibly applies: the
 * back-offs are 2 s then 3 s (4 s capped). The retry after the give-up
 * comes once the quiet time and the snapshot of the parked device are over
 * (about 25 s on an idle host, 31 s seen on a busy one).
 */
const POLICY = { maxRecoveries: 3, backoffSec: 2, backoffMaxSec: 3, giveUpRetrySec: 45 };
/** How long the traffic goes on after the give-up while nothing may happen. */
const QUIET_AFTER_GIVE_UP_MS = 15_000;
/** How long the second shadowd is watched for a loop. */
const QUIET_AFTER_RESTART_MS = 8_000;
/** Recoveries asked for (shadowctl recover) while the configuration loop runs. */
const RECOVERIES_UNDER_LOOP = 5;
/** Written to the kernel log before and after that part (recovery-policy.test.ts looks between them). */
const KMSG_MARK = 'shadowd-policy: configuration loop';
const READY_TIMEOUT_MS = 120_000;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const t0 = Date.now();
const note = (text: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);

await execa('modprobe', [DRIVER]);
await loadHelper(true);
const dev = await interfaceOf(DRIVER);
const ifindexOf = (): number => Number(readFileSync(`/sys/class/net/${dev}/ifindex`, 'utf8'));
const ifindexBefore = ifindexOf();
for (const argv of DRIVER_SETTINGS[DRIVER]!(dev)) await execa(argv[0]!, argv.slice(1));
await waitForCarrier(dev, 15_000);
note(`${DRIVER} ${dev} configured and up, ifindex ${ifindexBefore}`);

const work = mkdtempSync('/tmp/shadowd-policy-');
const env = shadowdEnv(work);
const socket = join(work, 'run', 'control.sock');
const config = join(work, 'shadowd.conf');
writeFileSync(
  config,
  `[Device ${dev}]\nMaxRecoveries=${POLICY.maxRecoveries}\nBackoffSec=${POLICY.backoffSec}\nBackoffMaxSec=${POLICY.backoffMaxSec}\nGiveUpRetrySec=${POLICY.giveUpRetrySec}\n`,
);

/** A control request straight on the socket: polling through shadowctl would start a Node per poll. */
async function ctl<T>(method: string, params?: Record<string, unknown>): Promise<T> {
  const reply = await request<T>(socket, method, params, 30_000);
  if (!reply.ok) throw new Error(`${method}: ${reply.error.code} ${reply.error.message}`);
  return reply.result;
}
/** The device's recoveries, oldest first. */
const history = async (): Promise<RecoveryRecord[]> => (await ctl<{ recoveries: RecoveryRecord[] }>('history', { device: `net:${dev}`, limit: 100 })).recoveries.reverse();
const status = (): Promise<StatusResult> => ctl<StatusResult>('status');

let daemonLog = '';
/** Starts shadowd as shadowd-process.ts does, but waits for it on the socket, which costs the busy guest no Node start per poll. */
async function startDaemon(): Promise<{ daemon: ResultPromise; readyMs: number }> {
  const started = Date.now();
  const daemon = execa(
    'node',
    [...DAEMON_NODE_OPTIONS, repoPath('dist/daemon/main.js'), '--state-dir', join(work, 'state'), '--runtime-dir', join(work, 'run'), '--allow-faults', '--config', config],
    { reject: false, env },
  );
  daemon.stderr?.on('data', (d: Buffer) => (daemonLog += d.toString()));
  for (;;) {
    const pid = await status().then(
      (s) => s.pid,
      () => null,
    );
    if (pid === daemon.pid) return { daemon, readyMs: Date.now() - started };
    if (daemon.exitCode !== null) throw new Error(`shadowd exited during start-up:\n${daemonLog}`);
    if (Date.now() - started > READY_TIMEOUT_MS) throw new Error(`shadowd not ready after ${READY_TIMEOUT_MS / 1000} s:\n${daemonLog}`);
    await sleep(300);
  }
}

interface Cli {
  exitCode: number | undefined;
  stdout: string;
  stderr: string;
}
/** What a person runs: shadowctl itself. */
const shadowctl = async (...args: string[]): Promise<Cli> => {
  const r = await execa('node', [repoPath('dist/cli/shadowctl.js'), ...args], { env, reject: false, timeout: 60_000 });
  return { exitCode: r.exitCode, stdout: r.stdout, stderr: r.stderr };
};
const cliHistory = async (): Promise<RecoveryRecord[] | string> => {
  const r = await shadowctl('history', dev, '--json');
  return r.exitCode === 0 ? (JSON.parse(r.stdout) as { recoveries: RecoveryRecord[] }).recoveries.reverse() : `exit ${r.exitCode}: ${r.stderr}`;
};
const txstat = (): Promise<string> => helperCommand(`txstat net:${dev}`);
const ipLink = async (): Promise<unknown> => (JSON.parse((await execa('ip', ['-json', 'link', 'show', 'dev', dev])).stdout) as unknown[])[0];
const hasDriver = (): boolean => existsSync(`/sys/class/net/${dev}/device/driver`);
const signature = (rs: RecoveryRecord[]): string => rs.map((r) => `${r.id}:${r.result}`).join(',');
const brief = (rs: RecoveryRecord[]): string => rs.map((r) => `${r.trigger}:${r.result}`).join(' ');
/** Samples the history and the helper's state every 500 ms for `ms`: any recovery after `baseline`, and every state seen. */
async function watchQuiet(ms: number, baseline: RecoveryRecord[]): Promise<{ samples: number; historyChanged: string[]; states: string[] }> {
  const watch = { samples: 0, historyChanged: [] as string[], states: [] as string[] };
  const from = Date.now();
  while (Date.now() - from < ms) {
    await sleep(500);
    const h = await history();
    if (signature(h) !== signature(baseline)) watch.historyChanged.push(`${Date.now() - from} ms: ${brief(h)}`);
    const state = / (state=\S+ running=\d)/.exec(await txstat())?.[1] ?? 'none';
    if (!watch.states.includes(state)) watch.states.push(state);
    watch.samples++;
  }
  return watch;
}

const first = await startDaemon();
let daemon = first.daemon;
note(`shadowd ready after ${first.readyMs} ms (pid ${daemon.pid})`);

// The traffic, and the probe: a ping every 200 ms, each reply with the time it arrived.
const ping = startPingProbe('10.0.2.2', 0.2);
const replies = ping.replies;
/** ms from `t` to the first reply to a probe sent at or after `t`, or null after timeoutMs. */
const replyAfter = async (t: number, timeoutMs: number): Promise<number | null> => {
  for (const until = Date.now() + timeoutMs; ; await sleep(50)) {
    const hit = replies.find((r) => r.sent >= t);
    if (hit) return Math.round(hit.received - t);
    if (Date.now() > until) return null;
  }
};
if ((await replyAfter(Date.now(), 20_000)) === null) throw new Error(`no ping reply from 10.0.2.2 before the fault:\n${daemonLog}`);

// ---- give-up ---------------------------------------------------------------
const faultAt = Date.now();
const inject = await shadowctl('inject', dev, 'tx-hang', '--sticky');
const injectMs = Date.now() - faultAt;
note(`inject tx-hang --sticky: exit ${inject.exitCode} ${inject.stdout}${inject.stderr}`);
let giveUpSeenAt: number | null = null;
let atGiveUp: RecoveryRecord[] = [];
for (const until = Date.now() + 90_000; Date.now() < until; await sleep(200)) {
  atGiveUp = await history();
  if (atGiveUp.some((r) => r.result === 'gave-up')) {
    giveUpSeenAt = Date.now();
    break;
  }
}
const txstatAtGiveUp = await txstat();
note(`give-up seen ${giveUpSeenAt === null ? 'never' : `${giveUpSeenAt - faultAt} ms after the fault`}: ${brief(atGiveUp)}; ${txstatAtGiveUp}`);

// The cause goes away at once (shadowd's retry must find it gone, however slow this guest is);
// the traffic goes on, and nothing may change until the retry is due.
const clear = await shadowctl('inject', dev, 'clear');
const clearedAt = Date.now();
const quietFrom = Date.now();
const quiet = await watchQuiet(QUIET_AFTER_GIVE_UP_MS, atGiveUp);
const quietEnd = Date.now();
const parked = {
  history: await cliHistory(),
  txstat: await txstat(),
  ifindex: ifindexOf(),
  link: await ipLink(),
  hasDriver: hasDriver(),
  status: await status(),
  repliesDuringQuiet: replies.filter((r) => r.sent >= quietFrom && r.sent < quietEnd).length,
  daemonAlive: daemon.exitCode === null,
};
note(`${quiet.samples} samples in ${quietEnd - quietFrom} ms of traffic after the give-up: ${quiet.historyChanged.length} history changes, states ${quiet.states.join(', ')}`);

// Shadowd tries the device again on its own, GiveUpRetrySec after the give-up.
const gaveUpRecord = atGiveUp.find((r) => r.result === 'gave-up');
let retried: RecoveryRecord | null = null;
for (const until = Date.now() + (POLICY.giveUpRetrySec + 30) * 1000; Date.now() < until && retried === null; await sleep(500)) {
  retried = (await history()).find((r) => r.trigger === 'retry' && r.endedAt !== null) ?? null;
}
const retry = {
  record: retried,
  afterGiveUpMs: retried && gaveUpRecord?.endedAt ? retried.startedAt - gaveUpRecord.endedAt : null,
  clearedAfterGiveUpMs: gaveUpRecord?.endedAt ? clearedAt - gaveUpRecord.endedAt : null,
  pingMs: retried?.endedAt ? await replyAfter(retried.endedAt, 20_000) : null,
  txstat: await txstat(),
};
note(`retry: ${retried ? `${retried.id} ${retried.result} ${retry.afterGiveUpMs} ms after the give-up, ping ${retry.pingMs} ms after it` : 'none'}; ${retry.txstat}`);

// A person asks for a recovery too.
const recoverAt = Date.now();
const recover = await shadowctl('recover', dev, '--json');
const recoverEnd = Date.now();
const manual = {
  clear,
  recover: { exitCode: recover.exitCode, stderr: recover.stderr, record: recover.exitCode === 0 ? (JSON.parse(recover.stdout) as RecoveryRecord) : recover.stdout, ms: recoverEnd - recoverAt },
  pingMs: await replyAfter(recoverEnd, 20_000),
  txstat: await txstat(),
  ifindex: ifindexOf(),
  hasDriver: hasDriver(),
};
note(`manual recovery: exit ${recover.exitCode} in ${manual.recover.ms} ms; ping ${manual.pingMs} ms after; ${manual.txstat}`);

// ---- configured while recovered ------------------------------------------
// Another process changes and queries the device in a loop (restart-check.ts's
// loop, there under the helper alone) while a person recovers it through
// shadowd again and again. Markers in the kernel log bound this part for the
// test, which looks for the helper's warnings between them.
const kmsgMark = (what: string): void => writeFileSync('/dev/kmsg', `<5>${KMSG_MARK} ${what}\n`, { flag: 'a' });
const historyBeforeLoop = await history();
// The device's MTU and queue length, read every 20 ms (ip monitor does not show
// the queue length): the loop only raises them, so one going down was put back
// by someone else.
const linkChanges: { at: number; mtu: number; qlen: number }[] = [];
const readLink = (): void => {
  const mtu = Number(readFileSync(`/sys/class/net/${dev}/mtu`, 'utf8'));
  const qlen = Number(readFileSync(`/sys/class/net/${dev}/tx_queue_len`, 'utf8'));
  const prev = linkChanges.at(-1);
  if (prev?.mtu !== mtu || prev.qlen !== qlen) linkChanges.push({ at: Date.now(), mtu, qlen });
};
readLink();
const linkPoller = setInterval(readLink, 20);
kmsgMark('begin');
const loopLogFrom = daemonLog.length;
const configLoop = startConfigLoop(dev, { rings: true });
const loopStartedAt = Date.now();
await sleep(500);
const loopRecoveries: { exitCode: number | undefined; stderr: string; record: RecoveryRecord | string; at: number; ms: number }[] = [];
for (let i = 0; i < RECOVERIES_UNDER_LOOP; i++) {
  const at = Date.now();
  const r = await shadowctl('recover', dev, '--json');
  const ms = Date.now() - at;
  const record = r.exitCode === 0 ? (JSON.parse(r.stdout) as RecoveryRecord) : r.stdout;
  loopRecoveries.push({ exitCode: r.exitCode, stderr: r.stderr, record, at, ms });
  note(`recover ${i + 1} of ${RECOVERIES_UNDER_LOOP} under the configuration loop: exit ${r.exitCode} in ${ms} ms${typeof record === 'object' ? `: ${record.result} (${record.steps.map((s) => `${s.source === 'daemon' ? '+' : ''}${s.key}:${s.result}`).join(',')})` : ''}`);
  await sleep(500);
}
const loopResult = await configLoop.stop();
const loopMs = Date.now() - loopStartedAt;
kmsgMark('end');
// What shadowd said of its replays meanwhile: what it left because others set it during a recovery, and
// whether its shadow could catch up with the taps each time (daemon/shadow-replay.ts).
const loopLog = daemonLog.slice(loopLogFrom).split('\n');
const replayLog = {
  left: loopLog.filter((l) => / changed during the recovery: left as the device has/.test(l)),
  behind: loopLog.filter((l) => /could not catch up with the taps|may not have caught up with the taps|could not mark the shadow/.test(l)),
};
clearInterval(linkPoller);
await waitForCarrier(dev, 15_000);
const finalKeys = (await snapshotDevice(dev, ['link', 'rings', 'settings'])).keys;
const finalLink = (await ipLink()) as { ifindex: number; mtu: number; txqlen: number };
// The shadow once it has caught up: what the next recovery would replay.
let pendingReads = -1;
for (const until = Date.now() + 10_000; Date.now() < until; await sleep(200)) {
  pendingReads = (await status()).pendingReads;
  if (pendingReads === 0) break;
}
const shadowEntries = (await ctl<ShowResult>('show', { device: `net:${dev}` })).entries;
const shadowOf = (key: string): unknown => shadowEntries.find((e) => e.key === key)?.value;
const cliStatus = await shadowctl('status', '--json');
const underLoop = {
  recoveries: loopRecoveries,
  otherRecoveries: (await history()).filter((r) => !historyBeforeLoop.some((o) => o.id === r.id) && !loopRecoveries.some((l) => typeof l.record === 'object' && l.record.id === r.id)),
  loop: { ...loopResult, startedAt: loopStartedAt, ms: loopMs },
  linkChanges,
  replayLog,
  final: {
    ifindex: finalLink.ifindex,
    ipLink: { mtu: finalLink.mtu, txqlen: finalLink.txqlen },
    mtu: finalKeys['mtu'],
    txqueuelen: finalKeys['txqueuelen'],
    msglvl: finalKeys['msglvl'],
    rings: finalKeys['rings'],
  },
  shadow: { pendingReads, mtu: shadowOf('mtu'), txqueuelen: shadowOf('txqueuelen'), msglvl: shadowOf('msglvl'), rings: shadowOf('rings') },
  daemonAlive: daemon.exitCode === null,
  pid: daemon.pid,
  status: { exitCode: cliStatus.exitCode, stderr: cliStatus.stderr, result: cliStatus.exitCode === 0 ? (JSON.parse(cliStatus.stdout) as StatusResult) : null },
  pingMs: await replyAfter(Date.now(), 10_000),
};
note(
  `configuration loop: ${loopResult.iterations} passes in ${loopMs} ms, ${loopResult.failures.length} failures, last ${JSON.stringify(loopResult.last)}${loopResult.stuck ? `, stuck in ${loopResult.stuck}` : ''}; ` +
    `final ${JSON.stringify(underLoop.final)}, shadow ${JSON.stringify(underLoop.shadow)}`,
);

// ---- killed mid-recovery ---------------------------------------------------
await sleep(1000);
const poller = await openHelper();
const killInject = await shadowctl('inject', dev, 'tx-hang');
const killFaultAt = Date.now();
let restartingSeenAt: number | null = null;
let polls = 0;
while (Date.now() - killFaultAt < 30_000) {
  const r = await poller.request(`txstat net:${dev}`);
  polls++;
  if (r.ok && r.payload.includes(' state=restarting ')) {
    restartingSeenAt = Date.now();
    break;
  }
  await sleep(2);
}
const recoveryAtKill = (await history()).at(-1);
let killedAt: number | null = null;
const states: string[] = [];
let backAt: number | null = null;
if (restartingSeenAt !== null) {
  process.kill(daemon.pid!, 'SIGKILL');
  killedAt = Date.now();
  for (let last = ''; Date.now() - killedAt < 30_000; await sleep(5)) {
    const r = await poller.request(`txstat net:${dev}`);
    const text = r.ok ? r.payload : `err ${r.errno} ${r.message}`;
    const state = / (state=\S+ running=\d carrier=\d)/.exec(text)?.[1] ?? text;
    if (state !== last) states.push(`${Date.now() - killedAt} ms: ${state}`);
    last = state;
    if (text.includes(' state=passive running=1 ')) {
      backAt = Date.now();
      break;
    }
  }
}
await poller.close();
const killedDaemon = await daemon;
const killed = {
  inject: killInject,
  restartingAfterMs: restartingSeenAt === null ? null : restartingSeenAt - killFaultAt,
  polls,
  recoveryAtKill: recoveryAtKill ?? null,
  daemonSignal: killedDaemon.signal ?? null,
  states,
  backMs: backAt === null || killedAt === null ? null : backAt - killedAt,
  pingMs: killedAt === null ? null : await replyAfter(killedAt, 20_000),
  ifindex: ifindexOf(),
  hasDriver: hasDriver(),
  txstat: await txstat(),
};
note(`killed ${killed.restartingAfterMs} ms after the fault (${polls} polls); passive and running ${killed.backMs} ms after the kill, ping ${killed.pingMs} ms after: ${states.join(' | ')}`);

// The next shadowd, with the same state and configuration.
const logBefore = daemonLog.length;
const second = await startDaemon();
daemon = second.daemon;
note(`second shadowd ready after ${second.readyMs} ms (pid ${daemon.pid})`);
const afterRestart = await history();
const loop = await watchQuiet(QUIET_AFTER_RESTART_MS, afterRestart);
const restarted = {
  readyMs: second.readyMs,
  history: await cliHistory(),
  loop,
  daemonAlive: daemon.exitCode === null,
  pid: daemon.pid,
  status: await status(),
  pingMs: await replyAfter(Date.now(), 10_000),
  log: daemonLog.slice(logBefore).split('\n').slice(0, 30).join('\n'),
};
note(`after ${QUIET_AFTER_RESTART_MS} ms: ${loop.historyChanged.length} history changes, states ${loop.states.join(', ')}`);

// The restarted daemon still recovers within its policy: the manual recovery
// reset the device's count, so a new failure is recovered, not given up on.
const againAt = Date.now();
const againInject = await shadowctl('inject', dev, 'tx-hang');
let againRecord: RecoveryRecord | null = null;
for (const until = Date.now() + 60_000; Date.now() < until && !againRecord; await sleep(200)) {
  againRecord = (await history()).find((r) => !afterRestart.some((o) => o.id === r.id) && r.result !== 'in-progress') ?? null;
}
const again = {
  inject: againInject,
  record: againRecord,
  ms: Date.now() - againAt,
  pingMs: await replyAfter(Date.now(), 15_000),
  txstat: await txstat(),
};
note(`a fault after the restart: ${againRecord ? `${againRecord.trigger}:${againRecord.result}` : 'nothing'} in ${again.ms} ms`);
await shadowctl('inject', dev, 'clear');

// process.kill, not daemon.kill: execa's would follow with SIGKILL after 5 s.
const stopAt = Date.now();
process.kill(daemon.pid!, 'SIGTERM');
const stopTimer = setTimeout(() => daemon.kill('SIGKILL'), 60_000);
const stopped = await daemon;
clearTimeout(stopTimer);
const stopMs = Date.now() - stopAt;
note(`second shadowd stopped on SIGTERM in ${stopMs} ms: ${stopped.exitCode ?? stopped.signal}`);
await ping.stop();

console.log(
  `POLICY_RESULT ${JSON.stringify({
    dev,
    policy: POLICY,
    ifindexBefore,
    giveUp: { inject, faultAt, injectMs, seenAfterMs: giveUpSeenAt === null ? null : giveUpSeenAt - faultAt, history: atGiveUp, txstat: txstatAtGiveUp, quiet, parked },
    retry,
    manual,
    underLoop,
    killed,
    restarted,
    again,
    stopped: { exitCode: stopped.exitCode ?? null, signal: stopped.signal ?? null, ms: stopMs },
    daemonLog: daemonLog.split('\n').slice(-200).join('\n'),
  })}`,
);
