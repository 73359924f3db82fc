/*
 * pushdp: the push server's side of distribution points (docs/PROTOCOL.md,
 * "Distribution points"): their enrolment and key proof on the push port,
 * their links, and the relayed agents each link carries, which are
 * agent_conns with no socket of their own (via the link, numbered vid).
 */
#ifndef STRATA_SLAVE_PUSHDP_H
#define STRATA_SLAVE_PUSHDP_H

#include <jansson.h>

#include "pushconn.h"

/* A_DP_ENROL and A_DP_AUTH on a direct connection before authentication. */
void pushdp_enrol(struct agent_conn *c, json_t *o);
void pushdp_auth(struct agent_conn *c, json_t *o);
/* A frame on an authenticated link (l->st == CONN_DP). */
void pushdp_link_message(struct agent_conn *l, uint16_t type, const uint8_t *payload, size_t len);
/* Ends the link's relayed connections and marks the point offline (once). */
void pushdp_link_closed(struct agent_conn *l);
/* A frame for a relayed agent, inside A_DP_FRAME on its link (o not stolen). */
void pushdp_send(struct agent_conn *c, uint16_t type, json_t *o);
/* Ends a relayed connection: tells its point; the connection is freed from the loop. */
void pushdp_end(struct agent_conn *c, const char *reason);

#endif
