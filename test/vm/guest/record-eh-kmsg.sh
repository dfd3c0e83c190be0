#!/bin/sh
# Run in the guest to record the disk fixtures in test/fixtures/kmsg: the
# kernel's own /dev/kmsg records of libata's error handling on a PIIX IDE
# and an AHCI disk, which the disk class's kernel log rule
# (daemon/classes/block/eh-gave-up-log.ts) must tell apart:
#   ata-fail-stop.kmsg   one read failed in the driver (helper fault
#                        fail-stop): a single "I/O error, dev sdX", no EH;
#   ata-unload.kmsg      a plain restart of the PIIX unit by the helper: the
#                        unload prints "ataN.00: disable device" after the
#                        disk is removed;
#   ata-lost-irq.kmsg    lost interrupts (helper fault lost-irq) on both
#                        disks, SCSI timeout 5 s, one read in flight on each:
#                        on PIIX every soft reset succeeds and the read is
#                        retried until it fails ("EH complete" each time,
#                        never a give-up); on AHCI IDENTIFY times out after
#                        each hard reset and libata disables the device.
# usage (after `npm run prepare-guest`):
#   node dist/test/vm/rig/guest-main.js --keep --timeout 600 --device piix-ide --device ahci -- \
#     sh test/vm/guest/record-eh-kmsg.sh kmod/shadow_helper.ko
# then copy the three files from the run folder it kept.
# Each file holds the raw records between a begin and an end marker this
# script writes to /dev/kmsg; the markers are left out.
set -u
cd "$(dirname "$0")/../../.."
ko=${1:?usage: record-eh-kmsg.sh SHADOW_HELPER_KO}
out=${SHADOWD_RUNDIR:?SHADOWD_RUNDIR is not set}
all=$out/all.kmsg
for m in ata_piix ahci sd_mod; do modprobe "$m"; done
insmod "$ko" allow_faults=1 || exit 1
cat /dev/kmsg > "$all" &
mark() { echo "shadowd-fixture: $1" > /dev/kmsg; }
# One helper command; prints its reply.
hx() { exec 3<>/dev/shadow_helper; printf '%s' "$1" >&3; r=; read -r r <&3; exec 3>&-; echo "helper: $1 -> $r" >&2; }
# Waits up to $2 seconds for a kernel message matching $1.
wait_for() {
  n=0
  until grep -q "$1" "$all"; do
    n=$((n + 1))
    [ "$n" -le "$2" ] || { echo "record-eh-kmsg: no \"$1\" in the kernel log" >&2; return 1; }
    sleep 1
  done
}
# The disk with a serial, by its SCSI VPD page 0x80.
disk_of() {
  for d in /sys/block/sd*; do
    grep -q "$1" "$d/device/vpd_pg80" 2>/dev/null && basename "$d" && return 0
  done
  return 1
}
# The records between the markers "$1 begin" and "$1 end", markers left out.
cut_out() {
  sed -n "/shadowd-fixture: $1 begin/,/shadowd-fixture: $1 end/p" "$all" | grep -v 'shadowd-fixture:' > "$out/$1.kmsg"
}
n=0
until piix=$(disk_of shadowd-disk0) && ahci=$(disk_of shadowd-disk1); do
  n=$((n + 1)); [ "$n" -le 30 ] || { echo "record-eh-kmsg: no disks" >&2; exit 1; }; sleep 1
done

mark 'ata-fail-stop begin'
hx "inject block:$piix fail-stop"
dd if="/dev/$piix" of=/dev/null bs=4k count=1 skip=1024 iflag=direct
hx "inject block:$piix clear"
wait_for 'I/O error, dev' 10
mark 'ata-fail-stop end'

mark 'ata-unload begin'
hx "restart block:$piix u1"
wait_for 'shadow_helper: recovery u1' 60
sleep 2
mark 'ata-unload end'
n=0
until piix=$(disk_of shadowd-disk0); do
  n=$((n + 1)); [ "$n" -le 30 ] || { echo "record-eh-kmsg: PIIX disk did not come back" >&2; exit 1; }; sleep 1
done

mark 'ata-lost-irq begin'
for d in "$piix" "$ahci"; do echo 5 > "/sys/block/$d/device/timeout"; hx "inject block:$d lost-irq"; done
dd if="/dev/$piix" of=/dev/null bs=4k count=1 skip=1024 iflag=direct &
p1=$!
dd if="/dev/$ahci" of=/dev/null bs=4k count=1 skip=1024 iflag=direct &
p2=$!
wait "$p1" "$p2"
sleep 2
mark 'ata-lost-irq end'
sleep 1
for f in ata-fail-stop ata-unload ata-lost-irq; do cut_out "$f"; done
wc -l "$out"/*.kmsg >&2
