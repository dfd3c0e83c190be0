// The fault campaign's plan (issue 14, item 2): which device gets which
// fault, sticky or not, at which moment, drawn from a seed. Pure: the same
// seed and count give the same plan on any machine, so a campaign's failure
// can be run again fault for fault (`npm run campaign -- --faults N --seed S`).
// The guest half (test/vm/guest/campaign-run.ts) carries it out; the host half
// (main.ts) splits it into boots.
import { mulberry32 } from '../../test/vm/rig/seeded-random.js';

/** The campaign's seeded PRNG (test/vm/rig/seeded-random.ts). */
export const prng = mulberry32;

export type CampaignClass = 'net' | 'block' | 'sound';

/**
 * When the fault goes in:
 * - idle: no application on the device; its application starts right after
 *   the fault (which a detector can only see once the device is used);
 * - load: the application is under way;
 * - concurrent: under load, while a manual recovery of another device
 *   (`shadowctl recover`, of another class) is in progress;
 * - config: under load, with a configuration change of the device just
 *   before the fault and another one right after it (during detection and
 *   recovery); the last value must be there afterwards;
 * - restart: under load, while shadowd restarts: it stops (SIGTERM, as
 *   `systemctl restart` stops it), the fault goes in while it is down
 *   (through the helper), and it starts again; on its start it must find the
 *   failed device and recover it.
 * `restart` is drawn apart (RESTART_SHARE of the `load` faults, from a
 * stream of its own), so that a seed's plan made before it (the 200-fault
 * campaign's, the smoke run's) stays what it was but for some `load` faults
 * that now go in during a restart.
 */
export const MOMENTS = ['idle', 'load', 'concurrent', 'config'] as const;
export type Moment = (typeof MOMENTS)[number] | 'restart';
/** The share of `load` faults that go in while shadowd restarts instead (about 10 % of all). */
export const RESTART_SHARE = 0.4;
/** The restart draws' own stream: the seed's, shifted. */
const RESTART_STREAM = 0x9e3779b9;

/** One device of the campaign's guest: its QEMU preset, driver and the faults the plan may give it. */
export interface CampaignDevice {
  cls: CampaignClass;
  preset: string;
  driver: string;
  faults: readonly string[];
  /** Whether a sticky fault (the give-up by policy) is planned on it. */
  sticky: boolean;
}

/**
 * The campaign guest's devices, in QEMU's order within each class (NIC i is
 * on nicSubnet(i); disk n has serial shadowd-diskN; sound card n is cardN).
 * Left out, with the reason:
 * - lost-irq on the ATA disks: libata's own error handler retries a flush
 *   for 60 s before the unbind can finish (docs/disks.md);
 * - sticky faults on disks: the fault comes back before a SCSI disk is fully
 *   added (it shows 0 sectors, kmod/PROTOCOL.md), and the campaign cannot
 *   yet bring such a disk back under its map for the next faults of the
 *   boot;
 * - fail-prepare on sound: it fails a stream's first prepare, so it needs a
 *   stream starting after it, which only the idle moment has; it is given
 *   only at that moment (planFaults).
 */
export const CAMPAIGN_DEVICES: readonly CampaignDevice[] = [
  { cls: 'net', preset: 'e1000', driver: 'e1000', faults: ['tx-hang', 'fail-stop', 'lost-irq'], sticky: true },
  { cls: 'net', preset: 'pcnet', driver: 'pcnet32', faults: ['tx-hang', 'fail-stop', 'lost-irq'], sticky: true },
  { cls: 'net', preset: 'rtl8139', driver: '8139cp', faults: ['tx-hang', 'fail-stop', 'lost-irq'], sticky: true },
  { cls: 'block', preset: 'piix-ide', driver: 'ata_piix', faults: ['fail-stop', 'disk-error'], sticky: false },
  { cls: 'block', preset: 'ahci', driver: 'ahci', faults: ['fail-stop', 'disk-error'], sticky: false },
  { cls: 'block', preset: 'virtio-blk', driver: 'virtio_blk', faults: ['fail-stop', 'disk-error', 'lost-irq'], sticky: false },
  { cls: 'sound', preset: 'es1370', driver: 'snd-ens1370', faults: ['lost-irq', 'fail-stop', 'fail-prepare'], sticky: true },
  { cls: 'sound', preset: 'ac97', driver: 'snd-intel8x0', faults: ['lost-irq', 'fail-stop', 'fail-prepare'], sticky: true },
  { cls: 'sound', preset: 'hda', driver: 'snd-hda-intel', faults: ['lost-irq', 'fail-stop', 'fail-prepare'], sticky: true },
];

/**
 * The policy shadowd runs under in the campaign ([Class] sections): a sticky
 * fault gives up after maxRecoveries within the window; the guest rests a
 * device out the window between two of its faults, so that a transient
 * fault never meets the limit.
 */
export const CAMPAIGN_POLICY = { maxRecoveries: 3, windowSec: 30, backoffSec: 1, backoffMaxSec: 2 } as const;

/** One planned fault. */
export interface PlannedFault {
  /** 1-based, in the campaign's order. */
  n: number;
  /** Index into CAMPAIGN_DEVICES. */
  device: number;
  cls: CampaignClass;
  driver: string;
  fault: string;
  sticky: boolean;
  moment: Moment;
  /** For `concurrent`: the device (index) recovered by hand meanwhile, of another class. */
  other: number | null;
}

/** The share of faults on a device that may have one that are sticky. */
export const STICKY_SHARE = 0.12;

const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;

/**
 * `count` faults from `seed`: the classes in turn (so that every class gets
 * its third of any prefix of the plan, the smoke run's 10 too), then a
 * driver, a moment, a fault kind and sticky or not drawn from the seed.
 */
export function planFaults(count: number, seed: number, devices: readonly CampaignDevice[] = CAMPAIGN_DEVICES): PlannedFault[] {
  if (!Number.isInteger(count) || count < 1) throw new Error(`--faults must be a positive integer, got ${count}`);
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) throw new Error(`--seed must be an integer from 0 to ${0xffffffff}, got ${seed}`);
  const rand = prng(seed);
  const restartRand = prng((seed ^ RESTART_STREAM) >>> 0);
  const classes = [...new Set(devices.map((d) => d.cls))];
  // The class order itself comes from the seed too.
  const offset = Math.floor(rand() * classes.length);
  const out: PlannedFault[] = [];
  for (let n = 1; n <= count; n++) {
    const cls = classes[(n - 1 + offset) % classes.length]!;
    const device = pick(rand, devices.map((d, i) => [d, i] as const).filter(([d]) => d.cls === cls))[1];
    const d = devices[device]!;
    const moment = pick(rand, MOMENTS);
    const kinds = d.faults.filter((f) => f !== 'fail-prepare' || moment === 'idle');
    const fault = pick(rand, kinds);
    const sticky = d.sticky && rand() < STICKY_SHARE;
    let other: number | null = null;
    if (moment === 'concurrent') {
      const others = devices.map((x, i) => [x, i] as const).filter(([x]) => x.cls !== cls);
      other = others.length > 0 ? pick(rand, others)[1] : null;
    }
    const at: Moment = other === null && moment === 'concurrent' ? 'load' : moment;
    // Drawn for every fault, so that each fault's draw depends on its number only.
    const restart = restartRand() < RESTART_SHARE;
    out.push({ n, device, cls, driver: d.driver, fault, sticky, moment: at === 'load' && restart ? 'restart' : at, other });
  }
  return out;
}

/** Splits the plan into boots of at most `perBoot` faults (a crash ends its boot only). */
export function splitBoots(plan: readonly PlannedFault[], perBoot: number): PlannedFault[][] {
  if (!Number.isInteger(perBoot) || perBoot < 1) throw new Error(`--per-boot must be a positive integer, got ${perBoot}`);
  const boots: PlannedFault[][] = [];
  for (let i = 0; i < plan.length; i += perBoot) boots.push(plan.slice(i, i + perBoot));
  return boots;
}
