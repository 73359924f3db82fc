/* The master daemon's context, passed to every master module. */
#ifndef STRATA_MASTER_H
#define STRATA_MASTER_H

#include <sys/queue.h>

#include <event2/listener.h>

#include "daemon.h"
#include "pki.h"

struct session;

struct master {
	struct daemon d;
	struct master_pki pki;
	struct evconnlistener *listener;
	TAILQ_HEAD(session_list, session) sessions;
	int nsessions;
};

#endif
