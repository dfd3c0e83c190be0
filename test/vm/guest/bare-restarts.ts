// The guest half of the evaluation's restart baselines (bench/evaluate/
// bare-restarts.ts): on every NIC, sound card and scratch disk of the guest,
// without shadowd, ROUNDS times
//   bare   a plain unbind + bind of the device's driver, then the least an
//          administrator must do for it to serve again (a NIC: up and its
//          address), timed from the unbind to the first service: a ping
//          answered through the NIC, the card's first playback PCM there,
//          the disk's first block read (O_DIRECT). It restores nothing else
//          and saves no application: what shadowd's recovery is set beside.
//   reset  the driver's own reset where it has one that a fault can call
//          up: a NIC's transmit timeout reset (the helper's tx-hang-reset, a
//          hang the reset cures, found by the kernel's watchdog), timed from
//          the fault to the watchdog and from there to the first answer.
//          Sound cards and disks have no reset of their own to call from
//          user space here; that is said, not measured.
// The devices are found the same way for every class (restart-unit.ts). Each
// NIC is on a user network of its own (the rig's nicSubnets), so that all
// can be up at once. Prints `BARE_RESULT <json>` (BareResult).
//   node dist/test/vm/guest/bare-restarts.js [--rounds N] [--modules a,b]
import { existsSync, readdirSync, readlinkSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { nicSubnet } from '../rig/devices.js';
import { diskBySerial, diskSerial, waitForDisk } from './disk-apps/disks.js';
import { helperCommand, loadHelper, settle, startPingProbe, txTimeouts } from './nic-setup.js';
import { restartUnitAt, type RestartUnit } from './restart-unit.js';

export interface BareRound {
  unbindMs: number;
  bindMs: number;
  /** From the unbind's start to the first service. */
  serviceMs: number;
}

export interface ResetRound {
  /** From the fault to the kernel's watchdog. */
  detectionMs: number;
  /** From the watchdog to the first service. */
  serviceMs: number;
}

export interface DeviceBaseline {
  cls: 'net' | 'sound' | 'block';
  driver: string;
  /** The restart unit's bus id. */
  unit: string;
  /** What counts as service for it. */
  service: string;
  bare: BareRound[];
  /** The driver's own reset, or why there is none. */
  reset: { what: string; rounds: ResetRound[] } | { none: string };
  /** What went wrong, if anything did (the rounds done before it are kept). */
  error?: string;
}

export interface BareResult {
  devices: DeviceBaseline[];
}

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '3' },
    modules: { type: 'string', default: '' },
  },
});
const ROUNDS = Number(opts.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1 || ROUNDS > 20) {
  console.error('usage: bare-restarts.js [--rounds 1..20] [--modules a,b]');
  process.exit(2);
}
const SERVICE_TIMEOUT_MS = 60_000;
const now = (): number => performance.now();
const note = (s: string): void => console.log(`[bare] ${s}`);

// The drivers given, and the SCSI disk driver that puts the libata disks on /sys/block.
for (const m of [...opts.modules.split(',').filter(Boolean), 'sd_mod']) await execa('modprobe', [m], { reject: false });
await loadHelper(true);
await sleep(1500);

/** Unbinds the unit's driver and binds it again: the two writes' times and when the bind returned. */
function rebind(unit: RestartUnit): { unbindMs: number; bindMs: number } {
  const drv = `/sys/bus/${unit.bus}/drivers/${unit.driver}`;
  const t0 = now();
  writeFileSync(join(drv, 'unbind'), unit.id);
  const t1 = now();
  writeFileSync(join(drv, 'bind'), unit.id);
  return { unbindMs: Math.round(t1 - t0), bindMs: Math.round(now() - t1) };
}

/** Polls `ready` until it gives a value or the deadline passes. */
async function until<T>(what: string, ready: () => T | null | Promise<T | null>, timeoutMs = SERVICE_TIMEOUT_MS): Promise<T> {
  const end = now() + timeoutMs;
  for (;;) {
    const v = await ready();
    if (v !== null) return v;
    if (now() > end) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await sleep(10);
  }
}

/** The class devices of `cls` under the unit's sysfs directory, by name (eth1, card2). */
function childrenOf(unit: RestartUnit, cls: 'net' | 'sound'): string[] {
  const dir = join(unit.path, cls);
  return existsSync(dir) ? readdirSync(dir).filter((n) => cls === 'net' || /^card\d+$/.test(n)) : [];
}

// ---- NICs ----

interface Nic {
  dev: string;
  unit: RestartUnit;
  /** The NIC's user network (the rig gives NIC n, in PCI order, subnet n). */
  prefix: string;
  gateway: string;
}

function nics(): Nic[] {
  const found = readdirSync('/sys/class/net')
    .filter((n) => existsSync(`/sys/class/net/${n}/device`))
    .map((dev) => ({ dev, unit: restartUnitAt(`/sys/class/net/${dev}/device`), pci: basename(readlinkSync(`/sys/class/net/${dev}/device`)) }));
  // virtio's unit is virtioN, under its PCI function: order by the PCI function.
  const pciOf = (n: { unit: RestartUnit }): string => (n.unit.bus === 'pci' ? n.unit.id : basename(join(n.unit.path, '..')));
  return found.sort((a, b) => pciOf(a).localeCompare(pciOf(b))).map((n, i) => ({ dev: n.dev, unit: n.unit, ...nicSubnet(i) }));
}

async function configure(nic: Nic): Promise<void> {
  await execa('ip', ['link', 'set', nic.dev, 'up']);
  await execa('ip', ['addr', 'replace', `${nic.prefix}.15/24`, 'dev', nic.dev]);
}

/** From `start`, the time until a ping through the NIC to its gateway is answered (a fresh probe: the interface is new after a rebind). */
async function firstAnswer(nic: Nic, start: number): Promise<number> {
  const probe = startPingProbe(nic.gateway, 0.02, nic.dev);
  try {
    await until(`${nic.dev}: an answer from ${nic.gateway}`, () => (probe.replies.length > 0 ? true : null));
    return Math.round(now() - start);
  } finally {
    await probe.stop();
  }
}

async function nicBare(nic: Nic): Promise<BareRound> {
  const t0 = now();
  const { unbindMs, bindMs } = rebind(nic.unit);
  nic.dev = await until(`${nic.unit.id}: its interface back`, () => childrenOf(nic.unit, 'net')[0] ?? null);
  await configure(nic);
  return { unbindMs, bindMs, serviceMs: await firstAnswer(nic, t0) };
}


async function nicReset(nic: Nic): Promise<ResetRound> {
  const before = await txTimeouts(nic.dev);
  if (before === null) throw new Error(`txstat net:${nic.dev}: no timeouts count`);
  const probe = startPingProbe(nic.gateway, 0.02, nic.dev);
  try {
    await until(`${nic.dev}: answers before the fault`, () => (probe.replies.length > 0 ? true : null));
    const fault = now();
    const reply = await helperCommand(`inject net:${nic.dev} tx-hang-reset`);
    if (!reply.startsWith('ok ')) throw new Error(`inject tx-hang-reset: ${reply}`);
    // The watchdog fired between the last poll that did not see it and the
    // one that did (ping replies carry wall-clock times: both kept as such).
    let notYet = Date.now();
    const seen = await until(`${nic.dev}: the kernel's watchdog`, async () => {
      const asked = Date.now();
      if ((await txTimeouts(nic.dev))! > before) return Date.now();
      notYet = asked;
      return null;
    }, 30_000);
    const faultWall = Date.now() - (now() - fault);
    // The first answer after the watchdog can have fired, through the reset device.
    await until(`${nic.dev}: an answer after its reset`, () => (probe.replies.some((r) => r.received > notYet) ? true : null));
    const answered = probe.replies.find((r) => r.received > notYet)!.received;
    return { detectionMs: Math.round(seen - faultWall), serviceMs: Math.max(0, Math.round(answered - seen)) };
  } finally {
    await helperCommand(`inject net:${nic.dev} clear`);
    await probe.stop();
  }
}

// ---- sound cards ----

function cards(): { card: string; unit: RestartUnit }[] {
  return readdirSync('/sys/class/sound')
    .filter((n) => /^card\d+$/.test(n))
    .map((card) => ({ card, unit: restartUnitAt(`/sys/class/sound/${card}/device`) }));
}

async function cardBare(unit: RestartUnit): Promise<BareRound> {
  const t0 = now();
  const { unbindMs, bindMs } = rebind(unit);
  // HDA probes on a workqueue: the card, then its codec's PCMs.
  await until(`${unit.id}: its card's first playback PCM`, () => {
    const card = childrenOf(unit, 'sound')[0];
    const n = card?.slice(4);
    return n !== undefined && existsSync(`/proc/asound/card${n}/pcm0p/sub0`) && existsSync(`/dev/snd/pcmC${n}D0p`) ? true : null;
  });
  return { unbindMs, bindMs, serviceMs: Math.round(now() - t0) };
}

// ---- scratch disks ----

async function firstBlock(devPath: string): Promise<void> {
  await execa('dd', [`if=${devPath}`, 'of=/dev/null', 'bs=4096', 'count=1', 'iflag=direct', 'status=none']);
}

async function diskBare(serial: string): Promise<BareRound> {
  const before = diskBySerial(serial);
  if (!before) throw new Error(`disk ${serial} is gone`);
  const t0 = now();
  const { unbindMs, bindMs } = rebind(before.unit);
  const back = await waitForDisk(serial, SERVICE_TIMEOUT_MS, before);
  await firstBlock(back.devPath);
  return { unbindMs, bindMs, serviceMs: Math.round(now() - t0) };
}

// ---- the rounds ----

async function measure(
  base: Omit<DeviceBaseline, 'bare' | 'reset'>,
  bare: () => Promise<BareRound>,
  reset: { what: string; round: () => Promise<ResetRound> } | { none: string },
  setup: () => Promise<void> = () => Promise.resolve(),
): Promise<DeviceBaseline> {
  const out: DeviceBaseline = { ...base, bare: [], reset: 'none' in reset ? reset : { what: reset.what, rounds: [] } };
  try {
    // A device that cannot be set up is reported with its error, and the others are measured.
    await setup();
    for (let i = 0; i < ROUNDS; i++) {
      await sleep(500);
      const b = await bare();
      out.bare.push(b);
      note(`${base.cls} ${base.driver} ${base.unit}: bare ${b.serviceMs} ms (unbind ${b.unbindMs}, bind ${b.bindMs})`);
      if (!('none' in reset) && !('none' in out.reset)) {
        await sleep(500);
        const r = await reset.round();
        out.reset.rounds.push(r);
        note(`${base.cls} ${base.driver} ${base.unit}: reset found after ${r.detectionMs} ms, service ${r.serviceMs} ms after`);
      }
    }
  } catch (err) {
    out.error = err instanceof Error ? err.message : String(err);
    note(`${base.cls} ${base.driver} ${base.unit}: ${out.error}`);
  }
  return out;
}

const devices: DeviceBaseline[] = [];
for (const nic of nics()) {
  devices.push(await measure(
    { cls: 'net', driver: nic.unit.driver, unit: nic.unit.id, service: `a ping through it answered by its gateway (${nic.gateway})` },
    () => nicBare(nic),
    { what: 'the driver\'s transmit timeout reset (a transmit hang it cures, found by the kernel\'s watchdog)', round: () => nicReset(nic) },
    async () => {
      await configure(nic);
      await settle(nic.dev);
    },
  ));
}
for (const { unit } of cards()) {
  devices.push(await measure(
    { cls: 'sound', driver: unit.driver, unit: unit.id, service: 'its card\'s first playback PCM registered' },
    () => cardBare(unit),
    { none: 'ALSA offers no driver reset from user space' },
  ));
}
for (const name of readdirSync('/sys/block')) {
  const serial = diskSerial(name);
  if (!serial?.startsWith('shadowd-disk')) continue;
  const unit = diskBySerial(serial)!.unit;
  devices.push(await measure(
    { cls: 'block', driver: unit.driver, unit: unit.id, service: 'the same disk (serial) back and its first block read' },
    () => diskBare(serial),
    { none: 'no reset of its own that user space can call (SCSI error handling resets a link only on a failed command)' },
  ));
}
const dmesg = (await execa('dmesg')).stdout;
if (/BUG:|Oops|WARNING:/.test(dmesg)) note('the kernel log has a BUG, Oops or WARNING');
console.log(`BARE_RESULT ${JSON.stringify({ devices } satisfies BareResult)}`);
