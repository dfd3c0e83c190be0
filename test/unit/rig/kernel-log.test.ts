import { describe, expect, it } from 'vitest';
import { consoleProblems, kernelProblems, parseKmsg } from '../../vm/rig/kernel-log.js';

const KMSG = [
  '6,1,0,-;Linux version 6.1.0-56-amd64',
  ' SUBSYSTEM=pci',
  ' DEVICE=+pci:0000:00:03.0',
  '4,2,1500,-;e1000: eth0 NIC Link is Up 1000 Mbps Full Duplex\\x0a',
  '4,3,2000,-;WARNING: CPU: 1 PID: 99 at net/core/dev.c:10937 free_netdev+0x1/0x2',
  '4,4,2001,c;Modules linked in: e1000',
  'garbage without a separator',
  '1,5,3000,-;BUG: unable to handle page fault for address: 0000000000000008',
].join('\n');

describe('guest kernel log', () => {
  it('parses /dev/kmsg records and skips continuation lines', () => {
    const lines = parseKmsg(KMSG);
    expect(lines.map((l) => l.level)).toEqual([6, 4, 4, 4, 1]);
    expect(lines[1]?.text).toBe('e1000: eth0 NIC Link is Up 1000 Mbps Full Duplex\n');
    expect(lines[4]?.usec).toBe(3000);
  });

  it('finds WARN and BUG reports with their context and nothing in a clean log', () => {
    const problems = kernelProblems(parseKmsg(KMSG));
    // The BUG follows within the WARNING's context, so it is reported as part of it.
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatch(/^Linux version 6.1.0-56-amd64\ne1000: eth0 NIC Link is Up.*\n\nWARNING: CPU: 1 .*\nModules linked in: e1000\nBUG:/);
    const far = [KMSG, ...Array.from({ length: 20 }, (_, i) => `6,${10 + i},4000,-;filler ${i}`), '0,40,5000,-;Kernel panic - not syncing'];
    expect(kernelProblems(parseKmsg(far.join('\n')))).toHaveLength(2);
    expect(kernelProblems(parseKmsg(KMSG.split('\n').slice(0, 4).join('\n')))).toEqual([]);
  });

  it('finds a panic on the serial console', () => {
    const text = '[    3.1] sysrq: Trigger a crash\n[    3.2] Kernel panic - not syncing: sysrq triggered crash\n';
    expect(consoleProblems(text)).toEqual(['[    3.2] Kernel panic - not syncing: sysrq triggered crash']);
    expect(consoleProblems('SeaBIOS (version 1.16.2)\nSHADOWD_GUEST_EXIT=0\n')).toEqual([]);
  });
});
