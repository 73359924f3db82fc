#include "publish.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dbjson.h"
#include "policy.h"
#include "log.h"
#include "proto.h"
#include "registry.h"

json_t *publish_chunk(struct db *db, const char *name, int64_t after, int64_t *version,
		      bool *more, int *items, char *err, size_t errlen)
{
	char after_s[24], limit_s[16];
	snprintf(after_s, sizeof(after_s), "%" PRId64, after);
	snprintf(limit_s, sizeof(limit_s), "%d", PUBLISH_CHUNK_ITEMS);
	const char *p[] = { after_s, name, limit_s };
	PGresult *res = db_query(
	    db,
	    "SELECT kind, id, name, body, version, present FROM ("
	    " SELECT 'policy' AS kind, id, name, jsonb_build_object('settings', settings,"
	    "  'locked', to_jsonb(locked)) || CASE WHEN target_group IS NULL THEN '{}'::jsonb"
	    "  ELSE jsonb_build_object('group', target_group) END AS body, NULL::text AS task_kind,"
	    "  version,"
	    "  NOT deleted AND (target_all OR $2 = ANY (target_slaves)) AS present"
	    " FROM policies WHERE version > $1::bigint"
	    " UNION ALL"
	    " SELECT 'task', id, name, jsonb_strip_nulls(jsonb_build_object('kind', kind, 'params',"
	    "  params, 'group', target_group)), kind,"
	    "  version, NOT deleted AND (target_all OR $2 = ANY (target_slaves))"
	    " FROM tasks WHERE version > $1::bigint"
	    ") c ORDER BY version LIMIT $3::int",
	    3, p, err, errlen);
	if (!res)
		return NULL;
	json_t *pol = json_array(), *tasks = json_array();
	int n = PQntuples(res);
	*version = after;
	for (int r = 0; r < n; r++) {
		bool is_task = strcmp(PQgetvalue(res, r, 0), "task") == 0;
		bool present = PQgetvalue(res, r, 5)[0] == 't';
		json_t *item = json_pack("{s:I, s:b}", "id",
					 (json_int_t)strtoll(PQgetvalue(res, r, 1), NULL, 10),
					 "present", present);
		if (present) {
			json_object_set_new(item, "name", json_string(PQgetvalue(res, r, 2)));
			json_t *body = dbjson_cell(res, r, 3);
			json_object_update(item, body);
			json_decref(body);
		}
		json_array_append_new(is_task ? tasks : pol, item);
		*version = strtoll(PQgetvalue(res, r, 4), NULL, 10);
	}
	PQclear(res);
	*more = n == PUBLISH_CHUNK_ITEMS;
	*items = n;
	return json_pack("{s:I, s:b, s:o, s:o}", "version", (json_int_t)*version, "more", *more,
			 "policies", pol, "tasks", tasks);
}

/* Turns args.slaves (array of names) into a PostgreSQL text[] literal
 * passed as a parameter; every name is checked first. */
static int targets_param(json_t *args, bool *all, char *buf, size_t buflen, char *err,
			 size_t errlen)
{
	json_t *slaves = json_object_get(args, "slaves");
	size_t i, off = 0;
	json_t *v;
	*all = slaves == NULL || json_is_true(json_object_get(args, "all"));
	snprintf(buf, buflen, "{}");
	if (*all)
		return 0;
	if (!json_is_array(slaves) || json_array_size(slaves) == 0) {
		snprintf(err, errlen, "slaves must be a non-empty list of slave names");
		return -1;
	}
	off += (size_t)snprintf(buf + off, buflen - off, "{");
	json_array_foreach(slaves, i, v)
	{
		const char *s = json_string_value(v);
		if (!s || !reg_name_valid(s)) {
			snprintf(err, errlen, "invalid slave name in target list: '%s'",
				 s ? s : "(not a string)");
			return -1;
		}
		if (off + strlen(s) + 3 >= buflen) {
			snprintf(err, errlen, "target list too long");
			return -1;
		}
		off += (size_t)snprintf(buf + off, buflen - off, "%s%s", i ? "," : "", s);
	}
	snprintf(buf + off, buflen - off, "}");
	return 0;
}

static const char *arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

/* A checked list of setting names as a PostgreSQL text[] literal ("{}" for NULL). */
static char *text_array_param(json_t *names)
{
	size_t i, len = 3;
	json_t *v;
	json_array_foreach (names, i, v)
		len += strlen(json_string_value(v)) + 1;
	char *buf = malloc(len);
	if (!buf)
		return NULL;
	size_t off = (size_t)snprintf(buf, len, "{");
	json_array_foreach (names, i, v) {
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "," : "",
					json_string_value(v));
	}
	snprintf(buf + off, len - off, "}");
	return buf;
}

json_t *publish_create(struct db *db, bool is_task, json_t *args, char *err, size_t errlen)
{
	const char *name = arg_str(args, "name");
	json_t *body = json_object_get(args, is_task ? "params" : "settings");
	const char *kind = arg_str(args, "kind");
	char targets[4096];
	bool all;
	if (!name || !*name || strlen(name) > 200) {
		snprintf(err, errlen, "name is required (1 to 200 characters)");
		return NULL;
	}
	if (!is_task && !json_is_object(body)) {
		snprintf(err, errlen, "settings must be a JSON object");
		return NULL;
	}
	if (is_task && (!kind || !*kind)) {
		snprintf(err, errlen, "kind is required");
		return NULL;
	}
	/* The kinds agents run; anything else would only fail on every endpoint. */
	if (is_task && strcmp(kind, "inventory") != 0 && strcmp(kind, "scan") != 0) {
		snprintf(err, errlen, "unknown task kind '%s': use inventory or scan", kind);
		return NULL;
	}
	const char *group;
	if (proto_group_arg(args, &group, err, errlen) != 0)
		return NULL;
	json_t *locked = json_object_get(args, "lock");
	if (!is_task && (policy_settings_check(body, err, errlen) != 0 ||
			 policy_locks_check(body, locked, err, errlen) != 0))
		return NULL;
	if (is_task && locked) {
		snprintf(err, errlen, "--lock is for policies");
		return NULL;
	}
	char *locked_s = NULL;
	if (!is_task && !(locked_s = text_array_param(locked))) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (is_task && body && !json_is_object(body)) {
		snprintf(err, errlen, "params must be a JSON object");
		return NULL;
	}
	if (targets_param(args, &all, targets, sizeof(targets), err, errlen) != 0) {
		free(locked_s);
		return NULL;
	}
	char *body_s = body ? json_dumps(body, JSON_COMPACT) : strdup("{}");
	const char *p[] = {
		name, body_s, all ? "true" : "false", targets, is_task ? kind : locked_s, group
	};
	PGresult *res = db_query(
	    db,
	    is_task ? "INSERT INTO tasks (name, params, target_all, target_slaves, kind, "
		      "target_group) VALUES ($1, $2::jsonb, $3::boolean, $4::text[], $5, $6) "
		      "RETURNING id, version"
		    : "INSERT INTO policies (name, settings, target_all, target_slaves, locked, "
		      "target_group) VALUES ($1, $2::jsonb, $3::boolean, $4::text[], $5::text[], "
		      "$6) RETURNING id, version",
	    6, p, err, errlen);
	free(body_s);
	free(locked_s);
	if (!res) {
		if (strstr(err, "23505"))
			snprintf(err, errlen, "a %s named '%s' already exists",
				 is_task ? "task" : "policy", name);
		return NULL;
	}
	json_t *out = json_pack("{s:s+}", "message", is_task ? "task created: " : "policy created: ",
				name);
	log_notice("publish: %s '%s' created (version %s)", is_task ? "task" : "policy", name,
		   PQgetvalue(res, 0, 1));
	PQclear(res);
	return out;
}

/*
 * A policy's settings, locks and group may change separately: the result
 * is checked as a whole (a lock needs its setting) before it is stored.
 */
static json_t *policy_update(struct db *db, json_t *args, char *err, size_t errlen)
{
	const char *name = arg_str(args, "name");
	json_t *settings = json_object_get(args, "settings"),
	       *locked = json_object_get(args, "lock");
	const char *group;
	char targets[4096];
	bool all;
	if (proto_group_arg(args, &group, err, errlen) != 0)
		return NULL;
	const char *q[] = { name };
	PGresult *res = db_query(db,
				 "SELECT settings::text, to_jsonb(locked)::text FROM policies "
				 "WHERE name = $1 AND NOT deleted",
				 1, q, err, errlen);
	if (!res)
		return NULL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		snprintf(err, errlen, "no policy named '%s'", name);
		return NULL;
	}
	json_t *cur_settings = json_loads(PQgetvalue(res, 0, 0), 0, NULL);
	json_t *cur_locked = json_loads(PQgetvalue(res, 0, 1), 0, NULL);
	PQclear(res);
	json_t *new_settings = settings ? settings : cur_settings;
	json_t *none = json_array();
	json_t *new_locked = json_is_true(json_object_get(args, "unlock")) ? none
			     : locked					       ? locked
									       : cur_locked;
	json_t *out = NULL;
	char *body_s = NULL, *locked_s = NULL;
	if (policy_settings_check(new_settings, err, errlen) != 0)
		goto done;
	if (policy_locks_check(new_settings, new_locked, err, errlen) != 0) {
		if (!locked)
			snprintf(err + strlen(err), errlen - strlen(err),
				 " (locked now: change --lock too)");
		goto done;
	}
	bool retarget =
	    json_object_get(args, "slaves") || json_is_true(json_object_get(args, "all"));
	if (retarget && targets_param(args, &all, targets, sizeof(targets), err, errlen) != 0)
		goto done;
	body_s = json_dumps(new_settings, JSON_COMPACT);
	locked_s = text_array_param(new_locked);
	if (!body_s || !locked_s) {
		snprintf(err, errlen, "out of memory");
		goto done;
	}
	bool regroup = json_object_get(args, "group") != NULL;
	const char *p[] = { name,
			    body_s,
			    retarget ? (all ? "true" : "false") : NULL,
			    retarget ? targets : NULL,
			    locked_s,
			    regroup ? "true" : "false",
			    group };
	res = db_query(db,
		       "UPDATE policies SET settings = $2::jsonb, "
		       "target_all = coalesce($3::boolean, target_all), "
		       "target_slaves = coalesce($4::text[], target_slaves), locked = $5::text[], "
		       "target_group = CASE WHEN $6::boolean THEN $7 ELSE target_group END "
		       "WHERE name = $1 AND NOT deleted RETURNING version",
		       7, p, err, errlen);
	if (!res)
		goto done;
	if (PQntuples(res) == 0) {
		snprintf(err, errlen, "no policy named '%s'", name);
	} else {
		log_notice("publish: policy '%s' updated (version %s)", name,
			   PQgetvalue(res, 0, 0));
		out = json_pack("{s:s+}", "message", "policy updated: ", name);
	}
	PQclear(res);
done:
	free(body_s);
	free(locked_s);
	json_decref(cur_settings);
	json_decref(cur_locked);
	json_decref(none);
	return out;
}

json_t *publish_update(struct db *db, bool is_task, json_t *args, char *err, size_t errlen)
{
	const char *name = arg_str(args, "name");
	json_t *body = json_object_get(args, is_task ? "params" : "settings");
	char targets[4096];
	bool all;
	if (!name) {
		snprintf(err, errlen, "name is required");
		return NULL;
	}
	if (body && !json_is_object(body)) {
		snprintf(err, errlen, "%s must be a JSON object", is_task ? "params" : "settings");
		return NULL;
	}
	if (!is_task)
		return policy_update(db, args, err, errlen);
	bool retarget =
	    json_object_get(args, "slaves") || json_is_true(json_object_get(args, "all"));
	if (retarget && targets_param(args, &all, targets, sizeof(targets), err, errlen) != 0)
		return NULL;
	char *body_s = body ? json_dumps(body, JSON_COMPACT) : NULL;
	const char *p[] = { name, body_s, retarget ? (all ? "true" : "false") : NULL,
			    retarget ? targets : NULL };
	PGresult *res = db_query(
		db,
		is_task ? "UPDATE tasks SET params = coalesce($2::jsonb, params), "
			  "target_all = coalesce($3::boolean, target_all), "
			  "target_slaves = coalesce($4::text[], target_slaves) "
			  "WHERE name = $1 AND NOT deleted RETURNING version"
			: "UPDATE policies SET settings = coalesce($2::jsonb, settings), "
			  "target_all = coalesce($3::boolean, target_all), "
			  "target_slaves = coalesce($4::text[], target_slaves) "
			  "WHERE name = $1 AND NOT deleted RETURNING version",
		4, p, err, errlen);
	free(body_s);
	if (!res)
		return NULL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		snprintf(err, errlen, "no %s named '%s'", is_task ? "task" : "policy", name);
		return NULL;
	}
	log_notice("publish: %s '%s' updated (version %s)", is_task ? "task" : "policy", name,
		   PQgetvalue(res, 0, 0));
	PQclear(res);
	return json_pack("{s:s+}", "message", is_task ? "task updated: " : "policy updated: ", name);
}

json_t *publish_delete(struct db *db, bool is_task, json_t *args, char *err, size_t errlen)
{
	const char *name = arg_str(args, "name");
	if (!name) {
		snprintf(err, errlen, "name is required");
		return NULL;
	}
	const char *p[] = { name };
	PGresult *res = db_query(db,
				 is_task ? "UPDATE tasks SET deleted = true WHERE name = $1 "
					   "AND NOT deleted RETURNING version"
					 : "UPDATE policies SET deleted = true WHERE name = $1 "
					   "AND NOT deleted RETURNING version",
				 1, p, err, errlen);
	if (!res)
		return NULL;
	int n = PQntuples(res);
	PQclear(res);
	if (n == 0) {
		snprintf(err, errlen, "no %s named '%s'", is_task ? "task" : "policy", name);
		return NULL;
	}
	log_notice("publish: %s '%s' deleted", is_task ? "task" : "policy", name);
	return json_pack("{s:s+}", "message", is_task ? "task deleted: " : "policy deleted: ", name);
}

json_t *publish_list(struct db *db, bool is_task, char *err, size_t errlen)
{
	return dbjson_query(db,
			    is_task ? "SELECT name, kind, params, CASE WHEN target_all THEN 'all' "
				      "ELSE array_to_string(target_slaves, ',') END AS targets, "
				      "coalesce(target_group, '/') AS \"group\", version "
				      "FROM tasks WHERE NOT deleted ORDER BY name"
				    : "SELECT name, settings, CASE WHEN target_all THEN 'all' "
				      "ELSE array_to_string(target_slaves, ',') END AS targets, "
				      "coalesce(target_group, '/') AS \"group\", "
				      "array_to_string(locked, ',') AS locked, version "
				      "FROM policies WHERE NOT deleted ORDER BY name",
			    0, NULL, err, errlen);
}
