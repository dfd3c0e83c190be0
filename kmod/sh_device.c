// SPDX-License-Identifier: GPL-2.0
/*
 * Per-device records, whatever the class: the device's state (passive,
 * restarting, parked), its injected fault, and the class's own data (staged
 * settings, the driver's saved entry points, ...). A record is created the
 * first time the helper touches a device and goes when the device does.
 *
 * Writers hold the lock of the record's class (which also keeps two of them
 * from adding the same device) and sh_devs_lock; readers hold RCU. A record
 * goes only under its class's lock, so a holder of that lock may keep using
 * a record it found after leaving RCU.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/overflow.h>
#include <linux/slab.h>
#include <linux/spinlock.h>

#include "sh_class.h"

static LIST_HEAD(sh_devs);
static DEFINE_SPINLOCK(sh_devs_lock);

struct sh_dev *sh_dev_find(const struct device *cdev)
{
	struct sh_dev *sd;

	list_for_each_entry_rcu(sd, &sh_devs, node,
				lockdep_is_held(&sh_devs_lock))
		if (sd->cdev == cdev)
			return sd;
	return NULL;
}

/*
 * Under the class's lock: its parked record on @bus, if any. Without the
 * lock the answer is only a hint (the record may go meanwhile): look again
 * under it before using the record.
 */
struct sh_dev *sh_dev_find_parked(const struct sh_class *cls,
				  const struct device *bus)
{
	struct sh_dev *sd, *found = NULL;

	rcu_read_lock();
	list_for_each_entry_rcu(sd, &sh_devs, node)
		if (sd->cls == cls && sd->bus == bus &&
		    sd->state == SH_PARKED) {
			found = sd;
			break;
		}
	rcu_read_unlock();
	return found;
}

/* Under the class's lock; NULL when out of memory. */
struct sh_dev *sh_dev_get(const struct sh_class *cls, struct device *cdev)
{
	struct sh_dev *sd;

	rcu_read_lock();
	sd = sh_dev_find(cdev);
	rcu_read_unlock();
	if (sd)
		return sd;
	sd = kzalloc(struct_size(sd, priv, cls->priv_size), GFP_KERNEL);
	if (!sd)
		return NULL;
	sd->cls = cls;
	sd->cdev = cdev;
	sd->bus = cdev->parent;
	sd->state = SH_PASSIVE;
	sd->fault = SH_FAULT_NONE;
	if (cls->record_init)
		cls->record_init(sd);
	spin_lock(&sh_devs_lock);
	list_add_rcu(&sd->node, &sh_devs);
	spin_unlock(&sh_devs_lock);
	return sd;
}

/*
 * Under the class's lock: the record is no longer found by its class device
 * (which is going), but whoever unlisted it may still use it, and frees it.
 */
void sh_dev_unlist(struct sh_dev *sd)
{
	spin_lock(&sh_devs_lock);
	list_del_rcu(&sd->node);
	spin_unlock(&sh_devs_lock);
}

/* An unlisted record, once nothing of the class can call into it. */
void sh_dev_free(struct sh_dev *sd)
{
	kfree_rcu(sd, rcu);
}

/* Under the class's lock, once nothing of the class can call into it. */
void sh_dev_forget(struct sh_dev *sd)
{
	sh_dev_unlist(sd);
	sh_dev_free(sd);
}

const char *sh_state_name(enum sh_state state)
{
	switch (state) {
	case SH_RESTARTING:
		return "restarting";
	case SH_PARKED:
		return "parked";
	default:
		return "passive";
	}
}

/*
 * Module exit, after the classes' exit: nothing looks the records up any
 * more, and no device calls into the module (a class pins it meanwhile).
 */
void sh_devices_exit(void)
{
	struct sh_dev *sd, *tmp;

	list_for_each_entry_safe(sd, tmp, &sh_devs, node)
		sh_dev_forget(sd);
	rcu_barrier();
}
