// SPDX-License-Identifier: GPL-2.0
/*
 * shadow_helper - the in-kernel hands of shadowd.
 *
 * The daemon holds all policy and state; this module only does what must run
 * in the kernel. It is driven through /dev/shadow_helper with a line-oriented
 * text protocol, so that every input is a short printable string that is easy
 * to validate here and to log in userspace.
 *
 * Protocol (proto=1):
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
#include <linux/errno.h>
#include <linux/fs.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/utsname.h>

#define SH_PROTO	1
#define SH_VERSION	"0.1.0"
/* Longest command text; a write may carry one more byte, the '\n'. */
#define SH_LINE_MAX	255
#define SH_REPLY_MAX	256
/* Verb plus arguments; later commands take an interface name and numbers. */
#define SH_MAX_TOKENS	8

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
	sh_reply_ok(sf, "shadow_helper proto=%d version=%s kernel=%s",
		    SH_PROTO, SH_VERSION, init_utsname()->release);
}

static void sh_cmd_ping(struct sh_file *sf, unsigned int argc, char **argv)
{
	sh_reply_ok(sf, "pong");
}

/* New commands (restart, preserve, replay, inject) go here. */
static const struct sh_cmd sh_cmds[] = {
	{ "version", 0, 0, sh_cmd_version },
	{ "ping", 0, 0, sh_cmd_ping },
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

	ret = misc_register(&sh_miscdev);
	if (ret) {
		pr_err("cannot register /dev/%s: %d\n", sh_miscdev.name, ret);
		return ret;
	}
	pr_info("loaded, protocol %d, version %s\n", SH_PROTO, SH_VERSION);
	return 0;
}

static void __exit sh_exit(void)
{
	misc_deregister(&sh_miscdev);
	pr_info("unloaded\n");
}

module_init(sh_init);
module_exit(sh_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("shadowd helper: restart and replay for recovering device drivers");
MODULE_VERSION(SH_VERSION);
