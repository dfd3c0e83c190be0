// kmod/sh_reload.c's reload decision, built on the host against stub kernel
// headers (stub/) and run by reload-harness.c with a scripted modprobe and
// /sys/module: whether the module unloaded and loaded is read from its
// presence after each modprobe, not from modprobe's exit status.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { hasCc } from '../host-cc.js';

const here = (p: string): string => new URL(p, import.meta.url).pathname;
const KMOD = here('../../../kmod/');
const STUB = here('./stub/');

interface Outcome {
  ret: number;
  msg: string;
  ran: string[];
}

const EBUSY = -16;
const EIO = -5;

describe.skipIf(!hasCc())('sh_reload_module (kmod, on the host)', () => {
  let dir: string;
  let harness: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'shadowd-kmod-'));
    harness = join(dir, 'reload-harness');
    execFileSync('cc', ['-std=gnu11', '-Wall', '-Werror', '-DKBUILD_MODNAME="shadow_helper"', '-I', STUB, '-I', KMOD, '-o', harness, join(KMOD, 'sh_reload.c'), here('./reload-harness.c')], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  }, 60_000);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** modprobe -r's exit and what /sys/module/e1000 then is; modprobe's exit and what it is after. */
  const reload = (unloadExit: number, afterUnload: string, loadExit: number, afterLoad: string): Outcome =>
    JSON.parse(execFileSync(harness, [String(unloadExit), afterUnload, String(loadExit), afterLoad], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })) as Outcome;

  it('reloads when modprobe -r and modprobe work', () => {
    expect(reload(0, 'gone', 0, 'loaded')).toEqual({ ret: 0, msg: '', ran: ['modprobe -r', 'modprobe'] });
  });

  it('takes a module gone after a failing modprobe -r as unloaded, and loads it again', () => {
    // Before: "would not unload", and the device probed with no driver loaded.
    expect(reload(1, 'gone', 0, 'loaded')).toEqual({ ret: 0, msg: '', ran: ['modprobe -r', 'modprobe'] });
  });

  it('takes a module still loaded after modprobe -r as not unloaded, whatever modprobe said, and says both', () => {
    expect(reload(0, 'loaded', 0, 'loaded')).toEqual({ ret: EBUSY, msg: 'modprobe -r e1000 exited with status 0; module e1000 is loaded', ran: ['modprobe -r'] });
    expect(reload(1, 'loaded', 0, 'loaded')).toEqual({ ret: EBUSY, msg: 'modprobe -r e1000 exited with status 1; module e1000 is loaded', ran: ['modprobe -r'] });
    expect(reload(-2, 'loaded', 0, 'loaded')).toEqual({ ret: EBUSY, msg: 'cannot run /sbin/modprobe: error -2; module e1000 is loaded', ran: ['modprobe -r'] });
  });

  it('falls back on the exit status only when /sys/module cannot be read', () => {
    expect(reload(1, 'unknown', 0, 'loaded')).toEqual({ ret: EBUSY, msg: 'modprobe -r e1000 exited with status 1; module e1000 may or may not be loaded', ran: ['modprobe -r'] });
    expect(reload(0, 'unknown', 0, 'loaded')).toEqual({ ret: 0, msg: '', ran: ['modprobe -r', 'modprobe'] });
  });

  it('judges the load the same way: loaded is loaded, gone is -EIO', () => {
    expect(reload(0, 'gone', 1, 'loaded')).toEqual({ ret: 0, msg: '', ran: ['modprobe -r', 'modprobe'] });
    expect(reload(0, 'gone', 0, 'gone')).toEqual({ ret: EIO, msg: 'modprobe e1000 exited with status 0; module e1000 is not loaded', ran: ['modprobe -r', 'modprobe'] });
  });
});
