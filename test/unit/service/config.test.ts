import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEFAULT_DAEMON, DEFAULT_POLICY, defaultConfig, formatConfigError, loadConfig, parseConfig, policyFor, type Config } from '../../../daemon/service/config.js';

const FILE = '/etc/shadowd/shadowd.conf';

function ok(text: string): Config {
  const r = parseConfig(text, FILE);
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
  return r.config;
}

/** The formatted errors of a file that must not parse. */
function errors(text: string): string[] {
  const r = parseConfig(text, FILE);
  if (r.ok) throw new Error('parsed');
  return r.errors.map(formatConfigError);
}

describe('parseConfig', () => {
  it('gives the defaults for an empty file or one with only comments', () => {
    for (const text of ['', '\n\n', '# nothing\n; nor this\n']) {
      const c = ok(text);
      expect(c.daemon).toEqual(DEFAULT_DAEMON);
      expect([c.classes.size, c.drivers.size, c.devices.size]).toEqual([0, 0, 0]);
      expect(c.file).toBe(FILE);
    }
  });

  it('reads every key', () => {
    const c = ok(`# shadowd
[Daemon]
LogLevel=debug
AllowFaultInjection=yes
MetricsTextfile=/var/lib/prometheus/node-exporter/shadowd.prom
MetricsIntervalSec=30

[Class net]
Protect=yes
MaxRecoveries=5
RecoveryWindowSec=3600
BackoffSec=1
BackoffMaxSec=30
StallThresholdMs=2000

[Driver e1000]
MaxRecoveries=2

[Device eth1]
Protect=no
`);
    expect(c.daemon).toEqual({ logLevel: 'debug', allowFaultInjection: true, metricsTextfile: '/var/lib/prometheus/node-exporter/shadowd.prom', metricsIntervalSec: 30 });
    expect(c.classes.get('net')).toEqual({ protect: true, maxRecoveries: 5, recoveryWindowSec: 3600, backoffSec: 1, backoffMaxSec: 30, stallThresholdMs: 2000 });
    expect(c.drivers.get('e1000')).toEqual({ maxRecoveries: 2 });
    expect(c.devices.get('eth1')).toEqual({ protect: false });
  });

  it('tolerates white space around "=" and in indentation, CRLF line ends and every boolean spelling', () => {
    const c = ok('[Device eth0]\r\n  Protect = off \r\n[Device eth1]\nProtect=TRUE\n[Device eth2]\nProtect=0\n[Device eth3]\nProtect=on\n');
    expect([...c.devices.values()].map((p) => p.protect)).toEqual([false, true, false, true]);
  });

  it('empty MetricsTextfile= means no textfile', () => {
    expect(ok('[Daemon]\nMetricsTextfile=\n').daemon.metricsTextfile).toBeNull();
  });

  describe('errors name the file, the line and the key', () => {
    it('in the documented form', () => {
      expect(errors('[Class net]\nMaxRecoveries=lots\n')).toEqual([`${FILE}:2: MaxRecoveries: must be an integer from 1 to 100, got "lots"`]);
    });

    it.each<[string, string, string]>([
      ['a non-number', '[Device eth0]\nBackoffSec=2s\n', ':2: BackoffSec: must be an integer from 0 to 3600, got "2s"'],
      ['a negative number', '[Device eth0]\nBackoffSec=-1\n', ':2: BackoffSec: must be an integer from 0 to 3600, got "-1"'],
      ['a fraction', '[Device eth0]\nMaxRecoveries=1.5\n', ':2: MaxRecoveries: must be an integer from 1 to 100, got "1.5"'],
      ['a number below the range', '[Device eth0]\nMaxRecoveries=0\n', ':2: MaxRecoveries: must be an integer from 1 to 100, got "0"'],
      ['a number above the range', '[Class net]\nStallThresholdMs=600001\n', ':2: StallThresholdMs: must be an integer from 100 to 600000, got "600001"'],
      ['a huge number', '[Class net]\nRecoveryWindowSec=99999999999999999999\n', ':2: RecoveryWindowSec: must be an integer from 1 to 86400, got "99999999999999999999"'],
      ['an empty number', '[Class net]\nRecoveryWindowSec=\n', ':2: RecoveryWindowSec: must be an integer from 1 to 86400, got ""'],
      ['a comment after a value', '[Class net]\nMaxRecoveries=3 # three\n', ':2: MaxRecoveries: must be an integer from 1 to 100, got "3 # three"'],
      ['a bad boolean', '[Device eth0]\nProtect=maybe\n', ':2: Protect: must be yes or no, got "maybe"'],
      ['a bad log level', '[Daemon]\nLogLevel=verbose\n', ':2: LogLevel: must be one of err, warning, notice, info, debug, got "verbose"'],
      [
        'a relative textfile',
        '[Daemon]\nMetricsTextfile=shadowd.prom\n',
        ':2: MetricsTextfile: must be an absolute path ending in .prom, or empty for none, got "shadowd.prom"',
      ],
      [
        'a textfile node_exporter would skip',
        '[Daemon]\nMetricsTextfile=/var/lib/x/shadowd.txt\n',
        ':2: MetricsTextfile: must be an absolute path ending in .prom, or empty for none, got "/var/lib/x/shadowd.txt"',
      ],
      ['an unknown key', '[Device eth0]\nFrobnicate=1\n', ':2: Frobnicate: unknown key in [Device eth0] (keys: Protect, MaxRecoveries, RecoveryWindowSec, BackoffSec, BackoffMaxSec, StallThresholdMs)'],
      ['a key in the wrong case', '[Class net]\nprotect=no\n', ':2: protect: unknown key in [Class net] (did you mean Protect?)'],
      ['a policy key in [Daemon]', '[Daemon]\nProtect=no\n', ':2: Protect: belongs in a [Class], [Driver] or [Device] section, not [Daemon]'],
      ['a daemon key in a device section', '[Device eth0]\nLogLevel=debug\n', ':2: LogLevel: belongs in [Daemon], not [Device eth0]'],
      ['a key set twice', '[Driver e1000]\nBackoffSec=1\n\nBackoffSec=2\n', ':4: BackoffSec: set twice in [Driver e1000] (first at line 2)'],
      ['a back-off cap below the back-off', '[Class net]\nBackoffMaxSec=5\nBackoffSec=10\n', ':2: BackoffMaxSec: must not be less than BackoffSec (10), got 5'],
      ['a key before any section', 'Protect=no\n', ':1: Protect: comes before any section; start the file with [Daemon], [Class NAME], [Driver NAME] or [Device NAME]'],
      ['a line that is not a key', '[Daemon]\nLogLevel\n', ':2: expected "Key=Value", a "[Section]" or a "#" comment, got "LogLevel"'],
      ['a line with no key', '[Daemon]\n=info\n', ':2: no key before "=" in "=info"'],
      ['an unknown section', '[Service]\nProtect=no\n', ':1: unknown section [Service] (sections: [Daemon], [Class NAME], [Driver NAME], [Device NAME])'],
      ['an unclosed section', '[Daemon\n', ':1: section header "[Daemon" has no closing "]"'],
      ['a named [Daemon]', '[Daemon main]\n', ':1: [Daemon] takes no name'],
      ['an unnamed class', '[Class]\n', ':1: [Class] needs a class name: net'],
      ['an unknown class', '[Class sound]\n', ':1: unknown class "sound" (shadowd knows: net)'],
      ['an unnamed driver', '[Driver]\n', ':1: [Driver] needs a kernel module name, e.g. [Driver e1000]'],
      ['a bad driver name', '[Driver e1000/x]\n', ':1: "e1000/x" is not a kernel module name'],
      ['an unnamed device', '[Device]\n', ':1: [Device] needs an interface name, e.g. [Device eth0]'],
      ['a device name too long', '[Device enp0s31f6abcdefgh]\n', ':1: "enp0s31f6abcdefgh" is not an interface name (1-15 characters, no "/", ":" or spaces)'],
      ['a device name with a colon', '[Device eth0:1]\n', ':1: "eth0:1" is not an interface name (1-15 characters, no "/", ":" or spaces)'],
      ['a section twice', '[Device eth0]\n[Daemon]\n[Device eth0]\n', ':3: [Device eth0] appears twice (first at line 1)'],
      ['a driver twice, spelt with - and _', '[Driver snd_intel8x0]\n[Driver snd-intel8x0]\n', ':2: [Driver snd-intel8x0] appears twice (first at line 1)'],
    ])('%s', (_what, text, want) => {
      expect(errors(text)).toEqual([`${FILE}${want}`]);
    });

    it('lists every error, in line order, and one only for the keys of a bad section', () => {
      expect(errors('[Daemon]\nLogLevel=loud\n[Device a/b]\nProtect=maybe\nMaxRecoveries=0\n[Device eth0]\nMaxRecoveries=0\n')).toEqual([
        `${FILE}:2: LogLevel: must be one of err, warning, notice, info, debug, got "loud"`,
        `${FILE}:3: "a/b" is not an interface name (1-15 characters, no "/", ":" or spaces)`,
        `${FILE}:7: MaxRecoveries: must be an integer from 1 to 100, got "0"`,
      ]);
    });
  });
});

describe('loadConfig', () => {
  const dir = mkdtempSync(join(tmpdir(), 'shadowd-config-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file', () => {
    const path = join(dir, 'shadowd.conf');
    writeFileSync(path, '[Device eth0]\nProtect=no\n');
    const r = loadConfig(path);
    expect(r.ok && r.config.devices.get('eth0')).toEqual({ protect: false });
    expect(r.ok && r.config.file).toBe(path);
  });

  it('gives the defaults when there is no file', () => {
    const r = loadConfig(join(dir, 'none.conf'));
    expect(r).toEqual({ ok: true, config: defaultConfig() });
  });

  it('reports a file it cannot read, without a line', () => {
    const r = loadConfig(dir);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map(formatConfigError)).toEqual([`${dir}: cannot read: EISDIR: illegal operation on a directory, read`]);
  });

  it('reads the example file shipped in systemd/, whose settings are the defaults', () => {
    const path = new URL('../../../systemd/shadowd.conf.example', import.meta.url).pathname;
    const r = loadConfig(path);
    if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
    expect(r.config.daemon).toEqual(DEFAULT_DAEMON);
    expect(policyFor(r.config, 'eth9', 'virtio_net')).toEqual(DEFAULT_POLICY);
    // Every key appears in it, commented out, with its default.
    const text = readFileSync(path, 'utf8');
    for (const key of ['LogLevel', 'AllowFaultInjection', 'MetricsTextfile', 'MetricsIntervalSec', 'Protect', 'MaxRecoveries', 'RecoveryWindowSec', 'BackoffSec', 'BackoffMaxSec', 'StallThresholdMs']) {
      expect(text).toMatch(new RegExp(`^#${key}=`, 'm'));
    }
  });
});

describe('policyFor', () => {
  const config = ok(`
[Class net]
MaxRecoveries=5
BackoffSec=4
StallThresholdMs=3000

[Driver e1000]
MaxRecoveries=2
BackoffMaxSec=10

[Driver snd-intel8x0]
Protect=no

[Device eth1]
MaxRecoveries=9
Protect=no
`);

  it('gives the built-in defaults without a configuration', () => {
    expect(policyFor(defaultConfig(), 'eth0', 'e1000')).toEqual(DEFAULT_POLICY);
  });

  it('takes each key from the device, else the driver, else the class, else the default', () => {
    expect(policyFor(config, 'eth1', 'e1000')).toEqual({ ...DEFAULT_POLICY, protect: false, maxRecoveries: 9, backoffSec: 4, backoffMaxSec: 10, stallThresholdMs: 3000 });
    expect(policyFor(config, 'eth0', 'e1000')).toEqual({ ...DEFAULT_POLICY, maxRecoveries: 2, backoffSec: 4, backoffMaxSec: 10, stallThresholdMs: 3000 });
    expect(policyFor(config, 'eth2', 'pcnet32')).toEqual({ ...DEFAULT_POLICY, maxRecoveries: 5, backoffSec: 4, stallThresholdMs: 3000 });
    expect(policyFor(config, 'eth2', null)).toEqual(policyFor(config, 'eth2', 'pcnet32'));
  });

  it('matches driver names with - and _ alike', () => {
    expect(policyFor(config, 'x', 'snd_intel8x0').protect).toBe(false);
    expect(policyFor(ok('[Driver snd_intel8x0]\nProtect=no\n'), 'x', 'snd-intel8x0').protect).toBe(false);
  });

  it('keeps the back-off cap at least the back-off when they come from different sections', () => {
    const c = ok('[Class net]\nBackoffMaxSec=3\n[Device eth0]\nBackoffSec=20\n');
    expect(policyFor(c, 'eth0', null)).toMatchObject({ backoffSec: 20, backoffMaxSec: 20 });
  });
});
