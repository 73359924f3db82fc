#include "httpapi.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "link.h"
#include "metrics.h"
#include "slave.h"
#include "stream.h"
#include "workers.h"

static int workers_running(const struct slave *sl)
{
	int n = 0;
	for (int i = 1; sl->workers && i <= sl->d.cfg.push_workers; i++)
		n += workers_pid(sl->workers, i) > 0;
	return n;
}

static void slave_ready(void *arg, json_t *not_ready)
{
	struct slave *sl = arg;

	daemon_readiness(&sl->d, not_ready);
	if (sl->d.cfg.push_port != 0 && !sl->push && workers_running(sl) == 0)
		json_array_append_new(not_ready, json_string("push server"));
}

static double cell(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col) ? NAN : strtod(PQgetvalue(res, row, col), NULL);
}

static void gauge1(struct evbuffer *out, const char *name, enum metrics_type type, const char *help,
		   double v)
{
	metrics_family(out, name, type, help);
	if (!isnan(v))
		metrics_sample(out, name, v, NULL);
}

/* The sync client's state row and its history, in one statement. */
static const char sync_sql[] =
    "SELECT (registration = 'registered')::int,"
    " (last_error IS NOT NULL AND last_attempt >= coalesce(last_success, '-infinity'))::int,"
    " extract(epoch FROM last_success), h.ok, h.failed, h.seconds, l.seconds "
    "FROM sync_state, (SELECT count(*) FILTER (WHERE ok) AS ok,"
    "  count(*) FILTER (WHERE NOT ok) AS failed,"
    "  coalesce(sum(extract(epoch FROM finished_at - started_at)), 0) AS seconds"
    "  FROM sync_history) h "
    "LEFT JOIN LATERAL (SELECT extract(epoch FROM finished_at - started_at) AS seconds"
    "  FROM sync_history ORDER BY id DESC LIMIT 1) l ON true";

/*
 * One pass over endpoints. An online push-mode endpoint holds one agent
 * connection (to a push worker or a distribution point); its last_seen is
 * its last heartbeat, flushed by its push server every second.
 */
static const char endpoints_sql[] =
    "SELECT count(*) FILTER (WHERE status = 'online'),"
    " count(*) FILTER (WHERE status = 'offline'),"
    " count(*) FILTER (WHERE status = 'unreachable'),"
    " count(*) FILTER (WHERE status = 'online' AND mode = 'push'),"
    " count(*) FILTER (WHERE status = 'online' AND last_seen <"
    "  now() - make_interval(secs => coalesce(heartbeat, $1::int))),"
    " extract(epoch FROM now() - max(last_seen) FILTER (WHERE status = 'online')) "
    "FROM endpoints";

/* The backlog towards the master (common/backlog.h), counted at most every few seconds. */
static int sync_backlog_metrics(struct slave *sl, struct evbuffer *out, char *err, size_t errlen)
{
	struct link_backlog *bl = calloc(stream_count, sizeof(*bl));
	double rate;
	if (!bl) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (link_backlog(sl->link, bl, &rate, err, errlen) != 0) {
		free(bl);
		return -1;
	}
	metrics_family(out, "strata_slave_sync_backlog_rows", METRICS_GAUGE,
		       "Rows not yet acknowledged by the master, by stream.");
	for (size_t i = 0; i < stream_count; i++)
		metrics_sample(out, "strata_slave_sync_backlog_rows", (double)bl[i].rows, "stream",
			       bl[i].stream, NULL);
	metrics_family(out, "strata_slave_sync_backlog_age_seconds", METRICS_GAUGE,
		       "Seconds the master has lacked the stream's changes: since the start of the "
		       "last successful sync while rows wait, else 0.");
	for (size_t i = 0; i < stream_count; i++)
		if (!isnan(bl[i].age_s))
			metrics_sample(out, "strata_slave_sync_backlog_age_seconds",
				       floor(bl[i].age_s), "stream", bl[i].stream, NULL);
	gauge1(out, "strata_slave_sync_upload_rate_rows_per_second", METRICS_GAUGE,
	       "Rows per second the master acknowledged in the running session's upload, else in "
	       "the last session's.",
	       rate);
	free(bl);
	return 0;
}

static int slave_metrics(void *arg, struct evbuffer *out, char *err, size_t errlen)
{
	struct slave *sl = arg;
	char hb[16];

	gauge1(out, "strata_slave_push_workers_running", METRICS_GAUGE,
	       "Push worker processes running now (0 with the push server in the main process).",
	       workers_running(sl));
	gauge1(out, "strata_slave_licence_seats", METRICS_GAUGE,
	       "Endpoints this slave may enrol (<licence seats>).", sl->d.cfg.seats);
	if (daemon_db_ensure(&sl->d) != 0) {
		snprintf(err, errlen, "the database is not reachable");
		return -1;
	}
	PGresult *res = db_query(sl->d.db, sync_sql, 0, NULL, err, errlen);
	if (!res)
		return -1;
	if (PQntuples(res) == 1) {
		gauge1(out, "strata_slave_registered", METRICS_GAUGE,
		       "1 when this slave is registered with a master.", cell(res, 0, 0));
		gauge1(out, "strata_slave_sync_failing", METRICS_GAUGE,
		       "1 when the last sync attempt failed (`strata-ctl sync status`).",
		       cell(res, 0, 1));
		gauge1(out, "strata_slave_sync_last_success_timestamp_seconds", METRICS_GAUGE,
		       "Unix time of the last successful sync.", cell(res, 0, 2));
		metrics_family(out, "strata_slave_sync_sessions_total", METRICS_COUNTER,
			       "Sync sessions with the master, by result.");
		metrics_sample(out, "strata_slave_sync_sessions_total", cell(res, 0, 3), "result",
			       "ok", NULL);
		metrics_sample(out, "strata_slave_sync_sessions_total", cell(res, 0, 4), "result",
			       "failed", NULL);
		gauge1(out, "strata_slave_sync_duration_seconds_total", METRICS_COUNTER,
		       "Seconds spent in sync sessions.", cell(res, 0, 5));
		gauge1(out, "strata_slave_sync_last_duration_seconds", METRICS_GAUGE,
		       "Duration of the last sync session.", cell(res, 0, 6));
	}
	PQclear(res);

	res = db_query(sl->d.db, "SELECT stream, rows_total FROM sync_stream_stats ORDER BY stream",
		       0, NULL, err, errlen);
	if (!res)
		return -1;
	metrics_family(out, "strata_slave_sync_rows_sent_total", METRICS_COUNTER,
		       "Rows uploaded to the master, by stream.");
	for (int r = 0; r < PQntuples(res); r++)
		metrics_sample(out, "strata_slave_sync_rows_sent_total", cell(res, r, 1), "stream",
			       PQgetvalue(res, r, 0), NULL);
	PQclear(res);

	if (sync_backlog_metrics(sl, out, err, errlen) != 0)
		return -1;

	snprintf(hb, sizeof(hb), "%d", sl->d.cfg.heartbeat_interval);
	const char *params[] = { hb };
	res = db_query(sl->d.db, endpoints_sql, 1, params, err, errlen);
	if (!res)
		return -1;
	if (PQntuples(res) == 1) {
		static const char *const statuses[] = { "online", "offline", "unreachable" };
		metrics_family(out, "strata_slave_endpoints", METRICS_GAUGE,
			       "Endpoints by status.");
		for (int i = 0; i < 3; i++)
			metrics_sample(out, "strata_slave_endpoints", cell(res, 0, i), "status",
				       statuses[i], NULL);
		gauge1(out, "strata_slave_push_connections", METRICS_GAUGE,
		       "Agents connected for push (online push-mode endpoints), over all push "
		       "workers and distribution points.",
		       cell(res, 0, 3));
		gauge1(out, "strata_slave_heartbeats_late", METRICS_GAUGE,
		       "Online endpoints whose last heartbeat is older than their interval.",
		       cell(res, 0, 4));
		gauge1(out, "strata_slave_heartbeat_newest_age_seconds", METRICS_GAUGE,
		       "Seconds since the most recent heartbeat of any online endpoint.",
		       cell(res, 0, 5));
	}
	PQclear(res);

	res = db_query(sl->d.db,
		       "SELECT name, online::int, connections FROM push_servers "
		       "WHERE NOT revoked ORDER BY name",
		       0, NULL, err, errlen);
	if (!res)
		return -1;
	metrics_family(out, "strata_slave_dp_online", METRICS_GAUGE,
		       "1 when the distribution point's link to this slave is up.");
	for (int r = 0; r < PQntuples(res); r++)
		metrics_sample(out, "strata_slave_dp_online", cell(res, r, 1), "dp",
			       PQgetvalue(res, r, 0), NULL);
	metrics_family(out, "strata_slave_dp_connections", METRICS_GAUGE,
		       "Agents connected to the distribution point, as it last reported.");
	for (int r = 0; r < PQntuples(res); r++)
		metrics_sample(out, "strata_slave_dp_connections", cell(res, r, 2), "dp",
			       PQgetvalue(res, r, 0), NULL);
	PQclear(res);
	return 0;
}

void httpapi_start(struct slave *sl)
{
	struct http_hooks hooks = {
		.ready = slave_ready,
		.metrics = slave_metrics,
		.arg = sl,
		.commands = commands_table,
		.admin = sl->d.admin,
		.role = "slave",
	};

	daemon_http(&sl->d, sl->agent_pki.key, sl->agent_pki.cert, sl->agent_pki.ca, &hooks);
}
