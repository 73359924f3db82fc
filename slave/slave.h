/* The slave daemon's context, passed to every slave module. */
#ifndef STRATA_SLAVE_H
#define STRATA_SLAVE_H

#include "agentpki.h"
#include "daemon.h"

struct link;
struct push_server;

struct slave {
	struct daemon d;
	struct link *link; /* the connection to the master */
	struct agent_pki agent_pki; /* the agent CA and the push certificate */
	struct push_server *push;   /* NULL when <push port="0"/> */
};

#endif
