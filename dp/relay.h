/*
 * relay: strata-dp, a distribution point. It holds agent connections on
 * its own push port and relays them to its slave over one TLS link
 * (agentproto.h, "Distribution points"); it keeps no database.
 *
 * First start: with <slave token="..."> it enrols (A_DP_ENROL), pinning
 * the slave's agent CA by the token, and keeps in its data directory the
 * key (dp.key), the certificate the slave issued for the first of its
 * <push hosts> (dp.crt), the agent CA (ca.crt) and its id (dp.id).
 *
 * Then: the link proves the key (A_DP_AUTH) and stays up, reconnecting
 * after 1 s, doubling to 30 s. While the link is down, agents are turned
 * away at once so they go back to their slave, which sends them to
 * another push server of their group. While it is up, each agent
 * connection is numbered (vid) and announced with its address and its
 * session's keying material (A_DP_OPEN); its frames go both ways inside
 * A_DP_FRAME; either side ends it with A_DP_CLOSE. Every 5 s the link
 * carries the number of agents held (A_DP_LOAD), which also keeps it alive.
 */
#ifndef STRATA_DP_RELAY_H
#define STRATA_DP_RELAY_H

#include <stddef.h>

#include "daemon.h"

struct relay;

/* Loads or makes the identity (enrolling when needed: blocking). NULL with err. */
struct relay *relay_start(struct daemon *d, char *err, size_t errlen);
/* Closes the link and every agent connection; their closes run from the loop. */
void relay_shutdown(struct relay *r);
/* After the loop ran the closes. NULL is fine. */
void relay_free(struct relay *r);

#endif
