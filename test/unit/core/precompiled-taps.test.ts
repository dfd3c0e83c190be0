// Which program runs the taps: taps-loader when it and every class's
// precompiled object are there (auto) or required (libbpf), bpftrace
// otherwise, with the reason said either way.
import { describe, expect, it } from 'vitest';
import { chooseTapEngine, loaderOf, objectOf } from '../../../daemon/core/precompiled-taps.js';

const classes = [
  { id: 'net', tapProgram: '/opt/shadowd/bpf/netdev-class.bt' },
  { id: 'sound', tapProgram: '/opt/shadowd/bpf/sound-class.bt' },
];

describe('precompiled taps', () => {
  it('finds each class\'s object beside its program, and the loader with them', () => {
    expect(objectOf(classes[0]!)).toBe('/opt/shadowd/bpf/libbpf/build/netdev-class.bpf.o');
    expect(loaderOf(classes[1]!)).toBe('/opt/shadowd/bpf/libbpf/build/taps-loader');
  });

  it('auto: the loader when everything is built, else bpftrace, saying what is missing', () => {
    const all = new Set(['/opt/shadowd/bpf/libbpf/build/taps-loader', '/opt/shadowd/bpf/libbpf/build/netdev-class.bpf.o', '/opt/shadowd/bpf/libbpf/build/sound-class.bpf.o']);
    const engine = chooseTapEngine(classes, 'auto', (p) => all.has(p));
    expect(engine).toMatchObject({ kind: 'libbpf', taps: { loader: '/opt/shadowd/bpf/libbpf/build/taps-loader', fallback: true }, why: 'precompiled objects netdev-class.bpf.o, sound-class.bpf.o' });
    // Required: no bpftrace to fall back on.
    expect(chooseTapEngine(classes, 'libbpf', (p) => all.has(p))).toMatchObject({ kind: 'libbpf', taps: { fallback: false } });
    if (engine.kind === 'libbpf') expect([...engine.taps.objects]).toEqual([['net', '/opt/shadowd/bpf/libbpf/build/netdev-class.bpf.o'], ['sound', '/opt/shadowd/bpf/libbpf/build/sound-class.bpf.o']]);
    all.delete('/opt/shadowd/bpf/libbpf/build/netdev-class.bpf.o');
    expect(chooseTapEngine(classes, 'auto', (p) => all.has(p))).toEqual({
      kind: 'bpftrace',
      why: 'no precompiled taps: /opt/shadowd/bpf/libbpf/build/netdev-class.bpf.o (the net class) missing (npm run build:taps builds them)',
    });
  });

  it('libbpf: refuses to start without them; bpftrace: never looks', () => {
    expect(() => chooseTapEngine(classes, 'libbpf', () => false)).toThrow('--taps libbpf: no precompiled taps: /opt/shadowd/bpf/libbpf/build/taps-loader, ');
    expect(chooseTapEngine(classes, 'bpftrace', () => true)).toEqual({ kind: 'bpftrace', why: 'as configured (--taps bpftrace)' });
  });
});
