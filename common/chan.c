#include "chan.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>

#include "faultpoint.h"
#include "frame.h"
#include "log.h"
#include "proto.h"

/* How long a closing chan may spend flushing output to a peer that does
 * not read before it is dropped anyway. */
#define CHAN_FLUSH_CAP_SEC 5
/* Longest peer description and close reason kept (as before, when both
 * were fixed arrays of 96 and 256 bytes). */
#define CHAN_PEER_MAX	95
#define CHAN_REASON_MAX 255

/*
 * What only a closing chan needs, allocated by chan_close(): a push server
 * holds tens of thousands of idle chans, and every byte here would
 * otherwise be paid by each of them.
 */
struct chan_closing {
	/* Caps the time spent flushing after chan_close(); NULL when nothing
	 * was pending. */
	struct event *flush_cap;
	/* Watch the output buffers while flushing before the free. */
	struct evbuffer_cb_entry *flush_watch;
	struct evbuffer_cb_entry *flush_watch_under;
	char reason[];
};

/* The reason on_close gets when chan_close() could not allocate its record. */
static const char chan_reason_oom[] = "closed (out of memory recording the reason)";

struct chan {
	struct bufferevent *bev;
	struct chan_cbs cbs;
	void *arg;
	/* Frees the chan from the loop, never from inside a callback. Made by
	 * chan_new() so that closing never depends on an allocation. */
	struct event *reaper;
	struct chan_closing *closing;
	uint32_t max_frame;
	int timeout_sec;
	bool drain_set;
	bool closed;
	bool timed_out; /* closed by the read timeout */
	bool reaping;
	char peer[];
};

static const char *chan_reason(const struct chan *ch)
{
	return ch->closing ? ch->closing->reason : chan_reason_oom;
}

static void chan_schedule_free(struct chan *ch)
{
	static const struct timeval now = { 0, 0 };
	if (ch->reaping)
		return;
	ch->reaping = true;
	if (ch->closing && ch->closing->flush_cap)
		event_del(ch->closing->flush_cap);
	event_add(ch->reaper, &now);
}

static void chan_reap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chan *ch = arg;
	struct chan_closing *cl = ch->closing;
	if (ch->cbs.on_close)
		ch->cbs.on_close(ch, chan_reason(ch), ch->arg);
	if (cl && cl->flush_watch)
		evbuffer_remove_cb_entry(bufferevent_get_output(ch->bev), cl->flush_watch);
	if (cl && cl->flush_watch_under) {
		struct bufferevent *under = bufferevent_get_underlying(ch->bev);
		if (under)
			evbuffer_remove_cb_entry(bufferevent_get_output(under),
						 cl->flush_watch_under);
	}
	bufferevent_free(ch->bev);
	event_free(ch->reaper);
	if (cl && cl->flush_cap)
		event_free(cl->flush_cap);
	free(cl);
	free(ch);
}

static void chan_flush_cap_cb(evutil_socket_t fd, short what, void *arg)
{
	struct chan *ch = arg;
	log_debug("%s: output not flushed within %d s of close", ch->peer, CHAN_FLUSH_CAP_SEC);
	chan_schedule_free(ch);
}

struct chan_midframe {
	const char *point;
	size_t drained, target;
};

static void chan_midframe_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
	struct chan_midframe *mf = arg;
	mf->drained += info->n_deleted;
	if (mf->drained >= mf->target)
		faultpoint_kill(mf->point);
}

void chan_faultpoint_midframe(struct chan *ch, const char *point, size_t body_len)
{
	if (!faultpoint_armed || ch->closed || !faultpoint_due(point))
		return;
	struct evbuffer *out = bufferevent_get_output(ch->bev);
	struct chan_midframe *mf = malloc(sizeof(*mf));
	if (!mf)
		faultpoint_kill(point);
	/* Everything queued before this frame, then half of its body. */
	size_t queued = evbuffer_get_length(out);
	*mf = (struct chan_midframe){ point, 0, queued - body_len + body_len / 2 };
	if (mf->target == 0 || !evbuffer_add_cb(out, chan_midframe_cb, mf))
		faultpoint_kill(point);
	log_debug("%s: %s armed: killed after %zu bytes leave the output buffer", ch->peer, point,
		  mf->target);
}

size_t chan_output_pending(const struct chan *ch)
{
	size_t n = evbuffer_get_length(bufferevent_get_output(ch->bev));
	/* A TLS filter keeps encrypted bytes in the bufferevent underneath. */
	struct bufferevent *under = bufferevent_get_underlying(ch->bev);
	if (under)
		n += evbuffer_get_length(bufferevent_get_output(under));
	return n;
}

static void chan_flush_watch_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
				void *arg)
{
	struct chan *ch = arg;
	if (chan_output_pending(ch) == 0)
		chan_schedule_free(ch);
}

void chan_close(struct chan *ch, const char *reason)
{
	if (ch->closed)
		return;
	ch->closed = true;
	if (!reason)
		reason = "closed";
	size_t rlen = strlen(reason);
	/* on_close and log lines never needed more than this. */
	if (rlen > CHAN_REASON_MAX)
		rlen = CHAN_REASON_MAX;
	struct chan_closing *cl = malloc(sizeof(*cl) + rlen + 1);
	if (cl) {
		*cl = (struct chan_closing){ 0 };
		memcpy(cl->reason, reason, rlen);
		cl->reason[rlen] = '\0';
		ch->closing = cl;
	}
	log_debug("%s: closing: %s", ch->peer, chan_reason(ch));
	bufferevent_disable(ch->bev, EV_READ);
	bufferevent_set_timeouts(ch->bev, NULL, NULL);
	if (!cl || chan_output_pending(ch) == 0) {
		chan_schedule_free(ch);
		return;
	}
	struct timeval cap = { CHAN_FLUSH_CAP_SEC, 0 };
	cl->flush_cap = evtimer_new(bufferevent_get_base(ch->bev), chan_flush_cap_cb, ch);
	cl->flush_watch = evbuffer_add_cb(bufferevent_get_output(ch->bev), chan_flush_watch_cb, ch);
	struct bufferevent *under = bufferevent_get_underlying(ch->bev);
	if (under)
		cl->flush_watch_under =
		    evbuffer_add_cb(bufferevent_get_output(under), chan_flush_watch_cb, ch);
	if (!cl->flush_cap || !cl->flush_watch || (under && !cl->flush_watch_under) ||
	    event_add(cl->flush_cap, &cap) != 0) {
		chan_schedule_free(ch);
		return;
	}
	bufferevent_enable(ch->bev, EV_WRITE);
}

static void chan_read_cb(struct bufferevent *bev, void *arg)
{
	struct chan *ch = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	while (!ch->closed) {
		uint8_t hdr[FRAME_HEADER_LEN];
		size_t avail = evbuffer_get_length(in);
		ev_ssize_t got =
		    evbuffer_copyout(in, hdr, avail < sizeof(hdr) ? avail : sizeof(hdr));
		if (got < 0)
			break;
		uint16_t type = 0;
		uint32_t plen = 0;
		if (frame_peek(hdr, (size_t)got, ch->max_frame, &type, &plen) == FRAME_TOO_BIG) {
			char why[128];
			snprintf(why, sizeof(why), "frame of %u bytes exceeds the limit of %u",
				 plen, ch->max_frame);
			chan_close(ch, why);
			return;
		}
		/* Only the header was copied out, so NEED_MORE is judged against avail. */
		if (got < FRAME_HEADER_LEN)
			break;
		size_t total = FRAME_HEADER_LEN + (size_t)plen;
		if (avail < total)
			break;
		const uint8_t *frame = evbuffer_pullup(in, (ev_ssize_t)total);
		if (!frame) {
			chan_close(ch, "out of memory reading a frame");
			return;
		}
		if (ch->cbs.on_message)
			ch->cbs.on_message(ch, type, frame + FRAME_HEADER_LEN, plen, ch->arg);
		/* The chan outlives a chan_close() made in the callback, so this is safe. */
		evbuffer_drain(in, total);
	}
}

static void chan_write_cb(struct bufferevent *bev, void *arg)
{
	struct chan *ch = arg;
	if (!ch->closed && ch->drain_set && ch->cbs.on_drain)
		ch->cbs.on_drain(ch, ch->arg);
}

/* The text of a connection error: OpenSSL's queue for TLS, else errno. */
static void chan_error_text(struct chan *ch, char *buf, size_t len)
{
	int saved = EVUTIL_SOCKET_ERROR();
	size_t used = 0;
	buf[0] = '\0';
	if (bufferevent_openssl_get_ssl(ch->bev)) {
		unsigned long e;
		while ((e = bufferevent_get_openssl_error(ch->bev)) != 0) {
			/* libevent also queues SSL_get_error() codes, which have no library. */
			if (ERR_GET_LIB(e) == 0 || used + 2 >= len)
				continue;
			if (used > 0)
				used += (size_t)snprintf(buf + used, len - used, "; ");
			ERR_error_string_n(e, buf + used, len - used);
			used = strlen(buf);
		}
		/* "certificate verify failed" alone does not say what was wrong with it. */
		SSL *ssl = bufferevent_openssl_get_ssl(ch->bev);
		long vr = SSL_get_verify_result(ssl);
		if (used > 0 && vr != X509_V_OK && used + 2 < len) {
			snprintf(buf + used, len - used, ": %s", X509_verify_cert_error_string(vr));
			used = strlen(buf);
		}
	}
	if (used > 0)
		return;
	if (saved != 0)
		snprintf(buf, len, "%s", evutil_socket_error_to_string(saved));
	else
		snprintf(buf, len, "connection closed by peer");
}

static void chan_event_cb(struct bufferevent *bev, short what, void *arg)
{
	struct chan *ch = arg;
	if (ch->closed) {
		/* The peer went away while we flushed: nothing more can be written. */
		if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR))
			chan_schedule_free(ch);
		return;
	}
	if (what & BEV_EVENT_CONNECTED) {
		if (ch->cbs.on_connected)
			ch->cbs.on_connected(ch, ch->arg);
		return;
	}
	char why[256];
	if (what & BEV_EVENT_ERROR) {
		chan_error_text(ch, why, sizeof(why));
	} else if (what & BEV_EVENT_EOF) {
		snprintf(why, sizeof(why), "connection closed by peer");
	} else if (what & BEV_EVENT_TIMEOUT) {
		snprintf(why, sizeof(why), "no data for %d s", ch->timeout_sec);
		ch->timed_out = true;
	} else {
		return;
	}
	chan_close(ch, why);
	/* After an error the connection cannot carry the pending output. */
	if (what & BEV_EVENT_ERROR)
		chan_schedule_free(ch);
}

struct chan *chan_new(struct event_base *base, struct bufferevent *bev, const char *peer,
		      uint32_t max_frame, const struct chan_cbs *cbs, void *arg)
{
	if (!peer)
		peer = "?";
	size_t plen = strlen(peer);
	if (plen > CHAN_PEER_MAX)
		plen = CHAN_PEER_MAX;
	/* The peer text is stored inline at its own length: most are "a.b.c.d:port". */
	struct chan *ch = calloc(1, sizeof(*ch) + plen + 1);
	if (!ch)
		goto fail;
	ch->bev = bev;
	ch->max_frame = max_frame;
	ch->cbs = *cbs;
	ch->arg = arg;
	memcpy(ch->peer, peer, plen);
	ch->peer[plen] = '\0';
	ch->reaper = evtimer_new(base, chan_reap_cb, ch);
	if (!ch->reaper)
		goto fail;
	bufferevent_setcb(bev, chan_read_cb, chan_write_cb, chan_event_cb, ch);
	if (bufferevent_enable(bev, EV_READ | EV_WRITE) != 0)
		goto fail;
	return ch;
fail:
	if (ch) {
		if (ch->reaper)
			event_free(ch->reaper);
		free(ch);
	}
	bufferevent_free(bev);
	return NULL;
}

void chan_set_max_frame(struct chan *ch, uint32_t max_frame)
{
	ch->max_frame = max_frame;
}

void chan_set_timeout(struct chan *ch, int seconds)
{
	struct timeval tv = { seconds, 0 };
	ch->timeout_sec = seconds > 0 ? seconds : 0;
	if (ch->closed)
		return;
	bufferevent_set_timeouts(ch->bev, seconds > 0 ? &tv : NULL, NULL);
}

void chan_set_drain(struct chan *ch, size_t low_water)
{
	ch->drain_set = true;
	if (!ch->closed)
		bufferevent_setwatermark(ch->bev, EV_WRITE, low_water, 0);
}

void chan_set_arg(struct chan *ch, void *arg)
{
	ch->arg = arg;
}

void chan_set_reading(struct chan *ch, int on)
{
	if (ch->closed)
		return;
	if (on)
		bufferevent_enable(ch->bev, EV_READ);
	else
		bufferevent_disable(ch->bev, EV_READ);
}

/* Appends one frame whose payload is the concatenation of parts. */
static int chan_send_parts(struct chan *ch, uint16_t type, const void *const *part,
			   const size_t *part_len, size_t nparts)
{
	if (ch->closed)
		return -1;
	size_t len = 0;
	for (size_t i = 0; i < nparts; i++)
		len += part_len[i];
	if (len > UINT32_MAX) {
		chan_close(ch, "outgoing frame larger than 4 GiB");
		return -1;
	}
	uint8_t hdr[FRAME_HEADER_LEN];
	frame_header_encode(hdr, type, (uint32_t)len);
	struct evbuffer *out = bufferevent_get_output(ch->bev);
	/* Reserve first so that a half-queued frame can never reach the peer. */
	if (evbuffer_expand(out, sizeof(hdr) + len) != 0 ||
	    evbuffer_add(out, hdr, sizeof(hdr)) != 0) {
		chan_close(ch, "out of memory queueing a frame");
		return -1;
	}
	for (size_t i = 0; i < nparts; i++) {
		if (part_len[i] > 0 && evbuffer_add(out, part[i], part_len[i]) != 0) {
			chan_close(ch, "out of memory queueing a frame");
			return -1;
		}
	}
	return 0;
}

int chan_send(struct chan *ch, uint16_t type, const void *payload, size_t len)
{
	const void *part[] = { payload };
	size_t part_len[] = { len };
	return chan_send_parts(ch, type, part, part_len, 1);
}

int chan_send_json(struct chan *ch, uint16_t type, json_t *obj)
{
	if (ch->closed || !obj)
		return -1;
	char *text = json_dumps(obj, JSON_COMPACT);
	if (!text)
		return -1;
	int rc = chan_send(ch, type, text, strlen(text));
	free(text);
	return rc;
}

int chan_send_bulk(struct chan *ch, uint16_t type, json_t *hdr, const void *body, size_t body_len)
{
	if (ch->closed || !hdr)
		return -1;
	/* Compact output escapes newlines in strings, so the first '\n' ends it. */
	char *text = json_dumps(hdr, JSON_COMPACT);
	if (!text)
		return -1;
	const void *part[] = { text, "\n", body };
	size_t part_len[] = { strlen(text), 1, body_len };
	int rc = chan_send_parts(ch, type, part, part_len, 3);
	free(text);
	return rc;
}

void chan_send_error(struct chan *ch, const char *code, const char *fmt, ...)
{
	if (ch->closed)
		return;
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *o = json_pack("{s:s, s:s}", "code", code, "message", msg);
	if (o) {
		chan_send_json(ch, MSG_ERROR, o);
		json_decref(o);
	}
	chan_close(ch, msg);
}

bool chan_timed_out(const struct chan *ch)
{
	return ch->timed_out;
}

int chan_is_closed(const struct chan *ch)
{
	return ch->closed;
}

const char *chan_peer(const struct chan *ch)
{
	return ch->peer;
}

SSL *chan_ssl(const struct chan *ch)
{
	return bufferevent_openssl_get_ssl(ch->bev);
}
