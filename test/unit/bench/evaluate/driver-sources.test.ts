import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { compositeObjects, findModule, localIncludes, moduleSources, objectName } from '../../../../bench/evaluate/driver-sources.js';

describe('compositeObjects', () => {
  it('reads -objs, -y and -$(CONFIG_...) assignments, continuation lines included', () => {
    const mk = [
      'obj-$(CONFIG_E1000E) += e1000e.o',
      'e1000e-objs := 82571.o ich8lan.o \\',
      '\t80003es2lan.o',
      'e1000e-objs += mac.o',
      'e1000e-$(CONFIG_PTP_1588_CLOCK) += ptp.o',
      'other-y := nope.o',
    ].join('\n');
    expect(compositeObjects(mk, 'e1000e')).toEqual(['82571.o', 'ich8lan.o', '80003es2lan.o', 'mac.o', 'ptp.o']);
    expect(compositeObjects(mk, 'e1000')).toEqual([]);
  });
  it('takes the module name literally (snd-hda-intel, not a pattern)', () => {
    expect(compositeObjects('snd-hda-intel-objs := hda_intel.o\nsnd-hdaxintel-objs := x.o\n', 'snd-hda-intel')).toEqual(['hda_intel.o']);
  });
});

describe('localIncludes', () => {
  it('lists the quoted headers of the same folder only', () => {
    expect(localIncludes('#include <linux/pci.h>\n#include "e1000.h"\n# include "hw.h"\n#include "../x.h"\n')).toEqual(['e1000.h', 'hw.h']);
  });
});

describe('moduleSources and findModule', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shadowd-drv-'));
  it('gives a composite module its objects\' sources and the local headers they include, transitively', () => {
    const f = join(dir, 'comp');
    mkdirSync(f);
    writeFileSync(join(f, 'Makefile'), 'obj-m += drv.o\ndrv-objs := main.o hw.o\n');
    writeFileSync(join(f, 'main.c'), '#include "drv.h"\n');
    writeFileSync(join(f, 'hw.c'), '#include <linux/io.h>\n');
    writeFileSync(join(f, 'drv.h'), '#include "regs.h"\n');
    writeFileSync(join(f, 'regs.h'), '#define R 1\n');
    writeFileSync(join(f, 'unrelated.c'), 'int x;\n');
    expect(moduleSources(f, 'drv')).toEqual(['drv.h', 'hw.c', 'main.c', 'regs.h']);
  });
  it('gives a one-file module NAME.c, and refuses a folder without it', () => {
    const f = join(dir, 'one');
    mkdirSync(f);
    writeFileSync(join(f, 'Makefile'), 'obj-$(CONFIG_X) += e100.o\n');
    writeFileSync(join(f, 'e100.c'), 'int x;\n');
    expect(moduleSources(f, 'e100')).toEqual(['e100.c']);
    expect(() => moduleSources(f, 'e1000')).toThrow(/no source file of module e1000/);
  });
  it('finds a module\'s .ko in a modules tree, - and _ alike, compressed or not', () => {
    const mods = join(dir, 'lib', 'modules', 'k');
    mkdirSync(join(mods, 'kernel', 'drivers', 'net', 'ethernet', '8390'), { recursive: true });
    writeFileSync(join(mods, 'kernel', 'drivers', 'net', 'ethernet', '8390', 'ne2k-pci.ko.xz'), '');
    const ko = findModule(mods, 'ne2k_pci');
    expect(ko).toBe('drivers/net/ethernet/8390/ne2k-pci.ko.xz');
    expect(objectName(ko!)).toBe('ne2k-pci');
    expect(findModule(mods, 'e1000')).toBeNull();
    expect(findModule(join(dir, 'nothing'), 'e1000')).toBeNull();
  });
});
