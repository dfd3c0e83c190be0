// The PAUSE frames a NIC has received from its link partner (IEEE 802.3x
// flow control), as `ethtool --json -I -a IFACE` reports them for drivers
// that count them (the kernel's standard pause statistics; many drivers do
// not, and emulated NICs never do). A partner that sends PAUSE frames holds
// the NIC's transmitter: its TX queues stop with nothing completing, which
// is exactly what the stall detector takes for a hung driver. While the
// count grows, the link is held by the partner and a restart would cure
// nothing (issue 13 item 8): the detector asks this before it reports.
import { runProgram } from '../../core/run-program.js';
import { interfaceArgProblem } from './interface-name.js';

/** How long one query may take: it runs only when a stall is about to be reported. */
const QUERY_TIMEOUT_MS = 2000;

/**
 * The rx_pause_frames count in an `ethtool --json -I -a` answer for one
 * device; null when the answer carries no pause statistics (the driver does
 * not count them). Anything else is an error.
 */
export function parseRxPauseFrames(text: string): bigint | null {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new Error(`ethtool -I -a: output is not JSON: ${text.slice(0, 120)}`);
  }
  if (!Array.isArray(parsed) || parsed.length !== 1 || typeof parsed[0] !== 'object' || parsed[0] === null) {
    throw new Error('ethtool -I -a: expected one device');
  }
  const stats = (parsed[0] as Record<string, unknown>)['statistics'];
  if (stats === undefined) return null;
  if (typeof stats !== 'object' || stats === null) throw new Error('ethtool -I -a: statistics is not an object');
  const rx = (stats as Record<string, unknown>)['rx_pause_frames'];
  if (rx === undefined) return null;
  // A count past 2^53 (JSON.parse would round it) is not one a link reaches.
  if (typeof rx !== 'number' || !Number.isSafeInteger(rx) || rx < 0) throw new Error(`ethtool -I -a: rx_pause_frames is not a count: ${JSON.stringify(rx)}`);
  return BigInt(rx);
}

/** Asks ethtool for the device's received PAUSE frames; null when it does not count them or cannot be asked. */
export async function readRxPauseFrames(device: string): Promise<bigint | null> {
  if (interfaceArgProblem(device)) return null;
  const r = await runProgram('ethtool', ['--json', '-I', '-a', device], QUERY_TIMEOUT_MS, 64 * 1024);
  if (r.exitCode !== 0) return null;
  return parseRxPauseFrames(r.stdout);
}
