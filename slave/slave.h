/* The slave daemon's context, passed to every slave module. */
#ifndef STRATA_SLAVE_H
#define STRATA_SLAVE_H

#include "agentpki.h"
#include "daemon.h"

struct link;
struct push_server;
struct push_workers;

struct slave {
	struct daemon d;
	struct link *link; /* the connection to the master */
	struct agent_pki agent_pki; /* the agent CA and the push certificate */
	struct push_server *push;   /* in-process push server: workers = 1, or in a worker */
	struct push_workers *workers; /* main process with <push workers="N">, N >= 2 */
};

#endif
