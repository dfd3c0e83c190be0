// SPDX-License-Identifier: GPL-2.0-only
/*
 * The sound class's taps of bpf/sound-class.bt as one CO-RE object for
 * libbpf (taps-loader): the same sixteen events, from the same functions of
 * the ALSA core (modules snd and snd_pcm), with the same fields. See
 * bpf/sound-class.bt for what each event means.
 *
 * FENTRY AND FEXIT, NO PER-THREAD MAPS. Every function the .bt probes is in
 * its module's BTF, with the same prototype, in both guest kernels (6.1.0-57
 * and 6.12.118: checked with bpftool on their snd.ko and snd-pcm.ko, see
 * bpf/libbpf/README.md), so each probe is an fentry, or an fexit where the
 * .bt has a kretprobe: an fexit sees the function's arguments beside its
 * return value, so the .bt's @maps (arguments kept by tid from the kprobe
 * for the kretprobe) have no counterpart here. libbpf finds a module
 * function in the module's BTF at load time (/sys/kernel/btf/snd_pcm: the
 * modules must be loaded first, as the daemon's tapModules are).
 *
 * CO-RE ON MODULE TYPES. vmlinux.h has no sound type (CONFIG_SND=m), so the
 * few fields read are declared below, in the kernel's names with a
 * ___sd flavour and preserve_access_index: libbpf relocates each read
 * against the loaded modules' BTF (struct snd_card is in several modules'
 * BTF, identically). The offsets are the same in 6.1 and 6.12 but for
 * struct file's f_path (vmlinux, moved by 6.12), and none of these fields
 * has moved since Linux 2.6; the uapi structs (snd_pcm_hw_params,
 * snd_pcm_sw_params, snd_ctl_elem_id) are an ABI.
 *
 * Each program fills the struct its event names in taps-event.h; a read
 * that fails (a NULL pointer) leaves 0, as bpftrace's reads do.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "taps-bpf.h"

char LICENSE[] SEC("license") = "GPL";

/* include/uapi/sound/asound.h */
#define SNDRV_PCM_IOCTL_HW_FREE 0x4112
#define SNDRV_CTL_EVENT_MASK_VALUE 1
/* snd_pcm_hw_params's masks[] and intervals[]: SNDRV_PCM_HW_PARAM_* less the first of their kind */
#define HW_MASK_ACCESS 0
#define HW_MASK_FORMAT 1
#define HW_INTERVAL_CHANNELS 2
#define HW_INTERVAL_RATE 3
#define HW_INTERVAL_PERIOD_SIZE 5
#define HW_INTERVAL_PERIODS 7
#define HW_INTERVAL_BUFFER_SIZE 9

/* include/uapi/asm-generic/errno-base.h */
#define SOUND_EIO 5

struct snd_card___sd {
	int number;
} __attribute__((preserve_access_index));

struct snd_pcm___sd {
	struct snd_card___sd *card;
	int device;
} __attribute__((preserve_access_index));

struct snd_pcm_substream___sd {
	struct snd_pcm___sd *pcm;
	int number;
	int stream;
} __attribute__((preserve_access_index));

struct snd_mask___sd {
	__u32 bits[8];
} __attribute__((preserve_access_index));

struct snd_interval___sd {
	unsigned int min;
} __attribute__((preserve_access_index));

struct snd_pcm_hw_params___sd {
	struct snd_mask___sd masks[3];
	struct snd_interval___sd intervals[12];
} __attribute__((preserve_access_index));

struct snd_pcm_sw_params___sd {
	int tstamp_mode;
	unsigned long avail_min;
	unsigned long start_threshold;
	unsigned long stop_threshold;
	unsigned long silence_threshold;
	unsigned long silence_size;
} __attribute__((preserve_access_index));

struct snd_ctl_elem_id___sd {
	unsigned int numid;
	int iface;
	unsigned int device;
	unsigned int subdevice;
	unsigned int index;
} __attribute__((preserve_access_index));

/* Its head is the element's id. */
struct snd_ctl_elem_value___sd {
	struct snd_ctl_elem_id___sd id;
} __attribute__((preserve_access_index));

static __always_inline void tap_pcm_of(struct tap_pcm *pcm, struct snd_pcm_substream___sd *s)
{
	pcm->card = BPF_CORE_READ(s, pcm, card, number);
	pcm->dev = BPF_CORE_READ(s, pcm, device);
	pcm->stream = BPF_CORE_READ(s, stream);
	pcm->sub = BPF_CORE_READ(s, number);
}

/* A PCM event: the substream, and the int its line prints (ret, state or push), if any. */
static __always_inline void tap_pcm_event(__u32 ev, struct snd_pcm_substream___sd *s, int value)
{
	struct tap_pcm_event *e = TAP_RECORD(struct tap_pcm_event, ev);

	if (!e)
		return;
	tap_pcm_of(&e->pcm, s);
	e->value = value;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
}

static __always_inline void tap_card_event(__u32 ev, struct snd_card___sd *card, int ret)
{
	struct tap_card_event *e = TAP_RECORD(struct tap_card_event, ev);

	if (!e)
		return;
	e->card = BPF_CORE_READ(card, number);
	e->ret = ret;
	bpf_ringbuf_submit(e, 0);
}

/*
 * ev=pcm_open: printed only when the open succeeded; *rsubstream (argument
 * 3) is the substream opened. The verifier takes no pointer to a pointer
 * from an fexit's context, so that argument is read with bpf_get_func_arg(),
 * as a number.
 */
SEC("fexit/snd_pcm_open_substream")
int BPF_PROG(pcm_open, struct snd_pcm___sd *pcm, int stream, struct file *file, void *rsubstream,
	     int ret)
{
	struct snd_pcm_substream___sd *s = NULL;
	__u64 arg = 0;

	if (ret != 0 || bpf_get_func_arg(ctx, 3, &arg))
		return 0;
	bpf_probe_read_kernel(&s, sizeof(s), (void *)arg);
	tap_pcm_event(TAP_EV_PCM_OPEN, s, ret);
	return 0;
}

SEC("fentry/snd_pcm_detach_substream")
int BPF_PROG(pcm_close, struct snd_pcm_substream___sd *s)
{
	tap_pcm_event(TAP_EV_PCM_CLOSE, s, 0);
	return 0;
}

/* ev=pcm_hw_params: the parameters as the call left them (the refined ones when ret=0). */
SEC("fexit/snd_pcm_hw_params")
int BPF_PROG(pcm_hw_params, struct snd_pcm_substream___sd *s,
	     struct snd_pcm_hw_params___sd *params, int ret)
{
	struct tap_pcm_hw_params *e = TAP_RECORD(struct tap_pcm_hw_params, TAP_EV_PCM_HW_PARAMS);

	if (!e)
		return 0;
	tap_pcm_of(&e->pcm, s);
	e->access = BPF_CORE_READ(params, masks[HW_MASK_ACCESS].bits[0]);
	e->format0 = BPF_CORE_READ(params, masks[HW_MASK_FORMAT].bits[0]);
	e->format1 = BPF_CORE_READ(params, masks[HW_MASK_FORMAT].bits[1]);
	e->channels = BPF_CORE_READ(params, intervals[HW_INTERVAL_CHANNELS].min);
	e->rate = BPF_CORE_READ(params, intervals[HW_INTERVAL_RATE].min);
	e->period_size = BPF_CORE_READ(params, intervals[HW_INTERVAL_PERIOD_SIZE].min);
	e->periods = BPF_CORE_READ(params, intervals[HW_INTERVAL_PERIODS].min);
	e->buffer_size = BPF_CORE_READ(params, intervals[HW_INTERVAL_BUFFER_SIZE].min);
	e->ret = ret;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("fexit/snd_pcm_sw_params")
int BPF_PROG(pcm_sw_params, struct snd_pcm_substream___sd *s,
	     struct snd_pcm_sw_params___sd *params, int ret)
{
	struct tap_pcm_sw_params *e = TAP_RECORD(struct tap_pcm_sw_params, TAP_EV_PCM_SW_PARAMS);

	if (!e)
		return 0;
	tap_pcm_of(&e->pcm, s);
	e->tstamp_mode = BPF_CORE_READ(params, tstamp_mode);
	e->ret = ret;
	e->avail_min = BPF_CORE_READ(params, avail_min);
	e->start_threshold = BPF_CORE_READ(params, start_threshold);
	e->stop_threshold = BPF_CORE_READ(params, stop_threshold);
	e->silence_threshold = BPF_CORE_READ(params, silence_threshold);
	e->silence_size = BPF_CORE_READ(params, silence_size);
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* The core's post-action functions run only when the action succeeded. */
SEC("fentry/snd_pcm_post_prepare")
int BPF_PROG(pcm_prepare, struct snd_pcm_substream___sd *s, int state)
{
	tap_pcm_event(TAP_EV_PCM_PREPARE, s, 0);
	return 0;
}

SEC("fentry/snd_pcm_post_start")
int BPF_PROG(pcm_start, struct snd_pcm_substream___sd *s, int state)
{
	tap_pcm_event(TAP_EV_PCM_START, s, state);
	return 0;
}

SEC("fentry/snd_pcm_post_stop")
int BPF_PROG(pcm_stop, struct snd_pcm_substream___sd *s, int state)
{
	tap_pcm_event(TAP_EV_PCM_STOP, s, state);
	return 0;
}

SEC("fentry/snd_pcm_drain")
int BPF_PROG(pcm_drain, struct snd_pcm_substream___sd *s, struct file *file)
{
	tap_pcm_event(TAP_EV_PCM_DRAIN, s, 0);
	return 0;
}

/* ev=pcm_drain_failed: the core gave up waiting for the draining stream (-EIO). */
SEC("fexit/snd_pcm_drain")
int BPF_PROG(pcm_drain_failed, struct snd_pcm_substream___sd *s, struct file *file, int ret)
{
	if (ret == -SOUND_EIO)
		tap_pcm_event(TAP_EV_PCM_DRAIN_FAILED, s, ret);
	return 0;
}

/* The post-action's state argument is the pause's push. */
SEC("fentry/snd_pcm_post_pause")
int BPF_PROG(pcm_pause, struct snd_pcm_substream___sd *s, int push)
{
	tap_pcm_event(TAP_EV_PCM_PAUSE, s, push ? 1 : 0);
	return 0;
}

/* Every PCM ioctl passes here; only HW_FREE is printed (snd_pcm_hw_free is inlined). */
SEC("fentry/snd_pcm_common_ioctl")
int BPF_PROG(pcm_hw_free, struct file *file, struct snd_pcm_substream___sd *s, unsigned int cmd,
	     void *arg)
{
	if (cmd == SNDRV_PCM_IOCTL_HW_FREE)
		tap_pcm_event(TAP_EV_PCM_HW_FREE, s, 0);
	return 0;
}

/* ev=ctl_write: the element's id as the core left it (numid filled in for a write by name). */
SEC("fexit/snd_ctl_elem_write")
int BPF_PROG(ctl_write, struct snd_card___sd *card, void *file,
	     struct snd_ctl_elem_value___sd *control, int ret)
{
	struct tap_ctl_write *e = TAP_RECORD(struct tap_ctl_write, TAP_EV_CTL_WRITE);

	if (!e)
		return 0;
	e->card = BPF_CORE_READ(card, number);
	e->numid = BPF_CORE_READ(control, id.numid);
	e->iface = BPF_CORE_READ(control, id.iface);
	e->dev = BPF_CORE_READ(control, id.device);
	e->sub = BPF_CORE_READ(control, id.subdevice);
	e->index = BPF_CORE_READ(control, id.index);
	e->ret = ret;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

/* ev=ctl_notify: only a value's change (SNDRV_CTL_EVENT_MASK_VALUE). */
SEC("fentry/snd_ctl_notify")
int BPF_PROG(ctl_notify, struct snd_card___sd *card, unsigned int mask,
	     struct snd_ctl_elem_id___sd *id)
{
	struct tap_ctl_notify *e;

	if (!(mask & SNDRV_CTL_EVENT_MASK_VALUE))
		return 0;
	e = TAP_RECORD(struct tap_ctl_notify, TAP_EV_CTL_NOTIFY);
	if (!e)
		return 0;
	e->card = BPF_CORE_READ(card, number);
	e->numid = BPF_CORE_READ(id, numid);
	e->mask = mask;
	e->pad = 0;
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("fexit/snd_card_register")
int BPF_PROG(card_register, struct snd_card___sd *card, int ret)
{
	tap_card_event(TAP_EV_CARD_REGISTER, card, ret);
	return 0;
}

SEC("fentry/snd_card_disconnect")
int BPF_PROG(card_disconnect, struct snd_card___sd *card)
{
	tap_card_event(TAP_EV_CARD_DISCONNECT, card, 0);
	return 0;
}

/* A kernel name into a record's field: empty where unreadable, as str(). */
static __always_inline void tap_name(char *field, const unsigned char *src)
{
	if (bpf_probe_read_kernel_str(field, TAP_STR_LEN, src) < 0)
		field[0] = '\0';
}

/* ev=info_write: only a refused write (the sync marker's, to /proc/asound/version). */
SEC("fexit/snd_info_text_entry_write")
int BPF_PROG(info_write, struct file *file, const char *buffer, size_t count, loff_t *offset,
	     ssize_t ret)
{
	struct dentry *dentry = BPF_CORE_READ(file, f_path.dentry);
	struct tap_info_write *e;

	if (ret >= 0)
		return 0;
	e = TAP_RECORD(struct tap_info_write, TAP_EV_INFO_WRITE);
	if (!e)
		return 0;
	tap_name(e->attr, BPF_CORE_READ(dentry, d_name.name));
	tap_name(e->parent, BPF_CORE_READ(dentry, d_parent, d_name.name));
	e->ret = ret;
	bpf_ringbuf_submit(e, 0);
	return 0;
}
