// SPDX-License-Identifier: GPL-2.0-only
/*
 * taps-loader: runs a class's precompiled CO-RE tap object (block-class.bpf.o,
 * sound-class.bpf.o, netdev-class.bpf.o, any object that keeps taps-event.h's
 * contract) as a drop-in for `bpftrace -f json PROGRAM`: it loads the
 * object, attaches each of its programs, says it is attached, then prints
 * every event of the object's ring buffer as the tap record line the
 * class's bpftrace program prints (daemon/core/tap-record.ts), until SIGINT
 * or SIGTERM, or until nobody reads its output.
 *
 * usage: taps-loader [-f text|json] OBJECT...
 *
 * Several objects (one per class) run side by side in one process, as the
 * daemon's one bpftrace runs every class's program merged into one: their
 * ring buffers are read by one loop, the attached line counts the programs
 * of all, and the lost line sums their losses.
 *
 * Output, as bpftrace 0.17's:
 *   text: "Attaching N probes...", then one record a line, "Lost N events"
 *   json: {"type": "attached_probes", "data": {"probes": N}}
 *         {"type": "printf", "data": "RECORD\n"}
 *         {"type": "lost_events", "data": {"events": N}}
 * where bpftrace prints "attached" before attaching, this prints it once
 * every program is attached (its probes are live from that line on).
 *
 * A program whose kernel function is missing (in neither the kernel's BTF
 * nor a loaded module's, or refused at load) is named once on stderr and
 * left out, as the daemon leaves out a bpftrace probe the kernel lacks; a
 * module function's object loads only once its module is (libbpf finds the
 * function and the module's types in /sys/kernel/btf/MODULE). No program
 * attached at all is an error (exit 1). The records, and how kernel names
 * are escaped in them, are tap-format.c's.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <dirent.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <linux/types.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "tap-format.h"

#define MAX_PROGS 64
#define MAX_OBJECTS 8

static bool json_output;
/* Per thread: each object loads in a thread of its own. */
static __thread bool quiet_libbpf;
static bool output_failed;

static int on_event(void *ctx, void *data, size_t size)
{
	struct tap_line *l = ctx;

	if (!tap_format_record(data, size, l)) {
		fprintf(stderr, "taps-loader: skipped an unreadable record (%zu bytes)\n", size);
		return 0;
	}
	if (json_output)
		tap_print_json_printf(stdout, l);
	else
		fwrite(l->text, 1, l->len, stdout);
	return 0;
}

static void print_attached(int probes)
{
	if (json_output)
		printf("{\"type\": \"attached_probes\", \"data\": {\"probes\": %d}}\n", probes);
	else
		printf("Attaching %d probe%s...\n", probes, probes == 1 ? "" : "s");
}

static void print_lost(unsigned long long n)
{
	if (json_output)
		printf("{\"type\": \"lost_events\", \"data\": {\"events\": %llu}}\n", n);
	else
		printf("Lost %llu events\n", n);
}

static bool flush_output(void)
{
	if (fflush(stdout) != 0 || ferror(stdout))
		output_failed = true;
	return !output_failed;
}

static int print_libbpf(enum libbpf_print_level level, const char *format, va_list args)
{
	if (quiet_libbpf || level == LIBBPF_DEBUG)
		return 0;
	return vfprintf(stderr, format, args);
}

/*
 * The kernel function an fentry or fexit program's section names
 * ("fexit/NAME", "fexit/MODULE:NAME"); NULL for other programs.
 */
static const char *attach_function(const struct bpf_program *prog)
{
	const char *sec = bpf_program__section_name(prog);
	const char *slash = strchr(sec, '/');
	const char *colon;

	if (!slash || (strncmp(sec, "fentry", 6) && strncmp(sec, "fexit", 5)))
		return NULL;
	colon = strchr(slash + 1, ':');
	return colon ? colon + 1 : slash + 1;
}

static bool btf_has_function(const struct btf *btf, const char *name)
{
	return btf && btf__find_by_name_kind(btf, name, BTF_KIND_FUNC) > 0;
}

/* Whether a loaded module's BTF (/sys/kernel/btf/MODULE) has the function. */
static bool module_has_function(struct btf *vmlinux, const char *name)
{
	char path[512];
	struct dirent *d;
	struct btf *btf;
	bool found = false;
	DIR *dir = opendir("/sys/kernel/btf");

	if (!dir)
		return false;
	while (!found && (d = readdir(dir))) {
		if (d->d_name[0] == '.' || !strcmp(d->d_name, "vmlinux"))
			continue;
		snprintf(path, sizeof(path), "/sys/kernel/btf/%s", d->d_name);
		btf = btf__parse_split(path, vmlinux);
		if (!btf)
			continue;
		found = btf_has_function(btf, name);
		btf__free(btf);
	}
	closedir(dir);
	return found;
}

struct program_set {
	int count;
	char names[MAX_PROGS][128];
	bool skip[MAX_PROGS];
};

static int program_index(struct program_set *set, const struct bpf_program *prog)
{
	const char *name = bpf_program__name(prog);
	int i;

	for (i = 0; i < set->count; i++)
		if (!strcmp(set->names[i], name))
			return i;
	if (set->count == MAX_PROGS) {
		fprintf(stderr, "taps-loader: %s: more than %d programs in one object: left out\n",
			name, MAX_PROGS);
		return -1;
	}
	snprintf(set->names[set->count], sizeof(set->names[0]), "%s", name);
	set->skip[set->count] = false;
	return set->count++;
}

/* Leaves out the programs whose function this kernel's BTF lacks, naming each on stderr. */
static void skip_missing_functions(struct bpf_object *obj, struct program_set *set)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	struct bpf_program *prog;
	const char *fn;
	int i;

	if (!vmlinux) {
		fprintf(stderr, "taps-loader: cannot read the kernel's BTF: %s\n", strerror(errno));
		return;
	}
	bpf_object__for_each_program(prog, obj) {
		i = program_index(set, prog);
		fn = attach_function(prog);
		if (i < 0 || !fn || btf_has_function(vmlinux, fn) ||
		    module_has_function(vmlinux, fn))
			continue;
		set->skip[i] = true;
		fprintf(stderr, "taps-loader: %s: %s is not in this kernel: left out\n",
			bpf_program__section_name(prog), fn);
	}
	btf__free(vmlinux);
}

/* Opens the object with the programs the set does not skip (only `only`, if not negative). */
static struct bpf_object *open_object(const char *path, struct program_set *set, int only)
{
	struct bpf_object *obj = bpf_object__open_file(path, NULL);
	struct bpf_program *prog;
	int i;

	if (!obj) {
		fprintf(stderr, "taps-loader: cannot open %s: %s\n", path, strerror(errno));
		return NULL;
	}
	bpf_object__for_each_program(prog, obj) {
		i = program_index(set, prog);
		bpf_program__set_autoload(prog, i >= 0 && !set->skip[i] && (only < 0 || only == i));
	}
	return obj;
}

/* Loads the object with only program i; libbpf's messages are printed if `say`. */
static int load_alone(const char *path, struct program_set *set, int i, bool say)
{
	struct bpf_object *obj = open_object(path, set, i);
	int err;

	if (!obj)
		return -errno;
	quiet_libbpf = !say;
	err = bpf_object__load(obj);
	quiet_libbpf = true;
	bpf_object__close(obj);
	return err;
}

/*
 * The object loaded with every program the kernel takes. The first load has
 * them all (one read of the kernel's BTF: the usual case). When it fails,
 * the programs whose function the kernel's BTF lacks are left out, then
 * each other program is tried alone: one the kernel refuses (a function it
 * cannot trace, a verifier's no) is tried again with libbpf's messages on,
 * so that its reason is on stderr once, and left out.
 */
static struct bpf_object *load_object(const char *path, struct program_set *set)
{
	struct bpf_object *obj;
	int i, err;

	obj = open_object(path, set, -1);
	if (!obj)
		return NULL;
	quiet_libbpf = true;
	err = bpf_object__load(obj);
	if (!err) {
		quiet_libbpf = false;
		return obj;
	}
	skip_missing_functions(obj, set);
	bpf_object__close(obj);
	for (i = 0; i < set->count; i++) {
		if (set->skip[i] || !load_alone(path, set, i, false))
			continue;
		err = load_alone(path, set, i, true);
		set->skip[i] = true;
		fprintf(stderr, "taps-loader: %s: the kernel refuses it (%s): left out\n",
			set->names[i], strerror(-err));
	}
	obj = open_object(path, set, -1);
	err = obj ? bpf_object__load(obj) : -ENOENT;
	quiet_libbpf = false;
	if (err) {
		fprintf(stderr, "taps-loader: cannot load %s: %s\n", path, strerror(-err));
		bpf_object__close(obj);
		return NULL;
	}
	return obj;
}

/* One object of the command line, loaded and attached. */
struct tap_object {
	const char *path;
	struct bpf_object *obj;
	struct program_set set;
	struct bpf_link *links[MAX_PROGS];
	int attached;
	struct bpf_map *lost;
	unsigned long long reported;
	bool ok;
};

/* The records every object could not reserve since the last report, in one line. */
static void report_lost(struct tap_object *objects, int n)
{
	unsigned long long total = 0;
	__u32 key = 0;
	__u64 count;
	int i;

	for (i = 0; i < n; i++) {
		count = 0;
		if (!objects[i].lost ||
		    bpf_map__lookup_elem(objects[i].lost, &key, sizeof(key), &count,
					 sizeof(count), 0))
			continue;
		if (count > objects[i].reported) {
			total += count - objects[i].reported;
			objects[i].reported = count;
		}
	}
	if (total)
		print_lost(total);
}

/* Hands the ring buffers' events on until a signal, or until stdout is gone. */
static int run(struct ring_buffer *rb, struct tap_object *objects, int n_objects, int sigfd)
{
	struct epoll_event ev = { .events = EPOLLIN }, ready[4];
	int ep = epoll_create1(EPOLL_CLOEXEC);
	int n, i, err = 0;
	bool done = false;

	if (ep < 0)
		return -errno;
	ev.data.fd = ring_buffer__epoll_fd(rb);
	if (epoll_ctl(ep, EPOLL_CTL_ADD, ev.data.fd, &ev))
		err = -errno;
	ev.data.fd = sigfd;
	if (!err && epoll_ctl(ep, EPOLL_CTL_ADD, sigfd, &ev))
		err = -errno;
	/* A pipe's reader gone shows as EPOLLERR; a file or a terminal cannot be watched. */
	ev.events = 0;
	ev.data.fd = STDOUT_FILENO;
	epoll_ctl(ep, EPOLL_CTL_ADD, STDOUT_FILENO, &ev);
	while (!err && !done) {
		n = epoll_wait(ep, ready, 4, -1);
		if (n < 0) {
			if (errno != EINTR)
				err = -errno;
			continue;
		}
		for (i = 0; i < n; i++)
			if (ready[i].data.fd != ring_buffer__epoll_fd(rb))
				done = true;
		n = ring_buffer__consume(rb);
		if (n < 0 && n != -EINTR)
			err = n;
		report_lost(objects, n_objects);
		if (!flush_output())
			done = true;
	}
	close(ep);
	return err;
}

static int bad_arguments(void)
{
	fprintf(stderr, "usage: taps-loader [-f text|json] OBJECT...\n");
	return 2;
}

/* Loads and attaches an object's programs; false when none attached. */
static bool attach_object(struct tap_object *o)
{
	struct bpf_program *prog;

	o->obj = load_object(o->path, &o->set);
	if (!o->obj)
		return false;
	bpf_object__for_each_program(prog, o->obj) {
		if (!bpf_program__autoload(prog))
			continue;
		o->links[o->attached] = bpf_program__attach(prog);
		if (!o->links[o->attached]) {
			fprintf(stderr, "taps-loader: %s: cannot attach: %s: left out\n",
				bpf_program__section_name(prog), strerror(errno));
			continue;
		}
		o->attached++;
	}
	if (o->attached == 0)
		fprintf(stderr, "taps-loader: none of %s's programs attached\n", o->path);
	o->lost = bpf_object__find_map_by_name(o->obj, "lost");
	return o->attached > 0;
}

static void *attach_object_thread(void *arg)
{
	struct tap_object *o = arg;

	o->ok = attach_object(o);
	return NULL;
}

/*
 * Every object loaded and attached, each in a thread of its own: the
 * kernel's verifier and BTF reads take most of a start (seconds under
 * emulation), and the objects share nothing until their ring buffers are
 * read. An object whose thread cannot start is loaded in this one.
 */
static void attach_objects(struct tap_object *objects, int n)
{
	pthread_t threads[MAX_OBJECTS];
	bool started[MAX_OBJECTS];
	int i;

	for (i = 0; i < n; i++) {
		started[i] = n > 1 && !pthread_create(&threads[i], NULL, attach_object_thread,
						      &objects[i]);
		if (!started[i])
			attach_object_thread(&objects[i]);
	}
	for (i = 0; i < n; i++)
		if (started[i])
			pthread_join(threads[i], NULL);
}

static void close_object(struct tap_object *o)
{
	int i;

	for (i = 0; i < o->attached; i++)
		bpf_link__destroy(o->links[i]);
	bpf_object__close(o->obj);
}

/* Every object's ring buffer "events" in one reader; NULL (said why) if one has none. */
static struct ring_buffer *open_events(struct tap_object *objects, int n, struct tap_line *line)
{
	struct ring_buffer *rb = NULL;
	int i, fd, err = 0;

	for (i = 0; i < n && !err; i++) {
		fd = bpf_object__find_map_fd_by_name(objects[i].obj, "events");
		if (fd < 0) {
			err = fd;
		} else if (!rb) {
			rb = ring_buffer__new(fd, on_event, line, NULL);
			err = rb ? 0 : -errno;
		} else {
			err = ring_buffer__add(rb, fd, on_event, line);
		}
		if (err)
			fprintf(stderr, "taps-loader: %s: no ring buffer \"events\": %s\n",
				objects[i].path, strerror(-err));
	}
	if (err) {
		ring_buffer__free(rb);
		return NULL;
	}
	return rb;
}

int main(int argc, char **argv)
{
	static struct tap_object objects[MAX_OBJECTS];
	static struct tap_line line;
	struct ring_buffer *rb;
	sigset_t stop;
	int opt, i, n, attached = 0, sigfd, err = 0;

	while ((opt = getopt(argc, argv, "f:")) != -1) {
		if (opt != 'f')
			return bad_arguments();
		if (!strcmp(optarg, "json"))
			json_output = true;
		else if (strcmp(optarg, "text"))
			return bad_arguments();
	}
	n = argc - optind;
	if (n < 1 || n > MAX_OBJECTS)
		return bad_arguments();
	for (i = 0; i < n; i++)
		objects[i].path = argv[optind + i];

	/*
	 * SIGINT and SIGTERM are read from a file descriptor in the event loop;
	 * a write to a closed pipe fails with EPIPE.
	 */
	sigemptyset(&stop);
	sigaddset(&stop, SIGINT);
	sigaddset(&stop, SIGTERM);
	sigprocmask(SIG_BLOCK, &stop, NULL);
	signal(SIGPIPE, SIG_IGN);
	sigfd = signalfd(-1, &stop, SFD_CLOEXEC);
	if (sigfd < 0) {
		fprintf(stderr, "taps-loader: signalfd: %s\n", strerror(errno));
		return 1;
	}
	libbpf_set_print(print_libbpf);

	/* Every object, or none: a class without its taps would miss changes unseen. */
	attach_objects(objects, n);
	for (i = 0; i < n; i++) {
		if (!objects[i].ok)
			err = 1;
		attached += objects[i].attached;
	}
	rb = err ? NULL : open_events(objects, n, &line);
	if (rb) {
		print_attached(attached);
		err = flush_output() ? run(rb, objects, n, sigfd) : 0;
		if (err)
			fprintf(stderr, "taps-loader: reading the events: %s\n", strerror(-err));
		ring_buffer__free(rb);
	} else {
		err = 1;
	}
	for (i = 0; i < n; i++)
		if (objects[i].obj)
			close_object(&objects[i]);
	close(sigfd);
	return err ? 1 : 0;
}
