// Builds the guest's tiny initramfs: busybox, the modules that mount the host
// root over virtio-9p with a tmpfs overlay, and an init that either runs one
// command in a chroot of that root and powers off (busybox init), or hands the
// root to systemd as PID 1, which runs the command as a unit and powers off
// (systemd init). Cached by content hash.
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chmod, copyFile, mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { execa } from 'execa';
import type { KernelPaths } from './cache-paths.js';

/** Modules the init loads, in dependency order, to reach the host root. */
const BOOT_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];
const BUSYBOX = '/bin/busybox';

/** Markers the init prints on the console; the runner parses them. */
export const EXIT_MARKER = 'SHADOWD_GUEST_EXIT=';
export const INIT_FAILED_MARKER = 'SHADOWD_GUEST_INIT_FAILED:';

/**
 * Under systemd init: the script, written into the overlay before switching
 * root, that systemd runs as kernel-command-line.service (systemd.run=).
 */
export const SYSTEMD_RUNNER = '/etc/shadowd-guest/run';

/** systemd generators disabled in the guest under systemd init. */
const SKIPPED_GENERATORS = [
  'systemd-sysv-generator',
  'postgresql-generator',
  'systemd-gpt-auto-generator',
  'systemd-cryptsetup-generator',
  'systemd-integritysetup-generator',
  'systemd-veritysetup-generator',
  'systemd-hibernate-resume-generator',
  'systemd-system-update-generator',
];

/** The environment the command starts with, under either init. */
const COMMAND_ENV =
  'HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin TERM=dumb LANG=C.UTF-8 SHADOWD_IN_GUEST=1';

/**
 * Under systemd init: mounts the run share, streams the kernel log to it,
 * runs cmd.sh and reports its status the way the busybox init does. Written
 * into the overlay by the init (RUNDIR is replaced with the run folder), run
 * by systemd as a oneshot unit; the unit's success action powers off.
 */
function systemdRunner(): string {
  return `#!/bin/sh
rundir=RUNDIR
mkdir -p "$rundir"
if ! mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 run "$rundir"; then
  echo "${INIT_FAILED_MARKER} mount run share under systemd" > /dev/console
  exit 1
fi
cat /dev/kmsg > "$rundir/kmsg" 2>/dev/null &
kmsg=$!
n=0
until [ -s "$rundir/kmsg" ] || [ $n -ge 100 ]; do sleep 0.02; n=$((n + 1)); done
/usr/bin/env -i ${COMMAND_ENV} SHADOWD_GUEST_INIT=systemd /bin/sh "$rundir/cmd.sh" \\
  < /dev/null > "$rundir/stdout" 2> "$rundir/stderr"
status=$?
echo "shadowd-guest: command exited with status $status" > /dev/kmsg
n=0
until grep -q 'shadowd-guest: command exited' "$rundir/kmsg" || [ $n -ge 100 ]; do sleep 0.02; n=$((n + 1)); done
kill $kmsg
echo "$status" > "$rundir/status"
sync
echo "${EXIT_MARKER}$status" > /dev/console
`;
}

/**
 * The init script. Runtime parameters come from the kernel command line:
 * shadowd.rundir=PATH (the read-write share holding cmd.sh, where stdout,
 * stderr, the kernel log and the exit status are written back) and
 * shadowd.init=systemd to hand the root to systemd (vm-recipe.md).
 */
function initScript(kernel: KernelPaths): string {
  const headersCommon = kernel.headers.replace(/-amd64$/, '-common');
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "${INIT_FAILED_MARKER} $*" > /dev/console; poweroff -f; }
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in /modules/*.ko; do insmod "$m" || fail "insmod $m"; done
rundir=
init=busybox
for arg in $(cat /proc/cmdline); do
  case "$arg" in
    shadowd.rundir=*) rundir="\${arg#shadowd.rundir=}" ;;
    shadowd.init=*) init="\${arg#shadowd.init=}" ;;
  esac
done
[ -n "$rundir" ] || fail "no shadowd.rundir= on the kernel command line"
mkdir -p /lower /rw /newroot
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=262144,cache=loose hostroot /lower || fail "mount host root"
mount -t tmpfs -o mode=0755 rw /rw
mkdir -p /rw/upper /rw/work
mount -t overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work overlay /newroot || fail "mount overlay"
r=/newroot
if [ "$init" = systemd ]; then
  # systemd mounts everything itself: nothing may be mounted under the new
  # root yet. The host's /.dockerenv would make systemd think it runs in a
  # container and ignore the kernel command line: whiteout it in the overlay.
  rm -f $r/.dockerenv
  # The guest kernel's modules and headers, by symlinks rather than binds.
  linkcache() {
    [ -e "$r$2" ] || [ -L "$r$2" ] && { rm -rf "$r$2" || fail "replace $2"; }
    mkdir -p "$(dirname "$r$2")" && ln -s "$1" "$r$2" || fail "link $1"
  }
  linkcache ${kernel.modules} /lib/modules/${kernel.kver}
  linkcache ${kernel.headers} /usr/src/linux-headers-${kernel.kver}
  linkcache ${headersCommon} /usr/src/${basename(headersCommon)}
  linkcache ${kernel.kbuild} /usr/lib/${basename(kernel.kbuild)}
  # Generators that only look for what a test guest lacks (SysV scripts,
  # encrypted or GPT-discovered disks, a database's clusters) and cost seconds
  # of 9p lookups before the first unit starts.
  mkdir -p $r/etc/systemd/system-generators
  for g in ${SKIPPED_GENERATORS.join(' ')}; do ln -sf /dev/null $r/etc/systemd/system-generators/$g; done
  mkdir -p "$r${dirname(SYSTEMD_RUNNER)}"
  sed "s|^rundir=RUNDIR$|rundir='$rundir'|" /systemd-runner > "$r${SYSTEMD_RUNNER}" || fail "write ${SYSTEMD_RUNNER}"
  chmod 755 "$r${SYSTEMD_RUNNER}"
  umount /proc /sys
  exec switch_root $r /lib/systemd/systemd
fi
mount -t proc proc $r/proc
mount -t sysfs sys $r/sys
mount -t devtmpfs dev $r/dev
mkdir -p $r/dev/pts $r/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666 devpts $r/dev/pts
mount -t tmpfs shm $r/dev/shm
mount -t tmpfs run $r/run
mount -t debugfs debugfs $r/sys/kernel/debug
mount -t tracefs tracefs $r/sys/kernel/tracing
mount -t bpf bpf $r/sys/fs/bpf
# The guest kernel's modules and headers live in the host's cache folder.
bindcache() { mkdir -p "$r$2" && mount -o bind "$r$1" "$r$2" || fail "bind $1"; }
bindcache ${kernel.modules} /lib/modules/${kernel.kver}
bindcache ${kernel.headers} /usr/src/linux-headers-${kernel.kver}
bindcache ${headersCommon} /usr/src/${basename(headersCommon)}
bindcache ${kernel.kbuild} /usr/lib/${basename(kernel.kbuild)}
mkdir -p "$r$rundir"
mount -t 9p -o trans=virtio,version=9p2000.L,msize=262144 run "$r$rundir" || fail "mount run share"
hostname shadowd-guest
# The kernel loads modules on demand (qdiscs, protocols) by running its modprobe
# helper from init's root, which is this initramfs: send it into the host root.
printf '#!/bin/busybox sh\nexec chroot /newroot /sbin/modprobe "$@"\n' > /bin/modprobe-host
chmod 755 /bin/modprobe-host
echo /bin/modprobe-host > /proc/sys/kernel/modprobe
ip link set lo up
# The kernel log streams to the share, so it survives a hang; the command starts
# only once the stream is running, and the stream stops only once it caught up.
cat /dev/kmsg > "$r$rundir/kmsg" 2>/dev/null &
kmsg=$!
n=0
until [ -s "$r$rundir/kmsg" ] || [ $n -ge 100 ]; do sleep 0.02; n=$((n + 1)); done
chroot $r /usr/bin/env -i ${COMMAND_ENV} /bin/sh "$rundir/cmd.sh" \\
  < /dev/null > "$r$rundir/stdout" 2> "$r$rundir/stderr"
status=$?
echo "shadowd-guest: command exited with status $status" > /dev/kmsg
n=0
until grep -q 'shadowd-guest: command exited' "$r$rundir/kmsg" || [ $n -ge 100 ]; do sleep 0.02; n=$((n + 1)); done
kill $kmsg
echo "$status" > "$r$rundir/status"
sync
echo "${EXIT_MARKER}$status" > /dev/console
poweroff -f
`;
}

async function moduleFiles(kernel: KernelPaths): Promise<string[]> {
  const files: string[] = [];
  for (const mod of BOOT_MODULES) {
    const { stdout } = await execa('modprobe', ['-d', kernel.root, '-S', kernel.kver, '--show-depends', mod]);
    for (const line of stdout.split('\n')) {
      const m = /^insmod\s+(\S+)/.exec(line.trim());
      if (m?.[1] && !files.includes(m[1])) files.push(m[1]);
    }
  }
  if (files.length === 0) throw new Error(`modprobe found none of ${BOOT_MODULES.join(', ')} for ${kernel.kver}`);
  return files;
}

/** Returns the path of an initramfs for this kernel, building it if the cache lacks it. */
export async function ensureInitramfs(kernel: KernelPaths): Promise<string> {
  if (!existsSync(BUSYBOX)) throw new Error(`${BUSYBOX} is missing: install it with \`apt-get install busybox-static\``);
  const modules = await moduleFiles(kernel);
  const init = initScript(kernel);
  const runner = systemdRunner();
  const key = createHash('sha256').update(init).update(runner).update(modules.join('\n')).digest('hex').slice(0, 16);
  const out = join(dirname(kernel.vmlinux), `initramfs-${key}.cpio`);
  if (existsSync(out)) return out;

  const stage = await mkdtemp(join(dirname(kernel.vmlinux), 'initramfs-stage-'));
  try {
    for (const d of ['bin', 'modules', 'proc', 'sys', 'dev']) await mkdir(join(stage, d));
    await copyFile(BUSYBOX, join(stage, 'bin', 'busybox'));
    await chmod(join(stage, 'bin', 'busybox'), 0o755);
    // Numbered so the init's glob loads them in dependency order. 6.12's
    // modules come xz-compressed: they are stored plain, for busybox's insmod.
    for (const [i, file] of modules.entries()) {
      const name = `${String(i).padStart(2, '0')}-${basename(file).replace(/\.xz$/, '')}`;
      if (file.endsWith('.ko.xz')) {
        const { stdout } = await execa('xz', ['-dc', file], { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 });
        await writeFile(join(stage, 'modules', name), stdout);
      } else {
        await copyFile(file, join(stage, 'modules', name));
      }
    }
    await writeFile(join(stage, 'init'), init, { mode: 0o755 });
    await writeFile(join(stage, 'systemd-runner'), runner, { mode: 0o755 });
    const entries = await listTree(stage);
    const tmp = `${out}.tmp`;
    const { stdout } = await execa('cpio', ['--quiet', '-o', '-H', 'newc', '--owner=0:0'], {
      cwd: stage,
      input: entries.join('\n') + '\n',
      encoding: 'buffer',
      maxBuffer: 256 * 1024 * 1024,
    });
    await writeFile(tmp, stdout);
    await rename(tmp, out);
    return out;
  } finally {
    await rm(stage, { recursive: true, force: true });
  }
}

async function listTree(top: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const ent of await readdir(dir, { withFileTypes: true })) {
      const p = join(dir, ent.name);
      out.push(relative(top, p));
      if (ent.isDirectory()) await walk(p);
    }
  };
  await walk(top);
  return out;
}
