/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The record a class's CO-RE tap programs put in the ring
 * buffer and taps-loader turns into a tap record line (one line per event,
 * as bpf/block-class.bt prints it: daemon/core/tap-record.ts). Shared by the
 * BPF side (which gets the __u32 types from vmlinux.h) and the loader (from
 * linux/types.h).
 *
 * The object's contract with the loader: a BPF_MAP_TYPE_RINGBUF map named
 * "events" of struct tap_event records, and a one-slot BPF_MAP_TYPE_ARRAY
 * named "lost" counting the records the programs could not reserve.
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

/* The records, by their ev= name; each row of the loader's table says which fields it prints. */
enum tap_ev {
	TAP_EV_SYSFS_WRITE,
	TAP_EV_DISK_ADD,
	TAP_EV_DISK_DEL,
	TAP_EV_COUNT,
};

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

#endif /* SHADOWD_TAPS_EVENT_H */
