#!/usr/bin/env node
// shadowctl: asks the running shadowd what it protects and what it remembers.
//
// Exit codes: 0 done; 1 the daemon refused or failed the request (e.g. unknown
// device); 2 bad command line; 3 shadowd is not running or not reachable;
// 4 permission denied.
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { ControlError, DEFAULT_SOCKET, request } from '../daemon/control-client.js';
import type { ShowResult, StatusResult } from '../daemon/control-protocol.js';
import { formatShow, formatStatus } from './format.js';

export const EXIT = { ok: 0, refused: 1, usage: 2, unreachable: 3, denied: 4 } as const;

interface Common {
  json: boolean;
  socket: string;
}

async function call<T>(argv: Common, method: string, params?: Record<string, unknown>): Promise<T> {
  let reply;
  try {
    reply = await request<T>(argv.socket, method, params);
  } catch (err) {
    if (err instanceof ControlError) {
      console.error(`shadowctl: ${err.message}`);
      process.exit(err.kind === 'denied' ? EXIT.denied : EXIT.unreachable);
    }
    throw err;
  }
  if (!reply.ok) {
    if (argv.json) console.log(JSON.stringify(reply.error));
    else console.error(`shadowctl: ${reply.error.message}`);
    process.exit(reply.error.code === 'EPERM' ? EXIT.denied : EXIT.refused);
  }
  return reply.result;
}

const print = (argv: Common, result: unknown, human: () => string): void => {
  console.log(argv.json ? JSON.stringify(result, null, 2) : human());
};

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
      print(argv, result, () => formatStatus(result));
    },
  )
  .command(
    'show <iface>',
    "Show a device's shadow: each configuration key, its value, who set it and when",
    (y) =>
      y
        .positional('iface', { type: 'string', demandOption: true, describe: 'Interface name, e.g. eth0' })
        .example('$0 show eth0', "eth0's shadow state")
        .example('$0 show eth0 --json', 'The same, as JSON'),
    async (argv) => {
      const result = await call<ShowResult>(argv, 'show', { device: argv.iface });
      print(argv, result, () => formatShow(result));
    },
  )
  .demandCommand(1, 'Name a command: status or show IFACE')
  .strict()
  .completion('completion', 'Print a bash completion script (source it from ~/.bashrc)')
  .epilogue('Exit codes: 0 ok, 1 refused by shadowd, 2 bad usage, 3 shadowd not running, 4 permission denied.')
  .fail((msg, err, y) => {
    if (err) throw err;
    y.showHelp();
    console.error(`\nshadowctl: ${msg}`);
    process.exit(EXIT.usage);
  })
  .help()
  .parseAsync();
