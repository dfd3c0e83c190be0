// SPDX-License-Identifier: GPL-2.0
/*
 * The sound class: the helper's hands for every ALSA card driver. Its
 * devices are cards, named as in /sys/class/sound (sound:card0), its lock
 * is a mutex of its own, and its restart unit is the card's parent, the
 * device its driver is bound to (a PCI function).
 *
 * A record lives exactly as long as its card: a class interface on the
 * sound class hears the card's device go (at its disconnect, before the
 * card is freed), lifts its faults and forgets it. Restart phases are in
 * sh_sound_restart.c, faults in sh_sound_fault.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/kernel.h>
#include <linux/mutex.h>
#include <linux/string.h>

#include "sh_sound.h"

#if SH_KERNEL >= 604
#define SH_SOUND_CLASS	(&sound_class)
#else
#define SH_SOUND_CLASS	(sound_class)
#endif

static DEFINE_MUTEX(sh_sound_mutex);

void sh_sound_lock(void)
{
	mutex_lock(&sh_sound_mutex);
}

void sh_sound_unlock(void)
{
	mutex_unlock(&sh_sound_mutex);
}

/* The sound class holds cards and their PCM, control and other devices. */
static bool sh_sound_is_card(struct device *dev)
{
	return dev->class == SH_SOUND_CLASS && !strncmp(dev_name(dev), "card", 4);
}

struct snd_card *sh_sound_card(struct device *cdev)
{
	return container_of(cdev, struct snd_card, card_dev);
}

/* Under the lock, with the card's driver bound (device_lock or a restart). */
int sh_sound_walk_substreams(struct snd_card *card, sh_substream_fn fn,
			     void *data)
{
	struct snd_pcm_substream *ss;
	struct snd_device *dev;
	struct snd_pcm *pcm;
	int stream, err;

	list_for_each_entry(dev, &card->devices, list) {
		if (dev->type != SNDRV_DEV_PCM)
			continue;
		pcm = dev->device_data;
		for (stream = 0; stream < 2; stream++) {
			for (ss = pcm->streams[stream].substream; ss;
			     ss = ss->next) {
				err = fn(ss, data);
				if (err)
					return err;
			}
		}
	}
	return 0;
}

/* "card0" to "card31": the kernel's names for the cards it can hold. */
static bool sh_sound_valid_name(const char *name)
{
	unsigned int n;

	if (strncmp(name, "card", 4) || !name[4] ||
	    (name[4] == '0' && name[5]) || kstrtouint(name + 4, 10, &n))
		return false;
	return n < SNDRV_CARDS;
}

static struct device *sh_sound_get(const char *name)
{
	struct device *dev = class_find_device_by_name(SH_SOUND_CLASS, name);

	if (dev && !sh_sound_is_card(dev)) {
		put_device(dev);
		return NULL;
	}
	return dev;
}

static void sh_sound_put(struct device *cdev)
{
	put_device(cdev);
}

static struct device *sh_sound_bus_of(struct device *cdev, char *msg,
				      size_t len)
{
	struct snd_card *card = sh_sound_card(cdev);
	struct device *bus = card->dev;

	if (READ_ONCE(card->shutdown)) {
		scnprintf(msg, len, "sound:%s is being removed", dev_name(cdev));
		return NULL;
	}
	if (!bus || !READ_ONCE(bus->driver)) {
		scnprintf(msg, len,
			  "sound:%s has no driver under it (a virtual card cannot be restarted)",
			  dev_name(cdev));
		return NULL;
	}
	return get_device(bus);
}

static void sh_sound_record_init(struct sh_dev *sd)
{
	struct sh_sound_dev *snd = sh_sound(sd);

	snd->card = sh_sound_card(sd->cdev);
	sd->bus = snd->card->dev;
}

/* " card=N": the card's number, the same before and after a restart. */
static void sh_sound_reply_fields(struct device *cdev, char *buf, size_t len)
{
	scnprintf(buf, len, " card=%d", sh_sound_card(cdev)->number);
}

struct sh_hold {
	unsigned int from, to;
	unsigned int n;
};

static int sh_hold_one(struct snd_pcm_substream *ss, void *data)
{
	struct sh_hold *hold = data;

	if (ss->wait_time && ss->wait_time != hold->from)
		return 0;
	WRITE_ONCE(ss->wait_time, hold->to);
	hold->n++;
	return 0;
}

/* Under the lock: the card's substreams wait as the kernel has them wait. */
void sh_sound_hold_lift(struct sh_sound_dev *snd)
{
	struct sh_hold hold = { .from = snd->hold_ms, .to = 0 };

	if (!snd->hold_ms)
		return;
	sh_sound_walk_substreams(snd->card, sh_hold_one, &hold);
	snd->hold_ms = 0;
	sh_sound_ops_set(snd, snd->ops_fault, false);
}

/*
 * hold sound:cardN MS: a reader or writer of the card's streams waits up to
 * MS ms for the stream to advance before the kernel fails its call with
 * EIO ("DMA or IRQ trouble?"), instead of the kernel's 1.1 buffer lengths
 * (half a second for most players). A stalled stream is then still there
 * when the daemon has detected the stall and restarted the driver, which
 * ends the wait. 0 gives the kernel's default back. A substream whose
 * driver chose its own wait is left alone. A held card's prepares and
 * hw_params are guarded as well (sh_sound_ops.c): one the driver fails
 * waits up to MS for a restart instead of failing the application.
 */
static void sh_sound_cmd_hold(struct sh_file *sf, const struct sh_ref *ref,
			      unsigned int argc, char **argv)
{
	struct sh_hold hold;
	struct sh_sound_dev *snd;
	struct device *cdev;
	struct sh_dev *sd;
	int err;
	u32 ms;

	if (!sh_parse_numbers(sf, 1, argv, SH_SOUND_HOLD_MAX_MS, &ms))
		return;
	cdev = sh_lookup(sf, ref, true);
	if (!cdev)
		return;
	sh_sound_lock();
	sd = sh_dev_get(&sh_sound_class, cdev);
	if (!sd) {
		sh_sound_unlock();
		put_device(cdev);
		sh_reply_err(sf, ENOMEM, "out of memory");
		return;
	}
	snd = sh_sound(sd);
	hold = (struct sh_hold){ .from = snd->hold_ms, .to = ms };
	sh_sound_walk_substreams(snd->card, sh_hold_one, &hold);
	snd->hold_ms = ms;
	/* A parked card's entry points stay failing until it restarts. */
	err = sd->state == SH_PARKED ? 0 :
		sh_sound_ops_set(snd, snd->ops_fault, ms > 0);
	sh_sound_unlock();
	if (err)
		sh_reply_err(sf, E2BIG, "%s has more than %d substreams",
			     ref->text, SH_SOUND_SUBS);
	else
		sh_reply_ok(sf, "held %s ms=%u substreams=%u", ref->text, ms,
			    hold.n);
	put_device(cdev);
}

/* The running streams' interrupt positions, as text for the reply. */
struct sh_periods {
	char *buf;
	size_t len, size;
	unsigned int n;
	bool cut;
};

static int sh_periods_one(struct snd_pcm_substream *ss, void *data)
{
	struct sh_periods *p = data;
	struct snd_pcm_runtime *runtime;
	snd_pcm_uframes_t irq = 0;
	bool running = false;
	size_t len;

	mutex_lock(&ss->pcm->open_mutex);
	runtime = ss->runtime;
	if (runtime) {
		snd_pcm_stream_lock_irq(ss);
		/*
		 * A stream set up without period interrupts has none to watch.
		 * A draining playback stream interrupts on until it is empty.
		 */
		running = (runtime->state == SNDRV_PCM_STATE_RUNNING ||
			   (runtime->state == SNDRV_PCM_STATE_DRAINING &&
			    ss->stream == SNDRV_PCM_STREAM_PLAYBACK)) &&
			  !runtime->no_period_wakeup;
		irq = runtime->hw_ptr_interrupt;
		snd_pcm_stream_unlock_irq(ss);
	}
	mutex_unlock(&ss->pcm->open_mutex);
	if (!running)
		return 0;
	len = scnprintf(p->buf + p->len, p->size - p->len, " pcm%d%c/sub%d=%lu",
			ss->pcm->device,
			ss->stream == SNDRV_PCM_STREAM_PLAYBACK ? 'p' : 'c',
			ss->number, irq);
	/* A field cut short is dropped whole: the reply says so. */
	if (p->len + len + 1 >= p->size) {
		p->buf[p->len] = '\0';
		p->cut = true;
		return 1;
	}
	p->len += len;
	p->n++;
	return 0;
}

/*
 * periods sound:cardN: where each running (or draining playback) stream of
 * the card that wakes its reader or writer by period interrupts was at its
 * last one (the sound core's hw_ptr_interrupt, which only the driver's
 * interrupt moves). The daemon watches it to tell a card that lost its
 * interrupts from one that plays: reading a stream's status makes the core
 * ask the driver for its position, which goes on moving under a lost
 * interrupt, and the interrupt line may be shared with other devices.
 */
static void sh_sound_cmd_periods(struct sh_file *sf, const struct sh_ref *ref,
				 unsigned int argc, char **argv)
{
	char buf[SH_SOUND_PERIODS_LEN];
	struct sh_periods p = { .buf = buf, .size = sizeof(buf) };
	struct snd_card *card;
	struct device *cdev;

	buf[0] = '\0';
	cdev = sh_lookup(sf, ref, false);
	if (!cdev)
		return;
	card = sh_sound_card(cdev);
	/* A card's device is deleted under this lock before its PCMs go. */
	sh_sound_lock();
	if (READ_ONCE(card->shutdown)) {
		sh_sound_unlock();
		put_device(cdev);
		sh_reply_err(sf, ENODEV, "%s is being removed", ref->text);
		return;
	}
	sh_sound_walk_substreams(card, sh_periods_one, &p);
	sh_sound_unlock();
	put_device(cdev);
	sh_reply_ok(sf, "periods %s running=%u%s%s", ref->text, p.n,
		    p.cut ? " cut=1" : "", buf);
}

static const struct sh_class_cmd sh_sound_cmds[] = {
	{ "hold", 2, 2, sh_sound_cmd_hold },
	{ "periods", 1, 1, sh_sound_cmd_periods },
};

/* A card going away takes its record along, its faults lifted first. */
static void sh_sound_card_gone(struct device *dev)
{
	struct sh_dev *sd;

	if (!sh_sound_is_card(dev))
		return;
	sh_sound_lock();
	rcu_read_lock();
	sd = sh_dev_find(dev);
	rcu_read_unlock();
	if (sd) {
		sh_sound_fault_lift(sd);
		sh_sound_hold_lift(sh_sound(sd));
		sh_dev_forget(sd);
	}
	sh_sound_unlock();
}

#if SH_KERNEL >= 604
static void sh_sound_remove_dev(struct device *dev)
{
	sh_sound_card_gone(dev);
}
#else
static void sh_sound_remove_dev(struct device *dev,
				struct class_interface *intf)
{
	sh_sound_card_gone(dev);
}
#endif

static struct class_interface sh_sound_intf = {
	.remove_dev = sh_sound_remove_dev,
};

static int sh_sound_init(void)
{
	sh_sound_intf.class = SH_SOUND_CLASS;
	return class_interface_register(&sh_sound_intf);
}

/* Unregistering calls remove_dev for every card: faults lift, records go. */
static void sh_sound_exit(void)
{
	class_interface_unregister(&sh_sound_intf);
}

const struct sh_class sh_sound_class = {
	.id = "sound",
	.noun = "sound card",
	.name_rule = "a card's name in /sys/class/sound: card0 to card31",
	.priv_size = sizeof(struct sh_sound_dev),
	.run_size = sizeof(struct sh_sound_run),
	.cmds = sh_sound_cmds,
	.n_cmds = ARRAY_SIZE(sh_sound_cmds),
	.fault_list = "lost-irq, fail-stop, fail-prepare",
	.init = sh_sound_init,
	.exit = sh_sound_exit,
	.valid_name = sh_sound_valid_name,
	.get = sh_sound_get,
	.put = sh_sound_put,
	.bus_of = sh_sound_bus_of,
	.lock = sh_sound_lock,
	.unlock = sh_sound_unlock,
	.record_init = sh_sound_record_init,
	.reply_fields = sh_sound_reply_fields,
	.arm = sh_sound_arm,
	.disarm = sh_sound_disarm,
	.set_phase = sh_sound_set_phase,
	.stop = sh_sound_stop,
	.impersonate = sh_sound_impersonate,
	.reset = sh_sound_reset,
	.unimpersonate = sh_sound_unimpersonate,
	.replay = sh_sound_replay,
	.open = sh_sound_open,
	.quiesce = sh_sound_quiesce,
	.fault_parse = sh_sound_fault_parse,
	.fault_name = sh_sound_fault_name,
	.fault_apply = sh_sound_fault_apply,
	.fault_clear = sh_sound_fault_clear,
};
