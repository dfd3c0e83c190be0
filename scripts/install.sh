#!/usr/bin/env bash
# Installs shadowd on a Debian or Ubuntu machine from a built checkout:
#
#   npm ci && npm run build && sudo scripts/install.sh
#
# What goes where (every file is listed in the manifest, which
# scripts/uninstall.sh reads to remove exactly these again):
#   /usr/lib/shadowd-releases/ID/     one install's tree (ID: VERSION-TIME-PID):
#                                     the daemon and CLI (dist/daemon, dist/cli),
#                                     the production node_modules, package.json,
#                                     bpf/, README.md, docs/, uninstall.sh, and
#                                     the install manifest
#   /usr/lib/shadowd                  a symlink to the current release tree
#   /usr/sbin/shadowd, /usr/bin/shadowctl   launchers
#   /usr/lib/systemd/system/shadowd.service the unit (enabled, not started)
#   /usr/lib/systemd/catalog/shadowd.catalog  + journalctl --update-catalog
#   /etc/shadowd/shadowd.conf.example        (an existing shadowd.conf is never touched)
#   /usr/src/shadow_helper-VERSION-HASH/     the helper module's sources (HASH
#                                     names them), built and installed for the
#                                     running kernel by DKMS (and for every
#                                     kernel installed later)
#   /etc/modules-load.d/shadowd.conf  loads shadow_helper (with fault injection
#                                     off, allow_faults=0, its default) and the
#                                     class layers the taps probe at boot: the
#                                     service may not load modules itself
#   the `shadowd` system group        members may run read-only shadowctl commands
#
# The manifest is /usr/lib/shadowd/install-manifest, inside the release tree:
# root's, where the daemon cannot write (ProtectSystem=strict). Installs
# before release trees kept it in the daemon's state directory
# (/var/lib/shadowd/install-manifest): an upgrade reads it there and removes it.
#
# Running it again upgrades without changing anything installed until the new
# version is built and staged: DKMS builds the helper beside the installed one
# (its DKMS version names its sources), the new tree is staged whole, manifest
# included, beside the current one; then each piece is switched by rename(2)
# (the /usr/lib/shadowd symlink by mv -T, every other file from a copy beside
# it), so no file a running daemon has open is ever written. A running
# shadowd is restarted onto the new tree, and only then are the previous
# release tree and module removed. If a step fails, what was switched is
# switched back, the previous install stays as it was, and the script says so.
set -euo pipefail
umask 022

LIBDIR=/usr/lib/shadowd
RELEASES=/usr/lib/shadowd-releases
SBIN_LAUNCHER=/usr/sbin/shadowd
BIN_LAUNCHER=/usr/bin/shadowctl
UNIT_NAME=shadowd.service
UNITDIR=/usr/lib/systemd/system
CATALOGDIR=/usr/lib/systemd/catalog
CONFDIR=/etc/shadowd
MODULES_LOAD=/etc/modules-load.d/shadowd.conf
STATEDIR=/var/lib/shadowd
MANIFEST=$LIBDIR/install-manifest
LEGACY_MANIFEST=$STATEDIR/install-manifest
STATE_PARENT=${STATEDIR%/*}
STATE_GRANDPARENT=${STATE_PARENT%/*}
GROUP=shadowd
MODULE=shadow_helper

usage() {
  cat <<EOF
Usage: sudo scripts/install.sh [--dry-run] [--root DIR --files-only [--kernel-dir DIR]]

Installs shadowd (daemon, shadowctl, systemd unit, journal catalog,
configuration example, the shadow_helper module through DKMS) from this
checkout, which must be built first (npm ci && npm run build). Safe to run
again: it upgrades, switching to the new version only once it is built and
staged, and keeps the previous one if a step fails. scripts/uninstall.sh
removes it again.

Options:
  --dry-run         check everything and print the steps, change nothing
  --root DIR        install the files under DIR instead of / (for packaging and
                    tests); needs --files-only
  --files-only      install and record the files only: no group, no DKMS build,
                    no modprobe, no systemctl, no journalctl --update-catalog
  --kernel-dir DIR  with --files-only: build the helper module against this
                    kernel build tree first, as DKMS will on the target;
                    nothing is installed if it does not build
  -h, --help        this help
EOF
}

ROOT=/
FILES_ONLY=0
DRY_RUN=0
KDIR=
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }; ROOT=$2; shift 2 ;;
    --root=*) ROOT=${1#--root=}; shift ;;
    --kernel-dir) [ $# -ge 2 ] || { echo "install.sh: --kernel-dir needs a directory" >&2; exit 2; }; KDIR=$2; shift 2 ;;
    --kernel-dir=*) KDIR=${1#--kernel-dir=}; shift ;;
    --files-only) FILES_ONLY=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

SRC=$(cd "$(dirname "$0")/.." && pwd)
STEP=0
STEPS=8
step() { STEP=$((STEP + 1)); echo "==> [$STEP/$STEPS] $*"; }
note() { echo "    $*"; }
warn() { echo "install.sh: warning: $*" >&2; }
die() { echo "install.sh: error: $*" >&2; exit 1; }
# Runs a command, showing it first; under --dry-run only shows it.
run() {
  echo "    \$ $*"
  [ "$DRY_RUN" -eq 1 ] || "$@"
}

# What has been done so far, for undoing it when a step fails (finish below).
COMMITTED=0
STAGE=
TREE=
REL=
REL_MADE=0
DKMS_SRC_MADE=0
DKMS_ADDED=0
DKMS_INSTALLED=0
LINK_SWITCHED=0
OLD_LINK=
LEGACY_MOVED=
RESTARTED=0
WAS_ACTIVE=0
OLD_DKMS=
replaced=()
created=()
made_dirs=()
# Puts back what this run switched, newest first, after a failure before the
# new version was committed (COMMITTED=1: installed, unit registered, the
# service restarted onto it).
roll_back() {
  local f d name failed=0
  if [ "$LINK_SWITCHED" -eq 1 ]; then
    if [ -n "$LEGACY_MOVED" ]; then
      rm -f "$R$LIBDIR" && mv -T "$R$LEGACY_MOVED" "$R$LIBDIR" || failed=1
    elif [ -n "$OLD_LINK" ]; then
      ln -sfn "$OLD_LINK" "$R$LIBDIR.shadowd-back" && mv -T "$R$LIBDIR.shadowd-back" "$R$LIBDIR" || failed=1
    else
      rm -f "$R$LIBDIR" || failed=1
    fi
  elif [ -n "$LEGACY_MOVED" ] && [ ! -e "$R$LIBDIR" ]; then
    mv -T "$R$LEGACY_MOVED" "$R$LIBDIR" || failed=1
  fi
  for f in "${replaced[@]}"; do
    name=$(basename "$f")
    mv -f "$R$(dirname "$f")/.shadowd-old.$name" "$R$f" || failed=1
  done
  for f in "${created[@]}"; do rm -f "$R$f" || failed=1; done
  if [ "$DKMS_INSTALLED" -eq 1 ] && [ -n "$OLD_DKMS" ]; then
    dkms install -m "$MODULE" -v "$OLD_DKMS" --force >/dev/null || failed=1
  fi
  if [ "$DKMS_ADDED" -eq 1 ]; then dkms remove -m "$MODULE" -v "$DKMS_VERSION" --all >/dev/null || failed=1; fi
  if [ "$DKMS_SRC_MADE" -eq 1 ]; then rm -rf "${R}${DKMS_SRC:?}"; fi
  if [ -n "$TREE" ] && [ -d "$TREE" ]; then rm -rf "$TREE"; fi
  if [ "$REL_MADE" -eq 1 ]; then rm -rf "${R}${REL:?}"; fi
  if [ ${#made_dirs[@]} -gt 0 ]; then
    while IFS= read -r d; do rmdir "$R$d" 2>/dev/null || true; done < <(printf '%s\n' "${made_dirs[@]}" | LC_ALL=C sort -r)
  fi
  if [ "$RESTARTED" -eq 1 ]; then
    systemctl daemon-reload || failed=1
    if [ "$WAS_ACTIVE" -eq 1 ]; then systemctl restart "$UNIT_NAME" || failed=1; fi
  fi
  return "$failed"
}
finish() {
  local rc=$?
  trap - ERR
  set +e
  if [ "$rc" -ne 0 ] && [ "$DRY_RUN" -eq 0 ] && [ "$COMMITTED" -eq 0 ] && [ "$STEP" -ge 2 ]; then
    if roll_back; then
      if [ -n "$OLD_VERSION" ]; then
        echo "install.sh: nothing was changed: the previous install (shadowd $OLD_VERSION) is in place and works as before" >&2
      else
        echo "install.sh: nothing was installed" >&2
      fi
    else
      echo "install.sh: undoing the failed install did not fully succeed (see the messages above): check ${R:-/}$LIBDIR and \`dkms status\`" >&2
    fi
  fi
  if [ -n "$STAGE" ]; then rm -rf "$STAGE"; fi
  exit "$rc"
}
OLD_VERSION=
trap finish EXIT
trap 'echo "install.sh: error: step $STEP failed at: $BASH_COMMAND" >&2' ERR

case "$ROOT" in /*) ;; *) die "--root must be an absolute path, not $ROOT" ;; esac
[ -d "$ROOT" ] || die "--root $ROOT is not a directory"
ROOT=$(cd "$ROOT" && pwd)
[ "$ROOT" = / ] && R= || R=$ROOT
if [ -n "$R" ] && [ "$FILES_ONLY" -eq 0 ]; then
  die "--root installs files only (DKMS, systemctl and groupadd act on the running system): add --files-only"
fi

# ---------------------------------------------------------------------------
step "checking this checkout and the system"
[ -f "$SRC/package.json" ] && [ -f "$SRC/kmod/dkms.conf" ] || die "$SRC is not a shadowd checkout"
VERSION=$(sed -n 's/^PACKAGE_VERSION="\(.*\)"$/\1/p' "$SRC/kmod/dkms.conf")
[ -n "$VERSION" ] || die "no PACKAGE_VERSION in $SRC/kmod/dkms.conf"
[ "$(sed -n 's/^PACKAGE_NAME="\(.*\)"$/\1/p' "$SRC/kmod/dkms.conf")" = "$MODULE" ] || die "kmod/dkms.conf does not name $MODULE"
case "$VERSION" in *[!A-Za-z0-9.~+-]*) die "PACKAGE_VERSION $VERSION in kmod/dkms.conf has unexpected characters" ;; esac
if [ -n "$KDIR" ]; then
  [ "$FILES_ONLY" -eq 1 ] || die "--kernel-dir is for --files-only (DKMS builds against the running kernel's headers)"
  [ -f "$KDIR/Makefile" ] || die "--kernel-dir $KDIR is not a kernel build tree (no Makefile)"
fi

problems=()
packages=()
need_tool() { # command, Debian package
  command -v "$1" >/dev/null 2>&1 || { problems+=("$1 is missing"); packages+=("$2"); }
}
need_tool node nodejs
if [ -n "$KDIR" ]; then need_tool make make; fi
if [ ! -f "$SRC/dist/daemon/main.js" ] || [ ! -f "$SRC/dist/cli/shadowctl.js" ]; then
  problems+=("this checkout is not built: run \`npm ci && npm run build\` in $SRC first")
else
  while IFS= read -r -d '' ts; do
    js="$SRC/dist/${ts#"$SRC"/}"
    js=${js%.ts}.js
    if [ ! -f "$js" ] || [ "$ts" -nt "$js" ]; then
      problems+=("dist/ is older than ${ts#"$SRC"/}: run \`npm run build\` in $SRC first")
      break
    fi
  done < <(find "$SRC/daemon" "$SRC/cli" -name '*.ts' -print0)
fi
[ -d "$SRC/node_modules" ] || problems+=("$SRC/node_modules is missing: run \`npm ci\` in $SRC first")
EXEC_START=$(sed -n 's/^ExecStart=//p' "$SRC/systemd/$UNIT_NAME")
case "$EXEC_START" in
  "/usr/bin/node "*" $LIBDIR/dist/daemon/main.js") ;;
  *) die "systemd/$UNIT_NAME: ExecStart= does not run /usr/bin/node ... $LIBDIR/dist/daemon/main.js" ;;
esac
if [ -z "$R" ]; then
  # What the installed service runs on this machine.
  if [ -x /usr/bin/node ]; then
    # package.json's engines.node is ">=MAJOR.MINOR".
    if ! why=$(/usr/bin/node -e '
      const want = require(process.argv[1]).engines.node.replace(/^>=/, "");
      const [a, b] = [process.versions.node, want].map((v) => v.split(".").map(Number));
      if (!(a[0] > b[0] || (a[0] === b[0] && (a[1] ?? 0) >= (b[1] ?? 0)))) {
        console.log(`/usr/bin/node is ${process.versions.node}; shadowd needs ${want} or newer`);
        process.exit(1);
      }' "$SRC/package.json" 2>&1); then
      problems+=("$why")
    fi
  else
    problems+=("/usr/bin/node is missing (the unit runs it)"); packages+=(nodejs)
  fi
  need_tool bpftrace bpftrace
  need_tool ip iproute2
  need_tool ethtool ethtool
  need_tool taskset util-linux
  need_tool modprobe kmod
  # Not grep -q: it stops reading at the first match, ldconfig then dies of
  # SIGPIPE and, under pipefail, the library would read as missing.
  ldconfig -p 2>/dev/null | grep 'libsystemd\.so\.0 ' >/dev/null || { problems+=("libsystemd.so.0 is missing"); packages+=(libsystemd0); }
  if [ "$FILES_ONLY" -eq 0 ]; then
    [ "$DRY_RUN" -eq 1 ] || [ "$(id -u)" -eq 0 ] || die "run it as root: sudo $0"
    need_tool dkms dkms
    need_tool make make
    need_tool gcc gcc
    need_tool systemctl systemd
    need_tool journalctl systemd
    need_tool groupadd passwd
    kver=$(uname -r)
    if [ ! -e "/lib/modules/$kver/build/Makefile" ]; then
      problems+=("the headers of the running kernel $kver are missing (DKMS builds the helper module against them)")
      packages+=("linux-headers-$kver")
    fi
  fi
fi
if [ ${#problems[@]} -gt 0 ]; then
  for p in "${problems[@]}"; do echo "install.sh: $p" >&2; done
  if [ ${#packages[@]} -gt 0 ]; then
    echo "install.sh: install what is missing with: sudo apt install $(printf '%s\n' "${packages[@]}" | sort -u | tr '\n' ' ')" >&2
  fi
  exit 1
fi
# The helper's sources, and the DKMS version that names them: a new build goes
# beside the installed one, and the same sources are not built again.
mapfile -t KMOD_FILES < <(find "$SRC/kmod" -maxdepth 1 -type f \( -name '*.c' -o -name '*.h' -o -name '*.mk' -o -name Makefile -o -name dkms.conf \) ! -name '*.mod.c' | LC_ALL=C sort)
KMOD_HASH=$(for f in "${KMOD_FILES[@]}"; do printf '%s\n' "${f##*/}"; cat "$f"; done | sha256sum | cut -c1-8)
DKMS_VERSION=$VERSION-$KMOD_HASH
DKMS_SRC=/usr/src/$MODULE-$DKMS_VERSION
note "shadowd $VERSION from $SRC into ${R:-/}$([ "$FILES_ONLY" -eq 1 ] && echo ' (files only)')$([ "$DRY_RUN" -eq 1 ] && echo ' (dry run)')"

# The previous install's manifest: its directories, group and enablement stay
# recorded; its files that this version lacks (the previous release tree among
# them) are removed once this version runs.
OLD_MANIFEST=
# The file itself: the symlink will point elsewhere when it is removed.
OLD_MANIFEST_FILE=
if [ -f "$R$MANIFEST" ]; then OLD_MANIFEST=$MANIFEST; OLD_MANIFEST_FILE=$(readlink -f "$R$MANIFEST")
elif [ -f "$R$LEGACY_MANIFEST" ]; then OLD_MANIFEST=$LEGACY_MANIFEST
fi
old_files=()
old_records=()
old_dkms=()
if [ -n "$OLD_MANIFEST" ]; then
  while IFS= read -r line; do
    case "$line" in
      'file '*|'dir '*)
        p=${line#* }
        case "$p/" in /?*/) ;; *) die "$OLD_MANIFEST: path \"$p\" is not absolute" ;; esac
        case "$p/" in */../*|*/./*|*//*) die "$OLD_MANIFEST: path \"$p\" is not normalized" ;; esac ;;
    esac
    case "$line" in
      'file '*) old_files+=("${line#file }") ;;
      "dkms $MODULE "*) old_dkms+=("${line#"dkms $MODULE "}") ;;
      'dir '*|'group '*|'enabled '*) old_records+=("$line") ;;
      'version '*) OLD_VERSION=${line#version } ;;
    esac
  done < "$R$OLD_MANIFEST"
  note "upgrading the install recorded in $OLD_MANIFEST${OLD_VERSION:+ (shadowd $OLD_VERSION)}"
fi
declare -A old_record_set=()
for r in "${old_records[@]}"; do old_record_set[$r]=1; done
has_record() { [ -n "${old_record_set[$1]+x}" ]; }
records=()

# ---------------------------------------------------------------------------
step "staging the files"
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/shadowd-install.XXXXXX")
S=$STAGE
ID=$VERSION-$(date -u +%Y%m%dT%H%M%SZ)-$$
REL=$RELEASES/$ID
if [ "$DRY_RUN" -eq 1 ]; then
  TREE=$S/tree
else
  # The new tree is staged beside the others, under a name nothing points to,
  # and renamed to its release name once complete.
  d=
  while IFS= read -r part; do
    d=$d/$part
    if [ ! -d "$R$d" ]; then mkdir "$R$d"; made_dirs+=("$d"); fi
  done < <(printf '%s\n' "${RELEASES#/}" | tr / '\n')
  TREE=$R$RELEASES/.staging-$ID
  [ ! -e "$R$REL" ] && [ ! -e "$TREE" ] || die "$REL exists already"
fi
mkdir -p "$TREE/dist" "$TREE/bin" "$S/usr/sbin" "$S/usr/bin" "$S$UNITDIR" "$S$CATALOGDIR" "$S$CONFDIR" \
  "$S$(dirname "$MODULES_LOAD")" "$S$DKMS_SRC" "$S$RELEASES"
cp -R "$SRC/dist/daemon" "$SRC/dist/cli" "$TREE/dist/"
cp -R "$SRC/bpf" "$SRC/docs" "$TREE/"
cp "$SRC/package.json" "$SRC/README.md" "$TREE/"
cp "$SRC/scripts/uninstall.sh" "$TREE/uninstall.sh"
# The production dependencies as installed in this checkout (npm ci): the
# lockfile's packages not marked dev (what `npm ls --omit=dev` lists, read
# without starting npm, which takes most of a minute under emulation).
# Optional ones for other platforms are not installed and not needed.
deps=$(cd "$SRC" && node -e '
  const fs = require("fs");
  const lock = JSON.parse(fs.readFileSync("package-lock.json", "utf8"));
  if (lock.lockfileVersion < 2) throw new Error("package-lock.json is older than lockfile version 2");
  for (const [dir, p] of Object.entries(lock.packages)) {
    if (!dir.startsWith("node_modules/") || p.dev) continue;
    if (fs.existsSync(dir)) console.log(dir);
    else if (!p.optional) { console.error(`${dir} is missing`); process.exit(1); }
  }') || die "$SRC/node_modules does not match package-lock.json: run \`npm ci\` in $SRC"
mapfile -t dep_dirs < <(printf '%s\n' "$deps" | grep .)
[ ${#dep_dirs[@]} -gt 0 ] || die "package-lock.json lists no production dependencies"
tar -C "$SRC" -cf - "${dep_dirs[@]}" | tar -C "$TREE" -xf - --no-same-owner
find "$TREE/node_modules" \( -path '*/build/Release/obj' -o -path '*/build/Release/obj.target' -o -path '*/build/Release/.deps' \) -prune -exec rm -rf {} +
find "$TREE/node_modules" -path '*/build/*' -name '*.a' -delete
rmdir "$TREE/bin"
printf '#!/bin/sh\n# shadowd as its unit runs it (installed by shadowd'"'"'s install.sh).\nexec %s "$@"\n' "$EXEC_START" > "$S$SBIN_LAUNCHER"
printf '#!/bin/sh\n# shadowctl (installed by shadowd'"'"'s install.sh).\nexec /usr/bin/node %s/dist/cli/shadowctl.js "$@"\n' "$LIBDIR" > "$S$BIN_LAUNCHER"
chmod 755 "$S$SBIN_LAUNCHER" "$S$BIN_LAUNCHER" "$TREE/uninstall.sh"
cp "$SRC/systemd/$UNIT_NAME" "$S$UNITDIR/"
cp "$SRC/systemd/shadowd.catalog" "$S$CATALOGDIR/"
cp "$SRC/systemd/shadowd.conf.example" "$S$CONFDIR/shadowd.conf.example"
# The helper and every class's tap modules, as the staged daemon names them.
boot_modules=$(node "$TREE/dist/daemon/main.js" --boot-modules) || die "the staged daemon cannot list the modules it needs (shadowd --boot-modules)"
mapfile -t BOOT_MODULES < <(printf '%s\n' "$boot_modules" | grep .)
[ "${BOOT_MODULES[0]:-}" = "$MODULE" ] || die "shadowd --boot-modules does not start with $MODULE: ${BOOT_MODULES[*]}"
{
  echo "# Kernel modules shadowd needs, loaded at boot (installed by shadowd's install.sh,"
  echo "# from \`shadowd --boot-modules\`): its helper, and the class layers its taps"
  echo "# probe. The service may not load modules itself (no CAP_SYS_MODULE), and"
  echo "# the unit allows /dev/shadow_helper only if it exists when the service starts."
  echo "# Fault injection stays off (allow_faults=0): it is for tests only and needs"
  echo "# the module loaded by hand with \`modprobe shadow_helper allow_faults=1\`."
  printf '%s\n' "${BOOT_MODULES[@]}"
} > "$S$MODULES_LOAD"
cp "${KMOD_FILES[@]}" "$S$DKMS_SRC/"
sed -i "s/^PACKAGE_VERSION=.*/PACKAGE_VERSION=\"$DKMS_VERSION\"/" "$S$DKMS_SRC/dkms.conf"
chmod -R u+rwX,go+rX,go-w "$S" "$TREE"
if find "$S" "$TREE" -name '*
*' | grep . >/dev/null; then die "a staged file name contains a newline"; fi
# Every path of the new install: the release tree's, the others, the symlink.
mapfile -t tree_files < <(cd "$TREE" && find . ! -type d | sed "s|^\.|$REL|" | LC_ALL=C sort)
mapfile -t tree_dirs < <(cd "$TREE" && find . -type d | sed "s|^\.|$REL|" | LC_ALL=C sort)
mapfile -t other_files < <(cd "$S" && find . ! -type d ! -path './tree/*' | sed 's|^\.||' | LC_ALL=C sort)
mapfile -t other_dirs < <(cd "$S" && find . -mindepth 1 -type d ! -path './tree' ! -path './tree/*' ! -path './kbuild*' | sed 's|^\.||' | LC_ALL=C sort)
mapfile -t new_files < <(printf '%s\n' "${tree_files[@]}" "${other_files[@]}" "$LIBDIR" | LC_ALL=C sort)
mapfile -t new_dirs < <(printf '%s\n' "${other_dirs[@]}" "${tree_dirs[@]}" | LC_ALL=C sort -u)
note "${#new_files[@]} files, $(du -sh "$TREE" | cut -f1) in the release tree $REL"

# ---------------------------------------------------------------------------
step "building $MODULE before anything installed changes"
DKMS_NEEDED=0
if [ "$FILES_ONLY" -eq 1 ]; then
  if [ -n "$KDIR" ]; then
    # What DKMS runs on the target (kmod/dkms.conf's MAKE), in a scratch copy.
    mkdir -p "$S/kbuild"
    cp "$S$DKMS_SRC"/* "$S/kbuild/"
    note "\$ make -C $KDIR M=$S/kbuild modules"
    [ "$DRY_RUN" -eq 1 ] || make -C "$KDIR" M="$S/kbuild" modules > "$S/kbuild.log" 2>&1 || {
      tail -n 25 "$S/kbuild.log" | sed 's/^/    | /' >&2
      die "$MODULE does not build against $KDIR"
    }
    note "$MODULE builds against $KDIR"
  else
    note "skipped (--files-only without --kernel-dir)"
  fi
else
  if [ -n "$(dkms status -m "$MODULE" -v "$DKMS_VERSION" -k "$(uname -r)" 2>/dev/null | grep ': installed')" ]; then
    note "$MODULE $DKMS_VERSION (these sources) is built and installed already"
  else
    DKMS_NEEDED=1
    if [ -n "$(dkms status -m "$MODULE" -v "$DKMS_VERSION" 2>/dev/null)" ]; then
      # Left by an install that stopped half-way: built again from scratch.
      run dkms remove -m "$MODULE" -v "$DKMS_VERSION" --all
    fi
    # The sources go to their own directory (/usr/src/$MODULE-$DKMS_VERSION),
    # beside the installed version's, which DKMS keeps until this one is in place.
    if [ ! -d "$DKMS_SRC" ]; then
      if [ "$DRY_RUN" -eq 0 ]; then
        cp -R "$S$DKMS_SRC" "$(dirname "$DKMS_SRC")/.shadowd-new.$(basename "$DKMS_SRC")"
        mv -T "$(dirname "$DKMS_SRC")/.shadowd-new.$(basename "$DKMS_SRC")" "$DKMS_SRC"
        DKMS_SRC_MADE=1
        made_dirs+=("$DKMS_SRC")
      fi
    fi
    run dkms add -m "$MODULE" -v "$DKMS_VERSION"
    DKMS_ADDED=1
    if ! run dkms build -m "$MODULE" -v "$DKMS_VERSION"; then
      tail -n 25 "/var/lib/dkms/$MODULE/$DKMS_VERSION/build/make.log" 2>/dev/null | sed 's/^/    | /' >&2
      die "DKMS could not build $MODULE $DKMS_VERSION (the end of its make.log is above)"
    fi
  fi
fi

# ---------------------------------------------------------------------------
step "creating the $GROUP group (read-only shadowctl access)"
if [ "$FILES_ONLY" -eq 1 ]; then
  note "skipped (--files-only)"
elif getent group "$GROUP" >/dev/null; then
  note "$GROUP exists"
  has_record "group $GROUP" && records+=("group $GROUP")
else
  run groupadd --system "$GROUP"
  records+=("group $GROUP")
fi

# ---------------------------------------------------------------------------
step "switching to the new version"
declare -A made_set=()
for m in "${made_dirs[@]}"; do made_set[$m]=1; done
made_here() { [ -n "${made_set[$1]+x}" ]; }
declare -A is_new_dir=()
for d in "${new_dirs[@]}"; do
  is_new_dir[$d]=1
  if has_record "dir $d" || [ ! -d "$R$d" ] || made_here "$d"; then records+=("dir $d"); fi
done
# The state directory is the daemon's (StateDirectory=): an install that
# created it (and its parents) keeps it recorded, for uninstall.sh to remove
# when it is empty; installs no longer create it.
for r in "${old_records[@]}"; do
  case "$r" in "dir $STATEDIR"|"dir $STATE_PARENT"|"dir $STATE_GRANDPARENT") records+=("$r") ;; esac
done
if [ "$FILES_ONLY" -eq 0 ]; then
  records+=("dkms $MODULE $DKMS_VERSION")
  if has_record "enabled $UNIT_NAME" || [ "$(systemctl is-enabled "$UNIT_NAME" 2>/dev/null || true)" != enabled ]; then
    records+=("enabled $UNIT_NAME")
  fi
fi
if [ -f "$R$CONFDIR/shadowd.conf" ]; then
  note "keeping the existing $CONFDIR/shadowd.conf"
else
  note "no $CONFDIR/shadowd.conf: shadowd runs with the defaults shown in $CONFDIR/shadowd.conf.example"
fi
write_manifest() { # file
  {
    echo "# shadowd install manifest: written by scripts/install.sh, read by uninstall.sh."
    echo "# One record a line: file PATH, dir PATH (created by the install), group NAME,"
    echo "# dkms MODULE VERSION, enabled UNIT (enabled by the install). Paths are relative"
    echo "# to the install root; \"mode files-only\": installed with --files-only."
    echo "version $VERSION"
    echo "source $SRC"
    echo "release $ID"
    if [ "$FILES_ONLY" -eq 1 ]; then echo "mode files-only"; fi
    if [ ${#records[@]} -gt 0 ]; then printf '%s\n' "${records[@]}"; fi
    printf 'file %s\n' "${new_files[@]}"
  } > "$1.tmp"
  chmod 644 "$1.tmp"
  mv -f "$1.tmp" "$1"
}
# Puts one file outside the release tree in place by rename(2), from a copy
# beside it; the file it replaces is kept (hard-linked) until the new version
# is committed, to be put back if a later step fails. An identical file is
# left as it is.
put_file() { # path
  local f=$1 dir name
  dir=$(dirname "$f"); name=$(basename "$f")
  if [ -f "$R$f" ] && [ ! -L "$R$f" ]; then
    if cmp -s "$S$f" "$R$f" && [ "$(stat -c %a "$S$f")" = "$(stat -c %a "$R$f")" ]; then return 0; fi
    ln -f "$R$f" "$R$dir/.shadowd-old.$name"
    replaced+=("$f")
  else
    [ ! -e "$R$f" ] && [ ! -L "$R$f" ] || die "$f is in the way (not a regular file)"
    created+=("$f")
  fi
  cp "$S$f" "$R$dir/.shadowd-new.$name"
  mv -f "$R$dir/.shadowd-new.$name" "$R$f"
}
if [ "$DRY_RUN" -eq 0 ]; then
  # 1. The release tree, whole, with its manifest, under its release name.
  write_manifest "$TREE/install-manifest"
  mv -T "$TREE" "$R$REL"
  TREE=
  REL_MADE=1
  # 2. The files outside it (launchers, unit, catalog, modules-load.d, the
  #    example configuration, the module's sources), each by rename.
  for d in "${other_dirs[@]}"; do
    if [ ! -d "$R$d" ]; then mkdir "$R$d"; made_dirs+=("$d"); fi
  done
  for f in "${other_files[@]}"; do
    case "$f" in "$DKMS_SRC"/*) [ "$FILES_ONLY" -eq 0 ] && continue ;; esac
    put_file "$f"
  done
fi
# 3. The new module, in place of the old one (which DKMS keeps built until the end).
if [ "$DKMS_NEEDED" -eq 1 ]; then
  for v in "${old_dkms[@]}"; do
    if [ "$v" != "$DKMS_VERSION" ] && [ -n "$(dkms status -m "$MODULE" -v "$v" -k "$(uname -r)" 2>/dev/null | grep ': installed')" ]; then OLD_DKMS=$v; fi
  done
  DKMS_INSTALLED=1
  # --force: the installed module of the old version is replaced, whatever its version says.
  run dkms install -m "$MODULE" -v "$DKMS_VERSION" --force
fi
# 4. /usr/lib/shadowd, by one rename of a new symlink over the old one.
if [ -L "$R$LIBDIR" ]; then
  OLD_LINK=$(readlink "$R$LIBDIR")
elif [ -d "$R$LIBDIR" ]; then
  # A tree installed before release trees: moved aside whole, then replaced
  # by the symlink (two renames), and removed with the previous version.
  LEGACY_MOVED=$RELEASES/previous-layout-$ID
  note "moving the directory $LIBDIR of the previous install to $LEGACY_MOVED"
  [ "$DRY_RUN" -eq 1 ] || mv -T "$R$LIBDIR" "$R$LEGACY_MOVED"
elif [ -e "$R$LIBDIR" ]; then
  die "$LIBDIR is in the way (neither a directory nor a symlink)"
fi
note "$LIBDIR -> ${REL#"$(dirname "$LIBDIR")/"}"
if [ "$DRY_RUN" -eq 0 ]; then
  ln -sfn "${REL#"$(dirname "$LIBDIR")/"}" "$R$LIBDIR.shadowd-new"
  mv -T "$R$LIBDIR.shadowd-new" "$R$LIBDIR"
  LINK_SWITCHED=1
fi
note "$REL, $LIBDIR, $SBIN_LAUNCHER, $BIN_LAUNCHER, $UNITDIR/$UNIT_NAME, $CATALOGDIR/shadowd.catalog, $CONFDIR/shadowd.conf.example, $MODULES_LOAD, $DKMS_SRC"

# ---------------------------------------------------------------------------
step "loading $MODULE and the tap modules"
if [ "$FILES_ONLY" -eq 1 ]; then
  note "skipped (--files-only)"
else
  missing=()
  for m in "${BOOT_MODULES[@]}"; do [ -d "/sys/module/${m//-/_}" ] || missing+=("$m"); done
  if [ ${#missing[@]} -gt 0 ]; then run modprobe -a "${missing[@]}"; fi
  note "$MODULE and ${BOOT_MODULES[*]:1} load at boot from $MODULES_LOAD"
  if [ "$DKMS_NEEDED" -eq 1 ] && [ -n "$OLD_DKMS" ]; then
    note "the old $MODULE stays loaded: the new build loads at the next boot, or now with"
    note "  systemctl stop shadowd && modprobe -r $MODULE && modprobe $MODULE && systemctl start shadowd"
  fi
fi

# ---------------------------------------------------------------------------
step "registering the unit and the journal catalog"
if [ "$FILES_ONLY" -eq 1 ]; then
  note "skipped (--files-only)"
else
  if [ -d /run/systemd/system ]; then
    systemctl is-active --quiet "$UNIT_NAME" && WAS_ACTIVE=1
    RESTARTED=1
    run systemctl daemon-reload
  else
    note "systemd is not running here: no daemon-reload"
  fi
  if ! has_record "enabled $UNIT_NAME" && [ "$(systemctl is-enabled "$UNIT_NAME" 2>/dev/null || true)" != enabled ]; then
    run systemctl enable "$UNIT_NAME"
  fi
  run journalctl --update-catalog
  if [ "$WAS_ACTIVE" -eq 1 ]; then
    run systemctl restart "$UNIT_NAME" || die "shadowd $VERSION did not start (systemctl status shadowd, journalctl -u shadowd say why)"
  fi
fi
[ "$DRY_RUN" -eq 1 ] || COMMITTED=1

# ---------------------------------------------------------------------------
step "removing the previous version"
# Its files this version lacks: the previous release tree, and whatever else
# the new one no longer installs. Paths of a tree installed before release
# trees name the directory moved aside; nothing is removed through the symlink.
stale_files=()
declare -A is_new=()
for f in "${new_files[@]}"; do is_new[$f]=1; done
for f in "${old_files[@]}"; do
  if [ -n "$LEGACY_MOVED" ]; then
    case "$f" in "$LIBDIR"/*) f=$LEGACY_MOVED/${f#"$LIBDIR"/} ;; esac
  fi
  case "$f" in "$LIBDIR"/*) continue ;; esac
  if [ -z "${is_new[$f]+x}" ]; then stale_files+=("$R$f"); fi
done
stale=${#stale_files[@]}
if [ "$DRY_RUN" -eq 0 ] && [ "$stale" -gt 0 ]; then
  printf '%s\0' "${stale_files[@]}" | xargs -0 rm -f -- || warn "could not remove every file of the previous install"
fi
# The previous manifest, in the previous release tree (or the state directory).
if [ "$DRY_RUN" -eq 0 ]; then
  if [ -n "$OLD_MANIFEST_FILE" ]; then rm -f "$OLD_MANIFEST_FILE"; fi
  if [ "$OLD_MANIFEST" = "$LEGACY_MANIFEST" ]; then rm -f "$R$LEGACY_MANIFEST"; fi
fi
# Directories the previous install created that this one does not use,
# deepest first, if nothing else lives in them.
old_dir_list=()
for r in "${old_records[@]}"; do
  case "$r" in
    "dir $STATEDIR"|"dir $STATE_PARENT"|"dir $STATE_GRANDPARENT") ;;
    "dir $LIBDIR") [ -n "$LEGACY_MOVED" ] && old_dir_list+=("$LEGACY_MOVED") ;;
    "dir $LIBDIR"/*) [ -n "$LEGACY_MOVED" ] && old_dir_list+=("$LEGACY_MOVED/${r#"dir $LIBDIR/"}") ;;
    'dir '*) old_dir_list+=("${r#dir }") ;;
  esac
done
kept_dirs=0
if [ ${#old_dir_list[@]} -gt 0 ]; then
  while IFS= read -r d; do
    [ -n "${is_new_dir[$d]+x}" ] && continue
    if [ "$DRY_RUN" -eq 0 ] && [ -d "$R$d" ] && ! rmdir "$R$d" 2>/dev/null; then
      note "keeping $d: it holds files the install did not put there"
      records+=("dir $d")
      kept_dirs=1
    fi
  done < <(printf '%s\n' "${old_dir_list[@]}" | LC_ALL=C sort -u -r)
fi
note "$stale file(s) of the previous install removed"
if [ "$FILES_ONLY" -eq 0 ]; then
  for v in "${old_dkms[@]}"; do
    if [ "$v" != "$DKMS_VERSION" ] && [ -n "$(dkms status -m "$MODULE" -v "$v" 2>/dev/null)" ]; then
      run dkms remove -m "$MODULE" -v "$v" --all || warn "could not remove $MODULE $v from DKMS"
    fi
  done
fi
if [ "$DRY_RUN" -eq 0 ]; then
  for f in "${replaced[@]}"; do rm -f "$R$(dirname "$f")/.shadowd-old.$(basename "$f")"; done
  # Directories kept above stay recorded, for uninstall.sh.
  if [ "$kept_dirs" -eq 1 ]; then write_manifest "$R$REL/install-manifest"; fi
fi
note "manifest: $MANIFEST ($(( ${#new_files[@]} )) files and ${#records[@]} other records)"

echo
if [ "$DRY_RUN" -eq 1 ]; then
  echo "Dry run: nothing was changed."
elif [ "$FILES_ONLY" -eq 1 ]; then
  echo "shadowd $VERSION files installed under ${R:-/}."
else
  echo "shadowd $VERSION is installed. Next:"
  if [ "$WAS_ACTIVE" -eq 1 ]; then
    echo "  (shadowd was running: it runs $VERSION now)"
  else
    echo "  sudo systemctl start shadowd        # it starts at boot from now on"
  fi
  echo "  shadowctl status                    # as root or as a member of the $GROUP group"
  echo "  sudo cp $CONFDIR/shadowd.conf.example $CONFDIR/shadowd.conf   # to change the defaults"
  echo "Uninstall with: sudo $LIBDIR/uninstall.sh   (add --purge to remove the configuration and state too)"
fi
