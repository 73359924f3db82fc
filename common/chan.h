/*
 * chan: framed messages over a libevent bufferevent (plain or TLS).
 *
 * The protocol code sees whole frames and a close reason, never sockets.
 * A chan owns its bufferevent. chan_close() never frees inside a
 * callback: it marks the chan closed, stops reading, and frees it from a
 * zero-timeout event after the current callback returns; on_close runs
 * exactly once, from that event, before the free. A frame larger than the
 * current limit, or a read timeout, closes the chan with a reason.
 */
#ifndef STRATA_CHAN_H
#define STRATA_CHAN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <event2/bufferevent.h>
#include <event2/event.h>
#include <jansson.h>
#include <openssl/ssl.h>

struct chan;

struct chan_cbs {
	/* A whole frame. payload is valid only during the call. */
	void (*on_message)(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
			   void *arg);
	/* Client chans: the connection (and TLS handshake) completed. TLS
	 * server chans get it too, when the handshake completes. */
	void (*on_connected)(struct chan *ch, void *arg);
	/* Output buffer drained below the low-water mark (see chan_set_drain). */
	void (*on_drain)(struct chan *ch, void *arg);
	/* Closed (by peer, error, timeout or chan_close); reason is human text. */
	void (*on_close)(struct chan *ch, const char *reason, void *arg);
};

/*
 * Wraps bev (ownership passes to the chan). peer is a short description
 * for log lines ("127.0.0.1:50312"). max_frame: payload limit in bytes.
 * Returns NULL when out of memory; bev has then been freed.
 */
struct chan *chan_new(struct event_base *base, struct bufferevent *bev, const char *peer,
		      uint32_t max_frame, const struct chan_cbs *cbs, void *arg);

void chan_set_max_frame(struct chan *ch, uint32_t max_frame);
/* No frame (or no progress on a frame) for this long closes the chan; 0 = off. */
void chan_set_timeout(struct chan *ch, int seconds);
/* on_drain fires when buffered output falls to at most low_water bytes. */
void chan_set_drain(struct chan *ch, size_t low_water);
void chan_set_arg(struct chan *ch, void *arg);
/* Stops or resumes reading frames (flow control); a closed chan stays stopped. */
void chan_set_reading(struct chan *ch, int on);

/* Queue one frame. Return 0, or -1 when the chan is closed. */
int chan_send(struct chan *ch, uint16_t type, const void *payload, size_t len);
/* Encodes obj compactly and sends it (obj is not stolen). */
int chan_send_json(struct chan *ch, uint16_t type, json_t *obj);
/* Sends MSG_ERROR {code, message}, flushes, then closes with that reason. */
void chan_send_error(struct chan *ch, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Bulk frame: the JSON header, '\n', then body. */
int chan_send_bulk(struct chan *ch, uint16_t type, json_t *hdr, const void *body, size_t body_len);

/*
 * Test hook (faultpoint.h): when this is the due pass of point, the
 * process is killed once the first half of body_len bytes of the frame
 * queued last has left the output buffer, so the peer sees a frame cut in
 * the middle. Inert unless STRATA_FAULTPOINT names point.
 */
void chan_faultpoint_midframe(struct chan *ch, const char *point, size_t body_len);

/* Bytes queued for output and not yet written. */
size_t chan_output_pending(const struct chan *ch);
/* Closes after pending output is flushed (or at once when nothing is pending). */
void chan_close(struct chan *ch, const char *reason);
int chan_is_closed(const struct chan *ch);
/* Whether the read timeout closed it (so on_close can tell a silent peer apart). */
bool chan_timed_out(const struct chan *ch);

const char *chan_peer(const struct chan *ch);
/* The TLS object of a TLS chan, else NULL. */
SSL *chan_ssl(const struct chan *ch);

#endif
