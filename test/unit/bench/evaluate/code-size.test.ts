import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { shadowdSizes } from '../../../../bench/evaluate/code-size.js';

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'shadowd-size-'));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

describe('shadowdSizes', () => {
  it('splits the repository by class (daemon folder, taps, helper files, faults apart) and generic parts', () => {
    const repo = tree({
      'daemon/classes/net/a.ts': 'a;\nb;\n// c\n',
      'daemon/classes/net/sub/b.ts': 'x;\n',
      'daemon/classes/netx/c.ts': 'not net;\n',
      'bpf/net.bt': 'kfunc:x { }\n',
      'kmod/sh_net.c': 'int a;\n',
      'kmod/sh_net_restart.c': 'int b;\nint c;\n',
      'kmod/sh_net_fault.c': 'int f;\n',
      'kmod/sh_netx.c': 'int generic_to_net;\n',
      'kmod/sh_restart.c': 'int g;\n',
      'kmod/shadow_helper.h': 'int h;\n',
      'kmod/shadow_helper.mod.c': 'int built;\n',
      'kmod/Module.symvers': 'not source\n',
      'daemon/core/m.ts': 'm;\n',
      'daemon/service/s.ts': 's;\n',
      'daemon/control/c.ts': 'c;\n',
      'daemon/main.ts': 'main;\n',
      'cli/shadowctl.ts': 'cli;\n',
    });
    const s = shadowdSizes(repo, [{ id: 'net', tapProgram: join(repo, 'bpf/net.bt') }]);
    const net = s.classes[0]!;
    expect(net.cls).toBe('net');
    expect([net.daemon.code, net.daemon.files]).toEqual([3, ['daemon/classes/net/a.ts', 'daemon/classes/net/sub/b.ts']]);
    expect([net.taps.code, net.taps.files]).toEqual([1, ['bpf/net.bt']]);
    expect([net.helper.code, net.helper.files]).toEqual([3, ['kmod/sh_net.c', 'kmod/sh_net_restart.c']]);
    expect([net.faults.code, net.faults.files]).toEqual([1, ['kmod/sh_net_fault.c']]);
    expect(s.generic.helper.files).toEqual(['kmod/sh_netx.c', 'kmod/sh_restart.c', 'kmod/shadow_helper.h']);
    expect(s.generic.core.code).toBe(1);
    expect(s.generic.service.files).toEqual(['cli/shadowctl.ts', 'daemon/control/c.ts', 'daemon/main.ts', 'daemon/service/s.ts']);
  });
});
