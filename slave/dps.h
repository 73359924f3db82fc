/*
 * dps: the database side of distribution points and of the choice of
 * push server per endpoint.
 *
 * A distribution point (strata-dp) is a push server of its own that
 * relays its agents to this slave over one link (agentproto.h). It
 * enrols once with a single-use token that names the group it serves
 * ("/" for all), and is a row of push_servers from then on. The slave's
 * built-in push server has no row.
 *
 * Routing: an endpoint belongs to the least-loaded online push server
 * whose group contains the endpoint's group (load = endpoints assigned),
 * or to the built-in one when no distribution point serves its group.
 * It keeps its push server while that one is online, serves its group
 * and is not busier than the least-loaded one by more than a tenth (at
 * least 2 endpoints): a reconnect is the moment an agent moves, so a new
 * distribution point fills up as agents reconnect and the agents of one
 * that stopped spread over the others of their group.
 *
 * Every function is a blocking call on the given connection and returns
 * 0 or -1 with the reason in err unless it says otherwise.
 */
#ifndef STRATA_SLAVE_DPS_H
#define STRATA_SLAVE_DPS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "agentproto.h"
#include "db.h"

/*
 * Registers a distribution point: 0 with *dp_id; 1 refused (token, or a
 * name already enrolled) with the reason for the peer in err; -1.
 */
int dps_enrol(struct db *db, const char *ca_pin, const struct amsg_dp_enrol *m, const char *key_hex,
	      int64_t *dp_id, char *err, size_t errlen);

/* Its key and name: 0 found, 1 unknown or removed, -1. */
int dps_lookup(struct db *db, int64_t dp_id, char key_hex[65], char *name, size_t namelen,
	       char *err, size_t errlen);

/* Its link came up in process pid (online) or went down. */
int dps_set_online(struct db *db, int64_t dp_id, bool online, int pid, char *err, size_t errlen);
/* Records its connection count; *removed: it was removed meanwhile. */
int dps_load(struct db *db, int64_t dp_id, int64_t connections, bool *removed, char *err,
	     size_t errlen);
/* Marks every distribution point offline: at start, before any link is taken. */
int dps_reset(struct db *db, char *err, size_t errlen);
/* Whether any distribution point is enrolled and not removed: 1, 0, or -1. */
int dps_any(struct db *db, char *err, size_t errlen);

struct dps_route {
	int64_t server; /* 0: the built-in push server */
	char address[256];
	int port;
};
/*
 * The push server endpoint_id belongs to (out->server 0: the built-in
 * one), moving its assignment when the rule above says so. out->address
 * and port are set for a distribution point.
 */
int dps_route(struct db *db, int64_t endpoint_id, struct dps_route *out, char *err, size_t errlen);

/* dp list: a table; NULL with err. */
json_t *dps_list(struct db *db, char *err, size_t errlen);
/* dp remove NAME: {"fields": {"name"}}; its agents move on their next connection. */
json_t *dps_remove(struct db *db, json_t *args, char *err, size_t errlen);

#endif
