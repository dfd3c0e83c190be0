// The sound class end to end, in the guest: shadowd runs (its taps, its
// shadow, its detectors, the helper), a sound application is playing or
// recording on each card, and the card's driver fails (a fault injected
// through shadowctl). shadowd must detect the failure on its own and
// recover the card; the application must go on to its end and exit 0.
// Then a manual `shadowctl recover` under a playing player, and what
// `status`, `show` and `history` say of the cards. Prints one
// "SOUND_RECOVERY <json>" line; exits 1 listing what went wrong.
// With --inputs (a folder made by sound-apps/recovery-inputs.ts on the
// host) each run plays a source of its own (a player its own WAV, the
// speech synthesizer its own paragraph in its own voice), which the host
// then finds in QEMU's recording of the card: the audio is proven, not
// only the exit codes. Without it every run plays one sweep made here.
// --drain-faults runs aplay on each card once more per fault given, with
// the fault injected (on the control socket, without starting shadowctl)
// as soon as the stream is DRAINING: the player has written its whole file
// and waits in its drain for the end of its buffer to play.
// --cases lists the runs as APP:FAULT (default: every app of --apps under
// every fault of --faults); FAULT@idle injects FAULT before the application
// starts, on an idle card. The game (the mmap client, --inputs only) turns
// its card's volume down mid-run before its fault goes in: the value it set
// must still be there when it ends. The recorder (arecord-hw) records on the
// second card of each driver (by PCI address: the rig gives it a silent
// backend, QEMU's recording one has no input); the players play on the
// first. Every card's volumes are set to 100 % before shadowd starts, as a
// real system's `alsactl restore` at boot does.
//   node dist/test/vm/guest/sound-recovery-scenario.js [--seconds S]
//     [--faults a,b] [--apps a,b] [--cases app:fault,...] [--inputs DIR]
//     [--drain-faults a,b]
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { execa, type ResultPromise } from 'execa';
import { request } from '../../../daemon/control/control-client.js';
import { controlFor, shadowctlFor } from './block-shadowctl.js';
import { loadHelper } from './nic-setup.js';
import { shadowdEnv, startShadowd } from './shadowd-process.js';
import { checkAppNames, hwPtr, initMixer, loadSoundDrivers, mixerVolume, pickMixerElement, SOUND_APPS, soundCards, soundSource, waitRunning, type Card } from './sound-apps.js';
import { durationMs, parseWav } from '../audio/wav.js';
import { GAME_MIXER_AT_MS, GAME_MIXER_PERCENT } from '../sound-apps/apps.js';
import { loadRecoveryInputs, recoveryRunKey, type RecoveryInputs } from '../sound-apps/recovery-inputs.js';

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '9' },
    faults: { type: 'string', default: 'lost-irq,fail-stop,fail-prepare' },
    apps: { type: 'string', default: 'aplay-hw' },
    inputs: { type: 'string' },
    'drain-faults': { type: 'string', default: '' },
    cases: { type: 'string', default: '' },
  },
});
const SECONDS = Number(opts.seconds);
const FAULTS = opts.faults.split(',').filter(Boolean);
const APP_NAMES = opts.apps.split(',').filter(Boolean);
const DRAIN_FAULTS = opts['drain-faults'].split(',').filter(Boolean);
/** The runs, [app, fault]. */
const CASES: [string, string][] = opts.cases
  ? opts.cases.split(',').filter(Boolean).map((c) => {
    const [app, fault, ...rest] = c.split(':');
    if (!app || !fault || rest.length > 0) throw new Error(`--cases: ${JSON.stringify(c)} is not APP:FAULT`);
    return [app, fault];
  })
  : APP_NAMES.flatMap((a) => FAULTS.map((f): [string, string] => [a, f]));
const RECORDER = 'arecord-hw';
const GAME = 'game';
/** How long a fault in a drain is given to be detected: lost-irq's drain may end before (the position moves when read). */
const DRAIN_RECOVERY_WAIT_MS = 8000;
checkAppNames([...APP_NAMES, ...CASES.map(([a]) => a).filter((a) => a !== GAME)]);
const RECOVERY_WAIT_MS = 30_000;

const t0 = Date.now();
const note = (text: string): void => console.log(`[${((Date.now() - t0) / 1000).toFixed(1)} s] ${text}`);
const problems: string[] = [];
const problem = (s: string): void => {
  problems.push(s);
  console.error(`PROBLEM: ${s}`);
};

interface Recovery {
  id: string;
  result: string | null;
  trigger?: string;
  [k: string]: unknown;
}

export interface SoundRecoveryRun {
  card: string;
  driver: string;
  app: string;
  fault: string;
  exitCode: number | undefined;
  stderr: string;
  /** The recoveries of the card this run started, as history has them. */
  recoveries: Recovery[];
  /** From the fault's injection to the recovery's end. */
  recoveredAfterMs: number | null;
  /** Its source's key in the inputs (--inputs), null without (and for the recorder, which has none). */
  source: string | null;
  /** The recorder's recording: the length asked for and the file's (null when it has none); null for a player. */
  recording: { askedMs: number; recordedMs: number | null } | null;
  /** The game's volume: the value it set (from its own report), and the element's value when it had ended; null for another app. */
  mixer: { element: string; set: number | null; after: number | null } | null;
  /** The stream as the kernel had it 300 ms after the fault went in (fail-prepare: not read). */
  afterFault: string | null;
  /** From the application's start to its exit, and to the fault (ms). */
  appMs: number;
  faultAtMs: number;
  /** 'drain': the fault went in while the stream was DRAINING. */
  when: 'mid' | 'drain';
  /** A drain run whose fault no recovery followed: the card recovered by hand afterwards (its fault was still in). */
  clearedByHand: boolean;
}

await loadSoundDrivers();
await loadHelper(true);
// The first card of each driver by PCI address plays (QEMU records it), the second records (on a silent backend).
const ranked = soundCards().map((c, _i, all) => ({ c, rank: all.filter((o) => o.driver === c.driver && o.bus < c.bus).length }));
const cards = ranked.filter((x) => x.rank === 0).map((x) => x.c);
const recordCards = ranked.filter((x) => x.rank === 1).map((x) => x.c);
note(`cards: ${cards.map((c) => `${c.name} (${c.driver}, ${c.bus})`).join(', ')}; recording: ${recordCards.map((c) => `${c.name} (${c.driver}, ${c.bus})`).join(', ') || 'none'}`);
for (const c of [...cards, ...recordCards]) await initMixer(c.number);
const work = mkdtempSync('/tmp/sound-recovery-');
let daemonLog = '';
// Many faults on one card in a few minutes: more than the default policy
// allows before it gives up (that give-up is the recovery-policy test's).
const config = join(work, 'shadowd.conf');
// LostIrqMs=0: the class's own stall detector is what this proves (the core's lost interrupt detector has its own test).
writeFileSync(config, '[Class sound]\nMaxRecoveries=100\nBackoffSec=0\nLostIrqMs=0\n');
const started = await startShadowd(work, (t) => (daemonLog += t.replace(/^(?=.)/gm, `[${((Date.now() - t0) / 1000).toFixed(1)} s] `)), ['--allow-faults', '--config', config, '--log-level', 'debug']);
note(`shadowd ready in ${started.readyMs} ms`);
const ctl = shadowctlFor(work);
// Polls go on the control socket: starting shadowctl takes seconds under TCG, longer than a stream plays.
const poll = controlFor(work);
const wav = join(work, 'source.wav');
const inputs: RecoveryInputs | null = opts.inputs ? loadRecoveryInputs(opts.inputs) : null;
if (!inputs) await soundSource(wav, SECONDS);

/** How a run starts: argv and environment; the game's mixer element, the recorder's recording. */
interface AppRun {
  argv: string[];
  env?: Record<string, string>;
  mixer?: string;
  recording?: string;
}

/** The stream an application runs (its status under /proc/asound/cardN). */
const streamOf = (appName: string): string => (appName === GAME ? 'pcm0p' : SOUND_APPS[appName]!.stream);

/** argv and environment of @appName on @card for run @key: its own source with --inputs. */
async function appRun(card: Card, appName: string, key: string): Promise<AppRun> {
  if (appName === RECORDER) {
    const argv = SOUND_APPS[RECORDER]!.argv(card, wav, SECONDS);
    // Its recording is its last argument: one file per run.
    const recording = join(work, `${key.replace(/\//g, '-')}.wav`);
    return { argv: [...argv.slice(0, -1), recording], recording };
  }
  if (appName === GAME) {
    const src = inputs?.sources[key];
    if (!inputs?.mmapGame || src?.kind !== 'wav') throw new Error(`the game needs --inputs with its source and the compiled game (${key})`);
    const mixer = await pickMixerElement(card.number);
    return { argv: [inputs.mmapGame, '-D', `hw:${card.number},0`, '-f', src.wav, '-c', `hw:${card.number}`, '-e', mixer, '-v', String(GAME_MIXER_PERCENT), '-t', String(GAME_MIXER_AT_MS)], mixer };
  }
  const app = SOUND_APPS[appName]!;
  if (!inputs) return { argv: app.argv(card, wav, SECONDS), env: app.env?.(card) };
  const src = inputs.sources[key];
  if (!src) throw new Error(`no source for ${key} in ${opts.inputs}`);
  if (src.kind === 'wav') return { argv: app.argv(card, src.wav, SECONDS), env: app.env?.(card) };
  // espeak-ng on Debian's default device of the card (plug over dmix), with
  // dmix at 44.1 kHz instead of its 48 kHz: QEMU's ES1370 model plays
  // garbage at 48 kHz (without any fault).
  const home = join(work, `home-${card.name}`);
  mkdirSync(home, { recursive: true });
  writeFileSync(join(home, '.asoundrc'), 'defaults.pcm.dmix.rate 44100\n');
  return { argv: ['espeak-ng', ...src.args, src.text], env: { ...app.env?.(card), HOME: home } };
}

let historyError = '';
async function recoveriesOf(card: Card): Promise<Recovery[]> {
  const h = await poll('history', `sound:${card.name}`, '--json');
  if (h.exitCode === 0) return (JSON.parse(h.stdout) as { recoveries: Recovery[] }).recoveries;
  historyError = `${h.exitCode}: ${h.stdout}${h.stderr}`.slice(0, 300);
  return [];
}

/** Waits for a recovery of the card not in @before to end; returns the new ones. */
async function awaitRecovery(card: Card, before: Set<string>, waitMs = RECOVERY_WAIT_MS): Promise<Recovery[]> {
  const until = Date.now() + waitMs;
  for (;;) {
    const fresh = (await recoveriesOf(card)).filter((r) => !before.has(r.id));
    if (fresh.length > 0 && fresh.every((r) => r.result !== null && r.result !== 'in-progress')) return fresh;
    if (Date.now() > until) return fresh;
    await sleep(200);
  }
}

async function shadowSeesRunning(card: Card): Promise<boolean> {
  const until = Date.now() + 10_000;
  while (Date.now() < until) {
    const r = await poll('show', `sound:${card.name}`);
    if (r.exitCode === 0 && r.stdout.includes('"RUNNING"')) return true;
    await sleep(200);
  }
  return false;
}

function streamState(card: Card, stream: string): string | null {
  const f = `/proc/asound/card${card.number}/${stream}/sub0/status`;
  const text = existsSync(f) ? readFileSync(f, 'utf8') : '';
  return /state: ([A-Z]+)/.exec(text)?.[1] ?? null;
}

/** The application's stream as the kernel has it (a few fields), for the run's record. */
function kernelStream(card: Card, stream: string): string {
  const proc = `/proc/asound/card${card.number}/${stream}/sub0/status`;
  return existsSync(proc) ? readFileSync(proc, 'utf8').split('\n').filter((l) => /state|hw_ptr|appl_ptr|avail/.test(l)).join('; ') : 'closed';
}

/** Injects on the control socket: no node to start, the fault goes in within milliseconds. */
async function injectNow(card: Card, fault: string): Promise<void> {
  const reply = await request<unknown>(shadowdEnv(work)['SHADOWD_SOCKET']!, 'inject', { device: `sound:${card.name}`, fault, sticky: false }, 30_000);
  if (!reply.ok) problem(`inject sound:${card.name} ${fault} on the control socket: ${reply.error.message}`);
}

/** aplay with @fault injected while its stream drains. */
async function runWithDrainFault(card: Card, fault: string): Promise<SoundRecoveryRun> {
  const appName = 'aplay-hw';
  const app = SOUND_APPS[appName]!;
  const key = recoveryRunKey(card.driver, appName, `${fault}@drain`);
  const { argv, env } = await appRun(card, appName, key);
  const before = new Set((await recoveriesOf(card)).map((r) => r.id));
  const appStart = performance.now();
  const player = execa(argv[0]!, argv.slice(1), { reject: false, env });
  let exited = false;
  void player.finally(() => (exited = true));
  let injectedAt: number | null = null;
  let afterFault: string | null = null;
  while (!exited && performance.now() - appStart < 30_000) {
    if (streamState(card, app.stream) === 'DRAINING') {
      injectedAt = performance.now();
      await injectNow(card, fault);
      afterFault = `at the fault: ${kernelStream(card, app.stream)}`;
      await sleep(300);
      afterFault += `; 300 ms later: ${kernelStream(card, app.stream)}`;
      note(`${card.name} ${fault} in the drain, ${afterFault}`);
      break;
    }
    await sleep(5);
  }
  if (injectedAt === null) problem(`${card.name} aplay ${fault}@drain: the stream was never seen DRAINING: no fault went in`);
  const p = await player;
  const appMs = Math.round(performance.now() - appStart);
  let recoveries = injectedAt === null ? [] : await awaitRecovery(card, before, DRAIN_RECOVERY_WAIT_MS);
  const recoveredAfterMs = recoveries.length && injectedAt !== null ? Math.round(performance.now() - injectedAt) : null;
  for (const r of recoveries) if (r.result !== 'recovered') problem(`${card.name} aplay ${fault}@drain: recovery ${r.id} ended ${r.result}`);
  let clearedByHand = false;
  if (injectedAt !== null && recoveries.length === 0) {
    // The drain ended without a recovery (the fault went in too late to
    // stall it): the card still has the fault; recover it by hand for the
    // runs after this one.
    note(`${card.name} ${fault}@drain: no recovery followed (the drain ended first); recovering the card by hand`);
    const r = await ctl('recover', `sound:${card.name}`);
    if (r.exitCode !== 0) problem(`shadowctl recover sound:${card.name} after ${fault}@drain: ${r.stdout}${r.stderr}`);
    clearedByHand = true;
    recoveries = [];
  }
  if (p.exitCode !== 0) problem(`${card.name} aplay ${fault}@drain: exited ${p.exitCode}: ${String(p.stderr).slice(-300)}`);
  await sleep(500);
  return {
    card: card.name, driver: card.driver, app: appName, fault: `${fault}@drain`, exitCode: p.exitCode, stderr: String(p.stderr).slice(-300), recoveries, recoveredAfterMs,
    source: inputs ? key : null, recording: null, mixer: null, afterFault, appMs, faultAtMs: injectedAt === null ? -1 : Math.round(injectedAt - appStart), when: 'drain', clearedByHand,
  };
}

/** The value the game reports it set its volume to ("GAME <ms> mixer CTL ELEMENT set to N ..."), null before it has. */
const gameSetTo = (stdout: string): number | null => {
  const m = /^GAME \d+ mixer \S+ .+ set to (-?\d+) /m.exec(stdout);
  return m ? Number(m[1]) : null;
};

async function runWithFault(card: Card, appName: string, fault: string): Promise<SoundRecoveryRun> {
  const stream = streamOf(appName);
  const key = recoveryRunKey(card.driver, appName, fault);
  const { argv, env, mixer, recording } = await appRun(card, appName, key);
  // Each game starts at full volume, as the first did: its own step down is what its audio must show.
  if (mixer) await initMixer(card.number);
  const before = new Set((await recoveriesOf(card)).map((r) => r.id));
  let player: ResultPromise<{ reject: false }>;
  let injectedAt: number;
  let afterFault: string | null = null;
  const appStart = performance.now();
  // On the control socket (what shadowctl inject sends): starting shadowctl
  // takes seconds under TCG on a loaded host, and a fault meant for the
  // middle of the stream then landed after it had ended.
  // FAULT@idle: the card fails while nothing plays (fail-stop@idle: the next
  // stream's hw_params is the first call to fail), the fault in before the
  // application starts, as fail-prepare's is.
  const idle = fault.endsWith('@idle');
  const inject = (): Promise<void> => injectNow(card, idle ? fault.slice(0, -'@idle'.length) : fault);
  if (fault === 'fail-prepare' || idle) {
    // The stream's first prepare (or hw_params) fails: the fault goes in before it starts.
    injectedAt = performance.now();
    await inject();
    player = execa(argv[0]!, argv.slice(1), { reject: false, env });
  } else {
    player = execa(argv[0]!, argv.slice(1), { reject: false, env });
    let out = '';
    player.stdout?.on('data', (d: Buffer) => (out += d.toString()));
    if (!(await waitRunning(card, stream, 15_000))) problem(`${card.name}: ${appName}'s stream never ran`);
    // The shadow has seen the stream start (its taps), as on a machine where
    // the application has been playing for a while.
    if (!(await shadowSeesRunning(card))) problem(`${card.name}: the shadow never showed ${appName}'s stream RUNNING`);
    await sleep(1000);
    // The game's volume change goes in before its fault: the recovery must keep it.
    for (let i = 0; mixer && gameSetTo(out) === null && i < 50; i++) await sleep(100);
    if (mixer && gameSetTo(out) === null) problem(`${card.name} game: it had not set its volume 6 s after its stream ran: ${out.slice(-300)}`);
    if (hwPtr(card, stream) === null) problem(`${card.name} ${appName}: the stream no longer ran when the fault was to go in (the test's timing)`);
    injectedAt = performance.now();
    await inject();
    // What the kernel and the shadow say of the stream a moment later (printed, for a run that goes wrong).
    await sleep(300);
    const proc = `/proc/asound/card${card.number}/${stream}/sub0/status`;
    const kernel = existsSync(proc) ? readFileSync(proc, 'utf8').split('\n').filter((l) => /state|hw_ptr|appl_ptr|avail/.test(l)).join('; ') : 'closed';
    const shadow = await poll('show', `sound:${card.name}`);
    const streamState = /"state":\s*"([A-Z]+)"/.exec(shadow.stdout)?.[1] ?? 'none';
    afterFault = kernel;
    note(`${card.name} 300 ms after the fault: kernel ${kernel}; shadow ${streamState}`);
  }
  const recoveries = await awaitRecovery(card, before);
  const recoveredAfterMs = recoveries.length ? Math.round(performance.now() - injectedAt) : null;
  if (recoveries.length === 0) problem(`${card.name} ${appName} ${fault}: shadowd did not recover the card within ${RECOVERY_WAIT_MS / 1000} s (history: ${historyError || 'no new recovery'})`);
  for (const r of recoveries) if (r.result !== 'recovered') problem(`${card.name} ${appName} ${fault}: recovery ${r.id} ended ${r.result}`);
  const p = await player;
  const appMs = Math.round(performance.now() - appStart);
  if (p.exitCode !== 0) problem(`${card.name} ${appName} ${fault}: ${argv[0]} exited ${p.exitCode}: ${String(p.stderr).slice(-300)}`);
  let recordedMs: number | null = null;
  if (recording) {
    try {
      recordedMs = Math.round(durationMs(parseWav(readFileSync(recording))));
    } catch (err) {
      problem(`${card.name} ${appName} ${fault}: its recording ${recording} cannot be read: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  let volume: SoundRecoveryRun['mixer'] = null;
  if (mixer) {
    volume = { element: mixer, set: gameSetTo(String(p.stdout)), after: await mixerVolume(card.number, mixer) };
    if (volume.set === null || volume.after !== volume.set) problem(`${card.name} game ${fault}: it set ${mixer} to ${volume.set ?? 'nothing'}, and ${mixer} was ${volume.after ?? 'unreadable'} when it had ended`);
  }
  // The fault is lifted by the restart; a sticky one was not asked for.
  // A pause between runs: each run's audio apart from the next in the card's recording.
  await sleep(500);
  return {
    card: card.name, driver: card.driver, app: appName, fault, exitCode: p.exitCode, stderr: String(p.stderr).slice(-300), recoveries, recoveredAfterMs,
    source: inputs && !recording ? key : null, recording: recording ? { askedMs: SECONDS * 1000, recordedMs } : null, mixer: volume, afterFault, appMs, faultAtMs: Math.round(injectedAt - appStart), when: 'mid', clearedByHand: false,
  };
}

const runs: SoundRecoveryRun[] = [];
for (const card of cards) {
  for (const [app, fault] of CASES) {
    if (app === RECORDER) continue;
    note(`${card.name} ${app} ${fault}`);
    runs.push(await runWithFault(card, app, fault));
  }
  for (const fault of DRAIN_FAULTS) {
    note(`${card.name} aplay-hw ${fault} in the drain`);
    runs.push(await runWithDrainFault(card, fault));
  }
}
if (CASES.some(([a]) => a === RECORDER) && recordCards.length === 0) problem('recorder runs were asked for, but no driver has a second card to record on');
for (const card of recordCards) {
  for (const [app, fault] of CASES) {
    if (app !== RECORDER) continue;
    note(`${card.name} ${app} ${fault}`);
    runs.push(await runWithFault(card, app, fault));
  }
}

// A manual recovery under a playing player.
const manual: Record<string, unknown> = {};
if (cards.length > 0) {
  const card = cards[0]!;
  const key = recoveryRunKey(card.driver, 'aplay-hw', 'manual');
  manual['source'] = inputs ? key : null;
  const { argv } = await appRun(card, 'aplay-hw', key);
  const player = execa(argv[0]!, argv.slice(1), { reject: false });
  await waitRunning(card, 'pcm0p', 5000);
  await sleep(1000);
  const r = await ctl('recover', `sound:${card.name}`);
  const p = await player;
  manual['recover'] = { exitCode: r.exitCode, output: `${r.stdout}${r.stderr}`.slice(-600) };
  manual['player'] = { exitCode: p.exitCode, stderr: String(p.stderr).slice(-300) };
  if (r.exitCode !== 0) problem(`shadowctl recover sound:${card.name}: ${r.stdout}${r.stderr}`);
  if (p.exitCode !== 0) problem(`aplay under a manual recover exited ${p.exitCode}: ${p.stderr}`);
}

const status = await ctl('status', '--json');
const show = cards.length ? await ctl('show', `sound:${cards[0]!.name}`, '--json') : null;
const history = await ctl('history', '--json');
const dmesg = (await execa('dmesg')).stdout.split('\n');
if (dmesg.some((l) => /WARNING:|BUG:|Oops/.test(l))) problem('the kernel log has a WARNING, BUG or Oops');
started.daemon.kill('SIGTERM');
await started.daemon;
console.log(`SOUND_RECOVERY ${JSON.stringify({
  readyMs: started.readyMs,
  cards,
  runs,
  manual,
  status: status.exitCode === 0 ? JSON.parse(status.stdout) as unknown : status.stderr,
  show: show && show.exitCode === 0 ? JSON.parse(show.stdout) as unknown : show?.stderr,
  history: history.exitCode === 0 ? JSON.parse(history.stdout) as unknown : history.stderr,
  dmesg: dmesg.filter((l) => /shadow_helper|WARNING|BUG|Oops/.test(l)).slice(-40),
  daemonLog: daemonLog.split('\n').filter((l) => /sound|card\d|error|warning/i.test(l)).slice(-150),
  problems,
})}`);
process.exitCode = problems.length ? 1 : 0;
