// The seam between shadowd's class-agnostic core and its device classes. A
// class (the kernel's sysfs class: net, sound, block) is one shadow for every
// driver of that class: it knows the class interface, never a driver. The
// core (recovery manager, policy, store, history, replay runner, taps runner,
// detector wiring, control socket) knows classes only through this file.
//
// A class is two parts. Its *declaration* is static: what its taps print,
// how its devices are named, its faults, restart steps, failure and holder
// kinds and configuration keys; the configuration parser, the control
// protocol and the helper protocol read it without starting anything. Its
// *runtime*, made by open() once the daemon runs, is the shadow itself and
// what the recovery manager asks of the class.
//
// Adding a class: a folder under daemon/classes/ that exports a
// DeviceClass, and one line in daemon/classes/registry.ts.
import type { DeviceStatus, ShowResult } from './device-status.js';
import type { Logger } from '../service/log.js';
import type { NameRule } from './device-ref.js';
import type { FailureReport } from './failure-report.js';
import type { HelperClient } from './helper-client.js';
import type { KernelLogRule } from './kernel-faults.js';
import type { RestartReply } from './helper-protocol.js';
import type { ShadowStore } from './shadow-store.js';
import type { TapEvent } from './tap-record.js';

/** A configuration value's parser: a value, or an error that says what the value must be. */
export type SettingParse<T> = (raw: string) => { value: T } | { error: string };

/** One configuration key a class declares for its [Class], [Driver] and [Device] sections (e.g. the network class's StallThresholdMs). */
export interface ClassSetting {
  /** As written in the file: StallThresholdMs. */
  key: string;
  parse: SettingParse<number | boolean>;
  default: number | boolean;
  /** One line for docs and errors. */
  doc: string;
}

/**
 * A process that pins itself to one CPU and makes a call the class's taps
 * print (the taps runner's sync barrier, core/ingest.ts): argv to run, and
 * how to know its event. The marker's request must fail harmlessly.
 */
export interface SyncMarker {
  argv: readonly string[];
  isMarker(e: TapEvent): boolean;
}

export interface ClassDeclaration {
  /** The kernel's sysfs class name: net, sound, block. */
  readonly id: string;
  /** For people: "network", "sound", "disk". */
  readonly title: string;
  /** What one device is called: "network device". */
  readonly noun: string;
  readonly names: NameRule;
  /** The bpftrace program of the class's taps (absolute path). */
  readonly tapProgram: string;
  /**
   * Kernel modules the taps probe that need not be loaded on every machine
   * (sound: snd, snd-pcm): the class layer's own, never a driver's. They are
   * loaded at boot (scripts/install.sh lists them, from `shadowd
   * --boot-modules`, in /etc/modules-load.d/shadowd.conf: the service may not
   * load modules), so the taps attach on a machine with no such device yet;
   * loading them creates no device. The taps runner checks /sys/module and
   * runs modprobe only for a missing one (core/kernel-modules.ts).
   */
  readonly tapModules?: readonly string[];
  /** Every `ev=` the program prints; the taps runner hands the class exactly these. */
  readonly tapEvents: readonly string[];
  /** The sync barrier's marker for this class's taps. */
  readonly syncMarker: SyncMarker;
  /** The helper's faults for this class (`inject CLASS:NAME FAULT`), without 'clear'. */
  readonly faults: readonly string[];
  /** The helper's replay steps after a restart, in its order (the `steps=` of `restarted`). */
  readonly restartSteps: readonly string[];
  /** Extra decimal fields the helper adds to this class's `restarted` reply, after id= (net: ifindex). */
  readonly restartFields: readonly string[];
  /** Fields of restartFields that may be 0 (a card number); the others must be positive (an ifindex). */
  readonly restartFieldsFromZero?: readonly string[];
  /** Extra text fields of the `restarted` reply, each a kernel device name (block: unit, the restart unit's name). */
  readonly restartNames?: readonly string[];
  /** Failure kinds only this class's detectors report (net: tx-timeout, tx-stall); the generic ones are in failure-report.ts. */
  readonly failureKinds: readonly string[];
  /** Kinds of reference a process can hold on a device, kept as holders in the shadow (net: promiscuity, allmulti). */
  readonly holderKinds: readonly string[];
  /** The class's own configuration keys, beside the generic policy. */
  readonly settings: readonly ClassSetting[];
  /** Device attributes the CLI shows beside the name (net: ifindex), from DeviceStatus.attrs. */
  readonly attrs: readonly string[];
  /** Failure reports the class's kernel code prints about a device, for the kernel log detector (net: the TX watchdog). */
  readonly kernelLogRules: readonly KernelLogRule[];
  /** What a parked device is left as, for the give-up message (net: "no carrier (operationally down, ...); nothing calls into its driver"). */
  readonly parkedAs?: string;
}

/** What the daemon gives a class when it opens it. */
export interface ClassContext {
  logger: Logger;
  /** The shared store; a class reads and writes only rows of its own class. */
  store: ShadowStore;
  /** The helper for commands that may wait behind a restart. */
  helper: () => Promise<HelperClient>;
  /** A second helper connection for polls that must not queue behind a restart (a stall detector's). */
  pollHelper: () => Promise<HelperClient>;
  /** The taps runner's barrier with this class's marker (see SyncMarker). */
  syncTaps: () => Promise<void>;
  /** Where the class's detectors send failures (the policy filter, then the recovery manager). */
  report: (f: FailureReport) => void;
  /** Whether shadowd is restarting or has parked this device: the helper keeps it, whatever the taps see of its driver. */
  held: (name: string) => boolean;
  /** The value of one of the class's settings for a device (its [Device], [Driver], [Class] sections, else the default). */
  setting: (name: string, driver: string | null, key: string) => number | boolean;
}

/** A device the recovery manager can act on. */
export interface DeviceInfo {
  name: string;
  driver: string | null;
  /** The restart unit: the bus device the helper releases and probes again (one controller may carry several class devices). */
  bus: string | null;
}

/** What a module's devices are, for blaming a kernel report (oops, BUG, WARN) on them. */
export interface ModuleDevice {
  name: string;
  driver: string | null;
  /** The module that driver lives in; can differ from the driver's name. */
  module: string | null;
  /** The bus device it sits on ('' for none), where a kernel report may name it (RuleMatch.busName). */
  bus?: string;
}

export interface ReplayStepReport {
  key: string;
  argv: string[];
  ok: boolean;
  error?: string;
}

/** What a replay from the shadow did. */
export interface ReplayReport {
  device: string;
  steps: ReplayStepReport[];
  /**
   * Set when the device is not back in service, whatever the steps did (a
   * disk that did not come back, or came back a different disk): the
   * recovery fails with this reason instead of ending recovered with
   * problems, and may be retried within the policy.
   */
  notBack?: string;
}

export interface ClassReplay {
  /**
   * Called as a restart is sent, with nothing waiting on it: marks what the
   * shadow holds then. The replay after that restart gets the mark. Never rejects.
   */
  mark(name: string): Promise<number>;
  /** With a restart's mark: what the restart lost. Without: the whole shadow (shadowctl replay). */
  replay(name: string, restartMark?: Promise<number>): Promise<ReplayReport>;
}

/** The class's detectors beyond the kernel log (which the core runs for every class). */
export interface ClassDetectors {
  /** Every tap event of the class, as it arrives (before batching): a detector may act at once. */
  onTapEvent?(e: TapEvent): void;
  stop(): Promise<void>;
}

export interface ClassRuntime {
  // The shadow.
  /** One batch of the class's tap events, applied in one transaction. */
  applyEvents(batch: readonly TapEvent[]): void;
  /** Adopts the class's devices and reads their whole state (start-up, after a gap). */
  resync(why: string): Promise<void>;
  /** resync, with gaps that come while one runs folded into one more. */
  requestResync(why: string): Promise<void>;
  /** Resolves once the re-reads asked for by the events applied so far are applied. */
  caughtUp(): Promise<void>;
  /** Resolves once every re-read scheduled so far is applied (shutdown, tests). */
  settled(): Promise<void>;
  /** Devices whose state is being re-read. */
  pendingReads(): number;
  /** The class's devices, present and absent, as the shadow holds them (mode 'passive': the core fills it in). */
  list(): DeviceStatus[];
  /** One device in full; throws RequestError ENODEV when the shadow has none of that name. */
  show(name: string): ShowResult;

  // What the recovery manager asks.
  /** The device of that name, present rather than absent, or null. */
  lookup(name: string): DeviceInfo | null;
  readonly replay: ClassReplay;
  /**
   * Asked before a restart touches anything: why restarting the device's
   * driver would make things worse than the failure (a disk on the same
   * controller in use and not under a map would lose its I/O), or null to go
   * ahead. A reason refuses the recovery; nothing is restarted.
   */
  refuseRestart?(name: string): Promise<string | null>;
  /** After a successful restart: what the class finds wrong with the device (net: its ifindex changed). Empty when all is well. */
  afterRestart(name: string, reply: RestartReply): string[];
  /** Every device of the class with its driver and module, for blaming a kernel report. */
  moduleDevices(): Promise<ModuleDevice[]>;
  /** Starts the class's own detectors (stall pollers, tap-event detectors). */
  startDetectors(): ClassDetectors;
}

export interface DeviceClass extends ClassDeclaration {
  open(ctx: ClassContext): ClassRuntime;
}
