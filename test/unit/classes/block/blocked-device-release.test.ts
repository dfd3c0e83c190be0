// The release of a disk a map waits on (blocked-device-release.ts): when the
// watch asks for it, and the read it sends, which names a disk and never a path.
import { describe, expect, it } from 'vitest';
import { BLOCKED_IDLE_MS, BlockedIdleWatch, releaseBlockedDisk, releaseReadArgv } from '../../../../daemon/classes/block/blocked-device-release.js';

describe('blocked idle watch', () => {
  it('asks after BLOCKED_IDLE_MS of blocked and idle under a live map, then every BLOCKED_IDLE_MS', () => {
    const w = new BlockedIdleWatch();
    const s = { deviceBlocked: 3, inflight: 0, mappedLive: true };
    expect(w.observe(s, 0)).toBe(false);
    expect(w.observe(s, BLOCKED_IDLE_MS - 1)).toBe(false);
    expect(w.observe(s, BLOCKED_IDLE_MS)).toBe(true);
    expect(w.observe(s, BLOCKED_IDLE_MS + 10)).toBe(false);
    expect(w.observe(s, 2 * BLOCKED_IDLE_MS)).toBe(true);
  });

  it('starts again whenever the disk is not blocked, is busy or has no live map', () => {
    for (const other of [
      { deviceBlocked: 0, inflight: 0, mappedLive: true },
      { deviceBlocked: null, inflight: 0, mappedLive: true },
      { deviceBlocked: 3, inflight: 4, mappedLive: true },
      { deviceBlocked: 3, inflight: 0, mappedLive: false },
    ]) {
      const w = new BlockedIdleWatch();
      const s = { deviceBlocked: 3, inflight: 0, mappedLive: true };
      expect(w.observe(s, 0)).toBe(false);
      expect(w.observe(other, 900)).toBe(false);
      expect(w.observe(s, 1000)).toBe(false);
      expect(w.observe(s, 1999)).toBe(false);
      expect(w.observe(s, 2000)).toBe(true);
    }
  });
});

describe('release read', () => {
  it('reads 4 KiB of the disk with O_DIRECT, through dd with an argv', async () => {
    expect(releaseReadArgv('sdb')).toEqual(['if=/dev/sdb', 'of=/dev/null', 'bs=4096', 'count=1', 'iflag=direct', 'status=none']);
    const calls: { file: string; args: readonly string[] }[] = [];
    await releaseBlockedDisk('sdc', (file, args) => {
      calls.push({ file, args });
      return Promise.resolve({ stdout: '', stderr: '', exitCode: 0 });
    });
    expect(calls).toEqual([{ file: 'dd', args: releaseReadArgv('sdc') }]);
    await expect(releaseBlockedDisk('sdc', () => Promise.resolve({ stdout: '', stderr: 'dd: Permission denied\n', exitCode: 1 }))).rejects.toThrow('dd exited 1: dd: Permission denied');
  });

  it.each(['../sda', 'sda/../../etc/passwd', '', 'sd a', '-sda', 'of=/dev/sda'])('refuses the disk name %j', (name) => {
    expect(() => releaseReadArgv(name)).toThrow();
  });
});
