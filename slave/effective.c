#include "effective.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

void effective_free(struct effective_set *set)
{
	for (size_t i = 0; i < set->n; i++) {
		free((char *)set->p[i].name);
		free((char *)set->p[i].owner);
		free((char *)set->p[i].group);
		json_decref(set->p[i].settings);
		json_decref(set->p[i].locked);
	}
	free(set->p);
	set->p = NULL;
	set->n = 0;
}

/* Drops the settings the schema refuses; warns when told to. */
static void drop_invalid(struct policy_src *p, bool warn)
{
	const char *k;
	json_t *v;
	void *tmp;
	if (!json_is_object(p->settings)) {
		json_decref(p->settings);
		p->settings = json_object();
		return;
	}
	json_object_foreach_safe(p->settings, tmp, k, v)
	{
		char why[256];
		if (policy_setting_check(k, v, why, sizeof(why)) == 0)
			continue;
		if (warn)
			log_warnx("effective: policy '%s' (%s): %s; the setting is ignored",
				  p->name, p->owner, why);
		json_object_del(p->settings, k);
	}
}

int effective_load(struct db *db, struct effective_set *set, struct effective_seen *seen, char *err,
		   size_t errlen)
{
	memset(set, 0, sizeof(*set));
	PGresult *res = db_query(db,
				 "SELECT id, name, owner, target_group, settings::text, "
				 "to_jsonb(locked)::text, version, max(version) OVER (), "
				 "count(*) OVER () FROM policies ORDER BY id",
				 0, NULL, err, errlen);
	if (!res)
		return -1;
	size_t n = (size_t)PQntuples(res);
	set->p = calloc(n ? n : 1, sizeof(*set->p));
	if (!set->p) {
		PQclear(res);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (n) {
		set->version = strtoll(PQgetvalue(res, 0, 7), NULL, 10);
		set->count = strtoll(PQgetvalue(res, 0, 8), NULL, 10);
	}
	bool warn =
	    !seen || !seen->known || seen->version != set->version || seen->count != set->count;
	if (seen) {
		seen->known = true;
		seen->version = set->version;
		seen->count = set->count;
	}
	for (size_t i = 0; i < n; i++) {
		int r = (int)i;
		struct policy_src *p = &set->p[i];
		p->id = strtoll(PQgetvalue(res, r, 0), NULL, 10);
		p->name = strdup(PQgetvalue(res, r, 1));
		p->owner = strdup(PQgetvalue(res, r, 2));
		p->group = PQgetisnull(res, r, 3) ? NULL : strdup(PQgetvalue(res, r, 3));
		p->settings = json_loads(PQgetvalue(res, r, 4), 0, NULL);
		p->locked = json_loads(PQgetvalue(res, r, 5), 0, NULL);
		p->version = strtoll(PQgetvalue(res, r, 6), NULL, 10);
		set->n++;
		if (!p->name || !p->owner || (!PQgetisnull(res, r, 3) && !p->group)) {
			PQclear(res);
			effective_free(set);
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		drop_invalid(p, warn);
	}
	PQclear(res);
	return 0;
}

int effective_heartbeat(json_t *effective, int dflt)
{
	json_t *v = json_object_get(json_object_get(effective, "heartbeat"), "value");
	return json_is_integer(v) ? (int)json_integer_value(v) : dflt;
}

static json_t *value_text(json_t *v)
{
	if (json_is_string(v))
		return json_copy(v);
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	json_t *out = json_string(s ? s : "");
	free(s);
	return out;
}

json_t *effective_show(struct db *db, json_t *args, char *err, size_t errlen)
{
	const char *uid = json_string_value(json_object_get(args, "effective"));
	char path[512];
	if (!uid || !*uid) {
		snprintf(err, errlen, "policy show needs --effective ENDPOINT_UID");
		return NULL;
	}
	const char *p[] = { uid };
	int rc = db_query_value(db,
				"SELECT coalesce(g.path, '/') FROM endpoints e LEFT JOIN groups g "
				"ON g.id = e.group_id WHERE e.uid = $1",
				1, p, path, sizeof(path), err, errlen);
	if (rc < 0)
		return NULL;
	if (rc == 1) {
		snprintf(err, errlen, "no endpoint with uid '%s'", uid);
		return NULL;
	}
	struct effective_set set;
	if (effective_load(db, &set, NULL, err, errlen) != 0)
		return NULL;
	json_t *eff = policy_effective(set.p, set.n, path, NULL);
	int64_t version = policy_effective_version(eff);
	json_t *rows = json_array(), *v;
	const char *k;
	json_object_foreach (eff, k, v) {
		json_array_append_new(
		    rows,
		    json_pack("[s, o, O, O, O, s, I]", k, value_text(json_object_get(v, "value")),
			      json_object_get(v, "policy"), json_object_get(v, "owner"),
			      json_object_get(v, "group"),
			      json_is_true(json_object_get(v, "locked")) ? "yes" : "no",
			      (json_int_t)version));
	}
	json_decref(eff);
	effective_free(&set);
	return json_pack("{s:[s,s,s,s,s,s,s], s:o}", "columns", "setting", "value", "policy",
			 "owner", "group", "locked", "version", "rows", rows);
}

int effective_log_locked(struct db *db, json_t *changed, char *err, size_t errlen)
{
	struct effective_set set;
	if (json_array_size(changed) == 0)
		return 0;
	if (effective_load(db, &set, NULL, err, errlen) != 0)
		return -1;
	/* Every group a policy names, and the root: where a held-off change shows. */
	for (size_t g = 0; g <= set.n; g++) {
		const char *path = g < set.n ? set.p[g].group : NULL;
		bool dup = false;
		for (size_t h = 0; h < g && !dup; h++)
			dup = h < set.n &&
			      ((!path && !set.p[h].group) ||
			       (path && set.p[h].group && strcmp(path, set.p[h].group) == 0));
		if (dup)
			continue;
		json_t *blocked, *b;
		size_t i, j;
		json_t *eff = policy_effective(set.p, set.n, path, &blocked);
		json_array_foreach (blocked, i, b) {
			const char *by = json_string_value(json_object_get(b, "locked_by"));
			const char *pol = json_string_value(json_object_get(b, "policy"));
			const char *owner = json_string_value(json_object_get(b, "owner"));
			bool fresh = false;
			json_t *c;
			json_array_foreach (changed, j, c) {
				fresh = fresh || strcmp(json_string_value(c), by) == 0;
			}
			/* A policy of another group shows up on this path too: once, at its own
			 * group. */
			const char *pol_group = NULL;
			for (size_t q = 0; q < set.n; q++)
				if (strcmp(set.p[q].name, pol) == 0 &&
				    strcmp(set.p[q].owner, owner) == 0)
					pol_group = set.p[q].group;
			bool own = (!pol_group && !path) ||
				   (pol_group && path && strcmp(pol_group, path) == 0);
			if (fresh && own)
				log_warnx("effective: policy '%s' (%s) sets '%s', locked by policy "
					  "'%s' (%s): the lock wins",
					  pol, owner,
					  json_string_value(json_object_get(b, "setting")), by,
					  json_string_value(json_object_get(b, "locked_by_owner")));
		}
		json_decref(blocked);
		json_decref(eff);
	}
	effective_free(&set);
	return 0;
}

int effective_targets(struct db *db, long long *changed, char *err, size_t errlen)
{
	struct effective_set set;
	*changed = 0;
	if (effective_load(db, &set, NULL, err, errlen) != 0)
		return -1;
	PGresult *res = db_query(db, "SELECT id::text, path FROM groups", 0, NULL, err, errlen);
	if (!res) {
		effective_free(&set);
		return -1;
	}
	/* "{id,...}" and "{version,...}" for every group and the root (0): 21 bytes
	 * a number at most, with its comma. */
	int n = PQntuples(res);
	size_t cap = 3 + ((size_t)n + 1) * 22;
	char *ids = malloc(cap), *vers = malloc(cap), root[24];
	if (!ids || !vers) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	size_t li = 0, lv = 0;
	ids[li++] = '{';
	vers[lv++] = '{';
	for (int r = 0; r < n; r++) {
		json_t *eff = policy_effective(set.p, set.n, PQgetvalue(res, r, 1), NULL);
		int64_t v = policy_effective_version(eff);
		json_decref(eff);
		li += (size_t)snprintf(ids + li, cap - li, "%s%s", r ? "," : "", PQgetvalue(res, r, 0));
		lv += (size_t)snprintf(vers + lv, cap - lv, "%s%" PRId64, r ? "," : "", v);
	}
	snprintf(ids + li, cap - li, "}");
	snprintf(vers + lv, cap - lv, "}");
	json_t *eff = policy_effective(set.p, set.n, NULL, NULL);
	snprintf(root, sizeof(root), "%" PRId64, policy_effective_version(eff));
	json_decref(eff);
	PQclear(res);
	res = NULL;
	/* The groups whose target moved (or that are new here); nothing else is read. */
	const char *p[] = { ids, vers, root };
	res = db_query(db,
		       "WITH t AS (SELECT gid, v FROM unnest($1::bigint[], $2::bigint[]) AS t(gid, v) "
		       " UNION ALL SELECT 0, $3::bigint) "
		       "INSERT INTO policy_targets AS p (group_id, version) SELECT gid, v FROM t "
		       "ON CONFLICT (group_id) DO UPDATE SET version = EXCLUDED.version "
		       "WHERE p.version <> EXCLUDED.version RETURNING group_id::text, version::text",
		       3, p, err, errlen);
	if (!res)
		goto fail;
	n = PQntuples(res);
	if (n == 0)
		goto done;
	li = lv = 0;
	ids[li++] = '{';
	vers[lv++] = '{';
	for (int r = 0; r < n; r++) {
		li += (size_t)snprintf(ids + li, cap - li, "%s%s", r ? "," : "", PQgetvalue(res, r, 0));
		lv += (size_t)snprintf(vers + lv, cap - lv, "%s%s", r ? "," : "", PQgetvalue(res, r, 1));
	}
	snprintf(ids + li, cap - li, "}");
	snprintf(vers + lv, cap - lv, "}");
	PQclear(res);
	/* An endpoint whose target moved is told at once: one apply_policy, unless
	 * one is still waiting for it (an offline agent needs only one). */
	const char *q[] = { ids, vers };
	res = db_query(db,
		       "WITH m AS (SELECT * FROM unnest($1::bigint[], $2::bigint[]) AS m(gid, v)), "
		       "u AS (UPDATE endpoints e SET policy_target = m.v FROM m "
		       " WHERE coalesce(e.group_id, 0) = m.gid AND NOT e.revoked "
		       " AND e.policy_target <> m.v RETURNING e.id), "
		       "c AS (INSERT INTO agent_commands (endpoint_id, kind) SELECT u.id, 'apply_policy' "
		       " FROM u WHERE NOT EXISTS (SELECT 1 FROM agent_commands a WHERE "
		       " a.endpoint_id = u.id AND a.kind = 'apply_policy' AND a.acked_at IS NULL)) "
		       "SELECT count(*)::text FROM u",
		       2, q, err, errlen);
	if (!res)
		goto fail;
	*changed = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
done:
	PQclear(res);
	free(ids);
	free(vers);
	effective_free(&set);
	return 0;
fail:
	PQclear(res);
	free(ids);
	free(vers);
	effective_free(&set);
	return -1;
}
