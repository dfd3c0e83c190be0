// Interface names: the kernel's rule (dev_valid_name), and which of them the
// class may hand to ip, ethtool, tc and bridge as an argument.
import { describe, expect, it } from 'vitest';
import { interfaceArgProblem, isInterfaceName } from '../../../../daemon/classes/net/interface-name.js';

describe('interface names', () => {
  it('takes what the kernel takes: 1-15 bytes, no "/", ":", whitespace or controls, not "." or ".."', () => {
    for (const ok of ['eth0', 'enp0s3', 'a', 'x'.repeat(15), 'eth0.5', 'br-lan', '-h']) expect(isInterfaceName(ok), ok).toBe(true);
    for (const bad of ['', 'x'.repeat(16), 'é'.repeat(8), 'a/b', 'a:b', 'a b', 'a\tb', 'a\nb', 'a\x1bb', 'a\x7fb', '.', '..']) expect(isInterfaceName(bad), bad).toBe(false);
  });

  it('gives no program a name it could read as an option', () => {
    expect(interfaceArgProblem('eth0')).toBeNull();
    expect(interfaceArgProblem('br-lan')).toBeNull();
    for (const name of ['-h', '-s', '--help', '-']) expect(interfaceArgProblem(name), name).toMatch(/starts with '-'/);
    for (const name of ['', '..', 'a/b', 'x'.repeat(16)]) expect(interfaceArgProblem(name), name).toMatch(/is not an interface name/);
  });
});
