// A disk's identity from sysfs, and the check that a disk found after a driver
// restart is the one the map protected. The disk may come back under another
// name (sda → sdb) and another MAJ:MIN; the map must only be pointed at it if
// it is the same medium, or the filesystem above would be written onto a
// stranger (disk-facts §3.4 step 4).
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface DiskIdentity {
  /** Serial number, trimmed; null if the disk reports none. */
  serial: string | null;
  /** Which sysfs attribute the serial came from (`serial`, `device/serial`, `device/vpd_pg80`, `device/wwid`). */
  serialSource: string | null;
  /** World-wide name (`naa.…`, `eui.…` from VPD page 0x83 or a wwid attribute); null if none. */
  wwn: string | null;
  model: string | null;
  vendor: string | null;
  /** Capacity in 512-byte sectors. */
  sectors: number;
  logicalBlockSize: number;
  /**
   * An identity attribute the disk has could not be read (an I/O error:
   * virtio_blk's serial is a request to the device, which a failed disk
   * refuses; or the read timed out): "no serial" then means "unknown", not
   * "none", and the disk must not be matched by its name.
   */
  unreadable: boolean;
}

/** Longest attribute value taken as identity; longer ones are refused, not cut. */
const MAX_TEXT = 256;

/** Whether a failed read is the attribute's absence (the disk has no such thing) rather than an error of the device. */
const absent = (err: unknown): boolean => ['ENOENT', 'ENOTDIR', 'ENXIO', 'EOPNOTSUPP', 'EINVAL'].includes((err as NodeJS.ErrnoException).code ?? '');

/** Reads of one disk's attributes, noting any that failed for another reason than absence. */
class AttrReader {
  unreadable = false;

  async text(path: string): Promise<string | null> {
    const b = await this.bytes(path);
    const text = b === null ? '' : b.toString('latin1').trim();
    return text === '' ? null : text;
  }

  async bytes(path: string): Promise<Buffer | null> {
    try {
      return await readFile(path);
    } catch (err) {
      if (!absent(err)) this.unreadable = true;
      return null;
    }
  }
}

/** Printable ASCII only, or null: identity strings are compared and put in map names. */
function printable(text: string | null): string | null {
  if (text === null) return null;
  const t = text.replace(/\s+/g, ' ').trim();
  if (t === '' || t.length > MAX_TEXT || !/^[\x20-\x7e]+$/.test(t)) return null;
  return t;
}

/**
 * The Unit Serial Number VPD page (0x80): 4-byte header (peripheral byte, page
 * code 0x80, 16-bit length) then the serial in ASCII. Null for a malformed
 * page.
 */
export function parseVpdPage80(page: Buffer): string | null {
  if (page.length < 4 || page[1] !== 0x80) return null;
  const len = page.readUInt16BE(2);
  if (4 + len > page.length) return null;
  return printable(page.subarray(4, 4 + len).toString('latin1'));
}

/**
 * The first NAA (designator type 3) or EUI-64 (type 2) designator with LUN
 * association in the Device Identification VPD page (0x83), as `naa.HEX` or
 * `eui.HEX`, the way the kernel's wwid attribute spells them. Null if none.
 */
export function parseVpdPage83Wwn(page: Buffer): string | null {
  if (page.length < 4 || page[1] !== 0x83) return null;
  const end = Math.min(page.length, 4 + page.readUInt16BE(2));
  let eui: string | null = null;
  for (let off = 4; off + 4 <= end; ) {
    const codeSet = page[off]! & 0x0f;
    const association = (page[off + 1]! >> 4) & 0x03;
    const type = page[off + 1]! & 0x0f;
    const len = page[off + 3]!;
    if (off + 4 + len > end) return null;
    const body = page.subarray(off + 4, off + 4 + len);
    if (codeSet === 1 && association === 0 && len > 0) {
      if (type === 3) return `naa.${body.toString('hex')}`;
      if (type === 2 && eui === null) eui = `eui.${body.toString('hex')}`;
    }
    off += 4 + len;
  }
  return eui;
}

function wwnOf(wwid: string | null): string | null {
  if (wwid === null) return null;
  const m = /^(naa|eui)\.([0-9a-fA-F]{8,64})$/.exec(wwid);
  return m ? `${m[1]}.${m[2]!.toLowerCase()}` : null;
}

/** The serial in a SCSI `t10.VENDOR MODEL SERIAL` wwid is its last word (libata builds it so). */
function serialFromT10(wwid: string | null): string | null {
  if (wwid === null || !wwid.startsWith('t10.')) return null;
  const words = wwid.split(/\s+/);
  return words.length >= 3 ? printable(words[words.length - 1]!) : null;
}

function parsePositive(text: string | null, what: string, disk: string): number {
  if (text === null || !/^\d{1,16}$/.test(text)) throw new Error(`${disk}: ${what} ${JSON.stringify(text)} is not a number`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`${disk}: ${what} ${text} is too large`);
  return n;
}

/** Reads /sys/block/DISK's identity. Throws if the disk or its size is not there. */
export async function readDiskIdentity(disk: string, sysfs = '/sys'): Promise<DiskIdentity> {
  const dir = join(sysfs, 'block', disk);
  const r = new AttrReader();
  const readText = (path: string): Promise<string | null> => r.text(path);
  const readBytes = (path: string): Promise<Buffer | null> => r.bytes(path);
  const sectors = parsePositive(await readText(join(dir, 'size')), 'size', disk);
  const logicalBlockSize = parsePositive(await readText(join(dir, 'queue', 'logical_block_size')), 'logical block size', disk);
  const wwidAttr = printable(await readText(join(dir, 'wwid'))) ?? printable(await readText(join(dir, 'device', 'wwid')));
  const page80 = await readBytes(join(dir, 'device', 'vpd_pg80'));
  const page83 = await readBytes(join(dir, 'device', 'vpd_pg83'));

  const serialCandidates: [string, string | null][] = [
    ['serial', printable(await readText(join(dir, 'serial')))], // virtio_blk
    ['device/serial', printable(await readText(join(dir, 'device', 'serial')))], // nvme, mmc
    ['device/vpd_pg80', page80 === null ? null : parseVpdPage80(page80)], // SCSI, libata
    ['device/wwid', serialFromT10(wwidAttr)],
  ];
  const found = serialCandidates.find(([, v]) => v !== null);
  return {
    serial: found?.[1] ?? null,
    serialSource: found?.[0] ?? null,
    wwn: wwnOf(wwidAttr) ?? (page83 === null ? null : parseVpdPage83Wwn(page83)),
    model: printable(await readText(join(dir, 'device', 'model'))),
    vendor: printable(await readText(join(dir, 'device', 'vendor'))),
    sectors,
    logicalBlockSize,
    unreadable: r.unreadable,
  };
}

export interface SameDiskVerdict {
  same: boolean;
  /** What was compared, e.g. ['size', 'serial', 'wwn']. */
  basis: string[];
  /** Why not the same, or why the verdict is weak (no serial on either side). */
  notes: string[];
}

/**
 * Whether `after` is the disk `before` described: size and logical block size
 * must match; serial and WWN must match where either side has one (one side
 * without is a mismatch: a different kind of disk). With no serial and no WWN
 * on both sides it falls back to model and vendor and says the verdict is weak.
 */
export function sameDisk(before: DiskIdentity, after: DiskIdentity): SameDiskVerdict {
  const basis: string[] = [];
  const notes: string[] = [];
  const compare = (what: string, a: string | number | null, b: string | number | null): void => {
    if (a === null && b === null) return;
    basis.push(what);
    if (a !== b) notes.push(`${what} differs: ${JSON.stringify(a)} before, ${JSON.stringify(b)} after`);
  };
  compare('size', before.sectors, after.sectors);
  compare('logical block size', before.logicalBlockSize, after.logicalBlockSize);
  compare('serial', before.serial, after.serial);
  compare('wwn', before.wwn, after.wwn);
  const strong = basis.includes('serial') || basis.includes('wwn');
  if (!strong) {
    compare('model', before.model, after.model);
    compare('vendor', before.vendor, after.vendor);
    notes.push('neither disk reports a serial or WWN: matched on size, model and vendor only');
  }
  const mismatch = notes.some((n) => n.includes(' differs: '));
  return { same: !mismatch, basis, notes };
}
