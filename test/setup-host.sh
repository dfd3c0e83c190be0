#!/usr/bin/env bash
# Installs what building and testing shadowd needs on a Debian 12 machine: the
# Debian packages (QEMU, bpftrace, the kernel source for checkpatch, the tools
# the guest tests drive) and the npm dependencies. Safe to run again: it skips
# what is already there. The guest kernel itself is fetched by `npm run kernel`,
# which the test and demo commands run.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  qemu-system-x86 busybox-static cpio kmod xz-utils zstd util-linux socat  # the guest rig (zstd: 6.12's kernel)
  gcc make libelf-dev linux-source-6.1 dwarves                        # building kmod/ (pahole: 6.12's module BTF), checkpatch
  dkms                                                                # scripts/install.sh in the service test
  bpftrace iproute2 ethtool tcpdump curl iputils-ping               # what the guest tests run
  llvm                                                              # llc: the XDP program of the uncarried-state test
  clang libbpf-dev bpftool                                          # the precompiled taps prototype (bpf/libbpf/, npm run build:taps)
  dmsetup e2fsprogs sqlite3 sox fio                                 # the disk class: its maps and its applications
  alsa-utils mpg123 espeak-ng lame libasound2-dev                   # the sound class: its applications (lame makes the mp3), the mmap client
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep 'install ok installed' >/dev/null || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  sudo=()
  [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  echo "setup-host: installing ${missing[*]}"
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "setup-host: Debian packages already installed"
fi

if [ -d node_modules ] && [ node_modules/.package-lock.json -nt package-lock.json ]; then
  echo "setup-host: npm dependencies already installed"
else
  npm ci --no-audit --no-fund
fi
