/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a device class gives the generic core, and what it may call there.
 *
 * One shadow per class, as in the paper: the core parses the protocol, keeps
 * the records, runs the restart skeleton and reloads modules; a class knows
 * its kernel objects. A class is one struct sh_class (its id is the kernel's
 * sysfs class name) plus a line in sh_class.c's table. Everything a class
 * does to its devices happens in the callbacks below, under its own lock
 * where they say so.
 */
#ifndef SH_CLASS_H
#define SH_CLASS_H

#include "shadow_helper.h"

struct sh_file;

/* A parsed CLASS:NAME token; the strings point into the command line. */
struct sh_ref {
	const struct sh_class *cls;
	const char *name;	/* after the first ':' */
	const char *text;	/* the whole token, as replies print it */
};

/* A command only a class has (its device comes first, counted in args). */
struct sh_class_cmd {
	const char *name;
	unsigned int min_args;
	unsigned int max_args;
	/* @argv holds the arguments after the device. */
	void (*run)(struct sh_file *sf, const struct sh_ref *ref,
		    unsigned int argc, char **argv);
};

/* One restart, as the skeleton (sh_restart.c) runs it. */
struct sh_run {
	const struct sh_class *cls;
	struct device *cdev;	/* the class device, referenced; NULL once gone */
	struct device *bus;	/* its bus device, referenced */
	struct sh_dev *sd;	/* set once the device is stopped */
	const char *ref;	/* CLASS:NAME, for messages */
	const char *id;
	enum sh_how how;
	struct sh_result *res;
	size_t steps_len;	/* of res->steps */
	void *priv;		/* cls->run_size bytes, zeroed */
};

struct sh_class {
	const char *id;		/* the sysfs class name: net, sound, block */
	const char *noun;	/* what a device is called: "interface" */
	const char *name_rule;	/* what a valid name looks like */
	size_t priv_size;	/* of each record's priv[] */
	size_t run_size;	/* of each restart's priv */
	/*
	 * The class device is deleted with its driver (a disk): a restart
	 * lets go of it once the driver released the bus device, before a
	 * module reload, so nothing it pins outlives the old module's code.
	 */
	bool cdev_goes;
	const struct sh_class_cmd *cmds;
	unsigned int n_cmds;
	const char *fault_list;	/* its fault names, for messages */

	int (*init)(void);
	void (*exit)(void);

	/* Names, lookup and the lock that serialises its records' writers. */
	bool (*valid_name)(const char *name);
	struct device *(*get)(const char *name);	/* referenced, or NULL */
	void (*put)(struct device *cdev);
	void (*lock)(void);
	void (*unlock)(void);
	void (*record_init)(struct sh_dev *sd);		/* under lock */

	/*
	 * The bus device a restart releases and probes (the restart unit),
	 * referenced; NULL with @msg saying why when the device has none.
	 * Without it, the class device's parent is the unit.
	 */
	struct device *(*bus_of)(struct device *cdev, char *msg, size_t len);

	/* Fields after "id=ID" in a restart's reply, while @cdev is held. */
	void (*reply_fields)(struct device *cdev, char *buf, size_t len);

	/*
	 * The restart's phases, in the skeleton's order. arm() may refuse
	 * (res->msg says why) before anything is touched; the others from
	 * stop() to open() run under the class's lock, except set_phase()
	 * and released(); probed() returns with the lock held, whatever it
	 * returns. Each int is 0 or a negative errno, but open() returns 1
	 * when it opened the device and 0 when there was nothing to open.
	 */
	int (*arm)(struct sh_run *run);
	/*
	 * Optional, under the class's lock, before stop(): the last chance
	 * to refuse (res->msg says why) with nothing touched, checked in the
	 * same lock hold as the stop that follows.
	 */
	int (*check)(struct sh_run *run);
	void (*disarm)(struct sh_run *run);
	void (*set_phase)(struct sh_run *run, enum sh_phase phase);
	void (*stop)(struct sh_run *run);	/* quiesce, lift faults */
	void (*impersonate)(struct sh_run *run);	/* the shadow answers */
	int (*released)(struct sh_run *run);
	int (*probed)(struct sh_run *run, int attach_ret);
	/*
	 * A class whose devices cannot be carried across a release (a sound
	 * card: the unbind waits for every application to close it) restarts
	 * the driver in place instead of releasing and probing it, without
	 * its lock; released() and probed() are then not called.
	 */
	int (*reset)(struct sh_run *run);
	void (*unimpersonate)(struct sh_run *run);	/* the new driver's */
	void (*replay)(struct sh_run *run);
	int (*open)(struct sh_run *run);
	void (*quiesce)(struct sh_run *run);	/* before parking */
	/*
	 * Optional: @bus is being deleted; a parked device of the class on it
	 * is finished off as its driver's remove() would have (no lock held).
	 */
	void (*bus_gone)(struct device *bus);

	/* Faults, numbered by the class; "clear" parses as SH_FAULT_NONE. */
	int (*fault_parse)(const char *name, unsigned int *fault);
	const char *(*fault_name)(unsigned int fault);
	int (*fault_apply)(struct sh_dev *sd, unsigned int fault, char *msg,
			   size_t len);		/* under lock */
	void (*fault_clear)(struct sh_dev *sd);	/* under lock */
};

/* The classes in the table (sh_class.c). */
extern const struct sh_class sh_net_class;
extern const struct sh_class sh_block_class;
extern const struct sh_class sh_sound_class;

/* sh_class.c: a class device's restart unit, referenced, or NULL and why. */
struct device *sh_bus_get(const struct sh_class *cls, struct device *cdev,
			  const char *ref, char *msg, size_t len);

/* sh_class.c: every class's bus_gone (sh_unplug.c). */
void sh_classes_bus_gone(struct device *bus);

/* sh_unplug.c */
void sh_unplug_watch(struct device *bus);
void sh_unplug_exit(void);

/* sh_class.c: a class's own commands, by verb. */
const struct sh_class_cmd *sh_class_cmd(const struct sh_class *cls,
					const char *verb);
const struct sh_class_cmd *sh_class_cmd_any(const char *verb);

/* sh_control.c: replies and argument helpers for a class's commands. */
__printf(2, 3) void sh_reply_ok(struct sh_file *sf, const char *fmt, ...);
__printf(3, 4) void sh_reply_err(struct sh_file *sf, int err,
				 const char *fmt, ...);
bool sh_parse_numbers(struct sh_file *sf, unsigned int argc, char **argv,
		      u32 max, u32 *out);
struct device *sh_lookup(struct sh_file *sf, const struct sh_ref *ref,
			 bool need_bus);

/* sh_restart.c: records one replay step in the reply and the log. */
void sh_step(struct sh_run *run, const char *key, int err, bool done);

#endif /* SH_CLASS_H */
