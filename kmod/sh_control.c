// SPDX-License-Identifier: GPL-2.0
/*
 * shadow_helper - the in-kernel hands of shadowd: its control device.
 *
 * The daemon holds all policy and state; this module only does what must run
 * in the kernel. It is driven through /dev/shadow_helper with a line-oriented
 * text protocol (kmod/PROTOCOL.md), so that every input is a short printable
 * string that is easy to validate here and to log in userspace.
 *
 *  - one write() carries exactly one command line: at most SH_LINE_MAX
 *    printable ASCII characters (0x20..0x7e), optionally followed by '\n'.
 *    Tokens are separated by exactly one space. A write that breaks these
 *    rules fails with -EINVAL (empty, control or non-ASCII byte) or -EMSGSIZE
 *    (too long) and clears any pending reply.
 *  - a well-formed line always "succeeds" at the write() level and leaves a
 *    reply, "ok <payload>\n" or "err <ERRNAME> <message>\n", which read()
 *    returns, in as many pieces as the reader asks for.
 *  - read() returns 0 when no reply is pending (none yet, or all of it was
 *    read). The file is a stream: pread/pwrite and lseek are refused.
 *  - the reply belongs to the open file; one requester per file descriptor.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/completion.h>
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/kref.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/netdevice.h>
#include <linux/rtnetlink.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/utsname.h>
#include <linux/workqueue.h>

#include "shadow_helper.h"

/* Longest command text; a write may carry one more byte, the '\n'. */
#define SH_LINE_MAX	255
#define SH_REPLY_MAX	512
/* Verb plus arguments: "stage IFACE rings RX RX_MINI RX_JUMBO TX" is 7. */
#define SH_MAX_TOKENS	8
/* Ring sizes beyond this are a typo, not a setting (drivers allow ~4096). */
#define SH_RING_MAX	BIT(20)

bool sh_allow_faults;
module_param_named(allow_faults, sh_allow_faults, bool, 0444);
MODULE_PARM_DESC(allow_faults, "accept the inject command (for tests; default off)");

static struct workqueue_struct *sh_wq;

struct sh_file {
	struct mutex lock;	/* serialises writers and readers of this file */
	size_t reply_len;
	size_t reply_pos;
	char reply[SH_REPLY_MAX];
};

struct sh_cmd {
	const char *name;
	unsigned int min_args;
	unsigned int max_args;
	void (*run)(struct sh_file *sf, unsigned int argc, char **argv);
};

static const struct {
	int err;
	const char *name;
} sh_errnames[] = {
	{ EINVAL, "EINVAL" },
	{ EMSGSIZE, "EMSGSIZE" },
	{ ENOENT, "ENOENT" },
	{ ENODEV, "ENODEV" },
	{ EBUSY, "EBUSY" },
	{ EPERM, "EPERM" },
	{ ERANGE, "ERANGE" },
	{ EOPNOTSUPP, "EOPNOTSUPP" },
	{ ENOMEM, "ENOMEM" },
	{ EIO, "EIO" },
	{ EINTR, "EINTR" },
};

static const char *sh_errname(int err)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(sh_errnames); i++)
		if (sh_errnames[i].err == err)
			return sh_errnames[i].name;
	/* An errno missing above is a bug here; still send a parseable reply. */
	return "EIO";
}

/* @len bytes of prefix are already in the buffer; one byte is kept for '\n'. */
static __printf(3, 0) void sh_vreply(struct sh_file *sf, size_t len,
				     const char *fmt, va_list ap)
{
	len += vscnprintf(sf->reply + len, sizeof(sf->reply) - 1 - len, fmt, ap);
	sf->reply[len++] = '\n';
	sf->reply_len = len;
	sf->reply_pos = 0;
}

static __printf(2, 3) void sh_reply_ok(struct sh_file *sf, const char *fmt, ...)
{
	va_list ap;
	size_t len;

	len = scnprintf(sf->reply, sizeof(sf->reply) - 1, "ok ");
	va_start(ap, fmt);
	sh_vreply(sf, len, fmt, ap);
	va_end(ap);
}

static __printf(3, 4) void sh_reply_err(struct sh_file *sf, int err,
					const char *fmt, ...)
{
	va_list ap;
	size_t len;

	len = scnprintf(sf->reply, sizeof(sf->reply) - 1, "err %s ",
			sh_errname(err));
	va_start(ap, fmt);
	sh_vreply(sf, len, fmt, ap);
	va_end(ap);
}

static void sh_cmd_version(struct sh_file *sf, unsigned int argc, char **argv)
{
	sh_reply_ok(sf, "shadow_helper proto=%d version=%s kernel=%s faults=%d",
		    SH_PROTO, SH_VERSION, init_utsname()->release,
		    sh_allow_faults);
}

static void sh_cmd_ping(struct sh_file *sf, unsigned int argc, char **argv)
{
	sh_reply_ok(sf, "pong");
}

/* Looks up IFACE; the caller puts the reference. */
static struct net_device *sh_lookup(struct sh_file *sf, const char *name,
				    bool need_bus)
{
	struct net_device *dev;

	if (strlen(name) >= IFNAMSIZ || !dev_valid_name(name)) {
		sh_reply_err(sf, EINVAL, "'%.16s' is not an interface name",
			     name);
		return NULL;
	}
	dev = dev_get_by_name(&init_net, name);
	if (!dev) {
		sh_reply_err(sf, ENODEV, "no interface %s", name);
		return NULL;
	}
	if (need_bus && !dev->dev.parent) {
		sh_reply_err(sf, ENODEV,
			     "%s has no bus device: not a driver's device",
			     name);
		dev_put(dev);
		return NULL;
	}
	return dev;
}

static bool sh_valid_id(const char *id)
{
	size_t len = strlen(id);
	size_t i;

	if (!len || len > SH_ID_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!isalnum(id[i]) && id[i] != '-' && id[i] != '_')
			return false;
	return true;
}

static void sh_cmd_txstat(struct sh_file *sf, unsigned int argc, char **argv)
{
	struct rtnl_link_stats64 stats;
	unsigned long oldest = 0;
	unsigned long timeouts = 0;
	unsigned long inflight = 0;
	unsigned int completed = 0;
	unsigned int stopped = 0;
	enum sh_state state;
	struct net_device *dev;
	struct sh_dev *sd;
	unsigned int i;

	dev = sh_lookup(sf, argv[0], false);
	if (!dev)
		return;
	for (i = 0; i < dev->real_num_tx_queues; i++) {
		struct netdev_queue *txq = netdev_get_tx_queue(dev, i);
		unsigned long age = jiffies - READ_ONCE(txq->trans_start);

		timeouts += atomic_long_read(&txq->trans_timeout);
#ifdef CONFIG_BQL
		/*
		 * Byte queue limits count what the driver was handed and what
		 * the device completed: completions that stop while bytes are
		 * in flight show lost interrupts before the ring fills.
		 */
		inflight += READ_ONCE(txq->dql.num_queued) -
			    READ_ONCE(txq->dql.num_completed);
		completed += READ_ONCE(txq->dql.num_completed);
#endif
		if (!netif_xmit_stopped(txq))
			continue;
		stopped++;
		oldest = max(oldest, age);
	}
	dev_get_stats(dev, &stats);
	rcu_read_lock();
	sd = sh_dev_find(dev);
	state = sd ? sd->state : SH_PASSIVE;
	rcu_read_unlock();
	sh_reply_ok(sf,
		    "ifindex=%d state=%s running=%d carrier=%d queues=%u stopped=%u stalled_ms=%u watchdog_ms=%u tx_packets=%llu inflight=%lu completed=%u timeouts=%lu",
		    dev->ifindex, sh_state_name(state), netif_running(dev),
		    netif_carrier_ok(dev), dev->real_num_tx_queues, stopped,
		    jiffies_to_msecs(oldest),
		    jiffies_to_msecs(dev->watchdog_timeo), stats.tx_packets,
		    inflight, completed, timeouts);
	dev_put(dev);
}

/*
 * Parses @argc decimal numbers of at most @max each into @out. Digits only:
 * kstrtou32() alone would also take a leading '+'.
 */
static bool sh_numbers(struct sh_file *sf, unsigned int argc, char **argv,
		       u32 max, u32 *out)
{
	unsigned int i;

	for (i = 0; i < argc; i++) {
		if (!isdigit(argv[i][0]) || kstrtou32(argv[i], 10, &out[i]) ||
		    out[i] > max) {
			sh_reply_err(sf, EINVAL,
				     "'%.16s' is not a number from 0 to %u",
				     argv[i], max);
			return false;
		}
	}
	return true;
}

static void sh_cmd_stage(struct sh_file *sf, unsigned int argc, char **argv)
{
	static const struct {
		const char *key;
		unsigned int args;
		u32 max;
	} keys[] = {
		{ "rings", 4, SH_RING_MAX },
		{ "msglvl", 1, U32_MAX },
		{ "pause", 3, 1 },
		{ "privflags", 1, U32_MAX },
		{ "clear", 0, 0 },
	};
	struct net_device *dev;
	struct sh_staged *st;
	struct sh_dev *sd;
	u32 v[4];
	size_t k;

	for (k = 0; k < ARRAY_SIZE(keys); k++)
		if (!strcmp(argv[1], keys[k].key))
			break;
	if (k == ARRAY_SIZE(keys)) {
		sh_reply_err(sf, EINVAL,
			     "unknown setting '%.16s' (rings, msglvl, pause, privflags, clear)",
			     argv[1]);
		return;
	}
	if (argc - 2 != keys[k].args) {
		sh_reply_err(sf, EINVAL, "stage %s takes %u values, got %u",
			     keys[k].key, keys[k].args, argc - 2);
		return;
	}
	if (!sh_numbers(sf, argc - 2, argv + 2, keys[k].max, v))
		return;
	dev = sh_lookup(sf, argv[0], true);
	if (!dev)
		return;
	rtnl_lock();
	sd = sh_dev_get(dev);
	if (!sd) {
		rtnl_unlock();
		dev_put(dev);
		sh_reply_err(sf, ENOMEM, "out of memory");
		return;
	}
	st = &sd->staged;
	switch (k) {
	case 0:
		st->rx = v[0];
		st->rx_mini = v[1];
		st->rx_jumbo = v[2];
		st->tx = v[3];
		st->has_rings = true;
		break;
	case 1:
		st->msglvl = v[0];
		st->has_msglvl = true;
		break;
	case 2:
		st->pause_autoneg = v[0];
		st->pause_rx = v[1];
		st->pause_tx = v[2];
		st->has_pause = true;
		break;
	case 3:
		st->privflags = v[0];
		st->has_privflags = true;
		break;
	default:
		memset(st, 0, sizeof(*st));
		break;
	}
	rtnl_unlock();
	sh_reply_ok(sf, "staged %s %s", dev->name, keys[k].key);
	dev_put(dev);
}

static void sh_cmd_inject(struct sh_file *sf, unsigned int argc, char **argv)
{
	char msg[SH_MSG_MAX] = "";
	enum sh_fault fault;
	struct net_device *dev;
	struct sh_dev *sd;
	bool sticky = argc == 3;
	int err;

	if (!sh_allow_faults) {
		sh_reply_err(sf, EPERM,
			     "fault injection is disabled (load shadow_helper with allow_faults=1)");
		return;
	}
	if (sh_fault_parse(argv[1], &fault)) {
		sh_reply_err(sf, EINVAL,
			     "unknown fault '%.16s' (tx-hang, tx-hang-reset, fail-stop, fail-open, fail-mtu, fail-mac, fail-features, fail-rings, lost-irq, clear)",
			     argv[1]);
		return;
	}
	if (sticky && (strcmp(argv[2], "sticky") || fault == SH_FAULT_NONE)) {
		sh_reply_err(sf, EINVAL, "the only option is 'sticky', after a fault");
		return;
	}
	dev = sh_lookup(sf, argv[0], true);
	if (!dev)
		return;
	rtnl_lock();
	sd = sh_dev_get(dev);
	if (!sd) {
		err = -ENOMEM;
		scnprintf(msg, sizeof(msg), "out of memory");
	} else if (fault == SH_FAULT_NONE) {
		sh_fault_clear(sd);
		err = 0;
	} else {
		sd->fault_sticky = sticky;
		err = sh_fault_apply(sd, fault, msg, sizeof(msg));
	}
	rtnl_unlock();
	if (err)
		sh_reply_err(sf, -err, "%s", msg);
	else if (fault == SH_FAULT_NONE)
		sh_reply_ok(sf, "cleared %s", dev->name);
	else
		sh_reply_ok(sf, "injected %s %s", dev->name,
			    sh_fault_name(fault));
	dev_put(dev);
}

/*
 * A restart runs in the module's worker and holds a reference to its job,
 * so the requester may die (the daemon killed mid-recovery) while the
 * restart finishes, or parks the device, on its own.
 */
struct sh_job {
	struct work_struct work;
	struct kref ref;
	struct completion done;
	char ifname[IFNAMSIZ];
	char id[SH_ID_MAX + 1];
	enum sh_how how;
	int err;
	struct sh_result res;
};

static atomic_t sh_busy = ATOMIC_INIT(0);

static void sh_job_free(struct kref *ref)
{
	kfree(container_of(ref, struct sh_job, ref));
}

static void sh_job_run(struct work_struct *work)
{
	struct sh_job *job = container_of(work, struct sh_job, work);

	job->err = sh_restart(job->ifname, job->id, job->how, &job->res);
	atomic_set(&sh_busy, 0);
	complete(&job->done);
	kref_put(&job->ref, sh_job_free);
}

static void sh_reply_job(struct sh_file *sf, struct sh_job *job)
{
	char module[MODULE_NAME_LEN + 8] = "";
	char reload[48] = "";
	struct sh_result *r = &job->res;

	/* Refused before the device was touched: it runs as it did. */
	if (job->err && !r->touched) {
		sh_reply_err(sf, -job->err, "%s", r->msg);
		return;
	}
	if (job->err) {
		sh_reply_err(sf, -job->err,
			     "%s id=%s parked after %u ms: %s steps=%s",
			     job->ifname, job->id, r->total_ms, r->msg,
			     r->steps[0] ? r->steps : "none");
		return;
	}
	if (job->how == SH_PARK) {
		sh_reply_ok(sf, "parked %s id=%s", job->ifname, job->id);
		return;
	}
	/* A reload's reply adds its module and its two phases. */
	if (job->how == SH_RELOAD) {
		scnprintf(module, sizeof(module), " module=%s", r->module);
		scnprintf(reload, sizeof(reload), " unload_ms=%u load_ms=%u",
			  r->unload_ms, r->load_ms);
	}
	sh_reply_ok(sf,
		    "restarted %s id=%s ifindex=%d%s stop_ms=%u release_ms=%u%s probe_ms=%u replay_ms=%u open_ms=%u total_ms=%u steps=%s",
		    job->ifname, job->id, r->ifindex, module, r->stop_ms,
		    r->release_ms, reload, r->probe_ms, r->replay_ms,
		    r->open_ms, r->total_ms, r->steps);
}

static void sh_start_job(struct sh_file *sf, char **argv, enum sh_how how)
{
	struct sh_job *job;

	if (strlen(argv[0]) >= IFNAMSIZ || !dev_valid_name(argv[0])) {
		sh_reply_err(sf, EINVAL, "'%.16s' is not an interface name",
			     argv[0]);
		return;
	}
	if (!sh_valid_id(argv[1])) {
		sh_reply_err(sf, EINVAL,
			     "recovery id must be 1 to %d of A-Z a-z 0-9 _ -",
			     SH_ID_MAX);
		return;
	}
	if (atomic_cmpxchg(&sh_busy, 0, 1)) {
		sh_reply_err(sf, EBUSY, "another restart is running");
		return;
	}
	job = kzalloc(sizeof(*job), GFP_KERNEL);
	if (!job) {
		atomic_set(&sh_busy, 0);
		sh_reply_err(sf, ENOMEM, "out of memory");
		return;
	}
	kref_init(&job->ref);
	init_completion(&job->done);
	INIT_WORK(&job->work, sh_job_run);
	strscpy(job->ifname, argv[0], sizeof(job->ifname));
	strscpy(job->id, argv[1], sizeof(job->id));
	job->how = how;
	kref_get(&job->ref);
	queue_work(sh_wq, &job->work);
	if (wait_for_completion_killable(&job->done))
		sh_reply_err(sf, EINTR,
			     "interrupted; the restart of %s goes on", job->ifname);
	else
		sh_reply_job(sf, job);
	kref_put(&job->ref, sh_job_free);
}

static void sh_cmd_restart(struct sh_file *sf, unsigned int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[2], "reload")) {
		sh_reply_err(sf, EINVAL, "the only option of restart is 'reload'");
		return;
	}
	sh_start_job(sf, argv, argc == 3 ? SH_RELOAD : SH_REPROBE);
}

static void sh_cmd_park(struct sh_file *sf, unsigned int argc, char **argv)
{
	sh_start_job(sf, argv, SH_PARK);
}

static const struct sh_cmd sh_cmds[] = {
	{ "version", 0, 0, sh_cmd_version },
	{ "ping", 0, 0, sh_cmd_ping },
	{ "txstat", 1, 1, sh_cmd_txstat },
	{ "stage", 2, 6, sh_cmd_stage },
	{ "inject", 2, 3, sh_cmd_inject },
	{ "restart", 2, 3, sh_cmd_restart },
	{ "park", 2, 2, sh_cmd_park },
};

/* @line is NUL-terminated printable ASCII without '\n'; tokenised in place. */
static void sh_dispatch(struct sh_file *sf, char *line)
{
	char *argv[SH_MAX_TOKENS];
	unsigned int argc = 0;
	const struct sh_cmd *cmd = NULL;
	char *tok;
	size_t i;

	while ((tok = strsep(&line, " ")) != NULL) {
		if (!*tok) {
			sh_reply_err(sf, EINVAL,
				     "malformed command: tokens must be separated by single spaces");
			return;
		}
		if (argc == SH_MAX_TOKENS) {
			sh_reply_err(sf, EINVAL, "too many arguments");
			return;
		}
		argv[argc++] = tok;
	}

	for (i = 0; i < ARRAY_SIZE(sh_cmds); i++) {
		if (!strcmp(argv[0], sh_cmds[i].name)) {
			cmd = &sh_cmds[i];
			break;
		}
	}
	/* Echo only a prefix of the verb so the message is never cut short. */
	if (!cmd) {
		sh_reply_err(sf, EINVAL, "unknown command '%.32s'", argv[0]);
		return;
	}
	if (argc - 1 < cmd->min_args || argc - 1 > cmd->max_args) {
		if (!cmd->max_args)
			sh_reply_err(sf, EINVAL, "%s takes no arguments, got %u",
				     cmd->name, argc - 1);
		else
			sh_reply_err(sf, EINVAL,
				     "%s takes %u to %u arguments, got %u",
				     cmd->name, cmd->min_args, cmd->max_args,
				     argc - 1);
		return;
	}
	cmd->run(sf, argc - 1, argv + 1);
}

static int sh_open(struct inode *inode, struct file *file)
{
	struct sh_file *sf;

	/* Mode 0600 alone would let a root process without the capability in. */
	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;

	sf = kzalloc(sizeof(*sf), GFP_KERNEL);
	if (!sf)
		return -ENOMEM;
	mutex_init(&sf->lock);
	file->private_data = sf;
	/* Replies have no file position: forbid pread/pwrite and lseek. */
	return stream_open(inode, file);
}

static int sh_release(struct inode *inode, struct file *file)
{
	struct sh_file *sf = file->private_data;

	mutex_destroy(&sf->lock);
	kfree(sf);
	return 0;
}

/*
 * Copies one command line from userspace into @line (SH_LINE_MAX + 2 bytes)
 * and checks it; returns its length without the '\n', or a negative errno.
 */
static ssize_t sh_fetch_line(char *line, const char __user *ubuf, size_t count)
{
	size_t len = count;
	size_t i;

	if (count > SH_LINE_MAX + 1)
		return -EMSGSIZE;
	if (copy_from_user(line, ubuf, count))
		return -EFAULT;
	if (len && line[len - 1] == '\n')
		len--;
	line[len] = '\0';
	if (!len)
		return -EINVAL;
	if (len > SH_LINE_MAX)
		return -EMSGSIZE;
	/* Not isprint(): the kernel's ctype calls Latin-1 bytes printable. */
	for (i = 0; i < len; i++) {
		unsigned char c = line[i];

		if (c < 0x20 || c > 0x7e)
			return -EINVAL;
	}
	return len;
}

static ssize_t sh_write(struct file *file, const char __user *ubuf,
			size_t count, loff_t *ppos)
{
	struct sh_file *sf = file->private_data;
	char line[SH_LINE_MAX + 2];
	ssize_t ret;

	ret = mutex_lock_interruptible(&sf->lock);
	if (ret)
		return ret;
	/* A rejected write must not leave an older reply to be mistaken for its own. */
	sf->reply_len = 0;
	sf->reply_pos = 0;
	ret = sh_fetch_line(line, ubuf, count);
	if (ret >= 0) {
		sh_dispatch(sf, line);
		ret = count;
	}
	mutex_unlock(&sf->lock);
	return ret;
}

static ssize_t sh_read(struct file *file, char __user *ubuf, size_t count,
		       loff_t *ppos)
{
	struct sh_file *sf = file->private_data;
	size_t n;
	ssize_t ret;

	ret = mutex_lock_interruptible(&sf->lock);
	if (ret)
		return ret;
	n = min(count, sf->reply_len - sf->reply_pos);
	if (n && copy_to_user(ubuf, sf->reply + sf->reply_pos, n)) {
		ret = -EFAULT;
	} else {
		sf->reply_pos += n;
		ret = n;
	}
	mutex_unlock(&sf->lock);
	return ret;
}

static const struct file_operations sh_fops = {
	.owner = THIS_MODULE,
	.open = sh_open,
	.release = sh_release,
	.read = sh_read,
	.write = sh_write,
	.llseek = no_llseek,
};

static struct miscdevice sh_miscdev = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = "shadow_helper",
	.fops = &sh_fops,
	.mode = 0600,
};

static int __init sh_init(void)
{
	int ret;

	/* Ordered: restarts run one after another, never side by side. */
	sh_wq = alloc_ordered_workqueue("shadow_helper", 0);
	if (!sh_wq)
		return -ENOMEM;
	ret = sh_devices_init();
	if (ret)
		goto err_wq;
	ret = misc_register(&sh_miscdev);
	if (ret) {
		pr_err("cannot register /dev/%s: %d\n", sh_miscdev.name, ret);
		goto err_devices;
	}
	pr_info("loaded, protocol %d, version %s%s\n", SH_PROTO, SH_VERSION,
		sh_allow_faults ? ", fault injection allowed" : "");
	return 0;

err_devices:
	sh_devices_exit();
err_wq:
	destroy_workqueue(sh_wq);
	return ret;
}

static void __exit sh_exit(void)
{
	misc_deregister(&sh_miscdev);
	/* A restart whose requester died finishes before the code goes. */
	destroy_workqueue(sh_wq);
	sh_devices_exit();
	pr_info("unloaded\n");
}

module_init(sh_init);
module_exit(sh_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("shadowd helper: restart and replay for recovering device drivers");
MODULE_VERSION(SH_VERSION);
