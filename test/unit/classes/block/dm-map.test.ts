// dm-map.ts against dmsetup's real output (captured in the guest,
// test/fixtures/block/guest-6.1/dmsetup) and against garbage: names, tables,
// status and info lines, and the protecting-map rule.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DM_NAME_MAX,
  DmNameError,
  DmParseError,
  Dmsetup,
  defaultMapName,
  noPathTable,
  parseDevt,
  parseInfoLine,
  parseInfoListing,
  parseMultipathStatus,
  parseMultipathTable,
  parseSegments,
  protectedDisk,
  singlePathTable,
  unmangleName,
  validateMapName,
} from '../../../../daemon/classes/block/dm-map.js';

const fx = (name: string): string => readFileSync(new URL(`../../../fixtures/block/guest-6.1/dmsetup/${name}`, import.meta.url), 'utf8');

describe('map names', () => {
  it('accepts dm names made of the unmangled characters', () => {
    expect(validateMapName('shadow-shadowd-disk0')).toBe('shadow-shadowd-disk0');
    expect(validateMapName('a#b+c.d:e=f@g_h')).toBe('a#b+c.d:e=f@g_h');
    expect(validateMapName('x'.repeat(DM_NAME_MAX))).toHaveLength(DM_NAME_MAX);
  });
  it.each([
    ['', 'empty'],
    ['x'.repeat(DM_NAME_MAX + 1), 'too long'],
    ['../etc', 'slash'],
    ['a/b', 'slash'],
    ['a\nb', 'newline'],
    ['a b', 'space'],
    ['-j', 'option-like'],
    ['--table', 'option-like'],
    ['.', 'reserved'],
    ['..', 'reserved'],
    ['control', 'reserved'],
    ['naïve', 'non-ASCII'],
    ['a\\x2fb', 'backslash'],
  ])('rejects %j (%s)', (name) => expect(() => validateMapName(name)).toThrow(DmNameError));

  it('makes the default name from the serial, sanitised, else the WWN', () => {
    expect(defaultMapName({ serial: 'shadowd-disk0', wwn: null })).toBe('shadow-shadowd-disk0');
    expect(defaultMapName({ serial: 'WD-WCC4 N3/../x\n', wwn: 'naa.5000' })).toBe('shadow-WD-WCC4_N3_.._x');
    expect(defaultMapName({ serial: null, wwn: 'naa.5000c500a1b2c3d4' })).toBe('shadow-naa.5000c500a1b2c3d4');
    expect(defaultMapName({ serial: '///', wwn: 'eui.0011' })).toBe('shadow-eui.0011');
    expect(defaultMapName({ serial: 'S'.repeat(400), wwn: null })).toHaveLength(DM_NAME_MAX);
    expect(() => defaultMapName({ serial: null, wwn: null })).toThrow(/no serial or WWN/);
    expect(() => defaultMapName({ serial: '  ', wwn: '\n' })).toThrow(DmNameError);
  });

  it('undoes dmsetup hex mangling', () => {
    expect(unmangleName('a\\x20b\\x2fc')).toBe('a b/c');
  });
});

describe('tables', () => {
  it('builds the single-path and no-path tables of disk-facts §3.4', () => {
    expect(singlePathTable(131072, '8:0')).toBe('0 131072 multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 8:0 1');
    expect(noPathTable(131072)).toBe('0 131072 multipath 1 queue_if_no_path 0 0 0');
    expect(() => singlePathTable(0, '8:0')).toThrow(DmParseError);
    expect(() => singlePathTable(1.5, '8:0')).toThrow(DmParseError);
    expect(() => singlePathTable(100, '8:0 1 8:16')).toThrow(DmParseError);
    expect(() => singlePathTable(100, '4096:0')).toThrow(/range/);
  });

  it('reads the tables dmsetup printed in the guest back to what was loaded', () => {
    const healthy = parseMultipathTable(fx('table-healthy.txt'));
    expect(healthy).toEqual({
      sectors: 131072,
      table: {
        features: ['queue_if_no_path'],
        queueIfNoPath: true,
        hwHandler: [],
        groups: [{ selector: 'round-robin', selectorArgs: [], paths: [{ devt: '8:0', args: ['1'] }] }],
        paths: ['8:0'],
      },
    });
    expect(fx('table-healthy.txt').trim()).toBe(singlePathTable(131072, '8:0'));
    expect(parseMultipathTable(fx('table-by-devno.txt'))).toEqual(healthy);
    const none = parseMultipathTable(fx('table-nopath.txt'));
    expect(none.table.paths).toEqual([]);
    expect(none.table.queueIfNoPath).toBe(true);
    expect(parseSegments(fx('table-linear.txt'))).toEqual([{ start: 0, length: 2048, target: 'linear', args: ['8:16', '0'] }]);
    expect(() => parseMultipathTable(fx('table-linear.txt'))).toThrow(/not multipath/);
  });

  it('reads other features and several paths', () => {
    const t = parseMultipathTable('0 100 multipath 3 queue_if_no_path queue_mode bio 1 alua 2 1 service-time 0 2 2 8:0 1 1 8:16 1 1 round-robin 0 1 1 65:0 1');
    expect(t.table.features).toEqual(['queue_if_no_path', 'queue_mode', 'bio']);
    expect(t.table.hwHandler).toEqual(['alua']);
    expect(t.table.paths).toEqual(['8:0', '8:16', '65:0']);
  });

  it.each([
    ['', /one multipath segment, got 0/],
    ['garbage', /not a device-mapper table line/],
    ['0 100 multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 8:0', /path argument is missing/],
    ['0 100 multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 8:0 1 extra', /left over/],
    ['0 100 multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 sda 1', /MAJ:MIN/],
    ['0 100 multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 ../../x 1', /MAJ:MIN/],
    ['0 100 multipath 99999999999 x', /not a number|larger/],
    ['0 100 multipath 1 queue_if_no_path 0 1 2 round-robin 0 1 1 8:0 1', /initial priority group/],
    ['0 99999999999999999999 multipath 0 0 0 0', /sector count|too large/],
    ['0 100 multipath 0 0 0 0\n100 5 multipath 0 0 0 0', /one multipath segment, got 2/],
    ['5 100 multipath 0 0 0 0', /not contiguous/],
    ['0 100 multipath 0 0 0 0\0', /control character/],
  ])('rejects table %j', (text, err) => expect(() => parseMultipathTable(text)).toThrow(err));
  it('rejects a huge line without parsing it', () => {
    expect(() => parseMultipathTable(`0 100 multipath ${'1 '.repeat(40000)}`)).toThrow(/characters long/);
  });
});

describe('status', () => {
  it('reads path state and fail count in each captured state', () => {
    const healthy = parseMultipathStatus(fx('status-healthy.txt')).status;
    expect(healthy).toEqual({
      queueIo: true,
      pgInitCount: 0,
      groups: [{ state: 'E', paths: [{ devt: '8:0', state: 'A', failCount: 0, selectorInfo: [] }] }],
      paths: [{ devt: '8:0', state: 'A', failCount: 0, selectorInfo: [] }],
    });
    const failed = parseMultipathStatus(fx('status-failed-queued.txt')).status;
    expect(failed.paths).toEqual([{ devt: '8:0', state: 'F', failCount: 1, selectorInfo: [] }]);
    // A read was held in dm when this was captured: dm-mpath's status does not show it.
    expect(failed.queueIo).toBe(false);
    const back = parseMultipathStatus(fx('status-reinstated.txt')).status;
    expect(back.groups[0]!.state).toBe('A');
    expect(back.paths[0]).toMatchObject({ state: 'A', failCount: 1 });
    expect(parseMultipathStatus(fx('status-nopath.txt')).status).toEqual({ queueIo: true, pgInitCount: 0, groups: [], paths: [] });
  });

  it('reads per-path selector info (queue-length)', () => {
    const s = parseMultipathStatus('0 100 multipath 2 0 0 0 1 1 A 0 2 1 8:0 A 0 3 8:16 F 2 0').status;
    expect(s.paths.map((p) => [p.devt, p.state, p.failCount, p.selectorInfo])).toEqual([
      ['8:0', 'A', 0, ['3']],
      ['8:16', 'F', 2, ['0']],
    ]);
  });

  it.each([
    ['0 100 multipath 1 queue_if_no_path 0 1 1 round-robin 0 1 1 8:0 1', /feature words|queue_io/],
    ['0 100 multipath 2 1 0 0 1 1 X 0 1 0 8:0 A 0', /group state/],
    ['0 100 multipath 2 1 0 0 1 1 E 0 1 0 8:0 Q 0', /path state/],
    ['0 100 multipath 2 1 0 0 1 1 E 0 1 0 8:0 A -1', /fail count/],
    ['0 100 multipath 2 1 0 0 1 1 E 0 1 0 8:0 A', /missing/],
    ['0 100 multipath 2 1 0 0 1 3 E 0 1 0 8:0 A 0', /next priority group/],
    ['0 100 multipath 2 7 0 0 0 0', /queue_io/],
  ])('rejects status %j', (text, err) => expect(() => parseMultipathStatus(text)).toThrow(err));
});

describe('info', () => {
  it('reads dmsetup info columns in each captured state', () => {
    const [lin, mp] = parseInfoListing(fx('info-list.txt'));
    expect(mp).toEqual({
      name: 'shadow-capture', uuid: '', blockDevice: 'dm-0', devt: '253:0', openCount: 0,
      liveTable: true, inactiveTable: false, suspended: false, readOnly: false, segments: 1, eventNumber: 0,
    });
    expect(lin).toMatchObject({ name: 'lin-capture', blockDevice: 'dm-1', devt: '253:1' });
    expect(parseInfoLine(fx('info-suspended.txt').trim())).toMatchObject({ suspended: true, inactiveTable: false });
    expect(parseInfoLine(fx('info-inactive.txt').trim())).toMatchObject({ suspended: true, inactiveTable: true, eventNumber: 2 });
    expect(parseInfoLine(fx('info-mounted.txt').trim())).toMatchObject({ openCount: 1, suspended: false });
    expect(parseInfoListing('No devices found\n')).toEqual([]);
    expect(parseInfoLine('a\\x20b|CRYPT-x|dm-3|253|3|2|L--r||7')).toMatchObject({ name: 'a b', readOnly: true, segments: 0 });
  });
  it.each([
    ['shadow|x|dm-0|253|0|0|L--w|1', /8 fields/],
    ['shadow||sda|253|0|0|L--w|1|0', /block device/],
    ['shadow||dm-0|253|0|0|LX-w|1|0', /attributes/],
    ['shadow||dm-0|253|0|-1|L--w|1|0', /open count/],
    ['shadow||dm-0|9999|0|0|L--w|1|0', /MAJ:MIN|range/],
    ['sha dow||dm-0|253|0|0|L--w|1|0', /map name/],
    ['shadow||dm-0|253|0|0|L--w|1|0\nrm -rf /', /fields|map name/],
  ])('rejects info line %j', (line, err) => expect(() => parseInfoListing(line)).toThrow(err));
});

describe('which maps protect a disk', () => {
  const seg = (text: string): { table: ReturnType<typeof parseSegments>; multipath: ReturnType<typeof parseMultipathTable>['table'] | null } => {
    const table = parseSegments(text);
    return { table, multipath: table.length === 1 && table[0]!.target === 'multipath' ? parseMultipathTable(text).table : null };
  };
  it('is a one-segment multipath map with exactly one path and queue_if_no_path', () => {
    expect(protectedDisk(seg(fx('table-healthy.txt')))).toBe('8:0');
    expect(protectedDisk(seg(fx('table-nopath.txt')))).toBeNull();
    expect(protectedDisk(seg(fx('table-linear.txt')))).toBeNull();
    expect(protectedDisk(seg('0 100 multipath 0 0 1 1 round-robin 0 1 1 8:0 1'))).toBeNull();
    expect(protectedDisk(seg('0 100 multipath 1 queue_if_no_path 0 1 1 round-robin 0 2 1 8:0 1 8:16 1'))).toBeNull();
  });
});

describe('the dmsetup runner', () => {
  it('refuses a bad name or a table that is not one multipath line before running anything', async () => {
    const dm = new Dmsetup({ dmsetup: '/nonexistent/dmsetup' });
    await expect(dm.create('../x', singlePathTable(8, '8:0'))).rejects.toThrow(DmNameError);
    await expect(dm.create('ok', '0 8 linear 8:0 0')).rejects.toThrow(/not multipath/);
    await expect(dm.reload('ok', `${singlePathTable(8, '8:0')}\n0 8 linear 8:0 0`)).rejects.toThrow(/one line/);
    await expect(dm.resumeNoFlush('-j')).rejects.toThrow(DmNameError);
  });
  it('offers no resume or suspend without --noflush', () => {
    const methods = Object.getOwnPropertyNames(Dmsetup.prototype);
    expect(methods.filter((m) => /resume|suspend/i.test(m)).sort()).toEqual(['resumeNoFlush', 'suspendNoFlush']);
  });
  it('sets DM_DISABLE_UDEV only without udev', () => {
    expect(new Dmsetup({ udevControl: '/nonexistent/udev/control' }).udevSync()).toBe(false);
    expect(new Dmsetup({ udevControl: '/' }).udevSync()).toBe(true);
  });
  it('reports a failing dmsetup with its argv and status', async () => {
    const dm = new Dmsetup({ dmsetup: 'false' });
    await expect(dm.remove('shadow-x')).rejects.toThrow(/dmsetup remove shadow-x exited with status 1/);
  });
  it('parses device numbers strictly', () => {
    expect(parseDevt('008:016')).toBe('8:16');
    for (const bad of ['8', '8:', ':1', '8:0:1', '-1:0', '8:1048576', ' 8:0']) expect(() => parseDevt(bad)).toThrow(DmParseError);
  });
});
