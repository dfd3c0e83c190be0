#!/bin/sh
# Run in the guest to record test/fixtures/netdev/e1000-lost-events.jsonl: the
# network class taps with the smallest perf buffer bpftrace allows, stopped
# (SIGSTOP) while a burst of MTU changes fills it, so the kernel drops events
# and bpftrace reports the loss when it reads again. The writers are pinned
# to one CPU: the kernel reports a loss in that CPU's buffer with its next event.
# usage: node dist/test/vm/rig/guest-main.js --keep --device e1000 -- \
#          sh test/vm/guest/record-lost.sh    (then copy lost.jsonl from the run folder)
set -eu
cd "$(dirname "$0")/../../.."
out="$SHADOWD_RUNDIR/lost.jsonl"
modprobe e1000
BPFTRACE_PERF_RB_PAGES=1 bpftrace -f json bpf/netdev-class.bt > "$out" 2> "$SHADOWD_RUNDIR/bpftrace.err" &
bt=$!
until grep -q attached_probes "$out" 2>/dev/null; do sleep 0.2; done
sleep 10 # the probes attach one by one after bpftrace says they are attached
toggle() {
  taskset -c 0 perl -e 'use Socket; socket(my $s, AF_INET, SOCK_DGRAM, 0) or die;
    for my $i (1 .. $ARGV[0]) { ioctl($s, 0x8922, pack("a16 i x20", "eth0", $i % 2 ? 1500 : 1400)) or die "$!" }' "$1"
}
toggle 4
kill -STOP "$bt"
toggle 60
kill -CONT "$bt"
sleep 2
toggle 2
sleep 2
kill -INT "$bt"
wait "$bt" || true
grep -c '"printf"' "$out"
grep lost_events "$out"
