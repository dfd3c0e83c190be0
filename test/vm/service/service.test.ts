// shadowd as a systemd service, in a guest booted with systemd as PID 1 over
// the host root: installed with scripts/install.sh (the helper module through
// DKMS), started, made to recover a real e1000 fault, killed -9, checked for
// the privileges its unit leaves it, used by a non-root user, upgraded while
// running, starved of its watchdog, and uninstalled with uninstall.sh
// (guest/service-check.ts does the work; each check below reads its result).
import { existsSync, statSync } from 'node:fs';
import { beforeAll, describe, expect, it } from 'vitest';
import { MESSAGE_FAILURE_DETECTED, MESSAGE_RECOVERED, MESSAGE_RECOVERY_STARTED } from '../../../daemon/service/message-ids.js';
import { assertGuestOk, describeGuestRun, runInGuest } from '../rig/guest.js';
import { buildHelperModule } from '../rig/kmod-build.js';
import { repoPath } from '../rig/repo-path.js';

const SCRIPT = repoPath('dist/test/vm/guest/service-check.js');
/** Boot, DKMS build and depmod, and two installs (the second an upgrade), under emulation dominate: minutes, not seconds (700-930 s in all). */
const GUEST_TIMEOUT_MS = 1_500_000;

interface Run {
  exitCode: number | null;
  stdout: string;
  stderr: string;
  all: string;
}
type Show = Record<string, string>;
type JournalEntry = Record<string, string | undefined>;
/** systemctl show, and shadowctl's status devices and the NIC's shadow entries. */
interface ServiceSide {
  unit: Show;
  devices: Record<string, unknown>[];
  entries: Record<string, unknown>[];
}
interface ServiceResult {
  pid1: string;
  error?: string;
  totalMs: number;
  daemonJournal: string;
  install?: {
    exitCode: number | null;
    ms: number;
    output: string;
    enabled: string;
    group: string;
    dkms: string;
    moduleFile: string;
    loaded: boolean;
    catalog: string;
    manifestRecords: string[];
    manifestFiles: number;
    release: string | null;
    modulesLoad: string[];
    loadedModules: string[];
    legacyManifest: boolean;
  };
  privilege?: { capBnd: string; sysModule: number | null; cgroup: string; inside: Record<string, string> | string; outside: Record<string, string> | string; deviceAllow: string };
  upgrade?: {
    exitCode: number | null;
    ms: number;
    output: string;
    before: { unit: Show; release: string };
    after: { unit: Show; release: string };
    oldTreeGone: boolean;
    newMain: boolean;
    mapped: string[];
    dkms: string;
  };
  device?: { dev: string; allowFaults: string };
  start?: { exitCode: number | null; output: string; ms: number; show: Show };
  recovery?: { inject: Run; recovery: { id: string; result: string } | null; entries: JournalEntry[] };
  kill9?: { before: ServiceSide; after: ServiceSide; restartMs: number };
  access?: { memberStatus: Run; memberStatusJson: Run; memberRecover: Run; outsiderStatus: Run; historyUnchanged: boolean };
  watchdog?: { fed: Show; held: Show; after: Show; restartMs: number; systemdSaid: string[] };
  uninstall?: {
    exitCode: number | null;
    ms: number;
    output: string;
    leftover: string[];
    manifest: boolean;
    unit: string;
    enabledLink: boolean;
    dkms: string;
    moduleFile: number | null;
    loaded: boolean;
    group: number | null;
    catalog: string;
    configKept: boolean;
    purge: { exitCode: number | null; output: string; config: boolean; stateDir: boolean };
  };
}

describe('shadowd under systemd (PID 1) in the guest', () => {
  let r: ServiceResult;
  let story: string;

  beforeAll(async () => {
    if (!existsSync(SCRIPT) || statSync(SCRIPT).mtimeMs < statSync(repoPath('test/vm/guest/service-check.ts')).mtimeMs) {
      throw new Error(`${SCRIPT} is missing or stale: run \`npx tsc -p tsconfig.json\` first`);
    }
    // The install builds the module with DKMS in the guest; the host build
    // (npm run kmod) only proves the sources compile before spending minutes.
    await buildHelperModule((line) => console.log(`kmod: ${line}`));
    const g = await runInGuest({ command: ['node', SCRIPT], init: 'systemd', devices: ['e1000'], memoryMiB: 1536, timeoutMs: GUEST_TIMEOUT_MS });
    story = describeGuestRun(g, 'service check');
    const line = g.stdout.split('\n').find((l) => l.startsWith('SERVICE_RESULT '));
    if (!line) throw new Error(`no SERVICE_RESULT:\n${story}`);
    r = JSON.parse(line.slice('SERVICE_RESULT '.length)) as ServiceResult;
    const phases = g.stdout.split('\n').filter((l) => /^\[\d+\.\d s\]/.test(l));
    console.log(
      `systemd guest: boot to command ${String(g.bootToCommandMs?.toFixed(0))} ms, whole run ${(g.totalMs / 1000).toFixed(0)} s; ` +
        `install ${String(r.install?.ms)} ms, start to READY ${String(r.start?.ms)} ms, back after kill -9 ${String(r.kill9?.restartMs)} ms, ` +
        `after SIGSTOP ${String(r.watchdog?.restartMs)} ms, uninstall ${String(r.uninstall?.ms)} ms\n${phases.join('\n')}\n` +
        (r.recovery?.entries ?? [])
          .filter((e) => e['SHADOWD_RECOVERY_ID'] !== undefined)
          .map((e) => `journal: ${['MESSAGE_ID', 'PRIORITY', 'SHADOWD_DEVICE', 'SHADOWD_DRIVER', 'SHADOWD_CLASS', 'SHADOWD_RECOVERY_ID', 'SHADOWD_PHASE'].map((k) => `${k}=${String(e[k])}`).join(' ')} ${String(e['MESSAGE'])}`)
          .join('\n'),
    );
    if (r.error) throw new Error(`the service check stopped: ${r.error}\n--- shadowd's journal ---\n${r.daemonJournal}\n${story}`);
    assertGuestOk(g, 'service check');
  }, GUEST_TIMEOUT_MS + 120_000);

  it('runs under systemd as PID 1', () => {
    expect(r.pid1).toBe('systemd');
  });

  it('installs with scripts/install.sh: files, enabled unit, group, catalog, and the helper through DKMS', () => {
    const i = r.install!;
    expect(i.exitCode, i.output).toBe(0);
    expect(i.enabled).toBe('enabled');
    expect(i.group).toMatch(/^shadowd:x:\d+:$/);
    // The DKMS version names the sources (VERSION-HASH): a rebuild goes beside the installed one.
    expect(i.dkms).toMatch(/^shadow_helper\/[\d.]+-[0-9a-f]{8}, 6\.1\.\d+-\d+-amd64, x86_64: installed/);
    expect(i.moduleFile).toMatch(/^\/lib\/modules\/6\.1\.\d+-\d+-amd64\/updates\/dkms\/shadow_helper\.ko(\.xz)?$/);
    expect(i.loaded).toBe(true);
    for (const id of [MESSAGE_FAILURE_DETECTED, MESSAGE_RECOVERY_STARTED, MESSAGE_RECOVERED]) {
      expect(i.catalog).toMatch(new RegExp(`^${id} shadowd: `, 'm'));
    }
    expect(i.manifestRecords).toEqual(expect.arrayContaining(['group shadowd', 'enabled shadowd.service', expect.stringMatching(/^dkms shadow_helper [\d.]+-[0-9a-f]{8}$/)]));
    expect(i.manifestFiles).toBeGreaterThan(100);
    // The manifest in the release tree (root's), none in the daemon's state directory.
    expect(i.release).toMatch(/^shadowd-releases\/[\d.]+-\d{8}T\d{6}Z-\d+$/);
    expect(i.legacyManifest).toBe(false);
    // The helper and the sound class's tap modules load at boot, and were loaded by the install.
    expect(i.modulesLoad).toEqual(['shadow_helper', 'snd', 'snd-pcm']);
    expect(i.loadedModules).toEqual(['shadow_helper', 'snd', 'snd_pcm']);
    expect(r.device?.allowFaults).toBe('Y');
  });

  it('systemctl start returns once the daemon is READY', () => {
    const s = r.start!;
    expect(s.exitCode, s.output).toBe(0);
    expect(s.show).toMatchObject({ ActiveState: 'active', SubState: 'running', Result: 'success' });
    expect(Number(s.show['MainPID'])).toBeGreaterThan(1);
    expect(s.show['StatusText']).not.toBe('');
  });

  it('journals an injected recovery with its fields and one recovery id', () => {
    const rec = r.recovery!;
    expect(rec.inject.exitCode, rec.inject.all).toBe(0);
    expect(rec.recovery, 'a finished recovery in shadowctl history').not.toBeNull();
    expect(rec.recovery!.result).toBe('recovered');
    const byId = (id: string): JournalEntry[] => rec.entries.filter((e) => e['MESSAGE_ID'] === id);
    const events = [MESSAGE_FAILURE_DETECTED, MESSAGE_RECOVERY_STARTED, MESSAGE_RECOVERED].map((id) => {
      const found = byId(id);
      expect(found, `one entry with MESSAGE_ID=${id} in ${JSON.stringify(rec.entries, null, 1)}`).toHaveLength(1);
      return found[0]!;
    });
    for (const e of events) {
      expect(e).toMatchObject({
        SHADOWD_DEVICE: r.device!.dev,
        SHADOWD_DRIVER: 'e1000',
        SHADOWD_CLASS: 'net',
        SHADOWD_RECOVERY_ID: rec.recovery!.id,
        SYSLOG_IDENTIFIER: 'shadowd',
        _SYSTEMD_UNIT: 'shadowd.service',
      });
      expect(e['SHADOWD_PHASE'], JSON.stringify(e)).toMatch(/^[a-z-]+$/);
      expect(e['PRIORITY'], JSON.stringify(e)).toMatch(/^[0-7]$/);
      expect(e['MESSAGE']).toBeTruthy();
    }
    // Every entry of this recovery names the same device.
    const ofRecovery = rec.entries.filter((e) => e['SHADOWD_RECOVERY_ID'] === rec.recovery!.id);
    expect(new Set(ofRecovery.map((e) => e['SHADOWD_DEVICE']))).toEqual(new Set([r.device!.dev]));
  });

  it('is restarted by systemd after kill -9, with the same shadow state', () => {
    const { before, after } = r.kill9!;
    expect(after.unit['MainPID']).not.toBe(before.unit['MainPID']);
    expect(Number(after.unit['NRestarts'])).toBe(Number(before.unit['NRestarts']) + 1);
    expect(after.devices.length).toBeGreaterThan(0);
    expect(after.devices).toEqual(before.devices);
    // Key by key, with who set each and when: nothing lost, nothing re-attributed.
    expect(after.entries.length).toBeGreaterThan(10);
    expect(after.entries).toEqual(before.entries);
  });

  it('runs without CAP_SYS_MODULE, and may open no misc device but the helper\'s and device-mapper\'s', () => {
    const p = r.privilege!;
    expect(p.capBnd).toMatch(/^[0-9a-f]{16}$/);
    expect(p.sysModule, `CapBnd ${p.capBnd}`).toBe(0);
    expect(p.cgroup).toBe('/system.slice/shadowd.service');
    // Outside the service's cgroup both open: the refusal inside is the unit's device policy.
    expect(p.outside).toEqual({ '/dev/cpu_dma_latency': 'ok', '/dev/kmsg': 'ok' });
    expect(p.inside).toEqual({ '/dev/cpu_dma_latency': 'EPERM', '/dev/kmsg': 'ok' });
    expect(p.deviceAllow).toContain('/dev/shadow_helper rw');
    expect(p.deviceAllow).not.toContain('char-misc');
  });

  it('upgrades a running service: a new release tree, the service restarted onto it, the old tree removed, the helper not rebuilt', () => {
    const u = r.upgrade!;
    expect(u.exitCode, u.output).toBe(0);
    expect(u.after.release).not.toBe(u.before.release);
    expect(u.after.unit).toMatchObject({ ActiveState: 'active', SubState: 'running' });
    expect(u.after.unit['MainPID']).not.toBe(u.before.unit['MainPID']);
    expect(u.mapped).toEqual([u.after.release]);
    expect(u.oldTreeGone).toBe(true);
    expect(u.newMain).toBe(true);
    expect(u.output).toMatch(/shadow_helper [\d.]+-[0-9a-f]{8} \(these sources\) is built and installed already/);
    expect(u.dkms).toBe(r.install!.dkms);
  });

  it('lets a shadowd group member read but not recover, and an outsider not even read', () => {
    const a = r.access!;
    expect(a.memberStatus.exitCode, a.memberStatus.all).toBe(0);
    expect(a.memberStatus.stdout).toContain(r.device!.dev);
    expect((JSON.parse(a.memberStatusJson.stdout) as { devices: unknown[] }).devices.length).toBeGreaterThan(0);
    expect(a.memberRecover.exitCode, a.memberRecover.all).toBe(4);
    expect(a.memberRecover.stderr).toMatch(/^shadowctl: .*(root|permission)/im);
    expect(a.historyUnchanged).toBe(true);
    expect(a.outsiderStatus.exitCode, a.outsiderStatus.all).toBe(4);
    expect(a.outsiderStatus.stderr).toMatch(/^shadowctl: .*(permission|denied|shadowd group)/im);
  });

  it('feeds the watchdog, and is restarted once it stops feeding it', () => {
    const w = r.watchdog!;
    expect(w.fed['WatchdogUSec']).toBe('5s');
    // Still the same process after more than twice WatchdogSec.
    expect(w.held).toMatchObject({ ActiveState: 'active', SubState: 'running', MainPID: w.fed['MainPID'] });
    expect(w.after['MainPID']).not.toBe(w.fed['MainPID']);
    expect(Number(w.after['NRestarts'])).toBe(Number(w.held['NRestarts']) + 1);
    expect(w.systemdSaid.join('\n')).toMatch(/Watchdog timeout \(limit 5s\)/);
  });

  it('uninstalls with the installed uninstall.sh: everything in the manifest goes, shadowd.conf stays until --purge', () => {
    const u = r.uninstall!;
    expect(u.exitCode, u.output).toBe(0);
    expect(u.leftover).toEqual([]);
    expect(u.manifest).toBe(false);
    expect(u.unit).toBe('not-found');
    expect(u.enabledLink).toBe(false);
    expect(u.dkms).toBe('');
    expect(u.moduleFile).not.toBe(0);
    expect(u.loaded).toBe(false);
    expect(u.group).not.toBe(0);
    expect(u.catalog).not.toMatch(/shadowd:/);
    expect(u.configKept).toBe(true);
    expect(u.purge.exitCode, u.purge.output).toBe(0);
    expect(u.purge.config).toBe(false);
    expect(u.purge.stateDir).toBe(false);
  });
});
