/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The block class's shared declarations: what its record keeps for a disk,
 * its faults, and what a restart of a disk's unit carries. Only the
 * sh_block*.c files include this.
 *
 * A disk's shadow is not in here: the daemon keeps each protected disk's
 * filesystem on a single-path dm-multipath map with queue_if_no_path, which
 * holds the I/O while the driver restarts (disk-facts.md). The helper only
 * restarts the disk's unit (the bus device its driver is bound to), tears
 * a hung driver down quickly, and injects faults.
 */
#ifndef SH_BLOCK_H
#define SH_BLOCK_H

#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/device.h>

#include "sh_class.h"

enum sh_block_fault {
	SH_BLOCK_FAULT_NONE = SH_FAULT_NONE,
	SH_BLOCK_FAULT_LOST_IRQ,
	SH_BLOCK_FAULT_FAIL_STOP,
	SH_BLOCK_FAULT_DISK_ERROR,
	SH_BLOCK_FAULT_COUNT,
};

/* Interrupt lines one lost-irq fault may silence (a controller's vectors). */
#define SH_BLOCK_IRQS	16

/* A line silenced with disable_irq(), and whose action it was. */
struct sh_block_irq {
	unsigned int irq;
	void *dev_id;
};

/* Lines silenced for a fault, to be enabled again exactly once each. */
struct sh_block_irqs {
	unsigned int n;
	struct sh_block_irq line[SH_BLOCK_IRQS];
};

/*
 * A copy of a driver's blk_mq_ops whose queue_rq fails every request:
 * patched through .rw, handed to the request_queue through .ro.
 */
union sh_mq_copy { const struct blk_mq_ops ro; struct blk_mq_ops rw; };

/* The class's part of a record (sh_dev_priv()); written under the lock. */
struct sh_block_dev {
	struct gendisk *disk;		/* valid while the record is listed */
	bool scsi;			/* its parent is a SCSI device */
	bool detached;			/* its disk is gone; a restart holds it */

	/* fail-stop, and disk-error on a disk that is not SCSI */
	const struct blk_mq_ops *real_ops;
	bool ops_ours;
	blk_status_t status;		/* what every request ends with */
	union sh_mq_copy fault_ops;

	bool offlined;			/* disk-error: the SCSI device offline */
	struct sh_block_irqs irqs;	/* lost-irq */
};

static inline struct sh_block_dev *sh_block(struct sh_dev *sd)
{
	return sh_dev_priv(sd);
}

/* The class's part of a restart (run->priv). */
struct sh_block_run {
	enum sh_phase phase;
	unsigned int disks;		/* under the unit when it was armed */
	/* Lines a lost-irq silenced, kept silent while the driver lets go. */
	struct sh_block_irqs irqs;
};

/* sh_block.c */
extern struct sh_run *sh_block_run_now;	/* the restart running, locked */
void sh_block_lock(void);
void sh_block_unlock(void);
bool sh_block_is_disk(struct device *dev);
bool sh_block_usable(struct device *dev);
struct device *sh_block_unit(struct device *disk_dev);
bool sh_block_parent_is_scsi(struct device *disk_dev);
/* Called for each disk of a unit; nonzero stops the walk. */
typedef int (*sh_disk_fn)(struct device *dev, void *data);
int sh_block_walk_disks(struct device *unit, sh_disk_fn fn, void *data);
unsigned int sh_block_count_disks(struct device *unit);

/* sh_block_fault.c */
int sh_block_fault_parse(const char *name, unsigned int *fault);
const char *sh_block_fault_name(unsigned int fault);
int sh_block_fault_apply(struct sh_dev *sd, unsigned int fault, char *msg,
			 size_t len);
void sh_block_fault_clear(struct sh_dev *sd);
#define SH_LIFT_KEEP_IRQS	BIT(0)
#define SH_LIFT_KEEP_OFFLINE	BIT(1)
void sh_block_fault_lift(struct sh_dev *sd, unsigned int keep);
void sh_block_irqs_lift(struct sh_block_irqs *irqs);
void sh_block_irqs_move(struct sh_block_irqs *to, struct sh_block_irqs *from);
void sh_block_pending_disk_added(struct device *dev);
void sh_block_pending_drop(struct device *unit);
void sh_block_pending_exit(void);
int sh_block_store(struct device *dev, const char *name, const char *val);
struct device *sh_block_scsi_disk_dev(struct device *sdev_dev);

/* sh_block_restart.c: the class's restart phases (struct sh_class). */
int sh_block_arm(struct sh_run *run);
void sh_block_disarm(struct sh_run *run);
void sh_block_set_phase(struct sh_run *run, enum sh_phase phase);
void sh_block_stop(struct sh_run *run);
void sh_block_impersonate(struct sh_run *run);
int sh_block_released(struct sh_run *run);
int sh_block_probed(struct sh_run *run, int attach_ret);
void sh_block_unimpersonate(struct sh_run *run);
void sh_block_replay(struct sh_run *run);
int sh_block_open(struct sh_run *run);
void sh_block_quiesce(struct sh_run *run);

#endif /* SH_BLOCK_H */
