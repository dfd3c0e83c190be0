import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { NET_DECLARATION } from '../../../daemon/classes/net/net-declaration.js';
import { CLASSES } from '../../../daemon/classes/registry.js';
import { ClassSet } from '../../../daemon/core/class-set.js';
import type { ClassDeclaration } from '../../../daemon/core/device-class.js';
import type { DeviceRef } from '../../../daemon/core/device-ref.js';
import { booleanSetting, integerSetting } from '../../../daemon/core/setting-values.js';
import {
  DEFAULT_DAEMON,
  DEFAULT_POLICY,
  defaultConfig,
  formatConfigError,
  loadConfig,
  parseConfig,
  policyFor,
  settingFor,
  type Config,
  type SectionValues,
} from '../../../daemon/service/config.js';

// The configuration is read against the classes it is given: the network
// class alone (what shadowd registers today), and beside it a sound class of
// the tests' own, with settings of its own, to show nothing in the parser is
// the network class's.

const FILE = '/etc/shadowd/shadowd.conf';

/** Sound cards: card0..card31, and longer names no interface can have. card0 is also a valid interface name: a bare [Device card0] is for both. */
const TEST_SOUND: ClassDeclaration = {
  ...NET_DECLARATION,
  id: 'sound',
  title: 'sound',
  noun: 'sound card',
  names: { valid: (name: string) => /^[a-z][a-z0-9_]{0,31}$/.test(name), describe: 'a card name (lowercase letters, digits and "_", e.g. card0)' },
  faults: [],
  restartSteps: [],
  restartFields: [],
  failureKinds: [],
  holderKinds: [],
  settings: [
    { key: 'PeriodTimeoutMs', parse: integerSetting(10, 10_000), default: 500, doc: 'a period not completed this long counts as a failure' },
    { key: 'MuteOnRecovery', parse: booleanSetting, default: true, doc: 'mute the card while its driver restarts' },
  ],
  attrs: [],
  kernelLogRules: [],
};

const NET_ONLY = new ClassSet([NET_DECLARATION]);
const NET_SOUND = new ClassSet([NET_DECLARATION, TEST_SOUND]);

const net = (name: string): DeviceRef => ({ cls: 'net', name });
const sound = (name: string): DeviceRef => ({ cls: 'sound', name });

/** A section's values as the parser keeps them. */
function values(policy: SectionValues['policy'], settings: Record<string, number | boolean> = {}): SectionValues {
  return { policy, settings: new Map(Object.entries(settings)) };
}

function ok(text: string, classes: ClassSet = NET_ONLY): Config {
  const r = parseConfig(text, FILE, classes);
  if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
  return r.config;
}

/** The formatted errors of a file that must not parse. */
function errors(text: string, classes: ClassSet = NET_ONLY): string[] {
  const r = parseConfig(text, FILE, classes);
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
    expect(c.classes.get('net')).toEqual(values({ protect: true, maxRecoveries: 5, recoveryWindowSec: 3600, backoffSec: 1, backoffMaxSec: 30 }, { StallThresholdMs: 2000 }));
    expect(c.drivers.get('e1000')).toEqual(values({ maxRecoveries: 2 }));
    expect(c.devices.get('eth1')).toEqual(values({ protect: false }));
  });

  it('tolerates white space around "=" and in indentation, CRLF line ends and every boolean spelling', () => {
    const c = ok('[Device eth0]\r\n  Protect = off \r\n[Device eth1]\nProtect=TRUE\n[Device eth2]\nProtect=0\n[Device eth3]\nProtect=on\n');
    expect([...c.devices.values()].map((p) => p.policy.protect)).toEqual([false, true, false, true]);
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
      ['an unknown key', '[Device eth0]\nFrobnicate=1\n', ':2: Frobnicate: unknown key in [Device eth0] (keys: Protect, MaxRecoveries, RecoveryWindowSec, BackoffSec, BackoffMaxSec, GiveUpRetrySec, GiveUpRetryMaxSec, RecoverWarnings, LostIrqMs, StallThresholdMs)'],
      ['a class setting in [Daemon]', '[Daemon]\nStallThresholdMs=2000\n', ':2: StallThresholdMs: belongs in a [Class], [Driver] or [Device] section, not [Daemon]'],
      ['a class setting in the wrong case', '[Driver e1000]\nstallthresholdms=2000\n', ':2: stallthresholdms: unknown key in [Driver e1000] (did you mean StallThresholdMs?)'],
      ['a key in the wrong case', '[Class net]\nprotect=no\n', ':2: protect: unknown key in [Class net] (did you mean Protect?)'],
      ['a policy key in [Daemon]', '[Daemon]\nProtect=no\n', ':2: Protect: belongs in a [Class], [Driver] or [Device] section, not [Daemon]'],
      ['a daemon key in a device section', '[Device eth0]\nLogLevel=debug\n', ':2: LogLevel: belongs in [Daemon], not [Device eth0]'],
      ['a key set twice', '[Driver e1000]\nBackoffSec=1\n\nBackoffSec=2\n', ':4: BackoffSec: set twice in [Driver e1000] (first at line 2)'],
      ['a back-off cap below the back-off', '[Class net]\nBackoffMaxSec=5\nBackoffSec=10\n', ':2: BackoffMaxSec: must not be less than BackoffSec (10), got 5'],
      ['a retry cap below the retry', '[Class net]\nGiveUpRetryMaxSec=60\nGiveUpRetrySec=600\n', ':2: GiveUpRetryMaxSec: must not be less than GiveUpRetrySec (600), got 60'],
      ['a retry beyond a week', '[Class net]\nGiveUpRetrySec=700000\n', ':2: GiveUpRetrySec: must be an integer from 0 to 604800, got "700000"'],
      ['a key before any section', 'Protect=no\n', ':1: Protect: comes before any section; start the file with [Daemon], [Class NAME], [Driver NAME], [Device CLASS:NAME] or [Device NAME]'],
      ['a line that is not a key', '[Daemon]\nLogLevel\n', ':2: expected "Key=Value", a "[Section]" or a "#" comment, got "LogLevel"'],
      ['a line with no key', '[Daemon]\n=info\n', ':2: no key before "=" in "=info"'],
      ['an unknown section', '[Service]\nProtect=no\n', ':1: unknown section [Service] (sections: [Daemon], [Class NAME], [Driver NAME], [Device CLASS:NAME] or [Device NAME])'],
      ['an unclosed section', '[Daemon\n', ':1: section header "[Daemon" has no closing "]"'],
      ['a named [Daemon]', '[Daemon main]\n', ':1: [Daemon] takes no name'],
      ['an unnamed class', '[Class]\n', ':1: [Class] needs a class name: net'],
      ['an unknown class', '[Class sound]\n', ':1: unknown class "sound" (shadowd knows: net)'],
      ['an unnamed driver', '[Driver]\n', ':1: [Driver] needs a kernel module name, e.g. [Driver e1000]'],
      ['a bad driver name', '[Driver e1000/x]\n', ':1: "e1000/x" is not a kernel module name'],
      ['an unnamed device', '[Device]\n', ':1: [Device] needs a device: [Device CLASS:NAME] (classes: net), or [Device NAME] for that name in any class'],
      [
        'a device name too long',
        '[Device enp0s31f6abcdefgh]\n',
        ':1: "enp0s31f6abcdefgh" is not a device name in any class: a net device name must be an interface name (1-15 bytes, no "/", ":" or spaces)',
      ],
      ['a device of an unknown class', '[Device eth0:1]\n', ':1: unknown device class "eth0" (classes: net)'],
      ['a qualified device name the class refuses', '[Device net:a/b]\n', ':1: "a/b" is not a net device name: it must be an interface name (1-15 bytes, no "/", ":" or spaces)'],
      ['a qualified device with no name', '[Device net:]\n', ':1: "" is not a net device name: it must be an interface name (1-15 bytes, no "/", ":" or spaces)'],
      ['a qualified section twice', '[Device net:eth0]\n[Device net:eth0]\n', ':2: [Device net:eth0] appears twice (first at line 1)'],
      ['a section twice', '[Device eth0]\n[Daemon]\n[Device eth0]\n', ':3: [Device eth0] appears twice (first at line 1)'],
      ['a driver twice, spelt with - and _', '[Driver snd_intel8x0]\n[Driver snd-intel8x0]\n', ':2: [Driver snd-intel8x0] appears twice (first at line 1)'],
    ])('%s', (_what, text, want) => {
      expect(errors(text)).toEqual([`${FILE}${want}`]);
    });

    it('lists every error, in line order, and one only for the keys of a bad section', () => {
      expect(errors('[Daemon]\nLogLevel=loud\n[Device a/b]\nProtect=maybe\nMaxRecoveries=0\n[Device eth0]\nMaxRecoveries=0\n')).toEqual([
        `${FILE}:2: LogLevel: must be one of err, warning, notice, info, debug, got "loud"`,
        `${FILE}:3: "a/b" is not a device name in any class: a net device name must be an interface name (1-15 bytes, no "/", ":" or spaces)`,
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
    const r = loadConfig(path, NET_ONLY);
    expect(r.ok && r.config.devices.get('eth0')).toEqual(values({ protect: false }));
    expect(r.ok && r.config.file).toBe(path);
  });

  it('gives the defaults when there is no file', () => {
    const r = loadConfig(join(dir, 'none.conf'), NET_ONLY);
    expect(r).toEqual({ ok: true, config: defaultConfig() });
  });

  it('reports a file it cannot read, without a line', () => {
    const r = loadConfig(dir, NET_ONLY);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.map(formatConfigError)).toEqual([`${dir}: cannot read: EISDIR: illegal operation on a directory, read`]);
  });

  it('reads the example file shipped in systemd/, whose settings are the defaults', () => {
    const path = new URL('../../../systemd/shadowd.conf.example', import.meta.url).pathname;
    // Against the classes shadowd registers: the example must hold every one of their settings.
    const classes = new ClassSet(CLASSES);
    const r = loadConfig(path, classes);
    if (!r.ok) throw new Error(r.errors.map(formatConfigError).join('\n'));
    expect(r.config.daemon).toEqual(DEFAULT_DAEMON);
    expect(policyFor(r.config, net('eth9'), 'virtio_net')).toEqual(DEFAULT_POLICY);
    // Every key appears in it, commented out, with its default.
    const text = readFileSync(path, 'utf8');
    for (const key of ['LogLevel', 'AllowFaultInjection', 'MetricsTextfile', 'MetricsIntervalSec', 'Protect', 'MaxRecoveries', 'RecoveryWindowSec', 'BackoffSec', 'BackoffMaxSec']) {
      expect(text).toMatch(new RegExp(`^#${key}=`, 'm'));
    }
    for (const cls of classes.all) {
      // Each class has its [Class ID] section, with its settings' defaults under it.
      const section = new RegExp(`^\\[Class ${cls.id}\\]$([^[]*)`, 'm').exec(text)?.[1] ?? '';
      for (const s of cls.settings) {
        const shown = typeof s.default === 'boolean' ? (s.default ? 'yes' : 'no') : String(s.default);
        expect(section).toMatch(new RegExp(`^#${s.key}=${shown}$`, 'm'));
        expect(settingFor(r.config, classes, { cls: cls.id, name: 'x' }, null, s.key)).toBe(s.default);
      }
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
    expect(policyFor(defaultConfig(), net('eth0'), 'e1000')).toEqual(DEFAULT_POLICY);
    expect(settingFor(defaultConfig(), NET_ONLY, net('eth0'), 'e1000', 'StallThresholdMs')).toBe(1000);
  });

  it('takes each key from the device, else the driver, else the class, else the default', () => {
    expect(policyFor(config, net('eth1'), 'e1000')).toEqual({ ...DEFAULT_POLICY, protect: false, maxRecoveries: 9, backoffSec: 4, backoffMaxSec: 10 });
    expect(policyFor(config, net('eth0'), 'e1000')).toEqual({ ...DEFAULT_POLICY, maxRecoveries: 2, backoffSec: 4, backoffMaxSec: 10 });
    expect(policyFor(config, net('eth2'), 'pcnet32')).toEqual({ ...DEFAULT_POLICY, maxRecoveries: 5, backoffSec: 4 });
    expect(policyFor(config, net('eth2'), null)).toEqual(policyFor(config, net('eth2'), 'pcnet32'));
    for (const name of ['eth0', 'eth1', 'eth2']) expect(settingFor(config, NET_ONLY, net(name), 'e1000', 'StallThresholdMs')).toBe(3000);
  });

  it('matches driver names with - and _ alike', () => {
    expect(policyFor(config, net('x'), 'snd_intel8x0').protect).toBe(false);
    expect(policyFor(ok('[Driver snd_intel8x0]\nProtect=no\n'), net('x'), 'snd-intel8x0').protect).toBe(false);
  });

  it('keeps the back-off cap at least the back-off when they come from different sections', () => {
    const c = ok('[Class net]\nBackoffMaxSec=3\n[Device eth0]\nBackoffSec=20\n');
    expect(policyFor(c, net('eth0'), null)).toMatchObject({ backoffSec: 20, backoffMaxSec: 20 });
  });

  it("throws for a setting the device's class does not declare: the caller's mistake", () => {
    expect(() => settingFor(config, NET_ONLY, net('eth0'), null, 'PeriodTimeoutMs')).toThrow('class net declares no setting "PeriodTimeoutMs"');
    expect(() => settingFor(config, NET_ONLY, sound('card0'), null, 'PeriodTimeoutMs')).toThrow('no device class "sound" is registered');
  });
});

describe('device sections: qualified [Device CLASS:NAME] and bare [Device NAME]', () => {
  it('reads a qualified section, keyed as written, for that class only', () => {
    const c = ok('[Device net:eth0]\nProtect=no\nStallThresholdMs=250\n[Device sound:card0]\nMaxRecoveries=7\nPeriodTimeoutMs=40\n', NET_SOUND);
    expect(c.devices.get('net:eth0')).toEqual(values({ protect: false }, { StallThresholdMs: 250 }));
    expect(policyFor(c, net('eth0'), null).protect).toBe(false);
    expect(settingFor(c, NET_SOUND, net('eth0'), null, 'StallThresholdMs')).toBe(250);
    // The same name in another class is another device.
    expect(policyFor(c, sound('eth0'), null)).toEqual(DEFAULT_POLICY);
    expect(policyFor(c, net('card0'), null)).toEqual(DEFAULT_POLICY);
    expect(policyFor(c, sound('card0'), null).maxRecoveries).toBe(7);
    expect(settingFor(c, NET_SOUND, sound('card0'), null, 'PeriodTimeoutMs')).toBe(40);
    expect(settingFor(c, NET_SOUND, sound('card1'), null, 'PeriodTimeoutMs')).toBe(500);
  });

  it('applies a bare section to a device of that name in any class', () => {
    const c = ok('[Device card0]\nProtect=no\n', NET_SOUND);
    expect(policyFor(c, net('card0'), null).protect).toBe(false);
    expect(policyFor(c, sound('card0'), null).protect).toBe(false);
    expect(policyFor(c, net('card1'), null).protect).toBe(true);
  });

  it('takes each key from the qualified section over the bare one, and the bare one over the driver and class', () => {
    const c = ok(
      `
[Device net:eth0]
MaxRecoveries=8
[Class net]
MaxRecoveries=5
StallThresholdMs=5000
[Driver e1000]
BackoffSec=9
[Device eth0]
Protect=no
MaxRecoveries=2
StallThresholdMs=2000
`,
      NET_SOUND,
    );
    // Order in the file does not matter: the qualified section wins key by key, the bare one gives the rest.
    expect(policyFor(c, net('eth0'), 'e1000')).toEqual({ ...DEFAULT_POLICY, protect: false, maxRecoveries: 8, backoffSec: 9 });
    expect(settingFor(c, NET_SOUND, net('eth0'), 'e1000', 'StallThresholdMs')).toBe(2000);
    expect(policyFor(c, sound('eth0'), 'e1000')).toEqual({ ...DEFAULT_POLICY, protect: false, maxRecoveries: 2, backoffSec: 9 });
    expect(policyFor(c, net('eth1'), 'e1000')).toEqual({ ...DEFAULT_POLICY, maxRecoveries: 5, backoffSec: 9 });
    expect(settingFor(c, NET_SOUND, net('eth1'), 'e1000', 'StallThresholdMs')).toBe(5000);
  });

  it('names the known classes for an unknown one, and checks the name by its class', () => {
    expect(errors('[Device block:sda]\nProtect=no\n', NET_SOUND)).toEqual([`${FILE}:1: unknown device class "block" (classes: net, sound)`]);
    expect(errors('[Device sound:Card0]\n', NET_SOUND)).toEqual([
      `${FILE}:1: "Card0" is not a sound device name: it must be a card name (lowercase letters, digits and "_", e.g. card0)`,
    ]);
    expect(errors('[Device a/b]\n', NET_SOUND)).toEqual([
      `${FILE}:1: "a/b" is not a device name in any class: a net device name must be an interface name (1-15 bytes, no "/", ":" or spaces); a sound device name must be a card name (lowercase letters, digits and "_", e.g. card0)`,
    ]);
    // Valid in one class is enough for a bare name.
    expect(ok('[Device longsoundcardname0]\nProtect=no\n', NET_SOUND).devices.get('longsoundcardname0')).toEqual(values({ protect: false }));
  });

  it('accepts in a device section the settings of its class, or of the classes that allow a bare name, and says why not the others', () => {
    expect(ok('[Device card0]\nStallThresholdMs=300\nPeriodTimeoutMs=30\n', NET_SOUND).devices.get('card0')).toEqual(values({}, { StallThresholdMs: 300, PeriodTimeoutMs: 30 }));
    expect(errors('[Device net:eth0]\nPeriodTimeoutMs=30\n', NET_SOUND)).toEqual([`${FILE}:2: PeriodTimeoutMs: is a setting of class sound, not net`]);
    expect(errors('[Device sound:card0]\nStallThresholdMs=300\n', NET_SOUND)).toEqual([`${FILE}:2: StallThresholdMs: is a setting of class net, not sound`]);
    expect(errors('[Device longsoundcardname0]\nStallThresholdMs=300\n', NET_SOUND)).toEqual([
      `${FILE}:2: StallThresholdMs: is a setting of class net, and "longsoundcardname0" is not a device name there: a net device name must be an interface name (1-15 bytes, no "/", ":" or spaces)`,
    ]);
    expect(errors('[Device sound:card0]\nFrobnicate=1\n', NET_SOUND)).toEqual([
      `${FILE}:2: Frobnicate: unknown key in [Device sound:card0] (keys: Protect, MaxRecoveries, RecoveryWindowSec, BackoffSec, BackoffMaxSec, GiveUpRetrySec, GiveUpRetryMaxSec, RecoverWarnings, LostIrqMs, PeriodTimeoutMs, MuteOnRecovery)`,
    ]);
  });
});

describe('class settings come from the class declarations', () => {
  it("accepts a class's settings in its [Class] section, with its parser, and refuses another class's", () => {
    const c = ok('[Class sound]\nPeriodTimeoutMs=40\nMuteOnRecovery=no\nMaxRecoveries=4\n[Class net]\nStallThresholdMs=2000\n', NET_SOUND);
    expect(c.classes.get('sound')).toEqual(values({ maxRecoveries: 4 }, { PeriodTimeoutMs: 40, MuteOnRecovery: false }));
    expect(settingFor(c, NET_SOUND, sound('card3'), null, 'MuteOnRecovery')).toBe(false);
    expect(settingFor(c, NET_SOUND, net('eth0'), null, 'StallThresholdMs')).toBe(2000);
    expect(policyFor(c, sound('card3'), null).maxRecoveries).toBe(4);
    expect(policyFor(c, net('eth0'), null).maxRecoveries).toBe(3);
    expect(errors('[Class net]\nPeriodTimeoutMs=40\n', NET_SOUND)).toEqual([`${FILE}:2: PeriodTimeoutMs: is a setting of class sound, not net`]);
    expect(errors('[Class sound]\nStallThresholdMs=2000\n', NET_SOUND)).toEqual([`${FILE}:2: StallThresholdMs: is a setting of class net, not sound`]);
    expect(errors('[Class sound]\nPeriodTimeoutMs=5\n', NET_SOUND)).toEqual([`${FILE}:2: PeriodTimeoutMs: must be an integer from 10 to 10000, got "5"`]);
    expect(errors('[Class sound]\nperiodtimeoutms=50\n', NET_SOUND)).toEqual([`${FILE}:2: periodtimeoutms: unknown key in [Class sound] (did you mean PeriodTimeoutMs?)`]);
    expect(errors('[Class]\n', NET_SOUND)).toEqual([`${FILE}:1: [Class] needs a class name: net, sound`]);
  });

  it("accepts any class's settings in a [Driver] section, each for the devices of its class", () => {
    const c = ok('[Driver snd-hda-intel]\nPeriodTimeoutMs=80\nStallThresholdMs=4000\n', NET_SOUND);
    expect(c.drivers.get('snd_hda_intel')).toEqual(values({}, { PeriodTimeoutMs: 80, StallThresholdMs: 4000 }));
    expect(settingFor(c, NET_SOUND, sound('card0'), 'snd_hda_intel', 'PeriodTimeoutMs')).toBe(80);
    expect(settingFor(c, NET_SOUND, net('eth0'), 'snd-hda-intel', 'StallThresholdMs')).toBe(4000);
    expect(settingFor(c, NET_SOUND, sound('card0'), 'other', 'PeriodTimeoutMs')).toBe(500);
    // Without the class registered, its key is unknown.
    expect(errors('[Driver snd-hda-intel]\nPeriodTimeoutMs=80\n')).toEqual([
      `${FILE}:2: PeriodTimeoutMs: unknown key in [Driver snd-hda-intel] (keys: Protect, MaxRecoveries, RecoveryWindowSec, BackoffSec, BackoffMaxSec, GiveUpRetrySec, GiveUpRetryMaxSec, RecoverWarnings, LostIrqMs, StallThresholdMs)`,
    ]);
  });

  it('refuses the whole file for one bad class setting', () => {
    const r = parseConfig('[Daemon]\nLogLevel=debug\n[Class sound]\nMuteOnRecovery=maybe\n[Device eth0]\nProtect=no\n', FILE, NET_SOUND);
    expect(r).toEqual({ ok: false, errors: [{ file: FILE, line: 4, key: 'MuteOnRecovery', message: 'must be yes or no, got "maybe"' }] });
  });
});
