// SPDX-License-Identifier: GPL-2.0
/*
 * A parked device whose bus device is deleted (hot-unplugged, or removed
 * through sysfs) would stay behind as a zombie: no driver will ever probe it
 * again, and its record keeps the module pinned. So the helper listens for
 * the deletion of bus devices, on each bus type it has restarted a device
 * of, and has the parked device's class finish what the driver's remove()
 * would have done (sh_class.bus_gone).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/mutex.h>
#include <linux/notifier.h>

#include "sh_class.h"

/* PCI, and a few more should a class restart units on other buses. */
#define SH_UNPLUG_BUSES	4

static struct sh_unplug_watch {
	/* const on the kernels that made it so (6.4 on), not before. */
	typeof(((struct device *)NULL)->bus) bus;
	struct notifier_block nb;
} sh_watches[SH_UNPLUG_BUSES];
static DEFINE_MUTEX(sh_watches_lock);

static int sh_unplug_event(struct notifier_block *nb, unsigned long action,
			   void *data)
{
	if (action == BUS_NOTIFY_DEL_DEVICE)
		sh_classes_bus_gone(data);
	return NOTIFY_DONE;
}

/*
 * Before a restart of a unit on @bus's bus type, with no lock held (the
 * notifier chain's lock is taken while a deletion may wait for a class's).
 */
void sh_unplug_watch(struct device *bus)
{
	unsigned int i;
	int err;

	if (!bus->bus)
		return;
	mutex_lock(&sh_watches_lock);
	for (i = 0; i < SH_UNPLUG_BUSES; i++) {
		if (sh_watches[i].bus == bus->bus)
			goto out;
		if (!sh_watches[i].bus)
			break;
	}
	if (i == SH_UNPLUG_BUSES) {
		pr_warn("cannot watch the %s bus for removed devices: %d buses watched already\n",
			bus->bus->name, SH_UNPLUG_BUSES);
		goto out;
	}
	sh_watches[i].nb.notifier_call = sh_unplug_event;
	err = bus_register_notifier(bus->bus, &sh_watches[i].nb);
	if (err)
		pr_warn("cannot watch the %s bus for removed devices: %d\n",
			bus->bus->name, err);
	else
		sh_watches[i].bus = bus->bus;
out:
	mutex_unlock(&sh_watches_lock);
}

/* Module exit, before the classes': no deletion calls into us afterwards. */
void sh_unplug_exit(void)
{
	unsigned int i;

	for (i = 0; i < SH_UNPLUG_BUSES && sh_watches[i].bus; i++)
		bus_unregister_notifier(sh_watches[i].bus, &sh_watches[i].nb);
}
