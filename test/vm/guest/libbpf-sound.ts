// Run in the guest: the sound class's taps twice side by side, the
// precompiled CO-RE object (sound-class.bpf.o) under taps-loader and
// bpf/sound-class.bt under bpftrace (tap-side-by-side.ts), over the same
// workload on an ES1370 card: its driver loaded (card_register), a mixer
// element set with amixer (ctl_write, ctl_notify), a short tone played with
// aplay on hw:N,0 (a stream's open, hw_params, sw_params, prepare, start,
// drain, stop, hw_free, close), and the card's PCI function unbound from
// its driver and bound again (card_disconnect, card_register). snd and
// snd_pcm are loaded before either tap starts, as the daemon loads a class's
// tapModules: the object's fentry and fexit programs are on their functions.
// Prints `LIBBPF_SOUND_RESULT <json>`: each tool's times, peak memory and
// records, and the records that differ once ts= is set aside.
// usage: node dist/test/vm/guest/libbpf-sound.js LOADER OBJECT PROGRAM
import { existsSync, readdirSync, readlinkSync, realpathSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { execa } from 'execa';
import { SOUND_SYNC_MARKER } from '../../../daemon/classes/sound/sound-declaration.js';
import { encodeWav } from '../audio/wav.js';
import { printResult, SideBySide, sleep } from './tap-side-by-side.js';

const [loader, object, program] = process.argv.slice(2);
if (!loader || !object || !program) throw new Error('usage: libbpf-sound.js LOADER OBJECT PROGRAM');

/** The tone aplay plays: 0.4 s of 440 Hz, stereo S16_LE at 44.1 kHz (a rate ES1370's DAC2 takes as it is). */
const TONE = { seconds: 0.4, hz: 440, rate: 44100, channels: 2 } as const;
/** The mixer elements tried in turn for the amixer write, and the volume it sets. */
const MIXER_ELEMENTS = ['PCM', 'Master'] as const;
const MIXER_SETTING = '60%';

const run = new SideBySide(SOUND_SYNC_MARKER);

/** The ALSA card number and PCI function of the card whose driver is @driver, once it is registered. */
async function waitCard(driver: string, timeoutMs = 30_000): Promise<{ card: number; pci: string } | null> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    for (const name of existsSync('/sys/class/sound') ? readdirSync('/sys/class/sound') : []) {
      const m = /^card(\d+)$/.exec(name);
      if (!m) continue;
      try {
        if (basename(readlinkSync(`/sys/class/sound/${name}/device/driver`)) !== driver) continue;
      } catch {
        continue;
      }
      const card = Number(m[1]);
      if (existsSync(`/dev/snd/pcmC${card}D0p`) && existsSync(`/dev/snd/controlC${card}`)) {
        return { card, pci: basename(realpathSync(`/sys/class/sound/${name}/device`)) };
      }
    }
    await sleep(100);
  }
  return null;
}

const DRIVER = 'snd_ens1370';
for (const mod of ['snd', 'snd-pcm']) await execa('modprobe', [mod]);

// Both taps attach before the card's driver loads, so its registration is seen too.
await run.start('libbpf', loader, object);
await run.start('bpftrace', 'bpftrace', program);
const steps: string[] = [];
if (await run.open()) {
  await execa('modprobe', ['snd-ens1370']);
  const found = await waitCard(DRIVER);
  if (run.check(found !== null, `no ${DRIVER} card registered after modprobe snd-ens1370`)) {
    const { card, pci } = found!;
    steps.push(`card ${card} at ${pci}`);
    const { stdout } = await execa('amixer', ['-c', String(card), 'scontrols']);
    const element = MIXER_ELEMENTS.find((n) => stdout.includes(`'${n}',0`));
    if (run.check(element !== undefined, `card ${card} has none of ${MIXER_ELEMENTS.join(', ')}:\n${stdout}`)) {
      const r = await execa('amixer', ['-c', String(card), '-q', 'sset', element!, MIXER_SETTING], { reject: false });
      run.check(r.exitCode === 0, `amixer sset ${element!} ${MIXER_SETTING} exited ${String(r.exitCode)}: ${r.stderr}`);
      steps.push(`amixer sset ${element!} ${MIXER_SETTING}`);
    }
    const frames = Math.round(TONE.seconds * TONE.rate);
    const tone = Float32Array.from({ length: frames }, (_, i) => 0.3 * Math.sin((2 * Math.PI * TONE.hz * i) / TONE.rate));
    const wav = join(process.env['SHADOWD_RUNDIR'] ?? '/tmp', 'libbpf-sound-tone.wav');
    writeFileSync(wav, encodeWav(Array.from({ length: TONE.channels }, () => tone), TONE.rate, 's16'));
    // aplay drains the stream at its end (snd_pcm_drain), then frees and closes it.
    const play = await execa('aplay', ['-q', '-D', `hw:${card},0`, wav], { reject: false, timeout: 20_000 });
    run.check(play.exitCode === 0, `aplay exited ${String(play.exitCode)}: ${play.stderr}`);
    steps.push(`aplay ${wav}`);
    // The driver's unbind frees the card (card_disconnect); the bind registers it again.
    const driverDir = `/sys/bus/pci/drivers/${DRIVER}`;
    writeFileSync(`${driverDir}/unbind`, pci);
    writeFileSync(`${driverDir}/bind`, pci);
    run.check((await waitCard(DRIVER)) !== null, `card ${card} did not come back after ${pci}'s unbind and bind`);
    steps.push(`unbind and bind ${pci}`);
    // snd_card_register returns a little after its devices show.
    await sleep(1000);
  }
}
await run.close();
printResult('LIBBPF_SOUND_RESULT', { ...run.result(), steps });
