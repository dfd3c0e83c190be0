/* SPDX-License-Identifier: GPL-2.0 */
/*
 * shadow_helper - shared declarations of the in-kernel hands of shadowd.
 *
 * The generic core, which knows devices only as a bus device and a class:
 * sh_control.c    the /dev/shadow_helper protocol and module init
 * sh_class.c      the table of device classes and CLASS:NAME references
 * sh_device.c     per-device records: state, fault, the class's data
 * sh_restart.c    the restart skeleton: stop, release, (reload), probe,
 *                 replay, open; or park
 * sh_reload.c     unloading and loading a driver's module during a restart
 * sh_class.h      what a class provides (struct sh_class) and may call
 *
 * The network class, the only files that know its kernel objects (checked
 * by check-class-boundary.sh):
 * sh_net.c             the class: names, lookup, records, txstat, stage
 * sh_net_restart.c     its restart phases and the replay of its settings
 * sh_net_hooks.c       ftrace hooks that keep its device across a restart
 * sh_net_impersonate.c the ops that answer for a driver that is not there
 * sh_net_fault.c       its fault injection, for tests
 * sh_net.h             their shared declarations
 *
 * The block class (sh_block*, checked the same way):
 * sh_block.c           the class: names, lookup, the restart unit, records
 * sh_block_restart.c   its restart phases and the fast teardown
 * sh_block_fault.c     its fault injection, for tests
 * sh_block.h           their shared declarations
 */
#ifndef SHADOW_HELPER_H
#define SHADOW_HELPER_H

#include <linux/device.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/rcupdate.h>
#include <linux/types.h>

#define SH_PROTO	3
#define SH_VERSION	"0.3.0"
#define SH_ID_MAX	32
#define SH_MSG_MAX	160
/* Longest class id and device name any class may use; each may allow less. */
#define SH_CLASS_MAX	16
#define SH_NAME_MAX	32
/* "CLASS:NAME" */
#define SH_REF_MAX	(SH_CLASS_MAX + 1 + SH_NAME_MAX)

extern bool sh_allow_faults;

struct sh_class;

enum sh_state {
	SH_PASSIVE,	/* the driver runs the device; the shadow only watches */
	SH_RESTARTING,	/* the shadow answers while the driver restarts */
	SH_PARKED,	/* given up: no driver, the shadow holds the device */
};

/* A class's faults are numbered by the class; none is always 0. */
#define SH_FAULT_NONE	0

/*
 * What the helper keeps for one class device it has touched. It is found by
 * its class device (the device in /sys/class/CLASS), and restarted through
 * its bus device, the one a driver binds to. The class keeps its own data
 * in priv[].
 */
struct sh_dev {
	struct list_head node;		/* in sh_devs, RCU */
	struct rcu_head rcu;
	const struct sh_class *cls;
	struct device *cdev;		/* the class device: the key */
	struct device *bus;		/* its bus device: the restart unit */
	enum sh_state state;
	unsigned int fault;		/* the class's number, or SH_FAULT_NONE */
	bool fault_sticky;		/* the fault comes back after a restart */
	u8 priv[] __aligned(sizeof(u64));	/* cls->priv_size bytes */
};

/* sh_device.c */
struct sh_dev *sh_dev_find(const struct device *cdev);	/* under RCU */
struct sh_dev *sh_dev_get(const struct sh_class *cls, struct device *cdev);
struct sh_dev *sh_dev_find_parked(const struct sh_class *cls,
				  const struct device *bus);
void sh_dev_forget(struct sh_dev *sd);
void sh_dev_unlist(struct sh_dev *sd);
void sh_dev_free(struct sh_dev *sd);
const char *sh_state_name(enum sh_state state);
void sh_devices_exit(void);

static inline void *sh_dev_priv(struct sh_dev *sd)
{
	return sd->priv;
}

/* sh_class.c */
const struct sh_class *sh_class_find(const char *id, size_t len);
size_t sh_class_ids(char *buf, size_t len);
int sh_classes_init(void);
void sh_classes_exit(void);

/* sh_restart.c */
enum sh_how {
	SH_REPROBE,	/* release the device from its driver, probe it again */
	SH_RELOAD,	/* the same, with the driver's module reloaded between */
	SH_PARK,	/* release it and leave the shadow holding it */
};

enum sh_phase {
	SH_PHASE_NONE,
	SH_PHASE_RELEASING,	/* the driver's remove() runs */
	SH_PHASE_PROBING,	/* the driver's probe() runs */
};

struct sh_result {
	int err;
	bool touched;		/* the device was stopped: it is not as it was */
	char msg[SH_MSG_MAX];
	char steps[SH_MSG_MAX];
	char fields[48];	/* the class's own reply fields, " key=value" */
	char module[MODULE_NAME_LEN];
	unsigned int stop_ms, release_ms, unload_ms, load_ms, probe_ms;
	unsigned int replay_ms, open_ms, total_ms;
};

/* Runs in the module's worker; @res is filled in before it returns. */
int sh_restart(const struct sh_class *cls, const char *name, const char *ref,
	       const char *id, enum sh_how how, struct sh_result *res);

/* sh_reload.c */
int sh_reload_check(struct device *bus, char *module, size_t len,
		    struct sh_result *res);
int sh_reload_module(struct device *bus, const char *module,
		     struct sh_result *res);

#endif /* SHADOW_HELPER_H */
