// SPDX-License-Identifier: GPL-2.0
/*
 * The network class: the shadow of every network driver. Its devices are
 * net_devices named by interface name (net:eth0), its lock is RTNL, and it
 * has two commands of its own: txstat, the transmit counters the daemon's
 * stall detector polls, and stage, the ethtool settings the next restart
 * writes into the fresh driver. Its restart phases are in sh_net_restart.c,
 * the hooks that keep the net_device in sh_net_hooks.c, the ops that answer
 * for the driver in sh_net_impersonate.c, and its faults in sh_net_fault.c.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/jiffies.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/string.h>

#include "sh_net.h"

/* Ring sizes beyond this are a typo, not a setting (drivers allow ~4096). */
#define SH_RING_MAX	BIT(20)

struct sh_dev *sh_net_find(const struct net_device *dev)
{
	return sh_dev_find(&dev->dev);
}

/* Under RTNL: records go only under RTNL, so the one found stays. */
struct sh_dev *sh_net_find_rtnl(const struct net_device *dev)
{
	struct sh_dev *sd;

	ASSERT_RTNL();
	rcu_read_lock();
	sd = sh_net_find(dev);
	rcu_read_unlock();
	return sd;
}

/*
 * Puts our ops in front of the driver's. The first time, the driver's own ops
 * are remembered and the module is pinned: it must not unload while a device
 * calls into it.
 */
void sh_net_put_ops(struct sh_dev *sd, const struct net_device_ops *ops,
		    const struct ethtool_ops *ethtool)
{
	struct sh_net_dev *nd = sh_net(sd);
	struct net_device *dev = nd->dev;

	ASSERT_RTNL();
	if (!nd->ops_ours) {
		/* A restart job or an inject request holds the module here. */
		__module_get(THIS_MODULE);
		nd->real_ops = dev->netdev_ops;
		nd->real_ethtool = dev->ethtool_ops;
		nd->ops_ours = true;
	}
	WRITE_ONCE(dev->netdev_ops, ops);
	WRITE_ONCE(dev->ethtool_ops, ethtool);
}

/* Gives the device back its driver's ops; the caller waits for readers. */
void sh_net_restore_ops(struct sh_dev *sd)
{
	struct sh_net_dev *nd = sh_net(sd);
	struct net_device *dev = nd->dev;

	ASSERT_RTNL();
	if (!nd->ops_ours)
		return;
	WRITE_ONCE(dev->netdev_ops, nd->real_ops);
	WRITE_ONCE(dev->ethtool_ops, nd->real_ethtool);
	nd->ops_ours = false;
	synchronize_net();
	module_put(THIS_MODULE);
}

/*
 * A device the shadow holds (restarting or parked) must not change network
 * namespace: the move unregisters it from the old namespace, which would
 * drop the record the restart is using, and would hand the shadow's ops to
 * a namespace that never asked for a restart. The kernel's own flag for
 * devices that may not move makes the move fail with -EINVAL (kmod/sh_net.mk
 * says which spelling the kernel has).
 */
static bool sh_netns_local(const struct net_device *dev)
{
#if defined(SH_NETNS_IMMUTABLE)
	return dev->netns_immutable;
#elif defined(SH_NETNS_LOCAL_BIT)
	return dev->netns_local;
#else
	return dev->features & NETIF_F_NETNS_LOCAL;
#endif
}

static void sh_set_netns_local(struct net_device *dev, bool on)
{
#if defined(SH_NETNS_IMMUTABLE)
	dev->netns_immutable = on;
#elif defined(SH_NETNS_LOCAL_BIT)
	dev->netns_local = on;
#else
	if (on)
		dev->features |= NETIF_F_NETNS_LOCAL;
	else
		dev->features &= ~NETIF_F_NETNS_LOCAL;
#endif
}

void sh_net_pin_netns(struct sh_dev *sd)
{
	struct sh_net_dev *nd = sh_net(sd);

	ASSERT_RTNL();
	if (!nd->netns_pinned) {
		nd->netns_local_was = sh_netns_local(nd->dev);
		nd->netns_pinned = true;
	}
	/* Again after a probe, which may have rewritten the feature word. */
	sh_set_netns_local(nd->dev, true);
}

/*
 * The fresh driver's probe may have rewritten the features: the device gets
 * back what its driver had said before the restart.
 */
void sh_net_unpin_netns(struct sh_dev *sd)
{
	struct sh_net_dev *nd = sh_net(sd);

	ASSERT_RTNL();
	if (!nd->netns_pinned)
		return;
	sh_set_netns_local(nd->dev, nd->netns_local_was);
	nd->netns_pinned = false;
}

/* 1-15 bytes, not "." or "..", no '/', ':' or whitespace. */
static bool sh_net_valid_name(const char *name)
{
	return strlen(name) < IFNAMSIZ && dev_valid_name(name);
}

static struct device *sh_net_get(const char *name)
{
	struct net_device *dev = dev_get_by_name(&init_net, name);

	return dev ? &dev->dev : NULL;
}

static void sh_net_put(struct device *cdev)
{
	dev_put(to_net_dev(cdev));
}

static void sh_net_record_init(struct sh_dev *sd)
{
	sh_net(sd)->dev = to_net_dev(sd->cdev);
}

static void sh_net_reply_fields(struct device *cdev, char *buf, size_t len)
{
	scnprintf(buf, len, " ifindex=%d", to_net_dev(cdev)->ifindex);
}

static void sh_net_txstat(struct sh_file *sf, const struct sh_ref *ref,
			  unsigned int argc, char **argv)
{
	struct rtnl_link_stats64 stats;
	unsigned long oldest = 0;
	unsigned long timeouts = 0;
	unsigned long inflight = 0;
	unsigned int completed = 0;
	unsigned int stopped = 0;
	enum sh_state state;
	struct net_device *dev;
	struct device *cdev;
	struct sh_dev *sd;
	unsigned int i;

	cdev = sh_lookup(sf, ref, false);
	if (!cdev)
		return;
	dev = to_net_dev(cdev);
	for (i = 0; i < dev->real_num_tx_queues; i++) {
		struct netdev_queue *txq = netdev_get_tx_queue(dev, i);
		unsigned long age = jiffies - READ_ONCE(txq->trans_start);

		timeouts += atomic_long_read(&txq->trans_timeout);
#ifdef CONFIG_BQL
		/*
		 * Byte queue limits count what the driver was handed and what
		 * the device completed: completions that stop while bytes are
		 * in flight show lost interrupts before the ring fills.
		 */
		/*
		 * Both are 32-bit counters that wrap: their difference is
		 * taken in 32 bits, so a num_queued that has wrapped and a
		 * num_completed that has not yet still give the bytes in
		 * flight. num_completed is read first (it never passes
		 * num_queued); a completion between the reads, seen the other
		 * way round on a weakly ordered CPU, would make the difference
		 * negative: that queue counts as nothing in flight.
		 */
		{
			unsigned int done = READ_ONCE(txq->dql.num_completed);
			unsigned int queued;
			int diff;

			/* Pairs with the completion path: num_completed first. */
			smp_rmb();
			queued = READ_ONCE(txq->dql.num_queued);
			diff = (int)(queued - done);
			if (diff > 0)
				inflight += diff;
			completed += done;
		}
#endif
		if (!netif_xmit_stopped(txq))
			continue;
		stopped++;
		oldest = max(oldest, age);
	}
	dev_get_stats(dev, &stats);
	rcu_read_lock();
	sd = sh_net_find(dev);
	state = sd ? sd->state : SH_PASSIVE;
	rcu_read_unlock();
	sh_reply_ok(sf,
		    "ifindex=%d state=%s running=%d carrier=%d queues=%u stopped=%u stalled_ms=%u watchdog_ms=%u tx_packets=%llu inflight=%lu completed=%u timeouts=%lu",
		    dev->ifindex, sh_state_name(state), netif_running(dev),
		    netif_carrier_ok(dev), dev->real_num_tx_queues, stopped,
		    jiffies_to_msecs(oldest),
		    jiffies_to_msecs(dev->watchdog_timeo), stats.tx_packets,
		    inflight, completed, timeouts);
	sh_net_put(cdev);
}

static void sh_net_stage(struct sh_file *sf, const struct sh_ref *ref,
			 unsigned int argc, char **argv)
{
	static const struct {
		const char *key;
		unsigned int args;
		u32 max;
	} keys[] = {
		{ "rings", 4, SH_RING_MAX },
		{ "msglvl", 1, U32_MAX },
		{ "pause", 3, 1 },
		{ "privflags", 1, U32_MAX },
		{ "clear", 0, 0 },
	};
	struct device *cdev;
	struct sh_staged *st;
	struct sh_dev *sd;
	u32 v[4];
	size_t k;

	for (k = 0; k < ARRAY_SIZE(keys); k++)
		if (!strcmp(argv[0], keys[k].key))
			break;
	if (k == ARRAY_SIZE(keys)) {
		sh_reply_err(sf, EINVAL,
			     "unknown setting '%.16s' (rings, msglvl, pause, privflags, clear)",
			     argv[0]);
		return;
	}
	if (argc - 1 != keys[k].args) {
		sh_reply_err(sf, EINVAL, "stage %s takes %u values, got %u",
			     keys[k].key, keys[k].args, argc - 1);
		return;
	}
	if (!sh_parse_numbers(sf, argc - 1, argv + 1, keys[k].max, v))
		return;
	cdev = sh_lookup(sf, ref, true);
	if (!cdev)
		return;
	rtnl_lock();
	sd = sh_dev_get(&sh_net_class, cdev);
	if (!sd) {
		rtnl_unlock();
		sh_net_put(cdev);
		sh_reply_err(sf, ENOMEM, "out of memory");
		return;
	}
	st = &sh_net(sd)->staged;
	switch (k) {
	case 0:
		st->rx = v[0];
		st->rx_mini = v[1];
		st->rx_jumbo = v[2];
		st->tx = v[3];
		st->has_rings = true;
		break;
	case 1:
		st->msglvl = v[0];
		st->has_msglvl = true;
		break;
	case 2:
		st->pause_autoneg = v[0];
		st->pause_rx = v[1];
		st->pause_tx = v[2];
		st->has_pause = true;
		break;
	case 3:
		st->privflags = v[0];
		st->has_privflags = true;
		break;
	default:
		memset(st, 0, sizeof(*st));
		break;
	}
	rtnl_unlock();
	sh_reply_ok(sf, "staged %s %s", ref->text, keys[k].key);
	sh_net_put(cdev);
}

static const struct sh_class_cmd sh_net_cmds[] = {
	{ "txstat", 1, 1, sh_net_txstat },
	{ "stage", 2, 6, sh_net_stage },
};

/*
 * A device that really goes away (its driver unloaded without us, or it was
 * deleted) takes its record with it. A parked device has no driver ops to
 * give back: ours stay until it is freed, which needs no more calls into us.
 * A restart's record is the worker's: the device cannot leave its namespace
 * meanwhile (sh_net_pin_netns()) and its driver's unregister is skipped, so
 * this is only a warning that something else unregistered it; the record
 * stays with the worker, which holds a reference to the device.
 */
static int sh_net_event(struct notifier_block *nb, unsigned long event,
			void *ptr)
{
	struct net_device *dev = netdev_notifier_info_to_dev(ptr);
	struct sh_dev *sd;

	if (event != NETDEV_UNREGISTER)
		return NOTIFY_DONE;
	sd = sh_net_find_rtnl(dev);
	if (!sd)
		return NOTIFY_DONE;
	if (sd->state == SH_RESTARTING) {
		pr_warn("%s unregistered during a restart; its record stays with the restart\n",
			dev->name);
		return NOTIFY_DONE;
	}
	if (sd->state == SH_PASSIVE)
		sh_net_restore_ops(sd);
	sh_net_fault_unmask_irq(sd);
	sh_dev_forget(sd);
	return NOTIFY_DONE;
}

/*
 * The bus device of a parked interface is being deleted: no driver will
 * probe it again. Its driver's remove() ran when it was released, but left
 * the net_device to the shadow: it is unregistered now (NETDEV_UNREGISTER
 * forgets the record) and freed, and the module is no longer pinned by it.
 * A device with a destructor of its own is left as it is.
 */
static void sh_net_bus_gone(struct device *bus)
{
	struct net_device *dev = NULL;
	struct sh_net_dev *nd;
	struct sh_dev *sd;
	bool pinned = false;

	rtnl_lock();
	sd = sh_dev_find_parked(&sh_net_class, bus);
	if (sd) {
		nd = sh_net(sd);
		dev = nd->dev;
		pinned = nd->ops_ours;
		if (dev->priv_destructor || dev->needs_free_netdev) {
			pr_warn("%s: %s was removed; the parked interface has a destructor of its driver's and stays\n",
				dev->name, dev_name(bus));
			dev = NULL;
		} else {
			pr_info("%s: %s was removed: the parked interface goes with it\n",
				dev->name, dev_name(bus));
			unregister_netdevice(dev);
		}
	}
	rtnl_unlock();
	if (!dev)
		return;
	free_netdev(dev);
	/* Our ops were the last code it could call: sh_net_put_ops()'s pin. */
	if (pinned)
		module_put(THIS_MODULE);
}

static struct notifier_block sh_net_nb = {
	.notifier_call = sh_net_event,
};

static int sh_net_init(void)
{
	return register_netdevice_notifier(&sh_net_nb);
}

/* Unregistering sends NETDEV_UNREGISTER for every device: records go. */
static void sh_net_exit(void)
{
	unregister_netdevice_notifier(&sh_net_nb);
	sh_hooks_exit();
}

const struct sh_class sh_net_class = {
	.id = "net",
	.noun = "interface",
	.name_rule = "1-15 bytes, no '/', ':' or whitespace",
	.priv_size = sizeof(struct sh_net_dev),
	.run_size = sizeof(struct sh_net_run),
	.cmds = sh_net_cmds,
	.n_cmds = ARRAY_SIZE(sh_net_cmds),
	.fault_list =
		"tx-hang, tx-hang-reset, fail-stop, fail-open, fail-mtu, fail-mac, fail-features, fail-rings, lost-irq",
	.init = sh_net_init,
	.exit = sh_net_exit,
	.valid_name = sh_net_valid_name,
	.get = sh_net_get,
	.put = sh_net_put,
	.lock = rtnl_lock,
	.unlock = rtnl_unlock,
	.record_init = sh_net_record_init,
	.reply_fields = sh_net_reply_fields,
	.arm = sh_net_arm,
	.check = sh_net_check,
	.disarm = sh_net_disarm,
	.set_phase = sh_net_set_phase,
	.stop = sh_net_stop,
	.impersonate = sh_net_impersonate,
	.released = sh_net_released,
	.probed = sh_net_probed,
	.unimpersonate = sh_net_unimpersonate,
	.replay = sh_net_replay,
	.open = sh_net_open,
	.quiesce = sh_net_quiesce,
	.bus_gone = sh_net_bus_gone,
	.fault_parse = sh_net_fault_parse,
	.fault_name = sh_net_fault_name,
	.fault_apply = sh_net_fault_apply,
	.fault_clear = sh_net_fault_clear,
};
