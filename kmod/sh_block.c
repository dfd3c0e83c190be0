// SPDX-License-Identifier: GPL-2.0
/*
 * The block class: the helper's hands for every disk driver. Its devices are
 * whole disks named by their kernel name (block:sda, block:vda), its lock is
 * a mutex of its own, and its restart unit is the nearest ancestor of the
 * disk that a driver is bound to and that is not on the scsi bus (sd is the
 * SCSI upper layer, part of the class stack, not the failing driver): the
 * PCI function of an ATA controller, the virtio device of a virtio disk.
 *
 * Nothing here keeps a disk across a restart: the old disk is deleted with
 * its driver and the fresh driver adds a new one (ATA scans asynchronously);
 * the daemon's dm-multipath map holds the I/O meanwhile and is switched to
 * the new disk from userspace. A record lives exactly as long as its disk:
 * a class interface on the block class hears every disk's deletion, lifts
 * its faults and forgets it. Restart phases are in sh_block_restart.c,
 * faults in sh_block_fault.c.
 *
 * The block class itself is not exported to modules; it is taken once, at
 * load, from a gendisk allocated for that and never added.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ctype.h>
#include <linux/mutex.h>
#include <linux/string.h>

#include "sh_block.h"

#if SH_KERNEL >= 604
#define SH_CLASS_CONST const
#else
#define SH_CLASS_CONST
#endif

static DEFINE_MUTEX(sh_block_mutex);
static SH_CLASS_CONST struct class *sh_block_cls;
static const struct device_type *sh_disk_type;

struct sh_run *sh_block_run_now;
/* The disk the class interface is adding: not live yet, but usable. */
static struct device *sh_block_adding;

void sh_block_lock(void)
{
	mutex_lock(&sh_block_mutex);
}

void sh_block_unlock(void)
{
	mutex_unlock(&sh_block_mutex);
}

/*
 * Under the lock: a live disk, whose deletion will wait for the lock in
 * sh_block_remove_dev(), or the one being added (live once added).
 */
bool sh_block_usable(struct device *dev)
{
	lockdep_assert_held(&sh_block_mutex);
	return dev == sh_block_adding || disk_live(dev_to_disk(dev));
}

/* A whole disk, not a partition (both are in the block class). */
bool sh_block_is_disk(struct device *dev)
{
	return dev->type == sh_disk_type;
}

static bool sh_on_scsi_bus(struct device *dev)
{
	return dev->bus && !strcmp(dev->bus->name, "scsi");
}

/* The disk's parent is a SCSI device (not its target or host). */
bool sh_block_parent_is_scsi(struct device *disk_dev)
{
	struct device *parent = disk_dev->parent;

	return parent && sh_on_scsi_bus(parent) && parent->type &&
	       parent->type->name && !strcmp(parent->type->name, "scsi_device");
}

/*
 * The restart unit of a live disk: its nearest ancestor bound to a driver
 * and not on the scsi bus; NULL for a disk with no driver under it
 * (device-mapper, loop). Under the lock, with the disk live: its deletion
 * waits for the lock in sh_block_remove_dev(), so its ancestors stay.
 */
struct device *sh_block_unit(struct device *disk_dev)
{
	struct device *dev;

	lockdep_assert_held(&sh_block_mutex);
	for (dev = disk_dev->parent; dev; dev = dev->parent) {
		if (sh_on_scsi_bus(dev))
			continue;
		if (READ_ONCE(dev->driver))
			return dev;
	}
	return NULL;
}

struct sh_each_disk {
	struct device *unit;
	void *data;
	sh_disk_fn fn;
};

static int sh_each_disk_match(struct device *dev, void *data)
{
	struct sh_each_disk *each = data;

	if (!sh_block_is_disk(dev) || !disk_live(dev_to_disk(dev)) ||
	    sh_block_unit(dev) != each->unit)
		return 0;
	return each->fn(dev, each->data);
}

/* Under the lock: @fn for every live whole disk under @unit. */
int sh_block_walk_disks(struct device *unit, sh_disk_fn fn, void *data)
{
	struct sh_each_disk each = { .unit = unit, .data = data, .fn = fn };

	lockdep_assert_held(&sh_block_mutex);
	return class_for_each_device(sh_block_cls, NULL, &each,
				     sh_each_disk_match);
}

static int sh_count_one(struct device *dev, void *data)
{
	(*(unsigned int *)data)++;
	return 0;
}

unsigned int sh_block_count_disks(struct device *unit)
{
	unsigned int n = 0;

	sh_block_walk_disks(unit, sh_count_one, &n);
	return n;
}

/* A whole disk's kernel name: 1-31 bytes, not "." or "..", no '/', ':' or space. */
static bool sh_block_valid_name(const char *name)
{
	size_t len = strlen(name);
	size_t i;

	if (!len || len >= DISK_NAME_LEN || !strcmp(name, ".") ||
	    !strcmp(name, ".."))
		return false;
	for (i = 0; i < len; i++)
		if (name[i] == '/' || name[i] == ':' || isspace(name[i]))
			return false;
	return true;
}

static struct device *sh_block_get(const char *name)
{
	return class_find_device_by_name(sh_block_cls, name);
}

static void sh_block_put(struct device *cdev)
{
	put_device(cdev);
}

static struct device *sh_block_bus_of(struct device *cdev, char *msg,
				      size_t len)
{
	struct device *unit = NULL;

	sh_block_lock();
	if (!sh_block_is_disk(cdev))
		scnprintf(msg, len,
			  "block:%s is a partition: name its whole disk",
			  dev_name(cdev));
	else if (!disk_live(dev_to_disk(cdev)))
		scnprintf(msg, len, "block:%s is being removed",
			  dev_name(cdev));
	else
		unit = sh_block_unit(cdev);
	if (!unit && !msg[0])
		scnprintf(msg, len,
			  "block:%s has no driver under it (device-mapper, loop and other virtual disks cannot be restarted)",
			  dev_name(cdev));
	get_device(unit);
	sh_block_unlock();
	return unit;
}

static void sh_block_record_init(struct sh_dev *sd)
{
	struct sh_block_dev *bd = sh_block(sd);

	bd->disk = dev_to_disk(sd->cdev);
	bd->scsi = sh_block_parent_is_scsi(sd->cdev);
	/* The unit, not the parent: what a fault silences and a restart frees. */
	sd->bus = sh_block_usable(sd->cdev) ? sh_block_unit(sd->cdev) : NULL;
}

/* " unit=NAME disks=N": the unit restarted and the disks it had. */
static void sh_block_reply_fields(struct device *cdev, char *buf, size_t len)
{
	struct device *unit = NULL;
	unsigned int disks = 0;

	sh_block_lock();
	if (sh_block_is_disk(cdev) && disk_live(dev_to_disk(cdev)))
		unit = sh_block_unit(cdev);
	if (unit)
		disks = sh_block_count_disks(unit);
	scnprintf(buf, len, " unit=%s disks=%u", unit ? dev_name(unit) : "none",
		  disks);
	sh_block_unlock();
}

/*
 * A disk being deleted (its driver let go, or it was removed) takes its
 * record along; its faults are lifted first, while the driver still holds
 * its interrupts and its queue. The record of the disk a restart works on
 * stays with the restart (detached) until the restart ends.
 */
static void sh_block_disk_gone(struct device *dev)
{
	struct sh_dev *sd;

	if (!sh_block_is_disk(dev))
		return;
	sh_block_lock();
	rcu_read_lock();
	sd = sh_dev_find(dev);
	rcu_read_unlock();
	if (sd) {
		sh_block_fault_lift(sd, SH_LIFT_KEEP_OFFLINE);
		if (sh_block_run_now && sh_block_run_now->sd == sd) {
			sh_dev_unlist(sd);
			sh_block(sd)->detached = true;
			sh_block(sd)->disk = NULL;
		} else {
			sh_dev_forget(sd);
		}
	}
	sh_block_unlock();
}

static void sh_block_disk_added(struct device *dev)
{
	if (!sh_block_is_disk(dev))
		return;
	sh_block_lock();
	sh_block_adding = dev;
	sh_block_pending_disk_added(dev);
	sh_block_adding = NULL;
	sh_block_unlock();
}

#if SH_KERNEL >= 604
static int sh_block_add_dev(struct device *dev)
{
	sh_block_disk_added(dev);
	return 0;
}

static void sh_block_remove_dev(struct device *dev)
{
	sh_block_disk_gone(dev);
}
#else
static int sh_block_add_dev(struct device *dev, struct class_interface *intf)
{
	sh_block_disk_added(dev);
	return 0;
}

static void sh_block_remove_dev(struct device *dev,
				struct class_interface *intf)
{
	sh_block_disk_gone(dev);
}
#endif

static struct class_interface sh_block_intf = {
	.add_dev = sh_block_add_dev,
	.remove_dev = sh_block_remove_dev,
};

/* The block class and the whole-disk type, from a disk never added. */
static int sh_block_find_class(void)
{
	struct gendisk *disk;

#if SH_KERNEL >= 609
	disk = blk_alloc_disk(NULL, NUMA_NO_NODE);
	if (IS_ERR(disk))
		return PTR_ERR(disk);
#else
	disk = blk_alloc_disk(NUMA_NO_NODE);
	if (!disk)
		return -ENOMEM;
#endif
	sh_block_cls = disk_to_dev(disk)->class;
	sh_disk_type = disk_to_dev(disk)->type;
	put_disk(disk);
	return sh_block_cls && sh_disk_type ? 0 : -ENODEV;
}

static int sh_block_init(void)
{
	int err = sh_block_find_class();

	if (err) {
		pr_err("cannot find the block class: %d\n", err);
		return err;
	}
	sh_block_intf.class = sh_block_cls;
	return class_interface_register(&sh_block_intf);
}

/* Unregistering calls remove_dev for every disk: faults lift, records go. */
static void sh_block_exit(void)
{
	class_interface_unregister(&sh_block_intf);
	sh_block_lock();
	sh_block_pending_exit();
	sh_block_unlock();
}

const struct sh_class sh_block_class = {
	.id = "block",
	.noun = "disk",
	.name_rule =
		"a whole disk's kernel name: 1-31 bytes, no '/', ':' or whitespace",
	.priv_size = sizeof(struct sh_block_dev),
	.run_size = sizeof(struct sh_block_run),
	.cdev_goes = true,
	.fault_list = "lost-irq, fail-stop, disk-error",
	.init = sh_block_init,
	.exit = sh_block_exit,
	.valid_name = sh_block_valid_name,
	.get = sh_block_get,
	.put = sh_block_put,
	.bus_of = sh_block_bus_of,
	.lock = sh_block_lock,
	.unlock = sh_block_unlock,
	.record_init = sh_block_record_init,
	.reply_fields = sh_block_reply_fields,
	.arm = sh_block_arm,
	.disarm = sh_block_disarm,
	.set_phase = sh_block_set_phase,
	.stop = sh_block_stop,
	.impersonate = sh_block_impersonate,
	.released = sh_block_released,
	.probed = sh_block_probed,
	.unimpersonate = sh_block_unimpersonate,
	.replay = sh_block_replay,
	.open = sh_block_open,
	.quiesce = sh_block_quiesce,
	.fault_parse = sh_block_fault_parse,
	.fault_name = sh_block_fault_name,
	.fault_apply = sh_block_fault_apply,
	.fault_clear = sh_block_fault_clear,
};
