#!/usr/bin/env node
// shadowctl: asks the running shadowd what it protects and what it remembers.
//
// Exit codes: 0 done; 1 the daemon refused or failed the request (e.g. unknown
// device), or a recovery or replay ran and failed, or reload found errors in
// the configuration; 2 bad command line; 3 shadowd is not running or not
// reachable; 4 permission denied (not root for recover, replay, inject and
// reload, or no access to the socket).
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
// The declarations are all it needs (device help, fault choices): the classes' runtimes (registry.ts) are the daemon's, and would more than double what every command loads.
import { DECLARATIONS as CLASSES } from '../daemon/classes/declarations.js';
import { ControlError, DEFAULT_SOCKET, request } from '../daemon/control/control-client.js';
import {
  CLEAR_FAULT,
  HISTORY_LIMIT_DEFAULT,
  HISTORY_LIMIT_MAX,
  type HistoryResult,
  type InjectResult,
  type RecoverResult,
  type ReloadResult,
  type ShowResult,
  type StatusResult,
} from '../daemon/control/control-protocol.js';
import { formatHistory, formatInject, formatRecovery, formatReload, formatShow, formatStatus, visible, visibleDeep } from './format.js';

export const EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3, denied: 4 } as const;

interface Common {
  json: boolean;
  socket: string;
}

/** A command line that parses but makes no sense (yargs hands it to .fail() as an error). */
class UsageError extends Error {}

const EXIT_CODES =
  'Exit codes: 0 ok, 1 refused by shadowd, 2 bad usage, 3 shadowd not running, 4 permission denied. ' +
  'recover and replay exit 1 also when they ran and failed, reload when the configuration has errors; recover, replay, inject and reload need CAP_NET_ADMIN, which sudo gives (4 otherwise).';

/** A recovery waits for the driver to come back (probe, firmware): longer than a query. */
const RECOVERY_TIMEOUT_MS = 120_000;

async function call<T>(argv: Common, method: string, params?: Record<string, unknown>, timeoutMs?: number): Promise<T> {
  let reply;
  try {
    reply = await request<T>(argv.socket, method, params, timeoutMs);
  } catch (err) {
    if (err instanceof ControlError) {
      console.error(`shadowctl: ${visible(err.message)}`);
      process.exit(err.kind === 'denied' ? EXIT.denied : EXIT.unreachable);
    }
    throw err;
  }
  if (!reply.ok) {
    if (argv.json) console.log(JSON.stringify(reply.error));
    else console.error(`shadowctl: ${visible(String(reply.error.message))}`);
    process.exit(reply.error.code === 'EPERM' ? EXIT.denied : EXIT.refused);
  }
  return reply.result;
}

/**
 * Every answer is printed here: --json exactly as the daemon sent it (JSON
 * escapes what a terminal would act on), else the human view of the answer
 * with each of its strings made visible() (names and values come from the
 * kernel and from other processes, which choose them).
 */
function print<T>(argv: Common, result: T, human: (shown: T) => string): void {
  console.log(argv.json ? JSON.stringify(result, null, 2) : human(visibleDeep(result)));
}

/** Every class's faults, and clear; the daemon checks that the fault is the device's class's. */
const FAULT_CHOICES = [...new Set([...CLASSES.flatMap((c) => c.faults), CLEAR_FAULT])];
const FAULTS_BY_CLASS = CLASSES.map((c) => `${c.id}: ${c.faults.join(', ')}`).join('; ');
const DEVICE_HELP = `A device, CLASS:NAME (classes: ${CLASSES.map((c) => c.id).join(', ')}), e.g. net:eth0; a bare name will do when one class has a device of that name`;

/**
 * The CLASS:NAME the daemon takes: given as it is when it names a class,
 * else found among the devices shadowd watches (exit 1 when none or several
 * classes have one of that name).
 */
async function deviceRef(argv: Common, text: string): Promise<string> {
  if (text.includes(':')) return text;
  const status = await call<StatusResult>(argv, 'status');
  const devices = Array.isArray(status?.devices) ? status.devices.filter((d) => typeof d?.cls === 'string' && d.name === text) : [];
  const classes = [...new Set(devices.map((d) => d.cls))].sort();
  if (classes.length === 1) return `${classes[0]!}:${text}`;
  const message =
    classes.length === 0
      ? `shadowd watches no device named ${JSON.stringify(text)} (shadowctl status lists them)`
      : `${classes.length} classes have a device named ${text}: name one, as ${classes.map((c) => `${c}:${text}`).join(' or ')}`;
  // As call() reports the daemon's refusals: JSON on stdout with --json, else a line on stderr.
  if (argv.json) console.log(JSON.stringify({ code: classes.length === 0 ? 'ENODEV' : 'EBADREQ', message }));
  else console.error(`shadowctl: ${visible(message)}`);
  process.exit(EXIT.refused);
}

await yargs(hideBin(process.argv))
  .scriptName('shadowctl')
  .usage('$0 <command> [options]\n\nAsk shadowd, the driver recovery service, what it protects and what it remembers.')
  .option('json', { type: 'boolean', default: false, describe: 'Print the answer as JSON' })
  .option('socket', {
    type: 'string',
    default: process.env['SHADOWD_SOCKET'] ?? DEFAULT_SOCKET,
    describe: "shadowd's control socket (or $SHADOWD_SOCKET)",
  })
  .command(
    'status',
    'List the devices shadowd watches, with their class, driver, mode and health',
    (y) => y.example('$0 status', 'Every watched device, one line each').example('$0 status --json', 'The same, as JSON'),
    async (argv) => {
      const result = await call<StatusResult>(argv, 'status');
      print(argv, result, (shown) => formatStatus(shown));
    },
  )
  .command(
    'show <device>',
    "Show a device's shadow: each configuration key, its value, who set it and when",
    (y) =>
      y
        .positional('device', { type: 'string', demandOption: true, describe: DEVICE_HELP })
        .example('$0 show net:eth0', "eth0's shadow state")
        .example('$0 show eth0', 'The same, when only the network class has a device named eth0')
        .example('$0 show eth0 --json', 'The same, as JSON'),
    async (argv) => {
      const result = await call<ShowResult>(argv, 'show', { device: await deviceRef(argv, argv.device) });
      print(argv, result, (shown) => formatShow(shown));
    },
  )
  .command(
    'recover <device>',
    "Recover a device now: restart its driver, keeping the interface, and replay its configuration (root). Lifts a give-up and resets the device's rate limit",
    (y) =>
      y
        .positional('device', { type: 'string', demandOption: true, describe: DEVICE_HELP })
        .option('reload', {
          type: 'boolean',
          default: false,
          describe: "Also unload and load the driver's module: for a driver whose code is suspect",
        })
        .example('sudo $0 recover eth0', "Restart eth0's driver; sockets and captures on eth0 keep working")
        .example('sudo $0 recover eth0 --reload', "The same, with the driver's module unloaded and loaded again in between")
        .example('sudo $0 recover eth0 --json', 'The recovery record (id, result, method, phase timings, replay steps), as JSON')
        .epilogue(
          'A reload the kernel helper cannot do (a built-in driver, one that drives other devices too, a device not on PCI) ' +
            'is left out and noted: the driver is restarted without it. ' +
            `It exits 1 when the recovery failed or gave up (the reason is printed).\n\n${EXIT_CODES}`,
        ),
    async (argv) => {
      // Sent only when asked for: a shadowd from before --reload refuses the parameter.
      const device = await deviceRef(argv, argv.device);
      const params = argv.reload ? { device, reload: true } : { device };
      const result = await call<RecoverResult>(argv, 'recover', params, RECOVERY_TIMEOUT_MS);
      print(argv, result, (shown) => formatRecovery(shown));
      if (result.result !== 'recovered') process.exitCode = EXIT.refused;
    },
  )
  .command(
    'replay <device>',
    "Replay a device's configuration from its shadow into its running driver, without a restart (root)",
    (y) =>
      y
        .positional('device', { type: 'string', demandOption: true, describe: DEVICE_HELP })
        .example('sudo $0 replay eth0', "Set eth0's recorded configuration again, step by step")
        .example('sudo $0 replay eth0 --json', 'The replay record with each step, as JSON')
        .epilogue(`It exits 1 when a step failed (the steps are printed).\n\n${EXIT_CODES}`),
    async (argv) => {
      const result = await call<RecoverResult>(argv, 'replay', { device: await deviceRef(argv, argv.device) }, RECOVERY_TIMEOUT_MS);
      print(argv, result, (shown) => formatRecovery(shown));
      if (result.result !== 'replayed') process.exitCode = EXIT.refused;
    },
  )
  .command(
    'inject <device> <fault>',
    "Inject a fault into a device's driver, to test recovery (root; shadow_helper must be loaded with allow_faults=1)",
    (y) =>
      y
        .positional('device', { type: 'string', demandOption: true, describe: DEVICE_HELP })
        .positional('fault', { choices: FAULT_CHOICES, demandOption: true, describe: `The fault (${FAULTS_BY_CLASS}), or clear to remove one` })
        .option('sticky', { type: 'boolean', default: false, describe: 'The fault comes back after every restart (tests giving up)' })
        .check((a) => {
          if (a.sticky && a.fault === 'clear') throw new UsageError('--sticky applies to a fault, not to clear');
          return true;
        })
        .example('sudo $0 inject eth0 tx-hang', "eth0's transmit queue hangs; a restart clears it")
        .example('sudo $0 inject eth0 fail-stop --sticky', 'The driver stops responding after every restart, until shadowd gives up')
        .example('sudo $0 inject eth0 lost-irq', "eth0's interrupts are lost (its PCI INTx is masked); a restart clears it")
        .example('sudo $0 inject eth0 clear', 'Remove the injected fault')
        .epilogue(EXIT_CODES),
    async (argv) => {
      const result = await call<InjectResult>(argv, 'inject', { device: await deviceRef(argv, argv.device), fault: argv.fault, sticky: argv.sticky });
      print(argv, result, (shown) => formatInject(shown));
    },
  )
  .command(
    'history [device]',
    'List past recoveries, newest first: id, device, trigger, result, restart method and phase times',
    (y) =>
      y
        .positional('device', { type: 'string', describe: `Only this device (${DEVICE_HELP})` })
        .option('limit', { type: 'number', default: HISTORY_LIMIT_DEFAULT, describe: `At most this many (1-${HISTORY_LIMIT_MAX})` })
        .check((a) => {
          if (!Number.isInteger(a.limit) || a.limit < 1 || a.limit > HISTORY_LIMIT_MAX) throw new UsageError(`--limit must be an integer from 1 to ${HISTORY_LIMIT_MAX}`);
          return true;
        })
        .example('$0 history', 'The last 50 recoveries of every device')
        .example('$0 history eth0 --limit 5', "eth0's last 5 recoveries")
        .example('$0 history --json', 'Every detail (replay steps, the helper\'s timings), as JSON')
        .epilogue(EXIT_CODES),
    async (argv) => {
      const params = argv.device === undefined ? { limit: argv.limit } : { device: await deviceRef(argv, argv.device), limit: argv.limit };
      const result = await call<HistoryResult>(argv, 'history', params);
      print(argv, result, (shown) => formatHistory(shown, argv.device === undefined ? undefined : visible(argv.device)));
    },
  )
  .command(
    'reload',
    'Re-read /etc/shadowd/shadowd.conf, as systemctl reload shadowd does (root). A file with errors changes nothing',
    (y) =>
      y
        .example('sudo $0 reload', 'Apply the edited configuration, or print its errors with file, line and key')
        .example('sudo $0 reload --json', 'The outcome ({ok, file, errors, changes}), as JSON')
        .epilogue(`It exits 1 when the file has errors: shadowd then keeps the configuration it was running with.\n\n${EXIT_CODES}`),
    async (argv) => {
      const result = await call<ReloadResult>(argv, 'reload');
      print(argv, result, (shown) => formatReload(shown));
      if (!result.ok) process.exitCode = EXIT.refused;
    },
  )
  .demandCommand(1, 'Name a command: status, show DEVICE, recover DEVICE, replay DEVICE, inject DEVICE FAULT, history or reload')
  .strict()
  .completion('completion', 'Print a bash completion script (source it from ~/.bashrc)')
  .epilogue(EXIT_CODES)
  .fail((msg, err, y) => {
    if (err && !(err instanceof UsageError)) throw err;
    y.showHelp();
    console.error(`\nshadowctl: ${visible(msg)}`);
    process.exit(EXIT.usage);
  })
  .help()
  .parseAsync();
