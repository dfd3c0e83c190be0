// bpftrace attaches a kprobe on a network class function in the guest's
// vmlinux, and the daemon's reader turns its JSON output into tap events that
// match what `ip` reports for the device.
import { describe, expect, it } from 'vitest';
import { assertGuestOk, runInGuest } from '../../rig/guest.js';
import { repoPath } from '../../rig/repo-path.js';

interface SmokeOutput {
  probes: number;
  messages: { kind: string; event?: { call: string; nums: Record<string, number>; masks: Record<string, string>; strs: Record<string, string>; pid: number; comm: string } }[];
  exit: { exitCode: number | null; stderr: string };
  link: { ifindex: number; ifname: string }[];
}

const IFF_UP = 0x1n;
const IFF_PROMISC = 0x100n;

describe('bpftrace taps in the guest', () => {
  it('a kprobe on __dev_change_flags feeds the event reader', async () => {
    const r = await runInGuest({
      command: ['sh', '-c', 'modprobe e1000 && exec node "$0" "$1" eth0', repoPath('dist/test/vm/guest/bpftrace-smoke.js'), repoPath('bpf/netdev-smoke.bt')],
      devices: ['e1000'],
      timeoutMs: 120_000,
    });
    assertGuestOk(r, 'bpftrace smoke');
    const out = JSON.parse(r.stdout) as SmokeOutput;
    expect(out.probes).toBe(1);
    expect(out.messages.filter((m) => m.kind === 'malformed')).toEqual([]);
    const events = out.messages.flatMap((m) => (m.event && m.event.strs['name'] === 'eth0' ? [m.event] : []));
    expect(events).toHaveLength(2);
    const ifindex = out.link[0]?.ifindex;
    for (const e of events) {
      expect(e.call).toBe('change_flags');
      expect(e.nums['ifindex']).toBe(ifindex);
      expect(e.comm).toBe('ip');
      expect(e.pid).toBeGreaterThan(1);
    }
    const [up, promisc] = events.map((e) => BigInt(e.masks['flags'] ?? '0'));
    expect(up! & IFF_UP).toBe(IFF_UP);
    expect(promisc! & IFF_PROMISC).toBe(IFF_PROMISC);
  });
});
