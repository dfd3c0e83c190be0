// The mixer of a card as `amixer -c N contents` (and `cget`) prints it:
// every control element with its id, type, access and current values. The
// kernel's control interface is ioctl-only and alsa-utils is installed
// wherever ALSA is, so amixer is the reader and writer; its output format is
// stable (alsa-utils' show_control_id and show_control) and is parsed
// strictly here: an element that does not parse is reported with its text
// and left out, never guessed at. Pure, so tests run on output captured in
// the guest.
//
//   numid=2,iface=MIXER,name='Master Playback Volume'
//     ; type=INTEGER,access=rw------,values=2,min=0,max=31,step=0
//     : values=20,20
//     | dBscale-min=-62.00dB,step=2.00dB,mute=0

/** One control element as the mixer holds it. */
export interface MixerControl {
  numid: number;
  /** Stable across a driver restart (numids normally are too, but need not be): iface, name, index, device, subdevice. */
  key: string;
  iface: string;
  name: string;
  index: number;
  device: number;
  subdevice: number;
  /** INTEGER, INTEGER64, BOOLEAN, ENUMERATED, BYTES, IEC958. */
  type: string;
  /** amixer's access string: r, w, v(olatile), ... e.g. rw---R--. */
  access: string;
  /** The values as amixer prints them (numbers, on/off, item indexes). */
  values: string[];
}

export interface MixerRead {
  controls: MixerControl[];
  /** Elements that did not parse, each with why and its first line. */
  problems: string[];
}

const ID_LINE = /^numid=(\d+),iface=([A-Z0-9_]+),name='(.*)'((?:,(?:index|device|subdevice)=\d+)*)$/;
const ATTR_LINE = /^ {2}; (.*)$/;
const VALUES_LINE = /^ {2}: values=(.*)$/;

/** The key of an element in the shadow: `MIXER:'Master Playback Volume'`, with ,index=N ,device=N ,subdevice=N when not 0. */
export function controlKey(c: Pick<MixerControl, 'iface' | 'name' | 'index' | 'device' | 'subdevice'>): string {
  let key = `${c.iface}:'${c.name}'`;
  if (c.index !== 0) key += `,index=${c.index}`;
  if (c.device !== 0) key += `,device=${c.device}`;
  if (c.subdevice !== 0) key += `,subdevice=${c.subdevice}`;
  return key;
}

function fieldsOf(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq), part.slice(eq + 1));
  }
  return out;
}

export function parseAmixerContents(text: string): MixerRead {
  const controls: MixerControl[] = [];
  const problems: string[] = [];
  const lines = text.split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i]!;
    if (line.trim() === '') {
      i++;
      continue;
    }
    const id = ID_LINE.exec(line);
    if (!id) {
      problems.push(`line ${i + 1} is not an element's id line: ${JSON.stringify(line.slice(0, 120))}`);
      i++;
      // Skip to the next id line: the rest of this element cannot be placed.
      while (i < lines.length && lines[i]!.startsWith('  ')) i++;
      continue;
    }
    const body: string[] = [];
    for (i++; i < lines.length && lines[i]!.startsWith('  '); i++) body.push(lines[i]!);
    const extra = fieldsOf((id[4] ?? '').slice(1));
    const numid = Number(id[1]);
    let type: string | null = null;
    let access: string | null = null;
    let values: string[] | null = null;
    for (const b of body) {
      const attr = ATTR_LINE.exec(b);
      if (attr && attr[1]!.startsWith('type=')) {
        const f = fieldsOf(attr[1]!);
        type = f.get('type') ?? null;
        access = f.get('access') ?? null;
      }
      const v = VALUES_LINE.exec(b);
      if (v) values = v[1]!.split(',');
    }
    if (type === null || access === null || values === null || !Number.isSafeInteger(numid) || numid <= 0) {
      problems.push(`element ${JSON.stringify(line.slice(0, 120))}: no ${type === null || access === null ? 'type/access' : values === null ? 'values' : 'valid numid'} line`);
      continue;
    }
    const c = { iface: id[2]!, name: id[3]!, index: Number(extra.get('index') ?? 0), device: Number(extra.get('device') ?? 0), subdevice: Number(extra.get('subdevice') ?? 0) };
    controls.push({ numid, key: controlKey(c), ...c, type, access, values });
  }
  return { controls, problems };
}

/** Types whose values amixer's cset takes back as it prints them. */
const SETTABLE_TYPES = new Set(['INTEGER', 'INTEGER64', 'BOOLEAN', 'ENUMERATED']);

/**
 * Whether the daemon can put the element's value back: writable, not
 * volatile (a volatile value is the hardware's, e.g. a level meter), not
 * inactive, and of a type cset takes as amixer prints it.
 */
export function isReplayable(c: Pick<MixerControl, 'type' | 'access'>): boolean {
  const a = c.access;
  // amixer's access string: r w i(nactive) v(olatile) l(ocked) R W C (TLV), '-' where not.
  return SETTABLE_TYPES.has(c.type) && a[1] === 'w' && a[2] !== 'i' && a[3] !== 'v';
}

/**
 * The argv that sets an element's values: `amixer -q -c N -- cset numid=X
 * v1,v2`. The `--` ends amixer's options: without it a negative value
 * (-5,-5) is taken for options and the set fails.
 */
export function csetArgv(card: number, numid: number, values: readonly string[]): string[] {
  for (const v of values) if (!/^[A-Za-z0-9_.+-]+$/.test(v)) throw new Error(`mixer value ${JSON.stringify(v)} is not one amixer can set back`);
  return ['amixer', '-q', '-c', String(card), '--', 'cset', `numid=${numid}`, values.join(',')];
}
