// SPDX-License-Identifier: GPL-2.0-only
/*
 * The disk class's taps of bpf/block-class.bt as one CO-RE object for
 * libbpf (taps-loader), built once against the BTF of the oldest guest
 * kernel (6.1) and loaded unchanged on later ones: every field is read
 * through a CO-RE relocation, which libbpf fixes up against the running
 * kernel's BTF (struct kernfs_node's priv sits 8 bytes further in 6.12,
 * and its parent is named __parent from 6.15 on).
 *
 * Each program fills one struct tap_event (taps-event.h) with the fields its
 * bpftrace probe prints, in the same order:
 *   ev=sysfs_write: str attr, kobj, parent, grandparent; num ret, len, v0, v1
 *   ev=disk_add: str name; num major, minor, ret
 *   ev=disk_del: str name; num major, minor
 * and the loader prints it as the same line. See bpf/block-class.bt for
 * what each event means.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "taps-bpf.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * struct kernfs_node's parent, as named up to 6.14 and from 6.15 on (RCU
 * managed, renamed): both spelled here, so that the object builds against
 * either kernel's vmlinux.h and reads whichever the running kernel has.
 */
struct kernfs_node___plain_parent {
	struct kernfs_node *parent;
} __attribute__((preserve_access_index));

struct kernfs_node___rcu_parent {
	struct kernfs_node *__parent;
} __attribute__((preserve_access_index));

static __always_inline struct kernfs_node *kn_parent(struct kernfs_node *kn)
{
	struct kernfs_node___rcu_parent *renamed = (void *)kn;
	struct kernfs_node___plain_parent *plain = (void *)kn;

	if (bpf_core_field_exists(renamed->__parent))
		return BPF_CORE_READ(renamed, __parent);
	return BPF_CORE_READ(plain, parent);
}

/*
 * A record with the fields every event has (the task, the time), or NULL
 * when the ring buffer is full: the loss is counted, and the loader says
 * so as bpftrace does.
 */
static __always_inline struct tap_event *tap_start(__u32 ev)
{
	struct tap_event *e = tap_reserve(sizeof(*e));
	int i;

	if (!e)
		return NULL;
	tap_identify((struct tap_head *)e, ev, e->comm);
	for (i = 0; i < TAP_NUMS; i++)
		e->num[i] = 0;
	for (i = 0; i < TAP_STRS; i++)
		e->str[i][0] = '\0';
	return e;
}

/* A kernel string into a record's field: empty where unreadable (a NULL pointer), as str(). */
static __always_inline void tap_str(struct tap_event *e, int field, const char *src)
{
	if (bpf_probe_read_kernel_str(e->str[field], TAP_STR_LEN, src) < 0)
		e->str[field][0] = '\0';
}

static __always_inline void tap_disk(struct tap_event *e, struct gendisk *disk)
{
	tap_str(e, 0, disk->disk_name);
	e->num[0] = BPF_CORE_READ(disk, major);
	e->num[1] = BPF_CORE_READ(disk, first_minor);
}

/*
 * The bytes written: their count (num[1]) and the first 16 (num[2], num[3],
 * little-endian), those past the count zero. Read and masked as the .bt
 * does (two 8-byte reads; kernfs's buffer holds at least count + 1 bytes,
 * what lies past the count is masked off), so that both print the same.
 */
static __always_inline __u64 tap_mask(__s64 bytes)
{
	if (bytes >= 8)
		return ~0ULL;
	return bytes <= 0 ? 0 : (1ULL << (bytes * 8)) - 1;
}

static __always_inline void tap_written(struct tap_event *e, const char *buf, size_t count)
{
	__u64 v0 = 0, v1 = 0;

	bpf_probe_read_kernel(&v0, sizeof(v0), buf);
	bpf_probe_read_kernel(&v1, sizeof(v1), buf + sizeof(v0));
	e->num[1] = count;
	e->num[2] = v0 & tap_mask(count);
	e->num[3] = v1 & tap_mask((__s64)count - 8);
}

SEC("fexit/sysfs_kf_write")
int BPF_PROG(sysfs_write, struct kernfs_open_file *of, char *buf, size_t count,
	     loff_t pos, ssize_t ret)
{
	struct kernfs_node *kn = BPF_CORE_READ(of, kn);
	struct kernfs_node *dir = kn_parent(kn);
	struct kobject *kobj = BPF_CORE_READ(dir, priv);
	struct tap_event *e = tap_start(TAP_EV_SYSFS_WRITE);

	if (!e)
		return 0;
	tap_str(e, 0, BPF_CORE_READ(kn, name));
	tap_str(e, 1, BPF_CORE_READ(kobj, name));
	tap_str(e, 2, BPF_CORE_READ(kobj, parent, name));
	tap_str(e, 3, BPF_CORE_READ(kobj, parent, parent, name));
	e->num[0] = ret;
	tap_written(e, buf, count);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("fexit/device_add_disk")
int BPF_PROG(disk_add, struct device *parent, struct gendisk *disk,
	     const struct attribute_group **groups, int ret)
{
	struct tap_event *e = tap_start(TAP_EV_DISK_ADD);

	if (!e)
		return 0;
	tap_disk(e, disk);
	e->num[2] = ret;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("fentry/del_gendisk")
int BPF_PROG(disk_del, struct gendisk *disk)
{
	struct tap_event *e = tap_start(TAP_EV_DISK_DEL);

	if (!e)
		return 0;
	tap_disk(e, disk);
	bpf_ringbuf_submit(e, 0);
	return 0;
}
