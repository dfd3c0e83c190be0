// A restart must never make things worse than the failure: state that lives
// in the driver instance and that the helper does not carry across a restart
// makes it refuse before it touches the device. Shown in a real 6.1 guest with
// a real XDP program on virtio_net (guest/uncarried-state.ts): in driver mode
// the restart is refused and the device keeps program, ifindex and traffic; in
// generic mode (run by the core, not the driver) the restart goes through and
// the program stays attached. In the same boot, a wireless device
// (mac80211_hwsim's simulated radio) is refused and left as it was.
//
// The helper's other refusals (kmod/sh_net_restart.c sh_uncarried,
// sh_unreloadable) cannot be produced with what the 6.1 guest has, and are
// covered by reading only: offloaded XDP, TC flow offload (hw-tc-offload),
// UDP tunnel port offload, IPsec (esp-hw-offload) and TLS offload need
// netdevsim, which Debian builds for neither 6.1 nor 6.12
// (CONFIG_NETDEVSIM is not set), or real hardware; DCB, and a reload refused
// for a driver's own header_ops or UDP tunnel offload, need drivers such as
// ixgbe, i40e, ice, mlx5 or bnxt, whose devices the rig's QEMU (7.2) does not
// emulate (its emulated NICs' drivers have none of them; igb's TC offload
// needs QEMU 8's igb and an i350). A reload of the simulated radio is not
// tried: the helper reloads only a PCI device's driver and says so first.
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertGuestOk, runInGuest } from '../../rig/guest.js';
import { buildHelperModule } from '../../rig/kmod-build.js';
import { repoPath } from '../../rig/repo-path.js';

const SCRIPT = repoPath('dist/test/vm/guest/uncarried-state.js');
// Built into dist/, which the guest sees through the host root.
const XDP_SOURCE = repoPath('test/fixtures/xdp/xdp-pass.ll');
const XDP_OBJECT = repoPath('dist/test/fixtures/xdp/xdp-pass.o');

interface XdpState {
  mode: number;
  progId: number | null;
}
interface UncarriedResult {
  dev: string;
  ifindexBefore: number;
  pingBefore: string;
  driver: { attach: { exitCode: number; stderr: string }; before: XdpState; reply: string; after: XdpState; ifindex: number; ping: string; log: string[] };
  generic: { attach: { exitCode: number; stderr: string }; before: XdpState; reply: string; after: XdpState; ifindex: number; ping: string };
  wireless: { dev: string; before: WirelessState; reply: string; after: WirelessState; log: string[] };
}
interface WirelessState {
  ifindex: number;
  driver: string;
  phy: string;
  up: boolean;
}

describe('state the helper cannot carry makes a restart refuse', () => {
  beforeAll(async () => {
    if (!existsSync(SCRIPT) || statSync(SCRIPT).mtimeMs < statSync(repoPath('test/vm/guest/uncarried-state.ts')).mtimeMs) {
      throw new Error(`${SCRIPT} is missing or stale: run \`npx tsc -p tsconfig.json\` first`);
    }
    mkdirSync(repoPath('dist/test/fixtures/xdp'), { recursive: true });
    await execa('llc', ['-march=bpf', '-filetype=obj', XDP_SOURCE, '-o', XDP_OBJECT]);
    await buildHelperModule((line) => console.log(`kmod: ${line}`));
  });

  it('virtio_net: a driver-mode XDP program is refused, a generic one is carried; mac80211_hwsim: a wireless device is refused', async () => {
    const r = await runInGuest({ command: ['node', SCRIPT, XDP_OBJECT], devices: ['virtio-net'], timeoutMs: 120_000 });
    assertGuestOk(r, 'uncarried-state');
    const line = r.stdout.split('\n').find((l) => l.startsWith('UNCARRIED_RESULT '));
    expect(line, `no UNCARRIED_RESULT in:\n${r.stdout}`).toBeDefined();
    const res = JSON.parse(line!.slice('UNCARRIED_RESULT '.length)) as UncarriedResult;
    const ok = '3 packets transmitted, 3 packets received';
    expect(res.pingBefore).toContain(ok);

    // Driver mode: refused with the reason, nothing touched.
    expect(res.driver.attach).toEqual({ exitCode: 0, stderr: '' });
    expect(res.driver.before.mode).toBe(1);
    expect(res.driver.before.progId).not.toBeNull();
    expect(res.driver.reply).toBe(
      `err EOPNOTSUPP a restart would lose what the driver holds: a driver-mode XDP program is attached (the fresh driver would not run it)`,
    );
    expect(res.driver.after).toEqual(res.driver.before);
    expect(res.driver.ifindex).toBe(res.ifindexBefore);
    expect(res.driver.ping).toContain(ok);
    expect(res.driver.log.join('\n')).toMatch(/recovery xdp1: net:\S+ left as it was: a restart would lose what the driver holds/);

    // Generic mode: restarted, the program still attached and traffic flowing.
    expect(res.generic.attach).toEqual({ exitCode: 0, stderr: '' });
    expect(res.generic.before.mode).toBe(2);
    expect(res.generic.reply).toMatch(new RegExp(`^ok restarted net:${res.dev} id=xdp2 ifindex=${res.ifindexBefore} .* steps=\\S+$`));
    expect(res.generic.reply).not.toContain(':fail');
    expect(res.generic.after).toEqual(res.generic.before);
    expect(res.generic.ifindex).toBe(res.ifindexBefore);
    expect(res.generic.ping).toContain(ok);

    // A wireless device: refused with the reason, nothing touched (same ifindex, driver, wiphy, still up).
    const w = res.wireless;
    expect(w.before).toEqual({ ifindex: w.before.ifindex, driver: 'mac80211_hwsim', phy: w.before.phy, up: true });
    expect(w.reply).toBe(`err EOPNOTSUPP a restart would lose what the driver holds: a wireless device (cfg80211 and mac80211 keep its state outside it)`);
    expect(w.after).toEqual(w.before);
    expect(w.log.join('\n')).toMatch(new RegExp(`recovery wifi1: net:${w.dev} left as it was: a restart would lose what the driver holds: a wireless device`));
    console.log(
      `virtio_net: driver-mode XDP (prog ${res.driver.before.progId}) refused and kept; generic XDP (prog ${res.generic.before.progId}) carried: ${res.generic.reply}; ` +
        `${w.dev} (mac80211_hwsim, ${w.before.phy}) refused and kept: ${w.reply}`,
    );
  });
});
