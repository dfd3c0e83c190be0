// The precompiled taps' CO-RE check (test/vm/rig/taps-core-check.ts), on
// libbpf's debug output as `bpftool -d gen min_core_btf` prints it: each
// read and the field it landed on, the structs a target BTF must hold whole,
// a read that lands nowhere unless its program tested the field first, and
// the modules of a class's object. The check itself runs in `npm run
// build:taps` against the cached guest kernels.
import { describe, expect, it } from 'vitest';
import { objectModules, parseRelocations, structsRead, targetSource, unresolved } from '../../vm/rig/taps-core-check.js';

const LOG = `libbpf: loading object 'sound_class' from buffer
libbpf: CO-RE relocating [340] struct snd_pcm_substream___sd: found target candidate [2] struct snd_pcm_substream in [vmlinux]
libbpf: prog 'fentry/snd_pcm_detach_substream': relo #1: <byte_off> [340] struct snd_pcm_substream___sd.pcm (0:0 @ offset 0)
libbpf: prog 'fentry/snd_pcm_detach_substream': relo #1: matching candidate #0 <byte_off> [2] struct snd_pcm_substream.pcm (0:0 @ offset 0)
libbpf: prog 'fentry/snd_pcm_detach_substream': relo #2: <byte_off> [342] struct snd_pcm___sd.card (0:0 @ offset 0)
libbpf: prog 'fentry/snd_pcm_detach_substream': relo #2: no matching targets found
libbpf: prog 'fexit/snd_pcm_hw_params': relo #7: <byte_off> [347] struct snd_pcm_hw_params___sd.masks[1].bits[1] (0:0:1:0:1 @ offset 36)
libbpf: prog 'fexit/snd_pcm_hw_params': relo #7: matching candidate #0 <byte_off> [76] struct snd_pcm_hw_params.masks[1].bits[1] (0:1:1:0:1 @ offset 40)
libbpf: prog 'fexit/sysfs_kf_write': relo #1: <field_exists> [64] struct kernfs_node___rcu_parent.__parent (0:0 @ offset 0)
libbpf: prog 'fexit/sysfs_kf_write': relo #1: non-matching candidate #0 <field_exists> [732] struct kernfs_node (0 @ offset 0)
libbpf: prog 'fexit/sysfs_kf_write': relo #1: no matching targets found
libbpf: prog 'fexit/sysfs_kf_write': relo #2: <byte_off> [64] struct kernfs_node___rcu_parent.__parent (0:0 @ offset 0)
libbpf: prog 'fexit/sysfs_kf_write': relo #2: no matching targets found
libbpf: prog 'fexit/sysfs_kf_write': relo #3: <byte_off> [86] struct task_struct.flags (0:4 @ offset 44)
libbpf: prog 'fexit/sysfs_kf_write': relo #3: matching candidate #0 <byte_off> [193] struct task_struct.flags (0:4 @ offset 44)
`;

describe('the precompiled taps\' CO-RE check', () => {
  const relocations = parseRelocations(LOG);

  it('reads each relocation of libbpf\'s debug output and the field it landed on, or none', () => {
    expect(relocations).toEqual([
      { program: 'fentry/snd_pcm_detach_substream', kind: 'byte_off', local: 'struct snd_pcm_substream___sd.pcm', target: 'struct snd_pcm_substream.pcm (0:0 @ offset 0)' },
      { program: 'fentry/snd_pcm_detach_substream', kind: 'byte_off', local: 'struct snd_pcm___sd.card', target: null },
      { program: 'fexit/snd_pcm_hw_params', kind: 'byte_off', local: 'struct snd_pcm_hw_params___sd.masks[1].bits[1]', target: 'struct snd_pcm_hw_params.masks[1].bits[1] (0:1:1:0:1 @ offset 40)' },
      { program: 'fexit/sysfs_kf_write', kind: 'field_exists', local: 'struct kernfs_node___rcu_parent.__parent', target: null },
      { program: 'fexit/sysfs_kf_write', kind: 'byte_off', local: 'struct kernfs_node___rcu_parent.__parent', target: null },
      { program: 'fexit/sysfs_kf_write', kind: 'byte_off', local: 'struct task_struct.flags', target: 'struct task_struct.flags (0:4 @ offset 44)' },
    ]);
  });

  it('fails a read that lands nowhere, but not one whose program tests the field first', () => {
    expect(unresolved(relocations).map((r) => r.local)).toEqual(['struct snd_pcm___sd.card']);
  });

  it('names the kernel structs read, flavours dropped, and holds in the target those the module dump defines', () => {
    expect(structsRead(relocations)).toEqual(['kernfs_node', 'snd_pcm', 'snd_pcm_hw_params', 'snd_pcm_substream', 'task_struct']);
    const dump = 'struct snd_pcm {\n\tint device;\n};\nstruct snd_pcm_substream {\n\tint number;\n};\nstruct task_struct;\n';
    expect(targetSource('module.h', dump, ['snd_pcm', 'snd_pcm_substream', 'task_struct'])).toBe(
      '#include "module.h"\nstruct snd_pcm shadowd_core_check_0;\nstruct snd_pcm_substream shadowd_core_check_1;\n',
    );
  });

  it('takes a class object\'s modules from its class\'s tapModules', () => {
    expect(objectModules('sound-class')).toEqual(['snd', 'snd-pcm']);
    expect(objectModules('block-class')).toEqual([]);
    // The network class's functions are all in vmlinux (vlan_vid_add too: vlan_core.c is built in with 8021q a module).
    expect(objectModules('netdev-class')).toEqual([]);
    expect(objectModules('no-such-class')).toEqual([]);
  });
});
