// The kernel report parser on /dev/kmsg output recorded in the guest
// (test/fixtures/kmsg, by test/vm/guest/record-kmsg.sh).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { NET_DECLARATION } from '../../../daemon/classes/net/net-declaration.js';
import { KernelFaultParser, parseKernelFaults as parseWith, parseKmsgRecord, splitKmsgText, type KmsgRecord } from '../../../daemon/core/kernel-faults.js';

/** The network class's rule (its TX watchdog) beside the generic oops, BUG and WARN, as the daemon runs them. */
const RULES = NET_DECLARATION.kernelLogRules;
const parseKernelFaults = (records: readonly (string | KmsgRecord)[]): ReturnType<typeof parseWith> => parseWith(records, RULES);

const fixture = (name: string): string[] => splitKmsgText(readFileSync(new URL(`../../fixtures/kmsg/${name}.kmsg`, import.meta.url), 'utf8'));

describe('kmsg records', () => {
  it('reads facility, level, sequence, time, text and dictionary, undoing the escapes', () => {
    const [raw] = fixture('tx-timeout').filter((r) => r.includes('NETDEV WATCHDOG'));
    expect(parseKmsgRecord(raw!)).toEqual({
      facility: 0,
      level: 2,
      seq: 448,
      usec: 52927966,
      text: 'e1000 0000:00:04.0 eth0: NETDEV WATCHDOG: CPU: 1: transmit queue 0 timed out 8244 ms',
      dict: { SUBSYSTEM: 'pci', DEVICE: '+pci:0000:00:04.0' },
    });
    expect(parseKmsgRecord('12,7,100,-;a\\x5cb\\x0ac\n')).toMatchObject({ facility: 1, level: 4, text: 'a\\b\nc' });
    expect(parseKmsgRecord('4,5,6,-,caller=T1;x')).toMatchObject({ seq: 5, text: 'x' });
  });

  it('refuses what is not a record', () => {
    for (const bad of ['', 'hello', '4,x,6,-;x', '4,5;x', ' SUBSYSTEM=pci']) expect(parseKmsgRecord(bad)).toBeNull();
  });

  it('splits saved /dev/kmsg text into records with their dictionary lines', () => {
    const records = fixture('tx-timeout');
    expect(records).toHaveLength(4);
    expect(records[1]).toMatch(/^2,448,.*\n SUBSYSTEM=pci\n DEVICE=\+pci:0000:00:04\.0$/);
  });
});

describe('kernel failure reports', () => {
  it('a WARN in a module: blamed on the [module] of its WARNING line', () => {
    const faults = parseKernelFaults(fixture('warn'));
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({
      kind: 'warn',
      module: 'fault_fixture',
      device: null,
      seq: 399,
      startedMsBefore: 0,
      detail: 'WARNING: CPU: 0 PID: 239 at /work/main/test/vm/fault-fixture/fault_fixture.c:49 fault_fixture_init+0x2c/0x1000 [fault_fixture]',
    });
    expect(faults[0]!.lines[0]).toMatch(/^WARNING: CPU/);
    expect(faults[0]!.lines.at(-1)).toMatch(/^---\[ end trace/);
  });

  it('a WARN in core code called by a driver: blamed on the first reliable call-trace frame with a module', () => {
    const faults = parseKernelFaults(fixture('ring-warn'));
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({
      kind: 'warn',
      module: 'pcnet32',
      detail: 'WARNING: CPU: 0 PID: 265 at kernel/dma/mapping.c:533 dma_free_attrs+0x3c/0x60 (called from pcnet32_set_ringparam+0x768/0x860 [pcnet32])',
    });
  });

  it('an oops (BUG: then Oops:) in a module: one report, blamed on its RIP line', () => {
    const faults = parseKernelFaults(fixture('oops'));
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({
      kind: 'oops',
      module: 'fault_fixture',
      detail: 'BUG: kernel NULL pointer dereference, address: 0000000000000000 at fault_fixture_init+0x54/0x1000 [fault_fixture]',
    });
    expect(faults[0]!.lines).toContain('Oops: 0000 [#1] PREEMPT SMP NOPTI');
    // The register dump printed again after the end line opens nothing.
    expect(fixture('oops').filter((r) => r.includes('RIP: 0010:'))).toHaveLength(2);
  });

  it('the TX watchdog (Debian 6.1.192 netdev_crit form): the device, its driver and how long the queue was stuck', () => {
    const faults = parseKernelFaults(fixture('tx-timeout'));
    expect(faults).toEqual([
      {
        kind: 'tx-timeout',
        cls: 'net',
        module: null,
        device: 'eth0',
        driverName: 'e1000',
        busName: '0000:00:04.0',
        detail: 'NETDEV WATCHDOG: eth0 (e1000): transmit queue 0 timed out 8244 ms',
        usec: 52927966,
        seq: 448,
        startedMsBefore: 8244,
        lines: ['e1000 0000:00:04.0 eth0: NETDEV WATCHDOG: CPU: 1: transmit queue 0 timed out 8244 ms'],
      },
    ]);
    // A device without a parent device has no driver and bus prefix.
    expect(parseKernelFaults(['2,1,5,-;veth0 (unregistering): NETDEV WATCHDOG: CPU: 1: transmit queue 3 timed out 5004 ms'])[0]).toMatchObject({
      device: 'veth0',
      driverName: null,
      busName: '',
      startedMsBefore: 5004,
    });
  });

  it('the TX watchdog of upstream 6.1 to 6.8 (a WARN_ONCE): one report, its own WARN folded in', () => {
    // Lines as net/sched/sch_generic.c of upstream 6.1 prints them (WARN_ONCE(1, "NETDEV WATCHDOG: %s (%s): transmit queue %u timed out\n")),
    // around the WARN body recorded in the guest; Debian's 6.1 prints the netdev_crit form instead.
    const body = fixture('ring-warn').filter((r) => !/WARNING: CPU/.test(r) && !/cut here/.test(r));
    const records = [
      '4,1,100,-;------------[ cut here ]------------',
      '6,2,101,-;NETDEV WATCHDOG: eth0 (e1000): transmit queue 0 timed out',
      '4,3,102,-;WARNING: CPU: 0 PID: 0 at net/sched/sch_generic.c:525 dev_watchdog+0x21f/0x230',
      ...body,
    ];
    const faults = parseKernelFaults(records);
    expect(faults).toHaveLength(1);
    expect(faults[0]).toMatchObject({ kind: 'tx-timeout', device: 'eth0', driverName: 'e1000', usec: 101, startedMsBefore: 0 });
    expect(parseKernelFaults(['6,2,101,-;NETDEV WATCHDOG: eth1 (e100): transmit queue 1 timed out 5120 ms'])[0]).toMatchObject({
      device: 'eth1',
      startedMsBefore: 5120,
    });
  });

  it('reports one after the other in one stream, and a watchdog line in the middle of another report', () => {
    const all = ['warn', 'tx-timeout', 'ring-warn', 'oops'].flatMap(fixture);
    expect(parseKernelFaults(all).map((f) => [f.kind, f.module ?? f.device])).toEqual([
      ['warn', 'fault_fixture'],
      ['tx-timeout', 'eth0'],
      ['warn', 'pcnet32'],
      ['oops', 'fault_fixture'],
    ]);
    const warn = fixture('warn');
    const watchdog = fixture('tx-timeout')[1]!;
    const mixed = [...warn.slice(0, 10), watchdog, ...warn.slice(10)];
    expect(parseKernelFaults(mixed).map((f) => [f.kind, f.module ?? f.device])).toEqual([
      ['tx-timeout', 'eth0'],
      ['warn', 'fault_fixture'],
    ]);
  });

  it('does not blame a module on a frame the unwinder only guessed ("? ")', () => {
    // The recorded WARN with its one module frame marked unreliable: only core code is left.
    const guessed = fixture('ring-warn').map((r) => r.replace('; pcnet32_set_ringparam', '; ? pcnet32_set_ringparam'));
    expect(parseKernelFaults(guessed)).toMatchObject([{ kind: 'warn', module: null, detail: expect.not.stringContaining('called from') as string }]);
  });

  it('ignores what userspace writes to /dev/kmsg, however it looks', () => {
    const spoof = fixture('ring-warn').map((r) => r.replace(/^(\d+),/, (_, p: string) => `${Number(p) | 8},`));
    expect(parseKernelFaults(spoof)).toEqual([]);
    expect(parseKernelFaults(['12,1,1,-;e1000 0000:00:04.0 eth0: NETDEV WATCHDOG: CPU: 0: transmit queue 0 timed out 1 ms'])).toEqual([]);
  });

  it('keeps a report without an end line open until flushed or the next report', () => {
    const cut = fixture('ring-warn').filter((r) => !r.includes('end trace'));
    const parser = new KernelFaultParser(RULES);
    const early = cut.flatMap((r) => parser.push(parseKmsgRecord(r)!));
    expect(early).toEqual([]);
    expect(parser.pending).toBe(true);
    expect(parser.flush()).toMatchObject([{ kind: 'warn', module: 'pcnet32' }]);
    expect(parser.pending).toBe(false);
    // The next report completes it as well.
    expect(parseKernelFaults([...cut, ...fixture('oops')]).map((f) => f.module)).toEqual(['pcnet32', 'fault_fixture']);
  });

  it('bounds the lines it keeps of an endless report', () => {
    const [head, ...rest] = fixture('warn').filter((r) => !r.includes('end trace') && !r.includes('cut here') && !r.includes('taint'));
    const filler = Array.from({ length: 1000 }, (_, i) => `4,${10000 + i},1,-; ? filler_${i}+0x1/0x2`);
    const faults = parseKernelFaults([head!, ...rest, ...filler]);
    expect(faults[0]!.lines.length).toBeLessThanOrEqual(200);
    expect(faults[0]!.module).toBe('fault_fixture');
  });
});
