// SPDX-License-Identifier: GPL-2.0
/*
 * The PCM entry points the helper puts between the sound core and a card's
 * driver, per substream, in two layers over the driver's own ops:
 *
 *  fault  (tests) a copy of the driver's ops with the faulty entry points
 *         swapped in (sh_sound_fault.c);
 *  guard  while the daemon holds the card (`hold`): a copy of the layer
 *         below with prepare(), hw_params() and trigger() wrapped. A
 *         prepare or hw_params the driver fails with EIO or ETIMEDOUT is
 *         reported in the kernel log (the daemon's cue to restart the
 *         card) and its caller waits, up to the hold, for the restart to
 *         end; then the call is made again, into the restarted driver, and
 *         the application never sees the failure. trigger() runs under the
 *         stream's lock, where nothing may wait: a start the driver fails
 *         so is reported the same way and taken as done, the stream
 *         running with its position still, as a stalled stream's, until
 *         the restart's stop and replay take it as they take any running
 *         stream. hw_free() is not wrapped: the core frees the buffer and
 *         makes the stream OPEN whatever the driver answers, and closing a
 *         stream calls it under the PCM's open mutex, which the restart's
 *         stop takes.
 *
 * Copies keep every entry point the driver left out absent (the core
 * behaves differently without them), but for the guard's two, which then
 * do what the core does without them: nothing. Layers change under the
 * class's lock; the wrappers find their substream's entry under RCU and
 * call the driver outside it (its code stays: the sound core pins the
 * module while the substream is open). A caller waiting in the guard
 * sleeps on state of its own (its stack, the card's number), never on the
 * record, which goes with its card.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/jiffies.h>
#include <linux/list.h>
#include <linux/rcupdate.h>
#include <linux/spinlock.h>
#include <linux/wait.h>

#include "sh_sound.h"

/* Restarts ended, per card number: what a waiting guard watches. */
static atomic_t sh_card_restarts[SNDRV_CARDS];
static DECLARE_WAIT_QUEUE_HEAD(sh_restart_wait);

/* The entry points the guard holds for a restart. */
enum sh_entry {
	SH_ENTRY_PREPARE,
	SH_ENTRY_HW_PARAMS,
	SH_ENTRY_TRIGGER,
};

static const char *const sh_entry_names[] = {
	[SH_ENTRY_PREPARE] = "prepare",
	[SH_ENTRY_HW_PARAMS] = "hw_params",
	[SH_ENTRY_TRIGGER] = "trigger",
};

/*
 * A call through the guard: the entry point and its arguments, on its
 * caller's stack; listed while it waits, for the restart's stop to pass it
 * by.
 */
struct sh_guarded_call {
	struct list_head node;
	struct snd_pcm_substream *ss;
	enum sh_entry entry;
	struct snd_pcm_hw_params *params;	/* hw_params' */
	int cmd;				/* trigger's */
};

static LIST_HEAD(sh_held_calls);
static DEFINE_SPINLOCK(sh_held_lock);

/* Under RCU: the substream's entry in @snd's table, or NULL. */
static struct sh_sound_sub *sh_sub_of(struct sh_sound_dev *snd,
				      struct snd_pcm_substream *ss)
{
	unsigned int i, n;

	/* Pairs with the release in sh_sub_add(): the entries are filled in. */
	n = smp_load_acquire(&snd->n_subs);
	for (i = 0; i < n; i++)
		if (snd->subs[i].ss == ss)
			return &snd->subs[i];
	return NULL;
}

/* Under RCU: the substream's entry in its card's record, or NULL. */
struct sh_sound_sub *sh_sound_sub_find(struct snd_pcm_substream *ss)
{
	struct sh_dev *sd = sh_dev_find(&ss->pcm->card->card_dev);

	return sd ? sh_sub_of(sh_sound(sd), ss) : NULL;
}

static const struct snd_pcm_ops *sh_below_guard(struct sh_sound_dev *snd,
						struct sh_sound_sub *sub)
{
	return snd->ops_fault != SH_FAULT_NONE ? &sub->fault_ops.ro : sub->real;
}

/* A failure the driver may get over by a restart. */
static bool sh_entry_failed(int err)
{
	return err == -EIO || err == -ETIMEDOUT;
}

static int sh_guard_prepare(struct snd_pcm_substream *ss);
static int sh_guard_hw_params(struct snd_pcm_substream *ss,
			      struct snd_pcm_hw_params *params);
static int sh_guard_trigger(struct snd_pcm_substream *ss, int cmd);

/*
 * @call's entry point in @ops. One left out is done, as the core has it;
 * the guard's own, found while the layers change, is not called again.
 */
static int sh_entry_call(const struct snd_pcm_ops *ops,
			 struct sh_guarded_call *call)
{
	if (call->entry == SH_ENTRY_TRIGGER) {
		if (!ops->trigger || ops->trigger == sh_guard_trigger)
			return 0;
		return ops->trigger(call->ss, call->cmd);
	}
	if (call->entry == SH_ENTRY_HW_PARAMS) {
		if (!ops->hw_params || ops->hw_params == sh_guard_hw_params)
			return 0;
		return ops->hw_params(call->ss, call->params);
	}
	if (!ops->prepare || ops->prepare == sh_guard_prepare)
		return 0;
	return ops->prepare(call->ss);
}

/*
 * Calls the layer under the guard; @hold_ms is the card's hold, 0 if none.
 * The layer is copied under RCU (its record may go with its card) and
 * called outside it.
 */
static int sh_guard_call_below(struct sh_guarded_call *call,
			       unsigned int *hold_ms)
{
	struct snd_pcm_substream *ss = call->ss;
	union sh_pcm_ops_copy below;
	struct sh_sound_sub *sub;
	struct sh_dev *sd;

	*hold_ms = 0;
	rcu_read_lock();
	sd = sh_dev_find(&ss->pcm->card->card_dev);
	sub = sd ? sh_sub_of(sh_sound(sd), ss) : NULL;
	if (!sub) {
		/*
		 * The guard is gone: the substream's ops are the driver's, unless
		 * the layers were set again since the look-up (a guard copy is
		 * installed only once the table is full): then look again.
		 */
		below.rw = *READ_ONCE(ss->ops);
		if (sd && (below.ro.prepare == sh_guard_prepare ||
			   below.ro.trigger == sh_guard_trigger))
			sub = sh_sub_of(sh_sound(sd), ss);
	}
	if (sub) {
		below.rw = *sh_below_guard(sh_sound(sd), sub);
		*hold_ms = READ_ONCE(sh_sound(sd)->hold_ms);
	}
	rcu_read_unlock();
	return sh_entry_call(&below.ro, call);
}

/*
 * The guard, for every entry point it wraps: a call the driver fails with
 * EIO or ETIMEDOUT is reported and waits, up to the card's hold, for a
 * restart of the card to end, then is made again, once, into the restarted
 * driver. The caller keeps what the sound core holds around the call (the
 * runtime's buffer mutex), which the restart's stop would wait for: listed
 * here, it is passed by (sh_sound_guard_holds()).
 */
static int sh_guard(struct sh_guarded_call *call)
{
	struct snd_pcm_substream *ss = call->ss;
	int card = ss->pcm->card->number;
	unsigned int hold_ms;
	long left;
	int gen, err;

	gen = atomic_read(&sh_card_restarts[card]);
	err = sh_guard_call_below(call, &hold_ms);
	if (!sh_entry_failed(err) || !hold_ms)
		return err;
	pr_warn_ratelimited("sound:card%d: %s of pcmC%dD%d%c failed: error %d; the caller waits up to %u ms for a restart\n",
			    card, sh_entry_names[call->entry], card,
			    ss->pcm->device,
			    ss->stream == SNDRV_PCM_STREAM_PLAYBACK ? 'p' : 'c',
			    err, hold_ms);
	spin_lock(&sh_held_lock);
	list_add(&call->node, &sh_held_calls);
	spin_unlock(&sh_held_lock);
	left = wait_event_interruptible_timeout(sh_restart_wait,
						atomic_read(&sh_card_restarts[card]) != gen,
						msecs_to_jiffies(hold_ms));
	spin_lock(&sh_held_lock);
	list_del(&call->node);
	spin_unlock(&sh_held_lock);
	if (left <= 0)
		return err;
	return sh_guard_call_below(call, &hold_ms);
}

static int sh_guard_prepare(struct snd_pcm_substream *ss)
{
	struct sh_guarded_call call = {
		.ss = ss,
		.entry = SH_ENTRY_PREPARE,
	};

	return sh_guard(&call);
}

/*
 * The sound core calls hw_params with the runtime's buffer mutex held, the
 * stream OPEN, SETUP or PREPARED and not mapped (but by OSS emulation),
 * @params chosen and a managed buffer allocated for them; it sets the runtime from @params only
 * once this returns 0, and on an error makes the stream OPEN, calls
 * hw_free and frees the buffer. Held here, the stream is left alone by the
 * restart (the driver's suspend skips an OPEN or SETUP stream and makes a
 * PREPARED one SUSPENDED, which the core's SETUP or OPEN then replaces),
 * and the call made again is the first one, as the core allows hw_params
 * twice without hw_free between.
 */
static int sh_guard_hw_params(struct snd_pcm_substream *ss,
			      struct snd_pcm_hw_params *params)
{
	struct sh_guarded_call call = {
		.ss = ss,
		.entry = SH_ENTRY_HW_PARAMS,
		.params = params,
	};

	return sh_guard(&call);
}

/*
 * Whether a stream taken as started with its driver failed still ends, if
 * no restart comes: one read or written with read()/write() and woken by
 * period interrupts, whose reader or writer the kernel fails with EIO once
 * the hold's wait is out. An mmap stream, or one without period wake-ups
 * (a sound server's), would never see its position move nor an error.
 */
static bool sh_start_may_wait(struct snd_pcm_substream *ss)
{
	struct snd_pcm_runtime *runtime = ss->runtime;

	return runtime && !runtime->no_period_wakeup &&
	       (runtime->access == SNDRV_PCM_ACCESS_RW_INTERLEAVED ||
		runtime->access == SNDRV_PCM_ACCESS_RW_NONINTERLEAVED);
}

/*
 * The core calls trigger with the stream's lock held (interrupts off for
 * most drivers), and puts the stream back as it was if a start fails: the
 * application's write or start then fails with the driver's error. Held, a
 * start the driver fails with EIO or ETIMEDOUT on a stream whose writer or
 * reader waits (sh_start_may_wait) is reported as the guard's other calls
 * are and taken as done instead: the stream runs with its position still,
 * as a stalled one's, and the card's restart (its stop pauses or stops the
 * stream, its replay prepares it again) ends the gap; without a restart,
 * the kernel fails the wait once the hold is out. Stops and pauses go to
 * the driver as they are.
 */
static int sh_guard_trigger(struct snd_pcm_substream *ss, int cmd)
{
	struct sh_guarded_call call = {
		.ss = ss,
		.entry = SH_ENTRY_TRIGGER,
		.cmd = cmd,
	};
	int card = ss->pcm->card->number;
	unsigned int hold_ms;
	int err;

	err = sh_guard_call_below(&call, &hold_ms);
	if (!sh_trigger_starts(cmd) || !sh_entry_failed(err) || !hold_ms ||
	    !sh_start_may_wait(ss))
		return err;
	pr_warn_ratelimited("sound:card%d: trigger of pcmC%dD%d%c failed: error %d; the stream waits up to %u ms for a restart\n",
			    card, card, ss->pcm->device,
			    ss->stream == SNDRV_PCM_STREAM_PLAYBACK ? 'p' : 'c',
			    err, hold_ms);
	return 0;
}

/* Whether a caller of @ss waits in the guard (holding the stream's mutexes). */
bool sh_sound_guard_holds(struct snd_pcm_substream *ss)
{
	struct sh_guarded_call *call;
	bool held = false;

	spin_lock(&sh_held_lock);
	list_for_each_entry(call, &sh_held_calls, node)
		held |= call->ss == ss;
	spin_unlock(&sh_held_lock);
	return held;
}

/* A restart of @card ended: its waiting callers make their calls again. */
void sh_sound_restarted(struct snd_card *card)
{
	atomic_inc(&sh_card_restarts[card->number]);
	wake_up_all(&sh_restart_wait);
}

static int sh_sub_add(struct snd_pcm_substream *ss, void *data)
{
	struct sh_sound_dev *snd = data;
	struct sh_sound_sub *sub;

	if (!ss->ops)
		return 0;
	if (snd->n_subs == SH_SOUND_SUBS)
		return -E2BIG;
	sub = &snd->subs[snd->n_subs];
	sub->ss = ss;
	sub->real = ss->ops;
	/* Readers find the entry before the core calls through it. */
	smp_store_release(&snd->n_subs, snd->n_subs + 1);
	return 0;
}

/* Every substream back on the driver's ops; the table emptied. */
static void sh_ops_restore(struct sh_sound_dev *snd)
{
	unsigned int i;

	if (!snd->n_subs)
		return;
	for (i = 0; i < snd->n_subs; i++)
		WRITE_ONCE(snd->subs[i].ss->ops, snd->subs[i].real);
	/* Wrappers that read the table finish before it changes. */
	synchronize_rcu();
	/* Pairs with the acquire in sh_sub_of(). */
	smp_store_release(&snd->n_subs, 0);
	synchronize_rcu();
}

/*
 * Under the lock: the card's substreams get the layers asked for (fault
 * SH_FAULT_NONE and no guard: the driver's own ops). -E2BIG, with the
 * driver's ops back, when the card has more substreams than a record holds.
 */
int sh_sound_ops_set(struct sh_sound_dev *snd, unsigned int fault,
		     bool guard)
{
	struct sh_sound_sub *sub;
	unsigned int i;
	int err;

	sh_ops_restore(snd);
	snd->ops_fault = SH_FAULT_NONE;
	snd->ops_guard = false;
	if (fault == SH_FAULT_NONE && !guard)
		return 0;
	err = sh_sound_walk_substreams(snd->card, sh_sub_add, snd);
	if (err) {
		sh_ops_restore(snd);
		return err;
	}
	snd->ops_fault = fault;
	snd->ops_guard = guard;
	for (i = 0; i < snd->n_subs; i++) {
		sub = &snd->subs[i];
		if (fault != SH_FAULT_NONE)
			sh_sound_fault_fill(sub, fault);
		if (guard) {
			sub->guard_ops.rw = *sh_below_guard(snd, sub);
			sub->guard_ops.rw.prepare = sh_guard_prepare;
			sub->guard_ops.rw.hw_params = sh_guard_hw_params;
			if (sub->guard_ops.rw.trigger)
				sub->guard_ops.rw.trigger = sh_guard_trigger;
		}
		WRITE_ONCE(sub->ss->ops, guard ? &sub->guard_ops.ro :
			   sh_below_guard(snd, sub));
	}
	return 0;
}
