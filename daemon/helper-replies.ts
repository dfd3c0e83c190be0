// Payloads of the kernel helper's recovery commands (kmod/PROTOCOL.md, proto=2),
// read strictly: a reply that does not say exactly what the protocol promises
// is an error, never a guess, because the recovery manager acts on it.
import { HelperError } from './helper-client.js';
import type { ModuleTimings } from './recovery-history.js';

/** The helper's replay steps after a restart, in the order it runs them. */
export const RESTART_STEPS = ['name', 'mac', 'mtu', 'features', 'vlan', 'rings', 'msglvl', 'pause', 'privflags', 'open'] as const;
export type RestartStep = (typeof RESTART_STEPS)[number];

export interface RestartReply {
  device: string;
  id: string;
  ifindex: number;
  timings: ModuleTimings;
  /** A failed step leaves the driver running without that setting: the reply is still "ok". */
  steps: RestartStepResult[];
}

export interface RestartStepResult {
  name: RestartStep;
  result: 'ok' | 'skip' | 'fail';
}

/** `name:ok,mac:skip,mtu:fail`: known steps, each once, in the helper's order. */
function parseSteps(text: string, fail: (why: string) => Error): RestartStepResult[] {
  const steps: RestartStepResult[] = [];
  let last = -1;
  for (const item of text.split(',')) {
    const m = /^([a-z]+):([a-z]+)$/.exec(item);
    if (!m) throw fail(`step ${JSON.stringify(item)} is not name:result`);
    const name = m[1] as RestartStep;
    const result = m[2]!;
    const at = RESTART_STEPS.indexOf(name);
    if (at < 0) throw fail(`unknown step ${JSON.stringify(name)} (known: ${RESTART_STEPS.join(', ')})`);
    if (steps.some((s) => s.name === name)) throw fail(`step ${name} appears twice`);
    if (at < last) throw fail(`step ${name} is out of order (the helper replays ${RESTART_STEPS.join(', ')})`);
    last = at;
    if (result !== 'ok' && result !== 'skip' && result !== 'fail') throw fail(`step ${name} has result ${JSON.stringify(result)}, not ok, skip or fail`);
    steps.push({ name, result });
  }
  return steps;
}

const TIMING_KEYS: Record<string, keyof ModuleTimings> = {
  stop_ms: 'stopMs',
  release_ms: 'releaseMs',
  probe_ms: 'probeMs',
  replay_ms: 'replayMs',
  open_ms: 'openMs',
  total_ms: 'totalMs',
};
const RESTART_KEYS = ['id', 'ifindex', ...Object.keys(TIMING_KEYS), 'steps'];

function bad(what: string, payload: string, why: string): HelperError {
  return new HelperError(`unreadable ${what} reply from shadow_helper ${JSON.stringify(payload)}: ${why}`, { code: 'EPROTO' });
}

function decimal(text: string): number | null {
  // No sign, no leading zeros, no exponent: what the module prints with %u/%llu.
  return /^(0|[1-9][0-9]{0,14})$/.test(text) ? Number(text) : null;
}

/**
 * Parses the payload of a successful `restart IFACE ID`:
 * `restarted IFACE id=ID ifindex=N stop_ms=N release_ms=N probe_ms=N replay_ms=N open_ms=N total_ms=N steps=name:ok,mac:skip,...`.
 * Every field must be there once, with nothing else; the reply must be about
 * the device and recovery id that were asked for.
 */
export function parseRestartReply(payload: string, expected: { device: string; id: string }): RestartReply {
  const fail = (why: string): HelperError => bad('restart', payload, why);
  if (payload === '') throw fail('it is empty');
  const tokens = payload.split(' ');
  if (tokens.some((t) => t === '')) throw fail('tokens must be separated by single spaces');
  const [verb, device, ...fields] = tokens;
  if (verb !== 'restarted') throw fail(`it starts with ${JSON.stringify(verb)}, not "restarted"`);
  if (device !== expected.device) throw fail(`it is about ${JSON.stringify(device ?? '')}, the restart was for ${expected.device}`);
  const values = new Map<string, string>();
  for (const field of fields) {
    const eq = field.indexOf('=');
    if (eq <= 0) throw fail(`${JSON.stringify(field)} is not key=value`);
    const key = field.slice(0, eq);
    if (!RESTART_KEYS.includes(key)) throw fail(`unknown field ${JSON.stringify(key)}`);
    if (values.has(key)) throw fail(`field ${key} appears twice`);
    values.set(key, field.slice(eq + 1));
  }
  const missing = RESTART_KEYS.filter((k) => !values.has(k));
  if (missing.length > 0) throw fail(`missing ${missing.join(', ')}`);

  const id = values.get('id')!;
  if (id !== expected.id) throw fail(`it is for recovery ${JSON.stringify(id)}, not ${expected.id}`);
  const ifindex = decimal(values.get('ifindex')!);
  if (ifindex === null || ifindex < 1) throw fail(`ifindex ${JSON.stringify(values.get('ifindex'))} is not a positive decimal number`);
  const timings = {} as ModuleTimings;
  for (const [key, name] of Object.entries(TIMING_KEYS)) {
    const n = decimal(values.get(key)!);
    if (n === null) throw fail(`${key} ${JSON.stringify(values.get(key))} is not a decimal number of milliseconds`);
    timings[name] = n;
  }

  const steps = parseSteps(values.get('steps')!, fail);
  return { device, id, ifindex, timings, steps };
}

/**
 * The replay steps an `err` reply to `restart` reports, if it lists them: the
 * helper ends such a message with ` steps=name:ok,mac:fail` (or `steps=none`).
 * Only what is there is read; a message without a readable list gives [].
 */
export function restartErrorSteps(message: string): RestartStepResult[] {
  const m = / steps=([a-z:,]+)$/.exec(message);
  if (!m?.[1] || m[1] === 'none') return [];
  try {
    return parseSteps(m[1], (why) => new Error(why));
  } catch {
    return [];
  }
}

/** Throws unless `payload` is exactly what the protocol promises for a command (`staged eth0 rings`, `parked eth0 id=r1`, ...). */
export function expectPayload(command: string, payload: string, expected: string): void {
  if (payload !== expected) {
    throw new HelperError(`unexpected reply from shadow_helper to "${command}": ${JSON.stringify(payload)}, expected ${JSON.stringify(expected)}`, {
      code: 'EPROTO',
    });
  }
}

/** What a `stage` command's reply names: `stage eth0 rings 256 0 0 256` → `staged eth0 rings`. */
export function stagedPayload(command: string): string {
  const [, device, what] = command.split(' ');
  return `staged ${device ?? ''} ${what ?? ''}`;
}

/**
 * Whether `command` is a well-formed `stage` command for `device`
 * (PROTOCOL.md: rings RX RX_MINI RX_JUMBO TX, msglvl N, pause AUTONEG RX TX, privflags N, clear).
 * The staging source is another module's code: only what the protocol allows is sent.
 */
export function isStageCommand(command: string, device: string): boolean {
  const prefix = `stage ${device} `;
  if (!command.startsWith(prefix)) return false;
  const n = '(0|[1-9][0-9]{0,9})';
  return new RegExp(`^(rings ${n} ${n} ${n} ${n}|msglvl ${n}|pause [01] [01] [01]|privflags ${n}|clear)$`).test(command.slice(prefix.length));
}
