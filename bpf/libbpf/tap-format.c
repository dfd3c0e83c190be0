// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tap records from struct tap_event (tap-format.h): the events' formats,
 * the escaping of kernel names, bpftrace's JSON form.
 */
#include <stdio.h>
#include "tap-format.h"

enum field_kind { FIELD_END, FIELD_STR, FIELD_NUM };

struct field {
	const char *key;
	enum field_kind kind;
	int index;
};

struct record_format {
	const char *name;
	struct field fields[TAP_STRS + TAP_NUMS + 1];
};

/* Each event's fields as its bpftrace printf prints them; kthread, pid, ts and comm follow. */
static const struct record_format formats[TAP_EV_COUNT] = {
	[TAP_EV_SYSFS_WRITE] = { "sysfs_write", {
		{ "attr", FIELD_STR, 0 }, { "kobj", FIELD_STR, 1 },
		{ "parent", FIELD_STR, 2 }, { "grandparent", FIELD_STR, 3 },
		{ "ret", FIELD_NUM, 0 } } },
	[TAP_EV_DISK_ADD] = { "disk_add", {
		{ "name", FIELD_STR, 0 }, { "major", FIELD_NUM, 0 },
		{ "minor", FIELD_NUM, 1 }, { "ret", FIELD_NUM, 2 } } },
	[TAP_EV_DISK_DEL] = { "disk_del", {
		{ "name", FIELD_STR, 0 }, { "major", FIELD_NUM, 0 },
		{ "minor", FIELD_NUM, 1 } } },
};

static void put_char(struct tap_line *l, char c)
{
	if (l->len < sizeof(l->text) - 1)
		l->text[l->len++] = c;
}

static void put_text(struct tap_line *l, const char *s)
{
	while (*s)
		put_char(l, *s++);
}

static void put_hex_escape(struct tap_line *l, unsigned char c)
{
	static const char digits[] = "0123456789abcdef";

	put_text(l, "\\x");
	put_char(l, digits[c >> 4]);
	put_char(l, digits[c & 15]);
}

/* A kernel name as a token's value: printable ASCII but ' ', '=' and '\'; the rest as \xHH. */
static void put_token(struct tap_line *l, const char *s, size_t max)
{
	size_t i;

	for (i = 0; i < max && s[i]; i++) {
		unsigned char c = s[i];

		if (c > ' ' && c < 0x7f && c != '=' && c != '\\')
			put_char(l, c);
		else
			put_hex_escape(l, c);
	}
}

/* Length of the valid UTF-8 sequence (2 to 4 bytes) at s[i], or 0 if there is none. */
static size_t utf8_sequence(const unsigned char *s, size_t i, size_t max)
{
	unsigned char c = s[i];
	size_t n, k;
	__u32 cp;

	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (i + n > max)
		return 0;
	for (k = 1; k < n; k++) {
		if ((s[i + k] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i + k] & 0x3f);
	}
	/* Overlong forms, UTF-16 surrogates and code points past U+10FFFF are not UTF-8. */
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return n;
}

/*
 * The task's name, the rest of the line: spaces and UTF-8 as they are;
 * control bytes, '\' and bytes that are not UTF-8 as \xHH.
 */
static void put_comm(struct tap_line *l, const char *comm, size_t max)
{
	const unsigned char *s = (const unsigned char *)comm;
	size_t i = 0, n;

	while (i < max && s[i]) {
		n = s[i] >= 0x80 ? utf8_sequence(s, i, max) : 0;
		if (n) {
			for (; n; n--)
				put_char(l, s[i++]);
			continue;
		}
		if (s[i] < ' ' || s[i] == 0x7f || s[i] == '\\' || s[i] >= 0x80)
			put_hex_escape(l, s[i]);
		else
			put_char(l, s[i]);
		i++;
	}
}

static void put_number(struct tap_line *l, long long n)
{
	char digits[24];

	snprintf(digits, sizeof(digits), "%lld", n);
	put_text(l, digits);
}

bool tap_format_record(const struct tap_event *e, struct tap_line *l)
{
	const struct record_format *f;
	const struct field *field;

	if (e->ev >= TAP_EV_COUNT)
		return false;
	f = &formats[e->ev];
	l->len = 0;
	put_text(l, "ev=");
	put_text(l, f->name);
	for (field = f->fields; field->kind != FIELD_END; field++) {
		put_char(l, ' ');
		put_text(l, field->key);
		put_char(l, '=');
		if (field->kind == FIELD_STR)
			put_token(l, e->str[field->index], TAP_STR_LEN);
		else
			put_number(l, e->num[field->index]);
	}
	put_text(l, " kthread=");
	put_number(l, e->kthread ? 1 : 0);
	put_text(l, " pid=");
	put_number(l, e->pid);
	put_text(l, " ts=");
	put_number(l, (long long)e->ts);
	put_text(l, " comm=");
	put_comm(l, e->comm, TAP_COMM_LEN);
	put_char(l, '\n');
	l->text[l->len] = '\0';
	return true;
}

void tap_print_json_printf(FILE *out, const struct tap_line *l)
{
	size_t i;

	fputs("{\"type\": \"printf\", \"data\": \"", out);
	for (i = 0; i < l->len; i++) {
		unsigned char c = l->text[i];

		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", out);
		else if (c < ' ')
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputs("\"}\n", out);
}
