#include "report.h"

#include "dbjson.h"

json_t *report_endpoints(struct db *db, char *err, size_t errlen)
{
	/* Counting per partition key first keeps the join to slaves small. */
	return dbjson_query(
		db,
		"SELECT * FROM (WITH counts AS ("
		" SELECT slave_id, count(*) FILTER (WHERE status = 'online') AS online,"
		"  count(*) FILTER (WHERE status = 'offline') AS offline,"
		"  count(*) FILTER (WHERE status = 'unreachable') AS unreachable,"
		"  count(*) AS total FROM endpoints GROUP BY slave_id) "
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
		" s.data_age_s "
		"FROM slave_status s LEFT JOIN slave_licences l ON l.slave_id = s.id "
		"WHERE s.state NOT IN ('unregistered', 'pending') ORDER BY s.name",
		0, NULL, err, errlen);
}
