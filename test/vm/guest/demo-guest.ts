// The guest half of `npm run demo`: an e1000 configured as an administrator
// would, shadowd watching it, a download and a packet sniffer running; then
// the driver's transmit path hangs (an injected fault) and the user watches
// shadowd detect it, restart the driver with the device kept, replay its
// configuration, and the download finish intact.
//   node demo-guest.js URL SHA256
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync } from 'node:fs';
import { execa } from 'execa';
import { repoPath } from '../rig/repo-path.js';
import { loadHelper, settle } from './nic-setup.js';
import { shadowdEnv, startShadowd } from './shadowd-process.js';

const [url, expectedSha256] = process.argv.slice(2);
if (!url || !expectedSha256) {
  console.error('usage: demo-guest.js URL SHA256');
  process.exit(2);
}
const work = mkdtempSync('/tmp/shadowd-demo-');
const env = shadowdEnv(work);
const say = (line: string): void => console.log(line);
const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function run(why: string, argv: string[]): Promise<void> {
  say(`\n$ ${argv.join(' ')}${why ? `    # ${why}` : ''}`);
  const r = await execa(argv[0]!, argv.slice(1), { all: true, reject: false, env });
  if (r.all) say(r.all.replace(/^/gm, '  '));
}
const shadowctl = (why: string, ...args: string[]): Promise<void> => run(why, ['shadowctl', ...args]);

// shadowctl as an administrator types it.
await execa('ln', ['-sf', repoPath('dist/cli/shadowctl.js'), '/usr/local/bin/shadowctl']);
await execa('chmod', ['+x', repoPath('dist/cli/shadowctl.js')]);

say('== shadowd demo: a network driver fails under a running download, in a real Debian 6.1 guest ==');
await run('the emulated Intel 82540EM NIC', ['modprobe', 'e1000']);
say('\n$ insmod kmod/shadow_helper.ko allow_faults=1    # the kernel helper; faults allowed for this demo only');
await loadHelper(true);
await run('an administrator configures the interface', ['ip', 'link', 'set', 'eth0', 'mtu', '1400']);
await run('', ['ethtool', '-K', 'eth0', 'tso', 'off']);
await run('', ['ethtool', '-G', 'eth0', 'rx', '512']);
await run('', ['ip', 'link', 'set', 'eth0', 'up']);
await run('', ['ip', 'addr', 'add', '10.0.2.15/24', 'dev', 'eth0']);
await run('', ['ip', 'route', 'add', '192.0.2.0/24', 'via', '10.0.2.2', 'dev', 'eth0']);
await settle('eth0');
const ifindex = readFileSync('/sys/class/net/eth0/ifindex', 'utf8').trim();

say('\n$ shadowd --allow-faults &    # taps on the network class interface; its log is shown as "shadowd|"');
const started = await startShadowd(work, (text) => process.stdout.write(text.replace(/^<\d>/gm, '  shadowd| ')), ['--allow-faults']);
say(`  (shadowd answered after ${(started.readyMs / 1000).toFixed(1)} s: the taps attach slowly under emulation)`);
await shadowctl('what shadowd protects', 'status');

say('\n$ tcpdump -i eth0 -w /dev/null &    # a packet sniffer');
const sniffer = execa('tcpdump', ['-i', 'eth0', '-w', '/dev/null'], { reject: false, all: true });
say(`$ curl ${url} | sha256sum    # a 24 MB download, rate-limited to 2 MB/s so the failure lands in the middle`);
const hash = createHash('sha256');
let bytes = 0;
const copy = execa('curl', ['-sS', '--limit-rate', '2M', '--speed-limit', '1000', '--speed-time', '20', url], { reject: false, buffer: { stdout: false }, encoding: 'buffer' });
copy.stdout?.on('data', (d: Buffer) => {
  hash.update(d);
  bytes += d.length;
});
const progress = setInterval(() => say(`  download: ${(bytes / 1048576).toFixed(1)} MB`), 2000);
while (bytes < 6 * 1048576 && copy.exitCode === null) await pause(100);

await shadowctl('the driver\'s transmit path hangs, as when a NIC stops reclaiming its ring', 'inject', 'eth0', 'tx-hang');
say('  (the kernel would notice only after its 5 s TX watchdog, and e1000\'s own reset would not cure this)');
const copied = await copy;
clearInterval(progress);
const sha = hash.digest('hex');
say(`  download: ${(bytes / 1048576).toFixed(1)} MB, curl exit ${copied.exitCode}; sha256 ${sha === expectedSha256 ? 'matches the server\'s' : `DIFFERS from the server's (${expectedSha256})`}`);

await shadowctl('the recovery: one id, each phase timed', 'history', 'eth0');
await run('the same device: same ifindex, same configuration', ['ip', '-br', 'link', 'show', 'eth0']);
say(`  ifindex before ${ifindex}, after ${readFileSync('/sys/class/net/eth0/ifindex', 'utf8').trim()}`);
await run('', ['ethtool', '-g', 'eth0']);
await run('', ['ip', 'route', 'show', 'dev', 'eth0']);
say(`\n  the sniffer is ${sniffer.exitCode === null ? 'still running' : 'GONE'}`);
sniffer.kill('SIGINT');
const snifferResult = await sniffer;
say(snifferResult.all?.replace(/^/gm, '  ') ?? '');
started.daemon.kill('SIGTERM');
await started.daemon;
say('\nThe driver failed; the download, the sniffer and the configuration survived it.');
if (sha !== expectedSha256 || copied.exitCode !== 0) process.exit(1);
