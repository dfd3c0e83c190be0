/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The network class's shared declarations: what its record keeps for a
 * net_device, its faults, and the window its hooks watch during a restart.
 * Only the sh_net*.c files include this.
 */
#ifndef SH_NET_H
#define SH_NET_H

#include <linux/ethtool.h>
#include <linux/netdevice.h>

#include "sh_class.h"

enum sh_net_fault {
	SH_NET_FAULT_NONE = SH_FAULT_NONE,
	SH_NET_FAULT_TX_HANG,
	SH_NET_FAULT_TX_HANG_RESET,
	SH_NET_FAULT_FAIL_STOP,
	SH_NET_FAULT_FAIL_OPEN,
	SH_NET_FAULT_FAIL_MTU,
	SH_NET_FAULT_FAIL_MAC,
	SH_NET_FAULT_FAIL_FEATURES,
	SH_NET_FAULT_FAIL_RINGS,
	SH_NET_FAULT_LOST_IRQ,
	SH_NET_FAULT_COUNT,
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

/* The class's part of a record (sh_dev_priv()); written under RTNL. */
struct sh_net_dev {
	struct net_device *dev;		/* valid while registered */
	struct sh_staged staged;
	struct sh_answers answers;	/* written before the shadow answers */

	/* The driver's own ops while faults or the shadow stand in. */
	const struct net_device_ops *real_ops;
	const struct ethtool_ops *real_ethtool;
	bool ops_ours;			/* dev's ops are ours; module pinned */
	bool netns_pinned;		/* we keep the device in its namespace */
	bool netns_local_was;		/* ... and what the driver had said */
	bool carrier_parked;		/* parking took the carrier away */

	bool hang_active;		/* tx-hang-reset: until the driver resets */
	bool irq_masked;		/* lost-irq: INTx masked at the device */
	union sh_ndo_copy fault_ops;
	union sh_ethtool_copy fault_ethtool;
};

static inline struct sh_net_dev *sh_net(struct sh_dev *sd)
{
	return sh_dev_priv(sd);
}

/* sh_net.c */
struct sh_dev *sh_net_find(const struct net_device *dev);	/* RCU */
struct sh_dev *sh_net_find_rtnl(const struct net_device *dev);
void sh_net_put_ops(struct sh_dev *sd, const struct net_device_ops *ops,
		    const struct ethtool_ops *ethtool);
void sh_net_restore_ops(struct sh_dev *sd);
void sh_net_pin_netns(struct sh_dev *sd);
void sh_net_unpin_netns(struct sh_dev *sd);

/* sh_net_impersonate.c */
void sh_impersonate(struct sh_dev *sd);
void sh_imp_reinstall(struct net_device *dev);
bool sh_is_impersonating(const struct net_device *dev);

/* sh_net_fault.c */
int sh_net_fault_parse(const char *name, unsigned int *fault);
const char *sh_net_fault_name(unsigned int fault);
int sh_net_fault_apply(struct sh_dev *sd, unsigned int fault, char *msg,
		       size_t len);
void sh_net_fault_clear(struct sh_dev *sd);
void sh_net_fault_unmask_irq(struct sh_dev *sd);

/* sh_net_hooks.c: what a restart's hooks watch and found. */
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
	bool *carrier_parked;	/* the record's: give the carrier back at alloc */
	const struct net_device_ops *probed_ops;
	const struct ethtool_ops *probed_ethtool;
	char why[SH_MSG_MAX];	/* why probe() did not get the device */
};

int sh_hooks_arm(struct sh_window *win);
void sh_hooks_set_phase(enum sh_phase phase);
void sh_hooks_disarm(void);
void sh_hooks_exit(void);
void sh_restore_name(struct sh_window *win);

/* sh_net_restart.c: the class's restart phases (struct sh_class). */
struct sh_net_run {
	struct sh_window win;
	u8 mac[MAX_ADDR_LEN];
	netdev_features_t wanted;
	netdev_features_t features;
};

int sh_net_arm(struct sh_run *run);
int sh_net_check(struct sh_run *run);
void sh_net_disarm(struct sh_run *run);
void sh_net_set_phase(struct sh_run *run, enum sh_phase phase);
void sh_net_stop(struct sh_run *run);
void sh_net_impersonate(struct sh_run *run);
int sh_net_released(struct sh_run *run);
int sh_net_probed(struct sh_run *run, int attach_ret);
void sh_net_unimpersonate(struct sh_run *run);
void sh_net_replay(struct sh_run *run);
int sh_net_open(struct sh_run *run);
void sh_net_quiesce(struct sh_run *run);

#endif /* SH_NET_H */
