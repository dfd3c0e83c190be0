#!/bin/sh
# SPDX-License-Identifier: GPL-2.0
# The helper's generic core must not know the network class: only the class's
# own files (sh_net*) may name its kernel objects. Fails, listing the lines,
# if a network identifier appears in any other kmod source or in the Makefile.
#   kmod/check-class-boundary.sh [KMOD_DIR]
set -eu
dir=${1:-$(dirname "$0")}
words='net_device|netdev|IFNAMSIZ|ethtool|rtnl|ifindex|dev_get_by_name|netif_|napi|ndo_|sk_buff|skb|init_net|dev_valid_name|linux/if_|net/|NETIF_F|IFF_|ETH_'
found=0
for f in "$dir"/*.c "$dir"/*.h; do
	[ -e "$f" ] || continue
	case $(basename "$f") in
	sh_net*|*.mod.c) continue ;;
	esac
	if grep -nEi "$words" "$f" >/dev/null; then
		grep -nEiH "$words" "$f" >&2
		found=1
	fi
done
if [ "$found" -ne 0 ]; then
	echo "check-class-boundary: network identifiers outside the sh_net* files" >&2
	exit 1
fi
echo "check-class-boundary: the generic core names no network identifier"
