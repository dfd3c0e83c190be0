// The disk class's userspace mechanism in a real 6.1 guest, driven only by
// its library (guest/block-dm-mechanism.ts): a filesystem on a single-path
// dm-multipath map with queue_if_no_path keeps every acknowledged write and
// stays clean across a sysfs unbind + bind of its disk's driver (ata_piix,
// ahci, virtio_blk), the map follows the disk to its new name, and the disk's
// settings are written back; the control, ext4 straight on the disk under the
// same restart, fails.
import { existsSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { assertGuestOk, runInGuest } from '../../rig/guest.js';
import { repoPath } from '../../rig/repo-path.js';
import type { ControlRun, MappedRun } from '../../guest/block-dm-mechanism.js';

const SCRIPT = repoPath('dist/test/vm/guest/block-dm-mechanism.js');

type Mapped = MappedRun;
type Control = ControlRun;

describe('disk class mechanism: dm-multipath over a driver restart', () => {
  beforeAll(() => {
    if (!existsSync(SCRIPT) || statSync(SCRIPT).mtimeMs < statSync(repoPath('test/vm/guest/block-dm-mechanism.ts')).mtimeMs) {
      throw new Error(`${SCRIPT} is missing or stale: run \`npx tsc -p tsconfig.json\` first`);
    }
  });

  it('keeps a filesystem on the map through unbind + bind of ata_piix, ahci and virtio_blk; the control fails', { timeout: 400_000 }, async () => {
    const r = await runInGuest({ command: ['node', SCRIPT], devices: ['piix-ide', 'ahci', 'virtio-blk'], timeoutMs: 380_000 });
    assertGuestOk(r, 'block dm mechanism');
    const line = r.stdout.split('\n').find((l) => l.startsWith('BLOCK_RESULT '));
    expect(line, `no BLOCK_RESULT in:\n${r.stdout}\n${r.stderr}`).toBeDefined();
    const res = JSON.parse(line!.slice('BLOCK_RESULT '.length)) as { mapped: Mapped[]; controls: Control[]; failures: string[] };
    console.log(r.stderr.split('\n').filter((l) => l.startsWith('[block')).join('\n'));
    expect(res.failures).toEqual([]);
    expect(res.mapped.map((m) => m.driver)).toEqual(['ata_piix', 'ahci', 'virtio_blk']);

    for (const m of res.mapped) {
      const what = `${m.driver} (${m.disk} → ${m.newDisk})`;
      // The map protected the old disk and protects the new one.
      expect(m.protectedBefore, what).toBe(m.devtBefore);
      expect(m.protectedAfter, what).toBe(m.devtAfter);
      expect(m.pathStateAfter, what).toBe(`${m.devtAfter} A 0`);
      expect(m.verdict.same, what).toBe(true);
      expect(m.verdict.basis, what).toContain('serial');
      // Every writer wrote across the restart, without an error, and everything acknowledged is there.
      for (const [mode, w] of Object.entries(m.writers)) {
        expect(w.error, `${what} ${mode}`).toBeNull();
        expect(w.hung, `${what} ${mode}`).toBe(false);
        expect(w.acked, `${what} ${mode}`).toBeGreaterThan(5);
      }
      expect(m.missing, what).toEqual({ sqlite: [], append: [], direct: [] });
      expect(m.integrity, what).toBe('ok');
      expect(m.fsck.exitCode, `${what}: ${m.fsck.output}`).toBe(0);
      expect(m.mountOptionsDuring, what).toMatch(/^rw\S* rw/);
      expect(m.mountOptionsAfter, what).toMatch(/^rw\S* rw/);
      expect(m.kernelErrors, what).toEqual([]);
      // The settings: lost by the restart, written back, as they were.
      expect(m.settingsFresh['queue/scheduler'], what).not.toBe(m.settingsBefore['queue/scheduler']);
      expect(m.settingsFresh['queue/read_ahead_kb'], what).not.toBe('512');
      expect(m.settingsReplay.filter((s) => s.outcome === 'failed'), what).toEqual([]);
      expect(m.settingsAfter, what).toEqual(m.settingsBefore);
    }

    expect(res.controls.map((c) => c.driver)).toEqual(['ata_piix', 'virtio_blk']);
    for (const c of res.controls) {
      // Every writer had started; at least one got the error, and ext4 saw it.
      for (const w of Object.values(c.writers)) expect(w.acked, c.driver).toBeGreaterThan(0);
      expect(Object.values(c.writers).some((w) => w.error !== null), c.driver).toBe(true);
      expect(c.kernelErrors.join('\n'), c.driver).toMatch(/EXT4-fs error|Aborting journal|Remounting filesystem read-only/);
    }
  });
});
