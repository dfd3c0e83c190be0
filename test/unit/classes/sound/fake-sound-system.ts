// A machine's sound cards for the sound class's unit tests: cards, their
// mixers and open substreams, changeable by the test, recording what the
// class reads and sets. Isolates the shadow, replay and refusal logic from
// amixer, sysfs and /proc, which their own tests and the guest cover.
import type { MixerControl } from '../../../../daemon/classes/sound/amixer-contents.js';
import { controlKey } from '../../../../daemon/classes/sound/amixer-contents.js';
import type { PcmStatus, ProcSubstream } from '../../../../daemon/classes/sound/proc-asound.js';
import type { SoundSystem } from '../../../../daemon/classes/sound/sound-system.js';
import type { CardIdentity, SoundFileHolder } from '../../../../daemon/classes/sound/sound-sysfs.js';

export interface FakeCard {
  identity: CardIdentity;
  controls: MixerControl[];
  streams: ProcSubstream[];
}

export function control(numid: number, name: string, values: string[], over: Partial<MixerControl> = {}): MixerControl {
  const c = { iface: 'MIXER', name, index: 0, device: 0, subdevice: 0, ...over };
  return { numid, key: controlKey(c), ...c, type: 'INTEGER', access: 'rw------', values, ...over };
}

export function es1370(number = 0): FakeCard {
  return {
    identity: { number, id: 'AudioPCI', bus: `0000:00:0${4 + number}.0`, driver: 'snd_ens1370', module: 'snd_ens1370' },
    controls: [control(1, 'Master Playback Switch', ['on', 'on'], { type: 'BOOLEAN' }), control(2, 'Master Playback Volume', ['20', '20'])],
    streams: [],
  };
}

/** f's result as a promise: rejected with what f throws. */
function promised<T>(f: () => T): Promise<T> {
  try {
    return Promise.resolve(f());
  } catch (err) {
    return Promise.reject(err instanceof Error ? err : new Error(String(err)));
  }
}

export function fakeSoundSystem(initial: FakeCard[]) {
  const cards = new Map(initial.map((c) => [c.identity.number, c]));
  const sets: string[] = [];
  const reads: string[] = [];
  const statuses = new Map<string, PcmStatus | Error>();
  const holders: SoundFileHolder[] = [];
  const names = new Map<number, string>();
  const need = (n: number): FakeCard => {
    const c = cards.get(n);
    if (!c) throw new Error(`no card${n}`);
    return c;
  };
  const sys: SoundSystem = {
    listCards: () => Promise.resolve([...cards.keys()].sort((a, b) => a - b)),
    readIdentity: (n) => promised(() => structuredClone(need(n).identity)),
    readMixer: (n) =>
      promised(() => {
        reads.push(`mixer ${n}`);
        return { controls: structuredClone(need(n).controls), problems: [] };
      }),
    readControl: (n, numid) =>
      promised(() => {
        reads.push(`control ${n} ${numid}`);
        return structuredClone(need(n).controls.find((c) => c.numid === numid) ?? null);
      }),
    setControl: (n, numid, values) =>
      promised(() => {
        sets.push(`card${n} numid=${numid} ${values.join(',')}`);
        const c = need(n).controls.find((x) => x.numid === numid);
        if (!c) throw new Error(`Cannot find the given element numid=${numid}`);
        c.values = [...values];
      }),
    readSubstreams: (n) => promised(() => structuredClone(need(n).streams)),
    readStatus: (n, key) => {
      const s = statuses.get(`card${n}/${key}`);
      if (!s) return Promise.reject(new Error(`card${n}/${key}: closed`));
      return s instanceof Error ? Promise.reject(s) : Promise.resolve({ ...s });
    },
    processName: (pid) => Promise.resolve(names.get(pid) ?? null),
    soundFileHolders: () => Promise.resolve([...holders]),
  };
  return { cards, sets, reads, statuses, holders, names, sys };
}
