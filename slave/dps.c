#include "dps.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agents.h"
#include "dbjson.h"
#include "log.h"

int dps_enrol(struct db *db, const char *ca_pin, const struct amsg_dp_enrol *m, const char *key_hex,
	      int64_t *dp_id, char *err, size_t errlen)
{
	char group[256] = "", id[32], port[16];
	if (db_begin(db, err, errlen) != 0)
		return -1;
	int rc = agents_token_check(db, ca_pin, "dp", m->token, group, sizeof(group), err, errlen);
	if (rc != 0)
		goto out;
	const char *pn[] = { m->name };
	if (db_query_value(db, "SELECT count(*)::text FROM push_servers WHERE name = $1", 1, pn, id,
			   sizeof(id), err, errlen) != 0) {
		rc = -1;
		goto out;
	}
	if (strcmp(id, "0") != 0) {
		snprintf(err, errlen,
			 "a distribution point named %s is enrolled already; remove it "
			 "first (strata-ctl dp remove %s)",
			 m->name, m->name);
		rc = 1;
		goto out;
	}
	snprintf(port, sizeof(port), "%d", m->port);
	const char *p[] = { m->name, group[0] ? group : "/", m->address, port, key_hex };
	if (db_query_value(db,
			   "INSERT INTO push_servers (name, group_path, address, port, dp_key) "
			   "VALUES ($1, $2, $3, $4::int, $5) RETURNING id::text",
			   5, p, id, sizeof(id), err, errlen) != 0 ||
	    db_commit(db, err, errlen) != 0) {
		rc = -1;
		goto out;
	}
	*dp_id = strtoll(id, NULL, 10);
	log_notice("dps: distribution point %s (%s:%d) enrolled for group %s", m->name, m->address,
		   m->port, group[0] ? group : "/");
	return 0;
out:
	db_rollback(db);
	return rc;
}

int dps_lookup(struct db *db, int64_t dp_id, char key_hex[65], char *name, size_t namelen,
	       char *err, size_t errlen)
{
	char id[24];
	snprintf(id, sizeof(id), "%" PRId64, dp_id);
	const char *p[] = { id };
	PGresult *res = db_query(db,
				 "SELECT dp_key, name FROM push_servers WHERE id = $1::bigint AND "
				 "NOT revoked",
				 1, p, err, errlen);
	if (!res)
		return -1;
	int rc = 1;
	if (PQntuples(res) == 1) {
		snprintf(key_hex, 65, "%s", PQgetvalue(res, 0, 0));
		snprintf(name, namelen, "%s", PQgetvalue(res, 0, 1));
		rc = 0;
	}
	PQclear(res);
	return rc;
}

int dps_set_online(struct db *db, int64_t dp_id, bool online, int pid, char *err, size_t errlen)
{
	char id[24], pids[16];
	snprintf(id, sizeof(id), "%" PRId64, dp_id);
	snprintf(pids, sizeof(pids), "%d", pid);
	const char *p[] = { id, online ? "t" : "f", pids };
	/* Going down only counts from the process that holds the link: a
	 * newer link of the same point may have come up in another worker. */
	return db_exec(db,
		       "UPDATE push_servers SET online = $2::boolean, link_pid = $3::int, "
		       "last_seen = now(), connections = CASE WHEN $2::boolean THEN connections "
		       "ELSE 0 END WHERE id = $1::bigint AND ($2::boolean OR link_pid = $3::int)",
		       3, p, err, errlen);
}

int dps_load(struct db *db, int64_t dp_id, int64_t connections, bool *removed, char *err,
	     size_t errlen)
{
	char id[24], n[24], out[8];
	snprintf(id, sizeof(id), "%" PRId64, dp_id);
	snprintf(n, sizeof(n), "%" PRId64, connections);
	const char *p[] = { id, n };
	if (db_query_value(db,
			   "WITH u AS (UPDATE push_servers SET connections = $2::int, last_seen = "
			   "now() WHERE id = $1::bigint AND NOT revoked RETURNING 1) "
			   "SELECT (count(*) = 0)::text FROM u",
			   2, p, out, sizeof(out), err, errlen) != 0)
		return -1;
	*removed = strcmp(out, "true") == 0;
	return 0;
}

int dps_reset(struct db *db, char *err, size_t errlen)
{
	return db_exec(db, "UPDATE push_servers SET online = false, connections = 0 WHERE online",
		       0, NULL, err, errlen);
}

int dps_any(struct db *db, char *err, size_t errlen)
{
	char out[8];
	if (db_query_value(db, "SELECT exists (SELECT 1 FROM push_servers WHERE NOT revoked)::text",
			   0, NULL, out, sizeof(out), err, errlen) != 0)
		return -1;
	return strcmp(out, "true") == 0;
}

/* Moves the endpoint's assignment to target (0: the built-in server); a
 * trigger keeps push_servers.assigned in step. */
static int reassign(struct db *db, const char *eid, int64_t target, char *err, size_t errlen)
{
	char t[24];
	snprintf(t, sizeof(t), "%" PRId64, target);
	const char *p[] = { eid, t };
	return db_exec(db,
		       "WITH d AS (DELETE FROM push_assignments WHERE endpoint_id = $1::bigint AND "
		       "$2::bigint = 0) "
		       "INSERT INTO push_assignments (endpoint_id, server_id) SELECT $1::bigint, "
		       "$2::bigint WHERE $2::bigint <> 0 ON CONFLICT (endpoint_id) DO UPDATE SET "
		       "server_id = EXCLUDED.server_id",
		       2, p, err, errlen);
}

int dps_route(struct db *db, int64_t endpoint_id, struct dps_route *out, char *err, size_t errlen)
{
	char eid[24], silence[16];
	snprintf(eid, sizeof(eid), "%" PRId64, endpoint_id);
	snprintf(silence, sizeof(silence), "%d", DP_SILENCE_S);
	const char *p[] = { eid, silence };
	/* The endpoint's assignment (0: none) and every online push server
	 * serving its group (a link that reported within DP_SILENCE_S), least
	 * assigned first. */
	PGresult *res = db_query(
	    db,
	    "WITH e AS (SELECT coalesce(g.path, '') AS path, coalesce(a.server_id, 0) AS cur "
	    "FROM endpoints e LEFT JOIN groups g ON g.id = e.group_id "
	    "LEFT JOIN push_assignments a ON a.endpoint_id = e.id WHERE e.id = $1::bigint) "
	    "SELECT e.cur, p.id, p.address, p.port, p.assigned FROM e LEFT JOIN push_servers p "
	    "ON p.online AND NOT p.revoked AND p.last_seen > now() - "
	    "make_interval(secs => $2::int) AND (p.group_path = '/' OR e.path = p.group_path "
	    "OR left(e.path, length(p.group_path) + 1) = p.group_path || '/') "
	    "ORDER BY p.assigned, p.id",
	    2, p, err, errlen);
	if (!res)
		return -1;
	int n = PQntuples(res);
	if (n == 0) {
		PQclear(res);
		snprintf(err, errlen, "endpoint %" PRId64 " is gone", endpoint_id);
		return -1;
	}
	int64_t cur = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	int best = PQgetisnull(res, 0, 1) ? -1 : 0, mine = -1;
	for (int i = 0; best >= 0 && i < n; i++)
		if (strtoll(PQgetvalue(res, i, 1), NULL, 10) == cur)
			mine = i;
	int pick = best;
	if (mine >= 0) {
		/* Stay unless clearly busier than the least-loaded one (its own count includes this
		 * endpoint). */
		long lo = strtol(PQgetvalue(res, best, 4), NULL, 10);
		long here = strtol(PQgetvalue(res, mine, 4), NULL, 10) - 1;
		long slack = lo / 10 > 2 ? lo / 10 : 2;
		if (here <= lo + slack)
			pick = mine;
	}
	memset(out, 0, sizeof(*out));
	if (pick >= 0) {
		out->server = strtoll(PQgetvalue(res, pick, 1), NULL, 10);
		snprintf(out->address, sizeof(out->address), "%s", PQgetvalue(res, pick, 2));
		out->port = atoi(PQgetvalue(res, pick, 3));
	}
	PQclear(res);
	if (out->server != cur && reassign(db, eid, out->server, err, errlen) != 0)
		return -1;
	if (out->server != cur)
		log_info("dps: endpoint %" PRId64 " assigned to push server %" PRId64
			 " (was %" PRId64 "; 0 is the slave's own)",
			 endpoint_id, out->server, cur);
	return 0;
}

json_t *dps_list(struct db *db, char *err, size_t errlen)
{
	char silence[16];
	snprintf(silence, sizeof(silence), "%d", DP_SILENCE_S);
	const char *p[] = { silence };
	return dbjson_query(
	    db,
	    "SELECT name, group_path AS \"group\", address, port, CASE WHEN revoked "
	    "THEN 'removed' WHEN online AND last_seen > now() - make_interval(secs "
	    "=> $1::int) THEN 'online' ELSE 'offline' END AS status, connections, "
	    "assigned, last_seen FROM push_servers ORDER BY name",
	    1, p, err, errlen);
}

json_t *dps_remove(struct db *db, json_t *args, char *err, size_t errlen)
{
	const char *name = json_string_value(json_object_get(args, "name"));
	char n[24];
	if (!name) {
		snprintf(err, errlen, "dp remove needs a NAME");
		return NULL;
	}
	const char *p[] = { name };
	if (db_query_value(
		db,
		"WITH r AS (UPDATE push_servers SET revoked = true, online = false "
		"WHERE name = $1 AND NOT revoked RETURNING id), "
		"d AS (DELETE FROM push_assignments WHERE server_id IN (SELECT id FROM r) "
		"RETURNING 1) SELECT count(*)::text FROM r",
		1, p, n, sizeof(n), err, errlen) != 0)
		return NULL;
	if (strcmp(n, "0") == 0) {
		snprintf(err, errlen, "no distribution point named %s", name);
		return NULL;
	}
	log_notice("dps: distribution point %s removed; its agents move on their next connection",
		   name);
	return json_pack("{s:{s:s}}", "fields", "name", name);
}
