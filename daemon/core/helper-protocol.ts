// The kernel helper's recovery commands (kmod/PROTOCOL.md, proto=3), composed
// and read in one place: `restart`, `park` and `inject` for a device of any
// class, named CLASS:NAME. Replies are read strictly: one that does not say
// exactly what the protocol promises is an error, never a guess, because the
// recovery manager acts on it. What differs by class (the replay steps, the
// extra fields of `restarted`, the faults) comes from the class's declaration.
import type { ClassDeclaration } from './device-class.js';
import { formatRef, type DeviceRef } from './device-ref.js';
import { HelperError } from './helper-client.js';
import type { ModuleTimings, RestartMethod } from './recovery-history.js';

export type { RestartMethod };

/** A reload's first step: `ok` (the module was unloaded and loaded again) or `fail` (it would not unload: the device was probed again with the module as it was). */
export const RELOAD_STEP = 'reload';
export type RestartStepName = string;

/** What of a class's declaration the helper protocol reads. */
export type HelperClassTerms = Pick<ClassDeclaration, 'restartSteps' | 'restartFields' | 'restartFieldsFromZero' | 'restartNames'>;

/** `restart net:eth0 r1 reload` */
export function restartCommand(ref: DeviceRef, id: string, how: RestartMethod): string {
  return `restart ${formatRef(ref)} ${id}${how === 'reload' ? ' reload' : ''}`;
}

/** `park net:eth0 r1`, answered `parked net:eth0 id=r1`. */
export function parkCommand(ref: DeviceRef, id: string): { command: string; expect: string } {
  return { command: `park ${formatRef(ref)} ${id}`, expect: `parked ${formatRef(ref)} id=${id}` };
}

/** `inject net:eth0 tx-hang sticky`, answered `injected net:eth0 tx-hang`; `inject net:eth0 clear`, answered `cleared net:eth0`. */
export function injectCommand(ref: DeviceRef, fault: string, sticky: boolean): { command: string; expect: string } {
  const dev = formatRef(ref);
  return { command: `inject ${dev} ${fault}${sticky ? ' sticky' : ''}`, expect: fault === 'clear' ? `cleared ${dev}` : `injected ${dev} ${fault}` };
}

export interface RestartReply {
  /** CLASS:NAME, as the reply names it. */
  device: string;
  id: string;
  /** The class's extra fields (HelperClassTerms.restartFields), one number per declared field. */
  fields: Record<string, number>;
  /** The class's extra text fields (HelperClassTerms.restartNames), each a kernel device name. */
  names: Record<string, string>;
  /** Which reply it was: a reload's has module, unload_ms, load_ms and a first step `reload`. */
  how: RestartMethod;
  /** The driver's module a reload unloaded and loaded again; null for a re-probe. */
  module: string | null;
  /** unloadMs and loadMs only for a reload. */
  timings: ModuleTimings;
  /** A failed step leaves the driver running without that setting: the reply is still "ok". */
  steps: RestartStepResult[];
}

export interface RestartStepResult {
  name: RestartStepName;
  result: 'ok' | 'skip' | 'fail';
}

/**
 * `name:ok,mac:skip,mtu:fail`: known steps, each once, in the helper's order.
 * With `reload`, the list must start with the reload step (and only there).
 */
function parseSteps(text: string, known: readonly string[], fail: (why: string) => Error, reload = false): RestartStepResult[] {
  // A reload's module step comes first unless the class places it (block: after its teardown).
  const order = known.includes(RELOAD_STEP) ? known : [RELOAD_STEP, ...known];
  const steps: RestartStepResult[] = [];
  let last = -1;
  for (const item of text.split(',')) {
    const m = /^([a-z]+):([a-z]+)$/.exec(item);
    if (!m) throw fail(`step ${JSON.stringify(item)} is not name:result`);
    const name = m[1]!;
    const result = m[2]!;
    if (name === RELOAD_STEP && !reload) throw fail(`step ${RELOAD_STEP} is only in a reload's steps`);
    const at = order.indexOf(name);
    if (at < 0) throw fail(`unknown step ${JSON.stringify(name)} (known: ${known.join(', ')})`);
    if (steps.some((s) => s.name === name)) throw fail(`step ${name} appears twice`);
    if (at < last) throw fail(`step ${name} is out of order (the helper replays ${order.join(', ')})`);
    last = at;
    const results = name === RELOAD_STEP ? ['ok', 'fail'] : ['ok', 'skip', 'fail'];
    if (!results.includes(result)) throw fail(`step ${name} has result ${JSON.stringify(result)}, not ${results.join(', ')}`);
    steps.push({ name, result: result as RestartStepResult['result'] });
  }
  if (reload && !steps.some((s) => s.name === RELOAD_STEP)) {
    throw fail(`the steps of a reload must have ${RELOAD_STEP}${order[0] === RELOAD_STEP ? ' first' : ''}`);
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
const RELOAD_TIMING_KEYS: Record<string, keyof ModuleTimings> = {
  unload_ms: 'unloadMs',
  load_ms: 'loadMs',
};
const restartKeys = (terms: HelperClassTerms): string[] => ['id', ...terms.restartFields, ...(terms.restartNames ?? []), ...Object.keys(TIMING_KEYS), 'steps'];

/** A kernel device name as a reply may carry it: 0000:00:01.1, virtio2. */
const DEVICE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/;
/** A reload's reply has these as well, all of them; a re-probe's none. */
const RELOAD_KEYS = ['module', ...Object.keys(RELOAD_TIMING_KEYS)];
/** A module name as the kernel prints it (module_name()): no spaces, no '='. */
const MODULE_NAME = /^[A-Za-z0-9_-]{1,55}$/;

function bad(what: string, payload: string, why: string): HelperError {
  return new HelperError(`unreadable ${what} reply from shadow_helper ${JSON.stringify(payload)}: ${why}`, { code: 'EPROTO' });
}

function decimal(text: string): number | null {
  // No sign, no leading zeros, no exponent: what the module prints with %u/%llu.
  return /^(0|[1-9][0-9]{0,14})$/.test(text) ? Number(text) : null;
}

/**
 * Parses the payload of a successful `restart CLASS:NAME ID [reload]`:
 * `restarted CLASS:NAME id=ID [CLASS FIELDS=N ...] stop_ms=N release_ms=N probe_ms=N replay_ms=N open_ms=N total_ms=N steps=name:ok,...`,
 * and for a reload also `module=NAME unload_ms=N load_ms=N` with steps
 * starting `reload:ok` or `reload:fail`. Every field must be there once, with
 * nothing else (the reload fields all or none); the reply must be about the
 * device and recovery id that were asked for. `expected.how`, when given, is
 * the reply shape the command asked for. The class's terms say which extra
 * fields (each a positive decimal, or from 0 when the class says so) and
 * which steps, in which order, it has.
 */
export function parseRestartReply(payload: string, expected: { ref: DeviceRef; id: string; how?: RestartMethod }, terms: HelperClassTerms): RestartReply {
  const fail = (why: string): HelperError => bad('restart', payload, why);
  const wanted = formatRef(expected.ref);
  const keys = restartKeys(terms);
  if (payload === '') throw fail('it is empty');
  const tokens = payload.split(' ');
  if (tokens.some((t) => t === '')) throw fail('tokens must be separated by single spaces');
  const [verb, device, ...fields] = tokens;
  if (verb !== 'restarted') throw fail(`it starts with ${JSON.stringify(verb)}, not "restarted"`);
  if (device !== wanted) throw fail(`it is about ${JSON.stringify(device ?? '')}, the restart was for ${wanted}`);
  const values = new Map<string, string>();
  for (const field of fields) {
    const eq = field.indexOf('=');
    if (eq <= 0) throw fail(`${JSON.stringify(field)} is not key=value`);
    const key = field.slice(0, eq);
    if (!keys.includes(key) && !RELOAD_KEYS.includes(key)) throw fail(`unknown field ${JSON.stringify(key)}`);
    if (values.has(key)) throw fail(`field ${key} appears twice`);
    values.set(key, field.slice(eq + 1));
  }
  const missing = keys.filter((k) => !values.has(k));
  if (missing.length > 0) throw fail(`missing ${missing.join(', ')}`);
  const reloadKeys = RELOAD_KEYS.filter((k) => values.has(k));
  if (reloadKeys.length > 0 && reloadKeys.length < RELOAD_KEYS.length) {
    throw fail(`it has ${reloadKeys.join(', ')} but not ${RELOAD_KEYS.filter((k) => !values.has(k)).join(', ')}: a reload's reply has all of ${RELOAD_KEYS.join(', ')}, a re-probe's none`);
  }
  const how: RestartMethod = reloadKeys.length > 0 ? 'reload' : 'reprobe';
  if (expected.how !== undefined && how !== expected.how) {
    throw fail(expected.how === 'reload' ? 'it is a re-probe\'s reply, the restart asked for a reload' : 'it is a reload\'s reply, the restart asked for none');
  }

  const id = values.get('id')!;
  if (id !== expected.id) throw fail(`it is for recovery ${JSON.stringify(id)}, not ${expected.id}`);
  const extra: Record<string, number> = {};
  for (const key of terms.restartFields) {
    const n = decimal(values.get(key)!);
    const fromZero = terms.restartFieldsFromZero?.includes(key) === true;
    if (n === null || n < (fromZero ? 0 : 1)) throw fail(`${key} ${JSON.stringify(values.get(key))} is not a ${fromZero ? 'decimal number' : 'positive decimal number'}`);
    extra[key] = n;
  }
  const names: Record<string, string> = {};
  for (const key of terms.restartNames ?? []) {
    const v = values.get(key)!;
    if (!DEVICE_NAME.test(v)) throw fail(`${key} ${JSON.stringify(v)} is not a device name`);
    names[key] = v;
  }
  let module: string | null = null;
  if (how === 'reload') {
    module = values.get('module')!;
    if (!MODULE_NAME.test(module)) throw fail(`module ${JSON.stringify(module)} is not a module name`);
  }
  const timings = {} as ModuleTimings;
  for (const [key, name] of Object.entries(how === 'reload' ? { ...TIMING_KEYS, ...RELOAD_TIMING_KEYS } : TIMING_KEYS)) {
    const n = decimal(values.get(key)!);
    if (n === null) throw fail(`${key} ${JSON.stringify(values.get(key))} is not a decimal number of milliseconds`);
    timings[name] = n;
  }

  const steps = parseSteps(values.get('steps')!, terms.restartSteps, fail, how === 'reload');
  return { device, id, fields: extra, names, how, module, timings, steps };
}

/** "stop 10, release 5, unload 120, load 300, probe 600, replay 30, open 205 ms": the helper's phases, a reload's when it has them. */
export function modulePhases(t: ModuleTimings): string {
  const reload = t.unloadMs !== undefined || t.loadMs !== undefined ? `, unload ${t.unloadMs ?? '?'}, load ${t.loadMs ?? '?'}` : '';
  return `stop ${t.stopMs}, release ${t.releaseMs}${reload}, probe ${t.probeMs}, replay ${t.replayMs}, open ${t.openMs} ms`;
}

/**
 * The replay steps an `err` reply to `restart` reports, if it lists them: the
 * helper ends such a message with ` steps=name:ok,mac:fail` (or `steps=none`;
 * a reload's start with `reload:ok` or `reload:fail`).
 * Only what is there is read; a message without a readable list gives [].
 */
export function restartErrorSteps(message: string, terms: HelperClassTerms): RestartStepResult[] {
  const m = / steps=([a-z:,]+)$/.exec(message);
  if (!m?.[1] || m[1] === 'none') return [];
  try {
    return parseSteps(m[1], terms.restartSteps, (why) => new Error(why), m[1].split(',').some((s) => s.startsWith(`${RELOAD_STEP}:`)));
  } catch {
    return [];
  }
}

/** Throws unless `payload` is exactly what the protocol promises for a command (`parked net:eth0 id=r1`, ...). */
export function expectPayload(command: string, payload: string, expected: string): void {
  if (payload !== expected) {
    throw new HelperError(`unexpected reply from shadow_helper to "${command}": ${JSON.stringify(payload)}, expected ${JSON.stringify(expected)}`, {
      code: 'EPROTO',
    });
  }
}

