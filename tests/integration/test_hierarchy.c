/*
 * The hierarchy end to end: one master and two slaves as real daemons on
 * the throwaway cluster. Enrolment, upload of every stream (full and
 * incremental, deletions), the version-order hole closed across a real
 * sync, master-owned policies and tasks pushed down and read-only on the
 * slave, syncs by timer, by `sync now` and by the master's request, and
 * unregistering from the slave's side. Tests run in order and share the
 * nodes.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>

#include "harness_pg.h"
#include "harness_proc.h"

static struct hnode master, sa, sb;

static int exec_sql(struct hnode *n, const char *sql)
{
	PGconn *c = hp_db(n);
	if (!c)
		return -1;
	PGresult *r = PQexecParams(c, sql, 0, NULL, NULL, NULL, NULL, 0);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "sql on %s: %s", n->name, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

static long long slave_id(const char *name)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT id FROM slaves WHERE name = '%s' AND state <> 'unregistered'", name);
	return hp_query_ll(&master, sql);
}

/* Count and checksum of the rows of table matching where, as "n/sum". */
static char *fingerprint(struct hnode *n, const char *table, const char *cols,
			 const char *where)
{
	char sql[1024];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) || '/' || coalesce(sum(hashtext(%s)::bigint), 0) FROM %s%s", cols,
		 table, where);
	return hp_query1(n, sql);
}

struct stream_check {
	const char *slave_table, *master_table, *cols, *slave_where;
};

static const struct stream_check checks[] = {
	{ "groups", "groups", "id::text || name || path || version", "" },
	{ "endpoints", "endpoints",
	  "id::text || uid || hostname || status || coalesce(group_id::text, '') || version", "" },
	{ "events", "events", "id::text || kind || severity || details::text || version", "" },
	{ "task_results", "task_results",
	  "task_id::text || ':' || endpoint_id::text || status || result::text || version", "" },
	{ "policies", "slave_policies", "id::text || name || settings::text || version",
	  " WHERE owner = 'local'" },
	{ "tasks", "slave_tasks", "id::text || name || kind || params::text || version",
	  " WHERE owner = 'local'" },
};

/* Master and slave hold exactly the same rows for every stream. */
static void assert_converged(struct hnode *s)
{
	long long sid = slave_id(s->name);
	CU_ASSERT_FATAL(sid > 0);
	char on_master[64];
	snprintf(on_master, sizeof(on_master), " WHERE slave_id = %lld", sid);
	for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++) {
		char *a = fingerprint(s, checks[i].slave_table, checks[i].cols, checks[i].slave_where);
		char *b = fingerprint(&master, checks[i].master_table, checks[i].cols, on_master);
		CU_ASSERT_PTR_NOT_NULL(a);
		CU_ASSERT_PTR_NOT_NULL(b);
		if (a && b && strcmp(a, b) != 0)
			fprintf(stderr, "\n%s: slave %s has %s, master has %s\n", checks[i].slave_table,
				s->name, a, b);
		CU_ASSERT_STRING_EQUAL(a ? a : "", b ? b : "-");
		free(a);
		free(b);
	}
}

static int seed(struct hnode *n, int endpoints)
{
	static const char *const stmts[] = {
		"INSERT INTO groups (name, path) VALUES ('servers', '/servers'), "
		"('laptops', '/laptops')",
		"INSERT INTO endpoints (uid, hostname, group_id, os, status) "
		"SELECT 'u' || g, $1 || '-h' || g, 1 + g % 2, 'Debian 12', "
		"(ARRAY['online','offline','unreachable'])[1 + g % 3] "
		"FROM generate_series(1, $2::int) g",
		"INSERT INTO events (endpoint_id, kind, severity, details) "
		"SELECT 1 + g % $2::int, 'detection', 'high', jsonb_build_object('n', g, 'q', $1) "
		"FROM generate_series(1, 2 * $2::int) g",
		"INSERT INTO tasks (name, kind) VALUES ('inventory-now', 'inventory')",
		"INSERT INTO task_results (task_id, endpoint_id, status) "
		"SELECT 1, g, 'succeeded' FROM generate_series(1, $2::int / 2) g",
		"INSERT INTO policies (name, settings) VALUES ('local-a', '{\"x\": 1}')",
	};
	char count[16];
	snprintf(count, sizeof(count), "%d", endpoints);
	/* A name with quotes and SQL metacharacters must travel verbatim. */
	const char *p[] = { n->name, count };
	PGconn *c = hp_db(n);
	if (!c)
		return -1;
	int rc = 0;
	for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]) && rc == 0; i++) {
		static const Oid text_oids[] = { 25, 25 };
		int np = strstr(stmts[i], "$2") ? 2 : 0;
		PGresult *r = PQexecParams(c, stmts[i], np, np ? text_oids : NULL, np ? p : NULL, NULL,
					   NULL, 0);
		if (PQresultStatus(r) != PGRES_COMMAND_OK) {
			fprintf(stderr, "seed: %s", PQresultErrorMessage(r));
			rc = -1;
		}
		PQclear(r);
	}
	PQfinish(c);
	return rc;
}

static int suite_init(void)
{
	if (hpg_require() != 0)
		return -1;
	if (hp_master_init(&master, "hq", NULL) != 0 || hp_start(&master) != 0)
		return -1;
	if (hp_slave_init(&sa, "site-a", master.port, 1800, NULL) != 0 ||
	    hp_slave_init(&sb, "site-b", master.port, 1800, NULL) != 0)
		return -1;
	if (hp_start(&sa) != 0 || hp_start(&sb) != 0)
		return -1;
	return 0;
}

static int suite_clean(void)
{
	hp_cleanup(&sa);
	hp_cleanup(&sb);
	hp_cleanup(&master);
	return 0;
}

static void test_standalone_slave(void)
{
	char *out = NULL;
	/* A slave with no master works on its own and says so. */
	CU_ASSERT_NOT_EQUAL(hp_ctl(&sa, &out, "sync", "now", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "not registered"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&sa, &out, "policy", "create", "standalone", "--settings", "{\"heartbeat\":60}",
			       NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&sa, &out, "policy", "delete", "standalone", NULL), 0);
	free(out);
	/* The master is not a slave and has no endpoints. */
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "sync", "now", NULL), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "slave command"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&sa, &out, "slave", "list", NULL), 1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "master command"));
	free(out);
}

static void test_config_check(void)
{
	char *out = NULL;
	CU_ASSERT_EQUAL(hp_run(&out, STRATA_BINARY_DIR "/strata-master", "-T", "-c", master.cfg,
			       NULL),
			0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "is valid"));
	free(out);
	/* A slave's file is refused by the master binary. */
	CU_ASSERT_NOT_EQUAL(hp_run(&out, STRATA_BINARY_DIR "/strata-master", "-T", "-c", sa.cfg,
				   NULL),
			    0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "role"));
	free(out);
}

static void test_enrol(void)
{
	char *out = NULL;
	CU_ASSERT_FATAL(seed(&sa, 500) == 0);
	CU_ASSERT_FATAL(seed(&sb, 300) == 0);
	CU_ASSERT_EQUAL_FATAL(hp_enrol(&master, &sa), 0);
	CU_ASSERT_EQUAL_FATAL(hp_enrol(&master, &sb), 0);
	/* A second registration of a registered slave is refused. */
	CU_ASSERT_NOT_EQUAL(hp_ctl(&master, &out, "slave", "add", "site-a", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "already registered"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "--json", "slave", "list", NULL), 0);
	json_t *rows = json_loads(out, 0, NULL);
	CU_ASSERT_TRUE(json_is_array(rows));
	CU_ASSERT_EQUAL(json_array_size(rows), 2);
	size_t i;
	json_t *row;
	json_array_foreach(rows, i, row)
	{
		CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(row, "state")), "active");
	}
	json_decref(rows);
	free(out);
	/* The credentials are on disk, the key private. */
	char path[700];
	struct stat st;
	snprintf(path, sizeof(path), "%s/slave.key", sa.dir);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 077, 0);
}

/*
 * The master's report counters (migration 0007) equal a count of the rows
 * they stand for, after COPY, merges, updates, deletions and dropped
 * partitions alike.
 */
static const char *const counts_check[] = {
	"SELECT slave_id, status, policy_version = policy_target, count(*) FROM endpoints "
	"GROUP BY 1, 2, 3",
	"SELECT slave_id, status, compliant, n FROM endpoint_counts WHERE n <> 0",
	"SELECT slave_id, (occurred_at AT TIME ZONE 'UTC')::date, kind, severity, count(*) "
	"FROM events GROUP BY 1, 2, 3, 4",
	"SELECT slave_id, day, kind, severity, n FROM event_counts WHERE n <> 0",
	"SELECT slave_id, task_id, status, max(master_task_id), count(*) FROM task_results "
	"GROUP BY 1, 2, 3",
	"SELECT slave_id, task_id, status, master_task_id, n FROM task_result_counts WHERE n <> 0",
};

static void assert_counts_exact(void)
{
	char sql[1024];
	for (size_t i = 0; i < sizeof(counts_check) / sizeof(counts_check[0]); i += 2) {
		snprintf(sql, sizeof(sql),
			 "SELECT count(*) FROM ((%s EXCEPT %s) UNION ALL (%s EXCEPT %s)) x",
			 counts_check[i], counts_check[i + 1], counts_check[i + 1], counts_check[i]);
		CU_ASSERT_EQUAL(hp_query_ll(&master, sql), 0);
	}
	CU_ASSERT(hp_query_ll(&master, "SELECT count(*) FROM endpoint_counts") > 0);
}

static void test_full_sync(void)
{
	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	CU_ASSERT_EQUAL(hp_sync(&sb), 0);
	assert_converged(&sa);
	assert_converged(&sb);
	/* Rows of one slave never land in the other's partition. */
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM endpoints WHERE slave_id = %lld",
		 slave_id("site-b"));
	CU_ASSERT_EQUAL(hp_query_ll(&master, sql), 300);
	assert_counts_exact();
}

static void test_incremental_and_deletions(void)
{
	char *out = NULL;
	CU_ASSERT_FATAL(exec_sql(&sa, "UPDATE endpoints SET status = 'offline' WHERE id <= 50") == 0);
	CU_ASSERT_FATAL(exec_sql(&sa, "DELETE FROM events WHERE id % 10 = 0") == 0);
	CU_ASSERT_FATAL(exec_sql(&sa, "DELETE FROM task_results WHERE endpoint_id <= 5") == 0);
	CU_ASSERT_FATAL(exec_sql(&sa, "DELETE FROM policies WHERE name = 'local-a'") == 0);
	CU_ASSERT(hp_query_ll(&sa, "SELECT count(*) FROM repl_tombstones") > 0);
	CU_ASSERT_EQUAL(hp_ctl(&sa, &out, "sync", "now", NULL), 0);
	/* 50 updated endpoints + tombstones for 100 events, 5 results, 1 policy. */
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "156 rows sent"));
	free(out);
	assert_converged(&sa);
	/* Tombstones the master acknowledged are pruned on the slave. */
	CU_ASSERT_EQUAL(hp_query_ll(&sa, "SELECT count(*) FROM repl_tombstones"), 0);
	/* Nothing changed: nothing sent. */
	CU_ASSERT_EQUAL(hp_ctl(&sa, &out, "sync", "now", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, " 0 rows sent"));
	free(out);
	assert_counts_exact();
}

/*
 * The classic hole, across a real sync: T1 takes a version and stays open;
 * T2 writes and commits after it. A sync in between must not move the
 * watermark past T1's row.
 */
static void test_version_order_hole(void)
{
	PGconn *t1 = hp_db(&sa), *t2 = hp_db(&sa);
	CU_ASSERT_FATAL(t1 && t2);
	PGresult *r = PQexec(t1, "BEGIN; INSERT INTO events (kind) VALUES ('t1-first')");
	CU_ASSERT_EQUAL(PQresultStatus(r), PGRES_COMMAND_OK);
	PQclear(r);
	CU_ASSERT_EQUAL(PQsendQuery(t2, "INSERT INTO events (kind) VALUES ('t2-second')"), 1);
	usleep(300000);
	CU_ASSERT_EQUAL(PQconsumeInput(t2), 1);
	CU_ASSERT_EQUAL(PQisBusy(t2), 1); /* T2 waits for T1: it cannot take a version yet */
	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	r = PQexec(t1, "COMMIT");
	PQclear(r);
	while ((r = PQgetResult(t2)))
		PQclear(r);
	PQfinish(t1);
	PQfinish(t2);
	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM events WHERE slave_id = %lld AND kind IN ('t1-first', "
		 "'t2-second')",
		 slave_id("site-a"));
	CU_ASSERT_EQUAL(hp_query_ll(&master, sql), 2);
	assert_converged(&sa);
}

static json_t *policy_rows(struct hnode *n)
{
	char *out = NULL;
	json_t *j = NULL;
	if (hp_ctl(n, &out, "--json", "policy", "list", NULL) == 0)
		j = json_loads(out, 0, NULL);
	free(out);
	return j;
}

/* owner of the named policy on the slave, or NULL */
static char *policy_owner(struct hnode *n, const char *name)
{
	json_t *rows = policy_rows(n), *row;
	size_t i;
	char *owner = NULL;
	json_array_foreach(rows, i, row)
	{
		if (strcmp(json_string_value(json_object_get(row, "name")), name) == 0)
			owner = strdup(json_string_value(json_object_get(row, "owner")));
	}
	json_decref(rows);
	return owner;
}

static void test_policy_push_down(void)
{
	char *out = NULL, *owner;
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "policy", "create", "baseline", "--settings",
			       "{\"heartbeat\":60}", NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "policy", "create", "only-a", "--settings",
			       "{\"block_sha256\":[]}", "--slaves", "site-a", NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "task", "create", "inventory-all", "--kind", "inventory",
			       NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	CU_ASSERT_EQUAL(hp_sync(&sb), 0);
	owner = policy_owner(&sa, "baseline");
	CU_ASSERT_STRING_EQUAL(owner ? owner : "", "master:hq");
	free(owner);
	owner = policy_owner(&sa, "only-a");
	CU_ASSERT_STRING_EQUAL(owner ? owner : "", "master:hq");
	free(owner);
	CU_ASSERT_PTR_NULL(policy_owner(&sb, "only-a"));
	CU_ASSERT_EQUAL(hp_query_ll(&sb, "SELECT count(*) FROM tasks WHERE owner = 'master:hq'"), 1);

	/* Read-only on the slave, with the owner named. */
	CU_ASSERT_EQUAL(hp_ctl(&sa, &out, "policy", "update", "baseline", "--settings", "{\"heartbeat\":90}",
			       NULL),
			1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "owned by master:hq"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "read-only"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&sa, &out, "policy", "delete", "baseline", NULL), 1);
	free(out);

	/* Update, retarget and delete reach the slaves at their next session. */
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "policy", "update", "baseline", "--settings",
			       "{\"heartbeat\":30}", NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "policy", "update", "only-a", "--slaves", "site-b",
			       NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "task", "delete", "inventory-all", NULL), 0);
	free(out);
	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	CU_ASSERT_EQUAL(hp_sync(&sb), 0);
	CU_ASSERT_EQUAL(hp_query_ll(&sa, "SELECT (settings->>'heartbeat')::int FROM policies "
					 "WHERE name = 'baseline'"),
			30);
	CU_ASSERT_PTR_NULL(policy_owner(&sa, "only-a"));
	owner = policy_owner(&sb, "only-a");
	CU_ASSERT_STRING_EQUAL(owner ? owner : "", "master:hq");
	free(owner);
	CU_ASSERT_EQUAL(hp_query_ll(&sb, "SELECT count(*) FROM tasks WHERE owner = 'master:hq'"), 0);
	/* The master recorded what each slave applied. */
	CU_ASSERT(hp_query_ll(&master, "SELECT min(publication_version) FROM slaves") > 0);
}

static bool history_grew(void *arg)
{
	long long *before = arg;
	return hp_query_ll(&master, "SELECT count(*) FROM sync_history WHERE ok") > *before;
}

static void test_master_requests_sync(void)
{
	char *out = NULL;
	long long before = hp_query_ll(&master, "SELECT count(*) FROM sync_history WHERE ok");
	CU_ASSERT_FATAL(exec_sql(&sa, "UPDATE endpoints SET status = 'online' WHERE id = 1") == 0);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "slave", "sync", "site-a", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "over its open connection"));
	free(out);
	CU_ASSERT_TRUE(hp_wait(history_grew, &before, 20));
	assert_converged(&sa);
}

static bool synced_by_timer(void *arg)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM endpoints WHERE slave_id = %lld AND hostname = 'renamed'",
		 slave_id("site-b"));
	return hp_query_ll(&master, sql) == 1;
}

static void test_timer_sync(void)
{
	/* Interval 10 s (the minimum) via SIGHUP: the timer alone replicates. */
	char xml[512];
	snprintf(xml, sizeof(xml),
		 "  <master host=\"127.0.0.1\" port=\"%d\"/>\n"
		 "  <replication interval=\"10\" jitter=\"0\" retry-min=\"1\" retry-max=\"5\"/>",
		 master.port);
	CU_ASSERT_EQUAL_FATAL(hp_write_config(&sb, xml), 0);
	kill(sb.pid, SIGHUP);
	CU_ASSERT_TRUE(hp_wait_log(&sb, "replication/@interval", 10) ||
		       hp_wait_log(&sb, "reload", 10));
	CU_ASSERT_FATAL(exec_sql(&sb, "UPDATE endpoints SET hostname = 'renamed' WHERE id = 7") == 0);
	CU_ASSERT_TRUE(hp_wait(synced_by_timer, NULL, 40));
}

static bool synced_by_timer_again(void *arg)
{
	char sql[256];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM endpoints WHERE slave_id = %lld AND hostname = 'renamed-again'",
		 slave_id("site-b"));
	return hp_query_ll(&master, sql) == 1;
}

static void test_invalid_reload_keeps_settings(void)
{
	/* An interval below the minimum: the whole file is refused and logged. */
	FILE *f = fopen(sb.cfg, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fprintf(f, "<server role=\"slave\" name=\"site-b\">\n"
		   "  <replication interval=\"5\"/>\n"
		   "</server>\n");
	fclose(f);
	kill(sb.pid, SIGHUP);
	CU_ASSERT_TRUE(hp_wait_log(&sb, "keeping the current settings", 10));
	CU_ASSERT_TRUE(hp_log_contains(&sb, "replication/@interval"));
	/* Still serving, with the 10 s interval of the last valid file: the
	 * timer alone replicates again. */
	CU_ASSERT_EQUAL(hp_ctl(&sb, NULL, "status", NULL), 0);
	CU_ASSERT_FATAL(
		exec_sql(&sb, "UPDATE endpoints SET hostname = 'renamed-again' WHERE id = 7") == 0);
	CU_ASSERT_TRUE(hp_wait(synced_by_timer_again, NULL, 40));
	/* Back to the valid file for the tests after this one. */
	char xml[512];
	snprintf(xml, sizeof(xml),
		 "  <master host=\"127.0.0.1\" port=\"%d\"/>\n"
		 "  <replication interval=\"10\" jitter=\"0\" retry-min=\"1\" retry-max=\"5\"/>",
		 master.port);
	CU_ASSERT_EQUAL(hp_write_config(&sb, xml), 0);
}

static void test_sync_status(void)
{
	char *out = NULL;
	CU_ASSERT_EQUAL(hp_ctl(&sa, &out, "--json", "sync", "status", NULL), 0);
	json_t *j = json_loads(out, 0, NULL);
	json_t *fields = json_object_get(j, "fields");
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(fields, "registration")),
			       "registered");
	CU_ASSERT_TRUE(json_is_string(json_object_get(fields, "last_success")));
	CU_ASSERT_TRUE(json_is_null(json_object_get(fields, "last_error")));
	CU_ASSERT_TRUE(json_is_string(json_object_get(fields, "next_due")));
	CU_ASSERT(json_array_size(json_object_get(j, "rows")) >= 6);
	json_decref(j);
	free(out);
}

static void test_report(void)
{
	char *out = NULL;
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "--json", "report", "endpoints", NULL), 0);
	json_t *rows = json_loads(out, 0, NULL), *row;
	size_t i;
	long long total = 0;
	CU_ASSERT_EQUAL(json_array_size(rows), 3);
	json_array_foreach(rows, i, row)
	{
		const char *s = json_string_value(json_object_get(row, "slave"));
		long long t = json_integer_value(json_object_get(row, "total"));
		if (strcmp(s, "site-a") == 0)
			CU_ASSERT_EQUAL(t, 500);
		if (strcmp(s, "site-b") == 0)
			CU_ASSERT_EQUAL(t, 300);
		if (strcmp(s, "(all)") == 0)
			total = t;
		CU_ASSERT_TRUE(json_is_integer(json_object_get(row, "data_age_s")));
	}
	CU_ASSERT_EQUAL(total, 800);
	json_decref(rows);
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "--csv", "report", "endpoints", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "slave,state,online,offline,unreachable,total"));
	free(out);
}

static char *state_of(const char *name)
{
	char *out = NULL, *state = NULL;
	if (hp_ctl(&master, &out, "--json", "slave", "list", NULL) == 0) {
		json_t *rows = json_loads(out, 0, NULL), *row;
		size_t i;
		json_array_foreach(rows, i, row)
		{
			if (strcmp(json_string_value(json_object_get(row, "name")), name) == 0)
				state = strdup(json_string_value(json_object_get(row, "state")));
		}
		json_decref(rows);
	}
	free(out);
	return state;
}

/* Health follows the slave's own interval: degraded after 2 missed, failed
 * after 4 or when the last attempt ended in an error. site-a syncs every
 * 1800 s, so its last sync is moved back in time. */
static void test_slave_health(void)
{
	static const struct {
		const char *sql, *state;
	} steps[] = {
		{ "UPDATE slaves SET last_sync_at = now() - interval '3000 s' WHERE name = 'site-a'",
		  "active" },
		{ "UPDATE slaves SET last_sync_at = now() - interval '3700 s' WHERE name = 'site-a'",
		  "degraded" },
		{ "UPDATE slaves SET last_sync_at = now() - interval '7300 s' WHERE name = 'site-a'",
		  "failed" },
		{ "UPDATE slaves SET last_sync_at = now(), last_attempt_at = now() - interval '1 s' "
		  "WHERE name = 'site-a'",
		  "active" },
		{ "UPDATE slaves SET last_error = 'link cut', last_attempt_at = now() + interval '1 s' "
		  "WHERE name = 'site-a'",
		  "failed" },
	};
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		CU_ASSERT_FATAL(exec_sql(&master, steps[i].sql) == 0);
		char *st = state_of("site-a");
		CU_ASSERT_STRING_EQUAL(st ? st : "", steps[i].state);
		free(st);
	}
	/* The next successful sync clears it. */
	CU_ASSERT_EQUAL(hp_sync(&sa), 0);
	char *st = state_of("site-a");
	CU_ASSERT_STRING_EQUAL(st ? st : "", "active");
	free(st);
}

static bool sc_synced(void *arg)
{
	return hp_query_ll(&master, "SELECT count(*) FROM sync_history h JOIN slaves s "
				    "ON s.id = h.slave_id WHERE s.name = 'site-c' AND h.ok") > 0;
}

/* A token in server.xml registers the slave on its first start, then it syncs. */
static void test_register_from_config(void)
{
	struct hnode sc;
	char *out = NULL, xml[1024];
	CU_ASSERT_EQUAL_FATAL(hp_ctl(&master, &out, "--json", "slave", "add", "site-c", NULL), 0);
	char *tok = strstr(out, "stk1.");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	tok[strcspn(tok, "\"")] = '\0';
	CU_ASSERT_EQUAL_FATAL(hp_slave_init(&sc, "site-c", master.port, 1800, NULL), 0);
	snprintf(xml, sizeof(xml),
		 "  <master host=\"127.0.0.1\" port=\"%d\" token=\"%s\"/>\n"
		 "  <replication interval=\"1800\"/>",
		 master.port, tok);
	free(out);
	CU_ASSERT_EQUAL_FATAL(hp_write_config(&sc, xml), 0);
	CU_ASSERT_EQUAL_FATAL(hp_start(&sc), 0);
	CU_ASSERT_TRUE(hp_wait(sc_synced, NULL, 30));
	CU_ASSERT_FATAL(seed(&sc, 40) == 0);
	CU_ASSERT_EQUAL(hp_sync(&sc), 0);
	assert_converged(&sc);
	/* A restart does not enrol again: the token is spent, the certificate kept. */
	CU_ASSERT_EQUAL(hp_stop(&sc), 0);
	CU_ASSERT_EQUAL(hp_start(&sc), 0);
	CU_ASSERT_EQUAL(hp_sync(&sc), 0);
	CU_ASSERT_EQUAL(hp_query_ll(&master, "SELECT count(*) FROM slaves WHERE name = 'site-c'"), 1);
	hp_cleanup(&sc);
}

static bool sb_synced_after(void *arg)
{
	long long *before = arg;
	return hp_query_ll(&master, "SELECT count(*) FROM sync_history h JOIN slaves s "
				    "ON s.id = h.slave_id WHERE s.name = 'site-b' AND h.ok") > *before;
}

/* With the master down the slave retries with growing delays, records the
 * error, and catches up by itself once the master is back. */
static void test_retry_with_backoff(void)
{
	char *out = NULL;
	CU_ASSERT_EQUAL_FATAL(hp_stop(&master), 0);
	CU_ASSERT_TRUE(hp_wait_log(&sb, "next attempt in 1 s", 30));
	CU_ASSERT_TRUE(hp_wait_log(&sb, "next attempt in 2 s", 30));
	CU_ASSERT_TRUE(hp_wait_log(&sb, "next attempt in 4 s", 30));
	CU_ASSERT_EQUAL(hp_ctl(&sb, &out, "--json", "sync", "status", NULL), 0);
	json_t *j = json_loads(out, 0, NULL);
	CU_ASSERT_TRUE(json_is_string(json_object_get(json_object_get(j, "fields"), "last_error")));
	json_decref(j);
	free(out);
	CU_ASSERT_FATAL(exec_sql(&sb, "UPDATE endpoints SET status = 'offline' WHERE id = 9") == 0);
	CU_ASSERT_EQUAL_FATAL(hp_start(&master), 0);
	long long before = hp_query_ll(&master, "SELECT count(*) FROM sync_history h JOIN slaves s "
						"ON s.id = h.slave_id WHERE s.name = 'site-b' AND h.ok");
	CU_ASSERT_TRUE(hp_wait(sb_synced_after, &before, 30));
	assert_converged(&sb);
}

static void test_unregister_from_slave(void)
{
	char *out = NULL;
	long long sid = slave_id("site-a");
	CU_ASSERT_EQUAL(hp_ctl(&sa, &out, "unregister", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "local copies"));
	free(out);
	/* The master revoked it and dropped its rows. */
	CU_ASSERT_EQUAL(slave_id("site-a"), -1);
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM revoked_certs WHERE slave_name = 'site-a'");
	CU_ASSERT_EQUAL(hp_query_ll(&master, sql), 1);
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_class WHERE relname = 'endpoints_s%lld'",
		 sid);
	CU_ASSERT_EQUAL(hp_query_ll(&master, sql), 0);
	/* Master-owned items stay as local copies; the slave is standalone again. */
	char *owner = policy_owner(&sa, "baseline");
	CU_ASSERT_STRING_EQUAL(owner ? owner : "", "local");
	free(owner);
	CU_ASSERT_NOT_EQUAL(hp_ctl(&sa, &out, "sync", "now", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "not registered"));
	free(out);
	/* Its other data and site-b are untouched. */
	CU_ASSERT_EQUAL(hp_query_ll(&sa, "SELECT count(*) FROM endpoints"), 500);
	assert_converged(&sb);
	/* Its counters went with its partitions. */
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM endpoint_counts WHERE slave_id = %lld", sid);
	CU_ASSERT_EQUAL(hp_query_ll(&master, sql), 0);
	assert_counts_exact();
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("hierarchy", suite_init, suite_clean);
	CU_add_test(s, "a slave without a master works standalone", test_standalone_slave);
	CU_add_test(s, "-T checks the file and its role", test_config_check);
	CU_add_test(s, "two slaves enrol with tokens", test_enrol);
	CU_add_test(s, "first sync copies every stream", test_full_sync);
	CU_add_test(s, "incremental sync and deletions", test_incremental_and_deletions);
	CU_add_test(s, "version order equals commit order across a sync", test_version_order_hole);
	CU_add_test(s, "master policies and tasks pushed down, read-only", test_policy_push_down);
	CU_add_test(s, "master asks an idle slave to sync", test_master_requests_sync);
	CU_add_test(s, "timer sync after SIGHUP changes the interval", test_timer_sync);
	CU_add_test(s, "an invalid file on SIGHUP is logged, the settings stay",
		    test_invalid_reload_keeps_settings);
	CU_add_test(s, "sync status", test_sync_status);
	CU_add_test(s, "report endpoints across slaves", test_report);
	CU_add_test(s, "slave health derived from its interval", test_slave_health);
	CU_add_test(s, "a token in server.xml registers on first start", test_register_from_config);
	CU_add_test(s, "retry with backoff while the master is down", test_retry_with_backoff);
	CU_add_test(s, "unregister from the slave", test_unregister_from_slave);
	return hp_run_suite();
}
