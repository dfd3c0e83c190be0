// `npm run demo`: boots the guest and shows shadowd at work, live, for a user
// whose own kernel cannot run it.
import { GUEST_FWD_ADDR } from './rig/devices.js';
import { COMMAND_START_MARKER, describeGuestRun, runInGuest } from './rig/guest.js';
import { serveRandomBlob } from './rig/loopback-server.js';
import { repoPath } from './rig/repo-path.js';

// The download's source: a server on this machine's loopback, reached from
// the guest through QEMU's forward; nothing leaves the machine.
const server = await serveRandomBlob(24 * 1024 * 1024);

// Console text before the command starts (firmware screen control, boot) is held back;
// the marker that ends it may arrive split across chunks.
let pending: string | null = '';
let partial = '';
const RIG_LINES = /^(SHADOWD_GUEST_EXIT=\d+|\[\s*\d+\.\d+\] reboot: Power down)$/;
const r = await runInGuest({
  // The guest writes to its serial console so the narration arrives as it happens.
  command: ['sh', '-c', 'exec node "$0" "$1" "$2" > /dev/console 2>&1', repoPath('dist/test/vm/guest/demo-guest.js'), `http://${GUEST_FWD_ADDR}:8080/blob`, server.sha256],
  devices: ['e1000'],
  forwards: [{ guestPort: 8080, hostPort: server.port }],
  timeoutMs: 240_000,
  onConsole: (text) => {
    if (pending !== null) {
      pending += text;
      const at = pending.indexOf(COMMAND_START_MARKER);
      if (at < 0) return;
      text = pending.slice(at + COMMAND_START_MARKER.length).replace(/^\r?\n/, '');
      pending = null;
    }
    // Whole lines only, without the rig's exit marker and the guest's power-off.
    partial += text.replace(/\r/g, '');
    const lines = partial.split('\n');
    partial = lines.pop() ?? '';
    for (const line of lines) if (!RIG_LINES.test(line)) process.stdout.write(line + '\n');
  },
});
await server.close();
if (r.exitCode !== 0 || r.kernelProblems.length > 0) {
  console.error(describeGuestRun(r, 'demo'));
  process.exit(1);
}
console.log(`\n(demo guest: booted in ${((r.bootToCommandMs ?? 0) / 1000).toFixed(1)} s, ran ${(r.totalMs / 1000).toFixed(1)} s in all)`);
