#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The helper's generic core must not know a device class: only a class's own
# files may name its kernel objects (sh_net* the network's, sh_block* the
# block layer's and SCSI's, sh_sound* ALSA's), and no class names another's. Fails, listing
# the lines, if an identifier appears outside its class's files (the
# Makefile included).
#   kmod/check-class-boundary.sh [KMOD_DIR]
set -eu
dir=${1:-$(dirname "$0")}
net='net_device|netdev|IFNAMSIZ|ethtool|rtnl|ifindex|dev_get_by_name|netif_|napi|ndo_|sk_buff|skb|init_net|dev_valid_name|linux/if_|net/|NETIF_F|IFF_|ETH_'
block='gendisk|request_queue|blk_|bdev|block_device|BLK_STS|disk_live|disk_to_dev|dev_to_disk|DISK_NAME_LEN|linux/blkdev|linux/blk-|scsi|(^|[^a-z])sdev|bio_|sector_t'
sound='(^|[^_a-z])snd_|SNDRV_|<sound/|[^_]sound_class|substream'
found=0
check() { # FILE WORDS WHAT
	if grep -nEi "$2" "$1" >/dev/null; then
		grep -nEiH "$2" "$1" | sed "s/\$/  <- $3/" >&2
		found=1
	fi
}
for f in "$dir"/*.c "$dir"/*.h "$dir"/*.mk "$dir"/Makefile; do
	[ -e "$f" ] || continue
	case $(basename "$f") in
	*.mod.c) continue ;;
	sh_net*)
		check "$f" "$block" "a block identifier in the network class"
		check "$f" "$sound" "a sound identifier in the network class"
		;;
	sh_block*)
		check "$f" "$net" "a network identifier in the block class"
		check "$f" "$sound" "a sound identifier in the block class"
		;;
	sh_sound*)
		check "$f" "$net" "a network identifier in the sound class"
		check "$f" "$block" "a block identifier in the sound class"
		;;
	*)
		check "$f" "$net" "a network identifier in the generic core"
		check "$f" "$block" "a block identifier in the generic core"
		check "$f" "$sound" "a sound identifier in the generic core"
		;;
	esac
done
if [ "$found" -ne 0 ]; then
	echo "check-class-boundary: class identifiers outside their class's files" >&2
	exit 1
fi
echo "check-class-boundary: each class's identifiers stay in its own files"
