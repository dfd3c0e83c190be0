// The taps runner's loading of a class's tapModules (the sound class's
// snd and snd-pcm) before its bpftrace attaches, with a stand-in for
// bpftrace (test/unit/fake/bpftrace.sh) that prints a recorded attach; and
// the start around bpftrace's spawn (spawned, abort), with one that compiles
// for as long as a test wants.
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NET_DECLARATION } from '../../../daemon/classes/net/net-declaration.js';
import type { ClassDeclaration, ClassRuntime } from '../../../daemon/core/device-class.js';
import type { TapEvent } from '../../../daemon/core/tap-record.js';
import { eventClasses, mergePrograms } from '../../../daemon/core/tap-program.js';
import { BLOCK_DECLARATION } from '../../../daemon/classes/block/block-declaration.js';
import { SOUND_DECLARATION } from '../../../daemon/classes/sound/sound-declaration.js';
import { TapsRunner } from '../../../daemon/core/taps-runner.js';
import type { LogFields, Priority } from '../../../daemon/service/log.js';
import { processRunning } from '../fake/process-running.js';

const FAKE = new URL('../fake/bpftrace.sh', import.meta.url).pathname;
const ATTACHED = '{"type": "attached_probes", "data": {"probes": 2}}';

describe('taps runner: a class\'s tap modules', () => {
  let dir: string;
  let logs: { priority: Priority; message: string; fields?: LogFields }[];
  const logger = { log: (priority: Priority, message: string, fields?: LogFields) => void logs.push({ priority, message, fields }) };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'taps-runner-'));
    logs = [];
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const opts = () => ({ logger, bpftrace: FAKE, programDir: dir });

  // A class program whose first line the fake bpftrace prints as bpftrace's attach (the merged program keeps it: definitions come first).
  function decl(id: string, tapModules?: string[]): ClassDeclaration {
    const program = join(dir, `${id}.bt`);
    writeFileSync(program, `${ATTACHED}\nkprobe:${id}_fn { printf("ev=${id}_ev pid=%d\\n", pid); }\n`);
    return { ...NET_DECLARATION, id, tapProgram: program, tapEvents: [`${id}_ev`], ...(tapModules ? { tapModules } : {}) };
  }

  it('loads them before the class attaches, and only for classes that have some', async () => {
    const order: string[] = [];
    const runner = new TapsRunner([decl('sound', ['snd', 'snd-pcm']), decl('net')], {
      ...opts(),
      loadModules: (m) => {
        order.push(`load ${m.join(' ')}`);
        return Promise.resolve();
      },
      ingest: { probesLive: () => Promise.resolve() },
    });
    await runner.start();
    expect(order).toEqual(['load snd snd-pcm']);
    expect(runner.stats().byClass['sound']).toMatchObject({ state: 'attached', probes: 2 });
    await runner.stop();
  });

  it('still attaches when loading fails, and says which modules the taps need', async () => {
    const runner = new TapsRunner([decl('sound', ['snd', 'snd-pcm'])], {
      ...opts(),
      loadModules: () => Promise.reject(new Error('modprobe -a snd snd-pcm: Module snd not found')),
      ingest: { probesLive: () => Promise.resolve() },
    });
    await runner.start();
    expect(runner.stats().byClass['sound']).toMatchObject({ state: 'attached' });
    expect(logs).toContainEqual({
      priority: 'warning',
      message: "the sound class's taps need snd, snd-pcm: modprobe -a snd snd-pcm: Module snd not found",
      fields: { SHADOWD_CLASS: 'sound' },
    });
    await runner.stop();
  });

  it('runs every class in one bpftrace, from one merged program, and gives each class its own events', async () => {
    const runner = new TapsRunner([decl('sound'), decl('net')], { ...opts(), loadModules: () => Promise.resolve(), ingest: { probesLive: () => Promise.resolve() } });
    await runner.start();
    const merged = readFileSync(join(dir, `taps-${process.pid}.bt`), 'utf8');
    expect(merged.match(/^kprobe:/gm)).toHaveLength(2);
    expect(runner.stats()).toMatchObject({ state: 'attached', probes: 2, byClass: { sound: { state: 'attached' }, net: { state: 'attached' } } });
    await runner.stop();
    expect(existsSync(join(dir, `taps-${process.pid}.bt`))).toBe(false);
  });

  it('attaches without a probe the kernel lacks, saying once what the class loses', async () => {
    const missing = { hasFunction: (name: string) => name !== 'sound_fn', hasTracepoint: () => true };
    const sound = decl('sound');
    writeFileSync(sound.tapProgram, `${readFileSync(sound.tapProgram, 'utf8')}kprobe:sound_other { printf("ev=sound_ev pid=%d\\n", pid); }\n`);
    const runner = new TapsRunner([sound, decl('net')], { ...opts(), loadModules: () => Promise.resolve(), probeIndex: () => Promise.resolve(missing), ingest: { probesLive: () => Promise.resolve() } });
    await runner.start();
    const merged = readFileSync(join(dir, `taps-${process.pid}.bt`), 'utf8');
    expect(merged.match(/^kprobe:\w+/gm)).toEqual(['kprobe:sound_other', 'kprobe:net_fn']);
    // The fake bpftrace echoes the program, whose lines after the first are not tap output: only the probe's line is looked at.
    expect(logs.filter((l) => l.fields?.['SHADOWD_PROBE'] !== undefined)).toEqual([
      {
        priority: 'warning',
        message: 'the sound taps: kprobe:sound_fn is not in this kernel; attached without it: the sound shadow gets no ev=sound_ev from it',
        fields: { SHADOWD_CLASS: 'sound', SHADOWD_PROBE: 'kprobe:sound_fn' },
      },
    ]);
    expect(runner.stats()).toMatchObject({ state: 'attached', byClass: { sound: { state: 'attached' }, net: { state: 'attached' } } });
    await runner.stop();
  });

  it('hands each class the events its program prints, and only those', async () => {
    const withEvent = (id: string) => {
      const d = decl(id);
      const event = JSON.stringify({ type: 'printf', data: `ev=${id}_ev kthread=0 pid=7 ts=1 comm=t\n` });
      writeFileSync(d.tapProgram, `${ATTACHED}\n${event}\nkprobe:${id}_fn { printf("ev=${id}_ev pid=%d\\n", pid); }\n`);
      return d;
    };
    const runner = new TapsRunner([withEvent('sound'), withEvent('net')], { ...opts(), loadModules: () => Promise.resolve(), ingest: { probesLive: () => Promise.resolve() } });
    const got: Record<string, string[]> = { sound: [], net: [] };
    const runtime = (cls: string) => ({ applyEvents: (batch: TapEvent[]) => got[cls]!.push(...batch.map((e) => e.call)) }) as unknown as ClassRuntime;
    await runner.start();
    for (let i = 0; i < 50 && runner.stats().events < 2; i++) await new Promise((r) => setTimeout(r, 20));
    runner.attach('sound', runtime('sound'));
    runner.attach('net', runtime('net'));
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual({ sound: ['sound_ev'], net: ['net_ev'] });
    await runner.stop();
  });
});

describe('taps runner: precompiled objects under taps-loader', () => {
  let dir: string;
  const logger = { log: () => undefined };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'taps-runner-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  // A class with a .bt program (read for its events and probe points) and an "object": recorded loader output, one event of the class.
  function withObject(id: string): { decl: ClassDeclaration; object: string } {
    const program = join(dir, `${id}.bt`);
    writeFileSync(program, `kprobe:${id}_fn { printf("ev=${id}_ev pid=%d\\n", pid); }\n`);
    const object = join(dir, `${id}.bpf.o`);
    writeFileSync(object, `${JSON.stringify({ type: 'printf', data: `ev=${id}_ev kthread=0 pid=7 ts=1 comm=t\n` })}\n`);
    return { decl: { ...NET_DECLARATION, id, tapProgram: program, tapEvents: [`${id}_ev`] }, object };
  }

  it('runs every class\'s object in one loader, attached as it says so, and gives each class its own events; no program is merged', async () => {
    const sound = withObject('sound');
    const net = withObject('net');
    // The loader's attached line, as the fake prints it after its argv line: with the first object.
    writeFileSync(sound.object, `{"type": "attached_probes", "data": {"probes": 5}}\n${readFileSync(sound.object, 'utf8')}`);
    const runner = new TapsRunner([sound.decl, net.decl], {
      logger,
      bpftrace: '/nonexistent/bpftrace',
      precompiled: { loader: new URL('../fake/taps-loader.sh', import.meta.url).pathname, objects: new Map([['sound', sound.object], ['net', net.object]]), fallback: false },
      programDir: dir,
      loadModules: () => Promise.resolve(),
      probeIndex: () => Promise.resolve(null),
      // Not called: the loader's attached line means its programs are live.
      ingest: { probesLive: () => Promise.reject(new Error('probesLive is bpftrace\'s')) },
    });
    const got: Record<string, string[]> = { sound: [], net: [] };
    const runtime = (cls: string) => ({ applyEvents: (batch: TapEvent[]) => got[cls]!.push(...batch.map((e) => e.call)) }) as unknown as ClassRuntime;
    await runner.start();
    expect(runner.stats()).toMatchObject({ state: 'attached', probes: 5 });
    for (let i = 0; i < 50 && runner.stats().events < 2; i++) await new Promise((r) => setTimeout(r, 20));
    runner.attach('sound', runtime('sound'));
    runner.attach('net', runtime('net'));
    await new Promise((r) => setTimeout(r, 50));
    expect(got).toEqual({ sound: ['sound_ev'], net: ['net_ev'] });
    expect(existsSync(join(dir, `taps-${process.pid}.bt`))).toBe(false);
    await runner.stop();
  });

  it('refuses to start when a class has no object, naming it', async () => {
    const sound = withObject('sound');
    const net = withObject('net');
    const runner = new TapsRunner([sound.decl, net.decl], {
      logger,
      precompiled: { loader: new URL('../fake/taps-loader.sh', import.meta.url).pathname, objects: new Map([['sound', sound.object]]), fallback: false },
      programDir: dir,
      loadModules: () => Promise.resolve(),
      probeIndex: () => Promise.resolve(null),
    });
    await expect(runner.start()).rejects.toThrow('no precompiled object for the net taps');
    await runner.stop();
  });

  it('runs bpftrace instead when the loader cannot attach (auto), saying why; fails the start when the loader was required', async () => {
    const sound = withObject('sound');
    const net = withObject('net');
    // The loader exits before its attached line: the kernel refused an object.
    const failing = join(dir, 'failing-loader.sh');
    writeFileSync(failing, '#!/bin/sh\necho "taps-loader: cannot load netdev-class.bpf.o: Permission denied" >&2\nexit 1\n');
    chmodSync(failing, 0o755);
    // bpftrace's program: the fake prints it, attached line first.
    for (const d of [sound.decl, net.decl]) writeFileSync(d.tapProgram, `${ATTACHED}\n${JSON.stringify({ type: 'printf', data: `ev=${d.id}_ev kthread=0 pid=7 ts=1 comm=t\n` })}\nkprobe:${d.id}_fn { printf("ev=${d.id}_ev pid=%d\\n", pid); }\n`);
    const logs: string[] = [];
    const make = (fallback: boolean) =>
      new TapsRunner([sound.decl, net.decl], {
        logger: { log: (_p: Priority, message: string) => void logs.push(message) },
        bpftrace: FAKE,
        precompiled: { loader: failing, objects: new Map([['sound', sound.object], ['net', net.object]]), fallback },
        programDir: dir,
        loadModules: () => Promise.resolve(),
        probeIndex: () => Promise.resolve(null),
        ingest: { probesLive: () => Promise.resolve(), initialBackoffMs: 60_000 },
      });
    const auto = make(true);
    await auto.start();
    expect(auto.stats()).toMatchObject({ state: 'attached', probes: 2 });
    expect(logs.find((l) => l.startsWith('taps-loader could not attach'))).toMatch(/^taps-loader could not attach the precompiled taps \(taps-loader exited before attaching \(status 1\): taps-loader: cannot load netdev-class\.bpf\.o: Permission denied\); bpftrace runs them instead$/);
    for (let i = 0; i < 50 && auto.stats().events < 2; i++) await new Promise((r) => setTimeout(r, 20));
    expect(auto.stats().events).toBe(2);
    await auto.stop();
    const required = make(false);
    await expect(required.start()).rejects.toThrow(/taps-loader exited before attaching \(status 1\): taps-loader: cannot load netdev-class\.bpf\.o/);
    await required.stop();
  });
  it('spawns the loader before the kernel\'s probe index is read (the loader names what it leaves out), and is ready once both are', async () => {
    const sound = withObject('sound');
    writeFileSync(sound.object, `{"type": "attached_probes", "data": {"probes": 1}}\n${readFileSync(sound.object, 'utf8')}`);
    let index = (): void => undefined;
    const runner = new TapsRunner([sound.decl], {
      logger,
      precompiled: { loader: new URL('../fake/taps-loader.sh', import.meta.url).pathname, objects: new Map([['sound', sound.object]]), fallback: false },
      programDir: dir,
      loadModules: () => Promise.resolve(),
      probeIndex: () => new Promise((resolve) => (index = () => resolve(null))),
    });
    let ready = false;
    const started = runner.start().then(() => (ready = true));
    await runner.spawned;
    for (let i = 0; i < 100 && runner.stats().state !== 'attached'; i++) await new Promise((r) => setTimeout(r, 20));
    expect(runner.stats()).toMatchObject({ state: 'attached', probes: 1 });
    expect(ready).toBe(false);
    index();
    await started;
    await runner.stop();
  });

  it('keeps a running loader when which probes the kernel lacks cannot be told, and says so', async () => {
    const sound = withObject('sound');
    writeFileSync(sound.object, `{"type": "attached_probes", "data": {"probes": 1}}\n${readFileSync(sound.object, 'utf8')}`);
    const logs: string[] = [];
    const runner = new TapsRunner([sound.decl], {
      logger: { log: (_p: Priority, message: string) => void logs.push(message) },
      precompiled: { loader: new URL('../fake/taps-loader.sh', import.meta.url).pathname, objects: new Map([['sound', sound.object]]), fallback: true },
      programDir: dir,
      loadModules: () => Promise.resolve(),
      probeIndex: () => Promise.reject(new Error('available_filter_functions: Permission denied')),
    });
    await runner.start();
    expect(runner.stats()).toMatchObject({ state: 'attached', probes: 1 });
    expect(logs).toContain('the taps run, but which probes this kernel lacks could not be told: available_filter_functions: Permission denied');
    expect(logs.some((l) => l.startsWith('taps-loader could not attach'))).toBe(false);
    await runner.stop();
  });

  it('runs the loader again without a class none of whose probes the kernel has, saying so', async () => {
    const sound = withObject('sound');
    const net = withObject('net');
    writeFileSync(sound.object, `{"type": "attached_probes", "data": {"probes": 1}}\n${readFileSync(sound.object, 'utf8')}`);
    // As taps-loader does when none of an object's programs attaches.
    const loader = join(dir, 'loader.sh');
    writeFileSync(loader, `#!/bin/sh\ncase "$*" in *net.bpf.o*) echo "taps-loader: none of net.bpf.o's programs attached" >&2; exit 1;; esac\nexec ${new URL('../fake/taps-loader.sh', import.meta.url).pathname} "$@"\n`);
    chmodSync(loader, 0o755);
    const logs: string[] = [];
    const runner = new TapsRunner([sound.decl, net.decl], {
      logger: { log: (_p: Priority, message: string) => void logs.push(message) },
      precompiled: { loader, objects: new Map([['sound', sound.object], ['net', net.object]]), fallback: false },
      programDir: dir,
      loadModules: () => Promise.resolve(),
      probeIndex: () => Promise.resolve({ hasFunction: (name: string) => name !== 'net_fn', hasTracepoint: () => true }),
    });
    await runner.start();
    expect(runner.stats()).toMatchObject({ state: 'attached', probes: 1 });
    expect(logs).toContain(`the net taps: none of ${net.decl.tapProgram}'s probes is in this kernel: the net shadow sees no change made to its devices`);
    await runner.stop();
  });
});

describe('taps runner: the start around bpftrace\'s spawn', () => {
  let dir: string;
  const logger = { log: () => undefined };
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'taps-runner-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  /** A bpftrace that writes its pid, and prints its attach after `attachAfter` seconds (never: it stays compiling). */
  function slowBpftrace(attachAfter: number | null): string {
    const path = join(dir, 'bpftrace');
    writeFileSync(path, `#!/bin/sh\necho $$ > ${dir}/pid\n${attachAfter === null ? '' : `sleep ${attachAfter}\necho '${ATTACHED}'\n`}exec sleep 1000\n`);
    chmodSync(path, 0o755);
    return path;
  }
  function decl(id: string): ClassDeclaration {
    const program = join(dir, `${id}.bt`);
    writeFileSync(program, `kprobe:${id}_fn { printf("ev=${id}_ev pid=%d\\n", pid); }\n`);
    return { ...NET_DECLARATION, id, tapProgram: program, tapEvents: [`${id}_ev`] };
  }
  const pidOf = (): number | null => (existsSync(join(dir, 'pid')) ? Number(readFileSync(join(dir, 'pid'), 'utf8')) : null);
  async function until(what: () => boolean, ms = 3000): Promise<void> {
    for (const end = Date.now() + ms; !what(); ) {
      if (Date.now() > end) throw new Error('timed out');
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  it('says when bpftrace is spawned, before its taps are live, after each step before it', async () => {
    const phases: string[] = [];
    const runner = new TapsRunner([decl('sound'), decl('net')], {
      logger,
      bpftrace: slowBpftrace(0.3),
      programDir: dir,
      loadModules: () => Promise.resolve(),
      probeIndex: () => Promise.resolve(null),
      phase: (what) => phases.push(what),
      ingest: { probesLive: () => Promise.resolve() },
    });
    const live = runner.startEach();
    await runner.spawned;
    expect(phases).toEqual(['tap modules checked', 'probe index read']);
    expect(runner.stats().state).toBe('starting');
    await live.get('net');
    expect(runner.stats().state).toBe('attached');
    await runner.stop();
  });

  it('spawns nothing once aborted before the spawn, and leaves no program behind', async () => {
    let index!: () => void;
    const runner = new TapsRunner([decl('sound'), decl('net')], {
      logger,
      bpftrace: slowBpftrace(0),
      programDir: dir,
      loadModules: () => Promise.resolve(),
      probeIndex: () => new Promise((resolve) => (index = () => resolve(null))),
    });
    const live = runner.startEach();
    await until(() => index !== undefined);
    runner.abort();
    index();
    await expect(live.get('net')).rejects.toThrow(/stopped before bpftrace started/);
    await runner.spawned;
    await new Promise((r) => setTimeout(r, 200));
    expect(pidOf()).toBeNull();
    expect(existsSync(join(dir, `taps-${process.pid}.bt`))).toBe(false);
  });

  it('kills a bpftrace still compiling when aborted, and does not restart it', async () => {
    const runner = new TapsRunner([decl('sound'), decl('net')], {
      logger,
      bpftrace: slowBpftrace(null),
      programDir: dir,
      loadModules: () => Promise.resolve(),
      probeIndex: () => Promise.resolve(null),
      ingest: { initialBackoffMs: 10 },
    });
    const live = runner.startEach();
    await runner.spawned;
    await until(() => pidOf() !== null);
    const pid = pidOf()!;
    runner.abort();
    await expect(live.get('net')).rejects.toThrow(/exited before attaching/);
    await until(() => !processRunning(pid));
    expect(existsSync(join(dir, `taps-${process.pid}.bt`))).toBe(false);
    rmSync(join(dir, 'pid'));
    await new Promise((r) => setTimeout(r, 200));
    expect(pidOf()).toBeNull();
    expect(runner.stats()).toMatchObject({ state: 'stopped', restarts: 0 });
  });
});

describe('merged tap program', () => {
  const programs = ['net:netdev-class.bt', 'block:block-class.bt', 'sound:sound-class.bt'].map((x) => {
    const [cls, file] = x.split(':') as [string, string];
    const path = new URL(`../../../bpf/${file}`, import.meta.url).pathname;
    return { cls, path, text: readFileSync(path, 'utf8') };
  });

  it('keeps every class\'s definitions before the probes, every probe, and one END with every class\'s', () => {
    const text = mergePrograms(programs);
    const probeLines = (t: string) => t.split('\n').filter((l) => /^(kfunc|kretfunc|kprobe|kretprobe|tracepoint):/.test(l));
    expect(probeLines(text)).toEqual(programs.flatMap((p) => probeLines(p.text)));
    expect(text.match(/^END\b/gm)).toHaveLength(1);
    const firstProbe = text.search(/^(kfunc|kretfunc|kprobe|kretprobe|tracepoint):/m);
    for (const def of text.matchAll(/^struct \w+ \{/gm)) expect(def.index).toBeLessThan(firstProbe);
    for (const p of programs) for (const clear of p.text.matchAll(/clear\(@\w+\);/g)) expect(text.slice(text.search(/^END\b/m))).toContain(clear[0]);
  });

  it('names the class of every event from the declarations, and refuses an event two classes print', () => {
    const classOfEvent = eventClasses([NET_DECLARATION, BLOCK_DECLARATION, SOUND_DECLARATION]);
    expect(classOfEvent.get('open')).toBe('net');
    expect(classOfEvent.get('disk_add')).toBe('block');
    expect(classOfEvent.get('pcm_open')).toBe('sound');
    expect(() => eventClasses([NET_DECLARATION, { id: 'other', tapEvents: ['open'] }])).toThrow('the other and net classes both print event open');
  });
});
