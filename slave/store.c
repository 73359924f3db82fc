#include "store.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbjson.h"
#include "effective.h"
#include "log.h"
#include "proto.h"

static const char *arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

/* Refuses changes to master-owned rows with the owner's name. */
static int check_local(struct db *db, bool is_task, const char *name, char *err, size_t errlen)
{
	char owner[128];
	const char *p[] = { name };
	int rc = db_query_value(db,
				is_task ? "SELECT owner FROM tasks WHERE name = $1 ORDER BY owner = 'local' DESC LIMIT 1"
					: "SELECT owner FROM policies WHERE name = $1 ORDER BY owner = 'local' DESC LIMIT 1",
				1, p, owner, sizeof(owner), err, errlen);
	if (rc < 0)
		return -1;
	if (rc == 1) {
		snprintf(err, errlen, "no %s named '%s'", is_task ? "task" : "policy", name);
		return -1;
	}
	if (strcmp(owner, "local") != 0) {
		snprintf(err, errlen,
			 "%s '%s' is owned by %s and is read-only on this slave; change it on the "
			 "master",
			 is_task ? "task" : "policy", name, owner);
		return -1;
	}
	return 0;
}

/*
 * The checks of a local policy's settings at group: the schema, then the
 * locks of the master-owned policies at that group or above.
 */
static int local_policy_check(struct db *db, json_t *args, const char *group, json_t *settings,
			      char *err, size_t errlen)
{
	struct effective_set set;
	if (json_object_get(args, "lock") || json_object_get(args, "unlock")) {
		snprintf(err, errlen,
			 "locks are set by master-owned policies; a local policy "
			 "cannot lock a setting");
		return -1;
	}
	if (policy_settings_check(settings, err, errlen) != 0)
		return -1;
	if (effective_load(db, &set, NULL, err, errlen) != 0)
		return -1;
	int rc = policy_local_check(set.p, set.n, group, settings, err, errlen);
	effective_free(&set);
	return rc;
}

json_t *store_create(struct db *db, bool is_task, json_t *args, char *err, size_t errlen)
{
	const char *name = arg_str(args, "name"), *kind = arg_str(args, "kind");
	json_t *body = json_object_get(args, is_task ? "params" : "settings");
	if (!name || !*name || strlen(name) > 200) {
		snprintf(err, errlen, "name is required (1 to 200 characters)");
		return NULL;
	}
	if ((!is_task && !json_is_object(body)) || (is_task && body && !json_is_object(body))) {
		snprintf(err, errlen, "%s must be a JSON object", is_task ? "params" : "settings");
		return NULL;
	}
	if (is_task && (!kind || !*kind)) {
		snprintf(err, errlen, "kind is required");
		return NULL;
	}
	const char *group = NULL;
	if (!is_task && (proto_group_arg(args, &group, err, errlen) != 0 ||
			 local_policy_check(db, args, group, body, err, errlen) != 0))
		return NULL;
	char *body_s = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
	const char *p[] = { name, body_s, is_task ? kind : group };
	int rc =
	    db_exec(db,
		    is_task ? "INSERT INTO tasks (name, params, kind) VALUES ($1, $2::jsonb, $3)"
			    : "INSERT INTO policies (name, settings, target_group) "
			      "VALUES ($1, $2::jsonb, $3)",
		    3, p, err, errlen);
	free(body_s);
	if (rc != 0) {
		if (strcmp(db_last_sqlstate(db), "23505") == 0)
			snprintf(err, errlen, "a local %s named '%s' already exists",
				 is_task ? "task" : "policy", name);
		return NULL;
	}
	return json_pack("{s:s+}", "message", is_task ? "local task created: " : "local policy created: ",
			 name);
}

/* New settings, a new group or both; the result is checked as a whole. */
static json_t *local_policy_update(struct db *db, json_t *args, const char *name, json_t *body,
				   char *err, size_t errlen)
{
	const char *group;
	bool regroup = json_object_get(args, "group") != NULL;
	if (body && !json_is_object(body)) {
		snprintf(err, errlen, "settings must be a JSON object");
		return NULL;
	}
	if (!body && !regroup) {
		snprintf(err, errlen,
			 "nothing to change: give --settings JSON and/or --group PATH");
		return NULL;
	}
	if (proto_group_arg(args, &group, err, errlen) != 0)
		return NULL;
	const char *q[] = { name };
	PGresult *res = db_query(db,
				 "SELECT settings::text, target_group FROM policies "
				 "WHERE name = $1 AND owner = 'local'",
				 1, q, err, errlen);
	if (!res)
		return NULL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		snprintf(err, errlen, "no local policy named '%s'", name);
		return NULL;
	}
	json_t *cur = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	char cur_group[512] = "";
	bool had_group = !PQgetisnull(res, 0, 1);
	snprintf(cur_group, sizeof(cur_group), "%s", PQgetvalue(res, 0, 1));
	PQclear(res);
	if (!regroup)
		group = had_group ? cur_group : NULL;
	json_t *settings = body ? body : cur;
	json_t *out = NULL;
	char *body_s = NULL;
	if (local_policy_check(db, args, group, settings, err, errlen) != 0)
		goto done;
	body_s = json_dumps(settings, JSON_COMPACT);
	const char *p[] = { name, body_s, group };
	if (db_exec(
		db,
		"UPDATE policies SET settings = $2::jsonb, target_group = $3, updated_at = now() "
		"WHERE name = $1 AND owner = 'local'",
		3, p, err, errlen) == 0)
		out = json_pack("{s:s+}", "message", "local policy updated: ", name);
done:
	free(body_s);
	json_decref(cur);
	return out;
}

json_t *store_update(struct db *db, bool is_task, json_t *args, char *err, size_t errlen)
{
	const char *name = arg_str(args, "name");
	json_t *body = json_object_get(args, is_task ? "params" : "settings");
	if (!name) {
		snprintf(err, errlen, "name is required");
		return NULL;
	}
	if (check_local(db, is_task, name, err, errlen) != 0)
		return NULL;
	if (json_object_get(args, "slaves") || json_object_get(args, "all")) {
		snprintf(err, errlen, "targets are set on the master; a slave's own %s applies here",
			 is_task ? "task" : "policy");
		return NULL;
	}
	if (!is_task)
		return local_policy_update(db, args, name, body, err, errlen);
	if (!json_is_object(body)) {
		snprintf(err, errlen, "%s must be a JSON object", is_task ? "params" : "settings");
		return NULL;
	}
	char *body_s = json_dumps(body, JSON_COMPACT);
	const char *p[] = { name, body_s };
	int rc = db_exec(db,
			 is_task ? "UPDATE tasks SET params = $2::jsonb, updated_at = now() "
				   "WHERE name = $1 AND owner = 'local'"
				 : "UPDATE policies SET settings = $2::jsonb, updated_at = now() "
				   "WHERE name = $1 AND owner = 'local'",
			 2, p, err, errlen);
	free(body_s);
	if (rc != 0)
		return NULL;
	return json_pack("{s:s+}", "message", is_task ? "local task updated: " : "local policy updated: ",
			 name);
}

json_t *store_delete(struct db *db, bool is_task, json_t *args, char *err, size_t errlen)
{
	const char *name = arg_str(args, "name");
	if (!name) {
		snprintf(err, errlen, "name is required");
		return NULL;
	}
	if (check_local(db, is_task, name, err, errlen) != 0)
		return NULL;
	const char *p[] = { name };
	if (db_exec(db,
		    is_task ? "DELETE FROM tasks WHERE name = $1 AND owner = 'local'"
			    : "DELETE FROM policies WHERE name = $1 AND owner = 'local'",
		    1, p, err, errlen) != 0)
		return NULL;
	return json_pack("{s:s+}", "message", is_task ? "local task deleted: " : "local policy deleted: ",
			 name);
}

json_t *store_list(struct db *db, bool is_task, char *err, size_t errlen)
{
	return dbjson_query(
	    db,
	    is_task ? "SELECT name, owner, kind, params, owner <> 'local' AS read_only, "
		      "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS "
		      "updated "
		      "FROM tasks ORDER BY name, owner"
		    : "SELECT name, owner, settings, coalesce(target_group, '/') AS \"group\", "
		      "array_to_string(locked, ',') AS locked, owner <> 'local' AS read_only, "
		      "to_char(updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS "
		      "updated "
		      "FROM policies ORDER BY name, owner",
	    0, NULL, err, errlen);
}

/*
 * Stores a master-owned task. The first time it arrives it is also sent to
 * the endpoints it targets here (its group and the subgroups, or every
 * endpoint): a 'pending' result and a run_task command for each, in the
 * download's transaction, so the command and the result row exist
 * together or not at all. Later changes to the task are stored but not
 * run again; endpoints enrolled afterwards do not get it.
 */
static int apply_task(struct db *db, const char *owner, const char *id_s, const char *name,
		      const char *kind, json_t *params, json_t *item, char *err, size_t errlen)
{
	json_t *g = json_object_get(item, "group");
	const char *group = json_string_value(g);
	if ((g && !group) || (group && !proto_group_path_valid(group))) {
		snprintf(err, errlen, "download task %s: invalid group path", id_s);
		return -1;
	}
	char *params_s = json_dumps(params, JSON_COMPACT);
	if (!params_s) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	const char *p[] = { id_s, owner, name, params_s, kind, group };
	PGresult *res = db_query(db,
				 "INSERT INTO tasks (master_id, owner, name, params, kind, target_group) "
				 "VALUES ($1::bigint, $2, $3, $4::jsonb, $5, $6) ON CONFLICT (master_id) "
				 "DO UPDATE SET owner = EXCLUDED.owner, name = EXCLUDED.name, "
				 "params = EXCLUDED.params, kind = EXCLUDED.kind, "
				 "target_group = EXCLUDED.target_group, updated_at = now() "
				 "RETURNING id::text, (xmax = 0)::text",
				 6, p, err, errlen);
	if (!res) {
		free(params_s);
		return -1;
	}
	char local_id[24];
	snprintf(local_id, sizeof(local_id), "%s", PQgetvalue(res, 0, 0));
	bool created = strcmp(PQgetvalue(res, 0, 1), "true") == 0;
	PQclear(res);
	if (!created) {
		free(params_s);
		return 0;
	}
	const char *q[] = { local_id, group, kind, params_s };
	res = db_query(db,
		       "WITH t AS (SELECT e.id FROM endpoints e LEFT JOIN groups g ON g.id = e.group_id "
		       "WHERE NOT e.revoked AND ($2::text IS NULL OR g.path = $2 "
		       "OR left(g.path, length($2) + 1) = $2 || '/')), "
		       "r AS (INSERT INTO task_results (task_id, endpoint_id, status) "
		       "SELECT $1::bigint, id, 'pending' FROM t ON CONFLICT DO NOTHING) "
		       "INSERT INTO agent_commands (endpoint_id, kind, args) "
		       "SELECT id, 'run_task', jsonb_build_object('task_id', $1::bigint, 'kind', $3::text, "
		       "'params', $4::jsonb) FROM t RETURNING 1",
		       4, q, err, errlen);
	free(params_s);
	if (!res)
		return -1;
	log_notice("store: task '%s' of %s sent to %d endpoint(s)%s%s", name, owner, PQntuples(res),
		   group ? " of group " : "", group ? group : "");
	PQclear(res);
	return 0;
}

static int apply_item(struct db *db, bool is_task, const char *owner, json_t *item, char *err,
		      size_t errlen)
{
	json_int_t id;
	int present;
	char id_s[24];
	if (json_unpack(item, "{s:I, s:b}", "id", &id, "present", &present) != 0) {
		snprintf(err, errlen, "download item without id/present");
		return -1;
	}
	snprintf(id_s, sizeof(id_s), "%" PRId64, (int64_t)id);
	if (!present) {
		const char *p[] = { id_s };
		/* A withdrawn task's commands not yet taken by an agent go with it,
		 * and so do the results that were only waiting for them. */
		return db_exec(db,
			       is_task ? "WITH d AS (DELETE FROM tasks WHERE master_id = $1::bigint "
					 "AND owner <> 'local' RETURNING id), "
					 "c AS (DELETE FROM agent_commands c USING d WHERE c.kind = "
					 "'run_task' AND c.acked_at IS NULL "
					 "AND (c.args->>'task_id')::bigint = d.id RETURNING 1) "
					 "DELETE FROM task_results r USING d WHERE r.task_id = d.id "
					 "AND r.status = 'pending'"
				       : "DELETE FROM policies WHERE master_id = $1::bigint AND owner <> 'local'",
			       1, p, err, errlen);
	}
	const char *name = json_string_value(json_object_get(item, "name"));
	json_t *body = json_object_get(item, is_task ? "params" : "settings");
	const char *kind = json_string_value(json_object_get(item, "kind"));
	if (!name || !json_is_object(body) || (is_task && !kind)) {
		snprintf(err, errlen, "download %s %s is incomplete", is_task ? "task" : "policy",
			 id_s);
		return -1;
	}
	if (is_task)
		return apply_task(db, owner, id_s, name, kind, body, item, err, errlen);
	/* A policy the schema refuses is refused whole, and with it the download. */
	char why[512];
	json_t *locked = json_object_get(item, "locked");
	json_t *g = json_object_get(item, "group");
	const char *group = json_string_value(g);
	if (policy_settings_check(body, why, sizeof(why)) != 0 ||
	    policy_locks_check(body, locked, why, sizeof(why)) != 0) {
		snprintf(err, errlen, "download policy %s '%s': %s", id_s, name, why);
		return -1;
	}
	if ((g && !group) || (group && strcmp(group, "/") != 0 && !proto_group_path_valid(group))) {
		snprintf(err, errlen, "download policy %s '%s': invalid group path", id_s, name);
		return -1;
	}
	if (group && strcmp(group, "/") == 0)
		group = NULL;
	char *body_s = json_dumps(body, JSON_COMPACT);
	char *locked_s = locked ? json_dumps(locked, JSON_COMPACT) : strdup("[]");
	const char *p[] = { id_s, owner, name, body_s, group, locked_s };
	int rc =
	    db_exec(db,
		    "INSERT INTO policies (master_id, owner, name, settings, target_group, locked) "
		    "VALUES ($1::bigint, $2, $3, $4::jsonb, $5, "
		    "ARRAY(SELECT jsonb_array_elements_text($6::jsonb))) ON CONFLICT (master_id) "
		    "DO UPDATE SET owner = EXCLUDED.owner, name = EXCLUDED.name, "
		    "settings = EXCLUDED.settings, target_group = EXCLUDED.target_group, "
		    "locked = EXCLUDED.locked, updated_at = now()",
		    6, p, err, errlen);
	free(body_s);
	free(locked_s);
	return rc;
}

int store_apply_download(struct db *db, const char *master, json_t *payload, int64_t *version,
			 int *items, char *err, size_t errlen)
{
	json_int_t v;
	int more;
	json_t *pol, *tasks, *item;
	size_t i;
	char owner[128], vs[24];
	if (json_unpack(payload, "{s:I, s:b, s:o, s:o !}", "version", &v, "more", &more,
			"policies", &pol, "tasks", &tasks) != 0 ||
	    !json_is_array(pol) || !json_is_array(tasks)) {
		snprintf(err, errlen, "DOWNLOAD must be {version, more, policies[], tasks[]}");
		return -1;
	}
	snprintf(owner, sizeof(owner), "master:%s", master);
	snprintf(vs, sizeof(vs), "%" PRId64, (int64_t)v);
	if (db_begin(db, err, errlen) != 0)
		return -1;
	/* Take the change-capture lock first: this transaction writes two
	 * replicated tables and must not deadlock with another writer. An
	 * empty download writes none, and must not wait behind a long local
	 * transaction that holds the lock. */
	if (json_array_size(pol) + json_array_size(tasks) > 0 &&
	    db_exec(db, "SELECT repl_lock()", 0, NULL, err, errlen) != 0)
		goto fail;
	json_array_foreach(pol, i, item)
	{
		if (apply_item(db, false, owner, item, err, errlen) != 0)
			goto fail;
	}
	json_array_foreach(tasks, i, item)
	{
		if (apply_item(db, true, owner, item, err, errlen) != 0)
			goto fail;
	}
	const char *p[] = { vs };
	if (db_exec(db, "UPDATE sync_state SET publication_version = $1::bigint", 1, p, err,
		    errlen) != 0)
		goto fail;
	if (db_commit(db, err, errlen) != 0)
		return -1;
	*version = v;
	*items = (int)(json_array_size(pol) + json_array_size(tasks));
	/* A lock that arrived over a local policy's setting: the lock wins, said once. */
	json_t *locking = json_array();
	json_array_foreach (pol, i, item) {
		if (json_array_size(json_object_get(item, "locked")) > 0)
			json_array_append(locking, json_object_get(item, "name"));
	}
	char why[512];
	if (effective_log_locked(db, locking, why, sizeof(why)) != 0)
		log_warnx("store: cannot check the new locks: %s", why);
	json_decref(locking);
	return 0;
fail:
	db_rollback(db);
	return -1;
}

int store_detach_master(struct db *db, char *err, size_t errlen)
{
	if (db_begin(db, err, errlen) != 0)
		return -1;
	if (db_exec(db, "SELECT repl_lock()", 0, NULL, err, errlen) != 0)
		goto fail;
	/* A local row of the same name keeps its name; the copy is renamed. */
	if (db_exec(db,
		    "UPDATE policies p SET owner = 'local', master_id = NULL, "
		    "name = CASE WHEN EXISTS (SELECT 1 FROM policies l WHERE l.owner = 'local' "
		    "AND l.name = p.name) THEN p.name || ' (copy of ' || p.owner || ')' ELSE p.name END "
		    "WHERE owner <> 'local'",
		    0, NULL, err, errlen) != 0)
		goto fail;
	if (db_exec(db,
		    "UPDATE tasks t SET owner = 'local', master_id = NULL, "
		    "name = CASE WHEN EXISTS (SELECT 1 FROM tasks l WHERE l.owner = 'local' "
		    "AND l.name = t.name) THEN t.name || ' (copy of ' || t.owner || ')' ELSE t.name END "
		    "WHERE owner <> 'local'",
		    0, NULL, err, errlen) != 0)
		goto fail;
	if (db_exec(db,
		    "UPDATE sync_state SET registration = 'unregistered', publication_version = 0, "
		    "next_due = NULL",
		    0, NULL, err, errlen) != 0)
		goto fail;
	if (db_commit(db, err, errlen) != 0)
		return -1;
	log_notice("store: master-owned policies and tasks kept as local copies");
	return 0;
fail:
	db_rollback(db);
	return -1;
}
