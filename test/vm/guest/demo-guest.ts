// The guest half of `npm run demo` (until recovery exists): loads e1000, attaches
// the network class tap and narrates, live, what it sees while an administrator
// configures the interface and traffic flows.
import { execa } from 'execa';
import { startBpftrace } from '../../../daemon/bpftrace-process.js';
import type { TapEvent } from '../../../daemon/tap-record.js';

const [program] = process.argv.slice(2);
if (!program) throw new Error('usage: demo-guest.js PROGRAM');

const FLAG_NAMES: [bigint, string][] = [
  [0x1n, 'UP'], [0x2n, 'BROADCAST'], [0x100n, 'PROMISC'], [0x200n, 'ALLMULTI'], [0x1000n, 'MULTICAST'],
];
const say = (line: string): void => console.log(line);
const describe = (e: TapEvent): string => {
  const flags = e.masks['flags'] ?? 0n;
  const names = FLAG_NAMES.filter(([bit]) => flags & bit).map(([, n]) => n).join(',');
  return `  tap: ${e.strs['name']} (ifindex ${e.nums['ifindex']}) ${e.call} -> flags ${names} by ${e.comm}[${e.pid}]`;
};
const step = async (why: string, argv: string[]): Promise<void> => {
  say(`\n$ ${argv.join(' ')}    # ${why}`);
  const r = await execa(argv[0]!, argv.slice(1), { all: true, reject: false });
  if (r.all) say(r.all.replace(/^/gm, '  '));
  await new Promise((resolve) => setTimeout(resolve, 300)); // let the tap's events print in order
};

say('== shadowd demo: the network class tap in a real Debian 6.1 guest ==');
await step('load the driver of the emulated Intel 82540EM NIC', ['modprobe', 'e1000']);
const run = startBpftrace({
  program,
  onMessage: (m) => {
    if (m.kind === 'event') say(describe(m.event));
    if (m.kind === 'malformed') say(`  (unreadable tap output skipped: ${m.reason})`);
    if (m.kind === 'lost') say(`  (the kernel dropped ${m.count} tap events)`);
  },
});
say(`\nattaching the tap on __dev_change_flags in vmlinux (not in the driver) ...`);
say(`tap attached: ${await run.attached} probe(s)`);
await step('bring the interface up', ['ip', 'link', 'set', 'eth0', 'up']);
await step('address it on the QEMU user network', ['ip', 'addr', 'add', '10.0.2.15/24', 'dev', 'eth0']);
await step('a packet sniffer turns promiscuous mode on', ['ip', 'link', 'set', 'eth0', 'promisc', 'on']);
await step('wait for the link', ['sh', '-c', 'until [ "$(cat /sys/class/net/eth0/carrier)" = 1 ]; do sleep 0.1; done; echo carrier up']);
await step('traffic to the QEMU gateway (not tapped: nothing on the packet path)', ['busybox', 'ping', '-c', '3', '10.0.2.2']);
await step('promiscuous mode off again', ['ip', 'link', 'set', 'eth0', 'promisc', 'off']);
run.stop();
await run.exited;
say('\nThat is passive mode: every configuration call reaches the shadow, no packet does.');
say('Recovery (detect, impersonate, restart, replay) is being built; see the README.');
