#!/bin/sh
# Run in the guest to record the fixtures in test/fixtures/kmsg: the kernel's
# own /dev/kmsg records for
#   warn.kmsg        a WARN in a module (the rig's fault fixture,
#                    test/vm/fault-fixture, loaded with mode=warn);
#   tx-timeout.kmsg  a real TX watchdog timeout on e1000 (the fixture, with
#                    mode=txstop, stops the device's TX queue 0; the kernel's
#                    watchdog reports it and e1000 resets itself);
#   ring-warn.kmsg   a WARN in core kernel code called by a driver: pcnet32
#                    6.1 frees its rings with IRQs off when `ethtool -G`
#                    resizes them, and dma_free_attrs() WARNs;
#   oops.kmsg        an oops in a module (the fixture with mode=oops);
#   xmit-timeout-tap.jsonl  what the network class taps (bpf/netdev-class.bt,
#                    bpftrace -f json) printed for the TX timeout: the
#                    net_dev_xmit_timeout tracepoint's ev=xmit_timeout.
# usage (after `npm run prepare-guest`; guest-main exits 1 because the guest
# kernel WARNed and oopsed, on purpose):
#   node dist/test/vm/rig/guest-main.js --keep --device e1000 --device pcnet -- \
#     sh test/vm/guest/record-kmsg.sh test/vm/fault-fixture/fault_fixture.ko
# then copy the *.kmsg files but all.kmsg, and xmit-timeout-tap.jsonl, from
# the run folder.
# Each file holds the raw records (and their dictionary lines) between a
# begin and an end marker this script writes to /dev/kmsg; the markers are
# left out.
set -u
cd "$(dirname "$0")/../../.."
ko=${1:?usage: record-kmsg.sh FAULT_FIXTURE_KO}
out=${SHADOWD_RUNDIR:?SHADOWD_RUNDIR is not set}
all=$out/all.kmsg
cat /dev/kmsg > "$all" &
cat_pid=$!
mark() { echo "shadowd-fixture: $1" > /dev/kmsg; }
# Waits up to $2 tenths of a second for a kernel message matching $1.
wait_for() {
  n=0
  until grep -q "$1" "$all"; do
    n=$((n + 1))
    [ "$n" -le "$2" ] || { echo "record-kmsg: no \"$1\" in the kernel log" >&2; return 1; }
    sleep 0.1
  done
}

# The interface a driver drives.
iface_of() {
  for d in /sys/class/net/*; do
    [ "$(basename "$(readlink "$d/device/driver" 2>/dev/null)")" = "$1" ] && basename "$d" && return 0
  done
  return 1
}
# The taps, attached before anything happens (bpftrace takes seconds to attach under emulation).
bt_out=$out/taps.jsonl
bpftrace -f json bpf/netdev-class.bt > "$bt_out" 2> "$out/bpftrace.err" &
bt=$!
until grep -q attached_probes "$bt_out" 2>/dev/null; do
  kill -0 "$bt" 2>/dev/null || { cat "$out/bpftrace.err" >&2; exit 1; }; sleep 0.2
done
links=$(sed 's://.*$::' bpf/netdev-class.bt | grep -oE 'k(ret)?func:vmlinux:[a-z_0-9]+' | wc -l)
until [ "$(ls -l "/proc/$bt/fd" | grep -c 'anon_inode:bpf_link')" -ge "$links" ]; do sleep 0.2; done
sleep 1 # the tracepoint holds a perf event, not a bpf_link: give it a moment too

modprobe e1000
modprobe pcnet32
dev=$(iface_of e1000)
pdev=$(iface_of pcnet32)
echo "e1000=$dev pcnet32=$pdev"
ip link set "$dev" up
n=0
until [ "$(cat "/sys/class/net/$dev/carrier" 2>/dev/null)" = 1 ]; do
  n=$((n + 1)); [ "$n" -le 100 ] || { echo "record-kmsg: $dev has no carrier" >&2; exit 1; }; sleep 0.1
done

mark "begin warn"
insmod "$ko" mode=warn
rmmod fault_fixture
mark "end warn"

mark "begin tx-timeout"
t0=$(cut -d' ' -f1 /proc/uptime)
insmod "$ko" mode=txstop ifname="$dev"
wait_for 'NETDEV WATCHDOG' 200 || exit 1
echo "watchdog_after_s=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { print b - a }')"
# e1000's reset runs in a worker and brings the link back: keep its messages.
sleep 4
rmmod fault_fixture
mark "end tx-timeout"

mark "begin ring-warn"
rx=$(ethtool -g "$pdev" | awk '/^RX:/ { v = $2 } END { print v }')
ethtool -G "$pdev" rx $((rx / 2)) || echo "record-kmsg: ethtool -G $pdev failed" >&2
sleep 1
mark "end ring-warn"

mark "begin oops"
insmod "$ko" mode=oops
echo "insmod_oops_status=$?"
sleep 1
mark "end oops"

wait_for 'shadowd-fixture: end oops' 50
kill "$cat_pid"
kill -INT "$bt"
wait "$bt"
grep '"ev=xmit_timeout ' "$bt_out" > "$out/xmit-timeout-tap.jsonl"
echo "xmit-timeout-tap: $(grep -c '' "$out/xmit-timeout-tap.jsonl") events"
for name in warn tx-timeout ring-warn oops; do
  awk -v b="shadowd-fixture: begin $name" -v e="shadowd-fixture: end $name" '
    index($0, ";" e) { on = 0 }
    on { print }
    index($0, ";" b) { on = 1 }
  ' "$all" > "$out/$name.kmsg"
  echo "$name: $(grep -c '^[0-9]' "$out/$name.kmsg") records"
done
