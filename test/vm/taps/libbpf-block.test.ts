// The precompiled taps prototype (issue 15) against bpftrace in the guest:
// the disk class's CO-RE object (bpf/libbpf/block-class.bpf.c, built against
// 6.1's BTF) under taps-loader prints the very records bpf/block-class.bt
// prints under bpftrace, ts= aside, over the same sysfs writes and disks
// added and removed (a PIIX disk and a virtio disk, each controller unbound
// and bound again); the daemon's reader takes every line; a hostile comm and
// a hostile kernel object name cannot break the loader's line format. Prints
// each tool's time to attached and to live, and its peak resident memory.
// On 6.1 by default, on 6.12 with SHADOWD_GUEST_KERNEL=6.12 (the same object:
// CO-RE relocates it).
//
// A prototype: it runs only with SHADOWD_LIBBPF_TAPS=1, so `npm test` (CI)
// is not held to it yet. The guest half is guest/libbpf-block.ts, run from
// dist/ (`npx tsc -p tsconfig.json` first); the taps are built here
// (taps-build.ts: clang, bpftool, libbpf-dev); side-by-side.ts holds what
// every class's run must show.
import { writeFileSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { reduceBlockEvent } from '../../../daemon/classes/block/block-reducer.js';
import { parseTapRecord } from '../../../daemon/core/tap-record.js';
import type { TapsBuild } from '../rig/taps-build.js';
import type { SideBySideResult } from '../guest/tap-side-by-side.js';
import { LIBBPF_TAPS_ENABLED, prepareSideBySide, runSideBySide } from './side-by-side.js';

interface Result extends SideBySideResult {
  hostileComm: Record<'libbpf' | 'bpftrace', string[]>;
  hostileName: Record<'libbpf' | 'bpftrace', string[]>;
}

describe.runIf(LIBBPF_TAPS_ENABLED)('the disk class taps from a precompiled CO-RE object', () => {
  let taps: TapsBuild;

  beforeAll(async () => {
    taps = await prepareSideBySide('libbpf-block');
  });

  it('prints what bpftrace prints, attached in a fraction of its time and memory', { timeout: 300_000 }, async () => {
    const res = await runSideBySide<Result>({
      name: 'libbpf-block',
      prefix: 'LIBBPF_BLOCK_RESULT',
      taps,
      object: 'block-class',
      devices: ['piix-ide', 'virtio-blk'],
      probes: { libbpf: 3, bpftrace: 3 },
    });
    // SHADOWD_RECORD_BLOCK_TAPS=FILE keeps bpftrace's records (the hostile writers' apart) as the unit tests' fixture (test/fixtures/block/README.md).
    const record = process.env['SHADOWD_RECORD_BLOCK_TAPS'];
    if (record) writeFileSync(record, res.bpftrace.records.map((x) => `${x.line}\n`).join(''));
    console.log(`hostile comm:\n  ${[...res.hostileComm.libbpf, ...res.hostileComm.bpftrace].join('\n  ')}`);
    console.log(`hostile name:\n  ${[...res.hostileName.libbpf, ...res.hostileName.bpftrace].join('\n  ')}`);

    // What the workload makes, as the block reducer reads it from the loader's records.
    const events = res.libbpf.records.map((x) => parseTapRecord(x.line));
    const actions = events.flatMap((e) => reduceBlockEvent(e));
    const added = actions.filter((a) => a.kind === 'added').map((a) => a.name);
    const removed = actions.filter((a) => a.kind === 'removed').map((a) => a.name);
    // Each disk added by its driver's load and again after the bind (under its old name or a new one), removed once by the unbind.
    const sdAdded = added.filter((n) => n.startsWith('sd'));
    const vdAdded = added.filter((n) => n.startsWith('vd'));
    expect(sdAdded, JSON.stringify(actions)).toHaveLength(2);
    expect(vdAdded, JSON.stringify(actions)).toHaveLength(2);
    const [sd, vd] = [sdAdded[0]!, vdAdded[0]!];
    expect(removed.sort()).toEqual([sd, vd].sort());
    // The async SCSI scan adds the PIIX disk from a kernel worker.
    expect(events.some((e) => e.call === 'disk_add' && e.strs['name']?.startsWith('sd') && e.nums['kthread'] === 1 && e.comm.startsWith('kworker'))).toBe(true);
    const writes = actions.flatMap((a) => (a.kind === 'write' ? [`${a.target.kind}:${'name' in a.target ? a.target.name : a.target.address}:${a.attr}`] : []));
    for (const disk of [sd, vd]) {
      for (const attr of ['read_ahead_kb', 'scheduler', 'fifo_batch']) expect(writes).toContain(`disk:${disk}:${attr}`);
    }
    expect(writes).toEqual(expect.arrayContaining([expect.stringMatching(/^scsi:\d+:\d+:\d+:\d+:timeout$/), expect.stringMatching(/^scsi:\d+:\d+:\d+:\d+:cache_type$/)]));
    // What was written, carried by the taps (the first 16 bytes): a number, a scheduler's name; a longer value is not carried.
    const written = (attr: string, disk: string): (string | null)[] =>
      actions.flatMap((a) => (a.kind === 'write' && a.attr === attr && 'name' in a.target && a.target.name === disk ? [a.value] : []));
    expect(written('read_ahead_kb', vd)).toEqual(['256']);
    expect(written('scheduler', vd)).toEqual(['none', 'mq-deadline']);
    expect(written('fifo_batch', vd)).toEqual(['8']);
    expect(actions.flatMap((a) => (a.kind === 'write' && a.attr === 'timeout' ? [a.value] : []))).toEqual(['31']);
    expect(actions.flatMap((a) => (a.kind === 'write' && a.attr === 'cache_type' ? [a.value] : []))).toEqual([null]);
    // The refused scheduler: printed with its errno, reduced to nothing.
    expect(events.some((e) => e.call === 'sysfs_write' && e.strs['attr'] === 'scheduler' && (e.nums['ret'] ?? 0) < 0)).toBe(true);

    // A comm with a newline, a space and '=': one line from the loader, the name escaped, the fields intact.
    expect(res.hostileComm.libbpf).toHaveLength(1);
    const comm = parseTapRecord(res.hostileComm.libbpf[0]!);
    expect(comm.comm).toBe('x\\x0ay z=1');
    expect(comm.strs).toMatchObject({ attr: 'read_ahead_kb', kobj: 'queue', parent: sd });
    // bpftrace prints the newline raw (its JSON escapes it; its text output would break the line).
    expect(res.hostileComm.bpftrace.map((l) => parseTapRecord(l).comm)).toEqual(['x\ny z=1']);
    // A kernel object named x=y: its '=' escaped, so the token reads as one.
    expect(res.hostileName.libbpf).toHaveLength(1);
    expect(parseTapRecord(res.hostileName.libbpf[0]!).strs).toMatchObject({ attr: 'tx_queue_len', kobj: 'x\\x3dy' });
    expect(parseTapRecord(res.hostileName.bpftrace[0]!).strs['kobj']).toBe('x=y');
  });
});
