// The modules shadowd needs loaded (core/kernel-modules.ts): the list
// install.sh writes to /etc/modules-load.d, and the check the taps runner
// makes before attaching: /sys/module first, modprobe only for what is
// missing, and an error naming the module and how to load it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { CLASSES } from '../../../daemon/classes/registry.js';
import { bootModules, ensureModules, missingModules } from '../../../daemon/core/kernel-modules.js';

describe('kernel modules', () => {
  let dir: string;
  let sys: string;
  let builtin: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'kernel-modules-'));
    sys = join(dir, 'sys-module');
    builtin = join(dir, 'modules.builtin');
    mkdirSync(sys);
    writeFileSync(builtin, 'kernel/drivers/md/dm-mod.ko\nkernel/sound/core/snd-timer.ko\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const loaded = (...names: string[]) => {
    for (const n of names) mkdirSync(join(sys, n));
  };

  it('lists the helper first, then every class\'s tap modules once', () => {
    expect(bootModules(CLASSES)).toEqual(['shadow_helper', ...new Set(CLASSES.flatMap((c) => c.tapModules ?? []))]);
    expect(bootModules(CLASSES)).toEqual(['shadow_helper', 'snd', 'snd-pcm']);
    expect(bootModules([{ tapModules: ['a', 'b'] }, { tapModules: ['b'] }, {}])).toEqual(['shadow_helper', 'a', 'b']);
  });

  it('counts a module as there when /sys/module has it (with _ for -) or the kernel has it built in', async () => {
    loaded('snd', 'snd_pcm');
    expect(await missingModules(['snd', 'snd-pcm', 'snd-timer', 'dm_mod', 'shadow_helper'], { sysModule: sys, modulesBuiltin: builtin })).toEqual(['shadow_helper']);
    // An unreadable modules.builtin (the unit hides /lib/modules): /sys/module alone decides.
    expect(await missingModules(['snd', 'dm-mod'], { sysModule: sys, modulesBuiltin: join(dir, 'none') })).toEqual(['dm-mod']);
  });

  it('runs modprobe for the missing modules only, and not at all when every one is loaded', async () => {
    loaded('snd');
    const asked: string[][] = [];
    const modprobe = (m: readonly string[]) => {
      asked.push([...m]);
      for (const n of m) loaded(n.replaceAll('-', '_'));
      return Promise.resolve();
    };
    await ensureModules(['snd', 'snd-pcm'], { sysModule: sys, modulesBuiltin: builtin, modprobe });
    expect(asked).toEqual([['snd-pcm']]);
    await ensureModules(['snd', 'snd-pcm'], { sysModule: sys, modulesBuiltin: builtin, modprobe });
    expect(asked).toEqual([['snd-pcm']]);
  });

  it('says which module is missing and how to load it when modprobe cannot (the service may not load modules)', async () => {
    loaded('snd');
    const modprobe = () => Promise.reject(new Error('modprobe -a snd-pcm: Operation not permitted'));
    await expect(ensureModules(['snd', 'snd-pcm'], { sysModule: sys, modulesBuiltin: builtin, modprobe })).rejects.toThrow(
      'kernel module snd-pcm is not loaded and shadowd could not load it (modprobe -a snd-pcm: Operation not permitted): load it with `modprobe -a snd-pcm`, and at boot by listing it in /etc/modules-load.d/shadowd.conf (scripts/install.sh does; the service itself may not load modules)',
    );
    await expect(ensureModules(['a', 'b'], { sysModule: sys, modulesBuiltin: builtin, modprobe: () => Promise.resolve() })).rejects.toThrow(
      /^kernel modules a, b are not loaded and shadowd could not load them \(modprobe succeeded but \/sys\/module does not list them\): load them with `modprobe -a a b`/,
    );
  });
});
