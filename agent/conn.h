/*
 * aconn: the agent's connection to its slave's push server.
 *
 * One state machine (aconn_state) drives both modes. Push mode keeps the
 * connection open, heartbeats on the interval from A_AUTH_OK until a
 * policy it applies names another (settings.heartbeat), and reconnects
 * with backoff when it drops (1 to 5 s at random, then doubling to 60 s).
 * It connects to the push server the slave assigned with A_REDIRECT, or
 * to the slave it enrolled with (route.h). Poll mode connects every poll
 * interval, sends what is queued, takes its commands, says A_BYE when
 * nothing is outstanding and leaves after A_BYE_OK and the acks. Events
 * and task results go through the durable queue (queue.h) first and are
 * resent on every connection until acknowledged.
 */
#ifndef STRATA_AGENT_CONN_H
#define STRATA_AGENT_CONN_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/event.h>
#include <openssl/ssl.h>

#include "chan.h"

#define ACONN_FRAME_PREAUTH	(64 * 1024)
#define ACONN_FRAME_MAX		(16 * 1024 * 1024)
/* Seconds until A_AUTH_OK (or A_ENROL_OK): short, so an agent whose push
 * server vanished without a reset is back on another within 30 s. */
#define ACONN_HANDSHAKE_TIMEOUT 10
#define ACONN_POLL_TIMEOUT	60 /* seconds of silence that end a poll session */
#define ACONN_RETRY_MAX		60

/*
 * Opens a TLS client chan to host:port; with check_host the server's
 * certificate must name host. The chan reports on_connected after the
 * handshake. NULL with err when it cannot even start.
 */
struct chan *aconn_dial(struct event_base *base, SSL_CTX *ctx, const char *host, int port,
			bool check_host, const struct chan_cbs *cbs, void *arg, char *err,
			size_t errlen);

struct aconn_opts {
	const char *state_dir; /* borrowed for the aconn's lifetime */
	int poll_interval;     /* seconds between polls in poll mode */
	const char *scan_root; /* when set, scan tasks may only walk below it */
};

struct aconn;

/* Loads the identity and the queue; NULL with err when the agent is not enrolled. */
struct aconn *aconn_new(struct event_base *base, const struct aconn_opts *o, char *err,
			size_t errlen);
/* Connects now (later attempts are scheduled by the aconn itself). */
void aconn_start(struct aconn *c);
/* Closes the connection; the event loop is asked to exit once it is closed. */
void aconn_stop(struct aconn *c);
/* Frees c; an open connection is closed on the loop's next pass. */
void aconn_free(struct aconn *c);

/* For tests: the number of messages waiting for an ack. */
size_t aconn_queued(const struct aconn *c);

#endif
