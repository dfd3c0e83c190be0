// Cards, their identity and the holders of their device files, read from
// trees laid out as the 6.1 guest showed them (/sys/class/sound/card0 →
// ../../devices/pci0000:00/0000:00:04.0/sound/card0; /proc/PID/fd/N →
// /dev/snd/pcmC0D0p), and the refusal those holders make.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { fileCard, isKeptFile, listCards, readCardIdentity, soundFileHolders } from '../../../../daemon/classes/sound/sound-sysfs.js';
import { unkeptFileRefusal } from '../../../../daemon/classes/sound/unkept-file-refusal.js';

describe('sound sysfs and open files', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'sound-sysfs-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  function card(n: number, pci: string, id: string, driver: string | null): void {
    const dev = join(root, 'sys', 'devices', 'pci0000:00', pci);
    const dir = join(dev, 'sound', `card${n}`);
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'number'), `${n}\n`);
    writeFileSync(join(dir, 'id'), `${id}\n`);
    symlinkSync(`../../../${pci}`, join(dir, 'device'));
    if (driver) {
      const drv = join(root, 'sys', 'bus', 'pci', 'drivers', driver);
      mkdirSync(drv, { recursive: true });
      mkdirSync(join(root, 'sys', 'module', driver), { recursive: true });
      symlinkSync(`../../../../module/${driver}`, join(drv, 'module'));
      symlinkSync(`../../../bus/pci/drivers/${driver}`, join(dev, 'driver'));
    }
    mkdirSync(join(root, 'sys', 'class', 'sound'), { recursive: true });
    symlinkSync(`../../devices/pci0000:00/${pci}/sound/card${n}`, join(root, 'sys', 'class', 'sound', `card${n}`));
  }

  it('lists the cards and reads each one\'s id, bus device, driver and module', async () => {
    card(0, '0000:00:04.0', 'AudioPCI', 'snd_ens1370');
    card(1, '0000:00:05.0', 'I82801AAICH', null);
    symlinkSync('../../devices/virtual/sound/timer', join(root, 'sys', 'class', 'sound', 'timer'));
    symlinkSync('x', join(root, 'sys', 'class', 'sound', 'pcmC0D0p'));
    expect(await listCards(join(root, 'sys'))).toEqual([0, 1]);
    expect(await readCardIdentity(0, join(root, 'sys'))).toEqual({ number: 0, id: 'AudioPCI', bus: '0000:00:04.0', driver: 'snd_ens1370', module: 'snd_ens1370' });
    expect(await readCardIdentity(1, join(root, 'sys'))).toEqual({ number: 1, id: 'I82801AAICH', bus: '0000:00:05.0', driver: null, module: null });
    await expect(readCardIdentity(2, join(root, 'sys'))).rejects.toThrow(`card2 is not in ${join(root, 'sys', 'class', 'sound')}`);
    expect(await listCards(join(root, 'nothing'))).toEqual([]);
  });

  it('finds who holds which file under /dev/snd', async () => {
    const proc = join(root, 'proc');
    const proc_ = (pid: number, comm: string, targets: string[]): void => {
      mkdirSync(join(proc, String(pid), 'fd'), { recursive: true });
      writeFileSync(join(proc, String(pid), 'comm'), `${comm}\n`);
      targets.forEach((t, i) => symlinkSync(t, join(proc, String(pid), 'fd', String(i))));
    };
    proc_(278, 'speaker-test', ['/dev/null', '/dev/snd/pcmC0D0p', '/dev/snd/controlC0']);
    proc_(300, 'amidi', ['/dev/snd/midiC0D0']);
    proc_(301, 'bash', ['/dev/tty1', '/dev/sndx']);
    mkdirSync(join(proc, 'self'));
    const holders = await soundFileHolders(proc);
    expect(holders).toEqual([
      { pid: 278, comm: 'speaker-test', file: 'pcmC0D0p' },
      { pid: 278, comm: 'speaker-test', file: 'controlC0' },
      { pid: 300, comm: 'amidi', file: 'midiC0D0' },
    ]);
  });

  it('knows which files belong to which card, and which the helper keeps', () => {
    expect([fileCard('pcmC0D0p'), fileCard('controlC12'), fileCard('hwC1D0'), fileCard('midiC3D1'), fileCard('timer'), fileCard('seq'), fileCard('pcmC0D0x')]).toEqual([0, 12, 1, 3, null, null, null]);
    expect([isKeptFile('pcmC0D0c'), isKeptFile('controlC0'), isKeptFile('hwC0D0'), isKeptFile('midiC0D0')]).toEqual([true, true, false, false]);
  });

  it('refuses a restart while a process holds a file of the card the helper cannot keep, naming it', () => {
    const holders = [
      { pid: 278, comm: 'speaker-test', file: 'pcmC0D0p' },
      { pid: 300, comm: 'amidi', file: 'midiC0D0' },
      { pid: 301, comm: 'hdajackretask', file: 'hwC1D0' },
      { pid: 302, comm: 'alsamixer', file: 'controlC0' },
    ];
    expect(unkeptFileRefusal(0, 'snd_ens1370', holders)).toMatch(/^restarting snd_ens1370 of card0 would wait for files the helper cannot keep open across it: amidi\[300\] holds \/dev\/snd\/midiC0D0\. /);
    expect(unkeptFileRefusal(1, null, holders)).toContain('hdajackretask[301] holds /dev/snd/hwC1D0');
    expect(unkeptFileRefusal(1, null, holders)).not.toContain('midiC0D0');
    expect(unkeptFileRefusal(0, 'snd_ens1370', holders.filter((h) => h.comm !== 'amidi'))).toBeNull();
  });
});
