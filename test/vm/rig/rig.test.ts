// The guest rig's own guarantees: exit status and output come back, a hung
// guest is killed and reported with its console, and a kernel oops, WARN or
// panic caused by a test fails that test with the kernel's report.
import { beforeAll, describe, expect, it } from 'vitest';
import { selectedKernelSeries } from './cache-paths.js';
import { assertGuestOk, describeGuestRun, runInGuest, type GuestResult } from './guest.js';
import { buildModule } from './kmod-build.js';
import { repoPath } from './repo-path.js';

function failureOf(r: GuestResult): string {
  try {
    assertGuestOk(r, 'deliberately broken guest test');
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('assertGuestOk accepted a broken guest run');
}

describe('guest rig', () => {
  let fixture: string;
  beforeAll(async () => {
    fixture = await buildModule(repoPath('test/vm/fault-fixture'), 'fault_fixture', () => undefined);
  });

  it('returns the exit status, stdout and stderr of the command', async () => {
    const r = await runInGuest({ command: ['sh', '-c', 'echo "out $1"; echo err >&2; exit 7', 'sh', "it's"] });
    expect(r.exitCode).toBe(7);
    expect(r.stdout).toBe("out it's\n");
    expect(r.stderr).toBe('err\n');
    expect(r.kernelProblems).toEqual([]);
    expect(r.bootToCommandMs).toBeGreaterThan(0);
    expect(r.kernelLog.some((l) => l.text.startsWith(`Linux version ${selectedKernelSeries()}.`))).toBe(true);
  });

  it('gives the guest the sound cards and the IDE scratch disk of the presets, with their drivers', async () => {
    const r = await runInGuest({
      command: ['sh', '-c', 'modprobe snd-ens1370 && modprobe snd-intel8x0 && modprobe ata_piix && modprobe sd_mod && sleep 1 && cat /proc/asound/cards && cat /sys/block/sda/size'],
      devices: ['es1370', 'ac97', 'piix-ide'],
      diskMiB: 32,
    });
    assertGuestOk(r, 'sound and disk presets');
    expect(r.stdout).toMatch(/ENS1370 - Ensoniq AudioPCI/);
    expect(r.stdout).toMatch(/ICH - Intel 82801AA-ICH/);
    expect(r.stdout.trim().split('\n').at(-1)).toBe(String((32 * 1024 * 1024) / 512)); // 512-byte sectors
  });

  it('kills a hung guest at the timeout and shows its console', async () => {
    const r = await runInGuest({ command: ['sleep', '600'], timeoutMs: 15_000 });
    expect(r.timedOut).toBe(true);
    expect(r.exitCode).toBeNull();
    const message = failureOf(r);
    expect(message).toContain('the guest hung and was killed after 15 s');
    expect(message).toContain('--- console ---');
    expect(message).toContain('SHADOWD_GUEST_COMMAND_START');
  });

  it('fails a command that succeeded but made the kernel WARN', async () => {
    const r = await runInGuest({ command: ['sh', '-c', 'insmod "$0" mode=warn && rmmod fault_fixture', fixture] });
    expect(r.exitCode).toBe(0);
    const message = failureOf(r);
    expect(message).toContain('the guest kernel reported a problem');
    expect(message).toMatch(/WARNING: CPU: \d+ PID: \d+ at .*fault_fixture/);
    expect(message).toContain('fault_fixture: deliberate warning');
  });

  it('fails a test whose command oopsed the kernel, with the oops', async () => {
    const r = await runInGuest({ command: ['insmod', fixture, 'mode=oops'] });
    expect(r.exitCode).toBe(137); // insmod is killed by the oops; the kernel lives on
    const message = failureOf(r);
    expect(message).toContain('BUG: kernel NULL pointer dereference');
    expect(message).toMatch(/Oops: \d+ \[#1\]/);
    expect(message).toContain('RIP: 0010:fault_fixture_init');
  });

  it('fails a test that panicked the guest, from the console', async () => {
    const r = await runInGuest({ command: ['sh', '-c', 'echo c > /proc/sysrq-trigger'], timeoutMs: 60_000 });
    expect(r.timedOut).toBe(false);
    expect(r.exitCode).toBeNull();
    const message = failureOf(r);
    expect(message).toContain('the guest stopped without reporting an exit status');
    expect(message).toContain('Kernel panic - not syncing: sysrq triggered crash');
  });

  it('boots with systemd as PID 1 on request, runs the command as a unit, and brings back its status, output and the kernel log', async () => {
    const r = await runInGuest({
      init: 'systemd',
      command: ['sh', '-c', 'cat /proc/1/comm; systemctl show -p ActiveState --value systemd-journald.service; echo "$SHADOWD_GUEST_INIT $SHADOWD_IN_GUEST"; test -e /.dockerenv && echo dockerenv; journalctl -q -b -t shadowd-rig-probe; logger -t shadowd-rig-probe hello; sleep 0.5; journalctl -q -b -o cat -t shadowd-rig-probe; echo err >&2; exit 5'],
      timeoutMs: 90_000,
    });
    expect(r.exitCode, describeGuestRun(r, 'systemd boot')).toBe(5);
    expect(r.stdout).toBe('systemd\nactive\nsystemd 1\nhello\n');
    expect(r.stderr).toBe('err\n');
    expect(r.kernelProblems).toEqual([]);
    expect(r.bootToCommandMs).toBeGreaterThan(0);
    expect(r.kernelLog.some((l) => l.text.startsWith(`Linux version ${selectedKernelSeries()}.`))).toBe(true);
    expect(r.kernelLog.some((l) => /systemd\[1\]: .*running in system mode/.test(l.text) || /systemd 25\d/.test(l.text))).toBe(true);
  });
});
