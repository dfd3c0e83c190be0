#!/bin/sh
# Run in the guest: load a NIC driver, bring its interface up on QEMU's user
# network, ping the gateway and fetch a file from the host's loopback through
# the guest forward. Prints "driver=", "sha256=" lines for the test to check.
# usage: nic-traffic.sh DRIVER URL
set -eu
driver=$1
url=$2
modprobe "$driver"
dev=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
[ -n "$dev" ] || { echo "no network interface after modprobe $driver" >&2; exit 1; }
ip link set "$dev" up
ip addr add 10.0.2.15/24 dev "$dev"
tries=0
until [ "$(cat "/sys/class/net/$dev/carrier" 2>/dev/null)" = 1 ]; do
  tries=$((tries + 1))
  [ "$tries" -le 100 ] || { echo "$dev: no carrier after 10 s" >&2; exit 1; }
  sleep 0.1
done
echo "driver=$(basename "$(readlink "/sys/class/net/$dev/device/driver")")"
busybox ping -c 3 -W 2 10.0.2.2
echo "sha256=$(curl -sS --max-time 30 "$url" | sha256sum | cut -d' ' -f1)"
