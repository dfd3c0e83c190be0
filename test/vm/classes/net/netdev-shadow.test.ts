// The passive network shadow on real drivers in the guest, with the same code
// for e1000, pcnet32 and e100: a scripted configuration session from several
// processes (with the daemon killed -9 in the middle) leaves a shadow equal,
// key by key, to what ip, tc and ethtool report; a sniffer shows as a
// promiscuity holder while it runs; a restart reads back the same shadow.
import { beforeAll, describe, expect, it } from 'vitest';
import type { ShowResult, StatusResult } from '../../../../daemon/control/control-protocol.js';
import { assertGuestOk, runInGuest } from '../../rig/guest.js';
import { repoPath } from '../../rig/repo-path.js';

interface Session {
  /** interface → driver */
  devices: Record<string, string>;
  readyMs: number;
  restartMs: number;
  peakRssKb: number;
  burstDev: string;
  burstMs: number;
  burstEvents: number;
  toggles: number;
  sniffers: Record<string, number>;
  beforeKill: Record<string, ShowResult>;
  afterRestart: Record<string, ShowResult>;
  whileSniffing: Record<string, ShowResult>;
  final: Record<string, ShowResult>;
  status: StatusResult;
  truth: Record<string, Record<string, unknown>>;
  ipLink: Record<string, { mtu: number; address: string; txqlen: number; ifalias?: string; flags: string[] }[]>;
  /** Another network namespace with devices of the NICs' ifindexes and names (shadow-session.ts). */
  namespace: {
    twins: { name: string; ifindex: number }[];
    nsTwins: { name: string; ifindex: number }[];
    values: { mtu: number; alias: string; txqueuelen: number };
    before: Record<string, ShowResult>;
  };
  steps: { argv: string[]; exitCode: number }[];
  daemonLog: string;
}

const entry = (r: ShowResult, key: string): ShowResult['entries'][number] | undefined => r.entries.find((e) => e.key === key);
const value = (r: ShowResult, key: string): unknown => entry(r, key)?.value;
const setter = (r: ShowResult, key: string): string | undefined => entry(r, key)?.setBy.comm;

const DRIVERS = ['e1000', 'pcnet32', 'e100'];

describe('passive network shadow', () => {
  let s: Session;
  let context: string;
  beforeAll(async () => {
    // One guest with all three NICs, watched by one shadowd: one shadow for the class.
    const r = await runInGuest({
      command: ['node', repoPath('dist/test/vm/guest/shadow-session.js'), ...DRIVERS],
      devices: ['e1000', 'pcnet', 'i82559er'],
      // About 250 s on an idle host; twice that when another guest shares the two cores.
      timeoutMs: 600_000,
    });
    assertGuestOk(r, 'shadow session');
    s = JSON.parse(r.stdout) as Session;
    context = `\n--- shadowd log ---\n${s.daemonLog}`;
    console.log(
      `shadowd ready in ${s.readyMs} ms, back after kill -9 in ${s.restartMs} ms; ` +
        `${s.status.taps.probes} probes, ${s.status.taps.events} events, ${s.status.taps.lost} lost, ${s.status.taps.malformed} unreadable; ` +
        `daemon peak RSS ${(s.peakRssKb / 1024).toFixed(1)} MB`,
    );
  }, 620_000);

  it('watches every NIC, whatever its driver, with no per-driver code', () => {
    expect(Object.values(s.devices).sort()).toEqual([...DRIVERS].sort());
    expect(s.status.taps).toMatchObject({ state: 'attached', malformed: 0, lost: 0, restarts: 0 });
    for (const [dev, driver] of Object.entries(s.devices)) {
      expect(s.status.devices).toContainEqual(expect.objectContaining({ name: dev, cls: 'net', driver, mode: 'passive', health: 'ok' }));
    }
  });

  it.each(DRIVERS)('%s: the shadow equals what ip, tc and ethtool report, key by key', (driver) => {
    const [dev] = Object.entries(s.devices).find(([, d]) => d === driver)!;
    const i = Object.keys(s.devices).indexOf(dev);
    const final = s.final[dev]!;
    expect(Object.fromEntries(final.entries.map((e) => [e.key, e.value])), context).toEqual(s.truth[dev]);

    // What was set is really there, read from ip's own JSON rather than through our reader.
    const link = s.ipLink[dev]![0]!;
    expect([link.mtu, link.address, link.txqlen, link.ifalias]).toEqual([1400, `02:00:00:00:0a:0${i + 1}`, 500, 'uplink']);
    expect(link.flags).toContain('ALLMULTI');
    expect(value(final, 'mtu')).toBe(1400);
    expect(value(final, 'mac')).toBe(`02:00:00:00:0a:0${i + 1}`);
    expect(value(final, 'ipv4')).toEqual([{ address: `10.0.${2 + i}.15/24`, label: dev }]);
    expect(value(final, 'ipv6')).toEqual([i === 0 ? '2001:db8::15/64' : `2001:db8:${i}::15/64`]);
    expect(value(final, 'routes')).toEqual([{ dst: `192.0.${2 + i}.0/24`, gateway: `10.0.${2 + i}.2` }]);
    expect(value(final, 'neighbours')).toEqual([{ dst: `10.0.${2 + i}.77`, lladdr: '02:00:00:00:00:77' }]);
    expect(value(final, 'multicast')).toEqual(['01:00:5e:00:00:42']);
    expect(value(final, 'unicast')).toEqual(['02:00:00:00:11:22']);
    expect(value(final, 'vlans')).toEqual([{ name: `${dev}.5`, protocol: '802.1Q', id: 5 }]);
    expect((value(final, 'features') as Record<string, boolean>)['generic-receive-offload']).toBe(false);
    expect(value(final, 'qdisc')).toMatchObject({ kind: 'tbf' });
    expect(value(final, 'allmulti_flag')).toBe(true);

    // Who set what: the start-up snapshot, the processes the taps saw, the catch-up after the restart.
    expect(setter(final, 'mtu')).toBe(dev === s.burstDev ? 'perl' : '(snapshot)');
    expect(setter(final, 'mac')).toBe('ip');
    expect(setter(final, 'unicast')).toBe('bridge');
    expect(setter(final, 'vlans')).toBe('ip');
    // Kernel threads finish some of these changes; the process that asked gets the credit.
    // (On a wrong credit, the daemon's own account of who changed the key.)
    const creditLog = (key: string): string => `\n${s.daemonLog.split('\n').filter((l) => l.includes(`${dev}: ${key} `) || l.includes('rtnl_hint')).join('\n')}`;
    expect(setter(final, 'ipv4'), creditLog('ipv4')).toBe('ip');
    expect(setter(final, 'routes'), creditLog('routes')).toBe('ip');
    expect(setter(final, 'neighbours'), creditLog('neighbours')).toBe('ip');
    expect(setter(final, 'features')).toBe('ethtool');
    expect(setter(final, 'rings')).toBe(driver === 'pcnet32' ? '(snapshot)' : 'ethtool'); // see shadow-session.ts
    expect(setter(final, 'qdisc')).toBe('tc');
    expect(setter(final, 'txqueuelen')).toBe('(snapshot)');
    expect(setter(final, 'alias')).toBe('(snapshot)');
  });

  it('keeps one MTU entry, the last value, after a burst of MTU changes', () => {
    const final = s.final[s.burstDev]!;
    expect(final.entries.filter((e) => e.key === 'mtu')).toEqual([expect.objectContaining({ value: 1400, setBy: expect.objectContaining({ comm: 'perl' }) as unknown })]);
    // Every key once, however many calls: the reduced log is bounded by its keys.
    expect(final.entries).toHaveLength(Object.keys(s.truth[s.burstDev]!).length);
    expect(s.burstEvents).toBeGreaterThan(s.toggles);
    console.log(`${s.toggles} MTU changes on ${s.burstDev}: ${s.burstEvents} tap events applied in ${s.burstMs} ms; one mtu entry`);
  });

  it.each(DRIVERS)('%s: a sniffer holds promiscuity while it runs, and not after', (driver) => {
    const [dev] = Object.entries(s.devices).find(([, d]) => d === driver)!;
    expect(s.whileSniffing[dev]!.holders).toContainEqual(
      expect.objectContaining({ kind: 'promiscuity', comm: 'tcpdump', pid: s.sniffers[dev], count: 1 }),
    );
    // One more than before: drivers without unicast filtering (pcnet32, e100) are
    // already promiscuous for the secondary unicast address, by the kernel's own count.
    expect(value(s.whileSniffing[dev]!, 'promiscuity')).toBe((value(s.final[dev]!, 'promiscuity') as number) + 1);
    expect(s.final[dev]!.holders).toEqual([]);
  });

  it("leaves the NICs' shadows alone while another namespace makes, configures, renames and deletes devices of their ifindexes and names", () => {
    const ns = s.namespace;
    // The collision happened: each NIC's ifindex and name existed in the user's namespace too.
    expect(ns.twins).toHaveLength(DRIVERS.length);
    expect(ns.nsTwins).toEqual(ns.twins);
    for (const dev of Object.keys(s.devices)) {
      // Nothing the namespace did reached a shadow: every entry as before, same value, setter and time.
      expect(s.final[dev]!.entries, `${dev}${context}`).toEqual(ns.before[dev]!.entries);
      expect(s.final[dev]!.device.name).toBe(dev);
      expect(value(s.final[dev]!, 'mtu')).not.toBe(ns.values.mtu);
      expect(value(s.final[dev]!, 'alias')).not.toBe(ns.values.alias);
    }
    expect(s.status.devices.filter((d) => d.cls === 'net').map((d) => [d.name, d.health]).sort()).toEqual(Object.keys(s.devices).map((d) => [d, 'ok']).sort());
    expect(s.daemonLog).not.toMatch(/disappeared|\bns\d+\b/);
  });

  it.each(DRIVERS)('%s: kill -9 of the daemon mid-run loses nothing it had seen', (driver) => {
    const [dev] = Object.entries(s.devices).find(([, d]) => d === driver)!;
    for (const e of s.beforeKill[dev]!.entries) {
      if (e.key === 'txqueuelen' || e.key === 'alias') continue; // changed while the daemon was down
      expect(entry(s.afterRestart[dev]!, e.key), `${e.key} after kill -9${context}`).toEqual(e);
    }
    expect(s.afterRestart[dev]!.holders).toEqual(s.beforeKill[dev]!.holders);
  });
});
