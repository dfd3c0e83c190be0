// Guest-side set-up shared by the recovery scenarios and benchmarks: the
// helper module, finding a driver's interface, configuring it the way an
// administrator would (settings that live in the driver, so that replay
// matters), and waiting for its link.
import { existsSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { release } from 'node:os';
import { basename, join } from 'node:path';
import { loadHelperDeps } from './helper-deps.js';
import { execa } from 'execa';
import { openHelper } from '../../../daemon/core/helper-client.js';
import { moduleBuildDir } from '../rig/cache-paths.js';
import { nicSubnet, type NicSubnet } from '../rig/devices.js';
import { repoPath } from '../rig/repo-path.js';

/**
 * Per driver, the configuration the scenarios apply before the fault. Each
 * includes something only replay can restore: MTU, features, ring sizes or
 * the message level live in the driver's private area. pcnet32's rings stay
 * untouched: resizing them WARNs in dma_free_attrs on 6.1. The addresses are
 * those of the NIC's user network: QEMU's 10.0.2.0/24, or the NIC's own
 * subnet when the guest runs with nicSubnets (devices.ts).
 */
export const DRIVER_SETTINGS: Record<string, (dev: string, subnet?: NicSubnet) => string[][]> = {
  e1000: (dev, subnet) => [
    ['ip', 'link', 'set', dev, 'mtu', '1400'],
    ['ethtool', '-K', dev, 'tso', 'off'],
    ['ethtool', '-G', dev, 'rx', '512', 'tx', '512'],
    ['ethtool', '-s', dev, 'msglvl', '0x3'],
    ...common(dev, subnet),
  ],
  pcnet32: (dev, subnet) => [['ip', 'link', 'set', dev, 'mtu', '1400'], ['ethtool', '-s', dev, 'msglvl', '0x3'], ...common(dev, subnet)],
  e100: (dev, subnet) => [
    ['ip', 'link', 'set', dev, 'mtu', '1400'],
    ['ethtool', '-G', dev, 'rx', '128', 'tx', '64'],
    ['ethtool', '-s', dev, 'msglvl', '0x3'],
    ...common(dev, subnet),
  ],
  // No ring or feature settings of their own: the MTU (in the stack for
  // ne2k-pci, in the driver for 8139cp) and the message level.
  'ne2k-pci': (dev, subnet) => [['ip', 'link', 'set', dev, 'mtu', '1400'], ['ethtool', '-s', dev, 'msglvl', '0x3'], ...common(dev, subnet)],
  '8139cp': (dev, subnet) => [['ip', 'link', 'set', dev, 'mtu', '1400'], ['ethtool', '-s', dev, 'msglvl', '0x3'], ...common(dev, subnet)],
  // No message level (its ethtool has none) and no ring resize on 6.1: the
  // MTU, which virtio_net checks against the device's limit.
  virtio_net: (dev, subnet) => [['ip', 'link', 'set', dev, 'mtu', '1400'], ...common(dev, subnet)],
};

/** Up, the guest's address on the NIC's network, and a route through its gateway (10.9.0.0/16 on 10.0.2.0/24, 10.10.0.0/16 on 10.0.3.0/24, ...: one of its own per NIC). */
function common(dev: string, subnet: NicSubnet = nicSubnet(0)): string[][] {
  const routed = `10.${7 + Number(subnet.prefix.split('.')[2])}.0.0/16`;
  return [
    ['ip', 'link', 'set', dev, 'up'],
    ['ip', 'addr', 'add', `${subnet.prefix}.15/24`, 'dev', dev],
    ['ip', 'route', 'add', routed, 'via', subnet.gateway, 'dev', dev],
  ];
}

/**
 * Loads the helper module built by `npm run kmod`, unless it is loaded, after
 * the modules it links against (helper-deps.ts). Its module
 * reloads run modprobe from init's root, which in this rig is the initramfs:
 * it is told the kernel's own modprobe helper, which is valid there.
 */
export async function loadHelper(allowFaults: boolean): Promise<void> {
  if (existsSync('/sys/module/shadow_helper')) return;
  // Built in kmod/ for 6.1, in the cache for 6.12 (the rig passes the cache's path in).
  const ko = join(moduleBuildDir(repoPath('kmod'), release()), 'shadow_helper.ko');
  loadHelperDeps(ko);
  const modprobe = readFileSync('/proc/sys/kernel/modprobe', 'utf8').trim();
  await execa('insmod', [ko, `modprobe=${modprobe}`, ...(allowFaults ? ['allow_faults=1'] : [])]);
}

/** One helper command; returns the reply line as the module wrote it. */
export async function helperCommand(command: string): Promise<string> {
  const client = await openHelper();
  try {
    const r = await client.request(command);
    return r.ok ? `ok ${r.payload}` : `err ${r.errno} ${r.message}`;
  } finally {
    await client.close();
  }
}

/** The kernel's TX watchdog timeouts of `dev` so far (the helper's txstat), null when the reply has none. */
export async function txTimeouts(dev: string): Promise<number | null> {
  const m = / timeouts=(\d+)/.exec(await helperCommand(`txstat net:${dev}`));
  return m ? Number(m[1]) : null;
}

/** The interface bound to `driver`; throws if there is none. */
export async function interfaceOf(driver: string, timeoutMs = 5000): Promise<string> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    for (const name of readdirSync('/sys/class/net')) {
      try {
        if (basename(readlinkSync(`/sys/class/net/${name}/device/driver`)) === driver) return name;
      } catch {
        // lo and virtual devices have no driver link.
      }
    }
    if (Date.now() > until) throw new Error(`no interface bound to ${driver}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function waitForCarrier(dev: string, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (readFileSync(`/sys/class/net/${dev}/carrier`, 'utf8').trim() !== '1') {
    if (Date.now() > until) throw new Error(`${dev}: no carrier after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/**
 * Which ring operations the driver of `dev` has, found by asking it: `ethtool
 * -g` needs get_ringparam; `ethtool -G` with the current RX size changes
 * nothing but is refused (EOPNOTSUPP) without set_ringparam.
 */
export async function ringOps(dev: string): Promise<{ get: boolean; set: boolean }> {
  const got = await execa('ethtool', ['-g', dev], { reject: false });
  const rx = /^Current hardware settings:[\s\S]*?^RX:\s+(\d+)/m.exec(got.stdout)?.[1];
  if (got.exitCode !== 0 || !rx) return { get: got.exitCode === 0, set: false };
  const set = await execa('ethtool', ['-G', dev, 'rx', rx], { reject: false, all: true });
  return { get: true, set: set.exitCode === 0 || /unmodified|no ring parameters changed/.test(set.all ?? '') };
}

/** Waits for the link and for IPv6 autoconfiguration to finish (DAD takes ~1 s). */
export async function settle(dev: string): Promise<void> {
  await waitForCarrier(dev, 15_000);
  for (let i = 0; i < 50; i++) {
    const r = await execa('ip', ['-json', 'addr', 'show', 'dev', dev]);
    if (!r.stdout.includes('"tentative"')) break;
    await new Promise((res) => setTimeout(res, 100));
  }
  await new Promise((r) => setTimeout(r, 500));
}

/** What a configuration loop did: its full passes, the commands that failed, and the last value it set of each key. */
export interface ConfigLoopResult {
  iterations: number;
  failures: string[];
  last: Record<string, number>;
  /** The command it was still in when stop() gave up waiting (a hang), else null. */
  stuck: string | null;
}

/** Whether the driver of `dev` has a message level, found by asking it (`ethtool` prints it only with get_msglevel). */
export async function hasMsglvl(dev: string): Promise<boolean> {
  return /Current message level/.test((await execa('ethtool', [dev], { reject: false })).stdout);
}

/**
 * Another process configuring and querying `dev` again and again while it is
 * being restarted or recovered: each pass sets the MTU, the queue length, the
 * message level (unless `msglvl` is false: a driver without one) and (with
 * `rings`) the RX ring, each to a new value, then
 * queries rings (unless `ringQuery` is false: a driver without
 * get_ringparam), features and statistics. Every command must succeed and the
 * last value set of each key must be in force once the loop has stopped.
 * stop() ends it after the pass under way, or gives up waiting after
 * `timeoutMs` and names the command it hangs in.
 */
export function startConfigLoop(dev: string, options: { rings: boolean; ringQuery?: boolean; msglvl?: boolean }): { stop: (timeoutMs?: number) => Promise<ConfigLoopResult> } {
  let stopping = false;
  let current: string | null = null;
  const last: Record<string, number> = {};
  const failures: string[] = [];
  let iterations = 0;
  const done = (async () => {
    for (let i = 0; !stopping; i++) {
      const steps: [string, number, string[]][] = [
        ['mtu', 1300 + (i % 100), ['ip', 'link', 'set', dev, 'mtu', String(1300 + (i % 100))]],
        ['txqueuelen', 500 + i, ['ip', 'link', 'set', dev, 'txqueuelen', String(500 + i)]],
        ...(options.msglvl !== false ? [['msglvl', i % 16, ['ethtool', '-s', dev, 'msglvl', String(i % 16)]] as [string, number, string[]]] : []),
        ...(options.rings ? [['rx', 128 + 32 * (i % 4), ['ethtool', '-G', dev, 'rx', String(128 + 32 * (i % 4))]] as [string, number, string[]]] : []),
        ...(options.ringQuery !== false ? [['query', 0, ['ethtool', '-g', dev]] as [string, number, string[]]] : []),
        ['query', 0, ['ethtool', '-k', dev]],
        ['query', 0, ['ip', '-s', 'link', 'show', dev]],
      ];
      for (const [key, value, argv] of steps) {
        current = argv.join(' ');
        const r = await execa(argv[0]!, argv.slice(1), { reject: false, all: true });
        if (r.exitCode !== 0) failures.push(`${current}: ${r.all}`);
        else if (key !== 'query') last[key] = value;
      }
      current = null;
      iterations++;
    }
  })();
  return {
    stop: async (timeoutMs = 30_000) => {
      stopping = true;
      let timer: NodeJS.Timeout | undefined;
      const ended = await Promise.race([done.then(() => true), new Promise<false>((r) => (timer = setTimeout(() => r(false), timeoutMs)))]);
      clearTimeout(timer);
      return { iterations, failures: [...failures], last: { ...last }, stuck: ended ? null : current };
    },
  };
}

/** One reply of a ping probe: when its probe left and when the reply arrived, in ms since the epoch. */
export interface PingReply {
  sent: number;
  received: number;
}

/**
 * A ping to `target` every `intervalSec`, collecting each reply as it comes:
 * iputils ping prints its receive time (-D) and its round trip, so the time
 * the probe left is known too. Probes held through an outage (the neighbour
 * layer waits for ARP) are answered late, with a long round trip. With
 * `iface`, the probes leave through that interface (ping -I).
 */
export function startPingProbe(target: string, intervalSec: number, iface?: string): { replies: PingReply[]; stop: () => Promise<void> } {
  const replies: PingReply[] = [];
  const ping = execa('ping', ['-D', '-n', '-i', String(intervalSec), ...(iface ? ['-I', iface] : []), target], { reject: false, buffer: false });
  ping.stdout?.on('data', (d: Buffer) => {
    for (const m of d.toString().matchAll(/^\[(\d+\.\d+)\] \d+ bytes from .* time=([\d.]+) ms/gm)) {
      const received = Number(m[1]) * 1000;
      replies.push({ sent: received - Number(m[2]), received });
    }
  });
  return {
    replies,
    stop: async () => {
      ping.kill('SIGTERM');
      await ping;
    },
  };
}
