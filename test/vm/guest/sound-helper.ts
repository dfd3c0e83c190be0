// Runs inside the guest, as root, for test/vm/classes/sound/sound-helper.test.ts:
// loads the sound drivers of the cards the guest has and the helper module
// (allow_faults=1), and drives the helper's sound class on every card for
// real: for each fault, a player (aplay on hw:CARD,0) is playing a known
// source when the fault is injected; the stream must stop advancing; then
// the helper restarts the card's driver in place and the player must go on
// to the end and exit 0. Two faults go in before the player starts instead
// (HELD_AT): fail-prepare, and fail-stop on an idle card (fail-stop@idle),
// whose first call into the driver (prepare, hw_params) the guard must hold
// and name in the kernel log until the restart; the player then plays to
// the end and exits 0 as well. And fail-stop@start: the card fails between
// a player's prepare and its start (aplay fed from a pipe, held short of
// its start threshold), so the driver fails the start itself, which the
// core calls where nothing may wait: the guard takes it as done and names
// it in the kernel log, and after the restart the player plays to the end
// and exits 0 (without the guard: write error, Input/output error, as the
// fault campaign found). Also: bad input, a reload refused before the
// card is touched, a park that lets the player fail instead of hang, and
// rmmod with a fault active. Prints one "SOUND_RESULT <json>" line; exits 1
// listing what went wrong.
//   node dist/test/vm/guest/sound-helper.js [--seconds S] [--faults a,b]
// (a fault: lost-irq, fail-stop, fail-prepare, fail-stop@idle or fail-stop@start)
import { performance } from 'node:perf_hooks';
import process from 'node:process';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { readFileSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import { helperCommand, loadHelper } from './nic-setup.js';
import { checkAppNames, hwPtr, loadSoundDrivers, SOUND_APPS, soundCards, soundSource, waitRunning, type Card } from './sound-apps.js';

const { values: opts } = parseArgs({
  options: {
    seconds: { type: 'string', default: '8' },
    faults: { type: 'string', default: 'lost-irq,fail-stop,fail-prepare,fail-stop@idle,fail-stop@start' },
    apps: { type: 'string', default: 'aplay-hw,aplay-dmix,arecord-hw' },
  },
});
const SECONDS = Number(opts.seconds);
const FAULTS = opts.faults.split(',').filter(Boolean);

const APPS = SOUND_APPS;
const APP_NAMES = opts.apps.split(',').filter(Boolean);
checkAppNames(APP_NAMES);

/**
 * Faults injected before the player starts, by run name: the helper's fault,
 * and the entry point whose failure the guard must hold for the restart.
 */
const HELD_AT: Record<string, { inject: string; entry: 'prepare' | 'hw_params' }> = {
  // A stream is prepared as it starts (and after an underrun).
  'fail-prepare': { inject: 'fail-prepare', entry: 'prepare' },
  // A card that fails while nothing plays: the next player's hw_params is
  // the first call to fail (docs/campaign.md, faults 32, 53, 104, ...), and
  // no stream runs for a detector to see stall.
  'fail-stop@idle': { inject: 'fail-stop', entry: 'hw_params' },
};

interface PlayRun {
  card: string;
  driver: string;
  app: string;
  fault: string;
  /** hw_ptr of the stream over the 600 ms after the fault: unchanged when the fault took (HELD_AT: the guard held the call). */
  stalled: boolean;
  restart: string;
  restartMs: number;
  exitCode: number | undefined;
  stderr: string;
  playedMs: number;
}

const problems: string[] = [];
const problem = (s: string): void => {
  problems.push(s);
  console.error(`PROBLEM: ${s}`);
};

async function playWithFault(card: Card, appName: string, fault: string, wav: string, id: string): Promise<PlayRun> {
  const app = APPS[appName]!;
  const started = performance.now();
  const argv = app.argv(card, wav, SECONDS);
  let stalled: boolean;
  let player: ResultPromise<{ reject: false }>;
  const held = HELD_AT[fault];
  if (held) {
    // The fault is in before the application starts: its first call into
    // the driver at the entry point fails, and the guard holds it and says
    // so in the kernel log, the daemon's cue.
    const mark = await kernelLogMark();
    const inj = await helperCommand(`inject sound:${card.name} ${held.inject}`);
    if (!inj.startsWith('ok injected')) problem(`${card.name}: inject ${held.inject}: ${inj}`);
    player = execa(argv[0]!, argv.slice(1), { reject: false, env: app.env?.(card) });
    stalled = await kernelLogShows(mark, new RegExp(`sound:${card.name}: ${held.entry} of pcmC${card.number}D0. failed: error -5; the caller waits`));
    if (!stalled) problem(`${card.name} ${appName} ${fault}: no held ${held.entry} in the kernel log`);
  } else {
    player = execa(argv[0]!, argv.slice(1), { reject: false, env: app.env?.(card) });
    if (!(await waitRunning(card, app.stream, 5000))) problem(`${card.name}: ${appName}'s stream never ran`);
    await sleep(1000);
    // The interrupt position (the helper's `periods`) moves while the card interrupts.
    const irqBefore = await periodPosition(card, app.stream);
    await sleep(500);
    const irqPlaying = await periodPosition(card, app.stream);
    if (irqBefore === null || irqBefore === irqPlaying) problem(`${card.name} ${appName}: the interrupt position did not move while playing (${irqBefore} → ${irqPlaying})`);
    const inj = await helperCommand(`inject sound:${card.name} ${fault}`);
    if (!inj.startsWith('ok injected')) problem(`${card.name}: inject ${fault}: ${inj}`);
    await sleep(300);
    const before = hwPtr(card, app.stream);
    const irqFault = await periodPosition(card, app.stream);
    await sleep(200);
    const irqSoon = await periodPosition(card, app.stream);
    await sleep(400);
    const after = hwPtr(card, app.stream);
    const irqAfter = await periodPosition(card, app.stream);
    stalled = before !== null && before === after;
    // Under lost-irq the DMA goes on and reading the status moves hw_ptr:
    // only fail-stop must freeze it. Lost interrupts freeze the interrupt position.
    if (!stalled && fault === 'fail-stop') problem(`${card.name} ${appName} ${fault}: the stream went on advancing (${before} → ${after})`);
    // With its interrupts lost only these status reads feed the stream: by the
    // last one it may have run dry and stopped (an underrun: no position,
    // null), or the player may have prepared and started it again after the
    // underrun (a new stream's position, 0, which lost interrupts keep at 0).
    const moved = (from: string | null, to: string | null): boolean => to !== null && to !== '0' && to !== from;
    if (fault === 'lost-irq' && (irqFault === null || moved(irqFault, irqSoon) || moved(irqSoon ?? irqFault, irqAfter))) {
      problem(`${card.name} ${appName} lost-irq: the interrupt position moved (${irqFault} → ${irqSoon} → ${irqAfter})`);
    }
  }
  return restartAndFinish({ card, app: appName, fault, stalled, id, player, program: argv[0]!, started });
}

/** The kernel log's length now: kernelLogShows() looks at what comes after it. */
async function kernelLogMark(): Promise<number> {
  return (await execa('dmesg')).stdout.split('\n').length;
}

/** Whether a kernel log line after `mark` matches `line`, looked for over 5 s. */
async function kernelLogShows(mark: number, line: RegExp): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    await sleep(100);
    if ((await execa('dmesg')).stdout.split('\n').slice(mark).some((l) => line.test(l))) return true;
  }
  return false;
}

/** The card restarted through the helper, then the player's end: the run's figures, a problem if either went wrong. */
async function restartAndFinish(o: { card: Card; app: string; fault: string; stalled: boolean; id: string; player: ResultPromise<{ reject: false }>; program: string; started: number }): Promise<PlayRun> {
  const { card, id } = o;
  const t0 = performance.now();
  const restart = await helperCommand(`restart sound:${card.name} ${id}`);
  const restartMs = Math.round(performance.now() - t0);
  if (!restart.startsWith(`ok restarted sound:${card.name} id=${id} card=${card.number} `)) problem(`${card.name} ${o.fault}: restart: ${restart}`);
  const r = await o.player;
  const run: PlayRun = {
    card: card.name, driver: card.driver, app: o.app, fault: o.fault, stalled: o.stalled, restart, restartMs,
    exitCode: r.exitCode, stderr: String(r.stderr).slice(-400), playedMs: Math.round(performance.now() - o.started),
  };
  if (r.exitCode !== 0) problem(`${card.name} ${o.app} ${o.fault}: ${o.program} exited ${r.exitCode}: ${run.stderr}`);
  return run;
}

/** The state of the card's pcm0p/sub0 as /proc says it (PREPARED, RUNNING ...), null when closed. */
function playbackState(card: Card): string | null {
  try {
    return /^state: (\S+)/m.exec(readFileSync(`/proc/asound/card${card.number}/pcm0p/sub0/status`, 'utf8'))?.[1] ?? null;
  } catch {
    return null;
  }
}

/**
 * fail-stop@start: aplay reads the source from a pipe; its first 100 ms
 * leave the stream PREPARED (aplay starts it once its buffer is full), the
 * card fail-stops, and the rest of the source makes aplay start the stream:
 * the driver fails the start, which the guard takes as done and names in
 * the kernel log; the stream stays still until the restart, after which
 * aplay plays to the end and exits 0.
 */
async function startWithFault(card: Card, wav: string, id: string): Promise<PlayRun> {
  const started = performance.now();
  const source = readFileSync(wav);
  // The WAV header (44 bytes) and 100 ms of 48 kHz 16-bit stereo.
  const first = 44 + 48_000 * 4 / 10;
  const player = execa('aplay', ['-q', '-D', `hw:${card.number},0`, '-'], { reject: false, stdin: 'pipe' });
  player.stdin.write(source.subarray(0, first));
  let state: string | null = null;
  for (let i = 0; i < 50 && state !== 'PREPARED'; i++) {
    await sleep(100);
    state = playbackState(card);
  }
  if (state !== 'PREPARED') problem(`${card.name} fail-stop@start: the stream was ${state ?? 'not open'}, not PREPARED, before the fault`);
  const mark = await kernelLogMark();
  const inj = await helperCommand(`inject sound:${card.name} fail-stop`);
  if (!inj.startsWith('ok injected')) problem(`${card.name}: inject fail-stop: ${inj}`);
  player.stdin.end(source.subarray(first));
  const held = await kernelLogShows(mark, new RegExp(`sound:${card.name}: trigger of pcmC${card.number}D0p failed: error -5; the stream waits`));
  if (!held) problem(`${card.name} fail-stop@start: no held start in the kernel log (the stream is ${playbackState(card) ?? 'closed'})`);
  // Taken as started: RUNNING, its position still.
  const before = hwPtr(card, 'pcm0p');
  await sleep(300);
  const after = hwPtr(card, 'pcm0p');
  const stalled = held && before !== null && before === after;
  if (held && !stalled) problem(`${card.name} fail-stop@start: the stream taken as started moved (${before} → ${after})`);
  return restartAndFinish({ card, app: 'aplay-pipe', fault: 'fail-stop@start', stalled, id, player, program: 'aplay', started });
}

/** The helper's interrupt position of the card's first substream of `stream` (pcm0p), null when not running. */
async function periodPosition(card: Card, stream: string): Promise<string | null> {
  const reply = await helperCommand(`periods sound:${card.name}`);
  if (!reply.startsWith(`ok periods sound:${card.name} running=`)) problem(`${card.name}: periods: ${reply}`);
  return new RegExp(`\\s${stream}/sub0=(\\d+)`).exec(reply)?.[1] ?? null;
}

/** A short play on the card, to see it works: the player's exit status. */
async function playsFine(card: Card, wav: string): Promise<number | undefined> {
  const r = await execa('aplay', ['-q', '-D', `hw:${card.number},0`, '-d', '2', wav], { reject: false, timeout: 20_000 });
  return r.exitCode;
}

/**
 * A park ends the player with an error instead of leaving it waiting; a
 * restart brings the card back. Then the module unloads with a fault active
 * and the card plays on its driver's own entry points.
 */
async function parkAndUnload(found: Card[], wav: string): Promise<Record<string, unknown>> {
  const card = found[0]!;
  const player = execa('aplay', ['-q', '-D', `hw:${card.number},0`, wav], { reject: false, timeout: 30_000 });
  if (!(await waitRunning(card, 'pcm0p', 5000))) problem(`${card.name}: aplay's stream never ran before the park`);
  const t0 = performance.now();
  const park = await helperCommand(`park sound:${card.name} p1`);
  if (park !== `ok parked sound:${card.name} id=p1`) problem(`park: ${park}`);
  const parked = await player;
  const parkedExitMs = Math.round(performance.now() - t0);
  if (parked.exitCode === 0 || parked.timedOut) problem(`a player on a parked card did not fail: exit ${parked.exitCode}, timed out ${parked.timedOut}`);
  const back = await helperCommand(`restart sound:${card.name} p2`);
  if (!back.startsWith(`ok restarted sound:${card.name} id=p2 `)) problem(`restart after park: ${back}`);
  const afterPark = await playsFine(card, wav);
  if (afterPark !== 0) problem(`${card.name} does not play after the park and restart: exit ${afterPark}`);
  const last = found[found.length - 1]!;
  const inj = await helperCommand(`inject sound:${last.name} fail-stop`);
  const rmmod = await execa('rmmod', ['shadow_helper'], { reject: false });
  if (rmmod.exitCode !== 0) problem(`rmmod with a fault active: ${rmmod.stderr}`);
  const afterUnload = await playsFine(last, wav);
  if (afterUnload !== 0) problem(`${last.name} does not play after the module went with fail-stop active: exit ${afterUnload}`);
  return { park: { reply: park, exitCode: parked.exitCode, stderr: String(parked.stderr).slice(-200), exitMs: parkedExitMs, back, afterPark }, unload: { inject: inj, rmmod: rmmod.exitCode, afterUnload } };
}

async function main(): Promise<void> {
  await loadSoundDrivers();
  await loadHelper(true);
  const version = await helperCommand('version');
  if (!/classes=[a-z,]*sound/.test(version)) problem(`the helper has no sound class: ${version}`);
  const wav = '/tmp/sound-helper-source.wav';
  await soundSource(wav, SECONDS);
  const runs: PlayRun[] = [];
  const found = soundCards();
  let n = 0;
  for (const card of found) {
    const held = await helperCommand(`hold sound:${card.name} 5000`);
    if (!/^ok held sound:card\d+ ms=5000 substreams=[1-9]/.test(held)) problem(`${card.name}: hold: ${held}`);
    for (const app of APP_NAMES) for (const fault of FAULTS.filter((f) => f !== 'fail-stop@start')) runs.push(await playWithFault(card, app, fault, wav, `snd-${++n}`));
    if (FAULTS.includes('fail-stop@start')) runs.push(await startWithFault(card, wav, `snd-${++n}`));
  }
  const bad: Record<string, string> = {};
  for (const cmd of ['restart sound:card99 x1', 'restart sound:cardx x2', 'restart sound:card00 x3', 'inject sound:card0 bogus', `restart sound:${found[0]?.name ?? 'card0'} x4 reload`]) {
    bad[cmd] = await helperCommand(cmd);
  }
  const extra = found.length ? await parkAndUnload(found, wav) : {};
  const dmesg = (await execa('dmesg')).stdout.split('\n').filter((l) => /shadow_helper|snd|ALSA|WARNING|BUG|Oops|ens1370|intel8x0/i.test(l)).slice(-60);
  if (dmesg.some((l) => /WARNING:|BUG:|Oops/.test(l))) problem('the kernel log has a WARNING, BUG or Oops');
  console.log(`SOUND_RESULT ${JSON.stringify({ version, cards: found, runs, bad, ...extra, dmesg, problems })}`);
  process.exitCode = problems.length ? 1 : 0;
}

await main();
