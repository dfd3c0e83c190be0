// Boots Debian's 6.1 kernel (or 6.12 with SHADOWD_GUEST_KERNEL=6.12) under QEMU (TCG) with the host root read-only over
// 9p plus a tmpfs overlay, runs one command in it (from the initramfs's busybox
// init, or as a unit of systemd running as PID 1), and returns its exit
// status, output and the guest kernel log. Usable from vitest and from the
// shell (guest-main.ts).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, truncate, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import {
  cacheRoot,
  currentKernelFile,
  KERNEL_SERIES_ENV,
  kernelPaths,
  selectedKernelSeries,
  type KernelPaths,
  type KernelSeries,
} from './cache-paths.js';
import { deviceArgs, diskCount, soundCount, type DevicePreset, type LoopbackForward } from './devices.js';
import { EXIT_MARKER, INIT_FAILED_MARKER, SYSTEMD_RUNNER, ensureInitramfs } from './initramfs.js';
import { consoleProblems, kernelProblems, parseKmsg, type KernelLogLine } from './kernel-log.js';

export const COMMAND_START_MARKER = 'SHADOWD_GUEST_COMMAND_START';
/**
 * Set (to anything but 0 or empty), every guest run prints one line on stderr
 * with its boot and command times: where a guest test's wall time goes.
 */
export const GUEST_TIMING_ENV = 'SHADOWD_GUEST_TIMING';

export interface GuestOptions {
  /** argv of the command to run in the guest, as root. */
  command: readonly string[];
  /** Working directory in the guest (the host root is the guest's root). Default: process.cwd(). */
  cwd?: string;
  /** Extra environment for the command. */
  env?: Readonly<Record<string, string>>;
  devices?: readonly DevicePreset[];
  forwards?: readonly LoopbackForward[];
  /** All NICs on one segment with one user network (devices.ts's nicHub). */
  nicHub?: boolean;
  /** Each NIC's user network on its own subnet (devices.ts's nicSubnets and nicSubnet). */
  nicSubnets?: boolean;
  /** Size of each scratch disk of the disk presets. */
  diskMiB?: number;
  /**
   * A host folder (created if missing) in which each sound card N records
   * what it plays to sndN.wav (QEMU's wav backend; see soundCapturePaths).
   * The files stay after the run. Without it the cards play into a silent
   * `none` backend.
   */
  soundCaptureDir?: string;
  /** With soundCaptureDir: the sound cards (indices among the sound presets) that get a silent `none` backend instead, for recording in the guest (the wav backend has no input). */
  soundSilentCards?: readonly number[];
  /** Sample rate of the recordings (QEMU's default 44100). */
  soundCaptureRate?: number;
  memoryMiB?: number;
  /** Wall-clock limit for the whole guest; it is killed after this. */
  timeoutMs?: number;
  /** Keep the run folder (shared read-write with the guest as $SHADOWD_RUNDIR) for inspection. */
  keepRunDir?: boolean;
  /** Called with every chunk of serial console output as it arrives. */
  onConsole?: (text: string) => void;
  /**
   * busybox (default): the initramfs runs the command in a chroot of the
   * host root, no service manager. systemd: systemd runs as PID 1 over the
   * same root and runs the command as a oneshot unit after basic.target, then
   * powers off; journald, systemctl and units work. Boot to command: about
   * 6.4 s against 2.4 s (`npm run bench:boot -- --init systemd`).
   */
  init?: GuestInit;
  /** The kernel series to boot. Default: SHADOWD_GUEST_KERNEL, else 6.1. */
  kernel?: KernelSeries;
}

export type GuestInit = 'busybox' | 'systemd';

export interface GuestResult {
  /** The command's exit status, or null when none arrived (hang, panic, init failure). */
  exitCode: number | null;
  timedOut: boolean;
  stdout: string;
  stderr: string;
  /** Serial console: boot messages at loglevel 4 and above, the init's markers. */
  console: string;
  kernelLog: KernelLogLine[];
  /** Oops, BUG, WARN, panic and lockup reports found in the kernel log or console. */
  kernelProblems: string[];
  /** QEMU start to the command starting in the guest, if it started. */
  bootToCommandMs: number | null;
  totalMs: number;
  /** The run folder, if kept. */
  runDir: string | null;
  /** The sound cards' recordings in card order, null for a silent card (empty without soundCaptureDir). */
  soundCaptures: (string | null)[];
}

/**
 * Where the sound cards' recordings go, in the order of the sound presets
 * among `devices`. The files exist from QEMU's start, so a test may read
 * them while the guest runs; their RIFF size fields are 0 until QEMU exits.
 */
export function soundCapturePaths(dir: string, devices: readonly DevicePreset[]): string[] {
  return Array.from({ length: soundCount(devices) }, (_, n) => join(dir, `snd${n}.wav`));
}

const DEFAULT_TIMEOUT_MS = 120_000;

/**
 * Units of the host's that have no business in a test guest (or walk the
 * whole 9p root for minutes, like systemd-tmpfiles-setup), masked on the
 * kernel command line under systemd init. Only basic.target and what the
 * command starts run anyway: systemd.run= makes the command's unit the
 * default target.
 */
export const SYSTEMD_MASKED_UNITS = [
  'systemd-tmpfiles-setup.service',
  'systemd-tmpfiles-clean.timer',
  'timers.target',
  'systemd-timesyncd.service',
  'ldconfig.service',
  'systemd-update-done.service',
  'postgresql.service',
  'getty.target',
  'serial-getty@ttyS0.service',
];

/** Kernel command-line words that boot the initramfs into systemd and run the command as a unit. */
export function systemdCommandLine(): string[] {
  return [
    'shadowd.init=systemd',
    `systemd.run=${SYSTEMD_RUNNER}`,
    // -force: the runner has written and synced everything the host reads;
    // services are killed rather than stopped one by one.
    'systemd.run_success_action=poweroff-force',
    'systemd.run_failure_action=poweroff-force',
    'systemd.show_status=error',
    'systemd.hostname=shadowd-guest',
    ...SYSTEMD_MASKED_UNITS.map((u) => `systemd.mask=${u}`),
  ];
}

/** Single-quotes one word for the generated cmd.sh (the only shell the rig writes). */
function shellQuote(word: string): string {
  return `'${word.replace(/'/g, `'\\''`)}'`;
}

function commandScript(opts: GuestOptions, runDir: string, kernel: KernelPaths): string {
  if (opts.command.length === 0) throw new Error('guest command is empty');
  // The guest's own code finds what was built for its kernel in the host's cache (moduleBuildDir).
  const env = { SHADOWD_RUNDIR: runDir, SHADOWD_GUEST_CACHE: cacheRoot(), [KERNEL_SERIES_ENV]: kernel.series, ...opts.env };
  const lines = [`echo ${COMMAND_START_MARKER} > /dev/console`, `cd ${shellQuote(opts.cwd ?? process.cwd())} || exit 125`];
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`bad environment variable name: ${k}`);
    lines.push(`export ${k}=${shellQuote(v)}`);
  }
  lines.push(`exec ${opts.command.map(shellQuote).join(' ')}`);
  return lines.join('\n') + '\n';
}

/** The cached kernel of a series (default: the one SHADOWD_GUEST_KERNEL selects, else 6.1). */
export async function currentKernel(series: KernelSeries = selectedKernelSeries()): Promise<KernelPaths> {
  const file = currentKernelFile(cacheRoot(), series);
  if (!existsSync(file)) throw new Error(`no guest kernel ${series} is cached: run \`npm run kernel\` first`);
  const paths = kernelPaths((await readFile(file, 'utf8')).trim());
  if (!existsSync(paths.vmlinux)) throw new Error(`${paths.vmlinux} is missing: run \`npm run kernel\` again`);
  return paths;
}

export async function runInGuest(opts: GuestOptions): Promise<GuestResult> {
  const kernel = await currentKernel(opts.kernel);
  const initrd = await ensureInitramfs(kernel);
  // Under the host's /tmp, which the guest sees through the root share too: the
  // second, writable share is mounted over the same path.
  const runDir = await mkdtemp(join(tmpdir(), 'shadowd-guest-'));
  try {
    await writeFile(join(runDir, 'cmd.sh'), commandScript(opts, runDir, kernel));
    const diskImages: string[] = [];
    for (let n = 0; n < diskCount(opts.devices ?? []); n++) {
      const image = join(runDir, `disk${n}.img`);
      await writeFile(image, '');
      await truncate(image, (opts.diskMiB ?? 64) * 1024 * 1024);
      diskImages.push(image);
    }
    const soundCaptures = opts.soundCaptureDir
      ? soundCapturePaths(opts.soundCaptureDir, opts.devices ?? []).map((p, n) => (opts.soundSilentCards?.includes(n) ? null : p))
      : [];
    if (opts.soundCaptureDir) await mkdir(opts.soundCaptureDir, { recursive: true });
    // -cpu max offers AVX2, which TCG runs slowly: code that uses it (libFLAC
    // under sox) ran about 6x slower than on a Nehalem or qemu64 model (a
    // 20 s WAV to FLAC: 16.8-20.0 s against 2.7-3.0 s, 2026-12-06), while gcc
    // (the helper's kbuild, 128 s) and Node's start were the same on both.
    // The tests' timings were set on max, so max it stays.
    const args = [
      '-machine', 'pc', '-accel', 'tcg,thread=multi', '-cpu', 'max',
      '-m', `${opts.memoryMiB ?? 1024}M`, '-smp', '2',
      '-nographic', '-no-reboot', '-nodefaults', '-serial', 'stdio',
      '-kernel', kernel.vmlinux, '-initrd', initrd,
      '-append', [
        'console=ttyS0 loglevel=4 panic=-1 rdinit=/init mitigations=off',
        `shadowd.rundir=${runDir}`,
        ...(opts.init === 'systemd' ? systemdCommandLine() : []),
      ].join(' '),
      '-fsdev', 'local,id=hostroot,path=/,security_model=none,readonly=on,multidevs=remap',
      '-device', 'virtio-9p-pci,fsdev=hostroot,mount_tag=hostroot',
      '-fsdev', `local,id=run,path=${runDir},security_model=none,multidevs=remap`,
      '-device', 'virtio-9p-pci,fsdev=run,mount_tag=run',
      ...deviceArgs({
        devices: opts.devices ?? [],
        forwards: opts.forwards ?? [],
        nicHub: opts.nicHub ?? false,
        nicSubnets: opts.nicSubnets ?? false,
        diskImages,
        ...(opts.soundCaptureDir ? { soundCaptures, soundCaptureRate: opts.soundCaptureRate } : {}),
      }),
    ];
    const started = performance.now();
    let consoleText = '';
    let bootToCommandMs: number | null = null;
    const qemu = execa('qemu-system-x86_64', args, { stdin: 'ignore', reject: false, buffer: false, stderr: 'pipe' });
    qemu.stdout.setEncoding('utf8');
    qemu.stdout.on('data', (chunk: string) => {
      consoleText += chunk;
      if (bootToCommandMs === null && consoleText.includes(COMMAND_START_MARKER)) {
        bootToCommandMs = performance.now() - started;
      }
      opts.onConsole?.(chunk);
    });
    let qemuStderr = '';
    qemu.stderr.setEncoding('utf8');
    qemu.stderr.on('data', (chunk: string) => (qemuStderr += chunk));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      qemu.kill('SIGKILL');
    }, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    const qemuResult = await qemu;
    clearTimeout(timer);
    const totalMs = performance.now() - started;
    const timing = process.env[GUEST_TIMING_ENV];
    if (timing && timing !== '0') process.stderr.write(`${timingLine(opts, bootToCommandMs, totalMs)}\n`);
    if (qemuStderr.trim()) consoleText += `\n[qemu stderr]\n${qemuStderr}`;
    if (!timedOut && qemuResult.exitCode !== 0) {
      consoleText += `\n[qemu exited with status ${String(qemuResult.exitCode ?? qemuResult.signal)}]`;
    }

    const read = async (name: string): Promise<string> => readFile(join(runDir, name), 'utf8').catch(() => '');
    const kernelLog = parseKmsg(await read('kmsg'));
    const statusText = (await read('status')).trim();
    const markerMatch = new RegExp(`${EXIT_MARKER}(\\d+)`).exec(consoleText);
    const exitText = statusText || markerMatch?.[1];
    const problems = kernelProblems(kernelLog);
    // A guest that died before its log reached the share still shows it on the console.
    if (problems.length === 0) problems.push(...consoleProblems(consoleText));
    if (consoleText.includes(INIT_FAILED_MARKER)) problems.push(`guest init failed: ${consoleText}`);
    return {
      exitCode: exitText !== undefined && exitText !== '' ? Number(exitText) : null,
      timedOut,
      stdout: await read('stdout'),
      stderr: await read('stderr'),
      console: consoleText,
      kernelLog,
      kernelProblems: problems,
      bootToCommandMs,
      totalMs,
      runDir: opts.keepRunDir ? runDir : null,
      soundCaptures,
    };
  } finally {
    if (!opts.keepRunDir) await rm(runDir, { recursive: true, force: true });
  }
}

/** The SHADOWD_GUEST_TIMING line of one run: what ran on which devices, its boot, command and total seconds. */
export function timingLine(opts: Pick<GuestOptions, 'command' | 'devices'>, bootToCommandMs: number | null, totalMs: number): string {
  const s = (ms: number): string => (ms / 1000).toFixed(1);
  const what = [...opts.command.slice(0, 5).map((w) => w.split('/').pop()), ...(opts.command.length > 5 ? ['...'] : [])].join(' ');
  const boot = bootToCommandMs === null ? 'no command start' : `boot ${s(bootToCommandMs)} s, command ${s(totalMs - bootToCommandMs)} s`;
  return `guest timing: ${what} [${(opts.devices ?? []).join(',')}]: ${boot}, total ${s(totalMs)} s`;
}

/** Describes a guest run for a failure message: why it failed, then everything it printed. */
export function describeGuestRun(r: GuestResult, what: string): string {
  const why = r.timedOut
    ? `the guest hung and was killed after ${Math.round(r.totalMs / 1000)} s`
    : r.exitCode === null
      ? 'the guest stopped without reporting an exit status (panic or init failure)'
      : r.kernelProblems.length > 0
        ? 'the guest kernel reported a problem'
        : `the command exited with status ${r.exitCode}`;
  const parts = [`${what}: ${why}`];
  if (r.kernelProblems.length > 0) parts.push(`--- kernel problems ---\n${r.kernelProblems.join('\n---\n')}`);
  parts.push(`--- stdout ---\n${r.stdout}`, `--- stderr ---\n${r.stderr}`, `--- console ---\n${r.console}`);
  return parts.join('\n');
}

/** Throws with the full story unless the command exited 0 and the kernel stayed clean. */
export function assertGuestOk(r: GuestResult, what: string): void {
  if (r.exitCode !== 0 || r.timedOut || r.kernelProblems.length > 0) throw new Error(describeGuestRun(r, what));
}

