// The guest half of `npm run demo` (until recovery exists): starts shadowd on
// an e1000, configures the interface as an administrator would, runs a packet
// sniffer, and shows with shadowctl what the shadow keeps and who set it,
// including across a kill -9 of the daemon.
import { mkdtempSync } from 'node:fs';
import { execa } from 'execa';
import { repoPath } from '../repo-path.js';
import { shadowdEnv, startShadowd, type StartedShadowd } from './shadowd-process.js';

const work = mkdtempSync('/tmp/shadowd-demo-');
const env = shadowdEnv(work);
const say = (line: string): void => console.log(line);
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function run(why: string, argv: string[]): Promise<void> {
  say(`\n$ ${argv.join(' ')}    # ${why}`);
  const r = await execa(argv[0]!, argv.slice(1), { all: true, reject: false, env });
  if (r.all) say(r.all.replace(/^/gm, '  '));
}
const shadowctl = (why: string, ...args: string[]): Promise<void> => run(why, ['shadowctl', ...args]);

/** Starts shadowd, with its log shown as journald would show it. */
async function startDaemon(): Promise<StartedShadowd> {
  const started = await startShadowd(work, (text) => process.stdout.write(text.replace(/^<\d>/gm, '  shadowd| ')));
  say(`  (shadowd answered after ${(started.readyMs / 1000).toFixed(1)} s: the taps attach slowly under emulation)`);
  return started;
}

// shadowctl as an administrator types it.
await execa('ln', ['-sf', repoPath('dist/cli/shadowctl.js'), '/usr/local/bin/shadowctl']);
await execa('chmod', ['+x', repoPath('dist/cli/shadowctl.js')]);

say('== shadowd demo: the network shadow in passive mode, in a real Debian 6.1 guest ==');
await run('load the driver of the emulated Intel 82540EM NIC', ['modprobe', 'e1000']);
await run('configured before shadowd starts: its first snapshot finds it', ['ip', 'link', 'set', 'eth0', 'mtu', '1400']);
say('\n$ shadowd &    # attach the taps on the network class interface, read every NIC');
const first = await startDaemon();
await shadowctl('what shadowd watches', 'status');
await run('an administrator configures the interface', ['ip', 'link', 'set', 'eth0', 'address', '02:00:00:00:5d:01']);
await run('', ['ip', 'link', 'set', 'eth0', 'up']);
await run('', ['ip', 'addr', 'add', '10.0.2.15/24', 'dev', 'eth0']);
await run('', ['ip', 'route', 'add', '192.0.2.0/24', 'via', '10.0.2.2', 'dev', 'eth0']);
await run('', ['ethtool', '-K', 'eth0', 'gro', 'off']);
await run('', ['ethtool', '-G', 'eth0', 'rx', '512']);
say('\n$ tcpdump -i eth0 -w /dev/null &    # a packet sniffer takes promiscuous mode');
const tcpdump = execa('tcpdump', ['-i', 'eth0', '-w', '/dev/null'], { reject: false });
await pause(2500);
await run('traffic: nothing on the packet path is tapped', ['busybox', 'ping', '-c', '3', '10.0.2.2']);
await pause(1000);
await shadowctl("eth0's shadow: every key, its value, who set it and when", 'show', 'eth0');
say('\n$ kill -9 $(pidof shadowd)    # the daemon dies; what it observed is in SQLite (WAL)');
first.daemon.kill('SIGKILL');
await first.daemon;
tcpdump.kill('SIGTERM');
await tcpdump;
say('  (the sniffer stopped while shadowd was down)');
say('\n$ shadowd &');
const second = await startDaemon();
await shadowctl('the same shadow, caught up: the sniffer no longer holds promiscuity', 'show', 'eth0');
second.daemon.kill('SIGTERM');
await second.daemon;
say('\nThat is passive mode: every configuration call reaches the shadow, no packet does.');
say('Next: when the driver fails, shadowd restarts it and replays this shadow (see the README).');
