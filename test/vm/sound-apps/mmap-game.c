// SPDX-License-Identifier: GPL-2.0-only
/*
 * mmap-game: the sound class's "game": plays a WAV file (PCM S16_LE) through
 * alsa-lib's mmap interface (SND_PCM_ACCESS_MMAP_INTERLEAVED,
 * snd_pcm_mmap_begin/commit) the way a game's audio thread does, recovers
 * from -EPIPE/-ESTRPIPE with snd_pcm_recover, and changes a mixer element's
 * volume mid-run through alsa-lib's mixer API.
 *
 *   mmap-game -D DEVICE -f SOURCE.wav [-c CTL -e ELEMENT -v PERCENT -t MS]
 *
 * -c/-e/-v/-t: when the source position written reaches MS milliseconds,
 * set the playback volume of simple element ELEMENT (index 0) of mixer CTL
 * (e.g. hw:0) to PERCENT of its range, all channels.
 * Prints one line per event ("GAME ..."), exits 0 when the whole source has
 * been written and drained, 1 on an unrecoverable error, 2 on bad usage.
 */
#include <alsa/asoundlib.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct source {
	unsigned int rate, channels;
	int16_t *frames;
	snd_pcm_uframes_t count;
};

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static double t0;
#define say(...) do { printf("GAME %.0f ", now_ms() - t0); printf(__VA_ARGS__); putchar('\n'); fflush(stdout); } while (0)

static uint32_t le32(const unsigned char *p) { return p[0] | p[1] << 8 | p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t le16(const unsigned char *p) { return p[0] | p[1] << 8; }

static int read_source(const char *path, struct source *src)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf;
	long size, off = 12;
	int have_fmt = 0;

	if (!f) { perror(path); return -1; }
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	buf = malloc(size);
	if (!buf || fread(buf, 1, size, f) != (size_t)size) { fprintf(stderr, "%s: read failed\n", path); fclose(f); return -1; }
	fclose(f);
	if (size < 12 || memcmp(buf, "RIFF", 4) || memcmp(buf + 8, "WAVE", 4)) { fprintf(stderr, "%s: not a WAV file\n", path); return -1; }
	while (off + 8 <= size) {
		uint32_t len = le32(buf + off + 4);
		const unsigned char *body = buf + off + 8;

		if (!memcmp(buf + off, "fmt ", 4) && len >= 16) {
			if (le16(body) != 1 || le16(body + 14) != 16) { fprintf(stderr, "%s: not PCM S16\n", path); return -1; }
			src->channels = le16(body + 2);
			src->rate = le32(body + 4);
			have_fmt = 1;
		} else if (!memcmp(buf + off, "data", 4) && have_fmt) {
			if (len == 0 || len > size - off - 8)
				len = size - off - 8;
			src->count = len / (2 * src->channels);
			src->frames = (int16_t *)body; /* x86: little endian, and body is 2-aligned in a RIFF file */
			return 0;
		}
		off += 8 + len + (len & 1);
	}
	fprintf(stderr, "%s: no fmt or data chunk\n", path);
	return -1;
}

static int set_volume(const char *ctl, const char *name, long percent)
{
	snd_mixer_t *mixer;
	snd_mixer_selem_id_t *sid;
	snd_mixer_elem_t *elem;
	long min, max, value, got = 0, db = 0;
	int err;

	if ((err = snd_mixer_open(&mixer, 0)) < 0 ||
	    (err = snd_mixer_attach(mixer, ctl)) < 0 ||
	    (err = snd_mixer_selem_register(mixer, NULL, NULL)) < 0 ||
	    (err = snd_mixer_load(mixer)) < 0) {
		say("mixer %s open failed: %s", ctl, snd_strerror(err));
		return err;
	}
	snd_mixer_selem_id_alloca(&sid);
	snd_mixer_selem_id_set_index(sid, 0);
	snd_mixer_selem_id_set_name(sid, name);
	elem = snd_mixer_find_selem(mixer, sid);
	if (!elem || !snd_mixer_selem_has_playback_volume(elem)) {
		say("mixer %s has no playback volume %s", ctl, name);
		snd_mixer_close(mixer);
		return -ENOENT;
	}
	snd_mixer_selem_get_playback_volume_range(elem, &min, &max);
	value = min + (max - min) * percent / 100;
	err = snd_mixer_selem_set_playback_volume_all(elem, value);
	if (err >= 0) {
		snd_mixer_selem_get_playback_volume(elem, SND_MIXER_SCHN_FRONT_LEFT, &got);
		if (snd_mixer_selem_get_playback_dB(elem, SND_MIXER_SCHN_FRONT_LEFT, &db) < 0)
			db = 0;
	}
	say("mixer %s %s set to %ld (range %ld..%ld, %.2f dB): %s", ctl, name, got, min, max, db / 100.0,
	    err < 0 ? snd_strerror(err) : "ok");
	snd_mixer_close(mixer);
	return err;
}

static int recover(snd_pcm_t *pcm, int err, const char *where, unsigned long *recoveries, snd_pcm_uframes_t pos)
{
	int r;

	say("error %s at frame %lu in %s", snd_strerror(err), (unsigned long)pos, where);
	r = snd_pcm_recover(pcm, err, 1);
	if (r < 0) {
		say("unrecoverable: %s", snd_strerror(r));
		return r;
	}
	(*recoveries)++;
	say("recovered (%lu)", *recoveries);
	return 0;
}

/* Writes `left` frames of silence after the last frame written (mmap), recovering as the main loop does. */
static int pad_silence(snd_pcm_t *pcm, snd_pcm_uframes_t left, unsigned long *recoveries, snd_pcm_uframes_t pos)
{
	while (left > 0) {
		const snd_pcm_channel_area_t *areas;
		snd_pcm_uframes_t offset, frames = left;
		snd_pcm_sframes_t committed;
		snd_pcm_sframes_t avail = snd_pcm_avail_update(pcm);
		int err;

		if (avail == 0 && snd_pcm_state(pcm) == SND_PCM_STATE_PREPARED) {
			/* A full ring not started yet: start it, as the main loop does. */
			if ((err = snd_pcm_start(pcm)) < 0 && recover(pcm, err, "pad start", recoveries, pos) < 0)
				return -1;
			continue;
		}
		if (avail <= 0) {
			err = avail < 0 ? (int)avail : snd_pcm_wait(pcm, 1000);
			if (err < 0 && recover(pcm, err, "pad", recoveries, pos) < 0)
				return -1;
			continue;
		}
		err = snd_pcm_mmap_begin(pcm, &areas, &offset, &frames);
		if (err < 0) {
			if (recover(pcm, err, "pad mmap_begin", recoveries, pos) < 0)
				return -1;
			continue;
		}
		snd_pcm_areas_silence(areas, offset, areas[0].step / 16, frames, SND_PCM_FORMAT_S16_LE);
		committed = snd_pcm_mmap_commit(pcm, offset, frames);
		if (committed < 0 || (snd_pcm_uframes_t)committed != frames) {
			if (recover(pcm, committed < 0 ? (int)committed : -EPIPE, "pad mmap_commit", recoveries, pos) < 0)
				return -1;
			continue;
		}
		left -= frames;
	}
	return 0;
}

int main(int argc, char **argv)
{
	const char *device = "default", *file = NULL, *ctl = NULL, *elem = NULL;
	long percent = -1, at_ms = -1;
	struct source src = { 0 };
	snd_pcm_t *pcm;
	snd_pcm_hw_params_t *hw;
	snd_pcm_sw_params_t *sw;
	snd_pcm_uframes_t pos = 0, at_frame = 0, buffer_size, period_size;
	unsigned int buffer_us = 500000, period_us = 50000;
	unsigned long recoveries = 0;
	int opt, err, mixer_done = 0;

	t0 = now_ms();
	while ((opt = getopt(argc, argv, "D:f:c:e:v:t:")) != -1) {
		switch (opt) {
		case 'D': device = optarg; break;
		case 'f': file = optarg; break;
		case 'c': ctl = optarg; break;
		case 'e': elem = optarg; break;
		case 'v': percent = strtol(optarg, NULL, 10); break;
		case 't': at_ms = strtol(optarg, NULL, 10); break;
		default: file = NULL; optind = argc; break;
		}
	}
	if (!file || (ctl || elem || percent >= 0 || at_ms >= 0) != (ctl && elem && percent >= 0 && at_ms >= 0)) {
		fprintf(stderr, "usage: mmap-game -D DEVICE -f SOURCE.wav [-c CTL -e ELEMENT -v PERCENT -t MS]\n");
		return 2;
	}
	if (read_source(file, &src) < 0)
		return 1;
	at_frame = (snd_pcm_uframes_t)at_ms * src.rate / 1000;

	if ((err = snd_pcm_open(&pcm, device, SND_PCM_STREAM_PLAYBACK, 0)) < 0) {
		say("open %s failed: %s", device, snd_strerror(err));
		return 1;
	}
	snd_pcm_hw_params_alloca(&hw);
	snd_pcm_sw_params_alloca(&sw);
	if ((err = snd_pcm_hw_params_any(pcm, hw)) < 0 ||
	    (err = snd_pcm_hw_params_set_access(pcm, hw, SND_PCM_ACCESS_MMAP_INTERLEAVED)) < 0 ||
	    (err = snd_pcm_hw_params_set_format(pcm, hw, SND_PCM_FORMAT_S16_LE)) < 0 ||
	    (err = snd_pcm_hw_params_set_channels(pcm, hw, src.channels)) < 0 ||
	    (err = snd_pcm_hw_params_set_rate(pcm, hw, src.rate, 0)) < 0 ||
	    (err = snd_pcm_hw_params_set_buffer_time_near(pcm, hw, &buffer_us, NULL)) < 0 ||
	    (err = snd_pcm_hw_params_set_period_time_near(pcm, hw, &period_us, NULL)) < 0 ||
	    (err = snd_pcm_hw_params(pcm, hw)) < 0) {
		say("hw_params failed: %s", snd_strerror(err));
		return 1;
	}
	snd_pcm_get_params(pcm, &buffer_size, &period_size);
	if ((err = snd_pcm_sw_params_current(pcm, sw)) < 0 ||
	    (err = snd_pcm_sw_params_set_start_threshold(pcm, sw, buffer_size - period_size)) < 0 ||
	    (err = snd_pcm_sw_params_set_avail_min(pcm, sw, period_size)) < 0 ||
	    (err = snd_pcm_sw_params(pcm, sw)) < 0) {
		say("sw_params failed: %s", snd_strerror(err));
		return 1;
	}
	say("start device %s rate %u channels %u frames %lu buffer %lu period %lu", device, src.rate, src.channels,
	    (unsigned long)src.count, (unsigned long)buffer_size, (unsigned long)period_size);

	while (pos < src.count) {
		const snd_pcm_channel_area_t *areas;
		snd_pcm_uframes_t offset, frames;
		snd_pcm_sframes_t avail, committed;

		if (ctl && !mixer_done && pos >= at_frame) {
			mixer_done = 1;
			if (set_volume(ctl, elem, percent) < 0)
				return 1;
		}
		avail = snd_pcm_avail_update(pcm);
		if (avail < 0) {
			if (recover(pcm, (int)avail, "avail_update", &recoveries, pos) < 0)
				return 1;
			continue;
		}
		if ((snd_pcm_uframes_t)avail < period_size) {
			if (snd_pcm_state(pcm) == SND_PCM_STATE_PREPARED) {
				/* Less than a period of room and not started: start it (short sources). */
				if ((err = snd_pcm_start(pcm)) < 0 && recover(pcm, err, "start", &recoveries, pos) < 0)
					return 1;
				continue;
			}
			err = snd_pcm_wait(pcm, 1000);
			if (err < 0 && recover(pcm, err, "wait", &recoveries, pos) < 0)
				return 1;
			continue;
		}
		frames = period_size;
		if (frames > src.count - pos)
			frames = src.count - pos;
		err = snd_pcm_mmap_begin(pcm, &areas, &offset, &frames);
		if (err < 0) {
			if (recover(pcm, err, "mmap_begin", &recoveries, pos) < 0)
				return 1;
			continue;
		}
		/* Interleaved S16: one area base for all channels, step = channels * 16 bits. */
		memcpy((char *)areas[0].addr + (areas[0].first + offset * areas[0].step) / 8,
		       src.frames + pos * src.channels, frames * src.channels * 2);
		committed = snd_pcm_mmap_commit(pcm, offset, frames);
		if (committed < 0 || (snd_pcm_uframes_t)committed != frames) {
			if (recover(pcm, committed < 0 ? (int)committed : -EPIPE, "mmap_commit", &recoveries, pos) < 0)
				return 1;
			continue;
		}
		pos += frames;
	}
	/*
	 * Silence to the end of the last period, as aplay pads its last chunk:
	 * the stream stops at a period's interrupt, and the ring past the last
	 * frame written still holds audio of a lap before, which would play.
	 */
	if (pad_silence(pcm, (period_size - pos % period_size) % period_size, &recoveries, pos) < 0)
		return 1;
	if (snd_pcm_state(pcm) == SND_PCM_STATE_PREPARED && (err = snd_pcm_start(pcm)) < 0) {
		say("start failed: %s", snd_strerror(err));
		return 1;
	}
	err = snd_pcm_drain(pcm);
	if (err < 0) {
		say("drain failed: %s", snd_strerror(err));
		return 1;
	}
	snd_pcm_close(pcm);
	say("done frames %lu recoveries %lu", (unsigned long)pos, recoveries);
	return 0;
}
