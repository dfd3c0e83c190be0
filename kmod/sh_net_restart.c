// SPDX-License-Identifier: GPL-2.0
/*
 * The network class's phases of the restart skeleton (sh_restart.c): a
 * network driver instance restarts with its net_device kept, and the
 * device's configuration is replayed into the fresh instance.
 *
 *  stop     under RTNL: the device is quiesced as dev_close() would (but
 *           without NETDEV_DOWN, so addresses, routes and sockets stay), its
 *           ndo_stop() runs, then the failed driver's faults are lifted and
 *           the shadow's ops take over (sh_net_impersonate.c);
 *  release  sh_net_hooks.c keeps the net_device while remove() runs;
 *  probe    the probe is handed the same device;
 *  replay   under RTNL, with the device not running: the driver's new ops
 *           go in, then MAC, MTU, features, VLAN filters and the staged
 *           ethtool settings are written through the driver's own entry
 *           points, each step checked;
 *  open     the driver's ndo_open() and the qdisc's reactivation, as
 *           __dev_open() does, if the device is up.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/etherdevice.h>
#include <linux/if_vlan.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/socket.h>
#include <net/arp.h>
#include <net/ndisc.h>
#include <net/neighbour.h>
#include <net/sch_generic.h>

#include "sh_net.h"

/* What a replay step works on: the device, its record, what stop saved. */
struct sh_replay {
	struct net_device *dev;
	struct sh_net_dev *nd;
	const struct sh_net_run *nr;
};

/* As __dev_close_many() does, minus the notifications. */
static void sh_quiesce(struct net_device *dev)
{
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
	struct net_device *dev = rp->dev;
	struct sockaddr_storage ss = {};
	struct sockaddr *sa = (struct sockaddr *)&ss;

	if (!memcmp(dev->dev_addr, rp->nr->mac, dev->addr_len))
		return 0;
	if (!dev->netdev_ops->ndo_set_mac_address) {
		dev_addr_set(dev, rp->nr->mac);
		return 1;
	}
	sa->sa_family = dev->type;
	memcpy(ss.__data, rp->nr->mac,
	       min_t(size_t, dev->addr_len, sizeof(ss.__data)));
	return dev->netdev_ops->ndo_set_mac_address(dev, sa) ?: 1;
}

static int sh_replay_mtu(struct sh_replay *rp)
{
	struct net_device *dev = rp->dev;

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
	struct net_device *dev = rp->dev;
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
	dev->wanted_features = (rp->nr->wanted & dev->hw_features) |
		(dev->features & ~dev->hw_features);
	netdev_update_features(dev);
	/* What the driver can switch must be as it was before the restart. */
	if ((dev->features ^ rp->nr->features) & dev->hw_features)
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
	struct net_device *dev = rp->dev;
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
	struct net_device *dev = rp->dev;
	const struct ethtool_ops *eth = dev->ethtool_ops;
	const struct sh_staged *st = &rp->nd->staged;
	struct kernel_ethtool_ringparam kring = {};
	struct ethtool_ringparam ring = {};

	if (!st->has_rings || !eth || !eth->set_ringparam)
		return 0;
	if (!eth->get_ringparam)
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
	struct net_device *dev = rp->dev;
	const struct ethtool_ops *eth = dev->ethtool_ops;
	const struct sh_staged *st = &rp->nd->staged;

	if (!st->has_msglvl || !eth || !eth->set_msglevel)
		return 0;
	if (!eth->get_msglevel)
		return -EOPNOTSUPP;
	if (eth->get_msglevel(dev) == st->msglvl)
		return 0;
	eth->set_msglevel(dev, st->msglvl);
	return 1;
}

static int sh_replay_pause(struct sh_replay *rp)
{
	struct net_device *dev = rp->dev;
	const struct ethtool_ops *eth = dev->ethtool_ops;
	const struct sh_staged *st = &rp->nd->staged;
	struct ethtool_pauseparam pause = {};

	if (!st->has_pause || !eth || !eth->set_pauseparam)
		return 0;
	if (!eth->get_pauseparam)
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
	struct net_device *dev = rp->dev;
	const struct ethtool_ops *eth = dev->ethtool_ops;
	const struct sh_staged *st = &rp->nd->staged;

	if (!st->has_privflags || !eth || !eth->set_priv_flags)
		return 0;
	if (!eth->get_priv_flags)
		return -EOPNOTSUPP;
	if (eth->get_priv_flags(dev) == st->privflags)
		return 0;
	return eth->set_priv_flags(dev, st->privflags) ?: 1;
}

/*
 * In dependency order: what the driver reads when it opens comes first. An
 * ethtool setting the fresh driver cannot set is skipped, not failed: no one
 * can have changed it, so the driver's default is what it was.
 */
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

/*
 * The fresh driver's receive filters are empty: the unicast and multicast
 * lists the stack kept, and promiscuous and all-multicast mode, go back to
 * the hardware as __dev_set_rx_mode() sends them (it is not exported). A
 * driver that programs them in its own open just does it twice.
 */
static void sh_set_rx_mode(struct net_device *dev)
{
	const struct net_device_ops *ops = dev->netdev_ops;

	netif_addr_lock_bh(dev);
	if (netif_device_present(dev) && ops->ndo_set_rx_mode)
		ops->ndo_set_rx_mode(dev);
	netif_addr_unlock_bh(dev);
}

/* As __dev_open() does, minus the notifications: the stack saw no close. */
int sh_net_open(struct sh_run *run)
{
	struct net_device *dev = sh_net(run->sd)->dev;
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
	sh_set_rx_mode(dev);
	dev_activate(dev);
	sh_reprobe_neighbours(dev);
	return 1;
}

/*
 * What the daemon did not stage is replayed as the driver reported it when
 * it stopped: a restart on its own still brings the settings back.
 */
static void sh_stage_from_answers(struct sh_net_dev *nd)
{
	const struct sh_answers *a = &nd->answers;
	struct sh_staged *st = &nd->staged;

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

/*
 * Parking: the device is closed as for a restart, and loses its carrier:
 * it is operationally down (routes over it are marked linkdown, a bond
 * fails over, NetworkManager sees the link go), while it keeps its
 * addresses and routes for the restart that brings it back.
 */
void sh_net_quiesce(struct sh_run *run)
{
	struct sh_net_dev *nd = sh_net(run->sd);

	sh_quiesce(nd->dev);
	if (netif_carrier_ok(nd->dev)) {
		netif_carrier_off(nd->dev);
		nd->carrier_parked = true;
	}
}

/*
 * The failed driver is stopped before its injected faults are lifted, so
 * nothing it held can slip out in between; the skeleton keeps a sticky
 * fault to come back after the restart.
 */
void sh_net_stop(struct sh_run *run)
{
	struct sh_net_run *nr = run->priv;
	struct sh_dev *sd = run->sd;
	struct sh_net_dev *nd = sh_net(sd);
	struct net_device *dev = nd->dev;

	memcpy(nr->mac, dev->dev_addr, min_t(size_t, dev->addr_len,
					     sizeof(nr->mac)));
	nr->wanted = dev->wanted_features;
	nr->features = dev->features;
	/* Leaving the park: the probe gives the carrier back (sh_net_hooks.c). */
	nr->win.carrier_parked = &nd->carrier_parked;
	sh_quiesce(dev);
	if (sd->state == SH_PASSIVE && nd->ops_ours)
		sh_net_restore_ops(sd);
	sh_net_fault_unmask_irq(sd);
}

void sh_net_impersonate(struct sh_run *run)
{
	struct sh_net_dev *nd = sh_net(run->sd);

	sh_net_pin_netns(run->sd);
	if (!sh_is_impersonating(nd->dev))
		sh_impersonate(run->sd);
	sh_stage_from_answers(nd);
}

/*
 * State that lives in the driver instance, outside what the restart keeps
 * and replays: the fresh instance would silently run without it (a
 * firewall in XDP bypassed, IPsec or TLS sessions dropped, DCB priorities
 * reset, tunnel ports no longer offloaded), or the kernel would keep
 * pointers into the old one. NULL when a restart carries the device whole.
 * Under RTNL.
 */
static const char *sh_uncarried(const struct net_device *dev)
{
#if IS_ENABLED(CONFIG_CFG80211)
	if (dev->ieee80211_ptr)
		return "a wireless device (cfg80211 and mac80211 keep its state outside it)";
#endif
	if (dev->xdp_state[XDP_MODE_DRV].prog || dev->xdp_state[XDP_MODE_DRV].link)
		return "a driver-mode XDP program is attached (the fresh driver would not run it)";
	if (dev->xdp_state[XDP_MODE_HW].prog || dev->xdp_state[XDP_MODE_HW].link)
		return "an offloaded XDP program is attached (the fresh driver would not run it)";
	if (dev->features & NETIF_F_HW_TC)
		return "TC offload is on (hw-tc-offload: its flow rules live in the driver)";
	if (dev->udp_tunnel_nic_info &&
	    (dev->features & NETIF_F_RX_UDP_TUNNEL_PORT))
		return "UDP tunnel port offload is on (rx-udp_tunnel-port-offload)";
#if IS_ENABLED(CONFIG_XFRM_OFFLOAD)
	if (dev->xfrmdev_ops && (dev->features & NETIF_F_HW_ESP))
		return "IPsec offload is on (esp-hw-offload: its SAs live in the driver)";
#endif
#if IS_ENABLED(CONFIG_TLS_DEVICE)
	if (dev->tlsdev_ops &&
	    (dev->features & (NETIF_F_HW_TLS_TX | NETIF_F_HW_TLS_RX)))
		return "TLS offload is on (tls-hw-tx/rx-offload: its sessions live in the driver)";
#endif
#if IS_ENABLED(CONFIG_DCB)
	if (dev->dcbnl_ops)
		return "it has Data Center Bridging (its DCB settings live in the driver)";
#endif
#if SH_KERNEL < 611
	/*
	 * Before 6.11 a vmalloc'd device's private area has no size to read:
	 * the probe could not be handed the device, and the NIC would park.
	 */
	if (is_vmalloc_addr((char *)dev - dev->padded))
		return "a vmalloc'd net_device (its private area cannot be sized)";
#endif
	return NULL;
}

/*
 * A reload also unloads the driver's module, while the stack may still
 * call what these point into (a neighbour's header, a UDP tunnel's port)
 * before the fresh driver's probe points them at its own: a plain restart
 * keeps the module, and with it the pointers' targets.
 */
static const char *sh_unreloadable(const struct net_device *dev,
				   const struct module *mod)
{
	if (!mod)
		return NULL;
	if (within_module((unsigned long)dev->header_ops, mod))
		return "the driver builds the device's link-layer headers itself";
	if (within_module((unsigned long)dev->udp_tunnel_nic_info, mod))
		return "the driver offloads UDP tunnel ports";
	return NULL;
}

/*
 * Under RTNL, in the hold that stops the device: refuses, before anything
 * is touched, a restart that would lose state, or of a device that left
 * the initial namespace or is being unregistered since it was looked up.
 * A parked device has lost its driver's state already: it may come back.
 * The bus device's driver cannot go meanwhile: its remove needs RTNL.
 */
int sh_net_check(struct sh_run *run)
{
	struct net_device *dev = to_net_dev(run->cdev);
	struct device_driver *drv = READ_ONCE(run->bus->driver);
	struct sh_dev *sd = sh_net_find_rtnl(dev);
	const char *why;

	if (!net_eq(dev_net(dev), &init_net) ||
	    dev->reg_state != NETREG_REGISTERED) {
		scnprintf(run->res->msg, sizeof(run->res->msg),
			  "%s left the initial network namespace or is going away",
			  run->ref);
		return -ENODEV;
	}
	if (run->how == SH_PARK || (sd && sd->state == SH_PARKED))
		return 0;
	why = sh_uncarried(dev);
	if (why) {
		scnprintf(run->res->msg, sizeof(run->res->msg),
			  "a restart would lose what the driver holds: %s",
			  why);
		return -EOPNOTSUPP;
	}
	why = run->how == SH_RELOAD ?
		sh_unreloadable(dev, drv ? drv->owner : NULL) : NULL;
	if (why) {
		scnprintf(run->res->msg, sizeof(run->res->msg),
			  "a reload would unload code the kernel points into: %s",
			  why);
		return -EOPNOTSUPP;
	}
	return 0;
}

int sh_net_arm(struct sh_run *run)
{
	struct sh_net_run *nr = run->priv;
	struct sh_window *win = &nr->win;
	int err;

	win->dev = to_net_dev(run->cdev);
	win->task = current;
	strscpy(win->name, win->dev->name, sizeof(win->name));
	err = sh_hooks_arm(win);
	if (err)
		strscpy(run->res->msg, win->why, sizeof(run->res->msg));
	return err;
}

void sh_net_disarm(struct sh_run *run)
{
	sh_hooks_disarm();
}

void sh_net_set_phase(struct sh_run *run, enum sh_phase phase)
{
	sh_hooks_set_phase(phase);
}

int sh_net_released(struct sh_run *run)
{
	struct sh_net_run *nr = run->priv;

	if (nr->win.released)
		return 0;
	scnprintf(run->res->msg, sizeof(run->res->msg),
		  "the driver's remove did not free its net_device");
	return -EIO;
}

/* Probe took RTNL when it was given the device; else it is taken now. */
int sh_net_probed(struct sh_run *run, int attach_ret)
{
	struct sh_net_run *nr = run->priv;
	struct sh_window *win = &nr->win;
	struct sh_result *res = run->res;

	if (!win->rtnl_held)
		rtnl_lock();
	if (attach_ret > 0 && win->registered)
		return 0;
	/* A probe that failed half way may have renamed the device... */
	sh_restore_name(win);
	/* ...or rewritten its features, the namespace pin with them. */
	sh_net_pin_netns(run->sd);
	if (win->why[0])
		scnprintf(res->msg, sizeof(res->msg), "probe failed: %s",
			  win->why);
	else if (attach_ret < 0)
		scnprintf(res->msg, sizeof(res->msg),
			  "probe failed: error %d", attach_ret);
	else if (!win->handed)
		scnprintf(res->msg, sizeof(res->msg),
			  "no driver probed the device");
	else
		scnprintf(res->msg, sizeof(res->msg),
			  "the driver's probe failed");
	return -EIO;
}

/* Nothing runs the device yet: the fresh driver's ops can go in first. */
void sh_net_unimpersonate(struct sh_run *run)
{
	struct sh_net_run *nr = run->priv;
	struct sh_net_dev *nd = sh_net(run->sd);

	nd->real_ops = nr->win.probed_ops;
	nd->real_ethtool = nr->win.probed_ethtool;
	sh_net_restore_ops(run->sd);
	sh_net_unpin_netns(run->sd);
}

void sh_net_replay(struct sh_run *run)
{
	struct sh_net_run *nr = run->priv;
	struct sh_replay rp = {
		.dev = sh_net(run->sd)->dev, .nd = sh_net(run->sd), .nr = nr,
	};
	size_t i;
	int ret;

	sh_step(run, "name", 0, !strcmp(rp.dev->name, nr->win.name));
	for (i = 0; i < ARRAY_SIZE(sh_replay_steps); i++) {
		ret = sh_replay_steps[i].run(&rp);
		sh_step(run, sh_replay_steps[i].key, min(ret, 0), ret > 0);
	}
	/* The driver holds the settings now; the next restart asks it again. */
	memset(&rp.nd->staged, 0, sizeof(rp.nd->staged));
}
