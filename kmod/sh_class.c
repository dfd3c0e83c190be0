// SPDX-License-Identifier: GPL-2.0
/*
 * The device classes the helper serves, one shadow each. Adding a class is
 * its own files plus one line in sh_classes[]; the protocol names a device
 * as CLASS:NAME with CLASS one of the ids here, which are the kernel's sysfs
 * class names (net, sound, block).
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/device.h>
#include <linux/kernel.h>
#include <linux/string.h>

#include "sh_class.h"

static const struct sh_class *const sh_classes[] = {
	&sh_net_class,
	&sh_block_class,
#if IS_ENABLED(CONFIG_SND_PCM)
	&sh_sound_class,
#endif
};

const struct sh_class *sh_class_find(const char *id, size_t len)
{
	size_t i;

	for (i = 0; i < ARRAY_SIZE(sh_classes); i++)
		if (strlen(sh_classes[i]->id) == len &&
		    !memcmp(sh_classes[i]->id, id, len))
			return sh_classes[i];
	return NULL;
}

struct device *sh_bus_get(const struct sh_class *cls, struct device *cdev,
			  const char *ref, char *msg, size_t len)
{
	struct device *bus;

	msg[0] = '\0';
	if (cls->bus_of)
		return cls->bus_of(cdev, msg, len);
	bus = get_device(cdev->parent);
	if (!bus)
		scnprintf(msg, len,
			  "%s has no bus device: not a driver's device", ref);
	return bus;
}

const struct sh_class_cmd *sh_class_cmd(const struct sh_class *cls,
					const char *verb)
{
	unsigned int i;

	for (i = 0; i < cls->n_cmds; i++)
		if (!strcmp(verb, cls->cmds[i].name))
			return &cls->cmds[i];
	return NULL;
}

/* The first class's command called @verb, for its arity; NULL if none has it. */
const struct sh_class_cmd *sh_class_cmd_any(const char *verb)
{
	const struct sh_class_cmd *cmd;
	size_t i;

	for (i = 0; i < ARRAY_SIZE(sh_classes); i++) {
		cmd = sh_class_cmd(sh_classes[i], verb);
		if (cmd)
			return cmd;
	}
	return NULL;
}

/* "net,sound": the ids, for the version reply and messages. */
size_t sh_class_ids(char *buf, size_t len)
{
	size_t n = 0;
	size_t i;

	buf[0] = '\0';
	for (i = 0; i < ARRAY_SIZE(sh_classes); i++)
		n += scnprintf(buf + n, len - n, "%s%s", i ? "," : "",
			       sh_classes[i]->id);
	return n;
}

int sh_classes_init(void)
{
	size_t i;
	int err;

	for (i = 0; i < ARRAY_SIZE(sh_classes); i++) {
		if (!sh_classes[i]->init)
			continue;
		err = sh_classes[i]->init();
		if (err)
			goto undo;
	}
	return 0;
undo:
	while (i--)
		if (sh_classes[i]->exit)
			sh_classes[i]->exit();
	return err;
}

void sh_classes_bus_gone(struct device *bus)
{
	size_t i;

	/* Most deletions are of devices never parked: no class lock for them. */
	for (i = 0; i < ARRAY_SIZE(sh_classes); i++)
		if (sh_classes[i]->bus_gone &&
		    sh_dev_find_parked(sh_classes[i], bus))
			sh_classes[i]->bus_gone(bus);
}

void sh_classes_exit(void)
{
	size_t i = ARRAY_SIZE(sh_classes);

	while (i--)
		if (sh_classes[i]->exit)
			sh_classes[i]->exit();
}
