// SPDX-License-Identifier: GPL-2.0-only
/*
 * Runs bpf/libbpf/tap-format.c on one struct tap_event given on the command
 * line and prints what the loader would print for it.
 *
 * usage: tap-format-harness text|json EV KTHREAD PID TS COMM S0 S1 S2 S3 N0 N1 N2 N3
 *   COMM and S0-S3: the bytes in hex (no NUL: a field that fills its buffer
 *   is left unterminated, as the kernel may leave it); N0-N3: decimal (a
 *   64-bit pattern as the signed number it reads as).
 * Exits 3 when the event has no format.
 */
#include <stdlib.h>
#include <string.h>
#include "tap-format.h"

static void unhex(char *dst, size_t size, const char *hex)
{
	size_t i, n = strlen(hex) / 2;
	char byte[3] = { 0 };

	memset(dst, 0, size);
	for (i = 0; i < n && i < size; i++) {
		memcpy(byte, hex + 2 * i, 2);
		dst[i] = (char)strtoul(byte, NULL, 16);
	}
}

int main(int argc, char **argv)
{
	static struct tap_event e;
	static struct tap_line line;
	int i;

	if (argc != 8 + TAP_STRS + TAP_NUMS - 1)
		return 2;
	e.ev = strtoul(argv[2], NULL, 10);
	e.kthread = strtoul(argv[3], NULL, 10);
	e.pid = strtoul(argv[4], NULL, 10);
	e.ts = strtoull(argv[5], NULL, 10);
	unhex(e.comm, sizeof(e.comm), argv[6]);
	for (i = 0; i < TAP_STRS; i++)
		unhex(e.str[i], sizeof(e.str[i]), argv[7 + i]);
	for (i = 0; i < TAP_NUMS; i++)
		e.num[i] = strtoll(argv[7 + TAP_STRS + i], NULL, 10);
	if (!tap_format_record(&e, sizeof(e), &line))
		return 3;
	if (!strcmp(argv[1], "json"))
		tap_print_json_printf(stdout, &line);
	else
		fwrite(line.text, 1, line.len, stdout);
	return 0;
}
