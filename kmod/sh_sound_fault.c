// SPDX-License-Identifier: GPL-2.0
/*
 * Fault injection for the sound class, for tests (allow_faults=1):
 *
 *  lost-irq      the card's interrupts are silenced (sh_irq.c), and its
 *                streams' positions, asked from an interrupt, do not move:
 *                on a line other devices share the driver's handler still
 *                runs on their interrupts and would find the card's period
 *                done; read from a task (a status read) they move as the
 *                DMA goes on, as on hardware that lost its interrupt;
 *  fail-stop     the driver stops answering: every stream's position stays
 *                where it was, and starting, preparing or configuring a
 *                stream fails with -EIO;
 *  fail-prepare  one entry point fails: preparing a stream fails with -EIO.
 *
 * The PCM entry points are replaced per substream by a copy of the driver's
 * ops with the faulty ones swapped in, so that every entry point the driver
 * left out stays absent (the core behaves differently without them). A
 * fault is lifted under the class's lock; the replacements look the
 * driver's ops up under RCU, and fall back to the driver's own copy of the
 * substream's ops if the record is already gone.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/preempt.h>
#include <linux/rcupdate.h>
#include <linux/string.h>

#include "sh_sound.h"

static const char *const sh_sound_faults[SH_SOUND_FAULT_COUNT] = {
	[SH_SOUND_FAULT_NONE] = "clear",
	[SH_SOUND_FAULT_LOST_IRQ] = "lost-irq",
	[SH_SOUND_FAULT_FAIL_STOP] = "fail-stop",
	[SH_SOUND_FAULT_FAIL_PREPARE] = "fail-prepare",
};

int sh_sound_fault_parse(const char *name, unsigned int *fault)
{
	int i = match_string(sh_sound_faults, SH_SOUND_FAULT_COUNT, name);

	if (i < 0)
		return -EINVAL;
	*fault = i;
	return 0;
}

const char *sh_sound_fault_name(unsigned int fault)
{
	return fault < SH_SOUND_FAULT_COUNT ? sh_sound_faults[fault] : "?";
}

static snd_pcm_uframes_t sh_frozen_pointer(struct snd_pcm_substream *ss)
{
	struct snd_pcm_runtime *runtime = ss->runtime;

	if (!runtime || !runtime->buffer_size)
		return 0;
	return runtime->status->hw_ptr % runtime->buffer_size;
}

/*
 * The driver's own ops of @ss, or NULL once its record is gone: they stay
 * valid outside RCU, as the sound core pins the driver while @ss is open.
 */
static const struct snd_pcm_ops *sh_real_ops(struct snd_pcm_substream *ss)
{
	const struct snd_pcm_ops *real = NULL;
	struct sh_sound_sub *sub;

	rcu_read_lock();
	sub = sh_sound_sub_find(ss);
	if (sub)
		real = sub->real;
	rcu_read_unlock();
	return real;
}

/* The position as the interrupt path sees it under lost-irq: unchanged. */
static snd_pcm_uframes_t sh_unheard_pointer(struct snd_pcm_substream *ss)
{
	const struct snd_pcm_ops *real;

	if (in_hardirq() || in_serving_softirq())
		return sh_frozen_pointer(ss);
	real = sh_real_ops(ss);
	return real && real->pointer ? real->pointer(ss) : sh_frozen_pointer(ss);
}

static int sh_failing_prepare(struct snd_pcm_substream *ss)
{
	return -EIO;
}

static int sh_failing_hw_params(struct snd_pcm_substream *ss,
				struct snd_pcm_hw_params *params)
{
	return -EIO;
}

/* A stopped driver does not start; stopping it still reaches the driver. */
static int sh_failing_trigger(struct snd_pcm_substream *ss, int cmd)
{
	const struct snd_pcm_ops *real;

	if (sh_trigger_starts(cmd))
		return -EIO;
	real = sh_real_ops(ss);
	return real && real->trigger ? real->trigger(ss, cmd) : -EIO;
}

/* The fault layer of @sub: the driver's ops with the faulty ones in. */
void sh_sound_fault_fill(struct sh_sound_sub *sub, unsigned int fault)
{
	sub->fault_ops.rw = *sub->real;
	if (fault == SH_SOUND_FAULT_LOST_IRQ) {
		if (sub->real->pointer)
			sub->fault_ops.rw.pointer = sh_unheard_pointer;
		return;
	}
	sub->fault_ops.rw.prepare = sh_failing_prepare;
	if (fault != SH_SOUND_FAULT_FAIL_STOP)
		return;
	sub->fault_ops.rw.hw_params = sh_failing_hw_params;
	sub->fault_ops.rw.trigger = sh_failing_trigger;
	sub->fault_ops.rw.pointer = sh_frozen_pointer;
}

/* Under the lock: the fault's effect undone (a sticky fault stays recorded). */
void sh_sound_fault_lift(struct sh_dev *sd)
{
	struct sh_sound_dev *snd = sh_sound(sd);

	sh_sound_ops_set(snd, SH_FAULT_NONE, snd->hold_ms > 0);
	sh_irq_restore(&snd->irq);
}

void sh_sound_fault_clear(struct sh_dev *sd)
{
	sh_sound_fault_lift(sd);
	sd->fault = SH_FAULT_NONE;
	sd->fault_sticky = false;
}

int sh_sound_fault_apply(struct sh_dev *sd, unsigned int fault, char *msg,
			 size_t len)
{
	struct sh_sound_dev *snd = sh_sound(sd);
	int err;

	if (sd->state != SH_PASSIVE) {
		scnprintf(msg, len, "sound:%s is %s: no fault until it is back",
			  dev_name(sd->cdev), sh_state_name(sd->state));
		return -EBUSY;
	}
	sh_sound_fault_lift(sd);
	err = fault == SH_SOUND_FAULT_LOST_IRQ ?
		sh_irq_silence(sd->bus, &snd->irq, msg, len) : 0;
	if (!err) {
		err = sh_sound_ops_set(snd, fault, snd->hold_ms > 0);
		if (err) {
			sh_irq_restore(&snd->irq);
			scnprintf(msg, len, "sound:%s has more than %d substreams",
				  dev_name(sd->cdev), SH_SOUND_SUBS);
		}
	}
	if (err) {
		sd->fault = SH_FAULT_NONE;
		sd->fault_sticky = false;
		return err;
	}
	sd->fault = fault;
	pr_info("sound:%s: fault %s injected\n", dev_name(sd->cdev),
		sh_sound_fault_name(fault));
	return 0;
}
