#!/bin/sh
# Run in the guest to record the fixtures in test/fixtures/snapshot: loads
# DRIVER, configures its interface a little, and saves what each query tool
# the shadow's snapshot uses prints, with its exit status.
# usage: record-snapshot.sh DRIVER OUTDIR
#   node dist/test/vm/rig/guest-main.js --keep --device e1000 -- \
#     sh -c 'sh test/vm/guest/record-snapshot.sh e1000 "$SHADOWD_RUNDIR"'
# then copy the files from the run folder it names.
set -u
drv=$1
out=$2
modprobe $drv
dev=$(ls /sys/class/net | grep -v '^lo$' | head -n1)
ip link set $dev up; ip addr add 10.0.2.15/24 dev $dev; ip route add 192.0.2.0/24 via 10.0.2.2 dev $dev
ip neigh add 10.0.2.77 lladdr 02:00:00:00:00:77 dev $dev nud permanent
ip maddr add 01:00:5e:00:00:42 dev $dev
bridge fdb add 02:00:00:00:11:22 dev $dev self permanent
sleep 3
run() { name=$1; shift; "$@" > "$out/$drv-$name.txt" 2>&1; echo "exit=$?" >> "$out/$drv-$name.txt"; }
run ethtool-g ethtool -g $dev
run ethtool-c ethtool -c $dev
run ethtool-l ethtool -l $dev
run ethtool ethtool $dev
run ethtool-priv ethtool --show-priv-flags $dev
run ethtool-i ethtool -i $dev
run ethtool-a ethtool --json -a $dev
run ethtool-k ethtool --json -k $dev
run ethtool-eee ethtool --show-eee $dev
run ip-link ip -json -details link show dev $dev
run ip-addr ip -json addr show dev $dev
run ip-route ip -json route show dev $dev
run ip-route6 ip -json -6 route show dev $dev
run ip-neigh ip -json neigh show dev $dev nud permanent
run ip-qdisc ip -json -details qdisc show dev $dev
run ip-maddr ip -json maddr show dev $dev
run bridge-fdb bridge -json fdb show dev $dev
# Shared by every driver's snapshot test: the VLANs on top of the device.
ip link add link $dev name $dev.5 type vlan id 5
ip link add link $dev name $dev.7 type vlan protocol 802.1ad id 7
{ ip -json -details link show type vlan; echo "exit=$?"; } > "$out/ip-vlan.txt"
