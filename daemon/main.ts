#!/usr/bin/env node
// shadowd: attaches the class taps, keeps the shadow of every watched device
// in the state directory, and answers shadowctl on the control socket.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PROTOCOL_VERSION, type Request, type StatusResult, type VersionResult } from './control-protocol.js';
import { startControlServer, type ControlServer } from './control-server.js';
import { Ingest } from './ingest.js';
import { PRIORITY, stderrLogger, type Priority } from './log.js';
import { NetdevShadow } from './netdev-shadow.js';
import { ShadowStore } from './shadow-store.js';
import type { TapEvent } from './tap-record.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const HELP = `Usage: shadowd [options]

Keeps a shadow of every network device's configuration, from eBPF taps on the
kernel's network class interface, and answers shadowctl on its control socket.
Runs as root (it loads eBPF programs). Logs go to stderr with <N> priority
prefixes, which journald reads when it runs as a service.

Options:
  --state-dir DIR     where the shadow state (SQLite) is kept
                      [default: $STATE_DIRECTORY or /var/lib/shadowd]
  --runtime-dir DIR   where the control socket is created
                      [default: $RUNTIME_DIRECTORY or /run/shadowd]
  --program FILE      the network class tap program [default: bpf/netdev-class.bt]
  --bpftrace FILE     the bpftrace binary [default: bpftrace]
  --log-level LEVEL   least important messages to log: ${Object.keys(PRIORITY).join(', ')} [default: info]
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
      program: { type: 'string', default: fileURLToPath(new URL('../../bpf/netdev-class.bt', import.meta.url)) },
      bpftrace: { type: 'string', default: 'bpftrace' },
      'log-level': { type: 'string', default: 'info' },
      version: { type: 'boolean', default: false },
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
if (!(parsed['log-level'] in PRIORITY)) {
  console.error(`shadowd: --log-level must be one of ${Object.keys(PRIORITY).join(', ')}, not ${JSON.stringify(parsed['log-level'])}`);
  process.exit(2);
}
const argv = parsed;

const logger = stderrLogger(argv['log-level'] as Priority);
const startedAt = Date.now();

function fatal(what: string, err: unknown): never {
  logger.log('err', `${what}: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
}

let store: ShadowStore;
try {
  mkdirSync(argv['state-dir'], { recursive: true, mode: 0o750 });
  mkdirSync(argv['runtime-dir'], { recursive: true, mode: 0o755 });
  store = new ShadowStore(join(argv['state-dir'], 'state.db'));
} catch (err) {
  fatal(`cannot open the state in ${argv['state-dir']}`, err);
}

const shadow = new NetdevShadow(store, logger);
// Events that arrive while the first read of the devices runs wait for it:
// applied before it, they would find no adopted device.
let early: TapEvent[] | null = [];
const ingest = new Ingest({
  program: argv.program,
  bpftrace: argv.bpftrace,
  logger,
  onEvents: (batch) => (early ? early.push(...batch) : shadow.applyBatch(batch)),
  onGap: (why) => void shadow.requestResync(why),
});

try {
  await ingest.start();
} catch (err) {
  fatal('cannot attach the taps', err);
}
try {
  await shadow.resync('start-up');
} catch (err) {
  fatal('cannot read the network devices', err);
}
shadow.applyBatch(early);
early = null;

const handler = (req: Request): Promise<unknown> => {
  switch (req.method) {
    case 'status':
      return Promise.resolve<StatusResult>({ version: VERSION, pid: process.pid, startedAt, taps: { ...ingest.stats }, pendingReads: shadow.pendingReads(), devices: shadow.status() });
    case 'show':
      return Promise.resolve(shadow.show(req.params.device));
    case 'version':
      return Promise.resolve<VersionResult>({ version: VERSION, protocol: PROTOCOL_VERSION });
  }
};
const socketPath = join(argv['runtime-dir'], 'control.sock');
let server: ControlServer;
try {
  server = await startControlServer(socketPath, handler, logger);
} catch (err) {
  fatal(`cannot listen on ${socketPath}`, err);
}
logger.log('notice', `shadowd ${VERSION} ready: ${ingest.stats.probes} probes attached, ${shadow.status().length} device(s), control socket ${socketPath}`);

let stopping = false;
async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  logger.log('notice', `stopping on ${signal}`);
  await ingest.stop();
  await shadow.settled();
  await server.close();
  store.close();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
