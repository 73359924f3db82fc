/* The master daemon's context, passed to every master module. */
#ifndef STRATA_MASTER_H
#define STRATA_MASTER_H

#include <sys/queue.h>

#include <event2/listener.h>

#include "daemon.h"
#include "pki.h"

struct session;
struct tally;

struct master {
	struct daemon d;
	struct master_pki pki;
	struct evconnlistener *listener;
	TAILQ_HEAD(session_list, session) sessions;
	int nsessions;
	/* One line per 10 s, not one per connection, for what a flood brings. */
	struct tally *preauth_cut; /* silent before HELLO or enrolment */
	struct tally *refused;	   /* over max-sessions */
};

#endif
