#include "agents.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "dbjson.h"
#include "log.h"
#include "proto.h"
#include "tls.h"

#define TOKEN_TTL_DEFAULT 86400
#define TOKEN_TTL_MAX (365 * 86400)

static const char *arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

json_t *agents_token_create(struct db *db, const char *ca_pin, json_t *args, char *err,
			    size_t errlen)
{
	struct enrol_token tok;
	char text[256], hash[TLS_PIN_HEX_LEN + 1], ttl_s[16], expires[64];
	const char *group = arg_str(args, "group");
	const char *kind = arg_str(args, "kind") ? arg_str(args, "kind") : "agent";
	bool dp = strcmp(kind, "dp") == 0;
	json_t *ttl_j = json_object_get(args, "expires");
	json_int_t ttl = ttl_j ? json_integer_value(ttl_j) : TOKEN_TTL_DEFAULT;
	if (ttl < 60 || ttl > TOKEN_TTL_MAX) {
		snprintf(err, errlen, "--expires must be 60 to %d seconds", TOKEN_TTL_MAX);
		return NULL;
	}
	if (!dp && strcmp(kind, "agent") != 0) {
		snprintf(err, errlen, "unknown token kind '%s'", kind);
		return NULL;
	}
	/* A distribution point serves a group ('/': all of them). */
	if (dp && !group)
		group = "/";
	if (group && !(dp && strcmp(group, "/") == 0) && !proto_group_path_valid(group)) {
		snprintf(err, errlen,
			 "invalid group path '%s': use /NAME[/NAME...] with letters, digits, "
			 "'.', '_', '-' or spaces",
			 group);
		return NULL;
	}
	if (tls_token_make(ca_pin, &tok, text, sizeof(text)) != 0) {
		snprintf(err, errlen, "cannot make a token");
		return NULL;
	}
	tls_sha256_hex(tok.secret, strlen(tok.secret), hash);
	snprintf(ttl_s, sizeof(ttl_s), "%lld", (long long)ttl);
	/* A distribution point's token enrols one distribution point. */
	const char *p[] = { tok.id, hash, group, ttl_s, kind, dp ? "1" : "1000000" };
	if (db_query_value(db,
			   "INSERT INTO agent_tokens (id, secret_sha256, group_path, expires_at, "
			   "kind, max_uses) VALUES ($1, $2, $3, now() + make_interval(secs => "
			   "$4::int), $5, $6::int) RETURNING expires_at::text",
			   6, p, expires, sizeof(expires), err, errlen) != 0)
		return NULL;
	log_notice("agents: %s token %s issued (group %s, valid %lld s)",
		   dp ? "distribution point" : "agent", tok.id, group ? group : "none",
		   (long long)ttl);
	return json_pack("{s:{s:s, s:s, s:s?}}", "fields", "token", text, "expires_at", expires,
			 "group", group);
}

json_t *agents_endpoint_list(struct db *db, json_t *args, char *err, size_t errlen)
{
	const char *p[] = { arg_str(args, "status"), arg_str(args, "group") };
	return dbjson_query(db,
			    "SELECT e.uid, e.hostname, g.path AS \"group\", e.status, e.mode, "
			    "e.last_seen, e.address, e.agent_version FROM endpoints e "
			    "LEFT JOIN groups g ON g.id = e.group_id WHERE NOT e.revoked "
			    "AND ($1::text IS NULL OR e.status = $1) "
			    "AND ($2::text IS NULL OR g.path = $2 OR left(g.path, length($2) + 1) = $2 || '/') "
			    "ORDER BY e.hostname, e.uid",
			    2, p, err, errlen);
}

json_t *agents_endpoint_revoke(struct db *db, json_t *args, char *err, size_t errlen)
{
	const char *uid = arg_str(args, "uid");
	char id[24];
	if (!uid) {
		snprintf(err, errlen, "endpoint revoke needs UID");
		return NULL;
	}
	if (db_begin(db, err, errlen) != 0)
		return NULL;
	const char *p[] = { uid };
	int rc = db_query_value(db,
				"WITH old AS (SELECT id, status FROM endpoints WHERE uid = $1 AND "
				"NOT revoked FOR UPDATE), "
				"upd AS (UPDATE endpoints e SET revoked = true, status = 'offline' "
				"FROM old WHERE e.id = old.id RETURNING e.id, old.status AS was), "
				"ev AS (INSERT INTO events (endpoint_id, kind, severity, details) "
				"SELECT id, 'status', 'info', jsonb_build_object('from', was, 'to', "
				"'revoked') FROM upd RETURNING endpoint_id), "
				"pa AS (DELETE FROM push_assignments WHERE endpoint_id IN "
				"(SELECT id FROM upd)) "
				"SELECT endpoint_id::text FROM ev",
				1, p, id, sizeof(id), err, errlen);
	if (rc == 1)
		snprintf(err, errlen, "no endpoint with uid '%s' (or it is already revoked)", uid);
	const char *n[] = { id };
	/* Delivered at commit, so the push server never acts on a revocation that rolled back. */
	if (rc != 0 ||
	    db_exec(db, "SELECT pg_notify('strata_revoked', $1)", 1, n, err, errlen) != 0 ||
	    db_commit(db, err, errlen) != 0) {
		db_rollback(db);
		return NULL;
	}
	log_notice("agents: endpoint %s revoked", uid);
	return json_pack("{s:{s:s, s:s}}", "fields", "uid", uid, "status", "revoked");
}

/*
 * run_task names a task of this slave ({"task": NAME}, a local one first,
 * or {"task_id": N}); the command carries the task's kind and params, and
 * the endpoint's result for the task goes back to 'pending' until the
 * agent reports. A result is thus always about a task that exists.
 */
static json_t *run_task_create(struct db *db, const char *uid, json_t *a, char *err, size_t errlen)
{
	json_t *tid = json_object_get(a, "task_id");
	const char *name = arg_str(a, "task");
	char id_s[24] = "";
	if (!a || json_object_size(a) != 1 || (!name && !json_is_integer(tid)) ||
	    (tid && json_integer_value(tid) < 1)) {
		snprintf(err, errlen,
			 "run_task needs --args '{\"task\": NAME}' or "
			 "'{\"task_id\": N}' naming a task of this slave "
			 "(its kind and params come from the task)");
		return NULL;
	}
	if (tid)
		snprintf(id_s, sizeof(id_s), "%" PRId64, (int64_t)json_integer_value(tid));
	const char *p[] = { uid, tid ? id_s : NULL, name };
	PGresult *res = db_query(
	    db,
	    "WITH t AS (SELECT id, kind, params FROM tasks WHERE id = $2::bigint OR name = $3 "
	    " ORDER BY owner <> 'local', id LIMIT 1), "
	    "e AS (SELECT id FROM endpoints WHERE uid = $1 AND NOT revoked), "
	    "r AS (INSERT INTO task_results (task_id, endpoint_id, status) "
	    " SELECT t.id, e.id, 'pending' FROM t, e ON CONFLICT (task_id, endpoint_id) "
	    " DO UPDATE SET status = 'pending', result = '{}', updated_at = now()), "
	    "c AS (INSERT INTO agent_commands (endpoint_id, kind, args) "
	    " SELECT e.id, 'run_task', jsonb_build_object('task_id', t.id, 'kind', t.kind, "
	    " 'params', t.params) FROM t, e RETURNING id) "
	    "SELECT (SELECT id::text FROM c), (SELECT id::text FROM t), (SELECT count(*) FROM e)",
	    3, p, err, errlen);
	if (!res)
		return NULL;
	json_t *out = NULL;
	if (PQgetisnull(res, 0, 1))
		snprintf(err, errlen, "no task %s%s on this slave (task list shows them)",
			 name ? "named " : "", name ? name : id_s);
	else if (PQgetisnull(res, 0, 0))
		snprintf(err, errlen, "no endpoint with uid '%s'", uid);
	else
		out = json_pack("{s:{s:s, s:s, s:s, s:s}}", "fields", "id", PQgetvalue(res, 0, 0),
				"uid", uid, "kind", "run_task", "task_id", PQgetvalue(res, 0, 1));
	PQclear(res);
	return out;
}

json_t *agents_command_create(struct db *db, json_t *args, char *err, size_t errlen)
{
	const char *uid = arg_str(args, "uid"), *kind = arg_str(args, "kind");
	json_t *a = json_object_get(args, "args");
	char id[24];
	if (!uid || !kind) {
		snprintf(err, errlen, "endpoint command needs UID and KIND");
		return NULL;
	}
	if (strcmp(kind, "apply_policy") != 0 && strcmp(kind, "run_task") != 0 &&
	    strcmp(kind, "sync_now") != 0) {
		snprintf(err, errlen, "KIND must be apply_policy, run_task or sync_now");
		return NULL;
	}
	if (a && !json_is_object(a)) {
		snprintf(err, errlen, "--args must be a JSON object");
		return NULL;
	}
	if (strcmp(kind, "run_task") == 0)
		return run_task_create(db, uid, a, err, errlen);
	char *text = a ? json_dumps(a, JSON_COMPACT) : NULL;
	const char *p[] = { uid, kind, text ? text : "{}" };
	int rc = db_query_value(db,
				"INSERT INTO agent_commands (endpoint_id, kind, args) "
				"SELECT id, $2, $3::jsonb FROM endpoints WHERE uid = $1 "
				"AND NOT revoked RETURNING id::text",
				3, p, id, sizeof(id), err, errlen);
	free(text);
	if (rc == 1)
		snprintf(err, errlen, "no endpoint with uid '%s'", uid);
	if (rc != 0)
		return NULL;
	return json_pack("{s:{s:s, s:s, s:s}}", "fields", "id", id, "uid", uid, "kind", kind);
}

/* Creates the group and its parents as needed; its id into out (64 chars). */
static int group_ensure(struct db *db, const char *path, char *out, size_t outlen, char *err,
			size_t errlen)
{
	char prefix[256], parent[256] = "";
	size_t n = strlen(path);
	for (size_t i = 1; i <= n; i++) {
		if (path[i] != '/' && path[i] != '\0')
			continue;
		snprintf(prefix, sizeof(prefix), "%.*s", (int)i, path);
		const char *name = strrchr(prefix, '/') + 1;
		const char *p[] = { parent[0] ? parent : NULL, name, prefix };
		if (db_exec(db,
			    "INSERT INTO groups (parent_id, name, path) VALUES "
			    "((SELECT id FROM groups WHERE path = $1), $2, $3) "
			    "ON CONFLICT (path) DO NOTHING",
			    3, p, err, errlen) != 0)
			return -1;
		snprintf(parent, sizeof(parent), "%s", prefix);
	}
	const char *p[] = { path };
	return db_query_value(db, "SELECT id::text FROM groups WHERE path = $1", 1, p, out, outlen,
			      err, errlen) == 0
		       ? 0
		       : -1;
}

int agents_token_check(struct db *db, const char *ca_pin, const char *kind, const char *text,
		       char *group, size_t grouplen, char *err, size_t errlen)
{
	const char *what = strcmp(kind, "dp") == 0 ? "distribution point" : "agent";
	struct enrol_token tok;
	char hash[TLS_PIN_HEX_LEN + 1], dberr[512];
	if (tls_token_parse(text, &tok, err, errlen) != 0)
		return 1;
	if (strcmp(tok.pin, ca_pin) != 0) {
		snprintf(err, errlen, "the token was not issued by this slave (CA pin differs)");
		return 1;
	}
	const char *p[] = { tok.id, kind };
	PGresult *res = db_query(db,
				 "SELECT secret_sha256, expires_at < now(), uses >= max_uses, "
				 "group_path, expires_at::text FROM agent_tokens WHERE id = $1 "
				 "AND kind = $2 FOR UPDATE",
				 2, p, dberr, sizeof(dberr));
	if (!res) {
		snprintf(err, errlen, "%s", dberr);
		return -1;
	}
	tls_sha256_hex(tok.secret, strlen(tok.secret), hash);
	int rc = 1;
	if (PQntuples(res) != 1 ||
	    CRYPTO_memcmp(hash, PQgetvalue(res, 0, 0), TLS_PIN_HEX_LEN) != 0)
		snprintf(err, errlen, "unknown %s token", what);
	else if (strcmp(PQgetvalue(res, 0, 1), "t") == 0)
		snprintf(err, errlen, "the %s token expired at %s; ask for a new one", what,
			 PQgetvalue(res, 0, 4));
	else if (strcmp(PQgetvalue(res, 0, 2), "t") == 0)
		snprintf(err, errlen, "the %s token has been used up", what);
	else {
		snprintf(group, grouplen, "%s", PQgetvalue(res, 0, 3));
		rc = 0;
	}
	PQclear(res);
	if (rc == 0 && db_exec(db, "UPDATE agent_tokens SET uses = uses + 1 WHERE id = $1", 1, p,
			       err, errlen) != 0)
		rc = -1;
	return rc;
}

int agents_enrol(struct db *db, const char *ca_pin, int seats, const struct amsg_enrol *m,
		 const char *address, char uid[2 * AGENT_UID_HEX + 1], int64_t *endpoint_id,
		 const char **code, char *err, size_t errlen)
{
	char group[256] = "", group_id[32], used[24];
	*code = NULL;
	if (db_begin(db, err, errlen) != 0)
		return -1;
	/* The replication lock first (docs/ARCHITECTURE.md) also serialises
	 * enrolments, so two of them cannot both take the last seat. */
	if (db_exec(db, "SELECT repl_lock()", 0, NULL, err, errlen) != 0)
		goto fail;
	int rc = agents_token_check(db, ca_pin, "agent", m->token, group, sizeof(group), err,
				    errlen);
	if (rc != 0) {
		*code = "token";
		goto refused;
	}
	/* agent_seats is kept by a trigger: no count of every endpoint per enrolment.
	 * An installed licence's seats replace the <licence seats> setting. */
	PGresult *lr = db_query(db,
				"SELECT s.used::text, l.licence_id, l.seats::text, "
				"(l.valid_until <= now())::text, to_char(l.valid_until AT TIME ZONE "
				"'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') "
				"FROM agent_seats s LEFT JOIN licence l ON true",
				0, NULL, err, errlen);
	if (!lr)
		goto fail;
	if (PQntuples(lr) != 1) {
		PQclear(lr);
		snprintf(err, errlen, "agent_seats has no row");
		goto fail;
	}
	snprintf(used, sizeof(used), "%s", PQgetvalue(lr, 0, 0));
	if (!PQgetisnull(lr, 0, 1)) {
		char lid[128], until[32];
		snprintf(lid, sizeof(lid), "%s", PQgetvalue(lr, 0, 1));
		snprintf(until, sizeof(until), "%s", PQgetvalue(lr, 0, 4));
		long long lseats = atoll(PQgetvalue(lr, 0, 2));
		bool expired = strcmp(PQgetvalue(lr, 0, 3), "true") == 0;
		PQclear(lr);
		if (expired) {
			*code = "licence";
			snprintf(err, errlen,
				 "licence %s expired at %s: no new endpoints are enrolled", lid,
				 until);
			rc = 1;
			goto refused;
		}
		if (atoll(used) >= lseats) {
			*code = "seats";
			snprintf(err, errlen, "licence %s seats exhausted (%s of %lld used)", lid,
				 used, lseats);
			rc = 1;
			goto refused;
		}
	} else {
		PQclear(lr);
		if (atoll(used) >= seats) {
			*code = "seats";
			snprintf(err, errlen, "licence seats exhausted (%s of %d used)", used,
				 seats);
			rc = 1;
			goto refused;
		}
	}
	if (group[0] && group_ensure(db, group, group_id, sizeof(group_id), err, errlen) != 0)
		goto fail;
	if (tls_random_hex(uid, AGENT_UID_HEX) != 0) {
		snprintf(err, errlen, "no random bytes for the endpoint id");
		goto fail;
	}
	const char *p[] = { uid, m->hostname, m->os, m->agent_version, m->mode, m->key,
			    group[0] ? group_id : NULL, address };
	char eid[24];
	if (db_query_value(db,
			   "INSERT INTO endpoints (uid, hostname, os, agent_version, mode, "
			   "agent_key, group_id, address, policy_target) VALUES ($1, $2, $3, $4, "
			   "$5, $6, $7::bigint, $8, coalesce((SELECT version FROM policy_targets "
			   "WHERE group_id = coalesce($7::bigint, 0)), 0)) RETURNING id::text",
			   8, p, eid, sizeof(eid), err, errlen) != 0 ||
	    db_commit(db, err, errlen) != 0)
		goto fail;
	*endpoint_id = strtoll(eid, NULL, 10);
	log_notice("agents: endpoint %s (%s) enrolled from %s%s%s", uid, m->hostname, address,
		   group[0] ? " into " : "", group);
	return 0;
refused:
	db_rollback(db);
	if (rc < 0)
		return -1;
	if (strcmp(*code, "seats") == 0 || strcmp(*code, "licence") == 0)
		log_warnx("agents: enrolment of %s from %s refused: %s", m->hostname, address, err);
	return 1;
fail:
	db_rollback(db);
	return -1;
}

static char *text_array(size_t n, const char *const *v);

int agents_lookup_many(struct db *db, size_t n, const char *const *uids, struct agent_rec *out,
		       bool *found, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		found[i] = false;
	if (n == 0)
		return 0;
	char *ua = text_array(n, uids);
	if (!ua) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	const char *p[] = { ua };
	/* The ordinality says which claim a row answers: no matching by text. */
	PGresult *res = db_query(db,
				 "SELECT u.i, e.id, e.agent_key, e.policy_version, "
				 "coalesce(g.path, '/') FROM unnest($1::text[]) WITH ORDINALITY "
				 "AS u(uid, i) JOIN endpoints e ON e.uid = u.uid "
				 "LEFT JOIN groups g ON g.id = e.group_id "
				 "WHERE NOT e.revoked AND e.agent_key IS NOT NULL",
				 1, p, err, errlen);
	free(ua);
	if (!res)
		return -1;
	for (int r = 0; r < PQntuples(res); r++) {
		long long i = strtoll(PQgetvalue(res, r, 0), NULL, 10) - 1;
		if (i < 0 || (size_t)i >= n)
			continue;
		out[i].id = strtoll(PQgetvalue(res, r, 1), NULL, 10);
		snprintf(out[i].key, sizeof(out[i].key), "%s", PQgetvalue(res, r, 2));
		out[i].policy_version = strtoll(PQgetvalue(res, r, 3), NULL, 10);
		snprintf(out[i].group, sizeof(out[i].group), "%s", PQgetvalue(res, r, 4));
		found[i] = true;
	}
	PQclear(res);
	return 0;
}

/* Appends v to a PostgreSQL array literal under construction. */
static int array_add(char **buf, size_t *len, size_t *cap, const char *v)
{
	size_t need = strlen(v) + 2;
	if (*len + need + 2 > *cap) {
		size_t ncap = (*cap + need) * 2;
		char *n = realloc(*buf, ncap);
		if (!n)
			return -1;
		*buf = n;
		*cap = ncap;
	}
	*len += (size_t)snprintf(*buf + *len, *cap - *len, "%s%s", *len > 1 ? "," : "", v);
	return 0;
}

int agents_flush_seen(struct db *db, size_t n, const int64_t *ids, const double *seen, char *err,
		      size_t errlen)
{
	size_t cap = 64 + n * 24, ilen = 1, tlen = 1;
	char *ia = malloc(cap), *ta = malloc(cap), v[32];
	size_t icap = cap, tcap = cap;
	int rc = -1;
	if (!ia || !ta)
		goto out;
	strcpy(ia, "{");
	strcpy(ta, "{");
	for (size_t i = 0; i < n; i++) {
		snprintf(v, sizeof(v), "%" PRId64, ids[i]);
		if (array_add(&ia, &ilen, &icap, v) != 0)
			goto out;
		snprintf(v, sizeof(v), "%.3f", seen[i]);
		if (array_add(&ta, &tlen, &tcap, v) != 0)
			goto out;
	}
	strcat(ia, "}");
	strcat(ta, "}");
	const char *p[] = { ia, ta };
	/* One statement, so one commit however many agents beat. */
	rc = db_exec(db,
		     "UPDATE endpoints e SET last_seen = v.t FROM (SELECT id, to_timestamp(s) AS t "
		     "FROM unnest($1::bigint[], $2::float8[]) AS u(id, s)) AS v "
		     "WHERE e.id = v.id AND (e.last_seen IS NULL OR e.last_seen < v.t)",
		     2, p, err, errlen);
out:
	if (rc != 0 && (!ia || !ta))
		snprintf(err, errlen, "out of memory");
	free(ia);
	free(ta);
	return rc;
}

int agents_sweep(struct db *db, int heartbeat, int *changed, int *shortest, char *err,
		 size_t errlen)
{
	char hb[16];
	snprintf(hb, sizeof(hb), "%d", heartbeat);
	const char *p[] = { hb };
	/* The shortest interval reads the snapshot before the update: an
	 * endpoint going offline now may shorten the next wait, never lengthen it. */
	PGresult *res =
	    db_query(db,
		     "WITH gone AS (UPDATE endpoints SET status = 'offline' "
		     "WHERE status = 'online' AND last_seen < now() - "
		     "make_interval(secs => 3 * coalesce(heartbeat, $1::int)) RETURNING id), "
		     "ev AS (INSERT INTO events (endpoint_id, kind, severity, details) "
		     "SELECT id, 'status', 'info', '{\"from\": \"online\", \"to\": \"offline\"}' "
		     "FROM gone RETURNING 1) SELECT (SELECT count(*) FROM ev), "
		     "(SELECT coalesce(min(coalesce(heartbeat, $1::int)), $1::int) "
		     "FROM endpoints WHERE status = 'online')",
		     1, p, err, errlen);
	if (!res)
		return -1;
	*changed = atoi(PQgetvalue(res, 0, 0));
	*shortest = atoi(PQgetvalue(res, 0, 1));
	PQclear(res);
	return 0;
}

int agents_event(struct db *db, int64_t id, const struct amsg_event *m, char *err, size_t errlen)
{
	char ids[24], seq[24];
	char *details = json_dumps(m->details, JSON_COMPACT);
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	snprintf(seq, sizeof(seq), "%" PRId64, m->seq);
	const char *p[] = { ids, m->kind, m->severity, m->occurred_at, details, seq };
	/* A resent event (its acknowledgement was lost) is stored already: acknowledged again. */
	int rc = db_exec(db,
			 "INSERT INTO events (endpoint_id, kind, severity, occurred_at, details, "
			 "agent_seq) VALUES ($1::bigint, $2, $3, $4::timestamptz, $5::jsonb, "
			 "$6::bigint) ON CONFLICT (endpoint_id, agent_seq, occurred_at) "
			 "WHERE agent_seq IS NOT NULL "
			 "DO NOTHING",
			 6, p, err, errlen);
	free(details);
	return rc;
}

int agents_result(struct db *db, int64_t id, const struct amsg_result *m, char *err,
		  size_t errlen)
{
	char ids[24], task[24];
	char *result = json_dumps(m->result, JSON_COMPACT);
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	snprintf(task, sizeof(task), "%" PRId64, m->task_id);
	const char *p[] = { task, ids, m->status, result };
	int rc = db_exec(db,
			 "INSERT INTO task_results (task_id, endpoint_id, status, result) "
			 "VALUES ($1::bigint, $2::bigint, $3, $4::jsonb) "
			 "ON CONFLICT (task_id, endpoint_id) DO UPDATE SET status = EXCLUDED.status, "
			 "result = EXCLUDED.result, updated_at = now()",
			 4, p, err, errlen);
	free(result);
	return rc;
}

int agents_set_policy(struct db *db, int64_t id, int64_t version, int heartbeat, char *err,
		      size_t errlen)
{
	char ids[24], vs[24], hb[16];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	snprintf(vs, sizeof(vs), "%" PRId64, version);
	snprintf(hb, sizeof(hb), "%d", heartbeat);
	const char *p[] = { ids, vs, hb };
	return db_exec(db,
		       "UPDATE endpoints SET policy_version = $2::bigint, policy_target = $2::bigint, "
		       "heartbeat = $3::int, "
		       "last_seen = CASE WHEN heartbeat IS DISTINCT FROM $3::int THEN "
		       "greatest(last_seen, now()) ELSE last_seen END WHERE id = $1::bigint",
		       3, p, err, errlen);
}

json_t *agents_commands_take(struct db *db, int64_t id, bool all, char *err, size_t errlen)
{
	char ids[24];
	snprintf(ids, sizeof(ids), "%" PRId64, id);
	const char *p[] = { ids, all ? "true" : "false" };
	PGresult *res = db_query(db,
				 "WITH c AS (UPDATE agent_commands SET delivered_at = "
				 "coalesce(delivered_at, now()) WHERE endpoint_id = $1::bigint "
				 "AND acked_at IS NULL AND ($2::boolean OR delivered_at IS NULL) "
				 "RETURNING id, kind, args) SELECT id, kind, args::text FROM c "
				 "ORDER BY id",
				 2, p, err, errlen);
	if (!res)
		return NULL;
	json_t *list = json_array();
	for (int i = 0; i < PQntuples(res); i++) {
		json_t *args = json_loads(PQgetvalue(res, i, 2), 0, NULL);
		json_array_append_new(list, json_pack("{s:I, s:s, s:o}", "id",
						      (json_int_t)strtoll(PQgetvalue(res, i, 0),
									  NULL, 10),
						      "kind", PQgetvalue(res, i, 1), "args",
						      json_is_object(args) ? args : json_object()));
		if (args && !json_is_object(args))
			json_decref(args);
	}
	PQclear(res);
	return list;
}

/* "{1,2,3}" for n ids; NULL when out of memory. */
static char *int64_array(size_t n, const int64_t *ids)
{
	size_t cap = 3 + n * 21, len = 1;
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	buf[0] = '{';
	for (size_t i = 0; i < n; i++)
		len += (size_t)snprintf(buf + len, cap - len, "%s%" PRId64, i ? "," : "", ids[i]);
	snprintf(buf + len, cap - len, "}");
	return buf;
}

/* "{"a","b"}" for n strings, quoted so commas, quotes and backslashes stay data. */
static char *text_array(size_t n, const char *const *v)
{
	size_t cap = 3, len = 1;
	for (size_t i = 0; i < n; i++)
		cap += 2 * strlen(v[i]) + 3;
	char *buf = malloc(cap);
	if (!buf)
		return NULL;
	buf[0] = '{';
	for (size_t i = 0; i < n; i++) {
		if (i)
			buf[len++] = ',';
		buf[len++] = '"';
		for (const char *c = v[i]; *c; c++) {
			if (*c == '"' || *c == '\\')
				buf[len++] = '\\';
			buf[len++] = *c;
		}
		buf[len++] = '"';
	}
	buf[len++] = '}';
	buf[len] = '\0';
	return buf;
}

int agents_auth_batch(struct db *db, size_t n, const struct agent_auth *a, int pid, bool *done,
		      char *err, size_t errlen)
{
	int64_t *ids = malloc(n * sizeof(*ids));
	const char **modes = malloc(n * sizeof(*modes)), **status = malloc(n * sizeof(*status));
	const char **addrs = malloc(n * sizeof(*addrs));
	int64_t *beats = malloc(n * sizeof(*beats));
	char *ia = NULL, *ma = NULL, *sa = NULL, *aa = NULL, *ha = NULL, pids[16];
	PGresult *res = NULL;
	int rc = -1;
	for (size_t i = 0; i < n; i++)
		done[i] = false;
	if (!ids || !modes || !status || !addrs || !beats) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		ids[i] = a[i].id;
		modes[i] = a[i].mode;
		status[i] = a[i].reachable ? "online" : "unreachable";
		addrs[i] = a[i].address;
		beats[i] = a[i].heartbeat;
	}
	ia = int64_array(n, ids);
	ma = text_array(n, modes);
	sa = text_array(n, status);
	aa = text_array(n, addrs);
	ha = int64_array(n, beats);
	if (!ia || !ma || !sa || !aa || !ha) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	snprintf(pids, sizeof(pids), "%d", pid);
	const char *p[] = { ia, ma, sa, aa, pids, ha };
	/* The replication lock before the row locks (docs/ARCHITECTURE.md). */
	if (db_begin(db, err, errlen) != 0)
		goto out;
	if (db_exec(db, "SELECT repl_lock()", 0, NULL, err, errlen) != 0)
		goto fail;
	/*
	 * One statement for the whole batch: the status change of every agent
	 * still enrolled, a 'status' event for each one that changed, and the
	 * announcement to the other push workers, "pid:id,id,..." in chunks
	 * that stay below NOTIFY's 8000-byte payload limit. The row lock of
	 * "old" makes the recorded previous status the one being replaced.
	 */
	res = db_query(db,
		       "WITH v AS (SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], "
		       "$4::text[], $6::int[]) AS v(id, mode, status, address, heartbeat)), "
		       "old AS (SELECT e.id, e.status FROM endpoints e JOIN v ON v.id = e.id "
		       "WHERE NOT e.revoked ORDER BY e.id FOR UPDATE OF e), "
		       "upd AS (UPDATE endpoints e SET status = v.status, mode = v.mode, "
		       "address = v.address, heartbeat = v.heartbeat, last_seen = now() "
		       "FROM v, old "
		       "WHERE e.id = v.id AND old.id = v.id RETURNING e.id, old.status AS was, "
		       "e.status AS now), "
		       "ev AS (INSERT INTO events (endpoint_id, kind, severity, details) "
		       "SELECT id, 'status', 'info', jsonb_build_object('from', was, 'to', now) "
		       "FROM upd WHERE was IS DISTINCT FROM now RETURNING 1), "
		       "ann AS (SELECT pg_notify('strata_agent_auth', $5 || ':' || "
		       "string_agg(id::text, ',')) FROM (SELECT id, (row_number() OVER () - 1) / 300 "
		       "AS g FROM upd) s GROUP BY g) "
		       "SELECT id::text, (SELECT count(*) FROM ann), (SELECT count(*) FROM ev) "
		       "FROM upd",
		       6, p, err, errlen);
	if (!res || db_commit(db, err, errlen) != 0)
		goto fail;
	/* Both lists are short-lived and small next to the batch: a plain scan. */
	for (int r = 0; r < PQntuples(res); r++) {
		int64_t id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		for (size_t i = 0; i < n; i++)
			if (ids[i] == id)
				done[i] = true;
	}
	rc = 0;
	goto out;
fail:
	db_rollback(db);
out:
	PQclear(res);
	free(ids);
	free(modes);
	free(status);
	free(addrs);
	free(beats);
	free(ia);
	free(ma);
	free(sa);
	free(aa);
	free(ha);
	return rc;
}

json_t *agents_commands_take_many(struct db *db, size_t n, const int64_t *ids, bool all,
				  char *err, size_t errlen)
{
	char *ia = int64_array(n, ids);
	if (!ia) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	const char *p[] = { ia, all ? "true" : "false" };
	/* Only the endpoints this process holds: another worker's are its own to mark. */
	PGresult *res = db_query(db,
				 "WITH c AS (UPDATE agent_commands SET delivered_at = "
				 "coalesce(delivered_at, now()) WHERE endpoint_id = ANY($1::bigint[]) "
				 "AND acked_at IS NULL AND ($2::boolean OR delivered_at IS NULL) "
				 "RETURNING endpoint_id, id, kind, args) "
				 "SELECT endpoint_id, id, kind, args::text FROM c ORDER BY id",
				 2, p, err, errlen);
	free(ia);
	if (!res)
		return NULL;
	json_t *list = json_array();
	for (int i = 0; i < PQntuples(res); i++) {
		json_t *args = json_loads(PQgetvalue(res, i, 3), 0, NULL);
		json_t *cmd = json_pack("{s:I, s:s, s:o}", "id",
					(json_int_t)strtoll(PQgetvalue(res, i, 1), NULL, 10),
					"kind", PQgetvalue(res, i, 2), "args",
					json_is_object(args) ? args : json_object());
		if (args && !json_is_object(args))
			json_decref(args);
		json_array_append_new(list, json_pack("[I, o]",
						      (json_int_t)strtoll(PQgetvalue(res, i, 0),
									  NULL, 10),
						      cmd));
	}
	PQclear(res);
	return list;
}

int agents_commands_ack_many(struct db *db, size_t n, const int64_t *endpoint_ids,
			     const int64_t *command_ids, size_t *matched, char *err, size_t errlen)
{
	char *ea = int64_array(n, endpoint_ids), *ca = int64_array(n, command_ids), cnt[24];
	int rc = -1;
	*matched = 0;
	if (!ea || !ca) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	const char *p[] = { ea, ca };
	/* An ack only counts for a command of the endpoint that sent it. */
	rc = db_query_value(db,
			    "WITH a AS (UPDATE agent_commands c SET acked_at = coalesce(c.acked_at, "
			    "now()) FROM unnest($1::bigint[], $2::bigint[]) AS u(eid, cid) "
			    "WHERE c.id = u.cid AND c.endpoint_id = u.eid RETURNING 1) "
			    "SELECT count(*)::text FROM a",
			    2, p, cnt, sizeof(cnt), err, errlen);
	if (rc == 0)
		*matched = (size_t)strtoull(cnt, NULL, 10);
out:
	free(ea);
	free(ca);
	return rc;
}
