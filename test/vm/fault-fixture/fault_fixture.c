// SPDX-License-Identifier: GPL-2.0
/*
 * Test fixture for the guest rig only: a module that makes the kernel report
 * a problem on purpose, so the rig's own tests can prove that a WARN or an
 * oops caused by a test fails that test, and so the failure detectors can be
 * shown real kernel reports. Never installed with shadowd.
 */
#include <linux/bug.h>
#include <linux/jiffies.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/string.h>
#include <net/net_namespace.h>

static char *mode = "warn";
/* Never set: a global so the compiler cannot prove the load below faults. */
static int *nowhere;
static char *ifname = "eth0";
module_param(mode, charp, 0444);
MODULE_PARM_DESC(mode, "warn: WARN and load; oops: die in init; txstop: hang ifname's TX queue 0");
module_param(ifname, charp, 0444);
MODULE_PARM_DESC(ifname, "interface whose TX queue 0 mode=txstop stops");

/*
 * Stops TX queue 0 behind the driver's back, as a driver whose hardware hung
 * would leave it. The kernel's TX watchdog then reports the timeout and calls
 * the driver's ndo_tx_timeout, which (e1000) resets the device and wakes the
 * queue. The last transmit is backdated by a watchdog period so the timeout
 * comes at the watchdog's next run instead of a period later.
 */
static int fault_fixture_txstop(void)
{
	struct net_device *dev = dev_get_by_name(&init_net, ifname);
	struct netdev_queue *txq;

	if (!dev)
		return -ENODEV;
	txq = netdev_get_tx_queue(dev, 0);
	netif_tx_stop_queue(txq);
	WRITE_ONCE(txq->trans_start, jiffies - dev->watchdog_timeo - 1);
	pr_info("fault_fixture: stopped %s TX queue 0\n", dev->name);
	dev_put(dev);
	return 0;
}

static int __init fault_fixture_init(void)
{
	if (!strcmp(mode, "warn")) {
		WARN(1, "fault_fixture: deliberate warning\n");
		return 0;
	}
	if (!strcmp(mode, "oops")) {
		pr_info("fault_fixture: deliberate oops\n");
		return READ_ONCE(*nowhere);
	}
	if (!strcmp(mode, "txstop"))
		return fault_fixture_txstop();
	return -EINVAL;
}

static void __exit fault_fixture_exit(void)
{
}

module_init(fault_fixture_init);
module_exit(fault_fixture_exit);
MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("Guest rig test fixture: deliberate WARN, oops or TX timeout");
