/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A record of taps-event.h as the tap record line its class's bpftrace
 * program prints (daemon/core/tap-record.ts):
 *   ev=NAME key=value ... kthread=0|1 pid=PID ts=NSECS comm=COMM
 * and that line as bpftrace's `-f json` prints a printf. Kept apart from the
 * loader so that a host test can run it without a kernel.
 *
 * Kernel names are printed so that none can break the line's format: in a
 * key=value token every byte that is not printable ASCII, and the space,
 * '=' and '\', is written \xHH; in comm (the rest of the line) control
 * bytes, '\' and bytes that are not UTF-8 are. bpftrace prints them raw.
 */
#ifndef SHADOWD_TAP_FORMAT_H
#define SHADOWD_TAP_FORMAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>
#include "taps-event.h"

/* Every field escaped (4 bytes a byte) fits, with room to spare. */
#define TAP_LINE_MAX 4096

struct tap_line {
	char text[TAP_LINE_MAX];
	size_t len;
};

/* How a field's value is stored in its record and printed (the bpftrace printf's conversion). */
enum tap_field_kind {
	TAP_FIELD_END,
	TAP_FIELD_STR,		/* %s of a kernel name: char[size], escaped */
	TAP_FIELD_S32,		/* %d */
	TAP_FIELD_U32,		/* %u */
	TAP_FIELD_X32,		/* 0x%x */
	TAP_FIELD_S64,		/* %d (%lld) of a 64-bit value */
	TAP_FIELD_X64,		/* 0x%lx (0x%llx) */
	TAP_FIELD_PCM,		/* a struct tap_pcm: card=%d dev=%d stream=%d sub=%d */
	TAP_FIELD_U64,		/* %lu */
	TAP_FIELD_MAC,		/* 6 bytes: %02x:%02x:%02x:%02x:%02x:%02x */
	TAP_FIELD_NETDEV,	/* a struct tap_net_dev: ifindex=%d netns=%u name=%s */
};

struct tap_field {
	const char *key;	/* NULL for TAP_FIELD_PCM and _NETDEV, which print their own keys */
	enum tap_field_kind kind;
	size_t offset;
	size_t size;		/* a string's buffer; a number's width is its kind's */
};

#define TAP_FIELDS_MAX 16

/* An event's record and line: its struct's size, where its comm is, its fields in printf order. */
struct tap_record_format {
	__u32 ev;
	const char *name;
	size_t size;
	size_t comm;
	struct tap_field fields[TAP_FIELDS_MAX];
};

/* The format of event ev (enum tap_ev), or NULL. */
const struct tap_record_format *tap_record_format(__u32 ev);

/*
 * The format of the event named ev=NAME, or NULL (for the host tests); the
 * first one where two share the name (the network class's register).
 */
const struct tap_record_format *tap_record_format_named(const char *name);

/* The i-th format of the table, or NULL past its end (for the host tests). */
const struct tap_record_format *tap_record_format_at(size_t i);

/*
 * The record's line, newline included; false for a record too short to
 * hold its event's fields, or for an event with no format.
 */
bool tap_format_record(const void *record, size_t size, struct tap_line *l);

/* The record as bpftrace's JSON output prints a printf, newline included. */
void tap_print_json_printf(FILE *out, const struct tap_line *l);

#endif /* SHADOWD_TAP_FORMAT_H */
