// SPDX-License-Identifier: GPL-2.0
/*
 * The block class's fault injection, for testing recovery on real disk
 * drivers without changing them. Off unless the module was loaded with
 * allow_faults=1. Every fault is generic: it uses what every block driver
 * has (a blk-mq request_queue, the interrupt lines of its unit, the SCSI
 * device state when there is one), never a driver's name or internals.
 *
 *  lost-irq    the unit's interrupt lines are disabled: MSI/MSI-X vectors
 *              of its PCI function, or the lines whose handlers the unit's
 *              driver registered with its own drvdata (legacy IDE IRQ 14/15,
 *              INTx). A line shared with another device is refused: it is
 *              never silenced for someone else. Lifting enables the lines
 *              again, which delivers the completions that were held back.
 *  fail-stop   the disk's request_queue gets a copy of its driver's
 *              blk_mq_ops whose queue_rq ends every request with an I/O
 *              error (BLK_STS_IOERR) without reaching the driver.
 *  disk-error  the disk side fails: a SCSI disk's device goes offline (the
 *              midlayer rejects its I/O, as `echo offline > state` does); a
 *              disk that is not SCSI fails fast as fail-stop does, with the
 *              status its device would report for a failed disk (also
 *              BLK_STS_IOERR).
 *
 * A sticky fault comes back after a restart on the first disk that appears
 * under the unit (pending until then).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/interrupt.h>
#include <linux/irq.h>
#include <linux/irqdesc.h>
#include <linux/irqnr.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <scsi/scsi.h>
#include <scsi/scsi_cmnd.h>

#include "sh_block.h"

static const char * const sh_fault_names[SH_BLOCK_FAULT_COUNT] = {
	[SH_BLOCK_FAULT_NONE] = "clear",
	[SH_BLOCK_FAULT_LOST_IRQ] = "lost-irq",
	[SH_BLOCK_FAULT_FAIL_STOP] = "fail-stop",
	[SH_BLOCK_FAULT_DISK_ERROR] = "disk-error",
};

int sh_block_fault_parse(const char *name, unsigned int *fault)
{
	unsigned int i;

	for (i = 0; i < SH_BLOCK_FAULT_COUNT; i++) {
		if (!strcmp(name, sh_fault_names[i])) {
			*fault = i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *sh_block_fault_name(unsigned int fault)
{
	return fault < SH_BLOCK_FAULT_COUNT ? sh_fault_names[fault] : "?";
}

/* Sysfs attributes, written through the device model. */

static struct device_attribute *
sh_attr_in(struct device *dev, const struct attribute_group *const *groups,
	   const char *name)
{
	for (; groups && *groups; groups++) {
		const struct attribute_group *grp = *groups;
		struct attribute **attr;

		/* Attributes in a named subfolder are not the device's own. */
		if (grp->name || !grp->attrs)
			continue;
		for (attr = grp->attrs; *attr; attr++) {
			if (strcmp((*attr)->name, name))
				continue;
			if (grp->is_visible &&
			    !grp->is_visible(&dev->kobj, *attr,
					     attr - grp->attrs))
				return NULL;
			return container_of(*attr, struct device_attribute,
					    attr);
		}
	}
	return NULL;
}

/*
 * Writes @val to the attribute @name of @dev as a write to its sysfs file
 * would: the attribute's own store does the parsing and takes the locks it
 * needs. -ENOENT when the device has no such attribute.
 */
int sh_block_store(struct device *dev, const char *name, const char *val)
{
	struct device_attribute *attr;
	ssize_t ret;

	if (!device_is_registered(dev))
		return -ENODEV;
	attr = sh_attr_in(dev, dev->groups, name);
	if (!attr && dev->type)
		attr = sh_attr_in(dev, dev->type->groups, name);
	if (!attr && dev->class)
		attr = sh_attr_in(dev, dev->class->dev_groups, name);
	if (!attr || !attr->store)
		return -ENOENT;
	ret = attr->store(dev, attr, val, strlen(val));
	return ret < 0 ? ret : 0;
}

#if SH_KERNEL >= 614
static int sh_is_scsi_disk(struct device *dev, const void *data)
#else
static int sh_is_scsi_disk(struct device *dev, void *data)
#endif
{
	return dev->class && !strcmp(dev->class->name, "scsi_disk");
}

/* The scsi_disk class device of a SCSI device, referenced, or NULL. */
struct device *sh_block_scsi_disk_dev(struct device *sdev_dev)
{
	return device_find_child(sdev_dev, NULL, sh_is_scsi_disk);
}

/*
 * fail-stop: requests end at the queue, never reaching the driver.
 *
 * The operations are swapped without quiescing the queue. On 6.1, a
 * request-based dm map's clone that meets a quiesced path queue is put into
 * the path's I/O scheduler (__blk_mq_try_issue_directly() drops its
 * bypass_insert), and a clone of a flush was allocated without the
 * scheduler's private data: mq-deadline counts it in but never out, and
 * WARNs when the disk is removed (dd_exit_sched(), "i 4 m 0 d 4 c 3").
 * Without the quiesce a dispatch under way may still run the operations it
 * loaded: the swap waits for it (blk_mq_wait_quiesce_done()), and our
 * queue_rq hands a request on to the driver's own when the fault was lifted
 * after the request's dispatch loaded the copy.
 */

static blk_status_t sh_fail_queue_rq(struct blk_mq_hw_ctx *hctx,
				     const struct blk_mq_queue_data *qd)
{
	struct request *rq = qd->rq;
	struct request_queue *q = rq->q;
	const struct blk_mq_ops *ops = READ_ONCE(q->mq_ops);
	struct sh_block_dev *bd;

	if (ops->queue_rq != sh_fail_queue_rq)
		return ops->queue_rq(hctx, qd);
	bd = container_of(ops, struct sh_block_dev, fault_ops.ro);
	/*
	 * blk-mq took a dispatch budget for the request; once queue_rq is
	 * called it is the driver's to give back, as SCSI does when it
	 * rejects a request. A request prepared earlier frees what its
	 * preparation allocated.
	 */
	if (ops->put_budget)
		ops->put_budget(q, ops->get_rq_budget_token ?
				ops->get_rq_budget_token(rq) : -1);
	blk_mq_cleanup_rq(rq);
	/* A SCSI passthrough caller reads the command's result, not the status. */
	if (bd->scsi && blk_rq_is_passthrough(rq))
		set_host_byte(blk_mq_rq_to_pdu(rq), DID_NO_CONNECT);
	return READ_ONCE(bd->status);
}

/* Until this returns, a dispatch may still run the operations it loaded. */
static void sh_ops_wait(struct request_queue *q)
{
#if SH_KERNEL >= 602
	blk_mq_wait_quiesce_done(q->tag_set);
#else
	blk_mq_wait_quiesce_done(q);
#endif
}

static void sh_ops_fail(struct sh_dev *sd, blk_status_t status)
{
	struct sh_block_dev *bd = sh_block(sd);
	struct request_queue *q = bd->disk->queue;

	WRITE_ONCE(bd->status, status);
	if (bd->ops_ours)
		return;
	bd->real_ops = q->mq_ops;
	bd->fault_ops.rw = *q->mq_ops;
	bd->fault_ops.rw.queue_rq = sh_fail_queue_rq;
	/* A batch would go to the driver's own queue_rqs(). */
	bd->fault_ops.rw.queue_rqs = NULL;
	WRITE_ONCE(q->mq_ops, &bd->fault_ops.ro);
	bd->ops_ours = true;
	sh_ops_wait(q);
}

/*
 * Once the wait returns no dispatch runs in our queue_rq; other readers of
 * the copy only load the driver's own functions from it, and the record is
 * freed after an RCU grace period.
 */
static void sh_ops_restore(struct sh_dev *sd)
{
	struct sh_block_dev *bd = sh_block(sd);
	struct request_queue *q;

	if (!bd->ops_ours)
		return;
	q = bd->disk->queue;
	WRITE_ONCE(q->mq_ops, bd->real_ops);
	bd->ops_ours = false;
	sh_ops_wait(q);
	blk_mq_run_hw_queues(q, true);
}

/* disk-error on SCSI: the device offline, as its sysfs state file does it. */
static int sh_offline(struct sh_dev *sd, bool offline)
{
	struct sh_block_dev *bd = sh_block(sd);
	int err;

	if (offline == bd->offlined)
		return 0;
	err = sh_block_store(sd->cdev->parent, "state",
			     offline ? "offline\n" : "running\n");
	/* A device being deleted left the offline state by itself. */
	if (!err || !offline)
		bd->offlined = offline;
	return err;
}

/* lost-irq: the unit's interrupt lines. */

/* The first action's dev_id if every action on @irq is one of @owners. */
static int sh_irq_owned(unsigned int irq, void *const *owners,
			unsigned int n_owners, void **dev_id)
{
	struct irq_data *data = irq_get_irq_data(irq);
	struct irqaction *act;
	struct irq_desc *desc;
	unsigned long flags;
	unsigned int mine = 0, others = 0, i;

	if (!data)
		return 0;
	desc = irq_data_to_desc(data);
	raw_spin_lock_irqsave(&desc->lock, flags);
	for (act = desc->action; act; act = act->next) {
		bool found = false;

		for (i = 0; i < n_owners; i++)
			found |= owners[i] && act->dev_id == owners[i];
		if (!found) {
			others++;
			continue;
		}
		if (!mine++)
			*dev_id = act->dev_id;
	}
	raw_spin_unlock_irqrestore(&desc->lock, flags);
	if (!mine)
		return 0;
	return others ? -EBUSY : 1;
}

/* The first action's dev_id on a line whose handlers are all one device's. */
static void *sh_irq_first_dev_id(unsigned int irq)
{
	struct irq_data *data = irq_get_irq_data(irq);
	struct irq_desc *desc;
	unsigned long flags;
	void *dev_id = NULL;

	if (!data)
		return NULL;
	desc = irq_data_to_desc(data);
	raw_spin_lock_irqsave(&desc->lock, flags);
	if (desc->action)
		dev_id = desc->action->dev_id;
	raw_spin_unlock_irqrestore(&desc->lock, flags);
	return dev_id;
}

static struct pci_dev *sh_pci_of(struct device *dev)
{
	for (; dev; dev = dev->parent)
		if (dev_is_pci(dev))
			return to_pci_dev(dev);
	return NULL;
}

static int sh_irq_add(struct sh_block_irqs *irqs, unsigned int irq,
		      void *dev_id, char *msg, size_t len)
{
	if (irqs->n == SH_BLOCK_IRQS) {
		scnprintf(msg, len,
			  "the unit has more than %d interrupt lines",
			  SH_BLOCK_IRQS);
		return -EOPNOTSUPP;
	}
	irqs->line[irqs->n].irq = irq;
	irqs->line[irqs->n].dev_id = dev_id;
	irqs->n++;
	return 0;
}

/*
 * The lines of @unit's driver. Message-signalled vectors belong to their
 * PCI function alone. Other lines are found by their handlers' dev_id,
 * which drivers set to their drvdata (a host, an adapter); a line where
 * another device has a handler too is refused.
 */
static int sh_irqs_find(struct device *unit, struct sh_block_irqs *irqs,
			char *msg, size_t len)
{
	struct pci_dev *pdev = sh_pci_of(unit);
	void *owners[2] = { dev_get_drvdata(unit), NULL };
	unsigned int irq;
	void *dev_id;
	int err, i;

	irqs->n = 0;
	if (pdev && (pdev->msi_enabled || pdev->msix_enabled)) {
		for (i = 0; i < 64; i++) {
			int vec = pci_irq_vector(pdev, i);

			if (vec <= 0 || !irq_has_action(vec))
				continue;
			err = sh_irq_add(irqs, vec, sh_irq_first_dev_id(vec),
					 msg, len);
			if (err)
				return err;
		}
		return 0;
	}
	if (pdev && &pdev->dev != unit)
		owners[1] = pci_get_drvdata(pdev);
	rcu_read_lock();
	for (irq = 0; irq < nr_irqs; irq++) {
		err = sh_irq_owned(irq, owners, ARRAY_SIZE(owners), &dev_id);
		if (!err)
			continue;
		if (err < 0) {
			scnprintf(msg, len,
				  "irq %u of %s is shared with another device: silencing it would silence that one too",
				  irq, dev_name(unit));
			break;
		}
		err = sh_irq_add(irqs, irq, dev_id, msg, len);
		if (err)
			break;
	}
	rcu_read_unlock();
	return err < 0 ? err : 0;
}

/*
 * Enables each line again, once, if the handler it was silenced under is
 * still there. A driver that freed its interrupt ended the disable with it
 * (the line was shut down); enabling it then would be unbalanced.
 */
void sh_block_irqs_lift(struct sh_block_irqs *irqs)
{
	unsigned int i;

	for (i = 0; i < irqs->n; i++) {
		struct sh_block_irq *line = &irqs->line[i];
		void *owner = line->dev_id;
		void *dev_id = NULL;
		int owned;

		rcu_read_lock();
		if (owner)
			owned = sh_irq_owned(line->irq, &owner, 1, &dev_id);
		else
			owned = irq_has_action(line->irq);
		rcu_read_unlock();
		if (owned)
			enable_irq(line->irq);
		else
			pr_info("irq %u was freed while silenced: not enabled again\n",
				line->irq);
	}
	irqs->n = 0;
}

/* Hands silenced lines over (a restart keeps them through the release). */
void sh_block_irqs_move(struct sh_block_irqs *to, struct sh_block_irqs *from)
{
	unsigned int i;

	for (i = 0; i < from->n; i++) {
		if (to->n == SH_BLOCK_IRQS) {
			struct sh_block_irqs rest = { .n = 1 };

			rest.line[0] = from->line[i];
			sh_block_irqs_lift(&rest);
			continue;
		}
		to->line[to->n++] = from->line[i];
	}
	from->n = 0;
}

static int sh_irqs_silence(struct sh_dev *sd, char *msg, size_t len)
{
	struct sh_block_dev *bd = sh_block(sd);
	unsigned int i;
	int err;

	if (!sd->bus) {
		scnprintf(msg, len, "block:%s has no unit",
			  dev_name(sd->cdev));
		return -ENODEV;
	}
	err = sh_irqs_find(sd->bus, &bd->irqs, msg, len);
	if (!err && !bd->irqs.n) {
		scnprintf(msg, len,
			  "found no interrupt line of %s's driver to silence",
			  dev_name(sd->bus));
		err = -EOPNOTSUPP;
	}
	if (err) {
		bd->irqs.n = 0;
		return err;
	}
	for (i = 0; i < bd->irqs.n; i++)
		disable_irq(bd->irqs.line[i].irq);
	return 0;
}

/*
 * Under the lock: undoes the fault's effect on the device (not the record
 * of it: a sticky fault stays to come back). SH_LIFT_KEEP_IRQS leaves the
 * silenced lines silent, for the caller to take over; SH_LIFT_KEEP_OFFLINE
 * leaves an offline SCSI device offline (it is going, and bringing it back
 * would revalidate it through a failed driver).
 */
void sh_block_fault_lift(struct sh_dev *sd, unsigned int keep)
{
	struct sh_block_dev *bd = sh_block(sd);

	if (bd->detached)
		return;
	sh_ops_restore(sd);
	if (keep & SH_LIFT_KEEP_OFFLINE)
		bd->offlined = false;
	else
		sh_offline(sd, false);
	if (!(keep & SH_LIFT_KEEP_IRQS))
		sh_block_irqs_lift(&bd->irqs);
}

/* Pending sticky faults: for the first disk to appear under a unit. */

struct sh_pending {
	struct list_head node;
	struct device *unit;		/* referenced */
	unsigned int fault;
};

static LIST_HEAD(sh_pending_list);

static struct sh_pending *sh_pending_find(struct device *unit)
{
	struct sh_pending *p;

	list_for_each_entry(p, &sh_pending_list, node)
		if (p->unit == unit)
			return p;
	return NULL;
}

static void sh_pending_free(struct sh_pending *p)
{
	list_del(&p->node);
	put_device(p->unit);
	kfree(p);
}

void sh_block_pending_drop(struct device *unit)
{
	struct sh_pending *p = sh_pending_find(unit);

	if (p)
		sh_pending_free(p);
}

void sh_block_pending_exit(void)
{
	struct sh_pending *p, *tmp;

	list_for_each_entry_safe(p, tmp, &sh_pending_list, node)
		sh_pending_free(p);
}

static int sh_apply_sticky(struct device *dev, unsigned int fault)
{
	char msg[SH_MSG_MAX] = "";
	struct sh_dev *sd = sh_dev_get(&sh_block_class, dev);
	int err;

	if (!sd)
		return -ENOMEM;
	sd->fault_sticky = true;
	err = sh_block_fault_apply(sd, fault, msg, sizeof(msg));
	if (err)
		pr_warn("sticky fault %s not back on block:%s: %s\n",
			sh_block_fault_name(fault), dev_name(dev), msg);
	return err;
}

/* Under the lock, from the class interface: a disk was added. */
void sh_block_pending_disk_added(struct device *dev)
{
	struct sh_pending *p;
	struct device *unit;

	if (list_empty(&sh_pending_list))
		return;
	unit = sh_block_unit(dev);
	p = unit ? sh_pending_find(unit) : NULL;
	if (!p)
		return;
	sh_apply_sticky(dev, p->fault);
	sh_pending_free(p);
}

static int sh_first_disk(struct device *dev, void *data)
{
	*(struct device **)data = get_device(dev);
	return 1;
}

/*
 * A sticky fault coming back after a restart, on the record of the disk
 * that is gone: onto a disk already under the unit (added synchronously by
 * the probe), else pending until one appears.
 */
static int sh_fault_pend(struct sh_dev *sd, unsigned int fault, char *msg,
			 size_t len)
{
	struct device *disk = NULL;
	struct sh_pending *p;
	int err;

	if (!sd->bus)
		return 0;
	sh_block_pending_drop(sd->bus);
	sh_block_walk_disks(sd->bus, sh_first_disk, &disk);
	if (disk) {
		err = sh_apply_sticky(disk, fault);
		put_device(disk);
		return err;
	}
	p = kzalloc(sizeof(*p), GFP_KERNEL);
	if (!p) {
		scnprintf(msg, len, "out of memory");
		return -ENOMEM;
	}
	p->unit = get_device(sd->bus);
	p->fault = fault;
	list_add(&p->node, &sh_pending_list);
	pr_notice("sticky fault %s pending for the next disk under %s\n",
		  sh_block_fault_name(fault), dev_name(sd->bus));
	return 0;
}

/* Under the lock; the record of a disk whose deletion began goes too. */
void sh_block_fault_clear(struct sh_dev *sd)
{
	struct sh_block_dev *bd = sh_block(sd);

	sh_block_fault_lift(sd, 0);
	if (sd->bus)
		sh_block_pending_drop(sd->bus);
	sd->fault = SH_FAULT_NONE;
	sd->fault_sticky = false;
	if (!bd->detached && !sh_block_usable(sd->cdev))
		sh_dev_forget(sd);
}

/*
 * Under the lock. A disk whose deletion began has its record forgotten
 * here: the class interface may already have passed it.
 */
int sh_block_fault_apply(struct sh_dev *sd, unsigned int fault, char *msg,
			 size_t len)
{
	struct sh_block_dev *bd = sh_block(sd);
	const char *name;
	bool sticky = sd->fault_sticky;
	int err = 0;

	if (bd->detached)
		return sh_fault_pend(sd, fault, msg, len);
	name = dev_name(sd->cdev);
	if (!sh_block_usable(sd->cdev)) {
		scnprintf(msg, len, "block:%s is being removed", name);
		sh_dev_forget(sd);
		return -ENODEV;
	}
	if (sd->state != SH_PASSIVE) {
		scnprintf(msg, len, "block:%s is %s: no driver to inject into",
			  name, sh_state_name(sd->state));
		return -EBUSY;
	}
	/* One fault at a time. */
	sh_block_fault_lift(sd, 0);
	sd->fault = SH_FAULT_NONE;
	sd->fault_sticky = sticky;
	switch (fault) {
	case SH_BLOCK_FAULT_LOST_IRQ:
		err = sh_irqs_silence(sd, msg, len);
		break;
	case SH_BLOCK_FAULT_FAIL_STOP:
		sh_ops_fail(sd, BLK_STS_IOERR);
		break;
	case SH_BLOCK_FAULT_DISK_ERROR:
		if (!bd->scsi) {
			sh_ops_fail(sd, BLK_STS_IOERR);
			break;
		}
		err = sh_offline(sd, true);
		if (err)
			scnprintf(msg, len,
				  "block:%s: its SCSI device refused the offline state: error %d",
				  name, err);
		break;
	default:
		return 0;
	}
	if (err) {
		sd->fault_sticky = false;
		return err;
	}
	sd->fault = fault;
	pr_notice("fault %s injected into block:%s%s\n",
		  sh_block_fault_name(fault), name,
		  sd->fault_sticky ? " (sticky)" : "");
	return 0;
}
