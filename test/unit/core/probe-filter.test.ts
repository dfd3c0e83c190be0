// The attach points a kernel lacks are taken out of a tap program before
// bpftrace sees it, each reported with the records the shadow then misses;
// the class programs parse block by block.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { filterProbes, pointExists, readKernelProbeIndex, type KernelProbeIndex } from '../../../daemon/core/probe-filter.js';

const index = (missing: string[]): KernelProbeIndex => ({
  hasFunction: (name) => !missing.includes(name),
  hasTracepoint: (cat, name) => !missing.includes(`${cat}:${name}`),
});

const PROGRAM = `// definitions
struct x { int a; }

kretfunc:vmlinux:dev_set_mtu_ext
{
  printf("ev=mtu ifindex=%d\\n", args->dev->ifindex);
}

kretfunc:vmlinux:ethnl_set_rings, kretfunc:vmlinux:ethnl_set_pse,
kretfunc:vmlinux:ethnl_set_fec
{
  printf("ev=ethtool_nl_set msg=%u\\n", args->info->genlhdr->cmd);
}

kprobe:snd_pcm_drain /@armed[tid]/ { printf("ev=drain\\n"); }

tracepoint:net:net_dev_xmit_timeout
{
  printf("ev=xmit_timeout\\n");
}

END
{
  clear(@armed);
}
`;

describe('probe filter', () => {
  it('leaves a program whose every attach point exists as it is', () => {
    expect(filterProbes(PROGRAM, index([]))).toEqual({ text: PROGRAM, dropped: [] });
  });

  it('drops a missing point from a list, and a block whose only point is missing, naming the records lost', () => {
    const r = filterProbes(PROGRAM, index(['ethnl_set_pse', 'dev_set_mtu_ext', 'snd_pcm_drain', 'net:net_dev_xmit_timeout']));
    expect(r.dropped).toEqual([
      { point: 'kretfunc:vmlinux:dev_set_mtu_ext', events: ['mtu'], blockDropped: true },
      { point: 'kretfunc:vmlinux:ethnl_set_pse', events: ['ethtool_nl_set'], blockDropped: false },
      { point: 'kprobe:snd_pcm_drain', events: ['drain'], blockDropped: true },
      { point: 'tracepoint:net:net_dev_xmit_timeout', events: ['xmit_timeout'], blockDropped: true },
    ]);
    expect(r.text).not.toContain('dev_set_mtu_ext');
    expect(r.text).not.toContain('ev=mtu');
    expect(r.text).not.toContain('snd_pcm_drain');
    expect(r.text).not.toContain('xmit_timeout');
    expect(r.text).toContain('kretfunc:vmlinux:ethnl_set_rings, kretfunc:vmlinux:ethnl_set_fec\n{\n  printf("ev=ethtool_nl_set');
    // The definitions and END stay.
    expect(r.text.startsWith('// definitions\nstruct x { int a; }\n')).toBe(true);
    expect(r.text).toMatch(/END\n\{\n {2}clear\(@armed\);\n\}\n$/);
  });

  it('keeps a one-line block with a predicate when one of its points remains', () => {
    const text = 'kprobe:a, kprobe:b /pid > 1/ { printf("ev=ab\\n"); }\nkprobe:c { printf("ev=c\\n"); }\n';
    const r = filterProbes(text, index(['a']));
    expect(r.text).toBe('kprobe:b /pid > 1/ { printf("ev=ab\\n"); }\nkprobe:c { printf("ev=c\\n"); }\n');
    expect(r.dropped).toEqual([{ point: 'kprobe:a', events: ['ab'], blockDropped: false }]);
  });

  it('checks functions and tracepoints, and leaves what it cannot check to bpftrace', () => {
    const idx = index(['gone', 'net:gone']);
    expect(pointExists('kfunc:vmlinux:gone', idx)).toBe(false);
    expect(pointExists('kretprobe:gone', idx)).toBe(false);
    expect(pointExists('kfunc:snd_pcm:gone', idx)).toBe(false);
    expect(pointExists('tracepoint:net:gone', idx)).toBe(false);
    expect(pointExists('kprobe:here', idx)).toBe(true);
    expect(pointExists('kprobe:snd_pcm_*', idx)).toBe(true);
    expect(pointExists('BEGIN', idx)).toBe(true);
    expect(pointExists('interval:s:1', idx)).toBe(true);
  });

  it("parses the class programs block by block: with nothing missing each is unchanged, and every probe can go", () => {
    for (const file of ['netdev-class.bt', 'block-class.bt', 'sound-class.bt']) {
      const text = readFileSync(new URL(`../../../bpf/${file}`, import.meta.url).pathname, 'utf8');
      expect(filterProbes(text, index([])).text, file).toBe(text);
      const none: KernelProbeIndex = { hasFunction: () => false, hasTracepoint: () => false };
      const r = filterProbes(text, none);
      expect(r.text, file).not.toMatch(/^(kfunc|kretfunc|kprobe|kretprobe|tracepoint):/m);
      // Every record the program prints is reported lost (BEGIN/END ones aside).
      expect(r.dropped.length, file).toBeGreaterThan(0);
    }
  });

  it('reads the functions and tracepoints of a tracefs, plain names only', async () => {
    const root = mkdtempSync(join(tmpdir(), 'tracefs-'));
    try {
      writeFileSync(join(root, 'available_filter_functions'), 'dev_set_mtu_ext\nsnd_pcm_drain [snd_pcm]\ninlined_one.isra.0\n');
      mkdirSync(join(root, 'events', 'net', 'net_dev_xmit_timeout'), { recursive: true });
      writeFileSync(join(root, 'events', 'net', 'net_dev_xmit_timeout', 'format'), 'name: net_dev_xmit_timeout\n');
      const idx = await readKernelProbeIndex([join(root, 'missing'), root]);
      expect(idx).not.toBeNull();
      expect(['dev_set_mtu_ext', 'snd_pcm_drain', 'inlined_one', 'inlined_one.isra.0'].map((f) => idx!.hasFunction(f))).toEqual([true, true, false, true]);
      expect(idx!.hasTracepoint('net', 'net_dev_xmit_timeout')).toBe(true);
      expect(idx!.hasTracepoint('net', 'other')).toBe(false);
      expect(await readKernelProbeIndex([join(root, 'missing')])).toBeNull();
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
