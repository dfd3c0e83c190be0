#!/bin/sh
# Run in the guest: record the network class taps (bpf/netdev-class.bt) while
# a scripted configuration session drives one NIC from several processes (ip,
# ethtool, perl issuing raw SIOCETHTOOL ioctls, tcpdump, modprobe, and the
# kernel's own workers).
#
#   usage: record-netdev.sh DRIVER...   (e1000 | pcnet32 | e100, each once)
#
# One bpftrace run records the sessions of all the drivers given, one after
# another (attaching the taps takes most of a minute under TCG: once per
# guest, not per driver). Each driver's NIC is alone while its session runs:
# the session loads its driver, and its end unloads it again.
#
# Writes into $SHADOWD_RUNDIR:
#   taps.jsonl         bpftrace's raw `-f json` output, one JSON object a line
#   DRIVER-final.json  {"link","addr","maddr","route","ethtool":{...}}: the
#                      device's state at the end of the session, before the
#                      reload (ethtool 6.1 has --json for -k and -a only; the
#                      others are kept as {"text": ...})
#   DRIVER-marks.txt   "phase=NAME marker=N" lines, see below
# and prints "links=", "attach_s=", "dev_DRIVER=", "probes=", "lines=",
# "malformed=" summary lines.
#
# The taps are attached *before* the driver is loaded, so the log starts with
# the device's registration. Phases are marked in-band: `ip link set lo
# txqueuelen N` shows up in the log as ev=txqueuelen name=lo qlen=N, so the
# test can cut the log without comparing clocks (marks.txt maps N to a phase).
# The traffic phase (a 1000-echo ping flood plus a 20000-datagram UDP burst)
# sits between qlen=1001 and qlen=1002 and must add no tap events for the NIC.
# The session ends by unloading and reloading the driver (unregister, then a
# fresh register of the same device).
set -eu
[ $# -gt 0 ] || { echo "usage: record-netdev.sh DRIVER..." >&2; exit 2; }
: "${SHADOWD_RUNDIR:?SHADOWD_RUNDIR is not set}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
program=$repo/bpf/netdev-class.bt
out=$SHADOWD_RUNDIR/taps.jsonl
for driver in "$@"; do
  case $driver in
    e1000 | e100 | pcnet32) ;;
    *) echo "unknown driver $driver" >&2; exit 2 ;;
  esac
done

log() { echo "record-netdev: $*" >&2; }
# Commands whose failure is part of the recording (unsupported by a driver).
may_fail() { "$@" >/dev/null 2>&1 || log "(expected to fail on some drivers) $* -> $?"; }

# Markers count on across the drivers' sessions: each is used once.
mark_n=1000
mark() {
  mark_n=$((mark_n + 1))
  echo "phase=$1 marker=$mark_n" >> "$marks"
  ip link set dev lo txqueuelen "$mark_n"
}

# Raw SIOCETHTOOL: read a setting, change it, write it back. ethtool 6.1 always
# prefers netlink and has no switch to force the ioctl, so the ioctl path is
# driven from perl. Prints "CMD errno=N".
ethtool_ioctl() {
  perl -e '
    use strict; use Socket;
    my ($dev, $what, $val) = @ARGV;
    socket(my $s, AF_INET, SOCK_DGRAM, 0) or die "socket: $!";
    sub call { my ($buf) = @_; ioctl($s, 0x8946, pack("a16 P", $dev, $_[0])) ? 0 : $! + 0 }
    if ($what eq "rings") {           # ETHTOOL_GRINGPARAM 0x10, SRINGPARAM 0x11
      my $b = pack("L9", 0x10); my $e = call($b); die "GRINGPARAM errno=$e\n" if $e;
      my @v = unpack("L9", $b); $v[0] = 0x11; $v[5] = $val; $b = pack("L9", @v);
      print "SRINGPARAM errno=", call($b), "\n";
    } elsif ($what eq "coalesce") {   # ETHTOOL_GCOALESCE 0x0e, SCOALESCE 0x0f
      my $b = pack("L23", 0x0e); call($b);
      my @v = unpack("L23", $b); $v[0] = 0x0f; $b = pack("L23", @v);
      print "SCOALESCE errno=", call($b), "\n";
    } elsif ($what eq "msglvl") {     # ETHTOOL_SMSGLVL 0x08
      my $b = pack("L2", 0x08, $val); print "SMSGLVL errno=", call($b), "\n";
    } elsif ($what eq "nway") {       # ETHTOOL_NWAY_RST 0x09
      my $b = pack("L2", 0x09, 0); print "NWAY_RST errno=", call($b), "\n";
    }' "$@"
}

wait_carrier() {
  i=0
  until [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ]; do
    i=$((i + 1))
    [ "$i" -le 100 ] || { log "$1: no carrier after 10 s"; return 0; }
    sleep 0.1
  done
}

# --- taps ---
t0=$(cut -d' ' -f1 /proc/uptime)
bpftrace -f json "$program" > "$out" 2> "$SHADOWD_RUNDIR/bpftrace.err" &
bt=$!
stop_bpftrace() {
  # A background job of a non-interactive shell ignores SIGINT: use SIGTERM,
  # which bpftrace handles the same way (runs END, flushes, exits 0).
  kill -TERM "$bt" 2>/dev/null || true
  wait "$bt" || true
}
trap stop_bpftrace EXIT
# bpftrace 0.17 prints attached_probes *before* it attaches anything (the
# count includes END and the tracepoint); the kfunc/kretfunc probes are
# attached one by one after it, each holding a bpf_link fd (a tracepoint
# holds a perf event fd instead). Ready = one bpf_link per kfunc/kretfunc
# attach point.
i=0
until grep -q '"attached_probes"' "$out" 2>/dev/null; do
  kill -0 "$bt" 2>/dev/null || { cat "$SHADOWD_RUNDIR/bpftrace.err" >&2; echo "bpftrace exited before attaching" >&2; exit 1; }
  i=$((i + 1))
  [ "$i" -le 600 ] || { echo "bpftrace did not start in 60 s" >&2; exit 1; }
  sleep 0.1
done
probes=$(sed -n 's/.*"attached_probes", "data": {"probes": \([0-9]*\)}.*/\1/p' "$out")
links=$((probes - $(grep -cE '^(BEGIN|END)([[:space:]]|$)' "$program") - $(grep -cE '^tracepoint:' "$program")))
until [ "$(ls -l "/proc/$bt/fd" 2>/dev/null | grep -c 'anon_inode:bpf_link')" -ge "$links" ]; do
  kill -0 "$bt" 2>/dev/null || { cat "$SHADOWD_RUNDIR/bpftrace.err" >&2; echo "bpftrace exited while attaching" >&2; exit 1; }
  i=$((i + 1))
  [ "$i" -le 900 ] || { echo "bpftrace did not attach its $links probes in 90 s" >&2; exit 1; }
  sleep 0.1
done
echo "links=$links"
echo "attach_s=$(awk -v a="$t0" -v b="$(cut -d' ' -f1 /proc/uptime)" 'BEGIN { print b - a }')"

# One driver's session, on its NIC.
session() {
driver=$1
final=$SHADOWD_RUNDIR/$driver-final.json
marks=$SHADOWD_RUNDIR/$driver-marks.txt
: > "$marks"
case $driver in
  # rx ring sizes: one set through netlink (ethtool -G), one through the ioctl.
  e1000) ring_nl=512 ring_ioctl=256 mtu_big=9000 ;;
  e100) ring_nl=128 ring_ioctl=64 mtu_big=9000 ;;
  # pcnet32_set_ringparam (6.1) reallocates the rings under a spinlock with
  # IRQs off, and dma_free_attrs() WARNs on every real size change: write the
  # current size back instead (the driver is still called on the ioctl path).
  pcnet32) ring_nl=current ring_ioctl=current mtu_big=9000 ;;
esac

# --- driver load: register ---
mark load
modprobe "$driver"
dev=$(ls /sys/class/net | grep -v '^lo$' | head -n 1)
[ -n "$dev" ] || { echo "no interface after modprobe $driver" >&2; exit 1; }
echo "dev_$driver=$dev"

# --- configuration while down ---
mark down-config
ip link set dev "$dev" address 52:54:00:5a:de:01
ip link set dev "$dev" mtu 1400

# --- open ---
mark open
ip link set dev "$dev" up
wait_carrier "$dev"

mark mtu
ip link set dev "$dev" mtu 1280
may_fail ip link set dev "$dev" mtu "$mtu_big"
ip link set dev "$dev" mtu 1500

mark addresses
ip addr add 10.0.2.15/24 dev "$dev"
ip -6 addr add fd00:5a::15/64 dev "$dev" nodad
ip route add 10.99.0.0/16 via 10.0.2.2 dev "$dev"
ip maddr add 01:00:5e:01:02:03 dev "$dev"
ip maddr add 33:33:00:00:5a:01 dev "$dev"
ip maddr del 01:00:5e:01:02:03 dev "$dev"

mark ethtool-netlink
cur_rx=$(ethtool -g "$dev" | awk '/^Current hardware settings/ { c = 1 } c && /^RX:/ { print $2; exit }')
[ "$ring_nl" = current ] && ring_nl=$cur_rx
[ "$ring_ioctl" = current ] && ring_ioctl=$cur_rx
# rx-all is in e1000's and e100's hw_features; pcnet32 has none, so its
# requests come back refused.
may_fail ethtool -K "$dev" rx-all on
may_fail ethtool -K "$dev" rx-all off
ethtool -G "$dev" rx "$ring_nl"
may_fail ethtool -C "$dev" rx-usecs 10
ethtool -s "$dev" msglvl 0x5
may_fail ethtool -s "$dev" wol d
may_fail ethtool -A "$dev" autoneg off rx off tx off
wait_carrier "$dev"

mark ethtool-ioctl
ethtool_ioctl "$dev" rings "$ring_ioctl"
ethtool_ioctl "$dev" coalesce
ethtool_ioctl "$dev" msglvl 0x3
ethtool_ioctl "$dev" nway
sleep 0.5
wait_carrier "$dev"

# The network class's sync marker (NET_SYNC_MARKER in
# daemon/classes/net/net-declaration.ts): a request for a name no interface
# can have, which ethtool reports failing.
mark sync-marker
may_fail ethtool -s shadowd:sync msglvl 0

mark tcpdump
tcpdump -i "$dev" -n -q -w /dev/null 2>/dev/null &
td=$!
i=0
until [ $(( $(cat "/sys/class/net/$dev/flags") & 0x100 )) -ne 0 ]; do
  i=$((i + 1))
  [ "$i" -le 100 ] || { echo "tcpdump did not make $dev promiscuous in 10 s" >&2; exit 1; }
  sleep 0.1
done
kill -TERM "$td"
wait "$td" || true

mark promisc
ip link set dev "$dev" promisc on
ip link set dev "$dev" promisc off
ip link set dev "$dev" allmulticast on
ip link set dev "$dev" allmulticast off

mark txqueuelen
ip link set dev "$dev" txqueuelen 500
ip link set dev "$dev" txqueuelen 1000

mark vlan
modprobe 8021q
ip link add link "$dev" name "$dev.5" type vlan id 5
ip link del "$dev.5"

mark rename
ip link set dev "$dev" down
ip link set dev "$dev" name shd0
ip link set dev shd0 name "$dev"
ip link set dev "$dev" up
wait_carrier "$dev"
# The rename and re-open dropped the addresses' routes; re-add them.
ip route replace 10.99.0.0/16 via 10.0.2.2 dev "$dev"
# Warm up ARP before the traffic phase so neighbour resolution is not counted.
busybox ping -c 2 -W 2 10.0.2.2 >/dev/null || log "warm-up ping failed"
sleep 0.3

# --- data path: must not produce tap events ---
mark traffic
busybox ping -c 1000 -A -q -W 2 10.0.2.2 | tail -n 2
perl -e '
  use strict; use Socket;
  socket(my $s, AF_INET, SOCK_DGRAM, 0) or die $!;
  my $to = sockaddr_in(9, inet_aton("10.0.2.2")); my $p = "x" x 512; my $n = 0;
  for (1 .. 20000) { $n++ if defined send($s, $p, 0, $to) }
  print "udp sent=$n\n";'
mark traffic-end

# --- the state the daemon should have rebuilt from the log ---
mark final
node --input-type=module -e '
  // ip -json for the link and the stack state; ethtool --json where ethtool
  // 6.1 has it (-k, -a), its text output otherwise (-g, -c, -i).
  import { execFileSync } from "node:child_process";
  import { writeFileSync } from "node:fs";
  const [dev, file] = process.argv.slice(1);
  const run = (cmd, args) => {
    try {
      return { ok: true, out: execFileSync(cmd, args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] }) };
    } catch (e) {
      return { ok: false, out: String(e.stdout ?? "") + String(e.stderr ?? "") };
    }
  };
  const json = (cmd, args) => {
    const r = run(cmd, args);
    try { return JSON.parse(r.out); } catch { return null; }
  };
  const state = {
    link: json("ip", ["-json", "-details", "link", "show", "dev", dev]),
    addr: json("ip", ["-json", "addr", "show", "dev", dev]),
    maddr: json("ip", ["-json", "maddr", "show", "dev", dev]),
    route: json("ip", ["-json", "route", "show", "dev", dev]),
    ethtool: {},
  };
  for (const opt of ["-k", "-a", "-g", "-c", "-i"]) {
    const j = json("ethtool", ["--json", opt, dev]);
    state.ethtool[opt] = j !== null ? j : { text: run("ethtool", [opt, dev]).out };
  }
  writeFileSync(file, JSON.stringify(state, null, 1) + "\n");
' "$dev" "$final"

# --- driver restart: unregister and a fresh register ---
mark reload
modprobe -r "$driver"
modprobe "$driver"
mark end
# The next driver's session has the guest to itself.
modprobe -r "$driver"
}


for driver in "$@"; do
  session "$driver"
done
sleep 0.3

trap - EXIT
stop_bpftrace
echo "probes=$probes"
checker=$repo/dist/daemon/core/bpftrace-output.js
[ -f "$checker" ] || { echo "malformed=unchecked (no $checker: build first)"; exit 0; }
node --input-type=module -e '
  import { readFileSync } from "node:fs";
  const { parseBpftraceLine } = await import(process.argv[1]);
  const lines = readFileSync(process.argv[2], "utf8").split("\n").filter((l) => l.trim() !== "");
  let bad = 0;
  for (const l of lines) {
    const m = parseBpftraceLine(l);
    if (m.kind === "malformed") { bad++; console.error("malformed: " + m.reason + ": " + l); }
  }
  console.log("lines=" + lines.length);
  console.log("malformed=" + bad);
' "$checker" "$out"
