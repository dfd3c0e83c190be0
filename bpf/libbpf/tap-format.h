/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * A struct tap_event as the tap record line its class's bpftrace program
 * prints (daemon/core/tap-record.ts):
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

/* The event's record, newline included; false for an event with no format. */
bool tap_format_record(const struct tap_event *e, struct tap_line *l);

/* The record as bpftrace's JSON output prints a printf, newline included. */
void tap_print_json_printf(FILE *out, const struct tap_line *l);

#endif /* SHADOWD_TAP_FORMAT_H */
