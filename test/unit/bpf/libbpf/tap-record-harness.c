// SPDX-License-Identifier: GPL-2.0-only
/*
 * Runs bpf/libbpf/tap-format.c on one record of any event with a format,
 * filled field by field from the command line, and prints what the loader
 * would print for it.
 *
 * usage: tap-record-harness text|json NAME KTHREAD PID TS COMM [KEY=VALUE]... [size=N]
 *   NAME: the event's ev= name; COMM and the values of string fields: the
 *   bytes in hex (no NUL: a field that fills its buffer is left
 *   unterminated); numbers: decimal or 0x hex, stored at the field's width
 *   (a value too wide for it is cut, as a narrower store in the kernel
 *   would cut it). card, dev, stream and sub fill a PCM record's struct
 *   tap_pcm. size=N hands the printer only N bytes of the record.
 * Exits 3 when the event has no format, 4 for a key its format lacks.
 */
#include <stdlib.h>
#include <string.h>
#include "tap-format.h"

static void unhex(unsigned char *dst, size_t size, const char *hex)
{
	size_t i, n = strlen(hex) / 2;
	char byte[3] = { 0 };

	memset(dst, 0, size);
	for (i = 0; i < n && i < size; i++) {
		memcpy(byte, hex + 2 * i, 2);
		dst[i] = (unsigned char)strtoul(byte, NULL, 16);
	}
}

/* Stores value at the field's width: the low bytes of the number (little endian). */
static void store(unsigned char *dst, size_t width, const char *value)
{
	unsigned long long n = value[0] == '-' ? (unsigned long long)strtoll(value, NULL, 0) :
				strtoull(value, NULL, 0);

	memcpy(dst, &n, width);
}

/* A number field's width in its record. */
static size_t width(enum tap_field_kind kind)
{
	return kind == TAP_FIELD_S64 || kind == TAP_FIELD_X64 ? sizeof(__u64) : sizeof(__u32);
}

/* Where a PCM record's card, dev, stream or sub is in its struct tap_pcm; -1 for another key. */
static long pcm_offset(const char *key)
{
	if (!strcmp(key, "card"))
		return offsetof(struct tap_pcm, card);
	if (!strcmp(key, "dev"))
		return offsetof(struct tap_pcm, dev);
	if (!strcmp(key, "stream"))
		return offsetof(struct tap_pcm, stream);
	if (!strcmp(key, "sub"))
		return offsetof(struct tap_pcm, sub);
	return -1;
}

/* Fills the field named key; false when the format has none. */
static bool fill(unsigned char *record, const struct tap_record_format *f, const char *key,
		 const char *value)
{
	const struct tap_field *field;
	long at;

	for (field = f->fields; field->kind != TAP_FIELD_END; field++) {
		if (field->kind == TAP_FIELD_PCM) {
			at = pcm_offset(key);
			if (at < 0)
				continue;
			store(record + field->offset + at, sizeof(__s32), value);
			return true;
		}
		if (strcmp(field->key, key))
			continue;
		if (field->kind == TAP_FIELD_STR)
			unhex(record + field->offset, field->size, value);
		else
			store(record + field->offset, width(field->kind), value);
		return true;
	}
	return false;
}

int main(int argc, char **argv)
{
	static unsigned char record[4096];
	static struct tap_line line;
	const struct tap_record_format *f;
	struct tap_head head = { 0 };
	size_t size;
	char *eq;
	int i;

	if (argc < 7)
		return 2;
	f = tap_record_format_named(argv[2]);
	if (!f)
		return 3;
	size = f->size;
	head.ev = f->ev;
	head.kthread = strtoul(argv[3], NULL, 10);
	head.pid = strtoul(argv[4], NULL, 10);
	head.ts = strtoull(argv[5], NULL, 10);
	memcpy(record, &head, sizeof(head));
	unhex(record + f->comm, TAP_COMM_LEN, argv[6]);
	for (i = 7; i < argc; i++) {
		eq = strchr(argv[i], '=');
		if (!eq)
			return 2;
		*eq = '\0';
		if (!strcmp(argv[i], "size"))
			size = strtoul(eq + 1, NULL, 10);
		else if (!fill(record, f, argv[i], eq + 1))
			return 4;
	}
	if (!tap_format_record(record, size, &line))
		return 5;
	if (!strcmp(argv[1], "json"))
		tap_print_json_printf(stdout, &line);
	else
		fwrite(line.text, 1, line.len, stdout);
	return 0;
}
