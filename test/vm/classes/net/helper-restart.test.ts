// The helper module's restart on each of the paper's network drivers, in a
// real 6.1 guest (and e1000 on 6.12), without the daemon (guest/restart-check.ts): the device
// keeps its ifindex and every configuration key, a sniffer on it survives,
// configuration made by another process while the driver restarts again and
// again is accepted and in force afterwards, a restart that reloads the
// driver's whole module keeps the device just the same, a driver whose open keeps
// failing leaves the device parked rather than gone (and in its namespace), and
// the receive filters (multicast groups, promiscuous mode, IPv6 neighbour
// discovery) work after a restart as before, seen from a peer NIC of another
// driver on the same segment, and a NIC being restarted again and again cannot
// be moved to another namespace while the helper holds it (issue 13, item 4:
// the move would unregister it under the restart).
//
// virtio_net is in the list for the receive filters (issue 13, item 9): its
// open does not program them (the stack's dev_open would, through
// dev_set_rx_mode, but the helper calls ndo_open itself), and QEMU's
// virtio-net comes out of the device reset of a restart promiscuous, so
// without the helper's own ndo_set_rx_mode after the open the NIC takes
// other stations' frames and unjoined groups' after a restart: the
// 'restarted' probe fails (shown with that call disabled). e1000, pcnet32
// and e100 program their filters in their own open and would pass either
// way. Its device is on the virtio bus, whose drivers the helper does not
// reload (it says so first, and the test checks that refusal).
import { existsSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertGuestOk, runInGuest } from '../../rig/guest.js';
import type { NicPreset } from '../../rig/devices.js';
import { buildHelperModule } from '../../rig/kmod-build.js';
import { nicList } from './nic-list.js';
import { kernelRows } from '../../rig/kernel-rows.js';
import { repoPath } from '../../rig/repo-path.js';
import type { FilterProbe } from '../../guest/receive-filters.js';

const SCRIPT = repoPath('dist/test/vm/guest/restart-check.js');
/** The NIC under test, its driver, and a peer NIC of another driver on its segment. */
/** SHADOWD_NET_NICS runs others (PRESET:DRIVER:PEER_PRESET:PEER_DRIVER,...; nic-list.ts). */
const NICS = nicList<[NicPreset, string, NicPreset, string]>(
  [
    ['e1000', 'e1000', 'pcnet', 'pcnet32'],
    ['pcnet', 'pcnet32', 'e1000', 'e1000'],
    ['i82559er', 'e100', 'e1000', 'e1000'],
    ['virtio-net', 'virtio_net', 'e1000', 'e1000'],
  ],
  4,
  [0, 2],
);
/** Every NIC on 6.1; e1000 on 6.12 too (SHADOWD_GUEST_KERNEL runs them all on one kernel). */
const ROWS = kernelRows(NICS, ([, driver]) => driver === 'e1000');
const STEPS = ['name', 'mac', 'mtu', 'features', 'vlan', 'rings', 'msglvl', 'pause', 'privflags', 'open'];

interface RestartResult {
  dev: string;
  /** The driver's module (ne2k_pci for the driver ne2k-pci). */
  module: string;
  /** Whether the driver has a message level (virtio_net has none). */
  msglvl: boolean;
  preserve: {
    reply: string;
    ifindexBefore: number;
    ifindexAfter: number;
    before: Record<string, unknown>;
    after: Record<string, unknown>;
    ping: string;
    sniffer: { alive: boolean; capturedAfter: number };
  };
  reload: {
    /** The device's bus: the helper reloads only a PCI device's driver, and refuses any other's before touching it. */
    bus: string;
    device?: string;
    reply: string;
    moduleNodeBefore: number;
    moduleNodeAfter: number;
    ifindex: number;
    before: Record<string, unknown>;
    after: Record<string, unknown>;
    ping: string;
    refused: { reply: string; sameModule: boolean; log: string[]; ping: string };
  };
  hang: { inject: string; watchdogMs: number; timeoutsBefore: number; timeoutsAtRestart: number; timeoutsAfter: number; reply: string; ping: string };
  concurrent: {
    replies: string[];
    iterations: number;
    failures: string[];
    stuck: string | null;
    last: Record<string, number>;
    final: { mtu: number; txqueuelen: number; msglvl: number; rings: { rx: number } | null };
  };
  park: {
    inject: string;
    reply: string;
    txstat: string;
    ifindex: number;
    clear: string;
    move: { exitCode: number; stderr: string; stayed: boolean };
    back: string;
    ping: string;
  };
  filters: {
    runs: { label: string; reply: string | null; probe: FilterProbe }[];
    sent: number;
    passiveMove: { exitCode: number; stderr: string; movedAway: boolean };
  };
  netns: {
    runs: { reply: string; polls: number; tries: { exitCode: number; stderr: string; moved: boolean; back: boolean }[] }[];
    ifindex: number;
    log: string[];
  };
}

/** The key=value fields of an `ok restarted net:IFACE ...` reply. */
const replyFields = (reply: string): Record<string, string> => Object.fromEntries(reply.split(' ').slice(3).map((f) => f.split('=') as [string, string]));

/** The fields of a `restarted` reply; fails the test on anything else. */
function restarted(reply: string): Record<string, string> {
  expect(reply).toMatch(/^ok restarted net:\S+ id=\S+ ifindex=\d+ stop_ms=\d+ release_ms=\d+ probe_ms=\d+ replay_ms=\d+ open_ms=\d+ total_ms=\d+ steps=\S+$/);
  return replyFields(reply);
}

/** The fields of a `restarted` reply to `restart net:IFACE ID reload`. */
function reloaded(reply: string, module: string): Record<string, string> {
  expect(reply).toMatch(
    new RegExp(
      `^ok restarted net:\\S+ id=\\S+ ifindex=\\d+ module=${module} stop_ms=\\d+ release_ms=\\d+ unload_ms=\\d+ load_ms=\\d+ probe_ms=\\d+ replay_ms=\\d+ open_ms=\\d+ total_ms=\\d+ steps=\\S+$`,
    ),
  );
  return replyFields(reply);
}

describe('helper module restart keeps the net_device', () => {
  beforeAll(async () => {
    if (!existsSync(SCRIPT) || statSync(SCRIPT).mtimeMs < statSync(repoPath('test/vm/guest/restart-check.ts')).mtimeMs) {
      throw new Error(`${SCRIPT} is missing or stale: run \`npx tsc -p tsconfig.json\` first`);
    }
    for (const kernel of new Set(ROWS.map(([k]) => k))) await buildHelperModule((line) => console.log(`kmod: ${line}`), kernel);
  }, 240_000);

  it.each(ROWS)('%s: %s (driver %s, peer %s %s)', async (kernel, preset, driver, peerPreset, peerDriver) => {
    const r = await runInGuest({ command: ['node', SCRIPT, driver, peerDriver], devices: [preset, peerPreset], nicHub: true, timeoutMs: 200_000, kernel });
    assertGuestOk(r, `${driver} restart check`);
    const line = r.stdout.split('\n').find((l) => l.startsWith('RESTART_RESULT '));
    expect(line, `no RESTART_RESULT in:\n${r.stdout}`).toBeDefined();
    const res = JSON.parse(line!.slice('RESTART_RESULT '.length)) as RestartResult;

    // 1. one restart: same device, same configuration, sniffer alive, traffic.
    const first = restarted(res.preserve.reply);
    expect(first['steps']!.split(',').map((s) => s.split(':')[0])).toEqual(STEPS);
    expect(first['steps']).not.toContain(':fail');
    expect(res.preserve.ifindexAfter).toBe(res.preserve.ifindexBefore);
    expect(res.preserve.after).toEqual(res.preserve.before);
    expect(res.preserve.before['mtu']).toBe(1400);
    expect(res.preserve.before['msglvl']).toBe(res.msglvl ? 3 : null);
    expect(res.preserve.ping).toContain('3 packets transmitted, 3 packets received');
    expect(res.preserve.sniffer.alive).toBe(true);
    expect(res.preserve.sniffer.capturedAfter).toBeGreaterThan(0);

    // 1b. the same through a reload of the driver's module: a new module, the same device.
    let reload: Record<string, string> = {};
    if (res.reload.bus !== 'pci') {
      expect(res.reload.reply).toBe(`err EOPNOTSUPP a reload needs a PCI device (${res.reload.device} is on ${res.reload.bus})`);
    } else {
      reload = reloaded(res.reload.reply, res.module);
      expect(reload['steps']!.split(',').map((s) => s.split(':')[0])).toEqual(['reload', ...STEPS]);
      expect(reload['steps']).not.toContain(':fail');
      expect(res.reload.moduleNodeAfter).not.toBe(res.reload.moduleNodeBefore);
      expect(res.reload.ifindex).toBe(res.preserve.ifindexBefore);
      expect(res.reload.after).toEqual(res.reload.before);
      expect(res.reload.ping).toContain('3 packets transmitted, 3 packets received');
      // A module that will not unload: a plain restart, the module as it was, and the reason in the kernel log.
      const refused = reloaded(res.reload.refused.reply, res.module);
      expect(refused['steps']!.split(',').map((s) => s.split(':')[0])).toEqual(['reload', ...STEPS]);
      expect(refused['steps']!.split(',').filter((s) => s.endsWith(':fail'))).toEqual(['reload:fail']);
      expect(res.reload.refused.sameModule).toBe(true);
      expect(res.reload.refused.log.join('\n')).toMatch(new RegExp(`modprobe -r ${res.module} exited with status 1; module ${res.module} is loaded; probing it again with the module as it is`));
      expect(res.reload.refused.ping).toContain('3 packets transmitted, 3 packets received');
    }

    // 1c. the driver's own TX-timeout reset ran before the restart (and may run beside its stop): the restart
    // ends, the fault is lifted, traffic passes, and no timeout follows it.
    expect(res.hang.inject).toBe(`ok injected net:${res.dev} tx-hang`);
    expect(res.hang.timeoutsAtRestart).toBeGreaterThan(res.hang.timeoutsBefore);
    expect(restarted(res.hang.reply)['steps']).not.toContain(':fail');
    expect(res.hang.ping).toContain('3 packets transmitted, 3 packets received');

    // 2. configuration in a loop during repeated restarts: accepted, last one wins.
    for (const reply of res.concurrent.replies) expect(restarted(reply)['steps']).not.toContain(':fail');
    expect(res.concurrent.failures).toEqual([]);
    expect(res.concurrent.stuck).toBeNull();
    expect(res.concurrent.iterations).toBeGreaterThan(0);
    expect(res.concurrent.final.mtu).toBe(res.concurrent.last['mtu']);
    expect(res.concurrent.final.txqueuelen).toBe(res.concurrent.last['txqueuelen']);
    expect(res.concurrent.final.msglvl).toBe(res.msglvl ? res.concurrent.last['msglvl'] : null);
    if (res.concurrent.last['rx'] !== undefined) expect(res.concurrent.final.rings?.rx).toBe(res.concurrent.last['rx']);

    // 3. a driver that cannot open is parked, the device kept, and comes back.
    expect(res.park.inject).toBe(`ok injected net:${res.dev} fail-open`);
    expect(res.park.reply).toMatch(new RegExp(`^err EIO net:${res.dev} id=sticky1 parked after \\d+ ms: the driver's open failed: error -5 steps=.*open:fail$`));
    // Parked, it is operationally down: no carrier (its addresses and routes kept).
    expect(res.park.txstat).toMatch(/ state=parked running=0 carrier=0 /);
    expect(res.park.ifindex).toBe(res.preserve.ifindexBefore);
    expect(res.park.clear).toBe(`ok cleared net:${res.dev}`);
    // Parked, the device may not leave its namespace (the move would drop the shadow's record).
    expect(res.park.move.exitCode).not.toBe(0);
    // EINVAL; 6.12 adds the extack "The interface netns is immutable", which ip prints instead.
    expect(res.park.move.stderr).toMatch(/Invalid argument|The interface netns is immutable/);
    expect(res.park.move.stayed).toBe(true);
    restarted(res.park.back);
    expect(res.park.ping).toContain('3 packets transmitted, 3 packets received');

    // 4. receive filters: what was let in before a restart is let in after, and what was kept out stays out.
    const sent = res.filters.sent;
    for (const { label, reply, probe } of res.filters.runs) {
      const what = `${driver} ${label}: ${JSON.stringify(probe)}`;
      if (reply) expect(restarted(reply)['steps'], what).not.toContain(':fail');
      expect(probe.joined, what).toBeGreaterThanOrEqual(sent * 0.8);
      expect(probe.ndOk, what).toBe(true);
      if (probe.promisc) {
        expect(probe.foreign, what).toBeGreaterThanOrEqual(sent * 0.8);
        expect(probe.unjoined, what).toBeGreaterThanOrEqual(sent * 0.8);
      } else {
        expect(probe.foreign, what).toBeLessThan(sent / 2);
        expect(probe.unjoined, what).toBeLessThan(sent / 2);
      }
    }
    expect(res.filters.runs.map((f) => [f.label, f.probe.promisc])).toEqual([
      ['before', false],
      ['restarted', false],
      ['promisc', true],
      ['promisc restarted', true],
      ['promisc off', false],
    ]);
    console.log(`${driver} filters (joined/unjoined/foreign of ${sent}): ${res.filters.runs.map((f) => `${f.label} ${f.probe.joined}/${f.probe.unjoined}/${f.probe.foreign}`).join(', ')}`);
    // Passive again, the device is free to move: the restart gave back what its driver had said.
    expect(res.filters.passiveMove).toEqual({ exitCode: 0, stderr: '', movedAway: true });

    // 5. namespace moves tried while restarts run: refused while the device is held, every restart through.
    const tries = res.netns.runs.flatMap((run) => run.tries);
    for (const run of res.netns.runs) expect(restarted(run.reply)['steps']).not.toContain(':fail');
    for (const t of tries) {
      const what = JSON.stringify(t);
      if (t.exitCode === 0) {
        // Landed once the restart was over: moved, and moved back.
        expect({ moved: t.moved, back: t.back }, what).toEqual({ moved: true, back: true });
      } else {
        expect(t.stderr, what).toMatch(/Invalid argument|The interface netns is immutable/);
        expect(t.moved, what).toBe(false);
      }
    }
    const refusedMoves = tries.filter((t) => t.exitCode !== 0).length;
    // Some tries must have met a held device, or this proved nothing.
    expect(refusedMoves, JSON.stringify(res.netns.runs)).toBeGreaterThan(0);
    expect(res.netns.ifindex).toBe(res.preserve.ifindexBefore);
    expect(res.netns.log).toEqual([]);

    const ms = (reply: string): string => {
      const f = replyFields(reply);
      return `stop ${f['stop_ms']} release ${f['release_ms']} probe ${f['probe_ms']} replay ${f['replay_ms']} open ${f['open_ms']} total ${f['total_ms']} ms`;
    };
    console.log(
      `${driver} on ${kernel}: restart ${ms(res.preserve.reply)}; after the driver's own reset (watchdog ${res.hang.watchdogMs} ms, ` +
        `${res.hang.timeoutsAtRestart - res.hang.timeoutsBefore} timeouts, ${res.hang.timeoutsAfter - res.hang.timeoutsAtRestart} more) ${ms(res.hang.reply)}; reload ${res.reload.bus === 'pci' ? `${ms(res.reload.reply)} (unload ${reload['unload_ms']} load ${reload['load_ms']} ms)` : `refused (${res.reload.bus})`}; ${res.concurrent.replies.length} restarts under a config loop ` +
        `(${res.concurrent.iterations} iterations, last ${JSON.stringify(res.concurrent.last)}); parked and back; ` +
        `filters (joined/unjoined/foreign of ${sent}): ${res.filters.runs.map((f) => `${f.label} ${f.probe.joined}/${f.probe.unjoined}/${f.probe.foreign}`).join(', ')}; ` +
        `${res.netns.runs.length} restarts under namespace moves: ${refusedMoves} of ${tries.length} tries refused (EINVAL), ${tries.length - refusedMoves} landed once passive and were moved back`,
    );
  });
});
