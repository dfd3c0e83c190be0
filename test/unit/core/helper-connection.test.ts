// The daemon's lazy connection to the kernel helper.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HelperError, type HelperClient, type HelperReply } from '../../../daemon/core/helper-client.js';
import { HELPER_NOT_LOADED, helperConnection } from '../../../daemon/core/helper-connection.js';

function fakeClient(reply: () => Promise<HelperReply>, version = () => Promise.resolve({ proto: 3, version: '0.3.0', kernel: 'k', faults: false, classes: ['net'] })) {
  const state = { closed: 0 };
  const client: HelperClient = {
    path: '/dev/fake',
    request: () => reply(),
    version,
    close: () => {
      state.closed++;
      return Promise.resolve();
    },
  };
  return { client, state };
}

describe('helperConnection', () => {
  it('says how to load a missing module, and tries again on the next use', async () => {
    let opens = 0;
    const conn = helperConnection(() => {
      opens++;
      return Promise.reject(new HelperError('the shadow_helper module is not loaded (/dev/shadow_helper is missing)', { code: 'ENOENT' }));
    });
    await expect(conn.get()).rejects.toThrow(HELPER_NOT_LOADED);
    await expect(conn.get()).rejects.toMatchObject({ code: 'ENOENT' });
    expect(opens).toBe(2);
    expect(HELPER_NOT_LOADED).toBe('the shadow_helper module is not loaded (modprobe shadow_helper)');
  });

  it('says so with the real device path too', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'helper-conn-'));
    try {
      await expect(helperConnection(undefined, join(dir, 'shadow_helper')).get()).rejects.toThrow(HELPER_NOT_LOADED);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('opens once, checks the version, and keeps the connection', async () => {
    let opens = 0;
    const { client } = fakeClient(() => Promise.resolve({ ok: true, payload: 'pong' }));
    const conn = helperConnection(() => {
      opens++;
      return Promise.resolve(client);
    });
    const a = await conn.get();
    const b = await conn.get();
    expect(a).toBe(b);
    expect(await a.request('ping')).toEqual({ ok: true, payload: 'pong' });
    expect(opens).toBe(1);
  });

  it('refuses a module of another protocol and closes it', async () => {
    const { client, state } = fakeClient(
      () => Promise.resolve({ ok: true, payload: '' }),
      () => Promise.reject(new HelperError('the loaded shadow_helper module (version 9) speaks protocol 9, this shadowd speaks 3', { code: 'EPROTO' })),
    );
    const conn = helperConnection(() => Promise.resolve(client));
    await expect(conn.get()).rejects.toThrow(/speaks protocol 9/);
    expect(state.closed).toBe(1);
  });

  it('drops a broken connection and reopens it, but keeps it after a refused command', async () => {
    let opens = 0;
    let fail: HelperError = new HelperError('refusing to send an empty helper command', { code: 'EINVAL' });
    const { client, state } = fakeClient(() => Promise.reject(fail));
    const conn = helperConnection(() => {
      opens++;
      return Promise.resolve(client);
    });
    await expect((await conn.get()).request('')).rejects.toThrow(/empty/);
    await conn.get();
    expect(opens).toBe(1);
    fail = new HelperError('reading the reply to "ping" failed (EIO)', { code: 'EIO' });
    await expect((await conn.get()).request('ping')).rejects.toThrow(/EIO/);
    expect(state.closed).toBe(1);
    await conn.get();
    expect(opens).toBe(2);
    await conn.close();
    expect(state.closed).toBe(2);
  });
});
