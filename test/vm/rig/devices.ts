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

/**
 * Scratch disks, one raw image each, on the controllers of the disk class's
 * drivers. Each disk's serial is shadowd-diskN (N counts the disks in the
 * order given), which the guest sees as its identity.
 */
export const DISK_PRESETS = {
  /** The PIIX3 IDE controller of QEMU's pc machine, driver ata_piix. */
  'piix-ide': 'piix-ide',
  /** An ICH9 AHCI controller of its own, driver ahci. */
  ahci: 'ahci',
  /** A virtio block device on PCI, driver virtio_blk. */
  'virtio-blk': 'virtio-blk',
} as const;

export type NicPreset = keyof typeof NIC_PRESETS;
export type SoundPreset = keyof typeof SOUND_PRESETS;
export type DiskPreset = keyof typeof DISK_PRESETS;
export type DevicePreset = NicPreset | SoundPreset | DiskPreset;

/** Every preset's name, for command lines. */
export const ALL_PRESETS: readonly DevicePreset[] = [
  ...(Object.keys(NIC_PRESETS) as NicPreset[]),
  ...(Object.keys(SOUND_PRESETS) as SoundPreset[]),
  ...(Object.keys(DISK_PRESETS) as DiskPreset[]),
];

/** The guest connects to GUEST_FWD_ADDR:guestPort and reaches 127.0.0.1:hostPort on the host. */
export interface LoopbackForward {
  guestPort: number;
  hostPort: number;
}
export const GUEST_FWD_ADDR = '10.0.2.100';

export interface DeviceArgOptions {
  devices: readonly DevicePreset[];
  forwards?: readonly LoopbackForward[];
  /** Host paths of the raw scratch images, one per disk preset in the order given. */
  diskImages?: readonly string[];
}

function isNic(d: DevicePreset): d is NicPreset {
  return d in NIC_PRESETS;
}
function isSound(d: DevicePreset): d is SoundPreset {
  return d in SOUND_PRESETS;
}
export function isDisk(d: DevicePreset): d is DiskPreset {
  return d in DISK_PRESETS;
}

/** The disk presets among the devices, in order: each needs one image. */
export function diskCount(devices: readonly DevicePreset[]): number {
  return devices.filter(isDisk).length;
}

function diskArgs(dev: DiskPreset, n: number, image: string | undefined): string[] {
  if (!image) throw new Error(`the ${dev} preset needs a scratch disk image (disk ${n})`);
  if (image.includes(',')) throw new Error(`disk image path must not contain a comma: ${image}`);
  const drive = ['-drive', `file=${image},if=none,id=disk${n},format=raw`];
  const serial = `serial=shadowd-disk${n}`;
  switch (dev) {
    case 'piix-ide':
      if (n > 0) throw new Error('the piix-ide preset must come before the other disks (it takes the first IDE bus)');
      return [...drive, '-device', `ide-hd,drive=disk${n},bus=ide.0,${serial}`];
    case 'ahci':
      return [...drive, '-device', `ich9-ahci,id=ahci${n}`, '-device', `ide-hd,drive=disk${n},bus=ahci${n}.0,${serial}`];
    case 'virtio-blk':
      return [...drive, '-device', `virtio-blk-pci,drive=disk${n},${serial}`];
  }
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${what} ${port} is not a TCP port`);
}

/** QEMU arguments for the given presets. Every NIC gets its own restricted user network. */
export function deviceArgs(opts: DeviceArgOptions): string[] {
  const args: string[] = [];
  let nics = 0;
  let sound = false;
  let disks = 0;
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
      const n = disks++;
      args.push(...diskArgs(dev, n, opts.diskImages?.[n]));
    }
  }
  return args;
}
