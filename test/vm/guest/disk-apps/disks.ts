// Guest side: finding a scratch disk by its serial, the unit a restart of its
// controller's driver acts on, the kernel log since a point in time, and the
// faults the disk scenarios inject (pluggable: `DiskFault`).
import { closeSync, existsSync, openSync, readdirSync, readFileSync, readSync, writeFileSync, constants } from 'node:fs';
import { restartUnitAt, type RestartUnit } from '../restart-unit.js';

export type { RestartUnit } from '../restart-unit.js';

export interface DiskRef {
  serial: string;
  /** Kernel name: sda, vdb. */
  name: string;
  /** /dev/NAME */
  devPath: string;
  /** major:minor */
  devno: string;
  sectors: number;
  /** The kernel's sequence number of this gendisk (diskseq): a disk found again after a restart has a larger one, whatever its name. */
  diskseq: number;
  /** The nearest ancestor of /sys/block/NAME/device bound to a driver and not on the scsi bus. */
  unit: RestartUnit;
}

/** The serial of a block device as the guest sees it: virtio's serial file, or SCSI VPD page 0x80 (libata's ATA serial). */
export function diskSerial(name: string): string | null {
  const base = `/sys/block/${name}`;
  try {
    if (existsSync(`${base}/serial`)) return readFileSync(`${base}/serial`, 'utf8').trim();
    if (existsSync(`${base}/device/vpd_pg80`)) {
      const page = readFileSync(`${base}/device/vpd_pg80`);
      // Header: qualifier/type, page code 0x80, 2-byte length, then the serial.
      const len = page.readUInt16BE(2);
      return page.subarray(4, 4 + len).toString('latin1').trim();
    }
  } catch {
    // The disk went away while we looked.
  }
  return null;
}

/** Walks up from the disk's device to the first device with a driver that is not a SCSI device. */
export function restartUnitOf(name: string): RestartUnit {
  return restartUnitAt(`/sys/block/${name}/device`);
}

/** The disk with this serial now (with a diskseq above `minDiskseq`, if given), or null. Partitions and dm devices are skipped. */
export function diskBySerial(serial: string, minDiskseq = -1): DiskRef | null {
  for (const name of readdirSync('/sys/block')) {
    if (!/^(sd[a-z]+|vd[a-z]+)$/.test(name)) continue;
    if (diskSerial(name) !== serial) continue;
    try {
      if (Number(readFileSync(`/sys/block/${name}/diskseq`, 'utf8').trim()) <= minDiskseq) continue;
      return {
        serial,
        name,
        devPath: `/dev/${name}`,
        devno: readFileSync(`/sys/block/${name}/dev`, 'utf8').trim(),
        sectors: Number(readFileSync(`/sys/block/${name}/size`, 'utf8').trim()),
        diskseq: Number(readFileSync(`/sys/block/${name}/diskseq`, 'utf8').trim()),
        unit: restartUnitOf(name),
      };
    } catch {
      return null;
    }
  }
  return null;
}

/** Waits for the disk with this serial to be there (and, given `newerThan`, to be a new instance of it: found again after a restart). */
export async function waitForDisk(serial: string, timeoutMs: number, newerThan?: DiskRef): Promise<DiskRef> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const d = diskBySerial(serial, newerThan?.diskseq);
    if (d && d.sectors > 0 && existsSync(d.devPath)) return d;
    if (Date.now() > until) throw new Error(`no disk with serial ${serial}${newerThan ? ` newer than ${newerThan.name} (diskseq ${newerThan.diskseq})` : ''} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

// ---- kernel log ----

export interface KmsgRecord {
  seq: number;
  usec: number;
  level: number;
  text: string;
}

/** Every record /dev/kmsg still holds, oldest first (each read returns one record). */
export function readKmsg(): KmsgRecord[] {
  const fd = openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
  const buf = Buffer.alloc(16384);
  const out: KmsgRecord[] = [];
  try {
    for (;;) {
      let n: number;
      try {
        n = readSync(fd, buf, 0, buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') break;
        if (code === 'EPIPE') continue; // records overwritten under us: go on with the next
        throw e;
      }
      if (n <= 0) break;
      const rec = buf.toString('utf8', 0, n).split('\n')[0]!;
      const semi = rec.indexOf(';');
      const [prio, seq, usec] = rec.slice(0, semi).split(',');
      out.push({
        seq: Number(seq),
        usec: Number(usec),
        level: Number(prio) & 7,
        text: rec.slice(semi + 1).replace(/\\x([0-9a-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
      });
    }
  } finally {
    closeSync(fd);
  }
  return out;
}

/** The sequence number of the newest kernel log record: pass it to kmsgSince later. */
export function kmsgMark(): number {
  return readKmsg().at(-1)?.seq ?? -1;
}

export function kmsgSince(mark: number): KmsgRecord[] {
  return readKmsg().filter((r) => r.seq > mark);
}

/** Kernel messages that mean the filesystem or its block device saw an error. */
export const DISK_TROUBLE_PATTERNS: readonly RegExp[] = [
  / error, dev \S+, sector /, // blk_print_req_error: "I/O error", "device offline error", ...
  /Buffer I\/O error/,
  /I\/O error/,
  /EXT4-fs error/,
  /EXT4-fs warning .*error/,
  /Remounting filesystem read-only/,
  /Aborting journal/,
  /JBD2: .*(error|Error)/,
  /Detected aborted journal/,
  /lost (page|async page) write/,
];

export function diskTrouble(records: readonly KmsgRecord[]): string[] {
  return records.filter((r) => DISK_TROUBLE_PATTERNS.some((p) => p.test(r.text))).map((r) => `[${(r.usec / 1e6).toFixed(3)}] ${r.text}`);
}

// ---- faults ----

export interface FaultReport {
  kind: string;
  /** What was done, in order, with the time each step took. */
  steps: { what: string; ms: number }[];
}

/** A fault injected into the disk's controller driver mid-run. Resolves once the fault has been injected (and, for a restart, done). */
export type DiskFault = (disk: DiskRef) => Promise<FaultReport>;

function writeSysfs(path: string, value: string): void {
  writeFileSync(path, value);
}

/**
 * A real driver departure: unbind the controller's driver from the restart
 * unit (ata_piix/ahci: the PCI function; virtio_blk: the virtioN device),
 * wait `gapMs`, bind it again. The disk comes back under a new name.
 */
export function unbindBindFault(gapMs = 1000): DiskFault {
  return async (disk) => {
    const { bus, driver, id } = disk.unit;
    const drvDir = `/sys/bus/${bus}/drivers/${driver}`;
    const steps: FaultReport['steps'] = [];
    let t = performance.now();
    writeSysfs(`${drvDir}/unbind`, id);
    steps.push({ what: `unbind ${id} from ${bus}/${driver}`, ms: Math.round(performance.now() - t) });
    await new Promise((r) => setTimeout(r, gapMs));
    t = performance.now();
    writeSysfs(`${drvDir}/bind`, id);
    steps.push({ what: `bind ${id} to ${bus}/${driver}`, ms: Math.round(performance.now() - t) });
    return { kind: 'unbind-bind', steps };
  };
}
