// The sound class's kernel log rules: the helper's guard holding a prepare
// or a hw_params the driver failed, or taking a failed start as done
// (kmod/sh_sound_ops.c prints the line, naming the entry point).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { HW_PARAMS_HELD_RULE, parseHeldCall, PREPARE_HELD_RULE, START_HELD_RULE } from '../../../../daemon/classes/sound/prepare-held-log.js';
import { SOUND_DECLARATION } from '../../../../daemon/classes/sound/sound-declaration.js';
import { parseKernelFaults } from '../../../../daemon/core/kernel-faults.js';

const PREPARE_LINE = 'shadow_helper: sound:card1: prepare of pcmC1D0p failed: error -5; the caller waits up to 5000 ms for a restart';
const HW_PARAMS_LINE = 'shadow_helper: sound:card1: hw_params of pcmC1D0p failed: error -5; the caller waits up to 5000 ms for a restart';
const TRIGGER_LINE = 'shadow_helper: sound:card1: trigger of pcmC1D0p failed: error -5; the stream waits up to 5000 ms for a restart';

describe('the guard\'s held-call line', () => {
  it('gives the card, the entry point, the PCM, the error and the hold', () => {
    expect(parseHeldCall(PREPARE_LINE)).toEqual({ card: 'card1', entry: 'prepare', pcm: 'pcmC1D0p', error: -5, holdMs: 5000 });
    expect(parseHeldCall('shadow_helper: sound:card12: hw_params of pcmC12D3c failed: error -110; the caller waits up to 60000 ms for a restart\n')).toEqual({
      card: 'card12', entry: 'hw_params', pcm: 'pcmC12D3c', error: -110, holdMs: 60000,
    });
    expect(parseHeldCall(TRIGGER_LINE)).toEqual({ card: 'card1', entry: 'trigger', pcm: 'pcmC1D0p', error: -5, holdMs: 5000 });
  });

  it('is nothing else', () => {
    for (const other of [
      'shadow_helper: sound:card0: fault fail-prepare injected',
      'shadow_helper: recovery r1: sound:card0 restarted in 33 ms (mixer:skip,streams:ok,open:skip)',
      'snd_hda_intel 0000:00:04.0: IRQ timing workaround is activated for card #0. Suggest a bigger bdl_pos_adj.',
      `fake: ${PREPARE_LINE}`,
      `fake: ${HW_PARAMS_LINE}`,
      'shadow_helper: sound:card0: prepare of pcmC0D0p failed: error -5',
      'shadow_helper: sound:card0: hw_params of pcmC0D0p failed: error -5',
      // Entry points the guard does not hold.
      'shadow_helper: sound:card0: hw_free of pcmC0D0p failed: error -5; the caller waits up to 5000 ms for a restart',
      'shadow_helper: sound:card0: hw-params of pcmC0D0p failed: error -5; the caller waits up to 5000 ms for a restart',
      // A start is not a caller that waits, nor a prepare a stream that waits.
      'shadow_helper: sound:card0: trigger of pcmC0D0p failed: error -5; the caller waits up to 5000 ms for a restart',
      'shadow_helper: sound:card0: prepare of pcmC0D0p failed: error -5; the stream waits up to 5000 ms for a restart',
      `fake: ${TRIGGER_LINE}`,
    ]) {
      expect(parseHeldCall(other), other).toBeNull();
      expect(PREPARE_HELD_RULE.line!(other), other).toBeNull();
      expect(HW_PARAMS_HELD_RULE.line!(other), other).toBeNull();
      expect(START_HELD_RULE.line!(other), other).toBeNull();
    }
  });
});

/** Each rule: its kind, the line it reads, what it makes of it, and the other rule's line, which it leaves. */
const RULES = [
  {
    rule: PREPARE_HELD_RULE,
    kind: 'prepare-failed',
    line: PREPARE_LINE,
    detail: 'the driver failed to prepare pcmC1D0p (error -5); the helper holds the application\'s call up to 5000 ms for the restart',
    other: HW_PARAMS_LINE,
  },
  {
    rule: HW_PARAMS_HELD_RULE,
    kind: 'hw-params-failed',
    line: HW_PARAMS_LINE,
    detail: 'the driver failed to set up pcmC1D0p\'s hardware parameters (hw_params, error -5); the helper holds the application\'s call up to 5000 ms for the restart',
    other: PREPARE_LINE,
  },
  {
    rule: START_HELD_RULE,
    kind: 'start-failed',
    line: TRIGGER_LINE,
    detail: 'the driver failed to start pcmC1D0p (trigger, error -5); the helper holds the stream as started up to 5000 ms for the restart',
    other: HW_PARAMS_LINE,
  },
];

describe.each(RULES)('the rule for $kind', ({ rule, kind, line, detail, other }) => {
  it('reports its entry point\'s held call as its own kind, naming the card and what failed', () => {
    expect(rule.kind).toBe(kind);
    expect(rule.line!(line)).toEqual({ device: 'card1', driverName: null, startedMsBefore: 0, detail });
  });

  it('leaves the other entry point\'s line to its own rule', () => {
    expect(rule.line!(other)).toBeNull();
  });
});

describe('the sound class\'s kernel log rules, as the daemon runs them', () => {
  const record = (seq: number, text: string): string => `4,${seq},${seq * 1000},-;${text}`;

  it('turns each held call into one report of its own kind, the card named', () => {
    const faults = parseKernelFaults([record(1, HW_PARAMS_LINE), record(2, 'shadow_helper: recovery r1: sound:card1 restarted in 33 ms (mixer:skip,streams:skip,open:skip)'), record(3, PREPARE_LINE)], SOUND_DECLARATION.kernelLogRules);
    expect(faults.map((f) => [f.kind, f.cls, f.device, f.seq])).toEqual([
      ['hw-params-failed', 'sound', 'card1', 1],
      ['prepare-failed', 'sound', 'card1', 3],
    ]);
    expect(faults[0]!.lines).toEqual([HW_PARAMS_LINE]);
  });

  it('declares every kind its rules report', () => {
    for (const rule of SOUND_DECLARATION.kernelLogRules) expect(SOUND_DECLARATION.failureKinds, rule.kind).toContain(rule.kind);
  });
});

describe('the line as kmod/sh_sound_ops.c prints it', () => {
  const source = readFileSync(new URL('../../../../kmod/sh_sound_ops.c', import.meta.url), 'utf8');
  /** The guard's format strings (a held call's, a start's) and the entry point names it fills in. */
  const format = /pr_warn_ratelimited\("(sound:card%d: %s of pcmC%dD%d%c failed: [^"]*)\\n"/.exec(source)?.[1];
  const startFormat = /pr_warn_ratelimited\("(sound:card%d: trigger of pcmC%dD%d%c failed: [^"]*)\\n"/.exec(source)?.[1];
  const names = [...(/sh_entry_names\[\] = \{([^}]*)\}/.exec(source)?.[1] ?? '').matchAll(/\] = "([^"]+)"/g)].map((m) => m[1]!);

  /** printf as the kernel would, for the arguments in their order; KBUILD_MODNAME's prefix in front (pr_fmt). */
  const print = (fmt: string, args: (string | number)[]): string => `shadow_helper: ${fmt.replace(/%[a-z]/g, () => String(args.shift()))}`;

  it('is read for each entry point the guard names, each by its own rule', () => {
    expect(format).toBeDefined();
    expect(startFormat).toBeDefined();
    expect(names).toEqual(['prepare', 'hw_params', 'trigger']);
    const rules = { prepare: PREPARE_HELD_RULE, hw_params: HW_PARAMS_HELD_RULE, trigger: START_HELD_RULE } as const;
    for (const name of names) {
      const line = name === 'trigger' ? print(startFormat!, [3, 3, 1, 'c', -110, 5000]) : print(format!, [3, name, 3, 1, 'c', -110, 5000]);
      expect(parseHeldCall(line), line).toEqual({ card: 'card3', entry: name, pcm: 'pcmC3D1c', error: -110, holdMs: 5000 });
      expect(rules[name as keyof typeof rules].line!(line)?.device, line).toBe('card3');
    }
  });
});
