// Each of the paper's network drivers that QEMU emulates loads in the guest and
// its interface passes traffic: ping to the QEMU gateway and a download from
// the host's loopback whose checksum must match.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { assertGuestOk, runInGuest } from '../../rig/guest.js';
import { GUEST_FWD_ADDR, type NicPreset } from '../../rig/devices.js';
import { serveRandomBlob, type LoopbackServer } from '../../rig/loopback-server.js';
import { repoPath } from '../../rig/repo-path.js';

const SCRIPT = repoPath('test', 'vm', 'guest', 'nic-traffic.sh');
const GUEST_PORT = 8080;
const NICS: [NicPreset, string][] = [
  ['e1000', 'e1000'],
  ['pcnet', 'pcnet32'],
  ['i82559er', 'e100'],
];

describe('NIC presets pass traffic', () => {
  let server: LoopbackServer;
  beforeAll(async () => {
    server = await serveRandomBlob(4 * 1024 * 1024);
  });
  afterAll(async () => server.close());

  it.each(NICS)('%s (driver %s)', async (preset, driver) => {
    const r = await runInGuest({
      command: ['sh', SCRIPT, driver, `http://${GUEST_FWD_ADDR}:${GUEST_PORT}/blob`],
      devices: [preset],
      forwards: [{ guestPort: GUEST_PORT, hostPort: server.port }],
      timeoutMs: 90_000,
    });
    assertGuestOk(r, `${preset} traffic`);
    expect(r.stdout).toContain(`driver=${driver}\n`);
    expect(r.stdout).toMatch(/3 packets transmitted, 3 packets received/);
    expect(r.stdout).toContain(`sha256=${server.sha256}\n`);
  });
});
