#!/usr/bin/env bash
# Removes what scripts/install.sh installed, as its manifest
# (/usr/lib/shadowd/install-manifest, in the release tree; installs before
# release trees kept it in /var/lib/shadowd/install-manifest) lists it:
#
#   sudo scripts/uninstall.sh            # or sudo /usr/lib/shadowd/uninstall.sh
#   sudo scripts/uninstall.sh --purge    # also /etc/shadowd/shadowd.conf and the state
#
# It stops and disables the service, unloads shadow_helper and removes it from
# DKMS, deletes every recorded file, then every directory the install created
# if it is empty, and the shadowd group if the install created it. Without
# --purge it keeps the configuration (/etc/shadowd/shadowd.conf) and the shadow
# state (/var/lib/shadowd). Safe to run again.
set -euo pipefail

CONFDIR=/etc/shadowd
STATEDIR=/var/lib/shadowd
LIBDIR=/usr/lib/shadowd
MANIFEST=$LIBDIR/install-manifest
# Where installs before release trees kept it (the daemon's state directory).
LEGACY_MANIFEST=$STATEDIR/install-manifest
UNIT_NAME=shadowd.service
MODULE=shadow_helper

usage() {
  cat <<EOF
Usage: sudo uninstall.sh [--purge] [--dry-run] [--root DIR --files-only]

Removes shadowd as scripts/install.sh installed it, following its manifest
$MANIFEST (or $LEGACY_MANIFEST, where older installs kept it).

Options:
  --purge        also remove $CONFDIR (shadowd.conf) and $STATEDIR (the shadow state)
  --dry-run      print the steps, change nothing
  --root DIR     uninstall from under DIR instead of / (needs --files-only)
  --files-only   remove the recorded files only: no systemctl, DKMS, modprobe or groupdel
  -h, --help     this help
EOF
}

ROOT=/
PURGE=0
FILES_ONLY=0
DRY_RUN=0
while [ $# -gt 0 ]; do
  case "$1" in
    --root) [ $# -ge 2 ] || { echo "uninstall.sh: --root needs a directory" >&2; exit 2; }; ROOT=$2; shift 2 ;;
    --root=*) ROOT=${1#--root=}; shift ;;
    --purge) PURGE=1; shift ;;
    --files-only) FILES_ONLY=1; shift ;;
    --dry-run) DRY_RUN=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "uninstall.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
  esac
done

STEP=0
STEPS=5
step() { STEP=$((STEP + 1)); echo "==> [$STEP/$STEPS] $*"; }
note() { echo "    $*"; }
warn() { echo "uninstall.sh: warning: $*" >&2; }
die() { echo "uninstall.sh: error: $*" >&2; exit 1; }
run() {
  echo "    \$ $*"
  [ "$DRY_RUN" -eq 1 ] || "$@"
}
# A manifest path must be plain and absolute: nothing outside the root is touched.
check_path() {
  case "$1" in /?*) ;; *) die "$MANIFEST: path \"$1\" is not absolute" ;; esac
  case "$1/" in */../*|*/./*|*//*) die "$MANIFEST: path \"$1\" is not normalized" ;; esac
}
remove() { [ "$DRY_RUN" -eq 1 ] || rm -f "$R$1"; }

case "$ROOT" in /*) ;; *) die "--root must be an absolute path, not $ROOT" ;; esac
[ -d "$ROOT" ] || die "--root $ROOT is not a directory"
ROOT=$(cd "$ROOT" && pwd)
[ "$ROOT" = / ] && R= || R=$ROOT
if [ -n "$R" ] && [ "$FILES_ONLY" -eq 0 ]; then
  die "--root removes files only (systemctl, DKMS and groupdel act on the running system): add --files-only"
fi
if [ -z "$R" ] && [ "$FILES_ONLY" -eq 0 ] && [ "$DRY_RUN" -eq 0 ] && [ "$(id -u)" -ne 0 ]; then
  die "run it as root: sudo $0"
fi

files=()
dirs=()
group=
dkms_versions=()
enabled=
# The manifest's own file, found before the symlink to its release tree is removed.
manifest_file=
if [ -f "$R$MANIFEST" ]; then
  manifest_file=$(readlink -f "$R$MANIFEST")
  case "$manifest_file" in "$R"/*) ;; *) die "$MANIFEST resolves to $manifest_file, outside ${R:-/}" ;; esac
elif [ -f "$R$LEGACY_MANIFEST" ]; then
  manifest_file=$R$LEGACY_MANIFEST
  MANIFEST=$LEGACY_MANIFEST
fi
if [ -n "$manifest_file" ]; then
  while IFS= read -r line; do
    case "$line" in
      'file '*) check_path "${line#file }"; files+=("${line#file }") ;;
      'dir '*) check_path "${line#dir }"; dirs+=("${line#dir }") ;;
      'group '*) group=${line#group } ;;
      "dkms $MODULE "*) dkms_versions+=("${line#"dkms $MODULE "}") ;;
      'enabled '*) enabled=${line#enabled } ;;
      'version '*) note "removing shadowd ${line#version } as recorded in $MANIFEST" ;;
    esac
  done < "$manifest_file"
else
  note "no manifest at $R$MANIFEST (nor $R$LEGACY_MANIFEST): shadowd is not installed there (or was removed already)"
fi

# ---------------------------------------------------------------------------
step "stopping the service"
if [ "$FILES_ONLY" -eq 1 ]; then
  note "skipped (--files-only)"
elif [ ${#files[@]} -eq 0 ]; then
  note "nothing to stop"
else
  if [ -d /run/systemd/system ] && systemctl is-active --quiet "$UNIT_NAME"; then
    run systemctl stop "$UNIT_NAME"
  fi
  if [ -n "$enabled" ]; then
    run systemctl disable "$enabled" || warn "could not disable $enabled"
  fi
fi

# ---------------------------------------------------------------------------
step "removing $MODULE from the kernel and DKMS"
if [ "$FILES_ONLY" -eq 1 ]; then
  note "skipped (--files-only)"
elif [ ${#dkms_versions[@]} -eq 0 ]; then
  note "no DKMS module recorded"
else
  if [ -d /sys/module/$MODULE ]; then
    run modprobe -r "$MODULE" || warn "$MODULE stays loaded (in use?) until the next boot"
  fi
  for v in "${dkms_versions[@]}"; do
    if command -v dkms >/dev/null && [ -n "$(dkms status -m "$MODULE" -v "$v" 2>/dev/null)" ]; then
      run dkms remove -m "$MODULE" -v "$v" --all
    else
      note "$MODULE $v is not in DKMS"
    fi
  done
fi

# ---------------------------------------------------------------------------
step "removing the installed files"
if [ "$DRY_RUN" -eq 0 ] && [ ${#files[@]} -gt 0 ]; then
  printf '%s\0' "${files[@]/#/$R}" | xargs -0 rm -f --
fi
note "${#files[@]} files"
if [ "$PURGE" -eq 1 ]; then
  note "--purge: removing $CONFDIR/shadowd.conf and the state in $STATEDIR"
  remove "$CONFDIR/shadowd.conf"
  # The state directory is shadowd's own (the unit's StateDirectory=).
  [ "$DRY_RUN" -eq 1 ] || rm -rf "${R}${STATEDIR:?}"
elif [ -f "$R$CONFDIR/shadowd.conf" ]; then
  note "keeping $CONFDIR/shadowd.conf (--purge removes it)"
fi
if [ -n "$manifest_file" ] && [ "$DRY_RUN" -eq 0 ]; then rm -f "$manifest_file"; fi
remove "$LEGACY_MANIFEST"
# Directories the install created, deepest first, if nothing else is in them.
if [ "$PURGE" -eq 1 ]; then dirs+=("$CONFDIR" "$STATEDIR"); fi
mapfile -t sorted < <(printf '%s\n' "${dirs[@]}" | grep . | LC_ALL=C sort -u -r || true)
present=()
for d in "${sorted[@]}"; do [ -d "$R$d" ] && present+=("$d"); done
if [ "$DRY_RUN" -eq 0 ] && [ ${#present[@]} -gt 0 ]; then
  # Children sort after their parent, so in reverse order they go first.
  printf '%s\0' "${present[@]/#/$R}" | xargs -0 rmdir --ignore-fail-on-non-empty --
fi
kept=()
for d in "${present[@]}"; do [ -d "$R$d" ] && [ "$DRY_RUN" -eq 0 ] && kept+=("$d"); done
for d in "${kept[@]}"; do
  case "$d" in
    "$CONFDIR"|"$STATEDIR") note "keeping $d (it holds the configuration or state; --purge removes them)" ;;
    *) warn "kept $d: it holds files the install did not put there" ;;
  esac
done

# ---------------------------------------------------------------------------
step "unregistering the unit and the journal catalog"
if [ "$FILES_ONLY" -eq 1 ]; then
  note "skipped (--files-only)"
elif [ ${#files[@]} -eq 0 ]; then
  note "nothing to unregister"
else
  if [ -d /run/systemd/system ]; then run systemctl daemon-reload; fi
  run journalctl --update-catalog
fi

# ---------------------------------------------------------------------------
step "removing the shadowd group"
if [ "$FILES_ONLY" -eq 1 ]; then
  note "skipped (--files-only)"
elif [ -z "$group" ]; then
  note "the install did not create one"
elif getent group "$group" >/dev/null; then
  run groupdel "$group" || warn "could not remove the group $group"
else
  note "$group is gone already"
fi

echo
if [ "$DRY_RUN" -eq 1 ]; then echo "Dry run: nothing was changed."; else echo "shadowd is uninstalled."; fi
