// The precompiled taps prototype (issue 15) against bpftrace in the guest,
// for the sound class: its CO-RE object (bpf/libbpf/sound-class.bpf.c:
// fentry and fexit programs on the snd and snd_pcm modules, built against
// 6.1's BTF) under taps-loader prints the very records bpf/sound-class.bt
// prints under bpftrace, ts= aside, over the same workload on an ES1370
// card (guest/libbpf-sound.ts: driver load, amixer sset, a tone played and
// drained with aplay, unbind and bind); the sound reducer reads the stream's
// life from the loader's records. Prints each tool's time to attached and to
// live, and its peak resident memory. On 6.1 by default, on 6.12 with
// SHADOWD_GUEST_KERNEL=6.12 (the same object: CO-RE relocates it).
//
// Not exercised here (no fault, no interactive player): pcm_pause and
// pcm_drain_failed, whose records the host tests print
// (test/unit/bpf/libbpf/sound-format.test.ts). On 6.12, snd_card_free and
// snd_card_free_when_closed call the body GCC split off snd_card_disconnect
// (snd_card_disconnect.part.0) directly: neither tool sees a card freed by
// its driver's unbind there, so card_disconnect is required on 6.1 only.
//
// A prototype: it runs only with SHADOWD_LIBBPF_TAPS=1, so `npm test` (CI)
// is not held to it yet. The guest half is guest/libbpf-sound.ts, run from
// dist/ (`npx tsc -p tsconfig.json` first); side-by-side.ts holds what every
// class's run must show.
import { beforeAll, describe, expect, it } from 'vitest';
import { reduceSoundEvent } from '../../../daemon/classes/sound/sound-reducer.js';
import { parseTapRecord } from '../../../daemon/core/tap-record.js';
import type { TapsBuild } from '../rig/taps-build.js';
import type { SideBySideResult } from '../guest/tap-side-by-side.js';
import { LIBBPF_TAPS_ENABLED, prepareSideBySide, runSideBySide } from './side-by-side.js';

interface Result extends SideBySideResult {
  steps: string[];
}

/** sound-class.bpf.c's programs: one for each probe of the .bt but the kretprobes' kprobes, which an fexit needs not. */
const LIBBPF_PROGRAMS = 16;

describe.runIf(LIBBPF_TAPS_ENABLED)('the sound class taps from a precompiled CO-RE object', () => {
  let taps: TapsBuild;

  beforeAll(async () => {
    taps = await prepareSideBySide('libbpf-sound');
  });

  it('prints what bpftrace prints, attached in a fraction of its time and memory', { timeout: 300_000 }, async () => {
    const res = await runSideBySide<Result>({
      name: 'libbpf-sound',
      prefix: 'LIBBPF_SOUND_RESULT',
      taps,
      object: 'sound-class',
      devices: ['es1370'],
      probes: { libbpf: LIBBPF_PROGRAMS, bpftrace: null },
    });
    console.log(`steps: ${res.steps.join('; ')}\nrecords:\n  ${res.libbpf.records.map((r) => r.line).join('\n  ')}`);

    const events = res.libbpf.records.map((x) => parseTapRecord(x.line));
    const calls = events.map((e) => e.call);
    // The card registered by the driver's load and again by the bind.
    expect(events.filter((e) => e.call === 'card_register' && e.nums['ret'] === 0)).toHaveLength(2);
    const card = events.find((e) => e.call === 'card_register')!.nums['card'];
    if (res.kernel.startsWith('6.1.')) expect(calls).toContain('card_disconnect');
    // The mixer write, and the value change it made.
    expect(events.some((e) => e.call === 'ctl_write' && e.nums['card'] === card && e.nums['ret'] === 0 && e.comm === 'amixer')).toBe(true);
    expect(events.some((e) => e.call === 'ctl_notify' && e.nums['card'] === card)).toBe(true);

    // aplay's stream, as the sound reducer reads it from the loader's records, in order: opened
    // first and closed last, and between them (alsa-lib sets sw_params and prepares more than
    // once, and drops the drained stream again before its hw_free) each step of its life.
    const stream = events
      .filter((e) => e.comm === 'aplay' || (e.call === 'pcm_stop' && e.nums['card'] === card))
      .flatMap((e) => reduceSoundEvent(e))
      .flatMap((a) => (a.kind === 'pcm' ? [a] : []));
    const ops = stream.map((a) => (a.change.op === 'state' ? `state:${a.change.state}` : a.change.op));
    const life = ['open', 'hw_params', 'sw_params', 'state:PREPARED', 'state:RUNNING', 'drain', 'state:SETUP', 'hw_free', 'close'];
    expect([ops[0], ops.at(-1)], ops.join(' ')).toEqual(['open', 'close']);
    let next = 0;
    for (const op of ops) if (op === life[next]) next++;
    expect(life.slice(0, next), ops.join(' ')).toEqual(life);
    expect(new Set(stream.map((a) => JSON.stringify(a.at)))).toEqual(new Set([JSON.stringify({ card, dev: 0, stream: 0, sub: 0 })]));
    // The tone's parameters (guest/libbpf-sound.ts: stereo S16_LE at 44.1 kHz).
    expect(stream.find((a) => a.change.op === 'hw_params')?.change).toMatchObject({ params: { access: 'RW_INTERLEAVED', format: 'S16_LE', channels: 2, rate: 44100 } });
  });
});
