// The /proc/asound parsers on files captured in the 6.1 guest, their strict
// refusal of anything else, and the reader on a fixture tree.
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseHwParams, parseStatus, parseSwParams, ProcFormatError, readOpenSubstreams, readStatus, substreamKeys } from '../../../../daemon/classes/sound/proc-asound.js';

const fixture = (name: string): string => readFileSync(new URL(`../../../fixtures/sound/${name}`, import.meta.url), 'utf8');

describe('/proc/asound substream files', () => {
  let dir: string | null = null;
  afterEach(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = null;
  });

  it('reads a running stream\'s status, hardware and software parameters', () => {
    expect(parseStatus(fixture('status-running.txt'))).toEqual({ state: 'RUNNING', ownerPid: 278, hwPtr: 73197n });
    expect(parseHwParams(fixture('hw_params.txt'))).toEqual({ access: 'RW_INTERLEAVED', format: 'S16_LE', channels: 2, rate: 48000, period_size: 4800, periods: 3, buffer_size: 16384 });
    expect(parseSwParams(fixture('sw_params.txt'))).toEqual({ tstamp_mode: 'NONE', avail_min: 4800, start_threshold: 16384, stop_threshold: 16384, silence_threshold: 0, silence_size: 0 });
  });

  it('keeps a frame count beyond 2^53 exact, as text', () => {
    const text = fixture('sw_params.txt').replace('stop_threshold: 16384', 'stop_threshold: 4611686018427387904');
    expect(parseSwParams(text)?.stop_threshold).toBe('4611686018427387904');
  });

  it('says closed and not set up as such', () => {
    expect(parseStatus('closed\n')).toEqual({ state: null, ownerPid: null, hwPtr: null });
    expect(parseHwParams('closed\n')).toBeNull();
    expect(parseHwParams('no setup\n')).toBeNull();
    expect(parseSwParams('no setup\n')).toBeNull();
  });

  it('refuses what the kernel does not print, naming the file', () => {
    expect(() => parseStatus('state: DANCING\nhw_ptr : 1\n', 'x/status')).toThrow(new ProcFormatError('x/status: state "DANCING" is not a PCM state'));
    expect(() => parseStatus('state: RUNNING\n', 'x/status')).toThrow('x/status: no hw_ptr');
    expect(() => parseStatus('state: RUNNING\nhw_ptr: -4\n', 'x/status')).toThrow('x/status: hw_ptr "-4" is not a count');
    expect(() => parseHwParams('access RW\n', 'x/hw_params')).toThrow('x/hw_params: line "access RW" is not "key: value"');
    expect(() => parseStatus('error -19\n', 'x/status')).toThrow(ProcFormatError);
  });

  it('lists a card\'s substreams and reads the open ones from a /proc tree', async () => {
    dir = mkdtempSync(join(tmpdir(), 'proc-asound-'));
    const sub = (key: string, status: string, hw = 'closed\n', sw = 'closed\n'): void => {
      const d = join(dir!, 'asound', 'card0', key);
      mkdirSync(d, { recursive: true });
      writeFileSync(join(d, 'status'), status);
      writeFileSync(join(d, 'hw_params'), hw);
      writeFileSync(join(d, 'sw_params'), sw);
    };
    sub('pcm0p/sub0', fixture('status-running.txt'), fixture('hw_params.txt'), fixture('sw_params.txt'));
    sub('pcm0c/sub0', 'closed\n');
    sub('pcm1p/sub0', 'state: OPEN\nowner_pid   : 300\n-----\nhw_ptr      : 0\nappl_ptr    : 0\n', 'no setup\n', 'no setup\n');
    mkdirSync(join(dir, 'asound', 'card0', 'ak4531'));
    expect(await substreamKeys(0, dir)).toEqual(['pcm0c/sub0', 'pcm0p/sub0', 'pcm1p/sub0']);
    const open = await readOpenSubstreams(0, dir);
    expect(open.map((s) => [s.key, s.status.state, s.status.ownerPid, s.hwParams?.rate ?? null])).toEqual([
      ['pcm0p/sub0', 'RUNNING', 278, 48000],
      ['pcm1p/sub0', 'OPEN', 300, null],
    ]);
    expect(await readStatus(0, 'pcm0c/sub0', dir)).toEqual({ state: null, ownerPid: null, hwPtr: null });
    expect(await substreamKeys(5, dir)).toEqual([]);
  });
});
