// The sound class's control scenario, in the guest, without shadowd: on each
// playing card an audio player (aplay -D hw:N,0), an mp3 player (mpg123 -a
// hw:N,0), a speech synthesizer (espeak-ng through a plug to hw:N,0, set as
// ALSA's default in a private HOME) and the mmap game (alsa-lib mmap, mixer
// volume change at 1.5 s) play in turn, and on each recording card arecord
// records for a fixed time. Run "nofault" first (every app alone, no fault:
// shows the proof can pass), then "control": 2.5 s after the app's stream is
// RUNNING the card's PCI device is unbound from its driver and bound again.
// One JSON line per app and run (SOUND_APP_RESULT ...); the host proves the
// sound from QEMU's recordings.
//   node dist/test/vm/guest/sound-control.js --inputs DIR --card DRIVER:play|record ... [--runs nofault,control]
// The --card list is in the order of the rig's sound presets; the k-th card
// of a driver is its k-th PCI function by address.
import { mkdirSync, readFileSync, readdirSync, readlinkSync, realpathSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { loadSoundInputs, SPEECH_ARGS, SPEECH_TEXT, type SoundRun } from '../sound-apps/inputs.js';
import { durationMs, parseWav } from '../audio/wav.js';
import { initMixer, pickMixerElement } from './sound-apps.js';
import { FAULT_AFTER_MS, GAME_MIXER_AT_MS, GAME_MIXER_PERCENT, PLAY_APPS, RECORD_SECONDS, type SoundApp, type SoundAppResult, type SoundFault } from '../sound-apps/apps.js';

const UNBIND_PATIENCE_MS = 15_000;
const APP_TIMEOUT_MS = 40_000;

function tail(s: string, n = 600): string {
  return s.length > n ? '…' + s.slice(-n) : s;
}

interface Card {
  index: number;
  alsa: number;
  driver: string;
  pci: string;
  role: 'play' | 'record';
}

function alsaCardsByPci(): Map<string, { alsa: number; driver: string }> {
  const m = new Map<string, { alsa: number; driver: string }>();
  for (const name of readdirSync('/sys/class/sound')) {
    const match = /^card(\d+)$/.exec(name);
    if (!match) continue;
    const dev = realpathSync(`/sys/class/sound/${name}/device`);
    let driver = '';
    try {
      driver = basename(readlinkSync(join(dev, 'driver')));
    } catch {
      continue;
    }
    m.set(basename(dev), { alsa: Number(match[1]), driver });
  }
  return m;
}

async function findCards(specs: string[]): Promise<Card[]> {
  const want = specs.map((s) => {
    const [driver, role] = s.split(':');
    if (!driver || (role !== 'play' && role !== 'record')) throw new Error(`bad --card ${s}: want DRIVER:play|record`);
    const r: Card['role'] = role;
    return { driver, role: r };
  });
  // HDA probes on a workqueue: wait for every card.
  const deadline = Date.now() + 30_000;
  let byPci = alsaCardsByPci();
  while (byPci.size < want.length && Date.now() < deadline) {
    await sleep(200);
    byPci = alsaCardsByPci();
  }
  const pcis = [...byPci.keys()].sort();
  const used = new Set<string>();
  return want.map((w, index) => {
    const pci = pcis.find((p) => !used.has(p) && byPci.get(p)!.driver === w.driver);
    if (!pci) throw new Error(`no ${w.driver} sound card for --card #${index} (have ${JSON.stringify([...byPci])})`);
    used.add(pci);
    return { index, alsa: byPci.get(pci)!.alsa, driver: w.driver, pci, role: w.role };
  });
}

function streamRunning(alsa: number, capture: boolean): boolean {
  try {
    return /state: RUNNING/.test(readFileSync(`/proc/asound/card${alsa}/pcm0${capture ? 'c' : 'p'}/sub0/status`, 'utf8'));
  } catch {
    return false;
  }
}

/** Writes `value` to a sysfs file from a child (tee), which may block in the kernel; returns when it is done. */
function sysfsWrite(path: string, value: string): ResultPromise {
  return execa('tee', [path], { input: value, stdout: 'ignore', reject: false });
}

async function runApp(card: Card, app: SoundApp, run: SoundRun, inputsDir: string, withFault: boolean, outDir: string): Promise<SoundAppResult> {
  const inputs = loadSoundInputs(inputsDir);
  const src = inputs.runs[run];
  const hw = `hw:${card.alsa},0`;
  const env: Record<string, string> = {};
  let argv: string[];
  let mixer: string | null = null;
  const recording = join(outDir, `arecord-${card.index}-${run}.wav`);
  switch (app) {
    case 'aplay':
      argv = ['aplay', '-D', hw, src.aplayWav];
      break;
    case 'mpg123':
      argv = ['mpg123', '-q', '-o', 'alsa', '-a', hw, src.playerMp3];
      break;
    case 'espeak': {
      // espeak-ng plays to ALSA's default device: make it this card, through a
      // plug that converts its 22.05 kHz mono. (Measured: forcing the card to
      // 44.1 kHz stereo made ES1370 drop pieces of the speech without a fault
      // and did not help AC97, which garbles espeak-ng's stream either way.)
      const home = join(outDir, `home-${card.index}`);
      mkdirSync(home, { recursive: true });
      writeFileSync(join(home, '.asoundrc'), `pcm.!default { type plug slave.pcm "${hw}" }\nctl.!default { type hw card ${card.alsa} }\n`);
      env['HOME'] = home;
      argv = ['espeak-ng', ...SPEECH_ARGS[run], SPEECH_TEXT[run]];
      break;
    }
    case 'game':
      mixer = await pickMixerElement(card.alsa);
      argv = [inputs.mmapGame, '-D', hw, '-f', src.gameWav, '-c', `hw:${card.alsa}`, '-e', mixer, '-v', String(GAME_MIXER_PERCENT), '-t', String(GAME_MIXER_AT_MS)];
      break;
    case 'arecord':
      argv = ['arecord', '-D', hw, '-f', 'S16_LE', '-r', '44100', '-c', '2', '-d', String(RECORD_SECONDS), recording];
      break;
  }
  const started = performance.now();
  const child = execa(argv[0]!, argv.slice(1), { env, reject: false, all: false, timeout: APP_TIMEOUT_MS, killSignal: 'SIGKILL' });
  let fault: SoundFault | null = null;
  if (withFault) {
    let runningAt: number | null = null;
    let exited = false;
    void child.finally(() => (exited = true));
    while (!exited && performance.now() - started < 20_000) {
      if (streamRunning(card.alsa, app === 'arecord')) {
        runningAt = performance.now();
        break;
      }
      await sleep(20);
    }
    if (runningAt !== null) {
      await sleep(FAULT_AFTER_MS);
      const atMs = performance.now() - started;
      const drv = `/sys/bus/pci/drivers/${card.driver}`;
      const t0 = performance.now();
      const unbind = sysfsWrite(`${drv}/unbind`, card.pci);
      let appKilledForUnbind = false;
      const patience = setTimeout(() => {
        appKilledForUnbind = true;
        child.kill('SIGKILL');
      }, UNBIND_PATIENCE_MS);
      await unbind;
      clearTimeout(patience);
      const unbindMs = performance.now() - t0;
      const t1 = performance.now();
      await sysfsWrite(`${drv}/bind`, card.pci);
      const bindMs = performance.now() - t1;
      let cardBackMs: number | null = null;
      while (performance.now() - t1 < 10_000) {
        const sound = `/sys/bus/pci/devices/${card.pci}/sound`;
        if (existsSync(sound) && readdirSync(sound).some((n) => n.startsWith('card'))) {
          cardBackMs = performance.now() - t1;
          break;
        }
        await sleep(20);
      }
      fault = { runningAfterMs: runningAt - started, atMs, unbindMs, appKilledForUnbind, bindMs, cardBackMs };
      // The card number may have changed (another card took the slot).
      const back = alsaCardsByPci().get(card.pci);
      if (back) card.alsa = back.alsa;
      // The new driver instance starts with the driver's mixer defaults: restore ours for the next app.
      if (cardBackMs !== null) await initMixer(card.alsa).catch(() => undefined);
    }
  }
  const r = await child;
  let recordedMs: number | null = null;
  if (app === 'arecord' && existsSync(recording) && statSync(recording).size > 0) {
    try {
      recordedMs = durationMs(parseWav(readFileSync(recording)));
    } catch {
      recordedMs = null;
    }
  }
  return {
    card: card.index,
    alsaCard: card.alsa,
    driver: card.driver,
    pci: card.pci,
    app,
    run,
    argv,
    exitCode: r.exitCode ?? null,
    signal: r.signal ?? null,
    timedOut: r.timedOut,
    durationMs: performance.now() - started,
    stdoutTail: tail(String(r.stdout)),
    stderrTail: tail(String(r.stderr)),
    fault,
    recordedMs,
    mixerElement: mixer,
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      inputs: { type: 'string' },
      card: { type: 'string', multiple: true, default: [] },
      runs: { type: 'string', default: 'nofault,control' },
    },
  });
  const runDir = process.env['SHADOWD_RUNDIR'];
  const runs = values.runs.split(',') as SoundRun[];
  if (!values.inputs || values.card.length === 0 || !runDir || runs.some((r) => r !== 'nofault' && r !== 'control')) {
    console.error('usage: sound-control.js --inputs DIR --card DRIVER:play|record ... [--runs nofault,control] (with $SHADOWD_RUNDIR set)');
    process.exit(2);
  }
  for (const m of ['snd-ens1370', 'snd-intel8x0', 'snd-hda-intel']) await execa('modprobe', [m]);
  const cards = await findCards(values.card);
  console.log(`cards: ${cards.map((c) => `#${c.index} ${c.driver} ${c.pci} card${c.alsa} ${c.role}`).join('; ')}`);
  for (const card of cards) await initMixer(card.alsa);
  const outDir = join(runDir, 'sound');
  mkdirSync(outDir, { recursive: true });
  for (const run of runs) {
    for (const card of cards) {
      for (const app of card.role === 'play' ? PLAY_APPS : (['arecord'] as const)) {
        const res = await runApp(card, app, run, values.inputs, run === 'control', outDir);
        console.log(
          `${run} ${card.driver} card${card.alsa} ${app}: exit ${res.exitCode ?? res.signal}${res.timedOut ? ' (timed out)' : ''} in ${(res.durationMs / 1000).toFixed(1)} s` +
            (res.fault ? `; unbind ${res.fault.unbindMs.toFixed(0)} ms${res.fault.appKilledForUnbind ? ' (app killed to finish it)' : ''}, bind ${res.fault.bindMs.toFixed(0)} ms, card back after ${res.fault.cardBackMs?.toFixed(0)} ms` : '') +
            (res.recordedMs !== null ? `; recorded ${res.recordedMs.toFixed(0)} ms` : '') +
            (res.stderrTail.trim() ? `; stderr: ${res.stderrTail.trim().split('\n').slice(-2).join(' | ')}` : ''),
        );
        console.log(`SOUND_APP_RESULT ${JSON.stringify(res)}`);
        await sleep(300);
      }
    }
  }
}

await main();
