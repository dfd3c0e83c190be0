// Shell entry to the guest runner:
//   node dist/test/vm/rig/guest-main.js [--kernel 6.1|6.12] [--device e1000 ...] [--nic-hub] [--init systemd] [--timeout 120] [--keep] [--sound-capture DIR [--sound-silent N ...]] -- CMD [ARG...]
// --kernel defaults to SHADOWD_GUEST_KERNEL, else 6.1.
// Prints the command's output, the kernel problems if any, and exits with its status.
import { parseArgs } from 'node:util';
import { runInGuest, describeGuestRun, type GuestInit } from './guest.js';
import { ALL_PRESETS, type DevicePreset } from './devices.js';
import { isKernelSeries, KERNEL_SERIES, KERNEL_SERIES_ENV, selectedKernelSeries } from './cache-paths.js';

const PRESETS: readonly string[] = ALL_PRESETS;

const { values, positionals } = parseArgs({
  options: {
    device: { type: 'string', multiple: true, default: [] },
    'nic-hub': { type: 'boolean', default: false },
    timeout: { type: 'string', default: '120' },
    keep: { type: 'boolean', default: false },
    console: { type: 'boolean', default: false },
    init: { type: 'string', default: 'busybox' },
    kernel: { type: 'string' },
    'sound-capture': { type: 'string' },
    'sound-silent': { type: 'string', multiple: true, default: [] },
  },
  allowPositionals: true,
});
const bad = values.device.filter((d) => !PRESETS.includes(d));
const timeoutS = Number(values.timeout);
const badInit = values.init !== 'busybox' && values.init !== 'systemd';
const kernel = values.kernel ?? process.env[KERNEL_SERIES_ENV] ?? '';
const badKernel = kernel !== '' && !isKernelSeries(kernel);
if (positionals.length === 0 || bad.length > 0 || !(timeoutS > 0) || badInit || badKernel) {
  if (bad.length > 0) console.error(`guest: unknown device preset ${bad.join(', ')} (known: ${PRESETS.join(', ')})`);
  if (!(timeoutS > 0)) console.error(`guest: --timeout must be a positive number of seconds`);
  if (badInit) console.error(`guest: --init must be busybox or systemd`);
  if (badKernel) console.error(`guest: --kernel (or ${KERNEL_SERIES_ENV}) must be one of ${KERNEL_SERIES.join(', ')}`);
  console.error('usage: guest-main.js [--kernel 6.1|6.12] [--device PRESET ...] [--nic-hub] [--init busybox|systemd] [--timeout SECONDS] [--keep] [--console] [--sound-capture DIR [--sound-silent N ...]] -- CMD [ARG...]');
  process.exit(2);
}
const result = await runInGuest({
  command: positionals,
  devices: values.device as DevicePreset[],
  nicHub: values['nic-hub'],
  timeoutMs: timeoutS * 1000,
  keepRunDir: values.keep,
  init: values.init as GuestInit,
  kernel: isKernelSeries(kernel) ? kernel : selectedKernelSeries(),
  soundCaptureDir: values['sound-capture'],
  soundSilentCards: values['sound-silent'].map(Number),
  onConsole: values.console ? (t) => process.stderr.write(t) : undefined,
});
process.stdout.write(result.stdout);
process.stderr.write(result.stderr);
if (result.exitCode === null || result.timedOut || result.kernelProblems.length > 0) {
  console.error(describeGuestRun(result, 'guest run'));
  process.exit(result.exitCode === null || result.exitCode === 0 ? 1 : result.exitCode);
}
console.error(`guest: exit ${result.exitCode}, boot to command ${result.bootToCommandMs?.toFixed(0)} ms, total ${result.totalMs.toFixed(0)} ms` + (result.runDir ? `, run folder ${result.runDir}` : '') + (result.soundCaptures.length > 0 ? `, sound recorded to ${result.soundCaptures.map((p) => p ?? 'none').join(' ')}` : ''));
process.exit(result.exitCode);
