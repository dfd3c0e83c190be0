// SPDX-License-Identifier: GPL-2.0
/*
 * Reloading a driver's module during a restart, for when the whole module is
 * suspect (it oopsed, or an administrator asks for it): its code and static
 * data come back fresh, not only the failed instance's private state.
 *
 * The restart releases the bus device first (sh_restart.c), so the module's
 * exit finds nothing of ours to tear down. While the module is unloaded and
 * loaded again the device carries a driver_override that names no driver:
 * loading the module cannot probe it from modprobe's context, where the
 * class's hooks would not see the probe. The restart's own worker then
 * probes it, exactly as in a plain restart, and the class device is kept the
 * same way. Nothing here depends on the class: only on the bus (PCI).
 *
 * modprobe runs as a usermode helper from the worker: a daemon killed
 * meanwhile does not leave the module unloaded.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/ktime.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/namei.h>
#include <linux/path.h>
#include <linux/pci.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/umh.h>

#include "sh_class.h"

static char *sh_modprobe = "/sbin/modprobe";
module_param_named(modprobe, sh_modprobe, charp, 0444);
MODULE_PARM_DESC(modprobe, "modprobe used to reload a driver's module (default /sbin/modprobe)");

/* No driver has this name: a device overridden to it binds to nothing. */
#define SH_HOLD_OVERRIDE	"shadow_helper-hold"

static int sh_count_device(struct device *dev, void *data)
{
	(*(unsigned int *)data)++;
	return 0;
}

int sh_reload_check(struct device *parent, char *module, size_t len,
		    struct sh_result *res)
{
	struct device_driver *drv;
	unsigned int bound = 0;
	int err = 0;

	if (!dev_is_pci(parent)) {
		scnprintf(res->msg, sizeof(res->msg),
			  "a reload needs a PCI device (%s is on %s)",
			  dev_name(parent),
			  parent->bus ? parent->bus->name : "no bus");
		return -EOPNOTSUPP;
	}
	if (!sh_modprobe || sh_modprobe[0] != '/') {
		scnprintf(res->msg, sizeof(res->msg),
			  "the modprobe parameter must be an absolute path");
		return -EOPNOTSUPP;
	}
	/* The driver cannot go away while its device is locked. */
	device_lock(parent);
	drv = parent->driver;
	if (!drv) {
		scnprintf(res->msg, sizeof(res->msg), "%s has no driver",
			  dev_name(parent));
		err = -ENODEV;
	} else if (!drv->owner) {
		scnprintf(res->msg, sizeof(res->msg),
			  "driver %s is built into the kernel: it cannot be reloaded",
			  drv->name);
		err = -EOPNOTSUPP;
	} else {
		strscpy(module, module_name(drv->owner), len);
		err = driver_for_each_device(drv, NULL, &bound,
					     sh_count_device);
		if (!err && bound > 1) {
			scnprintf(res->msg, sizeof(res->msg),
				  "driver %s drives %u devices: reloading it would restart the others without their shadow",
				  drv->name, bound);
			err = -EBUSY;
		}
	}
	device_unlock(parent);
	return err;
}

/* modprobe's exit status, or a negative errno if it did not run. */
static int sh_run_modprobe(bool remove, const char *module)
{
	static char *envp[3] = {
		"HOME=/", "PATH=/sbin:/usr/sbin:/bin:/usr/bin", NULL
	};
	char *argv[6] = { sh_modprobe, "-q" };
	int argc = 2;
	int ret;

	if (remove)
		argv[argc++] = "-r";
	argv[argc++] = "--";
	argv[argc++] = (char *)module;
	ret = call_usermodehelper(sh_modprobe, argv, envp, UMH_WAIT_PROC);
	if (ret > 0)
		return (ret >> 8) & 0xff;
	return ret;
}

/* Whether @module is loaded, or could not be told. */
enum sh_presence { SH_MOD_GONE, SH_MOD_LOADED, SH_MOD_UNKNOWN };

/*
 * Whether @module is loaded now: a loadable module has its /sys/module
 * directory from its load until its unload is complete. modprobe's exit
 * status says what modprobe thinks, not what happened (it fails on a
 * dependency or a removal hook after the module itself went, or when the
 * module was already gone), so the reload decides from this.
 */
static enum sh_presence sh_module_presence(const char *module)
{
	struct path path;
	char *name;
	int err;

	name = kasprintf(GFP_KERNEL, "/sys/module/%s", module);
	if (!name)
		return SH_MOD_UNKNOWN;
	err = kern_path(name, 0, &path);
	kfree(name);
	if (!err) {
		path_put(&path);
		return SH_MOD_LOADED;
	}
	return err == -ENOENT ? SH_MOD_GONE : SH_MOD_UNKNOWN;
}

static const char *sh_presence_name(enum sh_presence p)
{
	return p == SH_MOD_LOADED ? "is loaded" :
	       p == SH_MOD_GONE ? "is not loaded" : "may or may not be loaded";
}

/* @what (modprobe [-r]) ended with @ret and left @module as @p: says both. */
static void sh_modprobe_report(char *buf, size_t len, const char *what,
			       const char *module, int ret,
			       enum sh_presence p)
{
	if (ret < 0)
		scnprintf(buf, len, "cannot run %s: error %d; module %s %s",
			  sh_modprobe, ret, module, sh_presence_name(p));
	else
		scnprintf(buf, len, "%s %s exited with status %d; module %s %s",
			  what, module, ret, module, sh_presence_name(p));
}

#ifdef SH_DEVICE_DRIVER_OVERRIDE
/*
 * The driver core keeps every device's driver_override (6.12.91 and later;
 * the Makefile looks for it in the headers): a copy of @pdev's into *@saved,
 * NULL if it has none.
 */
static int sh_get_override(struct pci_dev *pdev, char **saved)
{
	struct device *dev = &pdev->dev;
	bool had;

	spin_lock(&dev->driver_override.lock);
	had = dev->driver_override.name;
	*saved = had ? kstrdup(dev->driver_override.name, GFP_ATOMIC) : NULL;
	spin_unlock(&dev->driver_override.lock);
	return had && !*saved ? -ENOMEM : 0;
}

/* Sets, or with @s NULL clears, @pdev's driver_override. */
static int sh_set_override(struct pci_dev *pdev, const char *s)
{
	return device_set_driver_override(&pdev->dev, s ? s : "");
}
#else
/* A copy of @pdev's driver_override into *@saved, NULL if it has none. */
static int sh_get_override(struct pci_dev *pdev, char **saved)
{
	bool had;

	device_lock(&pdev->dev);
	had = pdev->driver_override;
	*saved = had ? kstrdup(pdev->driver_override, GFP_KERNEL) : NULL;
	device_unlock(&pdev->dev);
	return had && !*saved ? -ENOMEM : 0;
}

/* Sets, or with @s NULL clears, @pdev's driver_override. */
static int sh_set_override(struct pci_dev *pdev, const char *s)
{
	if (!s)
		s = "";
	return driver_set_override(&pdev->dev, &pdev->driver_override, s,
				   strlen(s));
}
#endif

/*
 * With the device released: unloads @module and loads it again. -EBUSY if
 * the module was left as it was (it is still loaded after modprobe -r, or the
 * device could not be held back), so the caller may go on with a plain probe;
 * -EIO if it is not loaded now. Whether it unloaded and loaded is read from
 * /sys/module after each modprobe, not from modprobe's exit status; a failure
 * message gives both.
 */
int sh_reload_module(struct device *parent, const char *module,
		     struct sh_result *res)
{
	struct pci_dev *pdev = to_pci_dev(parent);
	ktime_t mark = ktime_get();
	enum sh_presence presence;
	char note[SH_MSG_MAX];
	char *saved;
	int ret, err = 0;

	ret = sh_get_override(pdev, &saved);
	if (!ret)
		ret = sh_set_override(pdev, SH_HOLD_OVERRIDE);
	if (ret) {
		scnprintf(res->msg, sizeof(res->msg),
			  "cannot hold %s back from its driver: error %d",
			  dev_name(parent), ret);
		kfree(saved);
		return -EBUSY;
	}
	ret = sh_run_modprobe(true, module);
	res->unload_ms = ktime_ms_delta(ktime_get(), mark);
	/*
	 * Unloaded is decided from the module's presence; the exit status
	 * only when presence cannot be told.
	 */
	presence = sh_module_presence(module);
	if (presence == SH_MOD_LOADED ||
	    (presence == SH_MOD_UNKNOWN && ret)) {
		sh_modprobe_report(res->msg, sizeof(res->msg), "modprobe -r",
				   module, ret, presence);
		err = -EBUSY;
		goto restore;
	}
	if (ret) {
		sh_modprobe_report(note, sizeof(note), "modprobe -r", module,
				   ret, presence);
		pr_warn("%s: %s: unloaded all the same\n", dev_name(parent),
			note);
	}
	mark = ktime_get();
	ret = sh_run_modprobe(false, module);
	res->load_ms = ktime_ms_delta(ktime_get(), mark);
	presence = sh_module_presence(module);
	if (presence == SH_MOD_GONE || (presence == SH_MOD_UNKNOWN && ret)) {
		sh_modprobe_report(res->msg, sizeof(res->msg), "modprobe",
				   module, ret, presence);
		err = -EIO;
	} else if (ret) {
		sh_modprobe_report(note, sizeof(note), "modprobe", module, ret,
				   presence);
		pr_warn("%s: %s: loaded all the same\n", dev_name(parent), note);
	}
restore:
	/* The administrator's own override, if any, is put back. */
	ret = sh_set_override(pdev, saved);
	if (ret)
		pr_warn("%s: cannot restore its driver_override: error %d\n",
			dev_name(parent), ret);
	kfree(saved);
	return err;
}
