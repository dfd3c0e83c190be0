#!/usr/bin/env node
// shadowd: attaches the class taps, keeps the shadow of every watched device
// in the state directory, and answers shadowctl on the control socket. Runs
// as the systemd service of systemd/shadowd.service (Type=notify: READY=1
// once taps, state and socket are up; watchdog; SIGHUP reloads the
// configuration), and just as well in the foreground.
import { mkdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { CONTROL_GROUP, lookupGroup, prepareRuntimeDir } from './control/control-access.js';
import { PROTOCOL_VERSION, RequestError, type HistoryResult, type ReloadResult, type Request, type StatusResult, type VersionResult } from './control/control-protocol.js';
import { startControlServer, type ControlServer } from './control/control-server.js';
import { helperConnection } from './core/helper-connection.js';
import { startDetectors, type Detectors } from './core/detectors.js';
import { helperTxstat } from './classes/net/stall-detector.js';
import { Ingest } from './core/ingest.js';
import { PRIORITY, serviceLogger, type Priority } from './service/log.js';
import { Metrics, MetricsWriter, recordFinished, shadowEntriesByDevice } from './service/metrics.js';
import { NetdevShadow } from './classes/net/netdev-shadow.js';
import type { PeerCredentials } from './control/peer-credentials.js';
import { RecoveryHistory } from './core/recovery-history.js';
import { RecoveryManager, type DeviceInfo } from './core/recovery-manager.js';
import { defaultConfigPath, protectFilter, RunningConfig } from './service/running-config.js';
import { shadowReplay } from './core/shadow-replay.js';
import { ShadowStore } from './core/shadow-store.js';
import { notifier } from './service/systemd-notify.js';
import type { TapEvent } from './core/tap-record.js';

const VERSION = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

const HELP = `Usage: shadowd [options]

Keeps a shadow of every network device's configuration, from eBPF taps on the
kernel's network class interface, and answers shadowctl on its control socket.
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
  --program FILE      the network class tap program [default: bpf/netdev-class.bt]
  --bpftrace FILE     the bpftrace binary [default: bpftrace]
  --allow-faults      accept shadowctl inject (fault injection, for tests), as
                      AllowFaultInjection=yes does; the helper module must be
                      loaded with allow_faults=1 too
  --log-level LEVEL   least important messages to log: ${Object.keys(PRIORITY).join(', ')};
                      overrides LogLevel= [default: LogLevel=, else info]
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
      program: { type: 'string', default: fileURLToPath(new URL('../../bpf/netdev-class.bt', import.meta.url)) },
      bpftrace: { type: 'string', default: 'bpftrace' },
      // No default: given, it overrides LogLevel=.
      'log-level': { type: 'string' },
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
if (parsed['log-level'] !== undefined && !(parsed['log-level'] in PRIORITY)) {
  console.error(`shadowd: --log-level must be one of ${Object.keys(PRIORITY).join(', ')}, not ${JSON.stringify(parsed['log-level'])}`);
  process.exit(2);
}
const argv = parsed;

const cliLogLevel = argv['log-level'] as Priority | undefined;
const logger = serviceLogger(cliLogLevel ?? 'info');
const notify = notifier();
const startedAt = Date.now();

function fatal(what: string, err: unknown): never {
  const message = `${what}: ${err instanceof Error ? err.message : String(err)}`;
  logger.log('err', message);
  notify.status(`failed to start: ${message}`);
  process.exit(1);
}

// SIGHUP's default is to end the process: a reload asked for during the
// start (systemctl reload while it starts) waits until the daemon is ready.
let started = false;
let reloadWanted = false;
let stopping = false;
process.on('SIGHUP', () => {
  if (!started) reloadWanted = true;
  else if (!stopping) reloadFromSignal('SIGHUP');
});

// The metrics writer exists only once there is something to count; until then the configuration has nothing to apply it to.
let metricsWriter: MetricsWriter | null = null;
const configured = RunningConfig.start({
  // Absolute, so every message names the file unambiguously.
  path: resolve(argv.config),
  logger,
  logLevel: cliLogLevel,
  allowFaults: argv['allow-faults'],
  onApply: (c) => metricsWriter?.configure(c.daemon.metricsTextfile, c.daemon.metricsIntervalSec),
});
if (!configured.ok) {
  // Each error is logged already, with file, line and key.
  const n = configured.errors.length;
  logger.log('err', `not starting: ${resolve(argv.config)} has ${n} error${n === 1 ? '' : 's'} (docs/configuration.md describes the format)`);
  notify.status(`not started: ${n} error${n === 1 ? '' : 's'} in ${resolve(argv.config)}`);
  process.exit(1);
}
const running = configured.running;

// Members of the shadowd group may run read-only shadowctl commands; without the group only root can use the socket.
let group = lookupGroup(CONTROL_GROUP);
if (group === null) logger.log('notice', `there is no ${CONTROL_GROUP} group: only root can use shadowctl (groupadd --system ${CONTROL_GROUP}, then restart shadowd, lets its members run read-only commands)`);

let store: ShadowStore;
try {
  mkdirSync(argv['state-dir'], { recursive: true, mode: 0o750 });
  // systemd made $RUNTIME_DIRECTORY for us; a directory given with --runtime-dir that was already there is not ours to change.
  const adopt = argv['runtime-dir'] === process.env['RUNTIME_DIRECTORY'];
  try {
    prepareRuntimeDir(argv['runtime-dir'], group, adopt);
  } catch (err) {
    if (group === null) throw err;
    logger.log('warning', `cannot give ${argv['runtime-dir']} to the ${CONTROL_GROUP} group: ${err instanceof Error ? err.message : String(err)}; only root can use shadowctl`);
    group = null;
    prepareRuntimeDir(argv['runtime-dir'], null, adopt);
  }
  store = new ShadowStore(join(argv['state-dir'], 'state.db'));
} catch (err) {
  fatal(`cannot open the state in ${argv['state-dir']}`, err);
}

// The recovery manager exists once the shadow is ready; until then nothing restarts.
let isRestarting: (name: string) => boolean = () => false;
const shadow = new NetdevShadow(store, logger, { restarting: (name) => isRestarting(name) });
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

notify.status('attaching the network class taps (bpftrace compiles them)');
try {
  await ingest.start();
} catch (err) {
  fatal('cannot attach the taps', err);
}
notify.status(`${ingest.stats.probes} taps attached; reading the network devices`);
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
// The driver of the device of that name, for per-driver policy; asked at every
// stall poll, so one query rather than the whole status.
const driverOf = (name: string): string | null => {
  const named = store.devices().filter((d) => d.name === name);
  return (named.find((d) => d.present) ?? named[0])?.driver ?? null;
};
// Replays from the shadow: after a driver was reloaded by hand (shadowctl
// replay), and after the helper restarted one (what the restart lost). Each
// brings the shadow up to date with the taps first, so that it does not undo
// what another process has just set (shadow-replay.ts).
const replayer = shadowReplay({
  // The shadow's entries for a device by its name, as show() finds it.
  entries: (name) => store.entries(shadow.show(name).device.id),
  changes: () => store.changes,
  sync: async () => {
    await ingest.sync();
    await shadow.caughtUp();
  },
  logger,
});
const metrics = new Metrics(startedAt);
let history: RecoveryHistory;
let recovery: RecoveryManager;
notify.status('loading the recovery history');
try {
  history = new RecoveryHistory(store.database);
  recovery = new RecoveryManager({ history, logger, helper: () => helper.get(), lookup: lookupDevice,
    // Nothing is staged (netdev-staging.ts): a value staged from the shadow
    // would override one another process sets between the staging and the
    // restart. Unstaged, the helper replays what the driver holds as it stops
    // it, under RTNL, with what was set while the shadow answered; what the
    // failed driver misreported, the replay after the restart corrects.
    markShadow: (name) => replayer.mark(name),
    replay: (name, _id, restartMark) => replayer.replay(name, restartMark),
    // Asked at each decision, so a reload takes effect at once.
    policy: (device, driver) => running.recoveryPolicy(device, driver),
    faultInjection: () => running.faultInjection(),
    onFinished: (rec) => recordFinished(metrics, rec) });
  recovery.start();
  // The helper keeps the net_device through a restart and a park: the taps
  // seeing the driver let go of it does not mean the device went away.
  isRestarting = (name) => {
    const st = recovery.deviceState(name);
    return st.recoveryId !== null || st.gaveUp !== null;
  };
} catch (err) {
  fatal('cannot open the recovery history', err);
}
// The stall detector's polls have their own connection: one must not queue
// behind a restart that holds the other.
const txHelper = helperConnection();
detectors = startDetectors({
  logger,
  // Protect=no: the failure is logged, and no recovery starts.
  report: protectFilter((f) => void recovery.report(f), {
    protects: (device, driver) => running.protects(device, driver),
    driverOf,
    logger,
  }),
  devices: () => shadow.status().filter((d) => d.health === 'ok').map((d) => d.name),
  txstat: helperTxstat(() => txHelper.get()),
  stall: { thresholdMs: (device) => running.stallThresholdMs(device, driverOf(device)) },
});
const deviceMode = (name: string): 'passive' | 'active' | 'parked' => {
  if (recovery.isActive(name)) return 'active';
  return recovery.deviceState(name).gaveUp !== null ? 'parked' : 'passive';
};
const requester = (peer: PeerCredentials | null): string | undefined => (peer ? `uid ${peer.uid} (pid ${peer.pid})` : undefined);

const handler = (req: Request, peer: PeerCredentials | null): Promise<unknown> => {
  switch (req.method) {
    case 'status':
      return Promise.resolve<StatusResult>({ version: VERSION, pid: process.pid, startedAt, taps: { ...ingest.stats }, pendingReads: shadow.pendingReads(), devices: shadow.status().map((d) => ({ ...d, mode: deviceMode(d.name) })) });
    case 'show':
      return Promise.resolve(shadow.show(req.params.device));
    case 'version':
      return Promise.resolve<VersionResult>({ version: VERSION, protocol: PROTOCOL_VERSION });
    case 'recover':
      return recovery.recover(req.params.device, requester(peer), { reload: req.params.reload });
    case 'replay':
      return recovery.replay(req.params.device, requester(peer));
    case 'inject':
      return recovery.inject(req.params.device, req.params.fault, req.params.sticky, requester(peer));
    case 'history':
      return Promise.resolve<HistoryResult>({ recoveries: history.list(req.params) });
    case 'reload':
      if (stopping) return Promise.reject(new RequestError('EBUSY', 'shadowd is stopping'));
      return Promise.resolve<ReloadResult>(reload(`shadowctl reload${peer ? ` by ${requester(peer)}` : ''}`));
  }
};
const socketPath = join(argv['runtime-dir'], 'control.sock');
let server: ControlServer;
try {
  server = await startControlServer(socketPath, handler, logger, { group });
} catch (err) {
  fatal(`cannot listen on ${socketPath}`, err);
}

// Metrics, when MetricsTextfile= is set: the gauges are read at each write.
metricsWriter = new MetricsWriter({
  metrics,
  logger,
  refresh: () => {
    metrics.setTapEventsLost(ingest.stats.lost);
    metrics.setShadowEntries(shadowEntriesByDevice(shadow.status()));
  },
});
metricsWriter.configure(running.config.daemon.metricsTextfile, running.config.daemon.metricsIntervalSec);

/** The STATUS= line while running. */
function runningStatus(): string {
  const devices = shadow.status().filter((d) => d.health === 'ok').length;
  return `watching ${devices} network device${devices === 1 ? '' : 's'}; ${ingest.stats.probes} taps attached`;
}

/** SIGHUP and shadowctl reload: re-reads the configuration; one with errors is refused and the running one stays. */
function reload(by: string): ReloadResult {
  notify.reloading(`reloading ${running.path}`);
  logger.log('info', `reloading the configuration on ${by}`, { SHADOWD_CONFIG: running.path });
  const result = running.reload();
  const n = result.errors.length;
  notify.ready(result.ok ? runningStatus() : `${runningStatus()}; ${running.path} refused (${n} error${n === 1 ? '' : 's'}), previous configuration in force`);
  return result;
}

/** A reload nobody waits for: a bug in it is logged, and must not end the daemon. */
function reloadFromSignal(by: string): void {
  try {
    reload(by);
  } catch (err) {
    logger.log('err', `reloading the configuration failed: ${err instanceof Error ? err.message : String(err)}`);
    notify.ready(`${runningStatus()}; the last reload failed`);
  }
}

// Ready: taps attached, state loaded, socket listening. Units ordered after shadowd start now.
notify.ready(runningStatus());
notify.startWatchdog();
started = true;
logger.log('notice', `shadowd ${VERSION} ready: ${ingest.stats.probes} probes attached, ${shadow.status().length} device(s), control socket ${socketPath}`);
if (reloadWanted) reloadFromSignal('SIGHUP (received during the start)');

async function shutdown(signal: string): Promise<void> {
  if (stopping) return;
  stopping = true;
  notify.stopping(`stopping on ${signal}`);
  logger.log('notice', `stopping on ${signal}`);
  await detectors?.stop();
  await ingest.stop();
  await shadow.settled();
  await recovery.stop();
  // Last, with the recoveries that ended while stopping, and shadowd_up 0.
  await metricsWriter?.stop();
  await helper.close();
  await txHelper.close();
  await server.close();
  store.close();
  process.exit(0);
}
process.on('SIGTERM', () => void shutdown('SIGTERM'));
process.on('SIGINT', () => void shutdown('SIGINT'));
