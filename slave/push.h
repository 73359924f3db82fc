/*
 * push: the slave's push server for agents (agentproto.h), a TLS 1.3
 * listener on <push address port> in the daemon's event loop.
 *
 * Each connection has its own state (pre-auth, authenticating, authed,
 * closing) and refers to the server only through its struct push_server,
 * never to globals, so the connection code runs in worker processes that
 * share the port with SO_REUSEPORT. Each server finds a connection by
 * endpoint id in a hash table.
 *
 * Nothing an agent does costs a commit of its own. The key lookup of
 * A_AUTH is one read; the agents that proved their key wait up to 20 ms
 * for a batch that writes all their statuses and 'status' events in one
 * transaction, then get A_AUTH_OK and their waiting commands (one more
 * statement). Command acknowledgements are written in the same batches.
 * Heartbeats only touch memory; a 1 s timer writes every changed
 * last_seen in one statement.
 *
 * An agent's heartbeat interval is the policies' "heartbeat" when one sets
 * it, else server.xml's <push heartbeat>; A_AUTH_OK and every A_POLICY
 * announce it, and each endpoint row keeps the one it was last told. A
 * connection silent for 3 of its intervals (+5 s) is closed, and a sweep
 * marks online endpoints silent for 3 of their own intervals offline. The
 * sweep runs again after the shortest interval of any online endpoint,
 * server.xml's at most, and sooner when an agent is given a shorter one:
 * so an endpoint goes offline no later than one of its own intervals after
 * its third missed heartbeat. A second database connection LISTENs on
 * strata_commands (one notification per INSERT statement), after which
 * one statement takes the new commands of every agent this server holds.
 */
#ifndef STRATA_SLAVE_PUSH_H
#define STRATA_SLAVE_PUSH_H

#include <stddef.h>

#include "agentpki.h"
#include "daemon.h"

struct push_server;

/*
 * Listens and starts the timers and the command listener. d and pki must
 * outlive the server. NULL with err when the port cannot be opened.
 */
struct push_server *push_start(struct daemon *d, const struct agent_pki *pki, char *err,
			       size_t errlen);
/* Stops listening and closes every connection (their close runs from the loop). */
void push_shutdown(struct push_server *ps);
/* Frees the server after the loop ran the connections' closes. NULL is fine. */
void push_free(struct push_server *ps);

#endif
