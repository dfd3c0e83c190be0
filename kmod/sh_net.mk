# SPDX-License-Identifier: GPL-2.0
# The network class's build checks, included by the Makefile under Kbuild.
# A net_device that may not change namespace is marked by the feature bit
# NETIF_F_NETNS_LOCAL before 6.12, by the bit netns_local in 6.12, renamed
# netns_immutable in 6.15 and in later 6.12 stable releases (a backport, so
# no version boundary): looked for in the headers.
ifeq ($(shell grep -qs 'netns_immutable:1' $(srctree)/include/linux/netdevice.h && echo y),y)
ccflags-y += -DSH_NETNS_IMMUTABLE
else ifeq ($(shell grep -qs 'netns_local:1' $(srctree)/include/linux/netdevice.h && echo y),y)
ccflags-y += -DSH_NETNS_LOCAL_BIT
endif
