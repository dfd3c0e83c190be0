/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * The BPF side every class object shares (included after vmlinux.h and
 * libbpf's bpf_helpers.h): the two maps of the loader's contract
 * (taps-event.h), a record reserved in the ring buffer or its loss
 * counted, and the fields every record has.
 */
#ifndef SHADOWD_TAPS_BPF_H
#define SHADOWD_TAPS_BPF_H

#include "taps-event.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/*
 * size bytes of the ring buffer, or NULL when it is full: the loss is
 * counted, and the loader says so as bpftrace does. size is a constant
 * (sizeof a record) once inlined, as the verifier wants it.
 */
static __always_inline void *tap_reserve(__u64 size)
{
	void *record = bpf_ringbuf_reserve(&events, size, 0);
	__u32 zero = 0;
	__u64 *count;

	if (!record) {
		count = bpf_map_lookup_elem(&lost, &zero);
		if (count)
			__sync_fetch_and_add(count, 1);
	}
	return record;
}

/*
 * The fields every record has: its event, whether the task is a kernel
 * thread, its process, the time (bpftrace's nsecs) and the task's name
 * (comm: where the record's struct has it).
 */
static __always_inline void tap_identify(struct tap_head *head, __u32 ev, char *comm)
{
	struct task_struct *task = bpf_get_current_task_btf();

	head->ev = ev;
	head->kthread = (task->flags & TAP_PF_KTHREAD) ? 1 : 0;
	head->pid = bpf_get_current_pid_tgid() >> 32;
	head->pad = 0;
	head->ts = bpf_ktime_get_ns();
	bpf_get_current_comm(comm, TAP_COMM_LEN);
}

static __always_inline void *tap_task_start(struct tap_task *task, __u32 ev)
{
	if (task)
		tap_identify(&task->head, ev, task->comm);
	return task;
}

/*
 * A record of a struct that starts with struct tap_task, for event ev, its
 * head and comm filled; NULL when the ring buffer is full.
 */
#define TAP_RECORD(type, ev) ((type *)tap_task_start(tap_reserve(sizeof(type)), ev))

#endif /* SHADOWD_TAPS_BPF_H */
