// SPDX-License-Identifier: GPL-2.0
/*
 * shadow_helper - the in-kernel hands of shadowd: its control device.
 *
 * The daemon holds all policy and state; this module only does what must run
 * in the kernel. It is driven through /dev/shadow_helper with a line-oriented
 * text protocol (kmod/PROTOCOL.md), so that every input is a short printable
 * string that is easy to validate here and to log in userspace. Devices are
 * named CLASS:NAME; this file knows no class, only the table in sh_class.c:
 * the class judges the name, and has its own commands besides the generic
 * version, ping, inject, restart and park.
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
#include <linux/ctype.h>
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/jiffies.h>
#include <linux/kernel.h>
#include <linux/kref.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/utsname.h>
#include <linux/workqueue.h>

#include "sh_class.h"

/* Longest command text; a write may carry one more byte, the '\n'. */
#define SH_LINE_MAX	255
#define SH_REPLY_MAX	512
/* Verb plus arguments: the longest, a class's "stage", has 7. */
#define SH_MAX_TOKENS	8

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

__printf(2, 3) void sh_reply_ok(struct sh_file *sf, const char *fmt, ...)
{
	va_list ap;
	size_t len;

	len = scnprintf(sf->reply, sizeof(sf->reply) - 1, "ok ");
	va_start(ap, fmt);
	sh_vreply(sf, len, fmt, ap);
	va_end(ap);
}

__printf(3, 4) void sh_reply_err(struct sh_file *sf, int err,
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
	char classes[64];

	sh_class_ids(classes, sizeof(classes));
	sh_reply_ok(sf,
		    "shadow_helper proto=%d version=%s kernel=%s faults=%d classes=%s",
		    SH_PROTO, SH_VERSION, init_utsname()->release,
		    sh_allow_faults, classes);
}

static void sh_cmd_ping(struct sh_file *sf, unsigned int argc, char **argv)
{
	sh_reply_ok(sf, "pong");
}

/*
 * Reads a CLASS:NAME token into @ref: the first ':' ends the class id, which
 * must be in the class table; the name is the class's to judge.
 */
static bool sh_parse_ref(struct sh_file *sf, const char *tok,
			 struct sh_ref *ref)
{
	const char *colon = strchr(tok, ':');
	char classes[64];
	size_t len;

	sh_class_ids(classes, sizeof(classes));
	if (!colon) {
		sh_reply_err(sf, EINVAL,
			     "'%.32s' names no device class: write CLASS:NAME (classes: %s)",
			     tok, classes);
		return false;
	}
	len = colon - tok;
	ref->cls = sh_class_find(tok, len);
	if (!ref->cls) {
		sh_reply_err(sf, EINVAL,
			     "unknown device class \"%.*s\" (classes: %s)",
			     (int)min_t(size_t, len, SH_CLASS_MAX), tok,
			     classes);
		return false;
	}
	ref->name = colon + 1;
	ref->text = tok;
	if (strlen(ref->name) > SH_NAME_MAX ||
	    !ref->cls->valid_name(ref->name)) {
		sh_reply_err(sf, EINVAL, "'%.*s' is not a valid %s name: %s",
			     (int)(len + 1 + SH_CLASS_MAX), tok, ref->cls->noun,
			     ref->cls->name_rule);
		return false;
	}
	return true;
}

/* Looks up a parsed reference; the caller puts the class device. */
struct device *sh_lookup(struct sh_file *sf, const struct sh_ref *ref,
			 bool need_bus)
{
	struct device *cdev = ref->cls->get(ref->name);
	char msg[SH_MSG_MAX];
	struct device *bus;

	if (!cdev) {
		sh_reply_err(sf, ENODEV, "no %s %s", ref->cls->noun,
			     ref->text);
		return NULL;
	}
	if (!need_bus)
		return cdev;
	bus = sh_bus_get(ref->cls, cdev, ref->text, msg, sizeof(msg));
	if (!bus) {
		sh_reply_err(sf, ENODEV, "%s", msg);
		ref->cls->put(cdev);
		return NULL;
	}
	put_device(bus);
	return cdev;
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

/*
 * Parses @argc decimal numbers of at most @max each into @out. Digits only:
 * kstrtou32() alone would also take a leading '+'.
 */
bool sh_parse_numbers(struct sh_file *sf, unsigned int argc, char **argv,
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

static void sh_cmd_inject(struct sh_file *sf, unsigned int argc, char **argv)
{
	char msg[SH_MSG_MAX] = "";
	const struct sh_class *cls;
	unsigned int fault;
	struct device *cdev;
	struct sh_ref ref;
	struct sh_dev *sd;
	bool sticky = argc == 3;
	int err;

	if (!sh_allow_faults) {
		sh_reply_err(sf, EPERM,
			     "fault injection is disabled (load shadow_helper with allow_faults=1)");
		return;
	}
	if (!sh_parse_ref(sf, argv[0], &ref))
		return;
	cls = ref.cls;
	if (cls->fault_parse(argv[1], &fault)) {
		sh_reply_err(sf, EINVAL, "unknown %s fault '%.16s' (%s, clear)",
			     cls->id, argv[1], cls->fault_list);
		return;
	}
	if (sticky && (strcmp(argv[2], "sticky") || fault == SH_FAULT_NONE)) {
		sh_reply_err(sf, EINVAL, "the only option is 'sticky', after a fault");
		return;
	}
	cdev = sh_lookup(sf, &ref, true);
	if (!cdev)
		return;
	cls->lock();
	sd = sh_dev_get(cls, cdev);
	if (!sd) {
		err = -ENOMEM;
		scnprintf(msg, sizeof(msg), "out of memory");
	} else if (fault == SH_FAULT_NONE) {
		cls->fault_clear(sd);
		err = 0;
	} else {
		sd->fault_sticky = sticky;
		err = cls->fault_apply(sd, fault, msg, sizeof(msg));
	}
	cls->unlock();
	if (err)
		sh_reply_err(sf, -err, "%s", msg);
	else if (fault == SH_FAULT_NONE)
		sh_reply_ok(sf, "cleared %s", ref.text);
	else
		sh_reply_ok(sf, "injected %s %s", ref.text,
			    cls->fault_name(fault));
	cls->put(cdev);
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
	const struct sh_class *cls;
	char dev[SH_REF_MAX + 1];	/* CLASS:NAME */
	const char *name;		/* in dev[] */
	char id[SH_ID_MAX + 1];
	enum sh_how how;
	int err;
	struct sh_result res;
};

static atomic_t sh_busy = ATOMIC_INIT(0);

/*
 * A job pins the module from the request to its end, so the module cannot
 * begin unloading while a restart is queued or running, even once its
 * requester is gone. The last put may run on sh_wq: module exit drains it.
 */
static void sh_job_free(struct kref *ref)
{
	kfree(container_of(ref, struct sh_job, ref));
	module_put(THIS_MODULE);
}

static void sh_job_run(struct work_struct *work)
{
	struct sh_job *job = container_of(work, struct sh_job, work);

	job->err = sh_restart(job->cls, job->name, job->dev, job->id,
			      job->how, &job->res);
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
			     job->dev, job->id, r->total_ms, r->msg,
			     r->steps[0] ? r->steps : "none");
		return;
	}
	if (job->how == SH_PARK) {
		sh_reply_ok(sf, "parked %s id=%s", job->dev, job->id);
		return;
	}
	/* A reload's reply adds its module and its two phases. */
	if (job->how == SH_RELOAD) {
		scnprintf(module, sizeof(module), " module=%s", r->module);
		scnprintf(reload, sizeof(reload), " unload_ms=%u load_ms=%u",
			  r->unload_ms, r->load_ms);
	}
	sh_reply_ok(sf,
		    "restarted %s id=%s%s%s stop_ms=%u release_ms=%u%s probe_ms=%u replay_ms=%u open_ms=%u total_ms=%u steps=%s",
		    job->dev, job->id, r->fields, module, r->stop_ms,
		    r->release_ms, reload, r->probe_ms, r->replay_ms,
		    r->open_ms, r->total_ms, r->steps);
}

static void sh_start_job(struct sh_file *sf, char **argv, enum sh_how how)
{
	struct sh_job *job;
	struct sh_ref ref;

	if (!sh_parse_ref(sf, argv[0], &ref))
		return;
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
	/* The requester's open file holds the module: it is not going. */
	__module_get(THIS_MODULE);
	kref_init(&job->ref);
	init_completion(&job->done);
	INIT_WORK(&job->work, sh_job_run);
	job->cls = ref.cls;
	/* Both parts were checked: the copy holds them whole. */
	strscpy(job->dev, ref.text, sizeof(job->dev));
	job->name = job->dev + (ref.name - ref.text);
	strscpy(job->id, argv[1], sizeof(job->id));
	job->how = how;
	kref_get(&job->ref);
	queue_work(sh_wq, &job->work);
	if (wait_for_completion_killable(&job->done))
		sh_reply_err(sf, EINTR,
			     "interrupted; the restart of %s goes on", job->dev);
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
	{ "inject", 2, 3, sh_cmd_inject },
	{ "restart", 2, 3, sh_cmd_restart },
	{ "park", 2, 2, sh_cmd_park },
};

static bool sh_check_args(struct sh_file *sf, const char *verb,
			  unsigned int min, unsigned int max, unsigned int got)
{
	if (got >= min && got <= max)
		return true;
	if (!max)
		sh_reply_err(sf, EINVAL, "%s takes no arguments, got %u", verb,
			     got);
	else
		sh_reply_err(sf, EINVAL, "%s takes %u to %u arguments, got %u",
			     verb, min, max, got);
	return false;
}

/*
 * A verb that is no generic command may be a class's (txstat, stage): its
 * first argument names the device, whose class must have the command.
 */
static bool sh_run_class_cmd(struct sh_file *sf, unsigned int argc,
			     char **argv)
{
	const struct sh_class_cmd *cmd;
	struct sh_ref ref;

	/* The arity is checked before the device, as for the generic verbs. */
	cmd = sh_class_cmd_any(argv[0]);
	if (!cmd)
		return false;
	if (!sh_check_args(sf, cmd->name, cmd->min_args, cmd->max_args,
			   argc - 1))
		return true;
	if (!sh_parse_ref(sf, argv[1], &ref))
		return true;
	cmd = sh_class_cmd(ref.cls, argv[0]);
	if (!cmd) {
		sh_reply_err(sf, EOPNOTSUPP, "%s devices have no %s command",
			     ref.cls->id, argv[0]);
		return true;
	}
	if (sh_check_args(sf, cmd->name, cmd->min_args, cmd->max_args,
			  argc - 1))
		cmd->run(sf, &ref, argc - 2, argv + 2);
	return true;
}

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
	if (!cmd) {
		if (!sh_run_class_cmd(sf, argc, argv))
			/* Only a prefix of the verb: the message is never cut short. */
			sh_reply_err(sf, EINVAL, "unknown command '%.32s'",
				     argv[0]);
		return;
	}
	if (sh_check_args(sf, cmd->name, cmd->min_args, cmd->max_args,
			  argc - 1))
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
	ret = sh_classes_init();
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
	sh_classes_exit();
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
	sh_unplug_exit();
	sh_classes_exit();
	sh_devices_exit();
	pr_info("unloaded\n");
}

module_init(sh_init);
module_exit(sh_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("shadowd helper: restart and replay for recovering device drivers");
MODULE_VERSION(SH_VERSION);
