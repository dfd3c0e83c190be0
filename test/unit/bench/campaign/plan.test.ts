import { describe, expect, it } from 'vitest';
import { CAMPAIGN_DEVICES, MOMENTS, planFaults, prng, RESTART_SHARE, splitBoots } from '../../../../bench/campaign/plan.js';

/** The moments of seed 2026's first faults, as its 200-fault campaign ran them (docs/campaign.md, before the restart moment). */
const FIRST_2026_MOMENTS = ['concurrent', 'concurrent', 'concurrent', 'load', 'idle', 'config'];

describe('prng', () => {
  it('gives the same sequence for the same seed, another for another seed, all in [0, 1)', () => {
    const a = prng(42);
    const b = prng(42);
    const c = prng(43);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 1000 }, () => c())).not.toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    // Roughly uniform: each tenth holds 5-15 % of the draws.
    for (let d = 0; d < 10; d++) {
      const n = xs.filter((x) => Math.floor(x * 10) === d).length;
      expect(n).toBeGreaterThan(50);
      expect(n).toBeLessThan(150);
    }
  });
});

describe('planFaults', () => {
  it('is reproducible from the seed, and a shorter plan is a prefix of a longer one', () => {
    expect(planFaults(200, 7)).toEqual(planFaults(200, 7));
    expect(planFaults(200, 8)).not.toEqual(planFaults(200, 7));
    expect(planFaults(200, 7).slice(0, 10)).toEqual(planFaults(10, 7));
  });

  it('takes the classes in turn, so every 3 faults cover net, block and sound', () => {
    const plan = planFaults(30, 1);
    for (let i = 0; i < 30; i += 3) expect(new Set(plan.slice(i, i + 3).map((f) => f.cls))).toEqual(new Set(['net', 'block', 'sound']));
  });

  it('over 200 faults covers every driver, every fault kind of each and every moment, with some sticky faults', () => {
    const plan = planFaults(200, 12345);
    expect(plan.map((f) => f.n)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
    for (const [i, d] of CAMPAIGN_DEVICES.entries()) {
      const mine = plan.filter((f) => f.device === i);
      expect(mine.length, d.driver).toBeGreaterThan(0);
      expect(new Set(mine.map((f) => f.fault)), d.driver).toEqual(new Set(d.faults));
      expect(mine.every((f) => f.driver === d.driver && f.cls === d.cls)).toBe(true);
    }
    expect(new Set(plan.map((f) => f.moment))).toEqual(new Set([...MOMENTS, 'restart']));
    const sticky = plan.filter((f) => f.sticky);
    expect(sticky.length).toBeGreaterThan(5);
    expect(sticky.length).toBeLessThan(40);
  });

  it('draws restarts from a stream of their own: about RESTART_SHARE of the load faults, every other draw as before', () => {
    const plan = planFaults(400, 2026);
    const restarts = plan.filter((f) => f.moment === 'restart').length;
    const load = plan.filter((f) => f.moment === 'load').length;
    expect(restarts / (restarts + load)).toBeGreaterThan(RESTART_SHARE - 0.15);
    expect(restarts / (restarts + load)).toBeLessThan(RESTART_SHARE + 0.15);
    // Read as 'load', the plan is the one the first four moments drew alone: the seed 2026 campaign's first faults, as docs/campaign.md lists them.
    const asLoad = plan.map((f) => (f.moment === 'restart' ? 'load' : f.moment));
    expect(asLoad.slice(0, 6)).toEqual(FIRST_2026_MOMENTS);
  });

  it('keeps to what each device can take: sticky only where allowed, fail-prepare only when idle, the other device of another class', () => {
    const plan = planFaults(500, 99);
    for (const f of plan) {
      const d = CAMPAIGN_DEVICES[f.device]!;
      expect(d.faults).toContain(f.fault);
      if (f.sticky) expect(d.sticky).toBe(true);
      if (f.fault === 'fail-prepare') expect(f.moment).toBe('idle');
      if (f.moment === 'concurrent') expect(CAMPAIGN_DEVICES[f.other!]!.cls).not.toBe(f.cls);
      else expect(f.other).toBeNull();
    }
  });

  it('refuses a count or a seed that is not a whole number in range', () => {
    expect(() => planFaults(0, 1)).toThrow(/--faults/);
    expect(() => planFaults(2.5, 1)).toThrow(/--faults/);
    expect(() => planFaults(10, -1)).toThrow(/--seed/);
    expect(() => planFaults(10, 2 ** 32)).toThrow(/--seed/);
  });
});

describe('splitBoots', () => {
  it('splits the plan into slices of at most perBoot faults, in order', () => {
    const plan = planFaults(205, 3);
    const boots = splitBoots(plan, 50);
    expect(boots.map((b) => b.length)).toEqual([50, 50, 50, 50, 5]);
    expect(boots.flat()).toEqual(plan);
    expect(() => splitBoots(plan, 0)).toThrow(/--per-boot/);
  });
});
