#!/usr/bin/env bash
# Installs shadowd on a Debian or Ubuntu machine from a built checkout:
#
#   npm ci && npm run build && sudo scripts/install.sh
#
# What goes where (every file is listed in the manifest, which
# scripts/uninstall.sh reads to remove exactly these again):
#   /usr/lib/shadowd/                 the daemon and CLI (dist/daemon, dist/cli),
#                                     the production node_modules, package.json,
#                                     bpf/, README.md, docs/, uninstall.sh
#   /usr/sbin/shadowd, /usr/bin/shadowctl   launchers
#   /usr/lib/systemd/system/shadowd.service the unit (enabled, not started)
#   /usr/lib/systemd/catalog/shadowd.catalog  + journalctl --update-catalog
#   /etc/shadowd/shadowd.conf.example        (an existing shadowd.conf is never touched)
#   /usr/src/shadow_helper-VERSION/   the helper module's sources, built and
#                                     installed for the running kernel by DKMS
#                                     (and for every kernel installed later)
#   /etc/modules-load.d/shadowd.conf  loads shadow_helper at boot, with fault
#                                     injection off (allow_faults=0, its default)
#   the `shadowd` system group        members may run read-only shadowctl commands
#   /var/lib/shadowd/install-manifest what was installed
#
# Running it again upgrades in place: files are replaced, files of the old
# version that the new one lacks are removed, the module is rebuilt, and a
# running shadowd is restarted.
set -euo pipefail
umask 022

LIBDIR=/usr/lib/shadowd
SBIN_LAUNCHER=/usr/sbin/shadowd
BIN_LAUNCHER=/usr/bin/shadowctl
UNIT_NAME=shadowd.service
UNITDIR=/usr/lib/systemd/system
CATALOGDIR=/usr/lib/systemd/catalog
CONFDIR=/etc/shadowd
MODULES_LOAD=/etc/modules-load.d/shadowd.conf
STATEDIR=/var/lib/shadowd
MANIFEST=$STATEDIR/install-manifest
GROUP=shadowd
MODULE=shadow_helper

usage() {
  cat <<EOF
Usage: sudo scripts/install.sh [--dry-run] [--root DIR --files-only]

Installs shadowd (daemon, shadowctl, systemd unit, journal catalog,
configuration example, the shadow_helper module through DKMS) from this
checkout, which must be built first (npm ci && npm run build). Safe to run
again: it upgrades in place. scripts/uninstall.sh removes it again.

Options:
  --dry-run      check everything and print the steps, change nothing
  --root DIR     install the files under DIR instead of / (for packaging and
                 tests); needs --files-only
  --files-only   install and record the files only: no group, no DKMS build,
                 no modprobe, no systemctl, no journalctl --update-catalog
  -h, --help     this help
EOF
}

ROOT=/
FILES_ONLY=0
DRY_RUN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || { echo "install.sh: --root needs a directory" >&2; exit 2; }; ROOT=$2; shift 2 ;;
    --root=*) ROOT=${1#--root=}; shift ;;
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
die() { echo "install.sh: error: $*" >&2; exit 1; }
# Runs a command, showing it first; under --dry-run only shows it.
run() {
  echo "    \$ $*"
  [ "$DRY_RUN" -eq 1 ] || "$@"
}
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
DKMS_SRC=/usr/src/$MODULE-$VERSION

problems=()
packages=()
need_tool() { # command, Debian package
  command -v "$1" >/dev/null 2>&1 || { problems+=("$1 is missing"); packages+=("$2"); }
}
need_tool node nodejs
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
  ldconfig -p 2>/dev/null | grep -q 'libsystemd\.so\.0 ' || { problems+=("libsystemd.so.0 is missing"); packages+=(libsystemd0); }
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
note "shadowd $VERSION from $SRC into ${R:-/}$([ "$FILES_ONLY" -eq 1 ] && echo ' (files only)')$([ "$DRY_RUN" -eq 1 ] && echo ' (dry run)')"

# ---------------------------------------------------------------------------
step "staging the files"
STAGE=$(mktemp -d "${TMPDIR:-/tmp}/shadowd-install.XXXXXX")
trap 'rm -rf "$STAGE"' EXIT
S=$STAGE
mkdir -p "$S$LIBDIR/dist" "$S/usr/sbin" "$S/usr/bin" "$S$UNITDIR" "$S$CATALOGDIR" "$S$CONFDIR" \
  "$S$(dirname "$MODULES_LOAD")" "$S$DKMS_SRC" "$S$STATEDIR"
cp -R "$SRC/dist/daemon" "$SRC/dist/cli" "$S$LIBDIR/dist/"
cp -R "$SRC/bpf" "$SRC/docs" "$S$LIBDIR/"
cp "$SRC/package.json" "$SRC/README.md" "$S$LIBDIR/"
cp "$SRC/scripts/uninstall.sh" "$S$LIBDIR/uninstall.sh"
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
tar -C "$SRC" -cf - "${dep_dirs[@]}" | tar -C "$S$LIBDIR" -xf - --no-same-owner
find "$S$LIBDIR/node_modules" \( -path '*/build/Release/obj' -o -path '*/build/Release/obj.target' -o -path '*/build/Release/.deps' \) -prune -exec rm -rf {} +
find "$S$LIBDIR/node_modules" -path '*/build/*' -name '*.a' -delete
printf '#!/bin/sh\n# shadowd as its unit runs it (installed by shadowd'"'"'s install.sh).\nexec %s "$@"\n' "$EXEC_START" > "$S$SBIN_LAUNCHER"
printf '#!/bin/sh\n# shadowctl (installed by shadowd'"'"'s install.sh).\nexec /usr/bin/node %s/dist/cli/shadowctl.js "$@"\n' "$LIBDIR" > "$S$BIN_LAUNCHER"
chmod 755 "$S$SBIN_LAUNCHER" "$S$BIN_LAUNCHER" "$S$LIBDIR/uninstall.sh"
cp "$SRC/systemd/$UNIT_NAME" "$S$UNITDIR/"
cp "$SRC/systemd/shadowd.catalog" "$S$CATALOGDIR/"
cp "$SRC/systemd/shadowd.conf.example" "$S$CONFDIR/shadowd.conf.example"
cat > "$S$MODULES_LOAD" <<EOF
# Loads shadowd's kernel helper at boot (installed by shadowd's install.sh).
# Fault injection stays off (allow_faults=0): it is for tests only and needs
# the module loaded by hand with \`modprobe shadow_helper allow_faults=1\`.
$MODULE
EOF
cp "$SRC"/kmod/*.c "$SRC"/kmod/*.h "$SRC/kmod/Makefile" "$SRC/kmod/dkms.conf" "$S$DKMS_SRC/"
rm -f "$S$DKMS_SRC"/*.mod.c
chmod -R u+rwX,go+rX,go-w "$S"
if find "$S" -name '*
*' | grep -q .; then die "a staged file name contains a newline"; fi
mapfile -t new_files < <(cd "$S" && find . ! -type d | sed 's|^\.||' | LC_ALL=C sort)
mapfile -t new_dirs < <(cd "$S" && find . -mindepth 1 -type d | sed 's|^\.||' | LC_ALL=C sort)
note "${#new_files[@]} files, $(du -sh "$S" | cut -f1)"

# The previous install's manifest: its directories, group, DKMS module and
# enablement stay recorded; its files that this version lacks are removed.
old_files=()
old_records=()
if [ -f "$R$MANIFEST" ]; then
  while IFS= read -r line; do
    case "$line" in
      'file '*|'dir '*)
        p=${line#* }
        case "$p/" in /?*/) ;; *) die "$MANIFEST: path \"$p\" is not absolute" ;; esac
        case "$p/" in */../*|*/./*|*//*) die "$MANIFEST: path \"$p\" is not normalized" ;; esac ;;
    esac
    case "$line" in
      'file '*) old_files+=("${line#file }") ;;
      'dir '*|'group '*|'dkms '*|'enabled '*) old_records+=("$line") ;;
    esac
  done < "$R$MANIFEST"
  note "upgrading the install recorded in $MANIFEST"
fi
has_record() { local r; for r in "${old_records[@]}"; do [ "$r" = "$1" ] && return 0; done; return 1; }
records=()

# ---------------------------------------------------------------------------
step "installing the files under ${R:-/}"
declare -A is_new_dir=()
for d in "${new_dirs[@]}"; do
  is_new_dir[$d]=1
  if has_record "dir $d" || [ ! -d "$R$d" ]; then records+=("dir $d"); fi
done
if [ -f "$R$CONFDIR/shadowd.conf" ]; then
  note "keeping the existing $CONFDIR/shadowd.conf"
else
  note "no $CONFDIR/shadowd.conf: shadowd runs with the defaults shown in $CONFDIR/shadowd.conf.example"
fi
if [ "$DRY_RUN" -eq 0 ]; then
  # Plain cp -R: existing directories (/usr/bin, /etc ...) keep their owner and
  # mode; new files belong to the installing user, with the staged modes.
  cp -R "$S/." "$R/"
  chmod 0750 "$R$STATEDIR"
fi
note "$LIBDIR, $SBIN_LAUNCHER, $BIN_LAUNCHER, $UNITDIR/$UNIT_NAME, $CATALOGDIR/shadowd.catalog, $CONFDIR/shadowd.conf.example, $MODULES_LOAD, $DKMS_SRC"

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
step "building and installing $MODULE $VERSION with DKMS"
if [ "$FILES_ONLY" -eq 1 ]; then
  note "skipped (--files-only)"
else
  for r in "${old_records[@]}"; do
    case "$r" in
      "dkms $MODULE "*)
        v=${r#"dkms $MODULE "}
        if [ "$v" != "$VERSION" ] && [ -n "$(dkms status -m "$MODULE" -v "$v" 2>/dev/null)" ]; then
          run dkms remove -m "$MODULE" -v "$v" --all
        fi ;;
    esac
  done
  # A fresh build every time: the sources of one version may have changed.
  if [ -n "$(dkms status -m "$MODULE" -v "$VERSION" 2>/dev/null)" ]; then
    run dkms remove -m "$MODULE" -v "$VERSION" --all
  fi
  run dkms add -m "$MODULE" -v "$VERSION"
  records+=("dkms $MODULE $VERSION")
  run dkms build -m "$MODULE" -v "$VERSION" || die "DKMS could not build $MODULE: see /var/lib/dkms/$MODULE/$VERSION/build/make.log"
  run dkms install -m "$MODULE" -v "$VERSION"
  if [ -d /sys/module/$MODULE ]; then
    note "$MODULE is already loaded: the new build loads at the next boot, or now with"
    note "  systemctl stop shadowd && modprobe -r $MODULE && modprobe $MODULE && systemctl start shadowd"
  else
    run modprobe "$MODULE"
  fi
fi

# ---------------------------------------------------------------------------
step "removing files of the previous install that this version lacks"
stale=0
declare -A is_new=()
for f in "${new_files[@]}"; do is_new[$f]=1; done
for f in "${old_files[@]}"; do
  if [ -z "${is_new[$f]+x}" ]; then
    stale=$((stale + 1))
    [ "$DRY_RUN" -eq 1 ] || rm -f "$R$f"
  fi
done
# Directories the previous install created that this one does not use,
# deepest first, if nothing else lives in them.
mapfile -t old_dirs < <(printf '%s\n' "${old_records[@]}" | sed -n 's/^dir //p' | LC_ALL=C sort -r)
for d in "${old_dirs[@]}"; do
  [ -n "${is_new_dir[$d]+x}" ] && continue
  if [ "$DRY_RUN" -eq 0 ] && [ -d "$R$d" ] && ! rmdir "$R$d" 2>/dev/null; then
    note "keeping $d: it holds files the install did not put there"
    records+=("dir $d")
  fi
done
note "$stale stale file(s)"

# ---------------------------------------------------------------------------
step "registering the unit and the journal catalog"
if [ "$FILES_ONLY" -eq 1 ]; then
  note "skipped (--files-only)"
else
  if [ -d /run/systemd/system ]; then
    run systemctl daemon-reload
  else
    note "systemd is not running here: no daemon-reload"
  fi
  if has_record "enabled $UNIT_NAME"; then
    records+=("enabled $UNIT_NAME")
  elif [ "$(systemctl is-enabled "$UNIT_NAME" 2>/dev/null || true)" != enabled ]; then
    run systemctl enable "$UNIT_NAME"
    records+=("enabled $UNIT_NAME")
  fi
  run journalctl --update-catalog
  if [ -d /run/systemd/system ] && systemctl is-active --quiet "$UNIT_NAME"; then
    run systemctl restart "$UNIT_NAME"
  fi
fi

# ---------------------------------------------------------------------------
step "writing the manifest $MANIFEST"
if [ "$DRY_RUN" -eq 0 ]; then
  {
    echo "# shadowd install manifest: written by scripts/install.sh, read by uninstall.sh."
    echo "# One record a line: file PATH, dir PATH (created by the install), group NAME,"
    echo "# dkms MODULE VERSION, enabled UNIT (enabled by the install). Paths are relative"
    echo "# to the install root; \"mode files-only\": installed with --files-only."
    echo "version $VERSION"
    echo "source $SRC"
    if [ "$FILES_ONLY" -eq 1 ]; then echo "mode files-only"; fi
    if [ ${#records[@]} -gt 0 ]; then printf '%s\n' "${records[@]}"; fi
    printf 'file %s\n' "${new_files[@]}"
  } > "$R$MANIFEST.tmp"
  mv "$R$MANIFEST.tmp" "$R$MANIFEST"
fi
note "$(( ${#new_files[@]} )) files and ${#records[@]} other records"

echo
if [ "$DRY_RUN" -eq 1 ]; then
  echo "Dry run: nothing was changed."
elif [ "$FILES_ONLY" -eq 1 ]; then
  echo "shadowd $VERSION files installed under ${R:-/}."
else
  echo "shadowd $VERSION is installed. Next:"
  echo "  sudo systemctl start shadowd        # it starts at boot from now on"
  echo "  shadowctl status                    # as root or as a member of the $GROUP group"
  echo "  sudo cp $CONFDIR/shadowd.conf.example $CONFDIR/shadowd.conf   # to change the defaults"
  echo "Uninstall with: sudo $LIBDIR/uninstall.sh   (add --purge to remove the configuration and state too)"
fi
