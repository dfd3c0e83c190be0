// The disk class's kernel log rule (eh-gave-up-log.ts) on the kernel's own
// records: libata giving up on an AHCI disk whose interrupts are lost, and
// what must not count, all recorded in the guest (test/fixtures/kmsg,
// test/vm/guest/record-eh-kmsg.sh): a PIIX disk whose soft resets succeed
// while its read is retried until it fails, one read failed in the driver,
// a restart's unload. The disks are found on the sysfs tree captured in the
// guest (test/fixtures/block/guest-6.1: sda on ata1 as 0:0:0:0, sdb on ata3
// as 2:0:0:0), the same places the recording guest gave them.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { BLOCK_DECLARATION } from '../../../../daemon/classes/block/block-declaration.js';
import { EH_GAVE_UP, ehGaveUpRule } from '../../../../daemon/classes/block/eh-gave-up-log.js';
import { parseKernelFaults, parseKmsgRecord, splitKmsgText } from '../../../../daemon/core/kernel-faults.js';

const SYSFS = join(fileURLToPath(new URL('../../../fixtures/block/guest-6.1', import.meta.url)), 'sysfs');
const fixture = (name: string): string[] => splitKmsgText(readFileSync(new URL(`../../../fixtures/kmsg/${name}.kmsg`, import.meta.url), 'utf8'));
const texts = (name: string): string[] => fixture(name).map((r) => parseKmsgRecord(r)?.text ?? '');
const rule = ehGaveUpRule(SYSFS);

/** A sysfs with only the AHCI disk: what the PIIX unit's unload leaves when it prints "disable device". */
const afterUnload = mkdtempSync(join(tmpdir(), 'eh-gave-up-'));
mkdirSync(join(afterUnload, 'block'));
symlinkSync('../devices/pci0000:00/0000:00:04.0/ata3/host2/target2:0:0/2:0:0:0/block/sdb', join(afterUnload, 'block', 'sdb'));
afterAll(() => rmSync(afterUnload, { recursive: true, force: true }));

describe('libata giving up on a disk, recorded', () => {
  it('lost interrupts: the AHCI disk is reported once libata disables it; the PIIX disk, whose resets succeed, never', () => {
    const faults = parseKernelFaults(fixture('ata-lost-irq'), [rule]);
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({
      kind: EH_GAVE_UP,
      cls: 'block',
      device: 'sdb',
      driverName: null,
      detail: "the kernel's error handling gave up on ata3.00 (disk sdb): ata3.00: disable device",
      lines: ['ata3.00: disable device'],
    });
    // What came before it on that disk: timeouts, resets, failed revalidations, none of them a give-up.
    const before = texts('ata-lost-irq');
    expect(before).toContain('ata3.00: revalidation failed (errno=-5)');
    expect(before.some((t) => /^ata\d+: EH complete$/.test(t))).toBe(true);
  });

  it('one read failed in the driver: an I/O error, no failure', () => {
    expect(texts('ata-fail-stop').some((t) => t.startsWith('I/O error, dev sd'))).toBe(true);
    expect(parseKernelFaults(fixture('ata-fail-stop'), [rule])).toEqual([]);
  });

  it("a restart's unload: \"disable device\" for a disk already removed names no disk, and is not reported", () => {
    const faults = parseKernelFaults(fixture('ata-unload'), [ehGaveUpRule(afterUnload)]);
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({ kind: EH_GAVE_UP, device: null, detail: "the kernel's error handling gave up on ata1.00 (no disk on it now): ata1.00: disable device" });
  });

  it('is the disk class\'s rule and failure kind', () => {
    expect(BLOCK_DECLARATION.kernelLogRules.map((r) => [r.cls, r.kind])).toEqual([['block', EH_GAVE_UP]]);
    expect(BLOCK_DECLARATION.failureKinds).toContain(EH_GAVE_UP);
  });
});

describe('the give-up lines the guest does not print (Debian 6.1 source)', () => {
  it("libata's failed reset and endless EH name a port: its disks, the first standing for them", () => {
    expect(rule.line?.('ata3: reset failed, giving up')).toEqual({
      device: 'sdb',
      driverName: null,
      startedMsBefore: 0,
      detail: "the kernel's error handling gave up on ata3 (disk sdb): ata3: reset failed, giving up",
    });
    // A link behind a port multiplier (or a slave link) is ataN.PP.
    expect(rule.line?.('ata1.01: reset failed, giving up')).toMatchObject({ device: 'sda' });
    expect(rule.line?.('ata3: EH pending after 5 tries, giving up')).toMatchObject({ device: 'sdb' });
    expect(rule.line?.('ata2: reset failed, giving up')).toMatchObject({ device: null, detail: expect.stringContaining('ata2 (no disk on it now)') as string });
  });

  it("the SCSI midlayer's error handler offlining a device names its address", () => {
    expect(rule.line?.('sd 2:0:0:0: Device offlined - not ready after error recovery')).toMatchObject({
      device: 'sdb',
      detail: "the kernel's error handling gave up on SCSI device 2:0:0:0 (disk sdb): sd 2:0:0:0: Device offlined - not ready after error recovery",
    });
    expect(rule.line?.('scsi 7:0:0:0: Device offlined - not ready after error recovery')).toMatchObject({ device: null });
  });
});

describe('lines that are no give-up', () => {
  // Retries, resets that worked, one request's error, a medium error on one sector, a device already offline.
  const NOT = [
    'ata1: lost interrupt (Status 0x50)',
    'ata3.00: exception Emask 0x0 SAct 0x4000000 SErr 0x0 action 0x6 frozen',
    'ata3.00: failed command: WRITE FPDMA QUEUED',
    'ata3: hard resetting link',
    'ata3: SATA link up 1.5 Gbps (SStatus 113 SControl 300)',
    'ata3.00: qc timeout after 5000 msecs (cmd 0xec)',
    'ata3.00: failed to IDENTIFY (I/O error, err_mask=0x4)',
    'ata3.00: revalidation failed (errno=-5)',
    'ata1: soft resetting link',
    'ata1.00: configured for MWDMA2',
    'ata1: EH complete',
    'ata1.00: limiting speed to PIO4',
    'ata3: reset failed (errno=-5), retrying in 8 secs',
    'ata1.00: error: { UNC }',
    'sd 0:0:0:0: [sda] tag#0 FAILED Result: hostbyte=DID_OK driverbyte=DRIVER_OK cmd_age=187s',
    'sd 0:0:0:0: [sda] tag#0 Sense Key : Medium Error [current] ',
    'sd 0:0:0:0: [sda] tag#0 Add. Sense: Unrecovered read error - auto reallocate failed',
    'critical medium error, dev sda, sector 2048 op 0x0:(READ) flags 0x0 phys_seg 1 prio class 2',
    'I/O error, dev sda, sector 1600 op 0x1:(WRITE) flags 0x8800 phys_seg 1 prio class 2',
    'sd 2:0:0:0: [sdb] tag#27 FAILED Result: hostbyte=DID_BAD_TARGET driverbyte=DRIVER_OK cmd_age=79s',
    'sd 0:0:0:0: rejecting I/O to offline device',
    'ata1.00: disable device please',
    'xata1.00: disable device',
  ];
  it.each(NOT)('%s', (line) => {
    expect(rule.line?.(line)).toBeNull();
  });

  it('a give-up line a user wrote to /dev/kmsg is not the kernel\'s', () => {
    expect(parseKernelFaults(['12,900,1000,-;ata3.00: disable device'], [rule])).toEqual([]);
  });
});
