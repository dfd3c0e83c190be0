#!/bin/sh
# Run in the guest: record the disk class taps (bpf/block-class.bt) while a
# scripted session configures a PIIX, an AHCI and a virtio disk through sysfs
# and restarts the PIIX controller's driver: the unit tests' fixture
# test/fixtures/block/taps-session.txt (its README says how to run this).
#
#   usage: record-block-taps.sh   (the guest booted with piix-ide, ahci and
#                                  virtio-blk disks, in that order)
#
# The taps are attached before the drivers load, so the log starts with the
# disks' registrations. Writes $SHADOWD_RUNDIR/taps.txt: bpftrace's text
# output, one record a line (the attach line left out).
set -eu
: "${SHADOWD_RUNDIR:?SHADOWD_RUNDIR is not set}"
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../../.." && pwd)
out=$SHADOWD_RUNDIR/taps.txt
raw=$SHADOWD_RUNDIR/bpftrace.txt

bpftrace "$repo/bpf/block-class.bt" > "$raw" 2> "$SHADOWD_RUNDIR/bpftrace.err" &
bt=$!
i=0
until grep -q '^Attaching' "$raw" 2>/dev/null; do
  i=$((i + 1))
  [ $i -lt 600 ] || { echo "bpftrace never attached:" >&2; cat "$SHADOWD_RUNDIR/bpftrace.err" >&2; exit 1; }
  sleep 0.2
done
# Attached: the probes are live a moment after the line.
sleep 2

modprobe -a ata_piix ahci virtio_blk sd_mod
for d in sda sdb vda; do
  i=0
  until [ -e /sys/block/$d ]; do
    i=$((i + 1))
    [ $i -lt 300 ] || { echo "no disk $d" >&2; exit 1; }
    sleep 0.2
  done
done
# The PIIX controller (one PCI function), and which of sda and sdb is its disk.
piix=$(basename /sys/bus/pci/drivers/ata_piix/0000:*)
case $(readlink -f /sys/block/sda) in */$piix/*) pd=sda ad=sdb ;; *) pd=sdb ad=sda ;; esac
hctl=$(basename /sys/block/$pd/device/scsi_disk/*)
# The session: one setting of each kind, on each kind of disk.
echo 256 > /sys/block/$pd/queue/read_ahead_kb
echo 64 > /sys/block/vda/queue/nr_requests
echo mq-deadline > /sys/block/$ad/queue/scheduler
echo 16 > /sys/block/$ad/queue/iosched/fifo_batch
echo 60 > /sys/block/$pd/device/timeout
echo 'temporary write through' > /sys/block/$pd/device/scsi_disk/$hctl/cache_type
# The taps runner's sync marker: one NUL byte, which the parameter refuses.
printf '\000' | dd of=/sys/module/block/parameters/events_dfl_poll_msecs 2>/dev/null || true
# A write the driver refuses (no such device), then the PIIX controller's restart.
echo 0000:00:1f.7 > /sys/bus/pci/drivers/ata_piix/unbind 2>/dev/null || true
echo "$piix" > /sys/bus/pci/drivers/ata_piix/unbind
echo "$piix" > /sys/bus/pci/drivers/ata_piix/bind
# Its disk comes back (under its old name or another).
back=
i=0
until [ -n "$back" ]; do
  for d in /sys/block/sd*; do
    case $(readlink -f "$d") in */$piix/*) back=$(basename "$d") ;; esac
  done
  i=$((i + 1))
  [ -n "$back" ] || [ $i -lt 300 ] || { echo "the PIIX disk did not come back" >&2; exit 1; }
  [ -n "$back" ] || sleep 0.2
done
# device_add_disk returns a little after its disk shows in /sys/block.
sleep 2
kill -INT $bt
wait $bt || true
grep '^ev=' "$raw" > "$out"
echo "records=$(wc -l < "$out") piix=$piix disk=$pd back=$back ahci=$ad"
