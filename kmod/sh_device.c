// SPDX-License-Identifier: GPL-2.0
/*
 * Per-device records: what the daemon staged for replay, the injected fault,
 * and whether the shadow's ops stand in for the driver's. Records are changed
 * under RTNL and read under RCU by the ops that stand in.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>

#include "shadow_helper.h"

static LIST_HEAD(sh_devs);

struct sh_dev *sh_dev_find(const struct net_device *dev)
{
	struct sh_dev *sd;

	list_for_each_entry_rcu(sd, &sh_devs, node, lockdep_rtnl_is_held())
		if (sd->dev == dev)
			return sd;
	return NULL;
}

struct sh_dev *sh_dev_get(struct net_device *dev)
{
	struct sh_dev *sd;

	ASSERT_RTNL();
	sd = sh_dev_find(dev);
	if (sd)
		return sd;
	sd = kzalloc(sizeof(*sd), GFP_KERNEL);
	if (!sd)
		return NULL;
	sd->dev = dev;
	sd->ifindex = dev->ifindex;
	sd->state = SH_PASSIVE;
	list_add_rcu(&sd->node, &sh_devs);
	return sd;
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
 * Puts our ops in front of the driver's. The first time, the driver's own ops
 * are remembered and the module is pinned: it must not unload while a device
 * calls into it.
 */
void sh_dev_put_ops(struct sh_dev *sd, const struct net_device_ops *ops,
		    const struct ethtool_ops *ethtool)
{
	struct net_device *dev = sd->dev;

	ASSERT_RTNL();
	if (!sd->ops_ours) {
		__module_get(THIS_MODULE);
		sd->real_ops = dev->netdev_ops;
		sd->real_ethtool = dev->ethtool_ops;
		sd->ops_ours = true;
	}
	WRITE_ONCE(dev->netdev_ops, ops);
	WRITE_ONCE(dev->ethtool_ops, ethtool);
}

/* Gives the device back its driver's ops; the caller waits for readers. */
void sh_dev_restore_ops(struct sh_dev *sd)
{
	struct net_device *dev = sd->dev;

	ASSERT_RTNL();
	if (!sd->ops_ours)
		return;
	WRITE_ONCE(dev->netdev_ops, sd->real_ops);
	WRITE_ONCE(dev->ethtool_ops, sd->real_ethtool);
	sd->ops_ours = false;
	synchronize_net();
	module_put(THIS_MODULE);
}

static void sh_dev_forget(struct sh_dev *sd)
{
	list_del_rcu(&sd->node);
	kfree_rcu(sd, rcu);
}

/*
 * A device that really goes away (its driver unloaded without us, or it was
 * deleted) takes its record with it. A parked device has no driver ops to
 * give back: ours stay until it is freed, which needs no more calls into us.
 */
static int sh_netdev_event(struct notifier_block *nb, unsigned long event,
			   void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	struct sh_dev *sd;

	if (event != NETDEV_UNREGISTER)
		return NOTIFY_DONE;
	sd = sh_dev_find(dev);
	if (!sd)
		return NOTIFY_DONE;
	if (sd->state == SH_PASSIVE)
		sh_dev_restore_ops(sd);
	sh_fault_unmask_irq(sd);
	sh_dev_forget(sd);
	return NOTIFY_DONE;
}

static struct notifier_block sh_netdev_nb = {
	.notifier_call = sh_netdev_event,
};

int sh_devices_init(void)
{
	return register_netdevice_notifier(&sh_netdev_nb);
}

/* Module exit: no device uses our ops (each one pins the module). */
void sh_devices_exit(void)
{
	struct sh_dev *sd, *tmp;

	unregister_netdevice_notifier(&sh_netdev_nb);
	rtnl_lock();
	list_for_each_entry_safe(sd, tmp, &sh_devs, node)
		sh_dev_forget(sd);
	rtnl_unlock();
	rcu_barrier();
}
