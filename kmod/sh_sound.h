/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The sound class's shared declarations: what its record keeps for a card,
 * its faults, and what a restart of a card carries. Only the sh_sound*.c
 * files include this.
 *
 * A card's applications hold its PCM and control files, and the sound core
 * makes a driver's unbind wait until every one of them is closed
 * (sound-facts.md): releasing the driver would either hang or end every
 * application. So the helper restarts a card's driver in place, through
 * the driver's own suspend and resume (the path a laptop's sleep takes,
 * which re-initialises the hardware and keeps the card, its PCMs, its
 * controls and every open file), with the card's running streams held in
 * an underrun, which every ALSA application recovers from by preparing
 * again, and its PCM calls held at the card's power gate meanwhile.
 */
#ifndef SH_SOUND_H
#define SH_SOUND_H

#include <linux/device.h>
#include <sound/core.h>
#include <sound/pcm.h>

#include "sh_class.h"
#include "sh_irq.h"

enum sh_sound_fault {
	SH_SOUND_FAULT_NONE = SH_FAULT_NONE,
	SH_SOUND_FAULT_LOST_IRQ,
	SH_SOUND_FAULT_FAIL_STOP,
	SH_SOUND_FAULT_FAIL_PREPARE,
	SH_SOUND_FAULT_COUNT,
};

/* Substreams of one card whose entry points a fault may replace. */
#define SH_SOUND_SUBS	32

/*
 * A copy of a driver's PCM ops with the faulty entry points replaced (a
 * copy keeps every entry point the driver left out absent): patched
 * through .rw, handed to the substream through .ro.
 */
union sh_pcm_ops_copy { const struct snd_pcm_ops ro; struct snd_pcm_ops rw; };

/* One substream's layers over the driver's ops (sh_sound_ops.c). */
struct sh_sound_sub {
	struct snd_pcm_substream *ss;
	const struct snd_pcm_ops *real;
	union sh_pcm_ops_copy fault_ops;
	union sh_pcm_ops_copy guard_ops;
};

/* The class's part of a record (sh_dev_priv()); written under the lock. */
struct sh_sound_dev {
	struct snd_card *card;
	unsigned int n_subs;		/* with layers in place */
	struct sh_sound_sub subs[SH_SOUND_SUBS];
	unsigned int ops_fault;		/* the fault layer's, or none */
	bool ops_guard;			/* the guard layer is in */
	struct sh_irq_mask irq;		/* lost-irq */
	unsigned int hold_ms;		/* set as every substream's wait_time */
};

/* The trigger commands that start a stream's DMA. */
static inline bool sh_trigger_starts(int cmd)
{
	return cmd == SNDRV_PCM_TRIGGER_START ||
	       cmd == SNDRV_PCM_TRIGGER_PAUSE_RELEASE ||
	       cmd == SNDRV_PCM_TRIGGER_RESUME;
}

static inline struct sh_sound_dev *sh_sound(struct sh_dev *sd)
{
	return sh_dev_priv(sd);
}

/* A stream a restart holds paused, to prepare again into the reset driver. */
struct sh_held_stream {
	struct snd_pcm_substream *ss;
	struct snd_pcm_runtime *runtime;	/* the open it belongs to */
};

/* The class's part of a restart (run->priv). */
struct sh_sound_run {
	unsigned int underruns;	/* streams left in an underrun for the application */
	unsigned int n_held;	/* streams held paused */
	struct sh_held_stream held[SH_SOUND_SUBS];
	unsigned int resumed;	/* held streams prepared again */
	bool runtime_pm;	/* a runtime PM reference taken on the unit */
};

/* sh_sound.c */
void sh_sound_lock(void);
void sh_sound_unlock(void);
struct snd_card *sh_sound_card(struct device *cdev);
/* Called for each substream of a card's PCMs; nonzero stops the walk. */
typedef int (*sh_substream_fn)(struct snd_pcm_substream *ss, void *data);
int sh_sound_walk_substreams(struct snd_card *card, sh_substream_fn fn,
			     void *data);

/* Room in a `periods` reply for the running streams' fields. */
#define SH_SOUND_PERIODS_LEN	384

/* Longest wait a `hold` may give a stalled stream's reader or writer. */
#define SH_SOUND_HOLD_MAX_MS	60000

/* sh_sound.c */
void sh_sound_hold_lift(struct sh_sound_dev *snd);

/* sh_sound_fault.c */
int sh_sound_fault_parse(const char *name, unsigned int *fault);
const char *sh_sound_fault_name(unsigned int fault);
int sh_sound_fault_apply(struct sh_dev *sd, unsigned int fault, char *msg,
			 size_t len);
void sh_sound_fault_clear(struct sh_dev *sd);
void sh_sound_fault_lift(struct sh_dev *sd);
void sh_sound_fault_fill(struct sh_sound_sub *sub, unsigned int fault);

/* sh_sound_ops.c */
int sh_sound_ops_set(struct sh_sound_dev *snd, unsigned int fault,
		     bool guard);
struct sh_sound_sub *sh_sound_sub_find(struct snd_pcm_substream *ss);
bool sh_sound_guard_holds(struct snd_pcm_substream *ss);
void sh_sound_restarted(struct snd_card *card);

/* sh_sound_restart.c: the class's restart phases (struct sh_class). */
int sh_sound_arm(struct sh_run *run);
void sh_sound_disarm(struct sh_run *run);
void sh_sound_set_phase(struct sh_run *run, enum sh_phase phase);
void sh_sound_stop(struct sh_run *run);
void sh_sound_impersonate(struct sh_run *run);
int sh_sound_reset(struct sh_run *run);
void sh_sound_unimpersonate(struct sh_run *run);
void sh_sound_replay(struct sh_run *run);
int sh_sound_open(struct sh_run *run);
void sh_sound_quiesce(struct sh_run *run);

#endif /* SH_SOUND_H */
