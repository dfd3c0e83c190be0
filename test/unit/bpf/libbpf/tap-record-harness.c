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
 *   tap_pcm; ifindex, netns and name (hex) a network record's struct
 *   tap_net_dev; a MAC address (addr) is its six bytes in hex. Where two
 *   events share NAME (the network class's register, with and without
 *   driver= and bus=), the one whose format has the keys given, no more, is
 *   printed, or else the first that has them all. size=N hands the printer only N bytes of the record.
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
	return kind == TAP_FIELD_S64 || kind == TAP_FIELD_X64 || kind == TAP_FIELD_U64 ?
		sizeof(__u64) : sizeof(__u32);
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

/* Where a network record's ifindex, netns or name is in its struct tap_net_dev; -1 for another key. */
static long netdev_offset(const char *key)
{
	if (!strcmp(key, "ifindex"))
		return offsetof(struct tap_net_dev, ifindex);
	if (!strcmp(key, "netns"))
		return offsetof(struct tap_net_dev, netns);
	if (!strcmp(key, "name"))
		return offsetof(struct tap_net_dev, name);
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
		if (field->kind == TAP_FIELD_NETDEV) {
			at = netdev_offset(key);
			if (at < 0)
				continue;
			if (at == offsetof(struct tap_net_dev, name))
				unhex(record + field->offset + at, TAP_STR_LEN, value);
			else
				store(record + field->offset + at, sizeof(__s32), value);
			return true;
		}
		if (strcmp(field->key, key))
			continue;
		if (field->kind == TAP_FIELD_STR || field->kind == TAP_FIELD_MAC)
			unhex(record + field->offset, field->size, value);
		else
			store(record + field->offset, width(field->kind), value);
		return true;
	}
	return false;
}

/*
 * Fills a record of format f from the arguments (KEY=VALUE from argv[7]);
 * false when f lacks a key. *size is the record's size, or size=N's.
 */
static bool fill_all(unsigned char *record, const struct tap_record_format *f, int argc,
		     char **argv, size_t *size)
{
	char key[64];
	const char *eq;
	int i;

	*size = f->size;
	for (i = 7; i < argc; i++) {
		eq = strchr(argv[i], '=');
		if (!eq || (size_t)(eq - argv[i]) >= sizeof(key))
			return false;
		memcpy(key, argv[i], eq - argv[i]);
		key[eq - argv[i]] = '\0';
		if (!strcmp(key, "size"))
			*size = strtoul(eq + 1, NULL, 10);
		else if (!fill(record, f, key, eq + 1))
			return false;
	}
	return true;
}

/* The keys a format prints (a substream's or a device's each). */
static int keys_of(const struct tap_record_format *f)
{
	const struct tap_field *field;
	int n = 0;

	for (field = f->fields; field->kind != TAP_FIELD_END; field++)
		n += field->kind == TAP_FIELD_PCM ? 4 : field->kind == TAP_FIELD_NETDEV ? 3 : 1;
	return n;
}

/* A record of format f from the arguments, its head and comm filled; false as fill_all. */
static bool build(unsigned char *record, const struct tap_record_format *f, int argc, char **argv,
		  size_t *size)
{
	struct tap_head head = { 0 };

	memset(record, 0, 4096);
	head.ev = f->ev;
	head.kthread = strtoul(argv[3], NULL, 10);
	head.pid = strtoul(argv[4], NULL, 10);
	head.ts = strtoull(argv[5], NULL, 10);
	memcpy(record, &head, sizeof(head));
	unhex(record + f->comm, TAP_COMM_LEN, argv[6]);
	return fill_all(record, f, argc, argv, size);
}

int main(int argc, char **argv)
{
	static unsigned char record[4096];
	static struct tap_line line;
	const struct tap_record_format *f, *chosen = NULL, *exact = NULL;
	bool named = false;
	size_t size = 0, i;
	int given = 0, k;

	if (argc < 7)
		return 2;
	for (k = 7; k < argc; k++)
		given += strncmp(argv[k], "size=", 5) != 0;
	for (i = 0; (f = tap_record_format_at(i)); i++) {
		if (strcmp(f->name, argv[2]))
			continue;
		named = true;
		if (!build(record, f, argc, argv, &size))
			continue;
		if (!chosen)
			chosen = f;
		if (!exact && keys_of(f) == given)
			exact = f;
	}
	if (!named)
		return 3;
	if (!chosen)
		return 4;
	build(record, exact ? exact : chosen, argc, argv, &size);
	if (!tap_format_record(record, size, &line))
		return 5;
	if (!strcmp(argv[1], "json"))
		tap_print_json_printf(stdout, &line);
	else
		fwrite(line.text, 1, line.len, stdout);
	return 0;
}
