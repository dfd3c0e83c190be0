// The guest kernel selection (SHADOWD_GUEST_KERNEL) and the per-series cache
// layout: 6.1 keeps the names and build folders it always had, 6.12 gets its
// own current-kver file, kbuild folder and module build copies in the cache.
import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import {
  currentKernelFile,
  kbuildPackage,
  kernelPaths,
  moduleBuildDir,
  selectedKernelSeries,
  seriesOf,
} from '../../vm/rig/cache-paths.js';
import { kernelPackages } from '../../vm/rig/kernel-cache.js';
import { repoPath } from '../../vm/rig/repo-path.js';

const BASE = '/cache';

describe('guest kernel series', () => {
  it('is 6.1 unless SHADOWD_GUEST_KERNEL names 6.12, and refuses anything else', () => {
    expect(selectedKernelSeries({})).toBe('6.1');
    expect(selectedKernelSeries({ SHADOWD_GUEST_KERNEL: '' })).toBe('6.1');
    expect(selectedKernelSeries({ SHADOWD_GUEST_KERNEL: '6.1' })).toBe('6.1');
    expect(selectedKernelSeries({ SHADOWD_GUEST_KERNEL: '6.12' })).toBe('6.12');
    expect(() => selectedKernelSeries({ SHADOWD_GUEST_KERNEL: '6.6' })).toThrow(/SHADOWD_GUEST_KERNEL=6.6: the rig knows the guest kernels 6.1 and 6.12/);
  });

  it('tells a release by its series, 6.1 from 6.12', () => {
    expect(seriesOf('6.1.0-57-amd64')).toBe('6.1');
    expect(seriesOf('6.12.118+deb12-amd64')).toBe('6.12');
    expect(() => seriesOf('6.6.1-amd64')).toThrow(/not a release of the 6.1 or 6.12 series/);
  });

  it('names each release its packages, with the kbuild of its form', () => {
    expect(kbuildPackage('6.1.0-57-amd64')).toBe('linux-kbuild-6.1');
    expect(kbuildPackage('6.12.118+deb12-amd64')).toBe('linux-kbuild-6.12.118+deb12');
    expect(kernelPackages('6.12.118+deb12-amd64')).toEqual([
      'linux-image-6.12.118+deb12-amd64',
      'linux-headers-6.12.118+deb12-amd64',
      'linux-headers-6.12.118+deb12-common',
      'linux-kbuild-6.12.118+deb12',
    ]);
    expect(kernelPackages('6.1.0-57-amd64')).toEqual([
      'linux-image-6.1.0-57-amd64',
      'linux-headers-6.1.0-57-amd64',
      'linux-headers-6.1.0-57-common',
      'linux-kbuild-6.1',
    ]);
  });

  it('keeps 6.1 where it was and gives 6.12 its own files', () => {
    expect(currentKernelFile(BASE)).toBe('/cache/current-kver');
    expect(currentKernelFile(BASE, '6.1')).toBe('/cache/current-kver');
    expect(currentKernelFile(BASE, '6.12')).toBe('/cache/current-kver-6.12');
    const k = kernelPaths('6.12.118+deb12-amd64', BASE);
    expect(k.series).toBe('6.12');
    expect(k.kbuild).toBe('/cache/6.12.118+deb12-amd64/root/usr/lib/linux-kbuild-6.12.118+deb12');
    expect(kernelPaths('6.1.0-57-amd64', BASE).kbuild).toBe('/cache/6.1.0-57-amd64/root/usr/lib/linux-kbuild-6.1');
  });

  it('builds modules in place for 6.1 and in a copy under the kernel cache for 6.12', () => {
    expect(moduleBuildDir(repoPath('kmod'), '6.1.0-57-amd64', BASE)).toBe(repoPath('kmod'));
    expect(moduleBuildDir(repoPath('kmod'), '6.12.118+deb12-amd64', BASE)).toBe(join(BASE, '6.12.118+deb12-amd64', 'kmod-build', 'kmod'));
    expect(moduleBuildDir(repoPath('test/vm/fault-fixture'), '6.12.118+deb12-amd64', BASE)).toBe(
      join(BASE, '6.12.118+deb12-amd64', 'kmod-build', 'test', 'vm', 'fault-fixture'),
    );
    expect(() => moduleBuildDir('/elsewhere', '6.12.118+deb12-amd64', BASE)).toThrow(/is not a folder of the repository/);
  });
});
