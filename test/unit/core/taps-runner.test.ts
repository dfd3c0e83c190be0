// The taps runner's loading of a class's tapModules (the sound class's
// snd and snd-pcm) before its bpftrace attaches, with a stand-in for
// bpftrace (test/unit/fake/bpftrace.sh) that prints a recorded attach.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { NET_DECLARATION } from '../../../daemon/classes/net/net-declaration.js';
import type { ClassDeclaration } from '../../../daemon/core/device-class.js';
import { TapsRunner } from '../../../daemon/core/taps-runner.js';
import type { LogFields, Priority } from '../../../daemon/service/log.js';

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

  function decl(id: string, tapModules?: string[]): ClassDeclaration {
    const program = join(dir, `${id}.jsonl`);
    writeFileSync(program, ATTACHED + '\n');
    return { ...NET_DECLARATION, id, tapProgram: program, ...(tapModules ? { tapModules } : {}) };
  }

  it('loads them before the class attaches, and only for classes that have some', async () => {
    const order: string[] = [];
    const runner = new TapsRunner([decl('sound', ['snd', 'snd-pcm']), decl('net')], {
      logger,
      bpftrace: FAKE,
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
      logger,
      bpftrace: FAKE,
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
});
