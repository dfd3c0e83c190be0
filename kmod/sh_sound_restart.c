// SPDX-License-Identifier: GPL-2.0
/*
 * The sound class's restart: the card's driver is restarted in place.
 *
 * Releasing a sound driver would close the card under every application
 * that holds it: the unbind waits until each PCM and control file is
 * closed, and the applications see their files fail (sound-facts.md). So
 * the card, its PCMs, its controls and the open files stay, and the driver
 * is re-initialised through its own power-management callbacks, the path a
 * system sleep takes with applications running:
 *
 *  stop       under the class's lock: the injected faults are lifted; the
 *             card's power gate closes (its state goes to D3hot, so every
 *             PCM ioctl and close now waits at the gate, as during a
 *             system sleep); calls already past the gate are waited for;
 *             a stream read or written with read()/write() that was running
 *             or prepared is paused (its reader or writer waits on in the
 *             kernel), any other live stream is stopped in an underrun
 *             (XRUN), which every ALSA application recovers from by
 *             preparing the stream again once the gate opens;
 *  reset      the driver's prepare/suspend of the unit and of every device
 *             under it (an HDA controller's codecs) in the order a system
 *             sleep takes, then resume/complete in the reverse order: the
 *             driver re-initialises its hardware and restores its mixer
 *             from its own register cache;
 *  replay     the gate opens (D0) if the driver did not open it; each paused
 *             stream is prepared again into the reset driver, reading as
 *             paused to its users until it is PREPARED, and its reader or
 *             writer woken, so its application sees only a gap (the audio
 *             queued when the driver failed).
 *
 * A driver without suspend and resume is refused before anything is
 * touched. A module reload is refused: the sound core pins a card's driver
 * module while any of its files is open. Parking leaves the card's streams
 * stopped and their entry points failing, so that applications see an
 * error instead of waiting at the gate forever.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/delay.h>
#include <linux/interrupt.h>
#include <linux/pm.h>
#include <linux/pm_runtime.h>

#include "sh_sound.h"

/* The unit and the devices under it, children first. */
#define SH_PM_DEVS	16

struct sh_pm_tree {
	unsigned int n;
	struct device *dev[SH_PM_DEVS];
};

static const struct dev_pm_ops *sh_pm_ops(struct device *dev)
{
	struct device_driver *drv = READ_ONCE(dev->driver);

	return drv ? drv->pm : NULL;
}

static int sh_pm_collect(struct device *dev, void *data)
{
	struct sh_pm_tree *tree = data;
	int err = device_for_each_child(dev, tree, sh_pm_collect);

	if (err)
		return err;
	if (!sh_pm_ops(dev))
		return 0;
	if (tree->n == SH_PM_DEVS)
		return -E2BIG;
	tree->dev[tree->n++] = get_device(dev);
	return 0;
}

static void sh_pm_tree_put(struct sh_pm_tree *tree)
{
	while (tree->n)
		put_device(tree->dev[--tree->n]);
}

int sh_sound_arm(struct sh_run *run)
{
	const struct dev_pm_ops *pm = sh_pm_ops(run->bus);
	struct sh_result *res = run->res;

	if (run->how == SH_RELOAD) {
		scnprintf(res->msg, sizeof(res->msg),
			  "a sound driver's module stays loaded while applications hold its cards: %s is restarted in place, not reloaded",
			  run->ref);
		return -EOPNOTSUPP;
	}
	if (run->how != SH_PARK && (!pm || !pm->suspend || !pm->resume)) {
		scnprintf(res->msg, sizeof(res->msg),
			  "the driver of %s has no suspend and resume to restart it in place, and releasing it would close every application's files",
			  run->ref);
		return -EOPNOTSUPP;
	}
	return 0;
}

void sh_sound_disarm(struct sh_run *run)
{
}

void sh_sound_set_phase(struct sh_run *run, enum sh_phase phase)
{
}

/*
 * Holds one stream for the reset, once calls on it already past the gate
 * end. A stream read or written with read()/write() that was running or
 * prepared is paused: its reader or writer goes on waiting in the kernel
 * (a paused stream never times out) and is prepared again after the reset,
 * as if nothing happened but a gap. Any other live stream (mmap access, an
 * application's own pause, draining) is stopped in an underrun, which the
 * application recovers from by preparing it again.
 */
static int sh_hold_stream(struct snd_pcm_substream *ss, void *data)
{
	struct sh_sound_run *sr = data;
	struct snd_pcm_runtime *runtime;
	snd_pcm_state_t state;
	bool rw;

	mutex_lock(&ss->pcm->open_mutex);
	runtime = ss->runtime;
	if (!runtime)
		goto out;
	/* A caller the guard holds keeps the mutex until the restart ends. */
	while (!mutex_trylock(&runtime->buffer_mutex)) {
		if (sh_sound_guard_holds(ss))
			goto out;
		usleep_range(1000, 2000);
	}
	rw = runtime->access == SNDRV_PCM_ACCESS_RW_INTERLEAVED ||
	     runtime->access == SNDRV_PCM_ACCESS_RW_NONINTERLEAVED;
	snd_pcm_stream_lock_irq(ss);
	state = runtime->state;
	if (rw && sr->n_held < SH_SOUND_SUBS &&
	    (state == SNDRV_PCM_STATE_RUNNING ||
	     state == SNDRV_PCM_STATE_PREPARED)) {
		if (!snd_pcm_stop(ss, SNDRV_PCM_STATE_PAUSED)) {
			sr->held[sr->n_held].ss = ss;
			sr->held[sr->n_held].runtime = runtime;
			sr->n_held++;
		}
	} else if (state == SNDRV_PCM_STATE_RUNNING ||
		   state == SNDRV_PCM_STATE_DRAINING ||
		   state == SNDRV_PCM_STATE_PAUSED ||
		   state == SNDRV_PCM_STATE_PREPARED) {
		if (!snd_pcm_stop(ss, SNDRV_PCM_STATE_XRUN))
			sr->underruns++;
	}
	snd_pcm_stream_unlock_irq(ss);
	mutex_unlock(&runtime->buffer_mutex);
out:
	mutex_unlock(&ss->pcm->open_mutex);
	return 0;
}

/* Every live stream of the card in an underrun (parking: nothing resumes). */
static int sh_underrun_stream(struct snd_pcm_substream *ss, void *data)
{
	struct snd_pcm_runtime *runtime;

	mutex_lock(&ss->pcm->open_mutex);
	runtime = ss->runtime;
	if (runtime) {
		snd_pcm_stream_lock_irq(ss);
		switch (runtime->state) {
		case SNDRV_PCM_STATE_RUNNING:
		case SNDRV_PCM_STATE_DRAINING:
		case SNDRV_PCM_STATE_PAUSED:
		case SNDRV_PCM_STATE_PREPARED:
			snd_pcm_stop(ss, SNDRV_PCM_STATE_XRUN);
			break;
		default:
			break;
		}
		snd_pcm_stream_unlock_irq(ss);
	}
	mutex_unlock(&ss->pcm->open_mutex);
	return 0;
}

void sh_sound_stop(struct sh_run *run)
{
	struct snd_card *card = sh_sound(run->sd)->card;
	struct sh_sound_run *sr = run->priv;

	sh_sound_fault_lift(run->sd);
	snd_power_change_state(card, SNDRV_CTL_POWER_D3hot);
	/* Control calls in the driver hold a power reference. */
	snd_power_sync_ref(card);
	sh_sound_walk_substreams(card, sh_hold_stream, sr);
}

/* The closed gate answers for the driver: nothing more to put in place. */
void sh_sound_impersonate(struct sh_run *run)
{
}

static int sh_pm_call(struct device *dev, int (*cb)(struct device *dev),
		      const char *what, struct sh_run *run)
{
	int err;

	if (!cb)
		return 0;
	device_lock(dev);
	err = READ_ONCE(dev->driver) ? cb(dev) : 0;
	device_unlock(dev);
	if (err < 0) {
		scnprintf(run->res->msg, sizeof(run->res->msg),
			  "%s's %s failed: error %d", dev_name(dev), what, err);
		return err;
	}
	return 0;
}

static void sh_pm_complete(struct device *dev)
{
	const struct dev_pm_ops *pm = sh_pm_ops(dev);

	if (!pm || !pm->complete)
		return;
	device_lock(dev);
	if (READ_ONCE(dev->driver))
		pm->complete(dev);
	device_unlock(dev);
}

/* Resumes and completes @tree's devices from @from down, parents first. */
static int sh_pm_wake(struct sh_pm_tree *tree, unsigned int from,
		      unsigned int prepared, struct sh_run *run)
{
	const struct dev_pm_ops *pm;
	int err = 0, ret;
	unsigned int i;

	for (i = from; i-- > 0;) {
		pm = sh_pm_ops(tree->dev[i]);
		ret = pm ? sh_pm_call(tree->dev[i], pm->resume, "resume",
				      run) : 0;
		if (ret && !err)
			err = ret;
	}
	for (i = prepared; i-- > 0;)
		sh_pm_complete(tree->dev[i]);
	return err;
}

/* Without the class's lock: the driver re-initialises its hardware. */
int sh_sound_reset(struct sh_run *run)
{
	struct sh_sound_run *sr = run->priv;
	struct sh_pm_tree tree = { 0 };
	const struct dev_pm_ops *pm;
	unsigned int prepared = 0, suspended = 0;
	int err;

	sr->runtime_pm = pm_runtime_get_sync(run->bus) >= 0;
	if (!sr->runtime_pm)
		pm_runtime_put_noidle(run->bus);
	err = sh_pm_collect(run->bus, &tree);
	if (err) {
		scnprintf(run->res->msg, sizeof(run->res->msg),
			  "%s has more than %d devices with a driver under it",
			  dev_name(run->bus), SH_PM_DEVS);
		goto out;
	}
	for (; prepared < tree.n; prepared++) {
		pm = sh_pm_ops(tree.dev[prepared]);
		err = pm ? sh_pm_call(tree.dev[prepared], pm->prepare,
				      "prepare", run) : 0;
		if (err)
			goto wake;
	}
	for (; suspended < tree.n; suspended++) {
		pm = sh_pm_ops(tree.dev[suspended]);
		err = pm ? sh_pm_call(tree.dev[suspended], pm->suspend,
				      "suspend", run) : 0;
		if (err)
			goto wake;
	}
wake:
	if (sh_pm_wake(&tree, suspended, prepared, run) && !err)
		err = -EIO;
out:
	sh_pm_tree_put(&tree);
	if (sr->runtime_pm)
		pm_runtime_put(run->bus);
	return err;
}

void sh_sound_unimpersonate(struct sh_run *run)
{
	struct snd_card *card = sh_sound(run->sd)->card;

	if (READ_ONCE(card->power_state) != SNDRV_CTL_POWER_D0)
		snd_power_change_state(card, SNDRV_CTL_POWER_D0);
}

/*
 * The sound core's own prepare takes a paused stream through SETUP while
 * the driver prepares, and a reader or writer that wakes or enters then
 * (the gate is open again) fails with EBADFD. So the helper prepares the
 * driver while the stream still reads as paused to its users, then, in one
 * step under the stream lock and with no copy to or from the buffer under
 * way, empties the buffer and makes the stream PREPARED, as the core's
 * prepare leaves it. -EAGAIN: the application acted on the stream
 * meanwhile (dropped or prepared it), which is left to it.
 */
static int sh_prepare_paused(struct snd_pcm_substream *ss)
{
	struct snd_pcm_runtime *runtime = ss->runtime;
	const struct snd_pcm_ops *ops = READ_ONCE(ss->ops);
	int err;

	if (runtime->stop_operating) {
		runtime->stop_operating = false;
		if (ops->sync_stop)
			ops->sync_stop(ss);
		else if (ss->pcm->card->sync_irq > 0)
			synchronize_irq(ss->pcm->card->sync_irq);
	}
	err = ops->prepare ? ops->prepare(ss) : 0;
	if (!err && ops->ioctl)
		err = ops->ioctl(ss, SNDRV_PCM_IOCTL1_RESET, NULL);
	if (err)
		return err;
	for (;;) {
		snd_pcm_stream_lock_irq(ss);
		if (runtime->state != SNDRV_PCM_STATE_PAUSED) {
			snd_pcm_stream_unlock_irq(ss);
			return -EAGAIN;
		}
		if (!atomic_read(&runtime->buffer_accessing))
			break;
		snd_pcm_stream_unlock_irq(ss);
		usleep_range(200, 500);
	}
	runtime->status->hw_ptr = 0;
	runtime->hw_ptr_wrap = 0;
	runtime->hw_ptr_base = 0;
	runtime->hw_ptr_interrupt = 0;
	runtime->silence_start = 0;
	runtime->silence_filled = 0;
	runtime->control->appl_ptr = 0;
	__snd_pcm_set_state(runtime, SNDRV_PCM_STATE_PREPARED);
	snd_pcm_stream_unlock_irq(ss);
	return 0;
}

/*
 * A held stream is prepared again into the reset driver, as its
 * application would after an underrun, and its reader or writer is woken:
 * a writer fills the buffer and the stream starts itself; a capture stream
 * is started here unless its reader started it first (a reader waiting in
 * the kernel does not). Under the stream's open mutex: its application may
 * close it meanwhile. A stream that cannot be prepared is left in an
 * underrun for its application to recover from.
 */
static int sh_resume_stream(struct sh_held_stream *h)
{
	struct snd_pcm_substream *ss = h->ss;
	struct snd_pcm_runtime *runtime;
	int err = 0;

	mutex_lock(&ss->pcm->open_mutex);
	runtime = ss->runtime;
	if (runtime != h->runtime)
		goto out;
	err = sh_prepare_paused(ss);
	if (err == -EAGAIN) {
		err = 0;
		goto out;
	}
	if (!err && ss->stream == SNDRV_PCM_STREAM_CAPTURE) {
		err = snd_pcm_kernel_ioctl(ss, SNDRV_PCM_IOCTL_START, NULL);
		if (err && READ_ONCE(runtime->state) == SNDRV_PCM_STATE_RUNNING)
			err = 0;
	}
	if (err) {
		snd_pcm_stream_lock_irq(ss);
		snd_pcm_stop(ss, SNDRV_PCM_STATE_XRUN);
		snd_pcm_stream_unlock_irq(ss);
	}
	wake_up(&runtime->tsleep);
	wake_up(&runtime->sleep);
out:
	mutex_unlock(&ss->pcm->open_mutex);
	return err;
}

/*
 * The driver's resume restored its mixer from its own cache. Held streams
 * are prepared again; those left in an underrun are prepared again by
 * their applications.
 */
void sh_sound_replay(struct sh_run *run)
{
	struct sh_sound_run *sr = run->priv;
	unsigned int i;
	int err, first = 0;

	for (i = 0; i < sr->n_held; i++) {
		err = sh_resume_stream(&sr->held[i]);
		if (err && !first)
			first = err;
		if (!err)
			sr->resumed++;
	}
	sh_step(run, "mixer", 0, false);
	sh_step(run, "streams", first, sr->n_held + sr->underruns > 0);
	sh_sound_restarted(sh_sound(run->sd)->card);
}

int sh_sound_open(struct sh_run *run)
{
	return 0;
}

/*
 * Before parking: streams stopped, the gate open, and every stream's entry
 * points failing as under fail-stop, so that applications get an error
 * and may close instead of waiting at the gate for a driver that is not
 * coming back.
 */
void sh_sound_quiesce(struct sh_run *run)
{
	struct snd_card *card = sh_sound(run->sd)->card;

	sh_sound_walk_substreams(card, sh_underrun_stream, NULL);
	sh_sound_ops_set(sh_sound(run->sd), SH_SOUND_FAULT_FAIL_STOP, false);
	snd_power_change_state(card, SNDRV_CTL_POWER_D0);
}
