// `npm run demo`: boots the guest and shows shadowd at work, live, for a user
// whose own kernel cannot run it.
import { COMMAND_START_MARKER, describeGuestRun, runInGuest } from './guest.js';
import { repoPath } from './repo-path.js';

// Console text before the command starts (firmware screen control, boot) is held back;
// the marker that ends it may arrive split across chunks.
let pending: string | null = '';
let partial = '';
const RIG_LINES = /^(SHADOWD_GUEST_EXIT=\d+|\[\s*\d+\.\d+\] reboot: Power down)$/;
const r = await runInGuest({
  // The guest writes to its serial console so the narration arrives as it happens.
  command: ['sh', '-c', 'exec node "$0" > /dev/console 2>&1', repoPath('dist/test/vm/guest/demo-guest.js')],
  devices: ['e1000'],
  timeoutMs: 180_000,
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
if (r.exitCode !== 0 || r.kernelProblems.length > 0) {
  console.error(describeGuestRun(r, 'demo'));
  process.exit(1);
}
console.log(`\n(demo guest: booted in ${((r.bootToCommandMs ?? 0) / 1000).toFixed(1)} s, ran ${(r.totalMs / 1000).toFixed(1)} s in all)`);
