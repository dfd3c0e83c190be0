// Reading sysfs and procfs attributes the way every class does: a file's
// trimmed text, a symlink's last component, each null when the entry is
// not there (a device gone between a listing and the read is not an error).
import { readFile, readlink } from 'node:fs/promises';
import { basename } from 'node:path';

/** The file's text, trimmed; null when it cannot be read. */
export async function readText(path: string): Promise<string | null> {
  try {
    return (await readFile(path, 'utf8')).trim();
  } catch {
    return null;
  }
}

/** The last component of the symlink's target (a driver's or a device's name); null when there is no link. */
export async function linkBase(path: string): Promise<string | null> {
  try {
    return basename(await readlink(path));
  } catch {
    return null;
  }
}
