// SPDX-License-Identifier: GPL-2.0
/*
 * Runs kmod/sh_reload.c's sh_reload_module() on the host against a scripted
 * modprobe and /sys/module (test/unit/kmod/sh-reload.test.ts):
 *
 *   reload-harness UNLOAD_EXIT AFTER_UNLOAD LOAD_EXIT AFTER_LOAD
 *
 * UNLOAD_EXIT and LOAD_EXIT are modprobe's exit statuses (-N: it could not
 * run, error -N); AFTER_* is what /sys/module/e1000 then is: loaded, gone or
 * unknown (the lookup fails with EACCES). Prints one line of JSON: the return
 * value, the failure message and which modprobes ran.
 */
#include "sh_class.h"

static int exits[2];
static const char *presence[2];
static int runs, lookups;
static char ran[64];

int call_usermodehelper(const char *path, char **argv, char **envp, int wait)
{
	bool remove = false;
	int i, ret;

	(void)path; (void)envp; (void)wait;
	for (i = 0; argv[i]; i++)
		remove = remove || !strcmp(argv[i], "-r");
	strcat(ran, ran[0] ? "," : "");
	strcat(ran, remove ? "\"modprobe -r\"" : "\"modprobe\"");
	ret = exits[runs < 2 ? runs : 1];
	runs++;
	return ret < 0 ? ret : ret << 8;
}

int kern_path(const char *name, unsigned int flags, struct path *path)
{
	/* Asked after each modprobe: the last one's answer. */
	const char *p = presence[runs > 0 ? runs - 1 : 0];

	(void)flags; (void)path;
	lookups++;
	if (strcmp(name, "/sys/module/e1000"))
		return -ENOENT;
	return !strcmp(p, "loaded") ? 0 : !strcmp(p, "gone") ? -ENOENT : -EACCES;
}

void path_put(const struct path *path) { (void)path; }

char *kasprintf(gfp_t gfp, const char *fmt, ...)
{
	char *s = NULL;
	va_list ap;

	(void)gfp;
	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	return s;
}

ktime_t ktime_get(void) { return 0; }

int driver_for_each_device(struct device_driver *drv, struct device *start, void *data, int (*fn)(struct device *, void *))
{
	(void)drv; (void)start; (void)data; (void)fn;
	return 0;
}

int driver_set_override(struct device *dev, const char **override, const char *s, size_t len)
{
	(void)dev; (void)len;
	*override = s[0] ? s : NULL;
	return 0;
}

int main(int argc, char **argv)
{
	struct pci_dev pdev = { .dev = { .name = "0000:00:04.0" } };
	struct sh_result res;
	int ret;

	if (argc != 5)
		return 64;
	exits[0] = atoi(argv[1]);
	presence[0] = argv[2];
	exits[1] = atoi(argv[3]);
	presence[1] = argv[4];
	memset(&res, 0, sizeof(res));
	ret = sh_reload_module(&pdev.dev, "e1000", &res);
	printf("{\"ret\":%d,\"msg\":\"%s\",\"ran\":[%s]}\n", ret, res.msg, ran);
	return 0;
}
