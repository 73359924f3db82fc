/*
 * aroute: which push server an agent connects to next, and when.
 *
 * An agent enrols with its slave (the origin: host and port of the
 * enrolment). On A_AUTH the slave may answer A_REDIRECT {address, port}:
 * the agent belongs to another push server (a distribution point, or the
 * slave's own push port under another name). The agent keeps that
 * assignment and connects there from then on. When an attempt at the
 * assigned push server fails before A_AUTH_OK, the next attempt goes to
 * the origin, which routes the agent again to a live push server of its
 * group; when an attempt at the origin fails, the next goes back to the
 * assigned one. A_REDIRECT is followed at once, but more than
 * AROUTE_REDIRECTS_MAX in a row without an A_AUTH_OK is a loop between
 * misconfigured servers and counts as a failed attempt.
 *
 * Pure functions over a small struct, so the daemon (conn.c) and the load
 * simulator (sim.c) share one rule and it is tested without sockets.
 */
#ifndef STRATA_AGENT_ROUTE_H
#define STRATA_AGENT_ROUTE_H

#include <stdbool.h>
#include <stdint.h>

#define AROUTE_REDIRECTS_MAX 5
/* After an established connection is lost: the first retry within 1..5 s,
 * so an agent whose push server stopped is routed again well within 30 s,
 * spread so the agents of one push server do not all arrive together. */
#define AROUTE_FIRST_RETRY_MIN 1
#define AROUTE_FIRST_RETRY_MAX 5

enum aroute_target {
	AROUTE_ORIGIN,	 /* the enrolment's host and port: the slave */
	AROUTE_ASSIGNED, /* the push server of the last A_REDIRECT */
};

struct aroute {
	bool assigned;	   /* an A_REDIRECT assigned a push server (the caller keeps its address) */
	bool fallback;	   /* the last attempt at the assigned one failed: try the origin */
	uint8_t redirects; /* A_REDIRECTs in a row without an A_AUTH_OK */
};

/* Where the next attempt goes. */
enum aroute_target aroute_target(const struct aroute *r);

enum aroute_redirect {
	AROUTE_FOLLOW, /* store the new push server and connect to it at once */
	AROUTE_LOOP,   /* too many in a row: a failed attempt (the count starts again) */
};
/* An A_REDIRECT arrived. */
enum aroute_redirect aroute_redirected(struct aroute *r);

/*
 * The attempt at target ended before A_AUTH_OK (refused, TLS failure,
 * closed or refused during authentication, or a redirect loop).
 */
void aroute_failed(struct aroute *r, enum aroute_target target);

/*
 * A_AUTH_OK from target. true: the origin took the agent itself, so the
 * stored assignment is stale and the caller forgets it.
 */
bool aroute_authed(struct aroute *r, enum aroute_target target);

/*
 * Seconds before the next attempt after a failure or a lost connection,
 * given the previous delay (0 after an A_AUTH_OK or a completed poll):
 * first AROUTE_FIRST_RETRY_MIN..MAX chosen by the random value rnd, then
 * doubling up to retry_max (cadence_backoff); never above cap, at least 1.
 */
int aroute_retry_delay(int previous, int retry_max, int cap, uint32_t rnd);

#endif
