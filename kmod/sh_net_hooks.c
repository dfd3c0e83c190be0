// SPDX-License-Identifier: GPL-2.0
/*
 * The network class's hooks: keeping the kernel's net_device across a
 * driver restart.
 *
 * A driver's remove() unregisters and frees its net_device and its probe()
 * allocates and registers a new one: a new ifindex, no addresses, no routes,
 * and every socket bound to the old device is cut off. While a restart runs,
 * ftrace redirects the class calls the driver makes for the device under
 * restart (and only those, and only in their phase):
 *
 *   remove():  unregister_netdevice_queue() does nothing;
 *              free_netdev() only unlinks the driver's NAPI instances,
 *              which live in its private area, and waits for their readers;
 *   probe():   alloc_netdev_mqs() hands back the same device with its private
 *              area zeroed, and takes RTNL so that no configuration call can
 *              reach the half-probed driver (device_lock then RTNL: the
 *              kernel's own order); rtnl_lock()/rtnl_unlock() made by the
 *              probing thread meanwhile are then no-ops;
 *              register_netdevice() puts the device's name back, keeps the
 *              driver's new ops for later and lets the shadow answer again;
 *              dev_get_stats() answers from the shadow, because it calls the
 *              driver without RTNL.
 *
 * ftrace (IPMODIFY, as livepatch does) needs neither kprobes nor kallsyms:
 * all these functions are exported.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/ftrace.h>
#include <linux/netdevice.h>
#include <linux/ptrace.h>
#include <linux/rtnetlink.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/string.h>

#include "sh_net.h"

static struct sh_window *sh_win;

/*
 * Name lookups (ethtool netlink, SO_BINDTODEVICE) compare against the name
 * node, whose string is dev->name itself, without RTNL; probe writes its bus
 * address there. Mirrors struct netdev_name_node from net/core/dev.h, which
 * is private to net/core: the layout is checked on the live device before it
 * is relied on, and the name is simply left alone if it does not match.
 */
struct sh_name_node {
	struct hlist_node hlist;
	struct list_head list;
	struct net_device *dev;
	const char *name;
};

static struct sh_name_node *sh_name_node(struct net_device *dev)
{
	struct sh_name_node *node = (struct sh_name_node *)dev->name_node;

	if (!node || node->dev != dev || node->name != dev->name)
		return NULL;
	return node;
}

/* Lookups find the device by the saved copy of its name while probe runs. */
static void sh_pin_name(struct sh_window *win)
{
	struct sh_name_node *node = sh_name_node(win->dev);

	if (!node)
		return;
	WRITE_ONCE(node->name, win->name);
	win->name_pinned = true;
}

void sh_restore_name(struct sh_window *win)
{
	struct net_device *dev = win->dev;
	struct sh_name_node *node = (struct sh_name_node *)dev->name_node;

	strscpy(dev->name, win->name, sizeof(dev->name));
	if (win->name_pinned)
		WRITE_ONCE(node->name, dev->name);
	win->name_pinned = false;
}

/* @win is the window the handler read: sh_win may be cleared meanwhile. */
static bool sh_in_probe(const struct sh_window *win)
{
	return READ_ONCE(win->phase) == SH_PHASE_PROBING &&
		win->task == current;
}

static struct net_device *sh_alloc_netdev_mqs(int sizeof_priv,
					      const char *name,
					      unsigned char name_assign_type,
					      void (*setup)(struct net_device *),
					      unsigned int txqs,
					      unsigned int rxqs)
{
	struct sh_window *win = sh_win;
	struct net_device *dev = win->dev;
#if SH_KERNEL >= 611
	/* Since 6.11 the private area is priv[], counted by priv_len. */
	size_t room = dev->priv_len;
#else
	size_t room = 0;
	void *mem = (char *)dev - dev->padded;
#endif

	win->handed = true;
	/* The driver must get the private area it asks for, and no less. */
#if SH_KERNEL < 611
	if (!is_vmalloc_addr(mem))
		room = ksize(mem) - dev->padded -
			ALIGN(sizeof(struct net_device), NETDEV_ALIGN);
#endif
	if (sizeof_priv < 0 || (size_t)sizeof_priv > room) {
		scnprintf(win->why, sizeof(win->why),
			  "probe asked for a %d-byte private area, the device has %zu",
			  sizeof_priv, room);
		return NULL;
	}
	if (txqs != dev->num_tx_queues || rxqs != dev->num_rx_queues) {
		scnprintf(win->why, sizeof(win->why),
			  "probe asked for %u/%u queues, the device has %u/%u",
			  txqs, rxqs, dev->num_tx_queues, dev->num_rx_queues);
		return NULL;
	}
	rtnl_lock();
	win->rtnl_held = true;
	sh_pin_name(win);
	/*
	 * A parked device lost its carrier; the probe gets it as a fresh
	 * device has it, and RTNL keeps linkwatch off the device until open.
	 */
	if (win->carrier_parked && *win->carrier_parked) {
		netif_carrier_on(dev);
		*win->carrier_parked = false;
	}
	/* Drivers assume a zeroed private area. */
	memset(netdev_priv(dev), 0, sizeof_priv);
	return dev;
}

static int sh_register_netdevice(struct net_device *dev)
{
	struct sh_window *win = sh_win;

	if (!dev->netdev_ops) {
		scnprintf(win->why, sizeof(win->why),
			  "probe registered the device without ops");
		return -EINVAL;
	}
	/* Probe named it after its bus address, then "eth%d". */
	sh_restore_name(win);
	win->probed_ops = dev->netdev_ops;
	win->probed_ethtool = dev->ethtool_ops;
	sh_imp_reinstall(dev);
	win->registered = true;
	return 0;
}

static void sh_unregister_netdevice_queue(struct net_device *dev,
					  struct list_head *head)
{
	sh_win->registered = false;
}

static void sh_free_netdev(struct net_device *dev)
{
	struct napi_struct *napi, *next;

	/* The NAPI structs live in the private area probe will zero. */
	list_for_each_entry_safe(napi, next, &dev->napi_list, dev_list)
		__netif_napi_del(napi);
	/* A restart is waited for: an expedited grace period, as under RTNL. */
	synchronize_rcu_expedited();
	sh_win->released = true;
}

static void sh_rtnl_lock(void)
{
}

static int sh_rtnl_lock_killable(void)
{
	return 0;
}

static void sh_rtnl_unlock(void)
{
}

static struct rtnl_link_stats64 *sh_dev_get_stats(struct net_device *dev,
						  struct rtnl_link_stats64 *s)
{
	struct sh_dev *sd;

	memset(s, 0, sizeof(*s));
	rcu_read_lock();
	sd = sh_net_find(dev);
	if (sd)
		*s = sh_net(sd)->answers.stats;
	rcu_read_unlock();
	return s;
}

/* Does this call belong to the restart? First argument in @arg0. */
typedef bool (*sh_match_fn)(struct sh_window *win, unsigned long arg0);

static bool sh_match_alloc(struct sh_window *win, unsigned long arg0)
{
	return sh_in_probe(win) && !win->handed;
}

static bool sh_match_register(struct sh_window *win, unsigned long arg0)
{
	return sh_in_probe(win) && arg0 == (unsigned long)win->dev;
}

static bool sh_match_teardown(struct sh_window *win, unsigned long arg0)
{
	return READ_ONCE(win->phase) != SH_PHASE_NONE && win->task == current &&
		arg0 == (unsigned long)win->dev;
}

static bool sh_match_rtnl(struct sh_window *win, unsigned long arg0)
{
	return sh_in_probe(win) && win->rtnl_held;
}

static bool sh_match_stats(struct sh_window *win, unsigned long arg0)
{
	return READ_ONCE(win->phase) == SH_PHASE_PROBING &&
		arg0 == (unsigned long)win->dev;
}

struct sh_hook {
	const char *name;
	void *target;
	void *replacement;
	sh_match_fn match;
};

#define SH_HOOK(fn, match_fn) {				\
	.name = #fn,					\
	.target = fn,					\
	.replacement = sh_##fn,				\
	.match = match_fn,				\
}

static const struct sh_hook sh_hooks[] = {
	SH_HOOK(alloc_netdev_mqs, sh_match_alloc),
	SH_HOOK(register_netdevice, sh_match_register),
	SH_HOOK(unregister_netdevice_queue, sh_match_teardown),
	SH_HOOK(free_netdev, sh_match_teardown),
	SH_HOOK(rtnl_lock, sh_match_rtnl),
	SH_HOOK(rtnl_lock_killable, sh_match_rtnl),
	SH_HOOK(rtnl_unlock, sh_match_rtnl),
	SH_HOOK(dev_get_stats, sh_match_stats),
};

/* ftrace reports the call site in the function's first bytes (after ENDBR). */
#define SH_ENTRY_SLACK	16

static const struct sh_hook *sh_hook_at(unsigned long ip)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(sh_hooks); i++) {
		unsigned long start = (unsigned long)sh_hooks[i].target;

		if (ip >= start && ip - start < SH_ENTRY_SLACK)
			return &sh_hooks[i];
	}
	return NULL;
}

/* The ftrace_regs accessor was renamed (6.1 has the old name, 6.12 the new). */
#ifdef ftrace_regs_set_instruction_pointer
#define sh_set_ip(fregs, ip)	ftrace_regs_set_instruction_pointer(fregs, ip)
#else
#define sh_set_ip(fregs, ip)	ftrace_instruction_pointer_set(fregs, ip)
#endif

static void notrace sh_ftrace_handler(unsigned long ip,
				      unsigned long parent_ip,
				      struct ftrace_ops *ops,
				      struct ftrace_regs *fregs)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);
	const struct sh_hook *hook;
	struct sh_window *win;

	if (!regs)
		return;
	/* sh_hooks_disarm() waits for this section before the window goes. */
	preempt_disable_notrace();
	win = READ_ONCE(sh_win);
	hook = win ? sh_hook_at(ip) : NULL;
	if (hook && hook->match(win, regs_get_kernel_argument(regs, 0)))
		sh_set_ip(fregs, (unsigned long)hook->replacement);
	preempt_enable_notrace();
}

/*
 * One ftrace_ops for all the functions, registered at the first restart and
 * kept until the module goes: a restart only points sh_win at its window.
 * Registering and unregistering rewrite the entry of rtnl_lock() and the
 * others while any CPU may be running them (linkwatch takes RTNL as soon as
 * a restart drops it); done once per restart, a CPU that executed the
 * breakpoint of that rewrite was seen trapping on it again and again after
 * it was gone (a soft lockup at rtnl_lock+0x0 on a NOP, under QEMU's TCG),
 * and the restart then waited forever for the RCU-tasks grace period of the
 * unregistration. With no window, the handler returns at once.
 */
static struct ftrace_ops sh_ftrace_ops = {
	.func = sh_ftrace_handler,
	.flags = FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY |
		FTRACE_OPS_FL_RECURSION,
};

static unsigned long sh_hook_ips[ARRAY_SIZE(sh_hooks)];
static bool sh_armed;

void sh_hooks_set_phase(enum sh_phase phase)
{
	struct sh_window *win = sh_win;

	if (win)
		WRITE_ONCE(win->phase, phase);
}

/*
 * The window stops matching, then a grace period lets every handler that
 * may still read it finish (they run with preemption off): the caller may
 * free it once this returns. The replacements that use the window run only
 * in the restart's own task, which is here.
 */
void sh_hooks_disarm(void)
{
	struct sh_window *win = sh_win;

	if (!win)
		return;
	WRITE_ONCE(win->phase, SH_PHASE_NONE);
	WRITE_ONCE(win->rtnl_held, false);
	WRITE_ONCE(sh_win, NULL);
	synchronize_rcu();
}

/* One window at a time: the caller serialises restarts. */
int sh_hooks_arm(struct sh_window *win)
{
	size_t i;
	int err;

	win->phase = SH_PHASE_NONE;
	if (!sh_armed) {
		for (i = 0; i < ARRAY_SIZE(sh_hooks); i++)
			sh_hook_ips[i] = (unsigned long)sh_hooks[i].target;
		err = ftrace_set_filter_ips(&sh_ftrace_ops, sh_hook_ips,
					    ARRAY_SIZE(sh_hook_ips), 0, 1);
		if (!err) {
			err = register_ftrace_function(&sh_ftrace_ops);
			if (err)
				ftrace_set_filter_ips(&sh_ftrace_ops,
						      sh_hook_ips,
						      ARRAY_SIZE(sh_hook_ips),
						      1, 0);
		}
		if (err) {
			/* e.g. a livepatch already redirects one of these. */
			scnprintf(win->why, sizeof(win->why),
				  "cannot hook the class functions (%s ...): error %d",
				  sh_hooks[0].name, err);
			return err;
		}
		sh_armed = true;
	}
	WRITE_ONCE(sh_win, win);
	return 0;
}

/* Module exit: no restart runs any more. */
void sh_hooks_exit(void)
{
	WARN_ON(READ_ONCE(sh_win));
	WRITE_ONCE(sh_win, NULL);
	if (!sh_armed)
		return;
	WARN_ON(unregister_ftrace_function(&sh_ftrace_ops));
	ftrace_set_filter_ips(&sh_ftrace_ops, sh_hook_ips,
			      ARRAY_SIZE(sh_hook_ips), 1, 0);
	sh_armed = false;
}
