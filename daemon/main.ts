#!/usr/bin/env node
// shadowd: attaches the class taps, keeps the shadow of every watched device
// in the state directory, and answers shadowctl on the control socket. Runs
// as the systemd service of systemd/shadowd.service, and just as well in the
// foreground. This file reads the command line; service/shadowd-service.ts
// is the service. Only what the start needs before bpftrace is spawned is
// imported here: the classes' runtimes (classes/registry.ts) and the rest of
// the service are loaded while bpftrace compiles.
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { DECLARATIONS } from './classes/declarations.js';
import { bootModules } from './core/kernel-modules.js';
import { TAP_ENGINES, type TapEngineChoice } from './core/precompiled-taps.js';
import { PRIORITY, serviceLogger, type Priority } from './service/log.js';
import { defaultConfigPath } from './service/running-config.js';
import { ShadowdService, StartError } from './service/shadowd-service.js';
import { notifier } from './service/systemd-notify.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const HELP = `Usage: shadowd [options]

Keeps a shadow of the state of every device of its classes (${DECLARATIONS.map((c) => c.id).join(', ')}),
from eBPF taps on the kernel's class interfaces, recovers a device whose driver
fails, and answers shadowctl on its control socket.
Runs as root (it loads eBPF programs). Under systemd (systemd/shadowd.service)
it reports readiness and feeds the watchdog, and logs native journal entries;
in the foreground it logs to stderr with <N> priority prefixes. SIGHUP
re-reads the configuration (a file with errors is refused; the running
configuration stays).

Options:
  --config FILE       the configuration (docs/configuration.md); a missing file
                      means the defaults, a file with errors stops the start
                      [default: $CONFIGURATION_DIRECTORY/shadowd.conf or
                      /etc/shadowd/shadowd.conf]
  --state-dir DIR     where the shadow state (SQLite) is kept
                      [default: $STATE_DIRECTORY or /var/lib/shadowd]
  --runtime-dir DIR   where the control socket is created
                      [default: $RUNTIME_DIRECTORY or /run/shadowd]
  --bpftrace FILE     the bpftrace binary [default: bpftrace]
  --taps ENGINE       what runs the taps: auto, bpftrace or libbpf. libbpf
                      runs the classes' precompiled objects under taps-loader
                      (bpf/libbpf/build/, made by npm run build:taps): seconds
                      and a hundred MB less than bpftrace compiling them at
                      each start; auto takes them when every class has one
                      [default: auto]
  --allow-faults      accept shadowctl inject (fault injection, for tests), as
                      AllowFaultInjection=yes does; the helper module must be
                      loaded with allow_faults=1 too
  --log-level LEVEL   least important messages to log: ${Object.keys(PRIORITY).join(', ')};
                      overrides LogLevel= [default: LogLevel=, else info]
  --boot-modules      print the kernel modules shadowd needs loaded, one a
                      line: the helper and every class's tap modules
                      (install.sh writes them to /etc/modules-load.d: the
                      service cannot load modules itself)
  --version           print the version
  --help              print this help

Example: shadowd --state-dir /var/lib/shadowd   (run in the foreground, as root)
`;

// node:util's parser rather than yargs: the daemon keeps its resident memory
// small (see run-program.ts); shadowctl, run by people, uses yargs.
let parsed;
try {
  parsed = parseArgs({
    options: {
      'state-dir': { type: 'string', default: process.env['STATE_DIRECTORY'] ?? '/var/lib/shadowd' },
      'runtime-dir': { type: 'string', default: process.env['RUNTIME_DIRECTORY'] ?? '/run/shadowd' },
      config: { type: 'string', default: defaultConfigPath() },
      bpftrace: { type: 'string', default: 'bpftrace' },
      taps: { type: 'string', default: 'auto' },
      // No default: given, it overrides LogLevel=.
      'log-level': { type: 'string' },
      'allow-faults': { type: 'boolean', default: false },
      version: { type: 'boolean', default: false },
      'boot-modules': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
    allowPositionals: false,
  }).values;
} catch (err) {
  console.error(`shadowd: ${err instanceof Error ? err.message : String(err)}\nTry shadowd --help.`);
  process.exit(2);
}
if (parsed.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
if (parsed.version) {
  console.log(VERSION);
  process.exit(0);
}
if (parsed['boot-modules']) {
  console.log(bootModules(DECLARATIONS).join('\n'));
  process.exit(0);
}
if (parsed['log-level'] !== undefined && !(parsed['log-level'] in PRIORITY)) {
  console.error(`shadowd: --log-level must be one of ${Object.keys(PRIORITY).join(', ')}, not ${JSON.stringify(parsed['log-level'])}`);
  process.exit(2);
}
if (!(TAP_ENGINES as readonly string[]).includes(parsed.taps)) {
  console.error(`shadowd: --taps must be one of ${TAP_ENGINES.join(', ')}, not ${JSON.stringify(parsed.taps)}`);
  process.exit(2);
}
const argv = parsed;

const cliLogLevel = argv['log-level'] as Priority | undefined;
const logger = serviceLogger(cliLogLevel ?? 'info');
const notify = notifier();
const service = new ShadowdService({
  version: VERSION,
  classes: DECLARATIONS,
  runtimes: async () => (await import('./classes/registry.js')).CLASSES,
  // Absolute, so every message names the file unambiguously.
  configPath: resolve(argv.config),
  stateDir: argv['state-dir'],
  runtimeDir: argv['runtime-dir'],
  bpftrace: argv.bpftrace,
  taps: argv.taps as TapEngineChoice,
  allowFaults: argv['allow-faults'],
  logLevel: cliLogLevel,
  logger,
  notify,
});
// SIGHUP's default is to end the process: a reload asked for during the start waits until the daemon is ready.
process.on('SIGHUP', () => service.onSighup());
let stopping = false;
const stop = (signal: string): void => {
  if (stopping) return;
  stopping = true;
  void service.stop(signal).finally(() => process.exit(0));
};
process.on('SIGTERM', () => stop('SIGTERM'));
process.on('SIGINT', () => stop('SIGINT'));
try {
  await service.start();
} catch (err) {
  const message = err instanceof Error ? err.message : String(err);
  // A StartError is logged already.
  if (!(err instanceof StartError)) logger.log('err', `cannot start: ${message}`);
  notify.status(err instanceof StartError ? err.status : `failed to start: ${message}`);
  process.exit(1);
}
