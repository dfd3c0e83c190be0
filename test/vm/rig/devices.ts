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
  /** virtio network device on PCI, driver virtio_net: every cloud VM's NIC, with native XDP. */
  'virtio-net': 'virtio-net-pci',
  /** Intel 82574L (PCIe, MSI-X), driver e1000e. */
  e1000e: 'e1000e',
  /** Realtek RTL8139C+, driver 8139cp (8139too refuses this revision, 0x20: "use 8139cp"). */
  rtl8139: 'rtl8139',
  /** NE2000 on PCI (Realtek RTL8029), driver ne2k-pci (module ne2k_pci): INTx, no ethtool settings but the message level. */
  'ne2k-pci': 'ne2k_pci',
} as const;

export const SOUND_PRESETS = {
  /** Ensoniq AudioPCI, driver snd-ens1370. */
  es1370: 'ES1370',
  /** Intel 82801AA AC'97, driver snd-intel8x0. */
  ac97: 'AC97',
  /** Intel HD Audio controller (ICH6) with a duplex codec (line out, line in), driver snd-hda-intel. */
  hda: 'intel-hda',
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

/** The addresses of one NIC's user network: QEMU's defaults (10.0.2.0/24) for the first NIC, or the NIC's own with nicSubnets. */
export interface NicSubnet {
  /** The first three octets, e.g. 10.0.3. */
  prefix: string;
  /** QEMU's gateway (the host side), prefix.2. */
  gateway: string;
  /** Where the loopback forwards listen, prefix.100 (GUEST_FWD_ADDR on the first). */
  forwardAddr: string;
}

/** The user network of NIC n (counting NICs only, from 0) under nicSubnets: 10.0.(2+n).0/24. */
export function nicSubnet(n: number): NicSubnet {
  if (!Number.isInteger(n) || n < 0 || n > 200) throw new Error(`NIC ${n} has no subnet`);
  const prefix = `10.0.${2 + n}`;
  return { prefix, gateway: `${prefix}.2`, forwardAddr: `${prefix}.100` };
}

export interface DeviceArgOptions {
  devices: readonly DevicePreset[];
  forwards?: readonly LoopbackForward[];
  /** Host paths of the raw scratch images, one per disk preset in the order given. */
  diskImages?: readonly string[];
  /**
   * Host paths of WAV files, one per sound preset in the order given: sound
   * card N then plays into its own `-audiodev wav,id=sndN` backend, which
   * records everything the card outputs (44.1 kHz stereo S16 by default,
   * from the card's first output; QEMU writes the RIFF sizes only when it
   * exits). A null entry gives that card its own `none` backend instead:
   * QEMU's wav backend has no input, so a card that must record (arecord)
   * needs one. Without the option all sound cards share one `none` backend.
   */
  soundCaptures?: readonly (string | null)[];
  /** Sample rate QEMU's wav backend records at (its default 44100). */
  soundCaptureRate?: number;
  /**
   * All NICs on one Ethernet segment (a QEMU hub) with one user network,
   * instead of one user network each: a frame one NIC sends reaches every
   * other NIC, whatever its address, so a test can check a NIC's receive
   * filters (multicast, promiscuous mode) from another NIC of the guest.
   */
  nicHub?: boolean;
  /**
   * Each NIC's user network on a subnet of its own (nicSubnet: NIC n on
   * 10.0.(2+n).0/24, its forwards at 10.0.(2+n).100) instead of QEMU's
   * 10.0.2.0/24 for all: one guest can then configure and use several NICs
   * side by side, each with its own addresses and routes.
   */
  nicSubnets?: boolean;
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

/** The sound presets among the devices, in order: each gets one capture file when capture is asked for. */
export function soundCount(devices: readonly DevicePreset[]): number {
  return devices.filter(isSound).length;
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

/** The -audiodev and -device arguments of sound card N on backend `audiodev`. */
function soundArgs(dev: SoundPreset, n: number, audiodev: string): string[] {
  if (dev === 'hda') {
    // The codec sits on the controller's HDA bus; the codec, not the controller, owns the audiodev.
    return ['-device', `${SOUND_PRESETS[dev]},id=hda${n}`, '-device', `hda-duplex,bus=hda${n}.0,audiodev=${audiodev}`];
  }
  return ['-device', `${SOUND_PRESETS[dev]},audiodev=${audiodev}`];
}

function captureBackend(n: number, path: string | null | undefined, rate: number | undefined): string {
  if (path === null) return `none,id=snd${n}`;
  if (!path) throw new Error(`sound capture was asked for but sound card ${n} has no wav file`);
  if (path.includes(',')) throw new Error(`sound capture path must not contain a comma: ${path}`);
  let backend = `wav,id=snd${n},path=${path}`;
  if (rate !== undefined) {
    if (!Number.isInteger(rate) || rate < 8000 || rate > 192000) throw new Error(`sound capture rate ${rate} is not a sample rate`);
    backend += `,out.frequency=${rate}`;
  }
  return backend;
}

function checkPort(port: number, what: string): void {
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${what} ${port} is not a TCP port`);
}

/** A restricted user network with the loopback forwards, on QEMU's default subnet or the one given. */
function userNetdev(id: string, forwards: readonly LoopbackForward[], subnet?: NicSubnet): string {
  let netdev = `user,id=${id},restrict=on`;
  if (subnet) netdev += `,net=${subnet.prefix}.0/24,host=${subnet.gateway},dns=${subnet.prefix}.3,dhcpstart=${subnet.prefix}.15`;
  const forwardAddr = subnet?.forwardAddr ?? GUEST_FWD_ADDR;
  for (const f of forwards) {
    checkPort(f.guestPort, 'guest port');
    checkPort(f.hostPort, 'host port');
    // A tcp: chardev serves one connection for the guest's whole life; socat,
    // started by QEMU per connection, serves any number in turn.
    netdev += `,guestfwd=tcp:${forwardAddr}:${f.guestPort}-cmd:socat STDIO TCP:127.0.0.1:${f.hostPort}`;
  }
  return netdev;
}

/** QEMU arguments for the given presets. Every NIC gets its own restricted user network (on its own subnet with nicSubnets), or all share one (nicHub). */
export function deviceArgs(opts: DeviceArgOptions): string[] {
  if (opts.nicHub && opts.nicSubnets) throw new Error('nicHub puts every NIC on one network: nicSubnets does not go with it');
  const args: string[] = [];
  let nics = 0;
  let sound = 0;
  let disks = 0;
  if (opts.nicHub) args.push('-netdev', userNetdev('n0', opts.forwards ?? []), '-netdev', 'hubport,id=hub0,hubid=0,netdev=n0');
  for (const dev of opts.devices) {
    if (isNic(dev)) {
      const id = opts.nicHub ? `hub${++nics}` : `n${nics++}`;
      const subnet = opts.nicSubnets ? nicSubnet(nics - 1) : undefined;
      args.push('-netdev', opts.nicHub ? `hubport,id=${id},hubid=0` : userNetdev(id, opts.forwards ?? [], subnet));
      // romfile= skips loading the option ROM, which the guest never boots from.
      args.push('-device', `${NIC_PRESETS[dev]},netdev=${id},romfile=`);
    } else if (isSound(dev)) {
      const n = sound++;
      if (opts.soundCaptures) {
        args.push('-audiodev', captureBackend(n, opts.soundCaptures[n], opts.soundCaptureRate), ...soundArgs(dev, n, `snd${n}`));
      } else {
        if (n === 0) args.push('-audiodev', 'none,id=snd0');
        args.push(...soundArgs(dev, n, 'snd0'));
      }
    } else {
      const n = disks++;
      args.push(...diskArgs(dev, n, opts.diskImages?.[n]));
    }
  }
  return args;
}
