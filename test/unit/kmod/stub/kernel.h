/*
 * Just enough of the kernel's interfaces for sh_reload.c to build on the host
 * (test/unit/kmod/sh-reload.test.ts): what the reload runs (modprobe, the
 * /sys/module lookup) is scripted by the harness, reload-harness.c.
 */
#ifndef SH_STUB_KERNEL_H
#define SH_STUB_KERNEL_H
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint8_t u8;
typedef uint32_t u32;
typedef uint64_t u64;
typedef int64_t ktime_t;
typedef unsigned int gfp_t;
#define GFP_KERNEL 0u
#define __aligned(x) __attribute__((aligned(x)))
#define __printf(a, b) __attribute__((format(printf, a, b)))
#define MODULE_NAME_LEN 56
#ifndef EOPNOTSUPP
#define EOPNOTSUPP 95
#endif
#define container_of(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

struct list_head { struct list_head *next, *prev; };
struct rcu_head { void *next; };
struct module { char name[MODULE_NAME_LEN]; };
struct bus_type { const char *name; };
struct device_driver { const char *name; struct module *owner; };
struct device { const char *name; struct bus_type *bus; struct device_driver *driver; };
struct pci_dev { struct device dev; const char *driver_override; };
struct path { int dummy; };

static inline const char *module_name(const struct module *m) { return m->name; }
static inline const char *dev_name(const struct device *d) { return d->name; }
static inline bool dev_is_pci(const struct device *d) { (void)d; return true; }
#define to_pci_dev(d) container_of(d, struct pci_dev, dev)
static inline void device_lock(struct device *d) { (void)d; }
static inline void device_unlock(struct device *d) { (void)d; }
int driver_for_each_device(struct device_driver *drv, struct device *start, void *data, int (*fn)(struct device *, void *));
int driver_set_override(struct device *dev, const char **override, const char *s, size_t len);

#define scnprintf snprintf
static inline ssize_t strscpy(char *d, const char *s, size_t n) { snprintf(d, n, "%s", s); return (ssize_t)strlen(d); }
static inline char *kstrdup(const char *s, gfp_t g) { (void)g; return strdup(s); }
static inline void kfree(const void *p) { free((void *)p); }
__printf(2, 3) char *kasprintf(gfp_t gfp, const char *fmt, ...);

ktime_t ktime_get(void);
static inline int64_t ktime_ms_delta(ktime_t a, ktime_t b) { return a - b; }

#define UMH_WAIT_PROC 2
int call_usermodehelper(const char *path, char **argv, char **envp, int wait);
int kern_path(const char *name, unsigned int flags, struct path *path);
void path_put(const struct path *path);

#define pr_warn(fmt, ...) fprintf(stderr, "warn: " pr_fmt(fmt), ##__VA_ARGS__)
#define pr_info(fmt, ...) fprintf(stderr, "info: " pr_fmt(fmt), ##__VA_ARGS__)
#define module_param_named(name, var, type, perm)
#define MODULE_PARM_DESC(name, desc)
#endif
