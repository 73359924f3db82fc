/*
 * agents: the database side of the agent channel. Agent tokens,
 * enrolment (token, seats, the endpoint row and its group), the key
 * lookup for A_AUTH, status changes with their 'status' events, the
 * batched last_seen flush, the offline sweep, events, task results, the
 * effective policy, and the commands waiting for an agent.
 *
 * Every function is a blocking call on the given connection and returns
 * 0 or -1 with the reason in err unless it says otherwise. JSON results
 * are new references the caller releases.
 */
#ifndef STRATA_SLAVE_AGENTS_H
#define STRATA_SLAVE_AGENTS_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "agentproto.h"
#include "db.h"

#define AGENT_UID_HEX 16 /* random bytes of an endpoint uid: 32 hex chars */

/*
 * agent-token create (args {group, expires, kind}: kind "agent", the
 * default, or "dp" for a single-use distribution point token whose group
 * defaults to "/"): {"fields": {"token", "expires_at", "group"}}; NULL with err.
 */
json_t *agents_token_create(struct db *db, const char *ca_pin, json_t *args, char *err,
			    size_t errlen);
/* endpoint list [--status S] [--group PATH]: a table; NULL with err. */
json_t *agents_endpoint_list(struct db *db, json_t *args, char *err, size_t errlen);
/*
 * endpoint revoke UID: marks the endpoint revoked (it no longer counts
 * toward seats and its agent is refused at A_AUTH), records a 'status'
 * event to 'revoked', and NOTIFYs strata_revoked with the endpoint id so
 * the push server cuts an open connection. {"fields": {"uid"}}; NULL with err.
 */
json_t *agents_endpoint_revoke(struct db *db, json_t *args, char *err, size_t errlen);
/* endpoint command UID KIND [--args JSON]: {"fields": {"id"}}; NULL with err. */
json_t *agents_command_create(struct db *db, json_t *args, char *err, size_t errlen);

/*
 * Checks and uses a token of kind ("agent" or "dp") inside the caller's
 * open transaction: 0 with its group path (empty: none), 1 refused with
 * the reason for the peer in err, -1 on a database failure.
 */
int agents_token_check(struct db *db, const char *ca_pin, const char *kind, const char *text,
		       char *group, size_t grouplen, char *err, size_t errlen);

/*
 * Enrols an agent. 0 with uid filled; 1 when refused, with *code set to
 * "token" or "seats" and the reason for the agent in err; -1 on a
 * database failure.
 */
int agents_enrol(struct db *db, const char *ca_pin, int seats, const struct amsg_enrol *m,
		 const char *address, char uid[2 * AGENT_UID_HEX + 1], int64_t *endpoint_id,
		 const char **code, char *err, size_t errlen);

struct agent_rec {
	int64_t id;
	char key[65];
	int64_t policy_version;
	char group[256]; /* its group's path, "/" for none */
};
/*
 * Looks up n agent ids in one statement: found[i] is true and out[i] is
 * filled when uids[i] names an enrolled, unrevoked agent. 0, or -1 on a
 * database failure (err).
 */
int agents_lookup_many(struct db *db, size_t n, const char *const *uids, struct agent_rec *out,
		       bool *found, char *err, size_t errlen);
/* An agent that proved its key, waiting for its status to be written. */
struct agent_auth {
	int64_t id;
	const char *mode;    /* "push" or "poll" */
	bool reachable;	     /* 'online', else 'unreachable' */
	const char *address; /* the connection's source address */
	int heartbeat;	     /* the interval A_AUTH_OK announces, seconds */
};
/*
 * Records n authentications in one transaction: status 'online' or
 * 'unreachable', the mode, the address, the heartbeat interval, last_seen
 * now, a 'status' event
 * for each agent whose status changed, and NOTIFY strata_agent_auth
 * "pid:id,id,..." so a worker still holding an older connection of one of
 * these agents drops it. done[i] is false for an agent revoked meanwhile.
 */
int agents_auth_batch(struct db *db, size_t n, const struct agent_auth *a, int pid, bool *done,
		      char *err, size_t errlen);
/* One statement for all n last_seen values (epoch seconds). */
int agents_flush_seen(struct db *db, size_t n, const int64_t *ids, const double *seen, char *err,
		      size_t errlen);
/*
 * Online endpoints silent for 3 of their own heartbeat intervals go
 * offline, with a 'status' event each; heartbeat stands in for an
 * endpoint that has no interval recorded yet. One statement, which also
 * gives *shortest: the shortest interval of the endpoints still online
 * (heartbeat when none is), the longest the next sweep may wait.
 */
int agents_sweep(struct db *db, int heartbeat, int *changed, int *shortest, char *err,
		 size_t errlen);
/* Stores an agent's event once: a resend (same endpoint, seq and occurred_at) is a no-op. */
int agents_event(struct db *db, int64_t id, const struct amsg_event *m, char *err, size_t errlen);
int agents_result(struct db *db, int64_t id, const struct amsg_result *m, char *err, size_t errlen);
/*
 * Records what an endpoint's agent fetched with A_POLICY: the effective
 * policy's version and the heartbeat interval it was given. A changed
 * interval counts from now (as agents_set_heartbeat).
 */
int agents_set_policy(struct db *db, int64_t id, int64_t version, int heartbeat, char *err,
		      size_t errlen);

/*
 * Commands to send now, marked delivered: [{id, kind, args}] in id order.
 * all: every unacknowledged one (after A_AUTH); else only those never
 * delivered (after a notification).
 */
json_t *agents_commands_take(struct db *db, int64_t id, bool all, char *err, size_t errlen);
/*
 * The commands of n endpoints in one statement, as agents_commands_take:
 * [[endpoint_id, {id, kind, args}]] in id order. Only these endpoints'
 * commands are marked delivered.
 */
json_t *agents_commands_take_many(struct db *db, size_t n, const int64_t *ids, bool all,
				  char *err, size_t errlen);
/*
 * Acknowledges n (endpoint, command) pairs in one statement; a pair whose
 * command is not that endpoint's is ignored. *matched: the pairs that
 * matched.
 */
int agents_commands_ack_many(struct db *db, size_t n, const int64_t *endpoint_ids,
			     const int64_t *command_ids, size_t *matched, char *err, size_t errlen);

#endif
