import { describe, expect, it } from 'vitest';
import {
  HELPER_COMMAND_MAX,
  HelperError,
  checkHelperCommand,
  parseHelperReply,
  parseHelperVersion,
} from '../../../daemon/core/helper-client.js';

describe('parseHelperReply', () => {
  it('parses ok replies', () => {
    expect(parseHelperReply('ok pong\n')).toEqual({ ok: true, payload: 'pong' });
    expect(parseHelperReply('ok shadow_helper proto=3 version=0.3.0 kernel=6.1.0-56-amd64 faults=1 classes=net\n')).toEqual({
      ok: true,
      payload: 'shadow_helper proto=3 version=0.3.0 kernel=6.1.0-56-amd64 faults=1 classes=net',
    });
    expect(parseHelperReply('ok\n')).toEqual({ ok: true, payload: '' });
  });

  it('parses err replies into errno and message', () => {
    expect(parseHelperReply("err EINVAL unknown command 'frob'\n")).toEqual({
      ok: false,
      errno: 'EINVAL',
      message: "unknown command 'frob'",
    });
    expect(parseHelperReply('err EOPNOTSUPP ping takes no arguments, got 1\n')).toMatchObject({
      ok: false,
      errno: 'EOPNOTSUPP',
    });
  });

  it.each([
    ['', /it is empty/],
    ['ok pong', /does not end with a newline/],
    ['ok pong\nok pong\n', /more than one line/],
    ['\n', /neither "ok" nor "err"/],
    ['OK pong\n', /neither "ok" nor "err"/],
    ['okay\n', /neither "ok" nor "err"/],
    ['pong\n', /neither "ok" nor "err"/],
    ['ok \n', /expected "ok" or "ok <payload>"/],
    ['ok  pong\n', /expected "ok" or "ok <payload>"/],
    ['err\n', /expected "err <ERRNAME> <message>"/],
    ['err EINVAL\n', /expected "err <ERRNAME> <message>"/],
    ['err EINVAL \n', /expected "err <ERRNAME> <message>"/],
    ['err einval bad\n', /expected "err <ERRNAME> <message>"/],
    ['err 22 bad\n', /expected "err <ERRNAME> <message>"/],
    ['ok po\x00ng\n', /not printable ASCII/],
    ['ok caf\xe9\n', /not printable ASCII/],
    ['ok pong\r\n', /not printable ASCII/],
  ])('rejects %j', (text, why) => {
    expect(() => parseHelperReply(text)).toThrow(HelperError);
    expect(() => parseHelperReply(text)).toThrow(why);
    expect(() => parseHelperReply(text)).toThrow(/malformed reply from shadow_helper/);
  });
});

describe('parseHelperVersion', () => {
  it('reads proto, version, kernel, faults and classes', () => {
    expect(parseHelperVersion('shadow_helper proto=3 version=0.3.0 kernel=6.1.0-56-amd64 faults=0 classes=net')).toEqual({
      proto: 3,
      version: '0.3.0',
      kernel: '6.1.0-56-amd64',
      faults: false,
      classes: ['net'],
    });
    expect(parseHelperVersion('shadow_helper proto=3 version=0.3.0 kernel=6.1.0-56-amd64 faults=1 classes=net,sound,block')).toEqual({
      proto: 3,
      version: '0.3.0',
      kernel: '6.1.0-56-amd64',
      faults: true,
      classes: ['net', 'sound', 'block'],
    });
  });

  it('refuses another protocol with a clear message', () => {
    // A protocol 1 module has no faults=, a protocol 2 one no classes=: each is told apart by its protocol, not as a malformed reply.
    expect(() => parseHelperVersion('shadow_helper proto=1 version=0.1.0 kernel=6.1.0-56-amd64')).toThrow(
      /speaks protocol 1, this shadowd speaks 3/,
    );
    expect(() => parseHelperVersion('shadow_helper proto=2 version=0.2.0 kernel=6.1.0-56-amd64 faults=0')).toThrow(
      /speaks protocol 2, this shadowd speaks 3/,
    );
    expect(() => parseHelperVersion('shadow_helper proto=4 version=0.4.0 kernel=6.1.0-56-amd64 faults=0 classes=net')).toThrow(
      /speaks protocol 4, this shadowd speaks 3/,
    );
  });

  it.each([
    'other_module proto=3 version=0.3.0 kernel=x faults=0 classes=net',
    'shadow_helper version=0.3.0 kernel=x faults=0 classes=net',
    'shadow_helper proto=three version=0.3.0 kernel=x faults=0 classes=net',
    'shadow_helper proto=3 kernel=x faults=0 classes=net',
    'shadow_helper proto=3 version=0.3.0 faults=0 classes=net',
    'shadow_helper proto=3 version=0.3.0 =x kernel=y faults=0 classes=net',
    'shadow_helper proto=3 version=0.3.0 junk kernel=y faults=0 classes=net',
    'shadow_helper proto=3 version=0.3.0 kernel=y classes=net',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults= classes=net',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=2 classes=net',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=01 classes=net',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=yes classes=net',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=true classes=net',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=1 faults=0 classes=net',
    'shadow_helper proto=3 proto=3 version=0.3.0 kernel=y faults=0 classes=net',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=0',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=0 classes=',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=0 classes=net,',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=0 classes=,net',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=0 classes=net,net',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=0 classes=NET',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=0 classes=net:eth0',
    'shadow_helper proto=3 version=0.3.0 kernel=y faults=0 classes=net classes=net',
  ])('rejects %j', (payload) => {
    expect(() => parseHelperVersion(payload)).toThrow(/unexpected version reply/);
  });
});

describe('checkHelperCommand', () => {
  it('accepts printable single lines up to the limit', () => {
    expect(() => checkHelperCommand('ping')).not.toThrow();
    expect(() => checkHelperCommand('x'.repeat(HELPER_COMMAND_MAX))).not.toThrow();
    // Spacing and verbs are the module's to judge; it answers with an err reply.
    expect(() => checkHelperCommand(' ping  extra ')).not.toThrow();
  });

  it.each([
    ['', /empty/],
    ['ping\n', /line break/],
    ['ping\nversion', /line break/],
    ['ping\r', /line break/],
    ['pi\x00ng', /character 2 \(U\+0000\) is not printable ASCII/],
    ['ping\t1', /U\+0009/],
    ['ping\x7f', /U\+007f/],
    ['caf\u00e9', /U\+00e9/],
    ['x'.repeat(HELPER_COMMAND_MAX + 1), /256 bytes, the limit is 255/],
  ])('refuses %j', (command, why) => {
    expect(() => checkHelperCommand(command)).toThrow(HelperError);
    expect(() => checkHelperCommand(command)).toThrow(why);
  });
});
