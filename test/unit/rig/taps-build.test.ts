// The precompiled taps' build (test/vm/rig/taps-build.ts): where it finds its
// tools, the argv it gives them (no shell), where its outputs go, and when
// vmlinux.h is made again. The build itself runs in `npm run build:taps`.
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  bpfCompileArgv,
  classObjectNames,
  findTool,
  headerStale,
  loaderLinkArgv,
  tapsBuildDir,
  tapsObject,
  tapsObjects,
  tapsOutputs,
  TAPS_SOURCE_DIR,
  vmlinuxHeaderArgv,
} from '../../vm/rig/taps-build.js';
import { repoPath } from '../../vm/rig/repo-path.js';

describe('the precompiled taps build', () => {
  it('puts everything in bpf/libbpf/build/, one object per class', () => {
    expect(TAPS_SOURCE_DIR).toBe(repoPath('bpf', 'libbpf'));
    expect(tapsBuildDir()).toBe(repoPath('bpf', 'libbpf', 'build'));
    expect(tapsOutputs('/b')).toEqual({
      dir: '/b',
      loader: '/b/taps-loader',
      objects: { 'block-class': '/b/block-class.bpf.o', 'netdev-class': '/b/netdev-class.bpf.o', 'sound-class': '/b/sound-class.bpf.o' },
    });
    expect(tapsObject(tapsOutputs('/b'), 'sound-class')).toBe('/b/sound-class.bpf.o');
    expect(() => tapsObject(tapsOutputs('/b', []), 'sound-class')).toThrow('no sound-class.bpf.o: the build made no object');
  });

  it('makes an object of each NAME.bpf.c of bpf/libbpf/, and of nothing else there', () => {
    expect(tapsObjects()).toEqual(['block-class', 'netdev-class', 'sound-class']);
    const files = ['taps-loader.c', 'tap-format.c', 'taps-event.h', 'sound-class.bpf.c', 'README.md', 'block-class.bpf.c', 'net-class.bpf.c.orig', 'build'];
    expect(classObjectNames(files)).toEqual(['block-class', 'sound-class']);
  });

  it('finds a tool on PATH first, then in the sbin folders a user PATH lacks (Debian\'s bpftool is in /usr/sbin)', () => {
    const present = new Set(['/opt/bin/clang', '/usr/sbin/bpftool', '/usr/bin/bpftool']);
    const exists = (p: string): boolean => present.has(p);
    expect(findTool('clang', '/usr/bin:/opt/bin', exists)).toBe('/opt/bin/clang');
    expect(findTool('bpftool', '/usr/bin:/bin', exists)).toBe('/usr/bin/bpftool');
    expect(findTool('bpftool', '/bin', exists)).toBe('/usr/sbin/bpftool');
    expect(findTool('bpftool', '', exists)).toBe('/usr/sbin/bpftool');
    expect(findTool('cc', '/usr/bin', exists)).toBeNull();
  });

  it('gives each tool an argv: the BTF dump, the BPF compile with debug info and -Werror, the loader with libbpf static', () => {
    expect(vmlinuxHeaderArgv('/cache/6.1/vmlinux')).toEqual(['btf', 'dump', 'file', '/cache/6.1/vmlinux', 'format', 'c']);
    const bpf = bpfCompileArgv('/s/block-class.bpf.c', '/b/block-class.unlinked.o', ['/b', '/s']);
    expect(bpf).toEqual(['-g', '-O2', '-target', 'bpf', '-D__TARGET_ARCH_x86', '-Wall', '-Werror', '-I/b', '-I/s', '-c', '/s/block-class.bpf.c', '-o', '/b/block-class.unlinked.o']);
    const cc = loaderLinkArgv(['/s/taps-loader.c', '/s/tap-format.c'], join('/b', 'taps-loader'), ['/b', '/s']);
    expect(cc.slice(0, 5)).toEqual(['-O2', '-g', '-Wall', '-Wextra', '-Werror']);
    expect(cc).toEqual(expect.arrayContaining(['/s/taps-loader.c', '/s/tap-format.c']));
    expect(cc.slice(cc.indexOf('-o'), cc.indexOf('-o') + 2)).toEqual(['-o', '/b/taps-loader']);
    expect(cc.slice(-5)).toEqual(['-Wl,-Bstatic', '-lbpf', '-Wl,-Bdynamic', '-lelf', '-lz']);
  });

  it('makes vmlinux.h again when it is missing, was made from another kernel image, or is older than its image', () => {
    const times: Record<string, number> = { '/b/vmlinux.h': 200, '/k/6.1/vmlinux': 100, '/k/new/vmlinux': 300 };
    const mtime = (p: string): number | null => times[p] ?? null;
    expect(headerStale('/b/vmlinux.h', '/k/6.1/vmlinux', '/k/6.1/vmlinux', mtime)).toBe(false);
    expect(headerStale('/b/missing.h', '/k/6.1/vmlinux', '/k/6.1/vmlinux', mtime)).toBe(true);
    expect(headerStale('/b/vmlinux.h', null, '/k/6.1/vmlinux', mtime)).toBe(true);
    expect(headerStale('/b/vmlinux.h', '/k/6.12/vmlinux', '/k/6.1/vmlinux', mtime)).toBe(true);
    expect(headerStale('/b/vmlinux.h', '/k/new/vmlinux', '/k/new/vmlinux', mtime)).toBe(true);
    expect(headerStale('/b/vmlinux.h', '/k/gone/vmlinux', '/k/gone/vmlinux', mtime)).toBe(true);
  });
});
