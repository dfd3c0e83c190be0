import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { journalEntry, journalIovecs, validFieldName, type JournalEntry } from '../../../daemon/service/journal.js';
import { chooseLogTarget, serviceLogger, type LogEnvironment } from '../../../daemon/service/log.js';
import { MESSAGE_RECOVERED } from '../../../daemon/service/message-ids.js';
import { parseSocatDump } from '../fake/datagram-sink.js';

describe('journal field names', () => {
  it.each(['MESSAGE_ID', 'SHADOWD_DEVICE', 'SHADOWD_RECOVERY_ID', 'A', 'X1_2', 'A'.repeat(64)])('accepts %s', (name) => {
    expect(validFieldName(name)).toBe(true);
  });
  it.each(['', 'shadowd_device', 'Shadowd', '_PID', '__CURSOR', '1ABC', 'SHADOWD-DEVICE', 'SHADOWD DEVICE', 'A'.repeat(65), 'ÄB'])('rejects %j', (name) => {
    expect(validFieldName(name)).toBe(false);
  });
});

describe('journalEntry', () => {
  it('puts MESSAGE, PRIORITY and SYSLOG_IDENTIFIER first, then the valid caller fields', () => {
    const e = journalEntry(5, 'eth0 recovered', {
      MESSAGE_ID: MESSAGE_RECOVERED,
      SHADOWD_DEVICE: 'eth0',
      SHADOWD_DRIVER: 'e1000',
      SHADOWD_DURATION_MS: 812,
      SHADOWD_REPLAYED: true,
      SHADOWD_NOTHING: undefined,
      SHADOWD_NULL: null,
    });
    expect(e).toEqual({
      fields: [
        'MESSAGE=eth0 recovered',
        'PRIORITY=5',
        'SYSLOG_IDENTIFIER=shadowd',
        `MESSAGE_ID=${MESSAGE_RECOVERED}`,
        'SHADOWD_DEVICE=eth0',
        'SHADOWD_DRIVER=e1000',
        'SHADOWD_DURATION_MS=812',
        'SHADOWD_REPLAYED=true',
      ],
      skipped: [],
    });
  });

  it('skips invalid names, our own fields and a malformed MESSAGE_ID', () => {
    const e = journalEntry(6, 'm', {
      device: 'eth0',
      _PID: 1,
      '1X': 'a',
      'SHADOWD-X': 'b',
      MESSAGE: 'forged',
      PRIORITY: 0,
      SYSLOG_IDENTIFIER: 'other',
      MESSAGE_ID: 'not-an-id',
      SHADOWD_OK: 'kept',
    });
    expect(e.fields).toEqual(['MESSAGE=m', 'PRIORITY=6', 'SYSLOG_IDENTIFIER=shadowd', 'SHADOWD_OK=kept']);
    expect(e.skipped).toEqual(['device', '_PID', '1X', 'SHADOWD-X', 'MESSAGE', 'PRIORITY', 'SYSLOG_IDENTIFIER', 'MESSAGE_ID']);
  });

  it('keeps newlines in values (sd_journal_sendv encodes them)', () => {
    expect(journalEntry(3, 'two\nlines').fields[0]).toBe('MESSAGE=two\nlines');
  });
});

describe('journalIovecs', () => {
  it('gives one buffer per field with its length in bytes', () => {
    const v = journalIovecs(journalEntry(6, 'café', { SHADOWD_DEVICE: 'eth0' }));
    expect(v.map((x) => x.iov_base.toString())).toEqual(['MESSAGE=café', 'PRIORITY=6', 'SYSLOG_IDENTIFIER=shadowd', 'SHADOWD_DEVICE=eth0']);
    expect(v[0]!.iov_len).toBe(13);
    for (const x of v) expect(x.iov_len).toBe(x.iov_base.length);
  });
});

describe('chooseLogTarget', () => {
  const env = (e: NodeJS.ProcessEnv, journalSocket: boolean, stderrId: string | null = '8:42'): LogEnvironment => ({ env: e, journalSocket, stderrId });
  it.each<[string, LogEnvironment, 'journal' | 'stderr']>([
    ['a foreground run', env({}, false), 'stderr'],
    ['a foreground run on a machine with journald', env({}, true), 'stderr'],
    ['stderr is the journal stream', env({ JOURNAL_STREAM: '8:42' }, true), 'journal'],
    ['an inherited JOURNAL_STREAM that is not our stderr', env({ JOURNAL_STREAM: '8:41' }, false), 'stderr'],
    ['JOURNAL_STREAM with fd 2 closed', env({ JOURNAL_STREAM: '8:42' }, false, null), 'stderr'],
    ['a unit whose stderr goes elsewhere', env({ INVOCATION_ID: 'abc' }, true), 'journal'],
    ['a notify service', env({ NOTIFY_SOCKET: '/run/systemd/notify' }, true), 'journal'],
    ['a unit on a system without journald', env({ INVOCATION_ID: 'abc', NOTIFY_SOCKET: '/run/systemd/notify' }, false), 'stderr'],
  ])('%s', (_what, e, want) => {
    expect(chooseLogTarget(e)).toBe(want);
  });
});

describe('serviceLogger', () => {
  function fakeJournal(accept = true) {
    const sent: JournalEntry[] = [];
    return { sent, journal: { send: (e: JournalEntry) => (sent.push(e), accept) } };
  }

  it('writes journal entries under systemd', () => {
    const { sent, journal } = fakeJournal();
    const lines: string[] = [];
    const log = serviceLogger('info', { target: 'journal', journal, write: (l) => lines.push(l) });
    expect(log.target).toBe('journal');
    log.log('notice', 'eth0 recovered', { SHADOWD_DEVICE: 'eth0' });
    expect(sent.map((e) => e.fields)).toEqual([['MESSAGE=eth0 recovered', 'PRIORITY=5', 'SYSLOG_IDENTIFIER=shadowd', 'SHADOWD_DEVICE=eth0']]);
    expect(lines).toEqual([]);
  });

  it('falls back to a stderr line when the journal refuses an entry', () => {
    const { journal } = fakeJournal(false);
    const lines: string[] = [];
    serviceLogger('info', { target: 'journal', journal, write: (l) => lines.push(l) }).log('err', 'boom', { SHADOWD_DEVICE: 'eth0' });
    expect(lines).toEqual(['<3>boom SHADOWD_DEVICE=eth0']);
  });

  it('uses stderr with <N> prefixes when there is no journal or libsystemd', () => {
    const lines: string[] = [];
    const viaStderr = serviceLogger('info', { target: 'stderr', write: (l) => lines.push(l) });
    const noLib = serviceLogger('info', { target: 'journal', journal: null, write: (l) => lines.push(l) });
    expect([viaStderr.target, noLib.target]).toEqual(['stderr', 'stderr']);
    viaStderr.log('warning', 'a', { SHADOWD_X: 'two words' });
    noLib.log('info', 'b');
    expect(lines).toEqual(['<4>a SHADOWD_X="two words"', '<6>b']);
  });

  it('filters by level, and the level can change', () => {
    const { sent, journal } = fakeJournal();
    const log = serviceLogger('notice', { target: 'journal', journal });
    log.log('info', 'hidden');
    log.log('notice', 'shown');
    log.setMinimum('debug');
    log.log('debug', 'now shown');
    expect(sent.map((e) => e.fields[0])).toEqual(['MESSAGE=shown', 'MESSAGE=now shown']);
  });
});

// End to end through libsystemd: sd_journal_sendv always writes to
// /run/systemd/journal/socket, so a private mount namespace (root only) puts
// a socat socket there. Needs the build (dist/), as the shadowctl tests do.
const canUnshare = spawnSync('unshare', ['-m', 'true']).status === 0 && spawnSync('socat', ['-V']).status === 0;

describe('journal entries through libsystemd', () => {
  it.skipIf(!canUnshare)('arrive at the journal socket as native-protocol datagrams with their fields', () => {
    const dir = mkdtempSync(join(tmpdir(), 'shadowd-journal-'));
    try {
      const logModule = new URL('../../../dist/daemon/service/log.js', import.meta.url).pathname;
      const script = join(dir, 'log.mjs');
      writeFileSync(
        script,
        `import { serviceLogger } from ${JSON.stringify(logModule)};
const log = serviceLogger('info');
if (log.target !== 'journal') throw new Error('target ' + log.target);
log.log('notice', 'eth0 recovered', { MESSAGE_ID: ${JSON.stringify(MESSAGE_RECOVERED)}, SHADOWD_DEVICE: 'eth0', SHADOWD_RECOVERY_ID: 'r1', bad_name: 'x' });
log.log('err', 'two\\nlines', { SHADOWD_PHASE: 'restart' });
`,
      );
      const sock = '/run/systemd/journal/socket';
      const shell = `mount -n -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal &&
socat -u -x UNIX-RECV:${sock} /dev/null 2>"$1/dump" </dev/null >/dev/null & sp=$!; trap 'kill $sp; wait $sp' EXIT; i=0; while [ ! -S ${sock} ] && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
INVOCATION_ID=test node "$1/log.mjs"; rc=$?; sleep 0.3; exit $rc`;
      const r = spawnSync('unshare', ['-m', '--propagation', 'private', 'sh', '-c', shell, 'sh', dir], { encoding: 'utf8', timeout: 20_000 });
      expect(r.stderr).toBe('');
      expect(r.status).toBe(0);
      const dump = spawnSync('cat', [join(dir, 'dump')], { encoding: 'utf8' }).stdout;
      const [first, second] = parseSocatDump(dump);
      expect(first?.toString()).toBe(
        `MESSAGE=eth0 recovered\nPRIORITY=5\nSYSLOG_IDENTIFIER=shadowd\nMESSAGE_ID=${MESSAGE_RECOVERED}\nSHADOWD_DEVICE=eth0\nSHADOWD_RECOVERY_ID=r1\n`,
      );
      // A value with a newline uses the binary-safe form: NAME\n, 64-bit little-endian length, value, \n.
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(9n);
      expect(second).toEqual(Buffer.concat([Buffer.from('MESSAGE\n'), len, Buffer.from('two\nlines\nPRIORITY=3\nSYSLOG_IDENTIFIER=shadowd\nSHADOWD_PHASE=restart\n')]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
