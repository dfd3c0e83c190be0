/* SPDX-License-Identifier: GPL-2.0 */
/*
 * shadow_helper - shared declarations of the in-kernel hands of shadowd.
 *
 * sh_control.c    the /dev/shadow_helper protocol and module init
 * sh_device.c     per-device records: staged settings, faults, state
 * sh_hooks.c      ftrace hooks that keep the net_device across a restart
 * sh_restart.c    stop, release, probe, replay, open; and park
 * sh_reload.c     unloading and loading a driver's module during a restart
 * sh_impersonate.c the ops that answer for a driver that is not there
 * sh_fault.c      fault injection, for tests
 */
#ifndef SHADOW_HELPER_H
#define SHADOW_HELPER_H

#include <linux/ethtool.h>
#include <linux/list.h>
#include <linux/module.h>
#include <linux/netdevice.h>
#include <linux/rcupdate.h>
#include <linux/types.h>

#define SH_PROTO	2
#define SH_VERSION	"0.2.0"
#define SH_ID_MAX	32
#define SH_MSG_MAX	160

extern bool sh_allow_faults;

enum sh_state {
	SH_PASSIVE,	/* the driver runs the device; the shadow only watches */
	SH_RESTARTING,	/* the shadow answers while the driver restarts */
	SH_PARKED,	/* given up: no driver, the shadow holds the device */
};

enum sh_fault {
	SH_FAULT_NONE,
	SH_FAULT_TX_HANG,
	SH_FAULT_TX_HANG_RESET,
	SH_FAULT_FAIL_STOP,
	SH_FAULT_FAIL_OPEN,
	SH_FAULT_FAIL_MTU,
	SH_FAULT_FAIL_MAC,
	SH_FAULT_FAIL_FEATURES,
	SH_FAULT_FAIL_RINGS,
	SH_FAULT_LOST_IRQ,
	SH_FAULT_COUNT,
};

/* Driver settings kept in its private area, written back after a restart. */
struct sh_staged {
	bool has_rings, has_msglvl, has_pause, has_privflags;
	u32 rx, rx_mini, rx_jumbo, tx;
	u32 msglvl;
	u32 pause_autoneg, pause_rx, pause_tx;
	u32 privflags;
};

/* What the shadow answers with while the driver is away. */
struct sh_answers {
	struct rtnl_link_stats64 stats;
	struct ethtool_drvinfo drvinfo;
	struct ethtool_ringparam ring;
	struct ethtool_pauseparam pause;
	u32 msglvl;
	u32 privflags;
	bool has_drvinfo, has_ring, has_pause, has_msglvl, has_privflags;
};

/*
 * A copy of a driver's ops with some entries replaced: patched through .rw,
 * handed to the device through .ro.
 */
union sh_ndo_copy { const struct net_device_ops ro; struct net_device_ops rw; };
union sh_ethtool_copy { const struct ethtool_ops ro; struct ethtool_ops rw; };

struct sh_dev {
	struct list_head node;		/* in sh_devs, RCU for the ops */
	struct rcu_head rcu;
	struct net_device *dev;		/* valid while registered */
	int ifindex;
	enum sh_state state;
	struct sh_staged staged;	/* under RTNL */
	struct sh_answers answers;	/* written before the shadow answers */

	/* The driver's own ops while faults or the shadow stand in. */
	const struct net_device_ops *real_ops;
	const struct ethtool_ops *real_ethtool;
	bool ops_ours;			/* dev's ops are ours; module pinned */

	enum sh_fault fault;
	bool fault_sticky;
	bool hang_active;		/* tx-hang-reset: until the driver resets */
	bool irq_masked;		/* lost-irq: INTx masked at the device */
	union sh_ndo_copy fault_ops;
	union sh_ethtool_copy fault_ethtool;
};

/* sh_device.c: all under RTNL unless noted. */
struct sh_dev *sh_dev_find(const struct net_device *dev);	/* RCU */
struct sh_dev *sh_dev_get(struct net_device *dev);
void sh_dev_put_ops(struct sh_dev *sd, const struct net_device_ops *ops,
		    const struct ethtool_ops *ethtool);
void sh_dev_restore_ops(struct sh_dev *sd);
const char *sh_state_name(enum sh_state state);
int sh_devices_init(void);
void sh_devices_exit(void);

/* sh_impersonate.c */
void sh_impersonate(struct sh_dev *sd);
void sh_imp_reinstall(struct net_device *dev);
bool sh_is_impersonating(const struct net_device *dev);

/* sh_fault.c */
int sh_fault_parse(const char *name, enum sh_fault *fault);
const char *sh_fault_name(enum sh_fault fault);
int sh_fault_apply(struct sh_dev *sd, enum sh_fault fault, char *msg,
		   size_t len);
void sh_fault_clear(struct sh_dev *sd);
void sh_fault_unmask_irq(struct sh_dev *sd);

/* sh_hooks.c */
enum sh_phase {
	SH_PHASE_NONE,
	SH_PHASE_RELEASING,	/* the driver's remove() runs */
	SH_PHASE_PROBING,	/* the driver's probe() runs */
};

struct sh_window {
	struct net_device *dev;
	struct task_struct *task;
	enum sh_phase phase;
	char name[IFNAMSIZ];
	bool released;		/* remove() gave the device up */
	bool handed;		/* probe() was given the device */
	bool registered;	/* probe() registered it */
	bool rtnl_held;		/* taken when probe() was given the device */
	bool name_pinned;	/* lookups use name[] while probe runs */
	const struct net_device_ops *probed_ops;
	const struct ethtool_ops *probed_ethtool;
	char why[SH_MSG_MAX];	/* why probe() did not get the device */
};

int sh_hooks_arm(struct sh_window *win);
void sh_hooks_set_phase(enum sh_phase phase);
void sh_hooks_disarm(void);
void sh_restore_name(struct sh_window *win);

/* sh_restart.c */
enum sh_how {
	SH_REPROBE,	/* release the device from its driver, probe it again */
	SH_RELOAD,	/* the same, with the driver's module reloaded between */
	SH_PARK,	/* release it and leave the shadow holding it */
};

struct sh_result {
	int err;
	bool touched;		/* the device was stopped: it is not as it was */
	char msg[SH_MSG_MAX];
	char steps[SH_MSG_MAX];
	char module[MODULE_NAME_LEN];
	unsigned int stop_ms, release_ms, unload_ms, load_ms, probe_ms;
	unsigned int replay_ms, open_ms, total_ms;
	int ifindex;
};

/* Runs in the module's worker; @res is filled in before it returns. */
int sh_restart(const char *ifname, const char *id, enum sh_how how,
	       struct sh_result *res);

/* sh_reload.c */
int sh_reload_check(struct device *parent, char *module, size_t len,
		    struct sh_result *res);
int sh_reload_module(struct device *parent, const char *module,
		     struct sh_result *res);

#endif /* SHADOW_HELPER_H */
