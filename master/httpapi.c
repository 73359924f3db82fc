#include "httpapi.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "master.h"
#include "metrics.h"

static void master_ready(void *arg, json_t *not_ready)
{
	struct master *m = arg;

	daemon_readiness(&m->d, not_ready);
	if (!m->listener)
		json_array_append_new(not_ready, json_string("sync listener"));
}

/* A cell as a number; NAN for SQL NULL. */
static double cell(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NAN : strtod(PQgetvalue(res, row, col), NULL);
}

/*
 * One statement: the registry's view (health as `slave list` derives it),
 * the sync history per slave (its (slave_id, started_at) index gives the
 * last session) and the replicated endpoints counted per slave.
 */
static const char master_metrics_sql[] =
    "SELECT s.name, s.health, s.data_age_s, s.rows_received,"
    " coalesce(h.ok, 0), coalesce(h.failed, 0), coalesce(h.seconds, 0),"
    " l.seconds, coalesce(e.online, 0), coalesce(e.offline, 0),"
    " coalesce(e.unreachable, 0) "
    "FROM slave_status s "
    "LEFT JOIN (SELECT slave_id, count(*) FILTER (WHERE ok) AS ok,"
    "  count(*) FILTER (WHERE NOT ok) AS failed,"
    "  sum(extract(epoch FROM finished_at - started_at)) AS seconds"
    "  FROM sync_history GROUP BY slave_id) h ON h.slave_id = s.id "
    "LEFT JOIN LATERAL (SELECT extract(epoch FROM finished_at - started_at) AS seconds"
    "  FROM sync_history WHERE slave_id = s.id ORDER BY started_at DESC LIMIT 1) l ON true "
    "LEFT JOIN (SELECT slave_id, count(*) FILTER (WHERE status = 'online') AS online,"
    "  count(*) FILTER (WHERE status = 'offline') AS offline,"
    "  count(*) FILTER (WHERE status = 'unreachable') AS unreachable"
    "  FROM endpoints GROUP BY slave_id) e ON e.slave_id = s.id "
    "WHERE s.state <> 'unregistered' ORDER BY s.name";

static void per_slave(struct evbuffer *out, const PGresult *res, const char *name,
		      enum metrics_type type, const char *help, int col)
{
	metrics_family(out, name, type, help);
	for (int r = 0; r < PQntuples(res); r++) {
		double v = cell(res, r, col);
		if (!isnan(v))
			metrics_sample(out, name, v, "slave", PQgetvalue(res, r, 0), NULL);
	}
}

static int master_metrics(void *arg, struct evbuffer *out, char *err, size_t errlen)
{
	static const char *const states[] = { "pending", "active", "degraded", "failed" };
	static const char *const statuses[] = { "online", "offline", "unreachable" };
	struct master *m = arg;

	metrics_family(out, "strata_master_sessions_open", METRICS_GAUGE,
		       "Sync sessions with slaves open now.");
	metrics_sample(out, "strata_master_sessions_open", m->nsessions, NULL);
	if (daemon_db_ensure(&m->d) != 0) {
		snprintf(err, errlen, "the database is not reachable");
		return -1;
	}
	PGresult *res = db_query(m->d.db, master_metrics_sql, 0, NULL, err, errlen);
	if (!res)
		return -1;
	metrics_family(out, "strata_master_slave_state", METRICS_GAUGE,
		       "1 for the slave's current state (as `strata-ctl slave list`), 0 for the "
		       "others.");
	for (int r = 0; r < PQntuples(res); r++)
		for (size_t i = 0; i < sizeof(states) / sizeof(states[0]); i++)
			metrics_sample(out, "strata_master_slave_state",
				       strcmp(PQgetvalue(res, r, 1), states[i]) == 0, "slave",
				       PQgetvalue(res, r, 0), "state", states[i], NULL);
	per_slave(out, res, "strata_master_slave_data_age_seconds", METRICS_GAUGE,
		  "Seconds since the slave's last successful sync.", 2);
	per_slave(out, res, "strata_master_sync_rows_received_total", METRICS_COUNTER,
		  "Rows received from the slave over all its syncs.", 3);
	metrics_family(out, "strata_master_sync_sessions_total", METRICS_COUNTER,
		       "Sync sessions with the slave, by result.");
	for (int r = 0; r < PQntuples(res); r++) {
		metrics_sample(out, "strata_master_sync_sessions_total", cell(res, r, 4), "slave",
			       PQgetvalue(res, r, 0), "result", "ok", NULL);
		metrics_sample(out, "strata_master_sync_sessions_total", cell(res, r, 5), "slave",
			       PQgetvalue(res, r, 0), "result", "failed", NULL);
	}
	per_slave(out, res, "strata_master_sync_duration_seconds_total", METRICS_COUNTER,
		  "Seconds spent in sync sessions with the slave.", 6);
	per_slave(out, res, "strata_master_sync_last_duration_seconds", METRICS_GAUGE,
		  "Duration of the slave's last sync session.", 7);
	metrics_family(out, "strata_master_endpoints", METRICS_GAUGE,
		       "Endpoints replicated from the slave, by status.");
	for (int r = 0; r < PQntuples(res); r++)
		for (int i = 0; i < 3; i++)
			metrics_sample(out, "strata_master_endpoints", cell(res, r, 8 + i), "slave",
				       PQgetvalue(res, r, 0), "status", statuses[i], NULL);
	PQclear(res);
	return 0;
}

void httpapi_start(struct master *m)
{
	struct http_hooks hooks = {
		.ready = master_ready,
		.metrics = master_metrics,
		.arg = m,
		.commands = commands_table,
		.admin = m->d.admin,
		.role = "master",
	};

	daemon_http(&m->d, m->pki.key, m->pki.cert, m->pki.ca, &hooks);
}
