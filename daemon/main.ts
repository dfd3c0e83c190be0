#!/usr/bin/env node
// shadowd: attaches the class taps, keeps the shadow of every watched device
// in the state directory, and answers shadowctl on the control socket.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { PROTOCOL_VERSION, type HistoryResult, type Request, type StatusResult, type VersionResult } from './control-protocol.js';
import { startControlServer, type ControlServer } from './control-server.js';
import { helperConnection } from './helper-connection.js';
import { startDetectors, type Detectors } from './detectors.js';
import { helperTxstat } from './stall-detector.js';
import { planReplay, runReplay, type ReplayReport } from './netdev-replay.js';
import { stagingCommands } from './netdev-staging.js';
import { snapshotDevice, type JsonValue } from './netdev-snapshot.js';
import { Ingest } from './ingest.js';
import { PRIORITY, stderrLogger, type Priority } from './log.js';
import { NetdevShadow } from './netdev-shadow.js';
import type { PeerCredentials } from './peer-credentials.js';
import { RecoveryHistory } from './recovery-history.js';
import { RecoveryManager, type DeviceInfo } from './recovery-manager.js';
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
  --allow-faults      accept shadowctl inject (fault injection, for tests); the
                      helper module must be loaded with allow_faults=1 too
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
      'allow-faults': { type: 'boolean', default: false },
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
let detectors: Detectors | null = null;
const ingest = new Ingest({
  program: argv.program,
  bpftrace: argv.bpftrace,
  logger,
  onTxTimeout: (e) => detectors?.onTapEvent(e),
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

// Recovery starts once the shadow is ready: a restart replays what it holds.
// The helper module is opened at the first recovery, so passive mode runs without it.
const helper = helperConnection();
const lookupDevice = (name: string): DeviceInfo | null => {
  const named = shadow.status().filter((d) => d.name === name);
  const d = named.find((x) => x.health === 'ok') ?? named[0];
  return d ? { driver: d.driver, ifindex: d.ifindex } : null;
};
// The shadow's entries for a device by its name, as show() finds it.
const shadowEntries = (name: string): { key: string; value: JsonValue }[] => store.entries(shadow.show(name).device.id);
// After a driver was reloaded by hand: make the device match its shadow again.
const replayShadow = async (name: string): Promise<ReplayReport> => {
  const plan = planReplay(shadowEntries(name), await snapshotDevice(name));
  return runReplay(name, plan);
};
let history: RecoveryHistory;
let recovery: RecoveryManager;
try {
  history = new RecoveryHistory(store.database);
  recovery = new RecoveryManager({ history, logger, helper: () => helper.get(), lookup: lookupDevice,
    stage: (name) => stagingCommands(name, shadowEntries(name)),
    replay: replayShadow,
    faultInjection: () => argv['allow-faults'] });
  recovery.start();
} catch (err) {
  fatal('cannot open the recovery history', err);
}
// The stall detector's polls have their own connection: one must not queue
// behind a restart that holds the other.
const txHelper = helperConnection();
detectors = startDetectors({
  logger,
  report: (f) => void recovery.report(f),
  devices: () => shadow.status().filter((d) => d.health === 'ok').map((d) => d.name),
  txstat: helperTxstat(() => txHelper.get()),
});
const requester = (peer: PeerCredentials | null): string | undefined => (peer ? `uid ${peer.uid} (pid ${peer.pid})` : undefined);

const handler = (req: Request, peer: PeerCredentials | null): Promise<unknown> => {
  switch (req.method) {
    case 'status':
      return Promise.resolve<StatusResult>({ version: VERSION, pid: process.pid, startedAt, taps: { ...ingest.stats }, pendingReads: shadow.pendingReads(), devices: shadow.status().map((d) => (recovery.isActive(d.name) ? { ...d, mode: 'active' as const } : d)) });
    case 'show':
      return Promise.resolve(shadow.show(req.params.device));
    case 'version':
      return Promise.resolve<VersionResult>({ version: VERSION, protocol: PROTOCOL_VERSION });
    case 'recover':
      return recovery.recover(req.params.device, requester(peer));
    case 'replay':
      return recovery.replay(req.params.device, requester(peer));
    case 'inject':
      return recovery.inject(req.params.device, req.params.fault, req.params.sticky, requester(peer));
    case 'history':
      return Promise.resolve<HistoryResult>({ recoveries: history.list(req.params) });
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
  await detectors?.stop();
  await ingest.stop();
  await shadow.settled();
  await recovery.stop();
  await helper.close();
  await txHelper.close();
  await server.close();
  store.close();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
