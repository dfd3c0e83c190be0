// The kernel's own error handling giving up on a disk, in the kernel log: the
// disk class's rule for core/kernel-faults.ts. libata's error handler and the
// SCSI midlayer's retry a failed command, reset the link, the device, the
// host, and print as they go; only these lines mean they stopped trying and
// the disk is out of service (Debian 6.1 source; the lines and their timing
// under lost interrupts are in docs/disks.md). A single I/O error, a timeout,
// a reset that succeeds, a medium error on one sector are not failures of
// the driver, and match nothing here.
//
// The kernel names the ATA port or device, or the SCSI address, not the
// disk: disk-address.ts finds the disk through sysfs as the line is read.
// When none is there (libata also prints "disable device" as a port's driver
// unloads, after the disks were removed, or at probe before one was added),
// the match has no device and the core logs it rather than recovering.
import type { KernelLogRule, RuleMatch } from '../../core/kernel-faults.js';
import { diskAtScsiAddress, disksOnAta } from './disk-address.js';

export const EH_GAVE_UP = 'eh-gave-up';

// ata_dev_disable() (libata-eh.c): a device that used up its tries, or on a
// port whose reset failed for good (ata_do_eh); "ata1.00: disable device".
const ATA_DISABLE = /^ata(\d+)\.(\d{2}): disable device$/;
// ata_eh_recover() (libata-eh.c): "ata1: reset failed, giving up" (a link
// behind a port multiplier is ataN.PP); its devices are disabled next.
const ATA_RESET_GAVE_UP = /^ata(\d+)(?:\.\d{2})?: reset failed, giving up$/;
// ata_scsi_port_error_handler() (libata-eh.c): EH kept being scheduled again.
const ATA_EH_PENDING = /^ata(\d+): EH pending after \d+ tries, giving up$/;
// scsi_eh_offline_sdevs() (scsi_error.c), for hosts on the midlayer's own
// error handler (not libata's): "sd 2:0:0:0: Device offlined - not ready
// after error recovery", prefixed by the SCSI device's driver and name.
const SCSI_OFFLINED = /^(?:\S+ )?(\d+:\d+:\d+:\d+): Device offlined - not ready after error recovery$/;

function match(disks: readonly string[], named: string, text: string): RuleMatch {
  const on = disks.length === 0 ? 'no disk on it now' : `${disks.length > 1 ? 'disks' : 'disk'} ${disks.join(', ')}`;
  return { device: disks[0] ?? null, driverName: null, startedMsBefore: 0, detail: `the kernel's error handling gave up on ${named} (${on}): ${text}` };
}

/** The rule over a given sysfs root (unit tests: a captured tree). */
export function ehGaveUpRule(sysfs = '/sys'): KernelLogRule {
  return {
    cls: 'block',
    kind: EH_GAVE_UP,
    line(raw: string): RuleMatch | null {
      const text = raw.trimEnd();
      let m = ATA_DISABLE.exec(text);
      if (m) return match(disksOnAta(Number(m[1]), Number(m[2]), sysfs), `ata${m[1]!}.${m[2]!}`, text);
      // A link or port: every disk on it goes; the first stands for them (a
      // restart takes the whole controller, and each device's own "disable
      // device" follows).
      m = ATA_RESET_GAVE_UP.exec(text) ?? ATA_EH_PENDING.exec(text);
      if (m) return match(disksOnAta(Number(m[1]), null, sysfs), `ata${m[1]!}`, text);
      m = SCSI_OFFLINED.exec(text);
      if (m) {
        const disk = diskAtScsiAddress(m[1]!, sysfs);
        return match(disk === null ? [] : [disk], `SCSI device ${m[1]!}`, text);
      }
      return null;
    },
  };
}

export const EH_GAVE_UP_LOG: KernelLogRule = ehGaveUpRule();
