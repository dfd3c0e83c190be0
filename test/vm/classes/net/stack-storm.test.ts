// What a large routing table and an ARP storm from the LAN cost shadowd, in
// the guest (test/vm/guest/stack-storm.ts): 100,000 routes on a watched NIC,
// then 20 s of ARP requests from random senders on the same segment, then the
// table flushed. The daemon must stay within its memory, spend little CPU on
// what it does not keep, say once that the table is too large to keep, and
// still see what an administrator changes in the middle of the storm.
import { beforeAll, describe, expect, it } from 'vitest';
import type { ShowResult, StatusResult } from '../../../../daemon/control/control-protocol.js';
import { assertGuestOk, runInGuest } from '../../rig/guest.js';
import { repoPath } from '../../rig/repo-path.js';

interface Cost {
  wallS: number;
  daemonCpuS: number;
  bpftraceCpuS: number;
  /** Tap events the daemon took in. */
  events: number;
}
interface Storm {
  dev: string;
  routes: number;
  routeCount: number;
  routeAddS: number;
  routeSettleS: number;
  sent: number;
  rxDuringStorm: number;
  neighbourCounts: number[];
  stormSettleS: number;
  cost: Record<'idle' | 'routes' | 'storm' | 'cleanup', Cost>;
  peakRssKb: { daemon: number; bpftrace: number };
  alive: boolean;
  afterRoutes: ShowResult;
  afterStorm: ShowResult;
  final: ShowResult;
  status: StatusResult;
  neighbour: { dst: string; lladdr: string };
  lastRoute: string;
  daemonLog: string;
}

const entry = (r: ShowResult, key: string): ShowResult['entries'][number] | undefined => r.entries.find((e) => e.key === key);
/** CPU share of one core above what the daemon spends idle. */
const extraShare = (c: Cost, idle: Cost): number => c.daemonCpuS / c.wallS - idle.daemonCpuS / idle.wallS;

describe('a large routing table and an ARP storm', () => {
  let s: Storm;
  let context: string;
  beforeAll(async () => {
    const r = await runInGuest({
      command: ['node', repoPath('dist/test/vm/guest/stack-storm.js'), 'e1000', 'pcnet32'],
      devices: ['e1000', 'pcnet'],
      nicHub: true,
      timeoutMs: 600_000,
    });
    assertGuestOk(r, 'stack storm');
    s = JSON.parse(r.stdout) as Storm;
    context = `\n--- shadowd log ---\n${s.daemonLog}`;
    const pct = (c: Cost): string =>
      `${((100 * c.daemonCpuS) / c.wallS).toFixed(1)} % daemon, ${((100 * c.bpftraceCpuS) / c.wallS).toFixed(1)} % bpftrace over ${c.wallS.toFixed(1)} s, ${c.events} events`;
    console.log(
      `stack storm on ${s.dev}: ${s.routeCount} routes added in ${s.routeAddS} s (settled ${s.routeSettleS} s later); ` +
        `${s.sent} ARP requests sent, ${s.rxDuringStorm} packets received, neighbour table ${Math.max(...s.neighbourCounts)} entries at most\n` +
        `CPU: idle ${pct(s.cost.idle)}; routes ${pct(s.cost.routes)}; storm ${pct(s.cost.storm)}; flush ${pct(s.cost.cleanup)}\n` +
        `peak RSS: daemon ${Math.round(s.peakRssKb.daemon / 1024)} MB, bpftrace ${Math.round(s.peakRssKb.bpftrace / 1024)} MB`,
    );
  }, 660_000);

  it('was a real storm: the table was in the kernel, and the ARP requests filled the neighbour table', () => {
    expect(s.routeCount).toBeGreaterThanOrEqual(s.routes);
    expect(s.sent).toBeGreaterThan(10_000);
    expect(Math.max(...s.neighbourCounts)).toBeGreaterThan(500);
  });

  it('the daemon stayed up, within its memory', () => {
    expect(s.alive, context).toBe(true);
    expect(s.status.devices.some((d) => d.name === s.dev)).toBe(true);
    // Node's own baseline is about 45 MB; the heap is capped at 32 MB.
    expect(s.peakRssKb.daemon).toBeLessThan(100 * 1024);
  });

  it('takes in little of what it does not keep, and spends little CPU on it', () => {
    // The kernel's ARP notifications are not tapped; a process's route changes are announced at most once per 50 ms.
    expect(s.cost.storm.events).toBeLessThan(50);
    expect(s.cost.routes.events).toBeLessThan(s.routes / 20);
    expect(s.cost.cleanup.events).toBeLessThan(s.routes / 20);
    // Without the bounds, every ARP notification re-read the neighbours and every route the table
    // (and the daemon ran out of its heap while 100,000 routes went in: it died).
    expect(extraShare(s.cost.storm, s.cost.idle), context).toBeLessThan(0.1);
    expect(extraShare(s.cost.routes, s.cost.idle), context).toBeLessThan(0.6);
    expect(extraShare(s.cost.cleanup, s.cost.idle), context).toBeLessThan(0.6);
  });

  it('says once that the table is too large to keep, keeps none of it, and takes routes again once it fits', () => {
    expect(entry(s.afterRoutes, 'routes')?.value, context).toBeNull();
    expect(s.daemonLog.match(/routes are too many to keep/g)?.length, context).toBe(1);
    expect(s.daemonLog.match(/routes fit the shadow again/g)?.length, context).toBe(1);
    expect(entry(s.final, 'routes')?.value, context).toEqual([{ dst: s.lastRoute, gateway: '192.168.88.2' }]);
  });

  it('sees a permanent neighbour an administrator adds in the middle of the storm', () => {
    const neighbours = entry(s.afterStorm, 'neighbours');
    expect(neighbours?.value, context).toEqual([s.neighbour]);
    expect(neighbours?.setBy.comm).toBe('ip');
  });
});
