// QEMU device presets matching the drivers of the paper's evaluation, and the
// closed user network that lets guest tests reach only servers on the host's
// loopback.

export const NIC_PRESETS = {
  /** Intel 82540EM, driver e1000. */
  e1000: 'e1000',
  /** AMD PCnet-PCI II, driver pcnet32. */
  pcnet: 'pcnet',
  /** Intel 82559ER, driver e100. */
  i82559er: 'i82559er',
} as const;

export const SOUND_PRESETS = {
  /** Ensoniq AudioPCI, driver snd-ens1370. */
  es1370: 'ES1370',
  /** Intel 82801AA AC'97, driver snd-intel8x0. */
  ac97: 'AC97',
} as const;

export type NicPreset = keyof typeof NIC_PRESETS;
export type SoundPreset = keyof typeof SOUND_PRESETS;
/** piix-ide: a scratch disk on the PIIX3 IDE controller of QEMU's pc machine (driver ata_piix). */
export type DevicePreset = NicPreset | SoundPreset | 'piix-ide';

/** The guest connects to GUEST_FWD_ADDR:guestPort and reaches 127.0.0.1:hostPort on the host. */
export interface LoopbackForward {
  guestPort: number;
  hostPort: number;
}
export const GUEST_FWD_ADDR = '10.0.2.100';

export interface DeviceArgOptions {
  devices: readonly DevicePreset[];
  forwards?: readonly LoopbackForward[];
  /** Host path of the raw scratch image used by the piix-ide preset. */
  diskImage?: string;
}

function isNic(d: DevicePreset): d is NicPreset {
  return d in NIC_PRESETS;
}
function isSound(d: DevicePreset): d is SoundPreset {
  return d in SOUND_PRESETS;
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${what} ${port} is not a TCP port`);
}

/** QEMU arguments for the given presets. Every NIC gets its own restricted user network. */
export function deviceArgs(opts: DeviceArgOptions): string[] {
  const args: string[] = [];
  let nics = 0;
  let sound = false;
  for (const dev of opts.devices) {
    if (isNic(dev)) {
      const id = `n${nics++}`;
      let netdev = `user,id=${id},restrict=on`;
      for (const f of opts.forwards ?? []) {
        checkPort(f.guestPort, 'guest port');
        checkPort(f.hostPort, 'host port');
        // A tcp: chardev serves one connection for the guest's whole life; socat,
        // started by QEMU per connection, serves any number in turn.
        netdev += `,guestfwd=tcp:${GUEST_FWD_ADDR}:${f.guestPort}-cmd:socat STDIO TCP:127.0.0.1:${f.hostPort}`;
      }
      // romfile= skips loading the option ROM, which the guest never boots from.
      args.push('-netdev', netdev, '-device', `${NIC_PRESETS[dev]},netdev=${id},romfile=`);
    } else if (isSound(dev)) {
      if (!sound) args.push('-audiodev', 'none,id=snd0');
      sound = true;
      args.push('-device', `${SOUND_PRESETS[dev]},audiodev=snd0`);
    } else {
      if (!opts.diskImage) throw new Error('the piix-ide preset needs a scratch disk image');
      if (opts.diskImage.includes(',')) throw new Error(`disk image path must not contain a comma: ${opts.diskImage}`);
      args.push('-drive', `file=${opts.diskImage},if=none,id=disk0,format=raw`, '-device', 'ide-hd,drive=disk0,bus=ide.0');
    }
  }
  return args;
}
