#include "report.h"

#include <stdio.h>

#include "dbjson.h"

json_t *report_endpoints(struct db *db, char *err, size_t errlen)
{
	/* From the counters (migration 0007), not the endpoints themselves. */
	return dbjson_query(
		db,
		"SELECT * FROM (WITH counts AS ("
		" SELECT slave_id, sum(n) FILTER (WHERE status = 'online')::bigint AS online,"
		"  sum(n) FILTER (WHERE status = 'offline')::bigint AS offline,"
		"  sum(n) FILTER (WHERE status = 'unreachable')::bigint AS unreachable,"
		"  sum(n)::bigint AS total FROM endpoint_counts GROUP BY slave_id) "
		"SELECT s.name AS slave, s.health AS state, coalesce(c.online, 0) AS online,"
		" coalesce(c.offline, 0) AS offline, coalesce(c.unreachable, 0) AS unreachable,"
		" coalesce(c.total, 0) AS total,"
		" to_char(s.last_sync_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_sync,"
		" s.data_age_s "
		"FROM slave_status s LEFT JOIN counts c ON c.slave_id = s.id "
		"WHERE s.state NOT IN ('unregistered', 'pending') "
		"UNION ALL "
		"SELECT '(all)', NULL, coalesce(sum(c.online), 0)::bigint, "
		" coalesce(sum(c.offline), 0)::bigint, coalesce(sum(c.unreachable), 0)::bigint, "
		" coalesce(sum(c.total), 0)::bigint, NULL, max(s.data_age_s) "
		"FROM slave_status s LEFT JOIN counts c ON c.slave_id = s.id "
		"WHERE s.state NOT IN ('unregistered', 'pending') "
		") r ORDER BY slave = '(all)', slave",
		0, NULL, err, errlen);
}

/* Every report ends with this: the slaves whose data it counts, and how old that data is. */
#define SLAVES_AGE_SQL                                                                             \
	"SELECT s.name AS slave, s.health AS state, "                                              \
	"(s.health <> 'active' OR s.last_sync_at IS NULL) AS late, "                                \
	"to_char(s.last_sync_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_sync, " \
	"s.data_age_s FROM slave_status s WHERE s.state NOT IN ('unregistered', 'pending') "       \
	"ORDER BY s.name"

/* A task result counter's sums by status, columns pending..total. */
#define STATUS_SUMS                                                                                \
	" coalesce(sum(r.n) FILTER (WHERE r.status = 'pending'), 0)::bigint AS pending,"           \
	" coalesce(sum(r.n) FILTER (WHERE r.status = 'running'), 0)::bigint AS running,"           \
	" coalesce(sum(r.n) FILTER (WHERE r.status = 'succeeded'), 0)::bigint AS succeeded,"       \
	" coalesce(sum(r.n) FILTER (WHERE r.status = 'failed'), 0)::bigint AS failed,"             \
	" sum(r.n)::bigint AS total "

/* {"sections": [{title, columns, rows}...]}; takes the tables (NULL tables fail). */
static json_t *sections(const char *t1, json_t *a, const char *t2, json_t *b)
{
	if (!a || !b) {
		json_decref(a);
		json_decref(b);
		return NULL;
	}
	json_object_set_new(a, "title", json_string(t1));
	json_object_set_new(b, "title", json_string(t2));
	return json_pack("{s:[o, o]}", "sections", a, b);
}

static const char *arg_str(json_t *args, const char *key)
{
	return json_string_value(json_object_get(args, key));
}

json_t *report_events(struct db *db, json_t *args, char *err, size_t errlen)
{
	json_t *d = json_object_get(args, "days");
	json_int_t days = d ? json_integer_value(d) : 7;
	if ((d && !json_is_integer(d)) || days < 1 || days > 366) {
		snprintf(err, errlen, "days must be a whole number from 1 to 366");
		return NULL;
	}
	const char *kind = arg_str(args, "kind"), *severity = arg_str(args, "severity");
	char days_s[16];
	snprintf(days_s, sizeof(days_s), "%d", (int)days);
	const char *p[] = { days_s, kind, severity };
	json_t *counts = dbjson_query(
		db,
		"SELECT to_char(day, 'YYYY-MM-DD') AS day, kind, severity, events, slaves FROM ("
		" SELECT c.day, c.kind, c.severity, sum(c.n)::bigint AS events,"
		"  count(*) FILTER (WHERE c.n > 0) AS slaves"
		" FROM event_counts c JOIN slaves s ON s.id = c.slave_id"
		" WHERE s.state NOT IN ('unregistered', 'pending')"
		"  AND c.day >= (now() AT TIME ZONE 'UTC')::date - ($1::int - 1)"
		"  AND ($2::text IS NULL OR c.kind = $2) AND ($3::text IS NULL OR c.severity = $3)"
		" GROUP BY 1, 2, 3 HAVING sum(c.n) > 0) c"
		" ORDER BY c.day DESC, c.events DESC, kind, severity",
		3, p, err, errlen);
	json_t *age = counts ? dbjson_query(db, SLAVES_AGE_SQL, 0, NULL, err, errlen) : NULL;
	return sections("events by day (UTC), kind and severity", counts, "data age per slave", age);
}

json_t *report_tasks(struct db *db, char *err, size_t errlen)
{
	json_t *counts = dbjson_query(
		db,
		"SELECT coalesce(mt.name, st.name, '#' || r.task_id) AS task,"
		" CASE WHEN r.master_task_id IS NULL THEN s.name ELSE 'master' END AS owner,"
		" s.name AS slave," STATUS_SUMS
		"FROM task_result_counts r JOIN slaves s ON s.id = r.slave_id"
		" LEFT JOIN tasks mt ON mt.id = r.master_task_id"
		" LEFT JOIN slave_tasks st ON r.master_task_id IS NULL AND st.slave_id = r.slave_id"
		"  AND st.id = r.task_id "
		"WHERE s.state NOT IN ('unregistered', 'pending') "
		"GROUP BY 1, 2, 3 HAVING sum(r.n) > 0 ORDER BY 1, 2, 3",
		0, NULL, err, errlen);
	json_t *age = counts ? dbjson_query(db, SLAVES_AGE_SQL, 0, NULL, err, errlen) : NULL;
	return sections("task results by task and slave", counts, "data age per slave", age);
}

json_t *report_sync(struct db *db, char *err, size_t errlen)
{
	return dbjson_query(
		db,
		"SELECT s.name AS slave, s.health AS state,"
		" (s.health <> 'active' OR s.last_sync_at IS NULL) AS late,"
		" coalesce(s.sync_interval, 1800) AS interval_s,"
		" to_char(s.last_sync_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_sync,"
		" to_char(s.last_attempt_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
		"  AS last_attempt,"
		" s.data_age_s, s.rows_received, s.publication_version, s.last_error "
		"FROM slave_status s WHERE s.state NOT IN ('unregistered', 'pending') ORDER BY s.name",
		0, NULL, err, errlen);
}

json_t *report_task_status(struct db *db, json_t *args, char *err, size_t errlen)
{
	const char *name = arg_str(args, "name");
	if (!name || !*name) {
		snprintf(err, errlen, "task status needs the task's NAME");
		return NULL;
	}
	const char *p[] = { name };
	PGresult *res = db_query(db,
				 "SELECT id::text, kind, coalesce(target_group, '/'), CASE WHEN "
				 "target_all THEN 'all' ELSE array_to_string(target_slaves, ',') END, "
				 "to_char(created_at AT TIME ZONE 'UTC', "
				 "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM tasks "
				 "WHERE name = $1 AND NOT deleted",
				 1, p, err, errlen);
	if (!res)
		return NULL;
	if (PQntuples(res) == 0) {
		PQclear(res);
		snprintf(err, errlen, "no task named '%s'", name);
		return NULL;
	}
	char id[24];
	snprintf(id, sizeof(id), "%s", PQgetvalue(res, 0, 0));
	json_t *fields = json_pack("{s:s, s:s, s:s, s:s, s:s}", "task", name, "kind",
				   PQgetvalue(res, 0, 1), "group", PQgetvalue(res, 0, 2), "slaves",
				   PQgetvalue(res, 0, 3), "created", PQgetvalue(res, 0, 4));
	PQclear(res);
	/* Every slave the task targets has a row, with zeros until its results arrive. */
	const char *q[] = { id };
	json_t *table = dbjson_query(
		db,
		"SELECT * FROM (WITH t AS (SELECT id, target_all, target_slaves FROM tasks"
		"  WHERE id = $1::bigint),"
		" c AS (SELECT r.slave_id," STATUS_SUMS
		"  FROM task_result_counts r WHERE r.master_task_id = $1::bigint GROUP BY r.slave_id),"
		" s AS (SELECT s.* FROM slave_status s, t WHERE s.state NOT IN ('unregistered', "
		"  'pending') AND (t.target_all OR s.name = ANY (t.target_slaves))) "
		"SELECT s.name AS slave, s.health AS state,"
		" (s.health <> 'active' OR s.last_sync_at IS NULL) AS late,"
		" coalesce(c.pending, 0) AS pending, coalesce(c.running, 0) AS running,"
		" coalesce(c.succeeded, 0) AS succeeded, coalesce(c.failed, 0) AS failed,"
		" coalesce(c.total, 0) AS total, s.data_age_s "
		"FROM s LEFT JOIN c ON c.slave_id = s.id "
		"UNION ALL "
		"SELECT '(all)', NULL, NULL, coalesce(sum(c.pending), 0)::bigint,"
		" coalesce(sum(c.running), 0)::bigint, coalesce(sum(c.succeeded), 0)::bigint,"
		" coalesce(sum(c.failed), 0)::bigint, coalesce(sum(c.total), 0)::bigint,"
		" max(s.data_age_s) FROM s LEFT JOIN c ON c.slave_id = s.id"
		") r ORDER BY slave = '(all)', slave",
		1, q, err, errlen);
	if (!table || !fields) {
		json_decref(table);
		json_decref(fields);
		return NULL;
	}
	json_object_set_new(table, "fields", fields);
	return table;
}

json_t *report_licences(struct db *db, char *err, size_t errlen)
{
	/* The licence row is what the slave replicated; "expired" is judged now. */
	return dbjson_query(
		db,
		"SELECT s.name AS slave, coalesce(l.licence_id, '(no licence)') AS licence,"
		" l.holder, l.seats, l.seats_used,"
		" CASE WHEN l.seats > 0 THEN round(100.0 * l.seats_used / l.seats)::int END"
		"  AS used_pct,"
		" to_char(l.valid_until AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"
		"  AS valid_until,"
		" CASE WHEN l.slave_id IS NULL THEN NULL WHEN l.valid_until <= now() THEN 'yes'"
		"  ELSE 'no' END AS expired,"
		" (s.health <> 'active' OR s.last_sync_at IS NULL) AS late, s.data_age_s "
		"FROM slave_status s LEFT JOIN slave_licences l ON l.slave_id = s.id "
		"WHERE s.state NOT IN ('unregistered', 'pending') ORDER BY s.name",
		0, NULL, err, errlen);
}

json_t *report_compliance(struct db *db, char *err, size_t errlen)
{
	/* An endpoint complies when it runs the effective version its slave computed for it. */
	return dbjson_query(
		db,
		"SELECT * FROM (WITH c AS (SELECT slave_id,"
		"  sum(n) FILTER (WHERE compliant)::bigint AS on_latest,"
		"  sum(n) FILTER (WHERE NOT compliant)::bigint AS behind, sum(n)::bigint AS total"
		"  FROM endpoint_counts GROUP BY slave_id),"
		" s AS (SELECT * FROM slave_status WHERE state NOT IN ('unregistered', 'pending')) "
		"SELECT s.name AS slave, s.health AS state,"
		" (s.health <> 'active' OR s.last_sync_at IS NULL) AS late,"
		" coalesce(c.total, 0) AS endpoints, coalesce(c.on_latest, 0) AS on_latest,"
		" coalesce(c.behind, 0) AS behind,"
		" CASE WHEN c.total > 0 THEN round(100.0 * coalesce(c.on_latest, 0) / c.total, 1) END"
		"  AS compliant_pct, s.data_age_s "
		"FROM s LEFT JOIN c ON c.slave_id = s.id "
		"UNION ALL "
		"SELECT '(all)', NULL, NULL, coalesce(sum(c.total), 0)::bigint,"
		" coalesce(sum(c.on_latest), 0)::bigint, coalesce(sum(c.behind), 0)::bigint,"
		" CASE WHEN sum(c.total) > 0 THEN round(100.0 * coalesce(sum(c.on_latest), 0)"
		"  / sum(c.total), 1) END, max(s.data_age_s) FROM s LEFT JOIN c ON c.slave_id = s.id"
		") r ORDER BY slave = '(all)', slave",
		0, NULL, err, errlen);
}
