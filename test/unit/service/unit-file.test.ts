// systemd/shadowd.service grants the least that works: no CAP_SYS_MODULE and
// no module system calls (with them the daemon could load the helper again
// with allow_faults=1; the modules it needs load at boot), and of the misc
// devices only the helper's and device-mapper's control node, not char-misc
// (/dev/kvm, /dev/watchdog, ...). test/vm/service/service.test.ts checks the
// running daemon under systemd.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { repoPath } from '../../vm/rig/repo-path.js';

const UNIT = readFileSync(repoPath('systemd/shadowd.service'), 'utf8');
/** Every value of KEY=, in order (comments and continuation lines aside: the unit has none). */
function values(key: string): string[] {
  return UNIT.split('\n')
    .filter((l) => l.startsWith(`${key}=`))
    .map((l) => l.slice(key.length + 1));
}

describe('systemd/shadowd.service', () => {
  it('does not let the daemon load or unload modules', () => {
    const caps = values('CapabilityBoundingSet').join(' ').split(/\s+/);
    expect(caps).not.toContain('CAP_SYS_MODULE');
    expect(caps).toEqual(expect.arrayContaining(['CAP_BPF', 'CAP_PERFMON', 'CAP_SYS_ADMIN', 'CAP_NET_ADMIN', 'CAP_SYSLOG', 'CAP_CHOWN']));
    expect(values('SystemCallFilter').join(' ').split(/\s+/)).not.toContain('@module');
    expect(values('ProtectKernelModules')).toEqual(['yes']);
  });

  it('allows the helper\'s device, not every misc device, and starts after the boot modules are loaded', () => {
    const allowed = values('DeviceAllow');
    expect(allowed).not.toContain('char-misc rw');
    expect(allowed.filter((d) => d.startsWith('char-misc'))).toEqual([]);
    expect(allowed).toEqual(expect.arrayContaining(['/dev/shadow_helper rw', '/dev/mapper/control rw', '/dev/kmsg r']));
    expect(values('DevicePolicy')).toEqual(['closed']);
    expect(values('After').join(' ').split(/\s+/)).toContain('systemd-modules-load.service');
  });

  it('stops restarting a daemon that cannot start: at most 5 starts in 10 minutes, in [Unit] where systemd reads them', () => {
    // systemd's default (5 in 10 s) never trips with RestartSec=2 and a start that fails after a second or two.
    const unitSection = UNIT.slice(UNIT.indexOf('[Unit]'), UNIT.indexOf('[Service]'));
    expect(unitSection).toMatch(/^StartLimitIntervalSec=600$/m);
    expect(unitSection).toMatch(/^StartLimitBurst=5$/m);
    expect(values('Restart')).toEqual(['on-failure']);
    const interval = Number(values('StartLimitIntervalSec')[0]);
    const burst = Number(values('StartLimitBurst')[0]);
    const restartSec = Number(values('RestartSec')[0]);
    // A daemon failing at once is stopped: its burst of restarts fits in the interval many times over.
    expect(burst * restartSec).toBeLessThan(interval / 10);
  });

  it('documents every capability it keeps, and none it dropped', () => {
    for (const cap of values('CapabilityBoundingSet').join(' ').split(/\s+/)) expect(UNIT).toMatch(new RegExp(`^#\\s+${cap}\\s`, 'm'));
    expect(UNIT).not.toMatch(/^#\s+CAP_SYS_MODULE\s/m);
    const doc = readFileSync(repoPath('docs/service.md'), 'utf8');
    expect(doc).not.toMatch(/^\| `CAP_SYS_MODULE` \|/m);
  });
});
