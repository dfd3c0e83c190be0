// SPDX-License-Identifier: GPL-2.0-only
/*
 * The network class's taps of bpf/netdev-class.bt as one CO-RE object for
 * libbpf (taps-loader): the same events, from the same vmlinux functions
 * and the one tracepoint, with the same fields and the same conditions. See
 * bpf/netdev-class.bt for what each event means; each program here is
 * named after its event and carries the .bt's probe's logic, no more.
 *
 * FENTRY AND FEXIT. A kfunc of the .bt is an fentry program here, a
 * kretfunc an fexit: an fexit sees the arguments beside the return value,
 * and the device's state as the call left it. Every function has the same
 * prototype in both guest kernels (6.1.0-57 and 6.12.118, read from their
 * vmlinux BTF) but the ethnl_set_* handlers: (skb, info) in 6.1, (req_info,
 * info) in 6.12 for all but ethnl_set_features. Their programs read only
 * the second argument, a struct genl_info * on both, so one program per
 * function serves both kernels. A function the running kernel lacks leaves
 * its program out (taps-loader names it on stderr), as bpftrace leaves out
 * a probe; both guest kernels have all of them.
 *
 * PER-THREAD STATE. The .bt's scratch maps are hash maps keyed by the
 * thread id, written and deleted where the .bt writes and deletes them:
 * ethnl_dev (@ethnl_*: the device an ethtool netlink request's header
 * resolved, for the ethnl_set_* handler that follows), ethtool_ioctl (@etio_*:
 * armed by dev_ethtool's entry, given the device of the first
 * __dev_get_by_name inside it, read and deleted at its return), rename_old
 * (@rename_old: a device's name before dev_change_name). The .bt's maps of
 * one prefix are written and deleted together: one map with a struct value
 * holds them. A missing entry reads as zeros, as a missing bpftrace map key
 * reads as 0 and "". rtnl_hint_at is the .bt's @rtnl_hint_at: when it is
 * full, nothing is stored and every hint is printed, as in bpftrace. Every
 * map has bpftrace's default size (4096 entries).
 *
 * CO-RE. Every kernel field is read through a CO-RE relocation
 * (BPF_CORE_READ, bpf_core_read), fixed up by libbpf against the running
 * kernel's BTF: struct net_device's fields sit elsewhere in 6.12 (name moved
 * from its start to offset 304), and so does genl_info's genlhdr. A read
 * that fails (a NULL pointer) leaves 0 or an empty name, as bpftrace's
 * reads do.
 *
 * THE TRACEPOINT. net:net_dev_xmit_timeout is a classic tracepoint
 * program: its record holds the device's name and its driver's
 * (netdev_drivername()) as __data_loc strings on both kernels, the very
 * fields the .bt's str(args->name) and str(args->driver) print.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "taps-bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* include/uapi/linux/if.h, include/linux/netdevice.h */
#define NET_IFNAMSIZ 16
#define NET_ETH_ALEN 6
#define NET_IFF_UP 0x1
#define NET_LINK_STATE_PRESENT 0x2	/* 1 << __LINK_STATE_PRESENT */
#define NET_LINK_STATE_NOCARRIER 0x4	/* 1 << __LINK_STATE_NOCARRIER */
#define NET_ENODEV 19
/* include/linux/notifier.h: notifier_to_errno() */
#define NET_NOTIFY_STOP_MASK 0x8000
/* include/uapi/linux/rtnetlink.h */
#define NET_RTNLGRP_NEIGH 3
#define NET_RTNLGRP_TC 4
#define NET_RTNLGRP_IPV4_IFADDR 5
#define NET_RTNLGRP_IPV4_ROUTE 7
#define NET_RTNLGRP_IPV6_IFADDR 9
#define NET_RTNLGRP_IPV6_ROUTE 11
#define NET_RTM_GETQDISC 38
/* At most one rtnl_hint per namespace, group, process and kthread value per 50 ms. */
#define NET_HINT_INTERVAL_NS 50000000ULL
/*
 * The ETHTOOL_* commands dev_ethtool prints: bit n of the first mask is
 * command n (0-63), of the second command n + 64 (the set commands and the
 * actions, as the .bt's).
 */
#define NET_ETHTOOL_SETS_LOW 0x6a3e155496aa9344ULL
#define NET_ETHTOOL_SETS_HIGH 0x2aaa0ULL
/* bpftrace's default map size (BPFTRACE_MAP_KEYS_MAX) */
#define NET_MAP_ENTRIES 4096

/* @etio_*: armed is the .bt's @etio_armed (1 in dev_ethtool, 2 once its device was looked up). */
struct net_ethtool_ioctl {
	__u32 armed;
	__u32 pad;
	struct tap_net_dev dev;
};

/* @rtnl_hint_at's key: [netns, group, pid, kthread value] */
struct net_hint_key {
	__u32 netns;
	__u32 group;
	__u32 pid;
	__u32 kernel;
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NET_MAP_ENTRIES);
	__type(key, __u32);
	__type(value, struct tap_net_dev);
} ethnl_dev SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NET_MAP_ENTRIES);
	__type(key, __u32);
	__type(value, struct net_ethtool_ioctl);
} ethtool_ioctl SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NET_MAP_ENTRIES);
	__type(key, __u32);
	__type(value, struct tap_net_dev);
} rename_old SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, NET_MAP_ENTRIES);
	__type(key, struct net_hint_key);
	__type(value, __u64);
} rtnl_hint_at SEC(".maps");

/* The .bt's tid: the thread's id, the low half of pid_tgid. */
static __always_inline __u32 net_tid(void)
{
	return (__u32)bpf_get_current_pid_tgid();
}

/* dev->name, as bpftrace prints the char[IFNAMSIZ]: up to its NUL (empty for no device). */
static __always_inline void net_dev_name(char *name, struct net_device *dev)
{
	if (bpf_core_read(name, NET_IFNAMSIZ, &dev->name))
		name[0] = '\0';
	name[NET_IFNAMSIZ] = '\0';
}

/* The device's ifindex, namespace (dev_net(dev)->ns.inum) and name. */
static __always_inline void net_dev_of(struct tap_net_dev *d, struct net_device *dev)
{
	d->ifindex = BPF_CORE_READ(dev, ifindex);
	d->netns = BPF_CORE_READ(dev, nd_net.net, ns.inum);
	net_dev_name(d->name, dev);
}

/* A device kept in a map, or none (ifindex 0, netns 0, empty name). */
static __always_inline void net_dev_copy(struct tap_net_dev *d, const struct tap_net_dev *kept)
{
	if (kept) {
		__builtin_memcpy(d, kept, sizeof(*d));
	} else {
		d->ifindex = 0;
		d->netns = 0;
		d->name[0] = '\0';
	}
}

/* A kernel name into a record's field: empty where unreadable (a NULL pointer), as str(). */
static __always_inline void net_str(char *field, const char *src)
{
	if (bpf_probe_read_kernel_str(field, TAP_STR_LEN, src) < 0)
		field[0] = '\0';
}

/* The first ETH_ALEN bytes at addr (zeros where unreadable, as bpftrace's reads). */
static __always_inline void net_mac(__u8 *mac, const void *addr)
{
	if (bpf_probe_read_kernel(mac, NET_ETH_ALEN, addr))
		__builtin_memset(mac, 0, NET_ETH_ALEN);
}

/* A struct tap_net_event: the device, a value, a ret (tap-format.c says which it prints). */
static __always_inline void net_event(__u32 ev, struct net_device *dev, __u32 value, int ret)
{
	struct tap_net_event *e = TAP_RECORD(struct tap_net_event, ev);

	if (!e)
		return;
	net_dev_of(&e->dev, dev);
	e->value = value;
	e->ret = ret;
	bpf_ringbuf_submit(e, 0);
}

SEC("fexit/__dev_open")
int BPF_PROG(net_open, struct net_device *dev, struct netlink_ext_ack *extack, int ret)
{
	net_event(TAP_EV_NET_OPEN, dev, BPF_CORE_READ(dev, flags), ret);
	return 0;
}

/* ret: the chain's verdict as notifier_to_errno() makes it, computed as the .bt does. */
SEC("fexit/call_netdevice_notifiers_info")
int BPF_PROG(net_notifier, unsigned long val, struct netdev_notifier_info *info, int ret)
{
	struct tap_net_notifier *e = TAP_RECORD(struct tap_net_notifier, TAP_EV_NET_NOTIFIER);
	__s64 r = ret & 0x7fff;

	if (!e)
		return 0;
	net_dev_of(&e->dev, BPF_CORE_READ(info, dev));
	e->event = val;
	e->ret = ((ret & NET_NOTIFY_STOP_MASK) && r > 1) ? 1 - r : 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("fexit/dev_set_mtu_ext")
int BPF_PROG(net_mtu, struct net_device *dev, int new_mtu, struct netlink_ext_ack *extack,
	     int ret)
{
	net_event(TAP_EV_NET_MTU, dev, new_mtu, ret);
	return 0;
}

/* addr: the requested address, struct sockaddr's sa_data. */
SEC("fexit/dev_set_mac_address")
int BPF_PROG(net_mac_address, struct net_device *dev, struct sockaddr *sa,
	     struct netlink_ext_ack *extack, int ret)
{
	struct tap_net_addr *e = TAP_RECORD(struct tap_net_addr, TAP_EV_NET_MAC);

	if (!e)
		return 0;
	net_dev_of(&e->dev, dev);
	if (bpf_core_read(e->addr, NET_ETH_ALEN, &sa->sa_data))
		__builtin_memset(e->addr, 0, NET_ETH_ALEN);
	e->pad = 0;
	e->count = 0;
	e->ret = ret;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* flags: the requested flags; devflags, gflags: the device's after the call. */
SEC("fexit/__dev_change_flags")
int BPF_PROG(net_flags, struct net_device *dev, unsigned int flags,
	     struct netlink_ext_ack *extack, int ret)
{
	struct tap_net_flags *e = TAP_RECORD(struct tap_net_flags, TAP_EV_NET_FLAGS);

	if (!e)
		return 0;
	net_dev_of(&e->dev, dev);
	e->flags = flags;
	e->devflags = BPF_CORE_READ(dev, flags);
	e->gflags = BPF_CORE_READ(dev, gflags);
	e->ret = ret;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

static __always_inline void net_refcount(__u32 ev, struct net_device *dev, int inc, __u32 count,
					 int ret)
{
	struct tap_net_refcount *e = TAP_RECORD(struct tap_net_refcount, ev);

	if (!e)
		return;
	net_dev_of(&e->dev, dev);
	e->inc = inc;
	e->count = count;
	e->flags = BPF_CORE_READ(dev, flags);
	e->ret = ret;
	bpf_ringbuf_submit(e, 0);
}

SEC("fexit/dev_set_promiscuity")
int BPF_PROG(net_promisc, struct net_device *dev, int inc, int ret)
{
	net_refcount(TAP_EV_NET_PROMISC, dev, inc, BPF_CORE_READ(dev, promiscuity), ret);
	return 0;
}

SEC("fexit/dev_set_allmulti")
int BPF_PROG(net_allmulti, struct net_device *dev, int inc, int ret)
{
	net_refcount(TAP_EV_NET_ALLMULTI, dev, inc, BPF_CORE_READ(dev, allmulti), ret);
	return 0;
}

/* Only when the driver was called: the device up (IFF_UP) and present (__LINK_STATE_PRESENT). */
SEC("fexit/__dev_set_rx_mode")
int BPF_PROG(net_rx_mode, struct net_device *dev)
{
	unsigned int flags = BPF_CORE_READ(dev, flags);
	unsigned long state = BPF_CORE_READ(dev, state);
	struct tap_net_rx_mode *e;

	if (!(flags & NET_IFF_UP) || !(state & NET_LINK_STATE_PRESENT))
		return 0;
	e = TAP_RECORD(struct tap_net_rx_mode, TAP_EV_NET_RX_MODE);
	if (!e)
		return 0;
	net_dev_of(&e->dev, dev);
	e->flags = flags;
	e->promisc = BPF_CORE_READ(dev, promiscuity);
	e->allmulti = BPF_CORE_READ(dev, allmulti);
	e->uc = BPF_CORE_READ(dev, uc.count);
	e->mc = BPF_CORE_READ(dev, mc.count);
	e->uc_promisc = BPF_CORE_READ(dev, uc_promisc) ? 1 : 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* An address list's change: count is the entries of that list after the call. */
static __always_inline void net_addr_list(__u32 ev, struct net_device *dev,
					  const unsigned char *addr, int count, int ret)
{
	struct tap_net_addr *e = TAP_RECORD(struct tap_net_addr, ev);

	if (!e)
		return;
	net_dev_of(&e->dev, dev);
	net_mac(e->addr, addr);
	e->pad = 0;
	e->count = count;
	e->ret = ret;
	bpf_ringbuf_submit(e, 0);
}

SEC("fexit/dev_uc_add")
int BPF_PROG(net_uc_add, struct net_device *dev, const unsigned char *addr, int ret)
{
	net_addr_list(TAP_EV_NET_UC_ADD, dev, addr, BPF_CORE_READ(dev, uc.count), ret);
	return 0;
}

SEC("fexit/dev_uc_add_excl")
int BPF_PROG(net_uc_add_excl, struct net_device *dev, const unsigned char *addr, int ret)
{
	net_addr_list(TAP_EV_NET_UC_ADD_EXCL, dev, addr, BPF_CORE_READ(dev, uc.count), ret);
	return 0;
}

SEC("fexit/dev_uc_del")
int BPF_PROG(net_uc_del, struct net_device *dev, const unsigned char *addr, int ret)
{
	net_addr_list(TAP_EV_NET_UC_DEL, dev, addr, BPF_CORE_READ(dev, uc.count), ret);
	return 0;
}

SEC("fexit/dev_mc_add")
int BPF_PROG(net_mc_add, struct net_device *dev, const unsigned char *addr, int ret)
{
	net_addr_list(TAP_EV_NET_MC_ADD, dev, addr, BPF_CORE_READ(dev, mc.count), ret);
	return 0;
}

SEC("fexit/dev_mc_add_excl")
int BPF_PROG(net_mc_add_excl, struct net_device *dev, const unsigned char *addr, int ret)
{
	net_addr_list(TAP_EV_NET_MC_ADD_EXCL, dev, addr, BPF_CORE_READ(dev, mc.count), ret);
	return 0;
}

SEC("fexit/dev_mc_add_global")
int BPF_PROG(net_mc_add_global, struct net_device *dev, const unsigned char *addr, int ret)
{
	net_addr_list(TAP_EV_NET_MC_ADD_GLOBAL, dev, addr, BPF_CORE_READ(dev, mc.count), ret);
	return 0;
}

SEC("fexit/dev_mc_del")
int BPF_PROG(net_mc_del, struct net_device *dev, const unsigned char *addr, int ret)
{
	net_addr_list(TAP_EV_NET_MC_DEL, dev, addr, BPF_CORE_READ(dev, mc.count), ret);
	return 0;
}

SEC("fexit/dev_mc_del_global")
int BPF_PROG(net_mc_del_global, struct net_device *dev, const unsigned char *addr, int ret)
{
	net_addr_list(TAP_EV_NET_MC_DEL_GLOBAL, dev, addr, BPF_CORE_READ(dev, mc.count), ret);
	return 0;
}

SEC("fexit/__netdev_update_features")
int BPF_PROG(net_features, struct net_device *dev, int ret)
{
	struct tap_net_features *e = TAP_RECORD(struct tap_net_features, TAP_EV_NET_FEATURES);

	if (!e)
		return 0;
	net_dev_of(&e->dev, dev);
	e->features = BPF_CORE_READ(dev, features);
	e->wanted = BPF_CORE_READ(dev, wanted_features);
	e->hw = BPF_CORE_READ(dev, hw_features);
	e->ret = ret;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("fentry/ethtool_notify")
int BPF_PROG(net_ethtool_notify, struct net_device *dev, unsigned int cmd, const void *data)
{
	net_event(TAP_EV_NET_ETHTOOL_NOTIFY, dev, cmd, 0);
	return 0;
}

/*
 * The device an ethtool netlink request's header resolved, kept for its
 * ethnl_set_* handler; none kept when the header named none, and
 * ev=ethtool_nl_nodev when it named no device of the namespace (-ENODEV).
 */
SEC("fexit/ethnl_parse_header_dev_get")
int BPF_PROG(net_ethtool_nl_parse, struct ethnl_req_info *req_info, const struct nlattr *header,
	     struct net *net, struct netlink_ext_ack *extack, bool require_dev, int ret)
{
	struct net_device *dev = BPF_CORE_READ(req_info, dev);
	struct tap_net_nodev *e;
	struct tap_net_dev kept = {};
	__u32 tid = net_tid();

	if (ret == 0 && dev) {
		net_dev_of(&kept, dev);
		bpf_map_update_elem(&ethnl_dev, &tid, &kept, BPF_ANY);
		return 0;
	}
	bpf_map_delete_elem(&ethnl_dev, &tid);
	if (ret != -NET_ENODEV)
		return 0;
	e = TAP_RECORD(struct tap_net_nodev, TAP_EV_NET_ETHTOOL_NL_NODEV);
	if (!e)
		return 0;
	e->netns = BPF_CORE_READ(net, ns.inum);
	e->ret = ret;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* ev=ethtool_nl_set: msg is the request's ETHTOOL_MSG_*_SET, the device the one kept. */
static __always_inline void net_ethtool_nl_set(struct genl_info *info, int ret)
{
	__u32 tid = net_tid();
	struct tap_net_event *e = TAP_RECORD(struct tap_net_event, TAP_EV_NET_ETHTOOL_NL_SET);

	if (e) {
		net_dev_copy(&e->dev, bpf_map_lookup_elem(&ethnl_dev, &tid));
		e->value = BPF_CORE_READ(info, genlhdr, cmd);
		e->ret = ret;
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&ethnl_dev, &tid);
}

/* The first argument is a struct sk_buff * (6.1) or a struct ethnl_req_info * (6.12): unread. */
SEC("fexit/ethnl_set_linkinfo")
int BPF_PROG(net_ethnl_set_linkinfo, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_linkmodes")
int BPF_PROG(net_ethnl_set_linkmodes, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_debug")
int BPF_PROG(net_ethnl_set_debug, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_wol")
int BPF_PROG(net_ethnl_set_wol, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_features")
int BPF_PROG(net_ethnl_set_features, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_privflags")
int BPF_PROG(net_ethnl_set_privflags, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_rings")
int BPF_PROG(net_ethnl_set_rings, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_channels")
int BPF_PROG(net_ethnl_set_channels, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_coalesce")
int BPF_PROG(net_ethnl_set_coalesce, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_pause")
int BPF_PROG(net_ethnl_set_pause, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_eee")
int BPF_PROG(net_ethnl_set_eee, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_fec")
int BPF_PROG(net_ethnl_set_fec, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_module")
int BPF_PROG(net_ethnl_set_module, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

SEC("fexit/ethnl_set_pse")
int BPF_PROG(net_ethnl_set_pse, void *first, struct genl_info *info, int ret)
{
	net_ethtool_nl_set(info, ret);
	return 0;
}

/* An ethtool ioctl begins: armed, its device (if an earlier one left it) kept as it is. */
SEC("fentry/dev_ethtool")
int BPF_PROG(net_ethtool_ioctl_entry, struct net *net, struct ifreq *ifr, void *useraddr)
{
	struct net_ethtool_ioctl fresh = { .armed = 1 };
	struct net_ethtool_ioctl *state;
	__u32 tid = net_tid();

	state = bpf_map_lookup_elem(&ethtool_ioctl, &tid);
	if (state)
		state->armed = 1;
	else
		bpf_map_update_elem(&ethtool_ioctl, &tid, &fresh, BPF_ANY);
	return 0;
}

/* Inside dev_ethtool the first name lookup is the request's own device. */
SEC("fexit/__dev_get_by_name")
int BPF_PROG(net_ethtool_ioctl_dev, struct net *net, const char *name, struct net_device *ret)
{
	__u32 tid = net_tid();
	struct net_ethtool_ioctl *state = bpf_map_lookup_elem(&ethtool_ioctl, &tid);

	if (!state || state->armed != 1)
		return 0;
	state->armed = 2;
	if (ret)
		net_dev_of(&state->dev, ret);
	return 0;
}

/* ev=ethtool_ioctl: only the commands that set something or act on the device. */
SEC("fexit/dev_ethtool")
int BPF_PROG(net_ethtool_ioctl, struct net *net, struct ifreq *ifr, void *useraddr, int ret)
{
	__u32 tid = net_tid();
	struct net_ethtool_ioctl *state = bpf_map_lookup_elem(&ethtool_ioctl, &tid);
	struct tap_net_event *e;
	__u32 cmd = 0;
	__u64 set = 0;

	if (bpf_probe_read_user(&cmd, sizeof(cmd), useraddr))
		cmd = 0;
	if (cmd < 64)
		set = (NET_ETHTOOL_SETS_LOW >> cmd) & 1;
	else if (cmd < 128)
		set = (NET_ETHTOOL_SETS_HIGH >> (cmd - 64)) & 1;
	if (set) {
		e = TAP_RECORD(struct tap_net_event, TAP_EV_NET_ETHTOOL_IOCTL);
		if (e) {
			net_dev_copy(&e->dev, state ? &state->dev : NULL);
			e->value = cmd;
			e->ret = ret;
			bpf_ringbuf_submit(e, 0);
		}
	}
	bpf_map_delete_elem(&ethtool_ioctl, &tid);
	return 0;
}

SEC("fexit/dev_change_tx_queue_len")
int BPF_PROG(net_txqueuelen, struct net_device *dev, unsigned long new_len, int ret)
{
	struct tap_net_txqueuelen *e = TAP_RECORD(struct tap_net_txqueuelen,
						  TAP_EV_NET_TXQUEUELEN);

	if (!e)
		return 0;
	net_dev_of(&e->dev, dev);
	e->qlen = new_len;
	e->ret = ret;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* The name before the rename, for its return (only the name of the struct is used). */
SEC("fentry/dev_change_name")
int BPF_PROG(net_rename_entry, struct net_device *dev, const char *newname)
{
	struct tap_net_dev old = {};
	__u32 tid = net_tid();

	net_dev_name(old.name, dev);
	bpf_map_update_elem(&rename_old, &tid, &old, BPF_ANY);
	return 0;
}

/* name: the name before (empty if its entry went missing), newname: dev->name after. */
SEC("fexit/dev_change_name")
int BPF_PROG(net_rename, struct net_device *dev, const char *newname, int ret)
{
	__u32 tid = net_tid();
	struct tap_net_dev *old = bpf_map_lookup_elem(&rename_old, &tid);
	struct tap_net_rename *e = TAP_RECORD(struct tap_net_rename, TAP_EV_NET_RENAME);

	if (e) {
		net_dev_of(&e->dev, dev);
		if (old)
			__builtin_memcpy(e->dev.name, old->name, sizeof(e->dev.name));
		else
			e->dev.name[0] = '\0';
		net_dev_name(e->newname, dev);
		e->ret = ret;
		e->pad = 0;
		bpf_ringbuf_submit(e, 0);
	}
	bpf_map_delete_elem(&rename_old, &tid);
	return 0;
}

/*
 * addr: dev->dev_addr; driver, bus: the parent device's driver's name and
 * its own name, printed only for a device with a parent (its own event).
 */
SEC("fexit/register_netdevice")
int BPF_PROG(net_register, struct net_device *dev, int ret)
{
	struct device *parent = BPF_CORE_READ(dev, dev.parent);
	struct tap_net_register *e;

	e = TAP_RECORD(struct tap_net_register, parent ? TAP_EV_NET_REGISTER :
			TAP_EV_NET_REGISTER_NO_PARENT);
	if (!e)
		return 0;
	net_dev_of(&e->dev, dev);
	net_mac(e->addr, BPF_CORE_READ(dev, dev_addr));
	e->pad = 0;
	e->ret = ret;
	if (parent) {
		net_str(e->driver, BPF_CORE_READ(parent, driver, name));
		net_str(e->bus, BPF_CORE_READ(parent, kobj.name));
	} else {
		e->driver[0] = '\0';
		e->bus[0] = '\0';
	}
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* queued: the device only joins a batch (head set). */
SEC("fentry/unregister_netdevice_queue")
int BPF_PROG(net_unregister, struct net_device *dev, struct list_head *head)
{
	net_event(TAP_EV_NET_UNREGISTER, dev, head ? 1 : 0, 0);
	return 0;
}

/*
 * Only a real change of a registered device: __LINK_STATE_NOCARRIER set
 * (carrier_on) or clear (carrier_off) before the call, reg_state not
 * NETREG_UNINITIALIZED (0).
 */
static __always_inline void net_carrier(__u32 ev, struct net_device *dev, bool off_before)
{
	unsigned long state = BPF_CORE_READ(dev, state);
	__u8 reg_state = BPF_CORE_READ(dev, reg_state);

	if (!!(state & NET_LINK_STATE_NOCARRIER) == off_before && reg_state != 0)
		net_event(ev, dev, 0, 0);
}

SEC("fentry/netif_carrier_on")
int BPF_PROG(net_carrier_on, struct net_device *dev)
{
	net_carrier(TAP_EV_NET_CARRIER_ON, dev, true);
	return 0;
}

SEC("fentry/netif_carrier_off")
int BPF_PROG(net_carrier_off, struct net_device *dev)
{
	net_carrier(TAP_EV_NET_CARRIER_OFF, dev, false);
	return 0;
}

/* proto is big endian (__be16): printed in host order, as the .bt swaps it. */
static __always_inline void net_vlan(__u32 ev, struct net_device *dev, __u16 proto, __u16 vid,
				     int ret)
{
	struct tap_net_vlan *e = TAP_RECORD(struct tap_net_vlan, ev);

	if (!e)
		return;
	net_dev_of(&e->dev, dev);
	e->proto = ((proto & 0xff) << 8) | (proto >> 8);
	e->vid = vid;
	e->ret = ret;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
}

SEC("fexit/vlan_vid_add")
int BPF_PROG(net_vlan_add, struct net_device *dev, __be16 proto, u16 vid, int ret)
{
	net_vlan(TAP_EV_NET_VLAN_ADD, dev, proto, vid, ret);
	return 0;
}

/* vlan_vid_del returns nothing: ret=0. */
SEC("fexit/vlan_vid_del")
int BPF_PROG(net_vlan_del, struct net_device *dev, __be16 proto, u16 vid)
{
	net_vlan(TAP_EV_NET_VLAN_DEL, dev, proto, vid, 0);
	return 0;
}

/*
 * Whether a hint of this namespace, group, process and kthread value is
 * due: none printed in the last 50 ms (or none kept: a full map keeps
 * none, and every hint is printed). A due hint's time is kept.
 */
static __always_inline bool net_hint_due(__u32 netns, __u32 group, __u32 kernel)
{
	struct net_hint_key key = {
		.netns = netns,
		.group = group,
		.pid = bpf_get_current_pid_tgid() >> 32,
		.kernel = kernel,
	};
	__u64 now = bpf_ktime_get_ns();
	__u64 *at = bpf_map_lookup_elem(&rtnl_hint_at, &key);
	__u64 last = at ? *at : 0;

	if (now - last <= NET_HINT_INTERVAL_NS)
		return false;
	bpf_map_update_elem(&rtnl_hint_at, &key, &now, BPF_ANY);
	return true;
}

/* ev=rtnl_hint: kthread is the hint's kernel value, not only the task's. */
static __always_inline void net_rtnl_hint(__u32 netns, __u32 group, __u32 type, __u32 kernel)
{
	struct tap_net_rtnl_hint *e = TAP_RECORD(struct tap_net_rtnl_hint, TAP_EV_NET_RTNL_HINT);

	if (!e)
		return;
	e->task.head.kthread = kernel;
	e->netns = netns;
	e->group = group;
	e->type = type;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
}

/* Whether the current task is a kernel thread (PF_KTHREAD). */
static __always_inline __u32 net_kthread(void)
{
	struct task_struct *task = bpf_get_current_task_btf();

	return (task->flags & TAP_PF_KTHREAD) ? 1 : 0;
}

/*
 * The kernel's own neighbour notifications (group 3, nlmsg_pid 0) are not
 * printed; an address or route notification no request asked for counts
 * as a kernel thread's. The message is the skb's data, as the .bt reads it.
 */
SEC("fentry/rtnl_notify")
int BPF_PROG(net_rtnl_notify, struct sk_buff *skb, struct net *net, u32 pid, u32 group,
	     struct nlmsghdr *nlh, gfp_t flags)
{
	struct nlmsghdr *msg = (struct nlmsghdr *)BPF_CORE_READ(skb, data);
	__u32 nlmsg_pid = BPF_CORE_READ(msg, nlmsg_pid);
	__u32 netns = BPF_CORE_READ(net, ns.inum);
	__u32 kernel = net_kthread();

	if (!kernel && nlmsg_pid == 0 &&
	    (group == NET_RTNLGRP_IPV4_IFADDR || group == NET_RTNLGRP_IPV4_ROUTE ||
	     group == NET_RTNLGRP_IPV6_IFADDR || group == NET_RTNLGRP_IPV6_ROUTE))
		kernel = 1;
	if (group == NET_RTNLGRP_NEIGH && nlmsg_pid == 0)
		return 0;
	if (net_hint_due(netns, group, kernel))
		net_rtnl_hint(netns, group, BPF_CORE_READ(msg, nlmsg_type), kernel);
	return 0;
}

/* Traffic control announces qdisc and class changes here: the same record. */
SEC("fentry/rtnetlink_send")
int BPF_PROG(net_rtnetlink_send, struct sk_buff *skb, struct net *net, u32 pid,
	     unsigned int group, int echo)
{
	struct nlmsghdr *msg = (struct nlmsghdr *)BPF_CORE_READ(skb, data);
	__u32 netns = BPF_CORE_READ(net, ns.inum);
	__u32 kernel = net_kthread();

	if (net_hint_due(netns, group, kernel))
		net_rtnl_hint(netns, group, BPF_CORE_READ(msg, nlmsg_type), kernel);
	return 0;
}

/*
 * A qdisc request that succeeded and was not a read (RTM_GETQDISC): group
 * 4 (TC), the namespace of the request's socket. Kernels from 6.8 on reach
 * rtnetlink_send only when someone listens; these handlers always run.
 */
static __always_inline void net_qdisc_request(struct sk_buff *skb, struct nlmsghdr *n, int ret)
{
	__u32 type = BPF_CORE_READ(n, nlmsg_type);
	__u32 netns = BPF_CORE_READ(skb, sk, __sk_common.skc_net.net, ns.inum);
	__u32 kernel = net_kthread();

	if (ret == 0 && type != NET_RTM_GETQDISC && net_hint_due(netns, NET_RTNLGRP_TC, kernel))
		net_rtnl_hint(netns, NET_RTNLGRP_TC, type, kernel);
}

SEC("fexit/tc_modify_qdisc")
int BPF_PROG(net_tc_modify_qdisc, struct sk_buff *skb, struct nlmsghdr *n,
	     struct netlink_ext_ack *extack, int ret)
{
	net_qdisc_request(skb, n, ret);
	return 0;
}

SEC("fexit/tc_get_qdisc")
int BPF_PROG(net_tc_get_qdisc, struct sk_buff *skb, struct nlmsghdr *n,
	     struct netlink_ext_ack *extack, int ret)
{
	net_qdisc_request(skb, n, ret);
	return 0;
}

/* A __data_loc string of a tracepoint's record: its offset is the low 16 bits. */
static __always_inline void net_data_loc_str(char *field, void *record, __u32 loc)
{
	net_str(field, (const char *)record + (loc & 0xffff));
}

/* The record is the context: read directly, at the offsets CO-RE relocates. */
SEC("tracepoint/net/net_dev_xmit_timeout")
int net_xmit_timeout(struct trace_event_raw_net_dev_xmit_timeout *ctx)
{
	struct tap_net_xmit_timeout *e = TAP_RECORD(struct tap_net_xmit_timeout,
						    TAP_EV_NET_XMIT_TIMEOUT);

	if (!e)
		return 0;
	net_data_loc_str(e->name, ctx, ctx->__data_loc_name);
	net_data_loc_str(e->driver, ctx, ctx->__data_loc_driver);
	e->queue = ctx->queue_index;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
