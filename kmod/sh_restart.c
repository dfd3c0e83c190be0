// SPDX-License-Identifier: GPL-2.0
/*
 * Restarting a network driver instance with its net_device kept, and
 * replaying the device's configuration into the fresh instance.
 *
 *  stop     under RTNL: the failed driver's faults are lifted, the device is
 *           quiesced as dev_close() would (but without NETDEV_DOWN, so
 *           addresses, routes and sockets stay), its ndo_stop() runs, and
 *           the shadow's ops take over (sh_impersonate.c);
 *  release  driver core unbinds the driver; sh_hooks.c keeps the net_device;
 *  (reload) the driver's module is unloaded and loaded again (sh_reload.c);
 *  probe    driver core binds it again; the probe is handed the same device;
 *  replay   under RTNL, with the device not running: the driver's new ops
 *           go in, then MAC, MTU, features, VLAN filters and the staged
 *           ethtool settings are written through the driver's own entry
 *           points, each step checked;
 *  open     the driver's ndo_open() and the qdisc's reactivation, as
 *           __dev_open() does, if the device is up.
 *
 * Everything runs in the module's worker (sh_control.c), so a requester that
 * dies mid-restart cannot leave the device half done. If the driver does not
 * come back the device is parked: the shadow keeps answering for it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/etherdevice.h>
#include <linux/if_vlan.h>
#include <linux/ktime.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/socket.h>
#include <net/arp.h>
#include <net/ndisc.h>
#include <net/neighbour.h>
#include <net/sch_generic.h>

#include "shadow_helper.h"

static DEFINE_MUTEX(sh_restart_lock);

struct sh_replay {
	struct sh_dev *sd;
	struct sh_result *res;
	const char *id;
	size_t len;		/* of res->steps */
	u8 mac[MAX_ADDR_LEN];
	netdev_features_t wanted;
	netdev_features_t features;
};

static unsigned int sh_ms_since(ktime_t *mark)
{
	ktime_t now = ktime_get();
	unsigned int ms = ktime_ms_delta(now, *mark);

	*mark = now;
	return ms;
}

static void sh_step(struct sh_replay *rp, const char *key, int err, bool done)
{
	struct sh_result *res = rp->res;
	const char *what = err ? "fail" : done ? "ok" : "skip";

	rp->len += scnprintf(res->steps + rp->len, sizeof(res->steps) - rp->len,
			     "%s%s:%s", rp->len ? "," : "", key, what);
	if (err)
		pr_warn("recovery %s: %s: %s failed: error %d\n",
			rp->id, rp->sd->dev->name, key, err);
}

/* As __dev_close_many() does, minus the notifications. */
static void sh_quiesce(struct sh_dev *sd)
{
	struct net_device *dev = sd->dev;
	const struct net_device_ops *ops = dev->netdev_ops;

	if (!netif_running(dev))
		return;
	clear_bit(__LINK_STATE_START, &dev->state);
	smp_mb__after_atomic(); /* as dev_close: START is clear before xmit stops */
	dev_deactivate(dev);
	if (!sh_is_impersonating(dev) && ops->ndo_stop)
		ops->ndo_stop(dev);
}

static int sh_replay_mac(struct sh_replay *rp)
{
	struct net_device *dev = rp->sd->dev;
	struct sockaddr_storage ss = {};
	struct sockaddr *sa = (struct sockaddr *)&ss;

	if (!memcmp(dev->dev_addr, rp->mac, dev->addr_len))
		return 0;
	if (!dev->netdev_ops->ndo_set_mac_address) {
		dev_addr_set(dev, rp->mac);
		return 1;
	}
	sa->sa_family = dev->type;
	memcpy(ss.__data, rp->mac, min_t(size_t, dev->addr_len,
					 sizeof(ss.__data)));
	return dev->netdev_ops->ndo_set_mac_address(dev, sa) ?: 1;
}

static int sh_replay_mtu(struct sh_replay *rp)
{
	struct net_device *dev = rp->sd->dev;

	if (dev->mtu == ETH_DATA_LEN)
		return 0;
	if ((dev->min_mtu && dev->mtu < dev->min_mtu) ||
	    (dev->max_mtu && dev->mtu > dev->max_mtu))
		return -ERANGE;
	if (!dev->netdev_ops->ndo_change_mtu)
		return 1;
	return dev->netdev_ops->ndo_change_mtu(dev, dev->mtu) ?: 1;
}

/*
 * register_netdevice() adds the stack's own feature bits; probe started
 * from the driver's, so they are added again here, then the features the
 * device wanted before are asked for again.
 */
static int sh_replay_features(struct sh_replay *rp)
{
	struct net_device *dev = rp->sd->dev;
	netdev_features_t probed = dev->features;

	dev->hw_features |= NETIF_F_SOFT_FEATURES | NETIF_F_SOFT_FEATURES_OFF;
	dev->features |= NETIF_F_SOFT_FEATURES;
	if (!(dev->flags & IFF_LOOPBACK))
		dev->hw_features |= NETIF_F_NOCACHE_COPY;
	if (dev->hw_features & NETIF_F_TSO)
		dev->hw_features |= NETIF_F_TSO_MANGLEID;
	if (dev->vlan_features & NETIF_F_TSO)
		dev->vlan_features |= NETIF_F_TSO_MANGLEID;
	dev->vlan_features |= NETIF_F_HIGHDMA;
	dev->hw_enc_features |= NETIF_F_SG | NETIF_F_GSO_PARTIAL;
	dev->mpls_features |= NETIF_F_SG;
	dev->wanted_features = (rp->wanted & dev->hw_features) |
		(dev->features & ~dev->hw_features);
	netdev_update_features(dev);
	/* What the driver can switch must be as it was before the restart. */
	if ((dev->features ^ rp->features) & dev->hw_features)
		return -EIO;
	return dev->features != probed;
}

static int sh_add_vid(struct net_device *vdev, int vid, void *arg)
{
	struct net_device *dev = arg;

	return dev->netdev_ops->ndo_vlan_rx_add_vid(dev, htons(ETH_P_8021Q),
						    vid);
}

/* 8021q keeps the VLAN ids; the driver's filter table was in its priv. */
static int sh_replay_vlan(struct sh_replay *rp)
{
	struct net_device *dev = rp->sd->dev;
	int err;

	if (!(dev->features & NETIF_F_HW_VLAN_CTAG_FILTER) ||
	    !dev->netdev_ops->ndo_vlan_rx_add_vid ||
	    !rcu_access_pointer(dev->vlan_info))
		return 0;
	err = vlan_for_each(dev, sh_add_vid, dev);
	return err ?: 1;
}

static int sh_replay_rings(struct sh_replay *rp)
{
	struct net_device *dev = rp->sd->dev;
	const struct ethtool_ops *eth = dev->ethtool_ops;
	const struct sh_staged *st = &rp->sd->staged;
	struct kernel_ethtool_ringparam kring = {};
	struct ethtool_ringparam ring = {};

	if (!st->has_rings)
		return 0;
	if (!eth || !eth->get_ringparam || !eth->set_ringparam)
		return -EOPNOTSUPP;
	eth->get_ringparam(dev, &ring, &kring, NULL);
	if (ring.rx_pending == st->rx && ring.rx_mini_pending == st->rx_mini &&
	    ring.rx_jumbo_pending == st->rx_jumbo && ring.tx_pending == st->tx)
		return 0;
	if (st->rx > ring.rx_max_pending ||
	    st->rx_mini > ring.rx_mini_max_pending ||
	    st->rx_jumbo > ring.rx_jumbo_max_pending ||
	    st->tx > ring.tx_max_pending)
		return -EINVAL;
	ring.rx_pending = st->rx;
	ring.rx_mini_pending = st->rx_mini;
	ring.rx_jumbo_pending = st->rx_jumbo;
	ring.tx_pending = st->tx;
	return eth->set_ringparam(dev, &ring, &kring, NULL) ?: 1;
}

static int sh_replay_msglvl(struct sh_replay *rp)
{
	struct net_device *dev = rp->sd->dev;
	const struct ethtool_ops *eth = dev->ethtool_ops;
	const struct sh_staged *st = &rp->sd->staged;

	if (!st->has_msglvl)
		return 0;
	if (!eth || !eth->get_msglevel || !eth->set_msglevel)
		return -EOPNOTSUPP;
	if (eth->get_msglevel(dev) == st->msglvl)
		return 0;
	eth->set_msglevel(dev, st->msglvl);
	return 1;
}

static int sh_replay_pause(struct sh_replay *rp)
{
	struct net_device *dev = rp->sd->dev;
	const struct ethtool_ops *eth = dev->ethtool_ops;
	const struct sh_staged *st = &rp->sd->staged;
	struct ethtool_pauseparam pause = {};

	if (!st->has_pause)
		return 0;
	if (!eth || !eth->get_pauseparam || !eth->set_pauseparam)
		return -EOPNOTSUPP;
	eth->get_pauseparam(dev, &pause);
	if (pause.autoneg == st->pause_autoneg &&
	    pause.rx_pause == st->pause_rx && pause.tx_pause == st->pause_tx)
		return 0;
	pause.autoneg = st->pause_autoneg;
	pause.rx_pause = st->pause_rx;
	pause.tx_pause = st->pause_tx;
	return eth->set_pauseparam(dev, &pause) ?: 1;
}

static int sh_replay_privflags(struct sh_replay *rp)
{
	struct net_device *dev = rp->sd->dev;
	const struct ethtool_ops *eth = dev->ethtool_ops;
	const struct sh_staged *st = &rp->sd->staged;

	if (!st->has_privflags)
		return 0;
	if (!eth || !eth->get_priv_flags || !eth->set_priv_flags)
		return -EOPNOTSUPP;
	if (eth->get_priv_flags(dev) == st->privflags)
		return 0;
	return eth->set_priv_flags(dev, st->privflags) ?: 1;
}

/* In dependency order: what the driver reads when it opens comes first. */
static const struct {
	const char *key;
	int (*run)(struct sh_replay *rp);
} sh_replay_steps[] = {
	{ "mac", sh_replay_mac },
	{ "mtu", sh_replay_mtu },
	{ "features", sh_replay_features },
	{ "vlan", sh_replay_vlan },
	{ "rings", sh_replay_rings },
	{ "msglvl", sh_replay_msglvl },
	{ "pause", sh_replay_pause },
	{ "privflags", sh_replay_privflags },
};

static void sh_reprobe_neigh(struct neighbour *n, void *arg)
{
	if (n->dev != arg)
		return;
	write_lock(&n->lock);
	if ((n->nud_state & (NUD_INCOMPLETE | NUD_PROBE)) &&
	    timer_pending(&n->timer))
		mod_timer(&n->timer, jiffies + 1);
	write_unlock(&n->lock);
}

/*
 * Addresses the stack tried to resolve while the driver was away are
 * waiting for their next retry (up to a second); the packets queued on them
 * go as soon as they resolve, so resolution is retried now.
 */
static void sh_reprobe_neighbours(struct net_device *dev)
{
	neigh_for_each(&arp_tbl, sh_reprobe_neigh, dev);
#if IS_BUILTIN(CONFIG_IPV6)
	neigh_for_each(&nd_tbl, sh_reprobe_neigh, dev);
#endif
}

/* As __dev_open() does, minus the notifications: the stack saw no close. */
static int sh_open(struct sh_replay *rp)
{
	struct net_device *dev = rp->sd->dev;
	int err = 0;

	if (!(dev->flags & IFF_UP))
		return 0;
	set_bit(__LINK_STATE_START, &dev->state);
	if (dev->netdev_ops->ndo_open)
		err = dev->netdev_ops->ndo_open(dev);
	if (err) {
		clear_bit(__LINK_STATE_START, &dev->state);
		return err;
	}
	dev_activate(dev);
	sh_reprobe_neighbours(dev);
	return 1;
}

/* Under RTNL, the fresh driver bound and its ops kept in @win. */
static int sh_replay(struct sh_replay *rp, struct sh_window *win,
		     ktime_t *mark)
{
	struct sh_dev *sd = rp->sd;
	struct sh_result *res = rp->res;
	size_t i;
	int ret;

	sh_step(rp, "name", 0, !strcmp(sd->dev->name, win->name));
	/* Nothing runs the device yet: the driver's ops can go in first. */
	sd->real_ops = win->probed_ops;
	sd->real_ethtool = win->probed_ethtool;
	sh_dev_restore_ops(sd);
	sd->state = SH_PASSIVE;
	for (i = 0; i < ARRAY_SIZE(sh_replay_steps); i++) {
		ret = sh_replay_steps[i].run(rp);
		sh_step(rp, sh_replay_steps[i].key, min(ret, 0), ret > 0);
	}
	/* The driver holds the settings now; the next restart asks it again. */
	memset(&sd->staged, 0, sizeof(sd->staged));
	res->replay_ms = sh_ms_since(mark);
	/* A sticky fault is back before the driver opens: it may fail open. */
	if (sd->fault_sticky && sd->fault != SH_FAULT_NONE)
		sh_fault_apply(sd, sd->fault, res->msg, sizeof(res->msg));
	ret = sh_open(rp);
	sh_step(rp, "open", min(ret, 0), ret > 0);
	res->open_ms = sh_ms_since(mark);
	return min(ret, 0);
}

/* Under RTNL: the shadow holds the device; nothing reaches a driver. */
static void sh_park(struct sh_dev *sd)
{
	sh_quiesce(sd);
	if (!sh_is_impersonating(sd->dev))
		sh_impersonate(sd);
	sd->state = SH_PARKED;
}

/*
 * What the daemon did not stage is replayed as the driver reported it when
 * it stopped: a restart on its own still brings the settings back.
 */
static void sh_stage_from_answers(struct sh_dev *sd)
{
	const struct sh_answers *a = &sd->answers;
	struct sh_staged *st = &sd->staged;

	if (!st->has_rings && a->has_ring) {
		st->rx = a->ring.rx_pending;
		st->rx_mini = a->ring.rx_mini_pending;
		st->rx_jumbo = a->ring.rx_jumbo_pending;
		st->tx = a->ring.tx_pending;
		st->has_rings = true;
	}
	if (!st->has_msglvl && a->has_msglvl) {
		st->msglvl = a->msglvl;
		st->has_msglvl = true;
	}
	if (!st->has_pause && a->has_pause) {
		st->pause_autoneg = a->pause.autoneg;
		st->pause_rx = a->pause.rx_pause;
		st->pause_tx = a->pause.tx_pause;
		st->has_pause = true;
	}
	if (!st->has_privflags && a->has_privflags) {
		st->privflags = a->privflags;
		st->has_privflags = true;
	}
}

/* Leaves RTNL held; the device is quiesced and the shadow answers for it. */
static void sh_stop(struct sh_dev *sd, struct sh_replay *rp)
{
	struct net_device *dev = sd->dev;

	memcpy(rp->mac, dev->dev_addr, min_t(size_t, dev->addr_len,
					     sizeof(rp->mac)));
	rp->wanted = dev->wanted_features;
	rp->features = dev->features;
	/*
	 * The failed driver is stopped before its injected faults are lifted,
	 * so nothing it held can slip out in between; sticky faults come back
	 * after the restart.
	 */
	sh_quiesce(sd);
	if (sd->state == SH_PASSIVE && sd->ops_ours)
		sh_dev_restore_ops(sd);
	sh_fault_unmask_irq(sd);
	if (!sd->fault_sticky)
		sd->fault = SH_FAULT_NONE;
	if (!sh_is_impersonating(dev))
		sh_impersonate(sd);
	sh_stage_from_answers(sd);
	sd->state = SH_RESTARTING;
}

static int sh_release(struct sh_window *win, struct device *parent,
		      struct sh_result *res)
{
	if (!READ_ONCE(parent->driver))
		return 0;
	sh_hooks_set_phase(SH_PHASE_RELEASING);
	device_release_driver(parent);
	sh_hooks_set_phase(SH_PHASE_NONE);
	if (READ_ONCE(parent->driver)) {
		scnprintf(res->msg, sizeof(res->msg),
			  "the driver did not let go of the device");
		return -EIO;
	}
	if (!win->released) {
		scnprintf(res->msg, sizeof(res->msg),
			  "the driver's remove did not free its net_device");
		return -EIO;
	}
	return 0;
}

static int sh_probe(struct sh_window *win, struct device *parent,
		    struct sh_result *res)
{
	int ret;

	sh_hooks_set_phase(SH_PHASE_PROBING);
	ret = device_attach(parent);
	sh_hooks_set_phase(SH_PHASE_NONE);
	/* Probe took RTNL when it was given the device; else take it now. */
	if (!win->rtnl_held)
		rtnl_lock();
	if (ret > 0 && win->registered)
		return 0;
	/* A probe that failed half way may have renamed the device. */
	sh_restore_name(win);
	if (win->why[0])
		scnprintf(res->msg, sizeof(res->msg), "probe failed: %s",
			  win->why);
	else if (ret < 0)
		scnprintf(res->msg, sizeof(res->msg),
			  "probe failed: error %d", ret);
	else if (!win->handed)
		scnprintf(res->msg, sizeof(res->msg),
			  "no driver probed the device");
	else
		scnprintf(res->msg, sizeof(res->msg),
			  "the driver's probe failed");
	return -EIO;
}

/* Under RTNL: a probe that failed or registered another device lets go. */
static void sh_unbind_failed(struct device *parent)
{
	if (!READ_ONCE(parent->driver))
		return;
	rtnl_unlock();
	device_release_driver(parent);
	rtnl_lock();
}

/*
 * A reload that could not unload the module goes on as a plain restart: the
 * device is released already, and probing it again is still the best way
 * back. Any other failure leaves no driver to probe it.
 */
static int sh_reload(struct sh_replay *rp, struct device *parent,
		     const char *module)
{
	int err = sh_reload_module(parent, module, rp->res);

	sh_step(rp, "reload", err, !err);
	if (err != -EBUSY)
		return err;
	pr_warn("recovery %s: %s: %s; probing it again with the module as it is\n",
		rp->id, rp->sd->dev->name, rp->res->msg);
	rp->res->msg[0] = '\0';
	return 0;
}

static int sh_restart_dev(struct net_device *dev, struct device *parent,
			  const char *id, enum sh_how how,
			  struct sh_result *res)
{
	struct sh_window win = { .dev = dev, .task = current };
	struct sh_replay rp = { .res = res, .id = id };
	ktime_t mark = ktime_get();
	struct sh_dev *sd;
	int err;

	if (how == SH_RELOAD) {
		err = sh_reload_check(parent, res->module, sizeof(res->module),
				      res);
		if (err)
			return err;
	}
	strscpy(win.name, dev->name, sizeof(win.name));
	err = sh_hooks_arm(&win);
	if (err) {
		strscpy(res->msg, win.why, sizeof(res->msg));
		return err;
	}
	rtnl_lock();
	sd = sh_dev_get(dev);
	if (!sd) {
		rtnl_unlock();
		sh_hooks_disarm();
		return -ENOMEM;
	}
	rp.sd = sd;
	res->touched = true;
	sh_stop(sd, &rp);
	rtnl_unlock();
	res->stop_ms = sh_ms_since(&mark);

	err = sh_release(&win, parent, res);
	res->release_ms = sh_ms_since(&mark);
	if (err || how == SH_PARK) {
		rtnl_lock();
		goto parked;
	}
	/* The old module's ops must not be called again: the shadow's are in. */
	if (how == SH_RELOAD) {
		err = sh_reload(&rp, parent, res->module);
		mark = ktime_get();
		if (err) {
			rtnl_lock();
			goto parked;
		}
	}
	err = sh_probe(&win, parent, res);
	res->probe_ms = sh_ms_since(&mark);
	if (err) {
		sh_unbind_failed(parent);
		goto parked;
	}
	err = sh_replay(&rp, &win, &mark);
	if (err) {
		scnprintf(res->msg, sizeof(res->msg),
			  "the driver's open failed: error %d", err);
		err = -EIO;
		goto parked;
	}
	goto out;
parked:
	sh_park(sd);
out:
	rtnl_unlock();
	sh_hooks_disarm();
	return err;
}

static const char *const sh_how_verbs[] = {
	[SH_REPROBE] = "restarting",
	[SH_RELOAD] = "reloading the driver of",
	[SH_PARK] = "parking",
};

int sh_restart(const char *ifname, const char *id, enum sh_how how,
	       struct sh_result *res)
{
	ktime_t start = ktime_get();
	struct net_device *dev;
	struct device *parent;
	int err;

	dev = dev_get_by_name(&init_net, ifname);
	if (!dev) {
		scnprintf(res->msg, sizeof(res->msg), "no interface %s",
			  ifname);
		return -ENODEV;
	}
	parent = get_device(dev->dev.parent);
	if (!parent) {
		scnprintf(res->msg, sizeof(res->msg),
			  "%s has no bus device: not a driver's device",
			  ifname);
		dev_put(dev);
		return -ENODEV;
	}
	res->ifindex = dev->ifindex;
	pr_info("recovery %s: %s %s\n", id, sh_how_verbs[how], ifname);
	mutex_lock(&sh_restart_lock);
	err = sh_restart_dev(dev, parent, id, how, res);
	mutex_unlock(&sh_restart_lock);
	res->total_ms = ktime_ms_delta(ktime_get(), start);
	if (err && !res->touched)
		pr_warn("recovery %s: %s left as it was: %s\n", id, ifname,
			res->msg);
	else if (err)
		pr_warn("recovery %s: %s %s after %u ms: %s\n", id, ifname,
			how == SH_PARK ? "not parked" : "parked",
			res->total_ms, res->msg);
	else
		pr_info("recovery %s: %s %s in %u ms (%s)\n", id, ifname,
			how == SH_PARK ? "parked" : "restarted",
			res->total_ms, res->steps);
	put_device(parent);
	dev_put(dev);
	return err;
}
