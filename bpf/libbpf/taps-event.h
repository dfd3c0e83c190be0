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
 * The disk class's three events share struct tap_event; the sound class
 * has a struct per kind of event, each a struct tap_task (head and task
 * name) followed by the fields its bpftrace printf prints.
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
#define TAP_NUMS 3
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

#endif /* SHADOWD_TAPS_EVENT_H */
