// SPDX-License-Identifier: GPL-2.0
/*
 * The network class's fault injection, for testing recovery on real drivers without changing
 * them: the device's ops are replaced by a copy of its driver's ops in which
 * the chosen entry points fail. Off unless the module was loaded with
 * allow_faults=1. The kernel survives every fault here: no lock is taken and
 * nothing is left half done; the driver just stops doing its job.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/errno.h>
#include <linux/netdevice.h>
#include <linux/pci.h>
#include <linux/rtnetlink.h>
#include <linux/string.h>

#include "sh_net.h"

static const char * const sh_fault_names[SH_NET_FAULT_COUNT] = {
	[SH_NET_FAULT_NONE] = "clear",
	[SH_NET_FAULT_TX_HANG] = "tx-hang",
	[SH_NET_FAULT_TX_HANG_RESET] = "tx-hang-reset",
	[SH_NET_FAULT_FAIL_STOP] = "fail-stop",
	[SH_NET_FAULT_FAIL_OPEN] = "fail-open",
	[SH_NET_FAULT_FAIL_MTU] = "fail-mtu",
	[SH_NET_FAULT_FAIL_MAC] = "fail-mac",
	[SH_NET_FAULT_FAIL_FEATURES] = "fail-features",
	[SH_NET_FAULT_FAIL_RINGS] = "fail-rings",
	[SH_NET_FAULT_LOST_IRQ] = "lost-irq",
};

int sh_net_fault_parse(const char *name, unsigned int *fault)
{
	unsigned int i;

	for (i = 0; i < SH_NET_FAULT_COUNT; i++) {
		if (!strcmp(name, sh_fault_names[i])) {
			*fault = i;
			return 0;
		}
	}
	return -EINVAL;
}

const char *sh_net_fault_name(unsigned int fault)
{
	return fault < SH_NET_FAULT_COUNT ? sh_fault_names[fault] : "?";
}

/*
 * A hung transmit path: the packet stays queued and the queue stays stopped,
 * as when a driver stops reclaiming its ring. The kernel's TX watchdog sees
 * exactly what it sees on real hardware that stopped sending.
 */
static netdev_tx_t sh_fault_xmit(struct sk_buff *skb, struct net_device *dev)
{
	netif_stop_subqueue(dev, skb_get_queue_mapping(skb));
	return NETDEV_TX_BUSY;
}

/*
 * A hang the driver's own TX-timeout reset cures: the baseline the recovery
 * benchmark compares a restart with. Until the kernel's watchdog calls the
 * driver's tx_timeout, transmits hang as above; then they pass again.
 */
static netdev_tx_t sh_fault_xmit_until_reset(struct sk_buff *skb,
					     struct net_device *dev)
{
	netdev_tx_t (*xmit)(struct sk_buff *skb, struct net_device *dev);
	struct sh_dev *sd;

	rcu_read_lock();
	sd = sh_net_find(dev);
	xmit = sd && !READ_ONCE(sh_net(sd)->hang_active) ?
		sh_net(sd)->real_ops->ndo_start_xmit : NULL;
	rcu_read_unlock();
	if (xmit)
		return xmit(skb, dev);
	return sh_fault_xmit(skb, dev);
}

static void sh_fault_timeout_resets(struct net_device *dev,
				    unsigned int txqueue)
{
	void (*timeout)(struct net_device *dev, unsigned int txqueue);
	struct sh_dev *sd;

	rcu_read_lock();
	sd = sh_net_find(dev);
	timeout = sd ? sh_net(sd)->real_ops->ndo_tx_timeout : NULL;
	if (sd)
		WRITE_ONCE(sh_net(sd)->hang_active, false);
	rcu_read_unlock();
	if (timeout)
		timeout(dev, txqueue);
}

static int sh_fault_open(struct net_device *dev)
{
	return -EIO;
}

static int sh_fault_change_mtu(struct net_device *dev, int new_mtu)
{
	return -EIO;
}

static int sh_fault_set_mac(struct net_device *dev, void *addr)
{
	return -EIO;
}

static int sh_fault_set_features(struct net_device *dev,
				 netdev_features_t features)
{
	return -EIO;
}

static int sh_fault_vlan_vid(struct net_device *dev, __be16 proto, u16 vid)
{
	return -EIO;
}

static void sh_fault_set_rx_mode(struct net_device *dev)
{
}

static void sh_fault_tx_timeout(struct net_device *dev, unsigned int txqueue)
{
}

static int sh_fault_set_ringparam(struct net_device *dev,
				  struct ethtool_ringparam *ring,
				  struct kernel_ethtool_ringparam *kring,
				  struct netlink_ext_ack *extack)
{
	return -EIO;
}

static int sh_fault_set_pauseparam(struct net_device *dev,
				   struct ethtool_pauseparam *pause)
{
	return -EIO;
}

static void sh_fault_set_msglevel(struct net_device *dev, u32 value)
{
}

/* Only entry points the driver has are made to fail; absent ones stay so. */
static void sh_fault_fail_stop(union sh_ndo_copy *copy,
			       union sh_ethtool_copy *eth_copy)
{
	typeof(copy->rw) *ops = &copy->rw;
	typeof(eth_copy->rw) *eth = &eth_copy->rw;

	ops->ndo_start_xmit = sh_fault_xmit;
	if (ops->ndo_open)
		ops->ndo_open = sh_fault_open;
	if (ops->ndo_change_mtu)
		ops->ndo_change_mtu = sh_fault_change_mtu;
	if (ops->ndo_set_mac_address)
		ops->ndo_set_mac_address = sh_fault_set_mac;
	if (ops->ndo_set_features)
		ops->ndo_set_features = sh_fault_set_features;
	if (ops->ndo_vlan_rx_add_vid)
		ops->ndo_vlan_rx_add_vid = sh_fault_vlan_vid;
	if (ops->ndo_vlan_rx_kill_vid)
		ops->ndo_vlan_rx_kill_vid = sh_fault_vlan_vid;
	if (ops->ndo_set_rx_mode)
		ops->ndo_set_rx_mode = sh_fault_set_rx_mode;
	if (ops->ndo_tx_timeout)
		ops->ndo_tx_timeout = sh_fault_tx_timeout;
	if (eth->set_ringparam)
		eth->set_ringparam = sh_fault_set_ringparam;
	if (eth->set_pauseparam)
		eth->set_pauseparam = sh_fault_set_pauseparam;
	if (eth->set_msglevel)
		eth->set_msglevel = sh_fault_set_msglevel;
}

/* The single entry point a fault breaks, or NULL for whole-driver faults. */
static const void *sh_fault_entry(unsigned int fault,
				  const struct net_device_ops *ops,
				  const struct ethtool_ops *eth)
{
	switch (fault) {
	case SH_NET_FAULT_FAIL_OPEN:
		return ops->ndo_open;
	case SH_NET_FAULT_FAIL_MTU:
		return ops->ndo_change_mtu;
	case SH_NET_FAULT_FAIL_MAC:
		return ops->ndo_set_mac_address;
	case SH_NET_FAULT_FAIL_FEATURES:
		return ops->ndo_set_features;
	case SH_NET_FAULT_FAIL_RINGS:
		return eth ? eth->set_ringparam : NULL;
	case SH_NET_FAULT_TX_HANG_RESET:
		return ops->ndo_tx_timeout;
	default:
		return ops->ndo_start_xmit;
	}
}

/*
 * Lost interrupts: the device's INTx is masked in its PCI command register.
 * Only this device goes quiet; disable_irq() would silence every device on a
 * shared line. The driver's own reset does not unmask it: only a restart or
 * a clear does.
 */
static int sh_fault_mask_irq(struct sh_dev *sd, char *msg, size_t len)
{
	struct pci_dev *pdev;

	if (!sd->bus || !dev_is_pci(sd->bus)) {
		scnprintf(msg, len,
			  "net:%s is not a PCI device: lost-irq masks PCI INTx",
			  sh_net(sd)->dev->name);
		return -EOPNOTSUPP;
	}
	pdev = to_pci_dev(sd->bus);
	if (pdev->msi_enabled || pdev->msix_enabled) {
		scnprintf(msg, len, "net:%s uses MSI: lost-irq masks PCI INTx",
			  sh_net(sd)->dev->name);
		return -EOPNOTSUPP;
	}
	pci_intx(pdev, 0);
	sh_net(sd)->irq_masked = true;
	return 0;
}

void sh_net_fault_unmask_irq(struct sh_dev *sd)
{
	struct sh_net_dev *nd = sh_net(sd);

	if (!nd->irq_masked)
		return;
	pci_intx(to_pci_dev(sd->bus), 1);
	nd->irq_masked = false;
}

void sh_net_fault_clear(struct sh_dev *sd)
{
	ASSERT_RTNL();
	sh_net_fault_unmask_irq(sd);
	if (sd->fault != SH_FAULT_NONE && sd->state == SH_PASSIVE)
		sh_net_restore_ops(sd);
	sd->fault = SH_FAULT_NONE;
	sd->fault_sticky = false;
}

/* Under RTNL, on a device its driver runs. */
int sh_net_fault_apply(struct sh_dev *sd, unsigned int fault, char *msg,
		       size_t len)
{
	struct sh_net_dev *nd = sh_net(sd);
	const struct net_device_ops *ops;
	const struct ethtool_ops *eth;
	bool sticky = sd->fault_sticky;
	int err;

	ASSERT_RTNL();
	if (sd->state != SH_PASSIVE) {
		scnprintf(msg, len, "net:%s is %s: no driver to inject into",
			  nd->dev->name, sh_state_name(sd->state));
		return -EBUSY;
	}
	/* One fault at a time: the old copy of the ops is retired first. */
	sh_net_fault_clear(sd);
	sd->fault_sticky = sticky;
	if (fault == SH_FAULT_NONE)
		return 0;
	if (fault == SH_NET_FAULT_LOST_IRQ) {
		err = sh_fault_mask_irq(sd, msg, len);
		if (err)
			return err;
		sd->fault = fault;
		goto injected;
	}
	ops = nd->dev->netdev_ops;
	eth = nd->dev->ethtool_ops;
	if (!sh_fault_entry(fault, ops, eth)) {
		scnprintf(msg, len, "driver of net:%s has no entry point for %s",
			  nd->dev->name, sh_net_fault_name(fault));
		return -EOPNOTSUPP;
	}
	nd->fault_ops.rw = *ops;
	if (eth)
		nd->fault_ethtool.rw = *eth;
	switch (fault) {
	case SH_NET_FAULT_TX_HANG:
		nd->fault_ops.rw.ndo_start_xmit = sh_fault_xmit;
		break;
	case SH_NET_FAULT_TX_HANG_RESET:
		nd->hang_active = true;
		nd->fault_ops.rw.ndo_start_xmit = sh_fault_xmit_until_reset;
		nd->fault_ops.rw.ndo_tx_timeout = sh_fault_timeout_resets;
		break;
	case SH_NET_FAULT_FAIL_STOP:
		sh_fault_fail_stop(&nd->fault_ops, &nd->fault_ethtool);
		break;
	case SH_NET_FAULT_FAIL_OPEN:
		nd->fault_ops.rw.ndo_open = sh_fault_open;
		break;
	case SH_NET_FAULT_FAIL_MTU:
		nd->fault_ops.rw.ndo_change_mtu = sh_fault_change_mtu;
		break;
	case SH_NET_FAULT_FAIL_MAC:
		nd->fault_ops.rw.ndo_set_mac_address = sh_fault_set_mac;
		break;
	case SH_NET_FAULT_FAIL_FEATURES:
		nd->fault_ops.rw.ndo_set_features = sh_fault_set_features;
		break;
	default:
		nd->fault_ethtool.rw.set_ringparam = sh_fault_set_ringparam;
		break;
	}
	sd->fault = fault;
	sh_net_put_ops(sd, &nd->fault_ops.ro,
		       eth ? &nd->fault_ethtool.ro : NULL);
injected:
	pr_notice("fault %s injected into net:%s%s\n", sh_net_fault_name(fault),
		  nd->dev->name, sd->fault_sticky ? " (sticky)" : "");
	return 0;
}
