// SPDX-License-Identifier: GPL-2.0
/*
 * The block class's phases of the restart skeleton (sh_restart.c). There is
 * nothing to impersonate and nothing to replay: the daemon's dm-multipath
 * map holds the I/O while the unit's driver restarts, and is switched to
 * the disk the fresh driver adds (the daemon waits for it: ATA adds it
 * asynchronously, after the probe returns).
 *
 *  stop     under the lock, for every disk under the unit: the injected
 *           faults are lifted, and SCSI disks get the fast teardown
 *           (disk-facts.md 3.2), so that unbinding a hung driver does not
 *           wait for the final SYNCHRONIZE CACHE and START STOP UNIT to
 *           time out through it: the device goes offline (its error
 *           handler stops retrying, new I/O fails at once as a path
 *           error), the requests in flight on it time out at once rather
 *           than after the SCSI timeout (sh_abort_inflight()), and only
 *           then the sd cache type becomes "temporary write through" (the
 *           kernel's flag only, no MODE SELECT) and sd stops managing
 *           start/stop. The order matters from 6.11 on: the cache type
 *           write commits the queue limits with the queue frozen, and a
 *           freeze waits for every request in flight, which a hung driver
 *           holds until the SCSI timeout and its error handling end
 *           (measured on 6.12 with ata_piix: 189 s, against 5.6 s in this
 *           order).
 *           Lost interrupts stay lost through the release when
 *           every disk of the unit is SCSI, whose error handling fails the
 *           commands they hold; other disks have no such handler, so the
 *           lines are enabled before the unbind, or it would wait forever;
 *  release  the driver lets go of the unit; its disks are deleted and their
 *           records go with them (sh_block.c); the lines it freed are
 *           forgotten, the others enabled again;
 *  probe    the driver binds the unit again.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/moduleparam.h>
#include <scsi/scsi_device.h>
#include <scsi/scsi_host.h>

#include "sh_block.h"

static bool sh_fast_teardown = true;
module_param_named(fast_teardown, sh_fast_teardown, bool, 0644);
MODULE_PARM_DESC(fast_teardown,
		 "offline SCSI disks and skip their final cache flush before unbinding their driver (default on)");

static struct sh_block_run *sh_brun(struct sh_run *run)
{
	return run->priv;
}

int sh_block_arm(struct sh_run *run)
{
	struct sh_block_run *br = sh_brun(run);

	sh_block_lock();
	br->disks = sh_block_count_disks(run->bus);
	/* This restart brings its own sticky fault back, if any. */
	sh_block_pending_drop(run->bus);
	sh_block_run_now = run;
	sh_block_unlock();
	return 0;
}

void sh_block_disarm(struct sh_run *run)
{
	struct sh_block_run *br = sh_brun(run);
	struct sh_dev *sd = run->sd;

	sh_block_lock();
	/* Lines still silenced when the release did not happen. */
	sh_block_irqs_lift(&br->irqs);
	if (sd && sh_block(sd)->detached)
		sh_dev_free(sd);
	else if (sd && !disk_live(sh_block(sd)->disk))
		sh_dev_forget(sd);
	sh_block_run_now = NULL;
	sh_block_unlock();
}

void sh_block_set_phase(struct sh_run *run, enum sh_phase phase)
{
	sh_brun(run)->phase = phase;
}

struct sh_stop {
	struct sh_run *run;
	bool all_scsi;
	bool scsi;		/* a disk had the teardown */
	int err;		/* its first failure */
};

static int sh_all_scsi(struct device *dev, void *data)
{
	struct sh_stop *st = data;

	st->all_scsi &= sh_block_parent_is_scsi(dev);
	return 0;
}

static void sh_teardown_note(struct sh_stop *st, struct device *dev,
			     const char *what, int err)
{
	if (!err)
		return;
	pr_warn("recovery %s: teardown of block:%s: %s: error %d\n",
		st->run->id, dev_name(dev), what, err);
	if (!st->err)
		st->err = err;
}

struct sh_abort {
	struct request_queue *q;
	unsigned int n;
};

static bool sh_abort_one(struct request *rq, void *data)
{
	struct sh_abort *ab = data;

	if (rq->q == ab->q && blk_mq_rq_state(rq) == MQ_RQ_IN_FLIGHT) {
		blk_abort_request(rq);
		ab->n++;
	}
	return true;
}

/*
 * Make the requests in flight on an offline SCSI device time out now. A hung
 * driver holds them until the SCSI timeout (30 s by default) runs the error
 * handler, and its unbind waits for that; offline, the handler fails them at
 * once as path errors, which dm-multipath requeues. Returns how many were
 * aborted.
 *
 * Why this is safe (6.1):
 *  - blk_mq_tagset_busy_iter() (block/blk-mq-tag.c, bt_tags_iter() and
 *    blk_mq_find_and_get_req()) calls us only for started requests and
 *    holds a reference on each across the call, so the request is neither
 *    freed nor reused for another I/O while we look at it; it may still
 *    complete concurrently.
 *  - blk_abort_request() (block/blk-timeout.c) only sets the deadline to now
 *    and schedules the queue's timeout work. That work
 *    (blk_mq_timeout_work(), blk_mq_req_expired() in block/blk-mq.c) takes a
 *    queue usage reference, walks the tags again with request references,
 *    and times out only a request still MQ_RQ_IN_FLIGHT and not already
 *    RQF_TIMED_OUT: one that completed meanwhile is skipped, none is timed
 *    out twice. This is exactly the path the SCSI timer would take, only
 *    sooner.
 *  - scsi_timeout() (drivers/scsi/scsi_error.c) arbitrates with scsi_done()
 *    by test_and_set_bit(SCMD_STATE_COMPLETE): only one of them finishes
 *    the command. libata's handler (ata_scsi_cmd_error_handler() in
 *    drivers/ata/libata-eh.c) completes normally a command whose qc
 *    finished meanwhile, and fails the others; on an offline device
 *    scsi_eh_flush_done_q() does not retry them.
 *  - The tag set and the queue: __scsi_remove_device()
 *    (drivers/scsi/scsi_sysfs.c) sets SDEV_DEL under state_mutex before it
 *    destroys the queue and drops the device's hold on the host's tag set.
 *    Under state_mutex, an offline device is not SDEV_DEL, so both stay.
 */
static unsigned int sh_abort_inflight(struct device *sdev_dev)
{
	struct scsi_device *sdev = to_scsi_device(sdev_dev);
	struct sh_abort ab = { .q = sdev->request_queue };

	mutex_lock(&sdev->state_mutex);
	if (!scsi_device_online(sdev))
		blk_mq_tagset_busy_iter(&sdev->host->tag_set, sh_abort_one, &ab);
	mutex_unlock(&sdev->state_mutex);
	return ab.n;
}

/*
 * The fast teardown of one SCSI disk, through its sysfs attributes, once it
 * is offline and holds nothing in flight (the cache type write may freeze
 * its queue).
 */
static void sh_teardown(struct sh_stop *st, struct device *dev)
{
	static const char *const managed[] = {
		"manage_system_start_stop", "manage_runtime_start_stop",
		"manage_shutdown",
	};
	struct device *sdev_dev = dev->parent;
	struct device *sdisk = sh_block_scsi_disk_dev(sdev_dev);
	unsigned int found = 0;
	unsigned int i;
	int err;

	if (sdisk) {
		sh_teardown_note(st, dev, "cache_type",
				 sh_block_store(sdisk, "cache_type",
						"temporary write through"));
		for (i = 0; i < ARRAY_SIZE(managed); i++) {
			err = sh_block_store(sdisk, managed[i], "0");
			if (err == -ENOENT)
				continue;
			found++;
			sh_teardown_note(st, dev, managed[i], err);
		}
		/* Kernels before the split had one writable attribute. */
		if (!found)
			sh_teardown_note(st, dev, "manage_start_stop",
					 sh_block_store(sdisk,
							"manage_start_stop",
							"0"));
		put_device(sdisk);
	} else {
		sh_teardown_note(st, dev, "no scsi_disk device", -ENOENT);
	}
}

/*
 * The first step of the fast teardown: the disk goes offline (unless a
 * disk-error fault took it there already), and what it still holds times
 * out now.
 */
static void sh_teardown_offline(struct sh_stop *st, struct device *dev,
				bool offline)
{
	unsigned int n;

	st->scsi = true;
	if (!offline)
		sh_teardown_note(st, dev, "state",
				 sh_block_store(dev->parent, "state",
						"offline\n"));
	n = sh_abort_inflight(dev->parent);
	if (n)
		pr_info("recovery %s: teardown of block:%s: %u requests in flight timed out now\n",
			st->run->id, dev_name(dev), n);
}

static int sh_stop_disk(struct device *dev, void *data)
{
	struct sh_stop *st = data;
	struct sh_block_run *br = sh_brun(st->run);
	unsigned int keep = st->all_scsi ? SH_LIFT_KEEP_IRQS : 0;
	bool offline = false;
	struct sh_dev *sd;

	rcu_read_lock();
	sd = sh_dev_find(dev);
	rcu_read_unlock();
	if (sd)
		offline = sh_block(sd)->offlined;
	if (sh_fast_teardown && sh_block_parent_is_scsi(dev)) {
		sh_teardown_offline(st, dev, offline);
		sh_teardown(st, dev);
		keep |= SH_LIFT_KEEP_OFFLINE;
	}
	if (!sd)
		return 0;
	sh_block_fault_lift(sd, keep);
	if (keep & SH_LIFT_KEEP_IRQS)
		sh_block_irqs_move(&br->irqs, &sh_block(sd)->irqs);
	return 0;
}

void sh_block_stop(struct sh_run *run)
{
	struct sh_stop st = { .run = run, .all_scsi = true };

	sh_block_walk_disks(run->bus, sh_all_scsi, &st);
	sh_block_walk_disks(run->bus, sh_stop_disk, &st);
	sh_step(run, "teardown", st.err, st.scsi);
}

/* dm-multipath holds the I/O: there is nothing to answer for the driver. */
void sh_block_impersonate(struct sh_run *run)
{
}

void sh_block_unimpersonate(struct sh_run *run)
{
}

/*
 * The driver let go: the unit's disks were deleted (their records with
 * them). Lines the driver freed while silenced are forgotten, the others
 * enabled again.
 */
int sh_block_released(struct sh_run *run)
{
	sh_block_lock();
	sh_block_irqs_lift(&sh_brun(run)->irqs);
	sh_block_unlock();
	return 0;
}

/* Bound again is enough: the disks come as the driver scans for them. */
int sh_block_probed(struct sh_run *run, int attach_ret)
{
	sh_block_lock();
	if (!READ_ONCE(run->bus->driver)) {
		scnprintf(run->res->msg, sizeof(run->res->msg),
			  "no driver bound %s again (attach returned %d)",
			  dev_name(run->bus), attach_ret);
		return -EIO;
	}
	return 0;
}

/* A fresh driver starts with the kernel's defaults: nothing to write back. */
void sh_block_replay(struct sh_run *run)
{
}

/* Disks are opened by their users (the dm map), not by the helper. */
int sh_block_open(struct sh_run *run)
{
	return 0;
}

void sh_block_quiesce(struct sh_run *run)
{
}
