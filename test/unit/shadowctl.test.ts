// shadowctl against a control socket served by the daemon's own server code
// (answering from fixed results): output shapes, human views and exit codes.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RequestError, type ShowResult, type StatusResult } from '../../daemon/control-protocol.js';
import { startControlServer, type ControlServer } from '../../daemon/control-server.js';

const SHADOWCTL = new URL('../../dist/cli/shadowctl.js', import.meta.url).pathname;
const DEVICE = { id: 'bus:0000:00:04.0', name: 'eth0', ifindex: 2, cls: 'net' as const, driver: 'e1000', bus: '0000:00:04.0', mode: 'passive' as const, health: 'ok' as const, keys: 2, holders: 1 };
const STATUS: StatusResult = {
  version: '0.1.0',
  pid: 4242,
  startedAt: Date.now() - 125_000,
  taps: { state: 'attached', probes: 48, restarts: 0, events: 1234, malformed: 0, lost: 0, lastError: null },
  pendingReads: 0,
  devices: [DEVICE],
};
const SHOW: ShowResult = {
  device: DEVICE,
  entries: [
    { key: 'mtu', value: 1400, setBy: { pid: 300, comm: 'ip' }, at: Date.now() },
    { key: 'features', value: { 'generic-receive-offload': false, 'tx-scatter-gather': true, 'tx-checksum-ip-generic': true }, setBy: { pid: null, comm: '(snapshot)' }, at: Date.now() },
  ],
  holders: [{ kind: 'promiscuity', pid: 501, comm: 'tcpdump', count: 1, since: Date.now() }],
};

describe('shadowctl', () => {
  let dir: string;
  let socket: string;
  let server: ControlServer;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'shadowctl-'));
    socket = join(dir, 'control.sock');
    server = await startControlServer(
      socket,
      (req) => {
        if (req.method === 'status') return Promise.resolve(STATUS);
        if (req.method === 'show' && req.params.device === 'eth0') return Promise.resolve(SHOW);
        if (req.method === 'show') return Promise.reject(new RequestError('ENODEV', `shadowd watches no network device named ${req.params.device}`));
        return Promise.resolve({ version: '0.1.0', protocol: 1 });
      },
      { log: () => undefined },
    );
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const ctl = (...args: string[]) => execa('node', [SHADOWCTL, '--socket', socket, ...args], { reject: false });

  it('status --json prints the daemon status object', async () => {
    const r = await ctl('status', '--json');
    expect(r.exitCode).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(STATUS);
  });

  it('status shows a line per device and the taps', async () => {
    const r = await ctl('status');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toMatch(/^shadowd 0\.1\.0 \(pid 4242\), up 2m\d+s; taps attached \(48 probes\); 1234 events, 0 lost, 0 unreadable$/m);
    expect(r.stdout).toMatch(/^DEVICE\s+CLASS\s+DRIVER\s+BUS\s+MODE\s+HEALTH\s+KEYS\s+HOLDERS$/m);
    expect(r.stdout).toMatch(/^eth0\s+net\s+e1000\s+0000:00:04\.0\s+passive\s+ok\s+2\s+1$/m);
  });

  it('show --json prints the shadow; show prints keys, setters and holders', async () => {
    const json = await ctl('show', 'eth0', '--json');
    expect(json.exitCode).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual(SHOW);
    const human = await ctl('show', 'eth0');
    expect(human.stdout).toContain('eth0 (ifindex 2, class net, driver e1000 at 0000:00:04.0): passive, healthy');
    expect(human.stdout).toMatch(/^mtu\s+1400\s+ip\[300\]\s+\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/m);
    expect(human.stdout).toMatch(/^features\s+\{"generic-receive-offload":false,.*…\s+\(snapshot\)/m);
    expect(human.stdout).toMatch(/^promiscuity\s+tcpdump\[501\]\s+1\s+/m);
  });

  it('exits 1 with the daemon\'s reason for an unknown device', async () => {
    const r = await ctl('show', 'eth9');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toBe('shadowctl: shadowd watches no network device named eth9');
    const json = await ctl('show', 'eth9', '--json');
    expect(json.exitCode).toBe(1);
    expect(JSON.parse(json.stdout)).toEqual({ code: 'ENODEV', message: 'shadowd watches no network device named eth9' });
  });

  it('exits 2 on a bad command line, with the usage', async () => {
    for (const args of [[], ['frob'], ['show'], ['status', '--bogus']]) {
      const r = await ctl(...args);
      expect(r.exitCode, args.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^shadowctl: /m);
      expect(r.stderr).toContain('Options:');
    }
  });

  it('exits 1 when the daemon refuses a malformed interface name', async () => {
    const r = await ctl('show', 'a/b');
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('"device" must be an interface name');
  });

  it('exits 3 with a one-line error when shadowd is not running', async () => {
    const r = await execa('node', [SHADOWCTL, '--socket', join(dir, 'none.sock'), 'status'], { reject: false });
    expect(r.exitCode).toBe(3);
    expect(r.stderr).toBe(`shadowctl: shadowd is not running (nothing listens on ${join(dir, 'none.sock')})`);
  });

  it('prints help with examples and the exit codes', async () => {
    const r = await ctl('show', '--help');
    expect(r.exitCode).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain("eth0's shadow state");
    const top = await ctl('--help');
    expect(top.stdout).toContain('Exit codes: 0 ok, 1 refused by shadowd, 2 bad usage, 3 shadowd not running, 4');
  });
});
