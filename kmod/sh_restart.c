// SPDX-License-Identifier: GPL-2.0
/*
 * The restart skeleton, the same for every class: a driver instance is
 * restarted through its bus device while the class device applications hold
 * survives, and the device's state is replayed into the fresh instance.
 *
 *  stop     under the class's lock: the failed driver is quiesced, its
 *           injected faults are lifted (sticky ones are kept to come back)
 *           and the shadow starts answering for it;
 *  release  driver core unbinds the driver from the bus device; the class's
 *           hooks keep the class device;
 *  (reload) the driver's module is unloaded and loaded again (sh_reload.c);
 *  probe    driver core binds the bus device again; the class hands the
 *           probe the same class device;
 *  replay   under the class's lock: the fresh driver's entry points go in and
 *           the class writes the device's settings back, each step checked;
 *           a sticky fault comes back;
 *  open     the device is opened again if it was open.
 *
 * If the driver does not come back, or on request, the device is parked:
 * quiesced, the shadow answering for it, until a later restart.
 *
 * Everything runs in the module's worker (sh_control.c), so a requester that
 * dies mid-restart cannot leave the device half done.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/ktime.h>
#include <linux/mutex.h>
#include <linux/slab.h>

#include "sh_class.h"

static DEFINE_MUTEX(sh_restart_lock);

static unsigned int sh_ms_since(ktime_t *mark)
{
	ktime_t now = ktime_get();
	unsigned int ms = ktime_ms_delta(now, *mark);

	*mark = now;
	return ms;
}

void sh_step(struct sh_run *run, const char *key, int err, bool done)
{
	struct sh_result *res = run->res;
	const char *what = err ? "fail" : done ? "ok" : "skip";

	run->steps_len += scnprintf(res->steps + run->steps_len,
				    sizeof(res->steps) - run->steps_len,
				    "%s%s:%s", run->steps_len ? "," : "", key,
				    what);
	if (err)
		pr_warn("recovery %s: %s: %s failed: error %d\n",
			run->id, run->ref, key, err);
}

/* Under the class's lock: the shadow holds the device; nothing reaches a driver. */
static void sh_park(struct sh_run *run)
{
	run->cls->quiesce(run);
	run->cls->impersonate(run);
	run->sd->state = SH_PARKED;
}

/* Under the class's lock, the driver still bound. */
static void sh_stop(struct sh_run *run)
{
	struct sh_dev *sd = run->sd;

	run->cls->stop(run);
	if (!sd->fault_sticky)
		sd->fault = SH_FAULT_NONE;
	run->cls->impersonate(run);
	sd->state = SH_RESTARTING;
}

static int sh_release(struct sh_run *run)
{
	struct device *bus = run->bus;

	if (!READ_ONCE(bus->driver))
		return 0;
	run->cls->set_phase(run, SH_PHASE_RELEASING);
	device_release_driver(bus);
	run->cls->set_phase(run, SH_PHASE_NONE);
	if (READ_ONCE(bus->driver)) {
		scnprintf(run->res->msg, sizeof(run->res->msg),
			  "the driver did not let go of the device");
		return -EIO;
	}
	return run->cls->released(run);
}

/* Returns with the class's lock held. */
static int sh_probe(struct sh_run *run)
{
	int ret;

	run->cls->set_phase(run, SH_PHASE_PROBING);
	ret = device_attach(run->bus);
	run->cls->set_phase(run, SH_PHASE_NONE);
	return run->cls->probed(run, ret);
}

/* Under the class's lock: a probe that failed half way lets go of the device. */
static void sh_unbind_failed(struct sh_run *run)
{
	if (!READ_ONCE(run->bus->driver))
		return;
	run->cls->unlock();
	device_release_driver(run->bus);
	run->cls->lock();
}

/*
 * A reload that could not unload the module goes on as a plain restart: the
 * device is released already, and probing it again is still the best way
 * back. Any other failure leaves no driver to probe it.
 */
static int sh_reload(struct sh_run *run)
{
	struct sh_result *res = run->res;
	int err = sh_reload_module(run->bus, res->module, res);

	sh_step(run, "reload", err, !err);
	if (err != -EBUSY)
		return err;
	pr_warn("recovery %s: %s: %s; probing it again with the module as it is\n",
		run->id, run->ref, res->msg);
	res->msg[0] = '\0';
	return 0;
}

/*
 * A class that restarts its driver in place; returns with the class's lock
 * held. Parking does not reset: the device is parked as it is.
 */
static int sh_reset(struct sh_run *run)
{
	int err = 0;

	if (run->how != SH_PARK)
		err = run->cls->reset(run);
	run->cls->lock();
	if (err && !run->res->msg[0])
		scnprintf(run->res->msg, sizeof(run->res->msg),
			  "the driver's reset failed: error %d", err);
	return err;
}

/* Under the class's lock, the fresh driver bound. */
static int sh_replay_open(struct sh_run *run, ktime_t *mark)
{
	struct sh_dev *sd = run->sd;
	struct sh_result *res = run->res;
	int ret;

	run->cls->unimpersonate(run);
	sd->state = SH_PASSIVE;
	run->cls->replay(run);
	res->replay_ms = sh_ms_since(mark);
	/* A sticky fault is back before the driver opens: it may fail open. */
	if (sd->fault_sticky && sd->fault != SH_FAULT_NONE)
		run->cls->fault_apply(sd, sd->fault, res->msg, sizeof(res->msg));
	ret = run->cls->open(run);
	sh_step(run, "open", min(ret, 0), ret > 0);
	res->open_ms = sh_ms_since(mark);
	if (ret < 0) {
		scnprintf(res->msg, sizeof(res->msg),
			  "the driver's open failed: error %d", ret);
		return -EIO;
	}
	return 0;
}

static int sh_restart_unit(struct sh_run *run)
{
	const struct sh_class *cls = run->cls;
	struct sh_result *res = run->res;
	ktime_t mark = ktime_get();
	int err;

	if (run->how == SH_RELOAD) {
		err = sh_reload_check(run->bus, res->module,
				      sizeof(res->module), res);
		if (err)
			return err;
	}
	err = cls->arm(run);
	if (err)
		return err;
	cls->lock();
	err = cls->check ? cls->check(run) : 0;
	if (err) {
		cls->unlock();
		cls->disarm(run);
		return err;
	}
	run->sd = sh_dev_get(cls, run->cdev);
	if (!run->sd) {
		cls->unlock();
		cls->disarm(run);
		scnprintf(res->msg, sizeof(res->msg), "out of memory");
		return -ENOMEM;
	}
	res->touched = true;
	sh_stop(run);
	cls->unlock();
	res->stop_ms = sh_ms_since(&mark);

	if (cls->reset) {
		err = sh_reset(run);
		res->probe_ms = sh_ms_since(&mark);
		if (err || run->how == SH_PARK)
			goto parked;
		goto replay;
	}
	err = sh_release(run);
	res->release_ms = sh_ms_since(&mark);
	if (!err && cls->cdev_goes) {
		cls->put(run->cdev);
		run->cdev = NULL;
	}
	if (err || run->how == SH_PARK) {
		cls->lock();
		goto parked;
	}
	/* The old module's code must not run again: the shadow's is in. */
	if (run->how == SH_RELOAD) {
		err = sh_reload(run);
		mark = ktime_get();
		if (err) {
			cls->lock();
			goto parked;
		}
	}
	err = sh_probe(run);
	res->probe_ms = sh_ms_since(&mark);
	if (err) {
		sh_unbind_failed(run);
		goto parked;
	}
replay:
	err = sh_replay_open(run, &mark);
	if (err)
		goto parked;
	goto out;
parked:
	sh_park(run);
out:
	cls->unlock();
	cls->disarm(run);
	return err;
}

static const char *const sh_how_verbs[] = {
	[SH_REPROBE] = "restarting",
	[SH_RELOAD] = "reloading the driver of",
	[SH_PARK] = "parking",
};

int sh_restart(const struct sh_class *cls, const char *name, const char *ref,
	       const char *id, enum sh_how how, struct sh_result *res)
{
	struct sh_run run = {
		.cls = cls, .ref = ref, .id = id, .how = how, .res = res,
	};
	ktime_t start = ktime_get();
	int err;

	run.cdev = cls->get(name);
	if (!run.cdev) {
		scnprintf(res->msg, sizeof(res->msg), "no %s %s", cls->noun,
			  ref);
		return -ENODEV;
	}
	run.bus = sh_bus_get(cls, run.cdev, ref, res->msg, sizeof(res->msg));
	if (!run.bus) {
		cls->put(run.cdev);
		return -ENODEV;
	}
	sh_unplug_watch(run.bus);
	run.priv = kzalloc(cls->run_size, GFP_KERNEL);
	if (!run.priv) {
		scnprintf(res->msg, sizeof(res->msg), "out of memory");
		err = -ENOMEM;
		goto out;
	}
	cls->reply_fields(run.cdev, res->fields, sizeof(res->fields));
	pr_info("recovery %s: %s %s\n", id, sh_how_verbs[how], ref);
	mutex_lock(&sh_restart_lock);
	err = sh_restart_unit(&run);
	mutex_unlock(&sh_restart_lock);
	/* Deleted while it restarted: its deletion found it not parked yet. */
	if (err && res->touched && !device_is_registered(run.bus))
		sh_classes_bus_gone(run.bus);
	res->total_ms = ktime_ms_delta(ktime_get(), start);
	if (err && !res->touched)
		pr_warn("recovery %s: %s left as it was: %s\n", id, ref,
			res->msg);
	else if (err)
		pr_warn("recovery %s: %s %s after %u ms: %s\n", id, ref,
			how == SH_PARK ? "not parked" : "parked",
			res->total_ms, res->msg);
	else
		pr_info("recovery %s: %s %s in %u ms (%s)\n", id, ref,
			how == SH_PARK ? "parked" : "restarted",
			res->total_ms, res->steps);
	kfree(run.priv);
out:
	put_device(run.bus);
	if (run.cdev)
		cls->put(run.cdev);
	return err;
}
