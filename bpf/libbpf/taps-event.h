/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The records a class's CO-RE tap programs put in the ring buffer and
 * taps-loader turns into tap record lines (one line per event, as the
 * class's bpftrace program prints it: daemon/core/tap-record.ts). Shared by
 * the BPF side (which gets the __u32 types from vmlinux.h) and the loader
 * (from linux/types.h).
 *
 * Every record starts as struct tap_head does: its event (enum tap_ev) says
 * which struct it is and which fields its line has (tap-format.c's table).
 * The disk class's three events share struct tap_event; the sound and
 * network classes have a struct per kind of event, each a struct tap_task
 * (head and task name) followed by the fields its bpftrace printf prints.
 *
 * The object's contract with the loader: a BPF_MAP_TYPE_RINGBUF map named
 * "events" of these records, and a one-slot BPF_MAP_TYPE_ARRAY named
 * "lost" counting the records the programs could not reserve
 * (taps-bpf.h has both).
 */
#ifndef SHADOWD_TAPS_EVENT_H
#define SHADOWD_TAPS_EVENT_H

/*
 * bpftrace's default string size (BPFTRACE_STRLEN, 64 bytes with the NUL): a
 * longer name is cut at 63 bytes, as str() cuts it.
 */
#define TAP_STR_LEN 64
#define TAP_STRS 4
#define TAP_NUMS 4
#define TAP_COMM_LEN 16

/* PF_KTHREAD of include/linux/sched.h (a macro: not in vmlinux.h). */
#define TAP_PF_KTHREAD 0x00200000

/*
 * The records, by their ev= name; each row of tap-format.c's table says
 * which fields it prints. A class's events have a range of their own, so
 * that a new class renumbers none.
 */
enum tap_ev {
	/* the disk class, block-class.bpf.c: struct tap_event */
	TAP_EV_SYSFS_WRITE,
	TAP_EV_DISK_ADD,
	TAP_EV_DISK_DEL,
	/* the sound class, sound-class.bpf.c: the struct each names */
	TAP_EV_PCM_OPEN = 0x100,	/* struct tap_pcm_event */
	TAP_EV_PCM_CLOSE,		/* struct tap_pcm_event */
	TAP_EV_PCM_HW_PARAMS,		/* struct tap_pcm_hw_params */
	TAP_EV_PCM_SW_PARAMS,		/* struct tap_pcm_sw_params */
	TAP_EV_PCM_PREPARE,		/* struct tap_pcm_event */
	TAP_EV_PCM_START,		/* struct tap_pcm_event */
	TAP_EV_PCM_STOP,		/* struct tap_pcm_event */
	TAP_EV_PCM_DRAIN,		/* struct tap_pcm_event */
	TAP_EV_PCM_DRAIN_FAILED,	/* struct tap_pcm_event */
	TAP_EV_PCM_PAUSE,		/* struct tap_pcm_event */
	TAP_EV_PCM_HW_FREE,		/* struct tap_pcm_event */
	TAP_EV_CTL_WRITE,		/* struct tap_ctl_write */
	TAP_EV_CTL_NOTIFY,		/* struct tap_ctl_notify */
	TAP_EV_CARD_REGISTER,		/* struct tap_card_event */
	TAP_EV_CARD_DISCONNECT,		/* struct tap_card_event */
	TAP_EV_INFO_WRITE,		/* struct tap_info_write */
	/* the network class, netdev-class.bpf.c: the struct each names */
	TAP_EV_NET_OPEN = 0x200,	/* struct tap_net_event */
	TAP_EV_NET_NOTIFIER,		/* struct tap_net_notifier */
	TAP_EV_NET_MTU,			/* struct tap_net_event */
	TAP_EV_NET_MAC,			/* struct tap_net_addr */
	TAP_EV_NET_FLAGS,		/* struct tap_net_flags */
	TAP_EV_NET_PROMISC,		/* struct tap_net_refcount */
	TAP_EV_NET_ALLMULTI,		/* struct tap_net_refcount */
	TAP_EV_NET_RX_MODE,		/* struct tap_net_rx_mode */
	TAP_EV_NET_UC_ADD,		/* struct tap_net_addr */
	TAP_EV_NET_UC_ADD_EXCL,		/* struct tap_net_addr */
	TAP_EV_NET_UC_DEL,		/* struct tap_net_addr */
	TAP_EV_NET_MC_ADD,		/* struct tap_net_addr */
	TAP_EV_NET_MC_ADD_EXCL,		/* struct tap_net_addr */
	TAP_EV_NET_MC_ADD_GLOBAL,	/* struct tap_net_addr */
	TAP_EV_NET_MC_DEL,		/* struct tap_net_addr */
	TAP_EV_NET_MC_DEL_GLOBAL,	/* struct tap_net_addr */
	TAP_EV_NET_FEATURES,		/* struct tap_net_features */
	TAP_EV_NET_ETHTOOL_NOTIFY,	/* struct tap_net_event */
	TAP_EV_NET_ETHTOOL_NL_SET,	/* struct tap_net_event */
	TAP_EV_NET_ETHTOOL_NL_NODEV,	/* struct tap_net_nodev */
	TAP_EV_NET_ETHTOOL_IOCTL,	/* struct tap_net_event */
	TAP_EV_NET_TXQUEUELEN,		/* struct tap_net_txqueuelen */
	TAP_EV_NET_RENAME,		/* struct tap_net_rename */
	TAP_EV_NET_REGISTER,		/* struct tap_net_register: a device with a parent */
	TAP_EV_NET_REGISTER_NO_PARENT,	/* struct tap_net_register: no driver=, bus= */
	TAP_EV_NET_UNREGISTER,		/* struct tap_net_event */
	TAP_EV_NET_CARRIER_ON,		/* struct tap_net_event */
	TAP_EV_NET_CARRIER_OFF,		/* struct tap_net_event */
	TAP_EV_NET_VLAN_ADD,		/* struct tap_net_vlan */
	TAP_EV_NET_VLAN_DEL,		/* struct tap_net_vlan */
	TAP_EV_NET_RTNL_HINT,		/* struct tap_net_rtnl_hint */
	TAP_EV_NET_XMIT_TIMEOUT,	/* struct tap_net_xmit_timeout */
};

/* What every record starts with: the event, the task's kind and process, the time. */
struct tap_head {
	__u32 ev;
	__u32 kthread;
	__u32 pid;
	__u32 pad;
	__u64 ts;
};

/*
 * The disk class's record: strings and numbers by position (block-class.bpf.c
 * says which is which). It starts as struct tap_head does (tap-format.c
 * asserts it).
 */
struct tap_event {
	__u32 ev;
	__u32 kthread;
	__u32 pid;
	__u32 pad;
	__u64 ts;
	__s64 num[TAP_NUMS];
	char comm[TAP_COMM_LEN];
	char str[TAP_STRS][TAP_STR_LEN];
};

/* The head and the task's name: how every record of the later classes starts. */
struct tap_task {
	struct tap_head head;
	char comm[TAP_COMM_LEN];
};

/*
 * The sound class's records (bpf/sound-class.bt says what each event
 * means). Every field has the width of the value the bpftrace printf
 * prints, and is named as its key in the line but for struct
 * tap_pcm_event's value; pad is printed by none.
 */

/* A PCM substream, as every pcm_* record starts: card, PCM device, direction, substream. */
struct tap_pcm {
	__s32 card;
	__s32 dev;
	__s32 stream;
	__s32 sub;
};

/*
 * The PCM events that print the substream alone (pcm_close, pcm_prepare,
 * pcm_drain, pcm_hw_free) or one int beside it, which tap-format.c names:
 * ret (pcm_open, pcm_drain_failed), state (pcm_start, pcm_stop), push
 * (pcm_pause).
 */
struct tap_pcm_event {
	struct tap_task task;
	struct tap_pcm pcm;
	__s32 value;
	__u32 pad;
};

/* access and format0/format1: mask words, printed in hex; the rest: the intervals' minimum. */
struct tap_pcm_hw_params {
	struct tap_task task;
	struct tap_pcm pcm;
	__u32 access;
	__u32 format0;
	__u32 format1;
	__u32 channels;
	__u32 rate;
	__u32 period_size;
	__u32 periods;
	__u32 buffer_size;
	__s32 ret;
	__u32 pad;
};

/* The frame counts are unsigned longs, printed in hex. */
struct tap_pcm_sw_params {
	struct tap_task task;
	struct tap_pcm pcm;
	__s32 tstamp_mode;
	__s32 ret;
	__u64 avail_min;
	__u64 start_threshold;
	__u64 stop_threshold;
	__u64 silence_threshold;
	__u64 silence_size;
};

struct tap_ctl_write {
	struct tap_task task;
	__s32 card;
	__u32 numid;
	__s32 iface;
	__u32 dev;
	__u32 sub;
	__u32 index;
	__s32 ret;
	__u32 pad;
};

struct tap_ctl_notify {
	struct tap_task task;
	__s32 card;
	__u32 numid;
	__u32 mask;
	__u32 pad;
};

/* card_register (ret), card_disconnect (no ret printed) */
struct tap_card_event {
	struct tap_task task;
	__s32 card;
	__s32 ret;
};

/* The refused write's file and its folder, cut as str() cuts them; ret is an ssize_t. */
struct tap_info_write {
	struct tap_task task;
	char attr[TAP_STR_LEN];
	char parent[TAP_STR_LEN];
	__s64 ret;
};

/*
 * The network class's records (bpf/netdev-class.bt says what each event
 * means). As the sound class's, every field has the width of the value the
 * bpftrace printf prints and is named as its key but for struct
 * tap_net_event's value; pad is printed by none.
 */

/* The device a record is about: ifindex=%d netns=%u name=%s. */
struct tap_net_dev {
	__s32 ifindex;
	__u32 netns;
	char name[TAP_STR_LEN];
};

/*
 * The events of one 32-bit value beside ret, which tap-format.c names and
 * converts: open (flags, 0x%x), mtu (mtu, %d), ethtool_notify (msg, %u, no
 * ret), ethtool_nl_set (msg), ethtool_ioctl (cmd, %u), unregister (queued,
 * %d, no ret); carrier_on and carrier_off print the device alone.
 */
struct tap_net_event {
	struct tap_task task;
	struct tap_net_dev dev;
	__u32 value;
	__s32 ret;
};

/* event is an unsigned long (%lu); ret is notifier_to_errno's, as a 64-bit %lld. */
struct tap_net_notifier {
	struct tap_task task;
	struct tap_net_dev dev;
	__u64 event;
	__s64 ret;
};

/* mac (no count), uc_* and mc_*: an Ethernet address and the list's entries. */
struct tap_net_addr {
	struct tap_task task;
	struct tap_net_dev dev;
	__u8 addr[6];
	__u16 pad;
	__s32 count;
	__s32 ret;
};

struct tap_net_flags {
	struct tap_task task;
	struct tap_net_dev dev;
	__u32 flags;
	__u32 devflags;
	__u32 gflags;
	__s32 ret;
};

/* promisc and allmulti: count is printed as promisc= or allmulti=. */
struct tap_net_refcount {
	struct tap_task task;
	struct tap_net_dev dev;
	__s32 inc;
	__u32 count;
	__u32 flags;
	__s32 ret;
};

struct tap_net_rx_mode {
	struct tap_task task;
	struct tap_net_dev dev;
	__u32 flags;
	__u32 promisc;
	__u32 allmulti;
	__s32 uc;
	__s32 mc;
	__s32 uc_promisc;
};

/* The masks are netdev_features_t (0x%llx). */
struct tap_net_features {
	struct tap_task task;
	struct tap_net_dev dev;
	__u64 features;
	__u64 wanted;
	__u64 hw;
	__s32 ret;
	__u32 pad;
};

/* An ethtool netlink request for no device: the request's namespace. */
struct tap_net_nodev {
	struct tap_task task;
	__u32 netns;
	__s32 ret;
};

/* qlen is an unsigned long (%lu). */
struct tap_net_txqueuelen {
	struct tap_task task;
	struct tap_net_dev dev;
	__u64 qlen;
	__s32 ret;
	__u32 pad;
};

/* dev.name is the name before the rename, newname the one after. */
struct tap_net_rename {
	struct tap_task task;
	struct tap_net_dev dev;
	char newname[TAP_STR_LEN];
	__s32 ret;
	__u32 pad;
};

/*
 * register: driver and bus are printed only by TAP_EV_NET_REGISTER (a
 * device with a parent), as the .bt's two printfs do.
 */
struct tap_net_register {
	struct tap_task task;
	struct tap_net_dev dev;
	__u8 addr[6];
	__u16 pad;
	__s32 ret;
	char driver[TAP_STR_LEN];
	char bus[TAP_STR_LEN];
};

/* vlan_add, vlan_del (ret 0): proto in host order (0x8100, 0x88a8). */
struct tap_net_vlan {
	struct tap_task task;
	struct tap_net_dev dev;
	__u32 proto;
	__u32 vid;
	__s32 ret;
	__u32 pad;
};

struct tap_net_rtnl_hint {
	struct tap_task task;
	__u32 netns;
	__u32 group;
	__u32 type;
	__u32 pad;
};

/* The tracepoint's names (no ifindex, no netns); queue is its int. */
struct tap_net_xmit_timeout {
	struct tap_task task;
	char name[TAP_STR_LEN];
	char driver[TAP_STR_LEN];
	__s32 queue;
	__u32 pad;
};

#endif /* SHADOWD_TAPS_EVENT_H */
