// SPDX-License-Identifier: GPL-2.0
/*
 * The ops that answer for a driver that is restarting or gone. The stack
 * keeps calling the device's ops while the driver is away; none of those
 * calls may reach a driver that is half torn down or half probed. Here
 * transmits are dropped as on a lossy link, configuration is accepted and
 * kept in the net_device or the staged settings (the restart replays both),
 * and queries are answered from what the driver reported before it stopped.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/etherdevice.h>
#include <linux/ethtool.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/string.h>

#include "sh_net.h"

static int sh_imp_open(struct net_device *dev)
{
	/* Replay opens the driver when it is back, if the device is still up. */
	return 0;
}

static int sh_imp_stop(struct net_device *dev)
{
	return 0;
}

static netdev_tx_t sh_imp_xmit(struct sk_buff *skb, struct net_device *dev)
{
	dev_core_stats_tx_dropped_inc(dev);
	dev_kfree_skb_any(skb);
	return NETDEV_TX_OK;
}

static int sh_imp_change_mtu(struct net_device *dev, int new_mtu)
{
	/* The stack checked the driver's limits; replay hands it to the driver. */
	WRITE_ONCE(dev->mtu, new_mtu);
	return 0;
}

static int sh_imp_vlan_vid(struct net_device *dev, __be16 proto, u16 vid)
{
	/* 8021q keeps the list of VLAN ids; replay pushes all of them. */
	return 0;
}

static void sh_imp_tx_timeout(struct net_device *dev, unsigned int txqueue)
{
}

static void sh_imp_get_stats64(struct net_device *dev,
			       struct rtnl_link_stats64 *stats)
{
	struct sh_dev *sd;

	rcu_read_lock();
	sd = sh_net_find(dev);
	if (sd)
		*stats = sh_net(sd)->answers.stats;
	rcu_read_unlock();
}

static const struct net_device_ops sh_imp_ops = {
	.ndo_open = sh_imp_open,
	.ndo_stop = sh_imp_stop,
	.ndo_start_xmit = sh_imp_xmit,
	.ndo_change_mtu = sh_imp_change_mtu,
	.ndo_set_mac_address = eth_mac_addr,
	.ndo_validate_addr = eth_validate_addr,
	.ndo_vlan_rx_add_vid = sh_imp_vlan_vid,
	.ndo_vlan_rx_kill_vid = sh_imp_vlan_vid,
	.ndo_tx_timeout = sh_imp_tx_timeout,
	.ndo_get_stats64 = sh_imp_get_stats64,
};

/* ethtool calls come with RTNL held, like the writers of the record. */
static struct sh_net_dev *sh_imp_dev(struct net_device *dev)
{
	struct sh_dev *sd = sh_net_find_rtnl(dev);

	return sd ? sh_net(sd) : NULL;
}

static void sh_imp_get_drvinfo(struct net_device *dev,
			       struct ethtool_drvinfo *info)
{
	struct sh_net_dev *nd = sh_imp_dev(dev);

	if (nd && nd->answers.has_drvinfo)
		*info = nd->answers.drvinfo;
	else
		strscpy(info->driver, "shadow", sizeof(info->driver));
}

static u32 sh_imp_get_msglevel(struct net_device *dev)
{
	struct sh_net_dev *nd = sh_imp_dev(dev);

	if (!nd)
		return 0;
	return nd->staged.has_msglvl ? nd->staged.msglvl : nd->answers.msglvl;
}

static void sh_imp_set_msglevel(struct net_device *dev, u32 value)
{
	struct sh_net_dev *nd = sh_imp_dev(dev);

	if (!nd)
		return;
	nd->staged.msglvl = value;
	nd->staged.has_msglvl = true;
}

static void sh_imp_get_ringparam(struct net_device *dev,
				 struct ethtool_ringparam *ring,
				 struct kernel_ethtool_ringparam *kring,
				 struct netlink_ext_ack *extack)
{
	struct sh_net_dev *nd = sh_imp_dev(dev);

	if (!nd)
		return;
	if (nd->answers.has_ring)
		*ring = nd->answers.ring;
	if (!nd->staged.has_rings)
		return;
	ring->rx_pending = nd->staged.rx;
	ring->rx_mini_pending = nd->staged.rx_mini;
	ring->rx_jumbo_pending = nd->staged.rx_jumbo;
	ring->tx_pending = nd->staged.tx;
}

static int sh_imp_set_ringparam(struct net_device *dev,
				struct ethtool_ringparam *ring,
				struct kernel_ethtool_ringparam *kring,
				struct netlink_ext_ack *extack)
{
	struct sh_net_dev *nd = sh_imp_dev(dev);

	if (!nd)
		return -ENODEV;
	nd->staged.rx = ring->rx_pending;
	nd->staged.rx_mini = ring->rx_mini_pending;
	nd->staged.rx_jumbo = ring->rx_jumbo_pending;
	nd->staged.tx = ring->tx_pending;
	nd->staged.has_rings = true;
	return 0;
}

static void sh_imp_get_pauseparam(struct net_device *dev,
				  struct ethtool_pauseparam *pause)
{
	struct sh_net_dev *nd = sh_imp_dev(dev);

	if (!nd)
		return;
	if (nd->answers.has_pause)
		*pause = nd->answers.pause;
	if (!nd->staged.has_pause)
		return;
	pause->autoneg = nd->staged.pause_autoneg;
	pause->rx_pause = nd->staged.pause_rx;
	pause->tx_pause = nd->staged.pause_tx;
}

static int sh_imp_set_pauseparam(struct net_device *dev,
				 struct ethtool_pauseparam *pause)
{
	struct sh_net_dev *nd = sh_imp_dev(dev);

	if (!nd)
		return -ENODEV;
	nd->staged.pause_autoneg = pause->autoneg;
	nd->staged.pause_rx = pause->rx_pause;
	nd->staged.pause_tx = pause->tx_pause;
	nd->staged.has_pause = true;
	return 0;
}

static const struct ethtool_ops sh_imp_ethtool_ops = {
	.get_drvinfo = sh_imp_get_drvinfo,
	.get_link = ethtool_op_get_link,
	.get_msglevel = sh_imp_get_msglevel,
	.set_msglevel = sh_imp_set_msglevel,
	.get_ringparam = sh_imp_get_ringparam,
	.set_ringparam = sh_imp_set_ringparam,
	.get_pauseparam = sh_imp_get_pauseparam,
	.set_pauseparam = sh_imp_set_pauseparam,
};

static void sh_imp_ask_driver(struct sh_net_dev *nd,
			      const struct ethtool_ops *eth)
{
	struct sh_answers *a = &nd->answers;
	struct kernel_ethtool_ringparam kring = {};

	if (!eth)
		return;
	a->has_ring = !!eth->get_ringparam;
	if (a->has_ring) {
		memset(&a->ring, 0, sizeof(a->ring));
		eth->get_ringparam(nd->dev, &a->ring, &kring, NULL);
	}
	a->has_pause = !!eth->get_pauseparam;
	if (a->has_pause) {
		memset(&a->pause, 0, sizeof(a->pause));
		eth->get_pauseparam(nd->dev, &a->pause);
	}
	a->has_msglvl = !!eth->get_msglevel;
	if (a->has_msglvl)
		a->msglvl = eth->get_msglevel(nd->dev);
	a->has_privflags = !!eth->get_priv_flags;
	if (a->has_privflags)
		a->privflags = eth->get_priv_flags(nd->dev);
}

/* Under RTNL: from now on the stack's calls for @sd's device end here. */
void sh_impersonate(struct sh_dev *sd)
{
	struct sh_net_dev *nd = sh_net(sd);
	struct net_device *dev = nd->dev;
	const struct ethtool_ops *eth = dev->ethtool_ops;

	ASSERT_RTNL();
	/* Answers come from the driver while it is still there to ask. */
	if (!sh_is_impersonating(dev)) {
		dev_get_stats(dev, &nd->answers.stats);
		if (eth && eth->get_drvinfo) {
			memset(&nd->answers.drvinfo, 0,
			       sizeof(nd->answers.drvinfo));
			eth->get_drvinfo(dev, &nd->answers.drvinfo);
			nd->answers.has_drvinfo = true;
		}
		sh_imp_ask_driver(nd, eth);
	}
	sh_net_put_ops(sd, &sh_imp_ops, &sh_imp_ethtool_ops);
}

/* The probing driver wrote its ops into the live device: answer again. */
void sh_imp_reinstall(struct net_device *dev)
{
	WRITE_ONCE(dev->netdev_ops, &sh_imp_ops);
	WRITE_ONCE(dev->ethtool_ops, &sh_imp_ethtool_ops);
}

bool sh_is_impersonating(const struct net_device *dev)
{
	return READ_ONCE(dev->netdev_ops) == &sh_imp_ops;
}
