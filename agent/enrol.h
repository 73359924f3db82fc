/*
 * aenrol: the one-time enrolment with a slave's push server. The token
 * pins the server's agent CA; the agent makes its Ed25519 key, sends
 * A_ENROL and stores its identity (state.h) from A_ENROL_OK.
 */
#ifndef STRATA_AGENT_ENROL_H
#define STRATA_AGENT_ENROL_H

#include <stddef.h>

#include <event2/event.h>

struct aenrol_opts {
	const char *state_dir, *host;
	int port;
	const char *token, *mode;
	const char *hostname; /* NULL: gethostname() */
};

/* Runs the event loop until enrolment succeeded (0) or failed (-1, err says why). */
int aenrol_run(struct event_base *base, const struct aenrol_opts *o, char *err, size_t errlen);

#endif
