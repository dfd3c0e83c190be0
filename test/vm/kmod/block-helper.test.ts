// The helper module's block class in a real 6.1 guest with the three disk
// drivers of the disk class (ata_piix on QEMU's PIIX IDE, ahci on an ICH9
// AHCI, virtio_blk), in one boot: every disk's unit restarts (plain and,
// for the PCI units, with its module reloaded) and the disk comes back with
// its serial, size and data; each fault has its effect (lost-irq holds I/O
// in flight until cleared, fail-stop and disk-error fail reads with EIO) and
// a restart with each fault active ends with a working disk; a sticky fault
// comes back on the fresh disk; bad names, partitions, dm devices and
// unknown faults get clear errors; a fault injected while the disk is being
// removed and rmmod with faults active leave no trace; fail-stop cycled on the
// PIIX disk under a dm-multipath map with ext4 and fsync writers leaves
// mq-deadline counting nothing queued (a helper that quiesced the queue for
// the swap made it count flush clones in and never out, and WARN in
// dd_exit_sched() when the disk went: the intermittent WARN of block
// recovery-apps); and a writer through a dm-multipath map survives a restart
// under lost-irq with its data intact, the hung disk released in seconds at
// the kernel's default 30 s SCSI timeout (the fast teardown's order: on 6.12
// a cache type write before the offline waited for the hung write, 189 s).
// The guest side is guest/block-helper.ts, run compiled from
// dist/test/vm/guest/block-helper.js.
import { existsSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { selectedKernelSeries } from '../rig/cache-paths.js';
import { assertGuestOk, runInGuest } from '../rig/guest.js';
import { buildHelperModule } from '../rig/kmod-build.js';
import { repoPath } from '../rig/repo-path.js';
import type { Result } from '../guest/block-helper.js';

const SCRIPT = repoPath('dist/test/vm/guest/block-helper.js');
const SOURCE = repoPath('test/vm/guest/block-helper.ts');

type BlockResult = Result;

const DISKS = ['shadowd-disk0', 'shadowd-disk1', 'shadowd-disk2'] as const;

describe('shadow_helper block class', () => {
  let ko = '';

  beforeAll(async () => {
    if (!existsSync(SCRIPT) || statSync(SCRIPT).mtimeMs < statSync(SOURCE).mtimeMs) {
      throw new Error(`${SCRIPT} is missing or older than ${SOURCE}: run \`npx tsc -p tsconfig.json\` first`);
    }
    ko = await buildHelperModule((line) => console.log(`kmod: ${line}`));
  });

  it('restarts, faults and refuses on ata_piix, ahci and virtio_blk disks, and keeps a dm-multipath writer going', async () => {
    const r = await runInGuest({
      command: [process.execPath, SCRIPT, '--ko', ko],
      devices: ['piix-ide', 'ahci', 'virtio-blk'],
      timeoutMs: 460_000,
    });
    const line = r.stdout.split('\n').find((l) => l.startsWith('BLOCK_RESULT '));
    expect(line, `no BLOCK_RESULT line in:\n${r.stdout}\n${r.stderr}`).toBeDefined();
    const res = JSON.parse(line!.slice('BLOCK_RESULT '.length)) as BlockResult;
    expect(res.failures).toEqual([]);
    assertGuestOk(r, 'block helper test');

    expect(res.version).toMatch(/ classes=net,block,sound$/);
    // The units: the PCI functions of the ATA controllers, the virtio device of the virtio disk.
    expect(res.disks['shadowd-disk0']?.unit).toMatch(/^0000:00:01\.1$/);
    expect(res.disks['shadowd-disk1']?.unit).toMatch(/^0000:00:0[0-9a-f]\.0$/);
    expect(res.disks['shadowd-disk2']?.unit).toMatch(/^virtio\d+$/);
    for (const serial of DISKS) {
      const mine = res.restarts.filter((x) => x.disk === serial);
      const kinds = mine.map((x) => x.what);
      expect(kinds).toEqual(expect.arrayContaining(['plain', 'with lost-irq', 'with fail-stop', 'with disk-error']));
      for (const x of mine) {
        expect(x.reply, `${serial} ${x.what}`).toMatch(/^ok restarted block:\S+ id=\S+ unit=\S+ disks=1 /);
        expect(x.sameSize && x.dataOk, `${serial} ${x.what}`).toBe(true);
        expect(x.unit).toBe(res.disks[serial]?.unit);
      }
      const scsi = serial !== 'shadowd-disk2';
      expect(mine.find((x) => x.what === 'plain')?.steps).toBe(scsi ? 'teardown:ok,open:skip' : 'teardown:skip,open:skip');
      if (scsi) expect(mine.find((x) => x.what === 'reload')?.steps).toMatch(/^teardown:ok,reload:ok,open:skip$/);
      const lost = res.faults[`${serial} lostIrq`];
      expect(lost?.['doneWhileLost']).toBe('false');
      expect(lost?.['inflightWhileLost']?.split(',').every((n) => Number(n) > 0)).toBe(true);
      expect(lost?.['inflightAfter']).toBe('0');
      expect(res.faults[`${serial} failStop`]?.['read']).toMatch(/Input\/output error/);
      expect(res.faults[`${serial} diskError`]?.['read']).toMatch(/Input\/output error/);
    }
    expect(res.badInput['partition']).toMatch(/^err ENODEV block:vd\w+1 is a partition: name its whole disk$/);
    expect(res.badInput['dm']).toMatch(/^err ENODEV block:dm-\d+ has no driver under it/);
    expect(res.badInput['fault']).toBe("err EINVAL unknown block fault 'bogus' (lost-irq, fail-stop, disk-error, clear)");
    // The fuzz reached the disks (injects that took, and errors of every kind), and every line got a reply.
    expect(Object.values(res.fuzz ?? {}).reduce((a, b) => a + b, 0)).toBe(600);
    expect(res.fuzz?.['ok injected'] ?? 0).toBeGreaterThan(10);
    expect(res.fuzz?.['err EINVAL'] ?? 0).toBeGreaterThan(100);
    expect(res.fuzz?.['err ENODEV'] ?? 0).toBeGreaterThan(10);
    expect(res.removal?.rebound).toBe(true);
    expect(res.rmmod).toMatchObject({ rmmod: true });
    // Every cycle failed the path and flushes went through it; mq-deadline counted every request out.
    const fc = res.flushCycles;
    expect(fc).toMatchObject({ scheduler: 'mq-deadline', queuedAfter: '0 0 0', writerErrors: [], failures: [] });
    expect(fc?.pathFailed).toBe(fc?.cycles);
    expect(fc?.cycles).toBeGreaterThanOrEqual(20);
    expect(fc?.syncedWrites).toBeGreaterThanOrEqual(3 * (fc?.cycles ?? 0));
    expect(res.dm?.['writerExit']).toBe(0);
    expect(res.dm?.['dataOk']).toBe(true);
    expect(res.dm?.['scsiTimeoutS']).toBe(30);
    expect(Number(res.dm?.['releaseMs'])).toBeLessThan(25_000);

    const log = r.kernelLog.map((l) => l.text);
    expect(log.some((t) => /^shadow_helper: recovery b1: block:\w+ restarted in \d+ ms \(teardown:ok,open:skip\)$/.test(t))).toBe(true);
    // The dm run's write, held by the lost interrupt, timed out at the teardown rather than after the SCSI timeout.
    expect(log.some((t) => /^shadow_helper: recovery dm-dm: teardown of block:\w+: [1-9]\d* requests in flight timed out now$/.test(t))).toBe(true);
    // The disk class's kernel log rule: a restart's unload ("disable device" for a disk
    // already removed, on 6.1; 6.12 prints none) is logged, not reported; libata giving up on the AHCI disk is.
    const eh = res.ehGaveUp;
    expect(eh?.restartReports).toEqual([]);
    if (selectedKernelSeries() === '6.1') expect(eh?.restartNotices.length).toBeGreaterThan(0);
    else expect(eh?.restartNotices).toEqual([]);
    expect(eh?.reports.length).toBeGreaterThan(0);
    for (const x of eh?.reports ?? []) {
      expect(x).toMatchObject({ cls: 'block', device: eh?.ahci, kind: 'eh-gave-up' });
      expect(x.detail).toMatch(/^the kernel's error handling gave up on ata\d+\.00 \(disk \w+\): ata\d+\.00: disable device$/);
    }
    // After the give-up, the read in flight failed (DID_BAD_TARGET), as a lost interrupt alone never makes it.
    expect(eh?.readExit).toBe(1);
    expect(log.some((t) => /^ata\d+\.00: revalidation failed \(errno=-5\)$/.test(t))).toBe(true);
    const releases = res.restarts.map((x) => `${x.disk} ${x.what} ${x.releaseMs}`).join('; ');
    console.log(
      `block helper: guest boot ${Math.round(r.bootToCommandMs ?? -1)} ms, total ${Math.round(r.totalMs)} ms; ` +
        `release (unbind) ms: ${releases}; dm run under lost-irq: ${JSON.stringify(res.dm)}; ` +
        `removal race replies ${JSON.stringify(res.removal?.replies)}; fuzz ${JSON.stringify(res.fuzz)}; ` +
        `fail-stop flush cycles ${JSON.stringify(fc)}; ` +
        `libata gave up on ${eh?.ahci ?? '?'} ${eh?.reportAfterMs ?? -1} ms after the read began (SCSI timeout ${eh?.scsiTimeoutS ?? '?'} s), ` +
        `restart notices ${JSON.stringify(eh?.restartNotices)}`,
    );
  }, 480_000);
});
