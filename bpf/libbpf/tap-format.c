// SPDX-License-Identifier: GPL-2.0-only
/*
 * Tap records from the records of taps-event.h (tap-format.h): each
 * event's format, the escaping of kernel names, bpftrace's JSON form.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "tap-format.h"

/* The disk class's record starts as every record does: the loader reads its head as such. */
static_assert(offsetof(struct tap_event, ts) == offsetof(struct tap_head, ts) &&
	      offsetof(struct tap_event, num) == sizeof(struct tap_head),
	      "struct tap_event starts as struct tap_head does");

/* A disk class field: one of struct tap_event's strings or numbers, by position. */
#define DISK_STR(key, i) { key, TAP_FIELD_STR, offsetof(struct tap_event, str[i]), TAP_STR_LEN }
#define DISK_NUM(key, i) { key, TAP_FIELD_S64, offsetof(struct tap_event, num[i]), sizeof(__s64) }
#define DISK_X64(key, i) { key, TAP_FIELD_X64, offsetof(struct tap_event, num[i]), sizeof(__s64) }
#define DISK(ev, name, ...) \
	{ ev, name, sizeof(struct tap_event), offsetof(struct tap_event, comm), { __VA_ARGS__ } }

/* A number or a string of a later class's record, printed under its member's name. */
#define FIELD(type, member, kind) { #member, kind, offsetof(type, member), 0 }
#define STR(type, member) { #member, TAP_FIELD_STR, offsetof(type, member), TAP_STR_LEN }
#define PCM(type) { NULL, TAP_FIELD_PCM, offsetof(type, pcm), sizeof(struct tap_pcm) }
#define RECORD(ev, name, type, ...) \
	{ ev, name, sizeof(type), offsetof(type, task.comm), { __VA_ARGS__ } }
/* A PCM event: the substream, then its int under the given key, if any. */
#define PCM_EVENT(ev, name) RECORD(ev, name, struct tap_pcm_event, PCM(struct tap_pcm_event))
#define PCM_INT(ev, name, key) \
	RECORD(ev, name, struct tap_pcm_event, PCM(struct tap_pcm_event), \
	       { key, TAP_FIELD_S32, offsetof(struct tap_pcm_event, value), 0 })

/* A network class field under a key of its own: the record's member keeps a shorter name. */
#define KEYED(key, type, member, kind) { key, kind, offsetof(type, member), 0 }
#define NETDEV(type) { NULL, TAP_FIELD_NETDEV, offsetof(type, dev), sizeof(struct tap_net_dev) }
#define MAC(type, member) { #member, TAP_FIELD_MAC, offsetof(type, member), 6 }
/* A struct tap_net_event: the device, its value under key (none if NULL), its ret if any. */
#define NET_VALUE(key, kind) KEYED(key, struct tap_net_event, value, kind)
#define NET_RET FIELD(struct tap_net_event, ret, TAP_FIELD_S32)
#define NET_EVENT(ev, name, ...) \
	RECORD(ev, name, struct tap_net_event, NETDEV(struct tap_net_event), ##__VA_ARGS__)
/* An address list's event (uc_*, mc_*). */
#define NET_ADDR(ev, name) \
	RECORD(ev, name, struct tap_net_addr, NETDEV(struct tap_net_addr), \
	       MAC(struct tap_net_addr, addr), FIELD(struct tap_net_addr, count, TAP_FIELD_S32), \
	       FIELD(struct tap_net_addr, ret, TAP_FIELD_S32))
/* promisc, allmulti: the reference count under its key (the event's name). */
#define NET_REFCOUNT(ev, name, key) \
	RECORD(ev, name, struct tap_net_refcount, NETDEV(struct tap_net_refcount), \
	       FIELD(struct tap_net_refcount, inc, TAP_FIELD_S32), \
	       KEYED(key, struct tap_net_refcount, count, TAP_FIELD_U32), \
	       FIELD(struct tap_net_refcount, flags, TAP_FIELD_X32), \
	       FIELD(struct tap_net_refcount, ret, TAP_FIELD_S32))
#define NET_VLAN(ev, name) \
	RECORD(ev, name, struct tap_net_vlan, NETDEV(struct tap_net_vlan), \
	       FIELD(struct tap_net_vlan, proto, TAP_FIELD_X32), \
	       FIELD(struct tap_net_vlan, vid, TAP_FIELD_U32), \
	       FIELD(struct tap_net_vlan, ret, TAP_FIELD_S32))

/* Each event's fields as its bpftrace printf prints them; kthread, pid, ts and comm follow. */
static const struct tap_record_format formats[] = {
	/* bpf/block-class.bt */
	DISK(TAP_EV_SYSFS_WRITE, "sysfs_write",
	     DISK_STR("attr", 0), DISK_STR("kobj", 1), DISK_STR("parent", 2),
	     DISK_STR("grandparent", 3), DISK_NUM("ret", 0), DISK_NUM("len", 1),
	     DISK_X64("v0", 2), DISK_X64("v1", 3)),
	DISK(TAP_EV_DISK_ADD, "disk_add",
	     DISK_STR("name", 0), DISK_NUM("major", 0), DISK_NUM("minor", 1), DISK_NUM("ret", 2)),
	DISK(TAP_EV_DISK_DEL, "disk_del",
	     DISK_STR("name", 0), DISK_NUM("major", 0), DISK_NUM("minor", 1)),
	/* bpf/sound-class.bt */
	PCM_INT(TAP_EV_PCM_OPEN, "pcm_open", "ret"),
	PCM_EVENT(TAP_EV_PCM_CLOSE, "pcm_close"),
	RECORD(TAP_EV_PCM_HW_PARAMS, "pcm_hw_params", struct tap_pcm_hw_params,
	       PCM(struct tap_pcm_hw_params),
	       FIELD(struct tap_pcm_hw_params, access, TAP_FIELD_X32),
	       FIELD(struct tap_pcm_hw_params, format0, TAP_FIELD_X32),
	       FIELD(struct tap_pcm_hw_params, format1, TAP_FIELD_X32),
	       FIELD(struct tap_pcm_hw_params, channels, TAP_FIELD_U32),
	       FIELD(struct tap_pcm_hw_params, rate, TAP_FIELD_U32),
	       FIELD(struct tap_pcm_hw_params, period_size, TAP_FIELD_U32),
	       FIELD(struct tap_pcm_hw_params, periods, TAP_FIELD_U32),
	       FIELD(struct tap_pcm_hw_params, buffer_size, TAP_FIELD_U32),
	       FIELD(struct tap_pcm_hw_params, ret, TAP_FIELD_S32)),
	RECORD(TAP_EV_PCM_SW_PARAMS, "pcm_sw_params", struct tap_pcm_sw_params,
	       PCM(struct tap_pcm_sw_params),
	       FIELD(struct tap_pcm_sw_params, tstamp_mode, TAP_FIELD_S32),
	       FIELD(struct tap_pcm_sw_params, avail_min, TAP_FIELD_X64),
	       FIELD(struct tap_pcm_sw_params, start_threshold, TAP_FIELD_X64),
	       FIELD(struct tap_pcm_sw_params, stop_threshold, TAP_FIELD_X64),
	       FIELD(struct tap_pcm_sw_params, silence_threshold, TAP_FIELD_X64),
	       FIELD(struct tap_pcm_sw_params, silence_size, TAP_FIELD_X64),
	       FIELD(struct tap_pcm_sw_params, ret, TAP_FIELD_S32)),
	PCM_EVENT(TAP_EV_PCM_PREPARE, "pcm_prepare"),
	PCM_INT(TAP_EV_PCM_START, "pcm_start", "state"),
	PCM_INT(TAP_EV_PCM_STOP, "pcm_stop", "state"),
	PCM_EVENT(TAP_EV_PCM_DRAIN, "pcm_drain"),
	PCM_INT(TAP_EV_PCM_DRAIN_FAILED, "pcm_drain_failed", "ret"),
	PCM_INT(TAP_EV_PCM_PAUSE, "pcm_pause", "push"),
	PCM_EVENT(TAP_EV_PCM_HW_FREE, "pcm_hw_free"),
	RECORD(TAP_EV_CTL_WRITE, "ctl_write", struct tap_ctl_write,
	       FIELD(struct tap_ctl_write, card, TAP_FIELD_S32),
	       FIELD(struct tap_ctl_write, numid, TAP_FIELD_U32),
	       FIELD(struct tap_ctl_write, iface, TAP_FIELD_S32),
	       FIELD(struct tap_ctl_write, dev, TAP_FIELD_U32),
	       FIELD(struct tap_ctl_write, sub, TAP_FIELD_U32),
	       FIELD(struct tap_ctl_write, index, TAP_FIELD_U32),
	       FIELD(struct tap_ctl_write, ret, TAP_FIELD_S32)),
	RECORD(TAP_EV_CTL_NOTIFY, "ctl_notify", struct tap_ctl_notify,
	       FIELD(struct tap_ctl_notify, card, TAP_FIELD_S32),
	       FIELD(struct tap_ctl_notify, numid, TAP_FIELD_U32),
	       FIELD(struct tap_ctl_notify, mask, TAP_FIELD_U32)),
	RECORD(TAP_EV_CARD_REGISTER, "card_register", struct tap_card_event,
	       FIELD(struct tap_card_event, card, TAP_FIELD_S32),
	       FIELD(struct tap_card_event, ret, TAP_FIELD_S32)),
	RECORD(TAP_EV_CARD_DISCONNECT, "card_disconnect", struct tap_card_event,
	       FIELD(struct tap_card_event, card, TAP_FIELD_S32)),
	RECORD(TAP_EV_INFO_WRITE, "info_write", struct tap_info_write,
	       STR(struct tap_info_write, attr), STR(struct tap_info_write, parent),
	       FIELD(struct tap_info_write, ret, TAP_FIELD_S64)),
	/* bpf/netdev-class.bt */
	NET_EVENT(TAP_EV_NET_OPEN, "open", NET_VALUE("flags", TAP_FIELD_X32), NET_RET),
	RECORD(TAP_EV_NET_NOTIFIER, "notifier", struct tap_net_notifier,
	       NETDEV(struct tap_net_notifier),
	       FIELD(struct tap_net_notifier, event, TAP_FIELD_U64),
	       FIELD(struct tap_net_notifier, ret, TAP_FIELD_S64)),
	NET_EVENT(TAP_EV_NET_MTU, "mtu", NET_VALUE("mtu", TAP_FIELD_S32), NET_RET),
	RECORD(TAP_EV_NET_MAC, "mac", struct tap_net_addr, NETDEV(struct tap_net_addr),
	       MAC(struct tap_net_addr, addr), FIELD(struct tap_net_addr, ret, TAP_FIELD_S32)),
	RECORD(TAP_EV_NET_FLAGS, "flags", struct tap_net_flags, NETDEV(struct tap_net_flags),
	       FIELD(struct tap_net_flags, flags, TAP_FIELD_X32),
	       FIELD(struct tap_net_flags, devflags, TAP_FIELD_X32),
	       FIELD(struct tap_net_flags, gflags, TAP_FIELD_X32),
	       FIELD(struct tap_net_flags, ret, TAP_FIELD_S32)),
	NET_REFCOUNT(TAP_EV_NET_PROMISC, "promisc", "promisc"),
	NET_REFCOUNT(TAP_EV_NET_ALLMULTI, "allmulti", "allmulti"),
	RECORD(TAP_EV_NET_RX_MODE, "rx_mode", struct tap_net_rx_mode,
	       NETDEV(struct tap_net_rx_mode),
	       FIELD(struct tap_net_rx_mode, flags, TAP_FIELD_X32),
	       FIELD(struct tap_net_rx_mode, promisc, TAP_FIELD_U32),
	       FIELD(struct tap_net_rx_mode, allmulti, TAP_FIELD_U32),
	       FIELD(struct tap_net_rx_mode, uc, TAP_FIELD_S32),
	       FIELD(struct tap_net_rx_mode, mc, TAP_FIELD_S32),
	       FIELD(struct tap_net_rx_mode, uc_promisc, TAP_FIELD_S32)),
	NET_ADDR(TAP_EV_NET_UC_ADD, "uc_add"),
	NET_ADDR(TAP_EV_NET_UC_ADD_EXCL, "uc_add_excl"),
	NET_ADDR(TAP_EV_NET_UC_DEL, "uc_del"),
	NET_ADDR(TAP_EV_NET_MC_ADD, "mc_add"),
	NET_ADDR(TAP_EV_NET_MC_ADD_EXCL, "mc_add_excl"),
	NET_ADDR(TAP_EV_NET_MC_ADD_GLOBAL, "mc_add_global"),
	NET_ADDR(TAP_EV_NET_MC_DEL, "mc_del"),
	NET_ADDR(TAP_EV_NET_MC_DEL_GLOBAL, "mc_del_global"),
	RECORD(TAP_EV_NET_FEATURES, "features", struct tap_net_features,
	       NETDEV(struct tap_net_features),
	       FIELD(struct tap_net_features, features, TAP_FIELD_X64),
	       FIELD(struct tap_net_features, wanted, TAP_FIELD_X64),
	       FIELD(struct tap_net_features, hw, TAP_FIELD_X64),
	       FIELD(struct tap_net_features, ret, TAP_FIELD_S32)),
	NET_EVENT(TAP_EV_NET_ETHTOOL_NOTIFY, "ethtool_notify", NET_VALUE("msg", TAP_FIELD_U32)),
	NET_EVENT(TAP_EV_NET_ETHTOOL_NL_SET, "ethtool_nl_set", NET_VALUE("msg", TAP_FIELD_U32),
		  NET_RET),
	RECORD(TAP_EV_NET_ETHTOOL_NL_NODEV, "ethtool_nl_nodev", struct tap_net_nodev,
	       FIELD(struct tap_net_nodev, netns, TAP_FIELD_U32),
	       FIELD(struct tap_net_nodev, ret, TAP_FIELD_S32)),
	NET_EVENT(TAP_EV_NET_ETHTOOL_IOCTL, "ethtool_ioctl", NET_VALUE("cmd", TAP_FIELD_U32),
		  NET_RET),
	RECORD(TAP_EV_NET_TXQUEUELEN, "txqueuelen", struct tap_net_txqueuelen,
	       NETDEV(struct tap_net_txqueuelen),
	       FIELD(struct tap_net_txqueuelen, qlen, TAP_FIELD_U64),
	       FIELD(struct tap_net_txqueuelen, ret, TAP_FIELD_S32)),
	RECORD(TAP_EV_NET_RENAME, "rename", struct tap_net_rename, NETDEV(struct tap_net_rename),
	       STR(struct tap_net_rename, newname),
	       FIELD(struct tap_net_rename, ret, TAP_FIELD_S32)),
	RECORD(TAP_EV_NET_REGISTER, "register", struct tap_net_register,
	       NETDEV(struct tap_net_register), MAC(struct tap_net_register, addr),
	       STR(struct tap_net_register, driver), STR(struct tap_net_register, bus),
	       FIELD(struct tap_net_register, ret, TAP_FIELD_S32)),
	RECORD(TAP_EV_NET_REGISTER_NO_PARENT, "register", struct tap_net_register,
	       NETDEV(struct tap_net_register), MAC(struct tap_net_register, addr),
	       FIELD(struct tap_net_register, ret, TAP_FIELD_S32)),
	NET_EVENT(TAP_EV_NET_UNREGISTER, "unregister", NET_VALUE("queued", TAP_FIELD_S32)),
	NET_EVENT(TAP_EV_NET_CARRIER_ON, "carrier_on"),
	NET_EVENT(TAP_EV_NET_CARRIER_OFF, "carrier_off"),
	NET_VLAN(TAP_EV_NET_VLAN_ADD, "vlan_add"),
	NET_VLAN(TAP_EV_NET_VLAN_DEL, "vlan_del"),
	RECORD(TAP_EV_NET_RTNL_HINT, "rtnl_hint", struct tap_net_rtnl_hint,
	       FIELD(struct tap_net_rtnl_hint, netns, TAP_FIELD_U32),
	       FIELD(struct tap_net_rtnl_hint, group, TAP_FIELD_U32),
	       FIELD(struct tap_net_rtnl_hint, type, TAP_FIELD_U32)),
	RECORD(TAP_EV_NET_XMIT_TIMEOUT, "xmit_timeout", struct tap_net_xmit_timeout,
	       STR(struct tap_net_xmit_timeout, name), STR(struct tap_net_xmit_timeout, driver),
	       FIELD(struct tap_net_xmit_timeout, queue, TAP_FIELD_S32)),
};

#ifndef ARRAY_SIZE
#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#endif
#define FORMATS ARRAY_SIZE(formats)

const struct tap_record_format *tap_record_format(__u32 ev)
{
	size_t i;

	for (i = 0; i < FORMATS; i++)
		if (formats[i].ev == ev)
			return &formats[i];
	return NULL;
}

const struct tap_record_format *tap_record_format_named(const char *name)
{
	size_t i;

	for (i = 0; i < FORMATS; i++)
		if (!strcmp(formats[i].name, name))
			return &formats[i];
	return NULL;
}

const struct tap_record_format *tap_record_format_at(size_t i)
{
	return i < FORMATS ? &formats[i] : NULL;
}

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

/* At most a number or a substream, or the task's ids and time: well within text[]. */
static void put_format(struct tap_line *l, const char *format, ...)
{
	char text[128];
	va_list args;

	va_start(args, format);
	vsnprintf(text, sizeof(text), format, args);
	va_end(args);
	put_text(l, text);
}

/* A value of the record at offset, of its field's width (the record may be unaligned in a test). */
static void read_value(const unsigned char *record, size_t offset, void *value, size_t size)
{
	memcpy(value, record + offset, size);
}

static void put_field(struct tap_line *l, const struct tap_field *f, const unsigned char *record)
{
	struct tap_net_dev dev;
	struct tap_pcm pcm;
	unsigned char mac[6];
	__s32 s32;
	__u32 u32;
	__s64 s64;
	__u64 u64;

	switch (f->kind) {
	case TAP_FIELD_STR:
		put_token(l, (const char *)record + f->offset, f->size);
		break;
	case TAP_FIELD_S32:
		read_value(record, f->offset, &s32, sizeof(s32));
		put_format(l, "%d", s32);
		break;
	case TAP_FIELD_U32:
		read_value(record, f->offset, &u32, sizeof(u32));
		put_format(l, "%u", u32);
		break;
	case TAP_FIELD_X32:
		read_value(record, f->offset, &u32, sizeof(u32));
		put_format(l, "0x%x", u32);
		break;
	case TAP_FIELD_S64:
		read_value(record, f->offset, &s64, sizeof(s64));
		put_format(l, "%lld", (long long)s64);
		break;
	case TAP_FIELD_X64:
		read_value(record, f->offset, &u64, sizeof(u64));
		put_format(l, "0x%llx", (unsigned long long)u64);
		break;
	case TAP_FIELD_PCM:
		read_value(record, f->offset, &pcm, sizeof(pcm));
		put_format(l, "card=%d dev=%d stream=%d sub=%d", pcm.card, pcm.dev, pcm.stream,
			   pcm.sub);
		break;
	case TAP_FIELD_U64:
		read_value(record, f->offset, &u64, sizeof(u64));
		put_format(l, "%llu", (unsigned long long)u64);
		break;
	case TAP_FIELD_MAC:
		read_value(record, f->offset, mac, sizeof(mac));
		put_format(l, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3],
			   mac[4], mac[5]);
		break;
	case TAP_FIELD_NETDEV:
		read_value(record, f->offset, &dev, sizeof(dev));
		put_format(l, "ifindex=%d netns=%u name=", dev.ifindex, dev.netns);
		put_token(l, (const char *)record + f->offset + offsetof(struct tap_net_dev, name),
			  TAP_STR_LEN);
		break;
	default:
		break;
	}
}

bool tap_format_record(const void *data, size_t size, struct tap_line *l)
{
	const unsigned char *record = data;
	const struct tap_record_format *f;
	const struct tap_field *field;
	struct tap_head head;

	if (size < sizeof(head))
		return false;
	read_value(record, 0, &head, sizeof(head));
	f = tap_record_format(head.ev);
	if (!f || size < f->size)
		return false;
	l->len = 0;
	put_text(l, "ev=");
	put_text(l, f->name);
	for (field = f->fields; field->kind != TAP_FIELD_END; field++) {
		put_char(l, ' ');
		if (field->key) {
			put_text(l, field->key);
			put_char(l, '=');
		}
		put_field(l, field, record);
	}
	put_format(l, " kthread=%d pid=%u ts=%llu comm=", head.kthread ? 1 : 0, head.pid,
		   (unsigned long long)head.ts);
	put_comm(l, (const char *)record + f->comm, TAP_COMM_LEN);
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
