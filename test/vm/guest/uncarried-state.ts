// Runs in the guest for test/vm/classes/net/uncarried-state.test.ts: a NIC
// that carries state in its driver which a restart would lose is refused
// before anything is touched, and one that does not is restarted.
//   1. a driver-mode XDP program on a virtio_net NIC: the helper refuses the
//      restart (EOPNOTSUPP, and why); the device keeps its ifindex, its
//      program and its traffic, and the kernel log says it was left as it was;
//   2. the same program attached in generic mode (the core runs it, not the
//      driver): the restart goes through and the program is still attached;
//   3. a wireless device (mac80211_hwsim's simulated radio, up): the helper
//      refuses the restart (cfg80211 and mac80211 keep its state outside the
//      net_device); the device keeps its ifindex, its driver and its wiphy,
//      and stays up.
// Prints `UNCARRIED_RESULT <json>`.
//   node dist/test/vm/guest/uncarried-state.js XDP_OBJECT
import { existsSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { execa } from 'execa';
import { helperCommand, interfaceOf, loadHelper, settle, waitForCarrier } from './nic-setup.js';

const object = process.argv[2] ?? '';
if (!object || !existsSync(object)) {
  console.error('usage: uncarried-state.js XDP_OBJECT (an ELF object with an "xdp" section)');
  process.exit(2);
}

interface XdpState {
  /** iproute2's attach mode: 1 driver, 2 generic (skb), 3 offloaded; 0 none. */
  mode: number;
  progId: number | null;
}

async function xdpOf(dev: string): Promise<XdpState> {
  const { stdout } = await execa('ip', ['-j', '-d', 'link', 'show', 'dev', dev]);
  const [link] = JSON.parse(stdout) as { xdp?: { mode?: number; prog?: { id?: number } } }[];
  return { mode: link?.xdp?.mode ?? 0, progId: link?.xdp?.prog?.id ?? null };
}

async function ping(): Promise<string> {
  const r = await execa('busybox', ['ping', '-c', '3', '-W', '2', '10.0.2.2'], { reject: false });
  return r.stdout.split('\n').find((l) => l.includes('packets transmitted')) ?? r.stderr;
}

await execa('modprobe', ['virtio_net']);
await loadHelper(true);
const dev = await interfaceOf('virtio_net');
const ifindex = (): number => Number(readFileSync(`/sys/class/net/${dev}/ifindex`, 'utf8'));
await execa('ip', ['link', 'set', dev, 'up']);
await execa('ip', ['addr', 'add', '10.0.2.15/24', 'dev', dev]);
await waitForCarrier(dev, 15_000);
await settle(dev);
const ifindexBefore = ifindex();
const pingBefore = await ping();

// 1. driver mode: refused, untouched
const attachDrv = await execa('ip', ['link', 'set', 'dev', dev, 'xdpdrv', 'obj', object, 'sec', 'xdp'], { reject: false });
const drvBefore = await xdpOf(dev);
const refused = await helperCommand(`restart net:${dev} xdp1`);
const drvAfter = await xdpOf(dev);
const refusedIfindex = ifindex();
const refusedPing = await ping();
const refusedLog = (await execa('dmesg')).stdout.split('\n').filter((l) => l.includes('recovery xdp1:'));

// 2. generic mode: the core runs the program, the driver carries nothing
await execa('ip', ['link', 'set', 'dev', dev, 'xdpdrv', 'off']);
const attachGeneric = await execa('ip', ['link', 'set', 'dev', dev, 'xdpgeneric', 'obj', object, 'sec', 'xdp'], { reject: false });
const genericBefore = await xdpOf(dev);
const restarted = await helperCommand(`restart net:${dev} xdp2`);
await settle(dev);
const genericAfter = await xdpOf(dev);
const restartedPing = await ping();

// 3. a wireless device: mac80211_hwsim's radio, its interface up (no
// network to join: up is enough for mac80211 to hold its state)
await execa('modprobe', ['mac80211_hwsim', 'radios=1']);
const wirelessOf = (): string => readdirSync('/sys/class/net').find((n) => existsSync(`/sys/class/net/${n}/phy80211`)) ?? '';
let wlan = wirelessOf();
for (const until = Date.now() + 5000; !wlan && Date.now() < until; wlan = wirelessOf()) await new Promise((r) => setTimeout(r, 100));
if (!wlan) throw new Error('mac80211_hwsim made no wireless interface');
/** What a restart would change: its ifindex, the driver bound to its device, its wiphy, its flags. */
const wireless = (): { ifindex: number; driver: string; phy: string; up: boolean } => ({
  ifindex: Number(readFileSync(`/sys/class/net/${wlan}/ifindex`, 'utf8')),
  driver: basename(readlinkSync(`/sys/class/net/${wlan}/device/driver`)),
  phy: basename(readlinkSync(`/sys/class/net/${wlan}/phy80211`)),
  up: (Number(readFileSync(`/sys/class/net/${wlan}/flags`, 'utf8')) & 1) !== 0,
});
await execa('ip', ['link', 'set', wlan, 'up']);
const wirelessBefore = wireless();
const wirelessReply = await helperCommand(`restart net:${wlan} wifi1`);
const wirelessAfter = wireless();
const wirelessLog = (await execa('dmesg')).stdout.split('\n').filter((l) => l.includes('recovery wifi1:'));

console.log(
  `UNCARRIED_RESULT ${JSON.stringify({
    dev,
    ifindexBefore,
    pingBefore,
    driver: {
      attach: { exitCode: attachDrv.exitCode, stderr: attachDrv.stderr.trim() },
      before: drvBefore,
      reply: refused,
      after: drvAfter,
      ifindex: refusedIfindex,
      ping: refusedPing,
      log: refusedLog,
    },
    generic: {
      attach: { exitCode: attachGeneric.exitCode, stderr: attachGeneric.stderr.trim() },
      before: genericBefore,
      reply: restarted,
      after: genericAfter,
      ifindex: ifindex(),
      ping: restartedPing,
    },
    wireless: { dev: wlan, before: wirelessBefore, reply: wirelessReply, after: wirelessAfter, log: wirelessLog },
  })}`,
);
