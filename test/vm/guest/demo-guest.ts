// The guest half of `npm run demo` (until recovery exists): starts shadowd on
// an e1000, configures the interface as an administrator would, runs a packet
// sniffer, and shows with shadowctl what the shadow keeps and who set it,
// including across a kill -9 of the daemon.
import { mkdtempSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { DAEMON_NODE_OPTIONS } from '../../../daemon/node-options.js';
import { repoPath } from '../repo-path.js';

const work = mkdtempSync('/tmp/shadowd-demo-');
const env = { ...process.env, SHADOWD_SOCKET: join(work, 'run', 'control.sock') };
const say = (line: string): void => console.log(line);
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function run(why: string, argv: string[]): Promise<void> {
  say(`\n$ ${argv.join(' ')}    # ${why}`);
  const r = await execa(argv[0]!, argv.slice(1), { all: true, reject: false, env });
  if (r.all) say(r.all.replace(/^/gm, '  '));
}
const shadowctl = (why: string, ...args: string[]): Promise<void> => run(why, ['shadowctl', ...args]);

/** Starts shadowd and waits until it answers; wrapped, since a returned subprocess would be awaited to its end. */
async function startShadowd(): Promise<{ daemon: ResultPromise }> {
  const daemon = execa('node', [...DAEMON_NODE_OPTIONS, repoPath('dist/daemon/main.js'), '--state-dir', join(work, 'state'), '--runtime-dir', join(work, 'run')], {
    env,
    reject: false,
  });
  // shadowd's own log, as journald would show it.
  daemon.stderr?.on('data', (d: Buffer) => process.stdout.write(d.toString().replace(/^<\d>/gm, '  shadowd| ')));
  const started = Date.now();
  while ((await execa('node', [repoPath('dist/cli/shadowctl.js'), 'status'], { env, reject: false })).exitCode !== 0) {
    if (daemon.exitCode !== null) throw new Error('shadowd exited during start-up');
    await pause(300);
  }
  say(`  (shadowd answered after ${((Date.now() - started) / 1000).toFixed(1)} s: the taps attach slowly under emulation)`);
  return { daemon };
}

// shadowctl as an administrator types it.
await execa('ln', ['-sf', repoPath('dist/cli/shadowctl.js'), '/usr/local/bin/shadowctl']);
await execa('chmod', ['+x', repoPath('dist/cli/shadowctl.js')]);

say('== shadowd demo: the network shadow in passive mode, in a real Debian 6.1 guest ==');
await run('load the driver of the emulated Intel 82540EM NIC', ['modprobe', 'e1000']);
await run('configured before shadowd starts: its first snapshot finds it', ['ip', 'link', 'set', 'eth0', 'mtu', '1400']);
say('\n$ shadowd &    # attach the taps on the network class interface, read every NIC');
const first = await startShadowd();
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
const second = await startShadowd();
await shadowctl('the same shadow, caught up: the sniffer no longer holds promiscuity', 'show', 'eth0');
second.daemon.kill('SIGTERM');
await second.daemon;
say('\nThat is passive mode: every configuration call reaches the shadow, no packet does.');
say('Next: when the driver fails, shadowd restarts it and replays this shadow (see the README).');
