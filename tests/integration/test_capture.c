#include <CUnit/Basic.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "db.h"
#include "harness_pg.h"
#include "log.h"
#include "migrate.h"

#define ERRLEN 1024

/*
 * Replicated test tables as the daemon's schema files declare them, plus
 * hole_bare, stamped from the same sequence without the lock: the broken
 * design the hole test must be able to catch.
 */
static const char setup_sql[] =
	"CREATE TABLE endpoint (site text NOT NULL, id int NOT NULL, name text,"
	" version bigint NOT NULL DEFAULT 0, PRIMARY KEY (site, id));\n"
	"CREATE TRIGGER endpoint_stamp BEFORE INSERT OR UPDATE ON endpoint"
	" FOR EACH ROW EXECUTE FUNCTION repl_stamp();\n"
	"CREATE TRIGGER endpoint_tombstone AFTER DELETE ON endpoint"
	" FOR EACH ROW EXECUTE FUNCTION repl_tombstone('endpoints', 'site', 'id');\n"
	"CREATE TABLE hole_locked (id int PRIMARY KEY, version bigint NOT NULL DEFAULT 0);\n"
	"CREATE TRIGGER hole_locked_stamp BEFORE INSERT OR UPDATE ON hole_locked"
	" FOR EACH ROW EXECUTE FUNCTION repl_stamp();\n"
	"CREATE FUNCTION bare_stamp() RETURNS trigger LANGUAGE plpgsql AS $$\n"
	"BEGIN NEW.version := nextval('repl_version_seq'); RETURN NEW; END $$;\n"
	"CREATE TABLE hole_bare (id int PRIMARY KEY, version bigint NOT NULL DEFAULT 0);\n"
	"CREATE TRIGGER hole_bare_stamp BEFORE INSERT OR UPDATE ON hole_bare"
	" FOR EACH ROW EXECUTE FUNCTION bare_stamp();\n"
	"CREATE TABLE bad_args (id int PRIMARY KEY, version bigint);\n"
	"CREATE TRIGGER bad_args_tombstone AFTER DELETE ON bad_args"
	" FOR EACH ROW EXECUTE FUNCTION repl_tombstone('bad');\n"
	"CREATE TABLE bad_col (id int PRIMARY KEY, version bigint);\n"
	"CREATE TRIGGER bad_col_tombstone AFTER DELETE ON bad_col"
	" FOR EACH ROW EXECUTE FUNCTION repl_tombstone('bad', 'no_such_column');\n";

static struct {
	char *name;
	char *conninfo;
	struct db *db;
} fx;

static int suite_init(void)
{
	char err[ERRLEN];
	fx.name = hpg_create_db("strata_capture");
	if (!fx.name)
		return -1;
	fx.conninfo = hpg_conninfo(fx.name);
	fx.db = db_connect(fx.conninfo, 1, 0, err, sizeof(err));
	if (!fx.db || migrate_run(fx.db, schema_slave, err, sizeof(err)) != 0 ||
	    db_exec_script(fx.db, setup_sql, err, sizeof(err)) != 0) {
		fprintf(stderr, "capture setup: %s\n", err);
		return -1;
	}
	return 0;
}

static int suite_clean(void)
{
	db_close(fx.db);
	hpg_drop_db(fx.name);
	free(fx.conninfo);
	free(fx.name);
	return 0;
}

static long long value_ll(struct db *db, const char *sql, int nparams, const char *const *params)
{
	char err[ERRLEN], out[32];
	if (db_query_value(db, sql, nparams, params, out, sizeof(out), err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", sql, err);
		return -1;
	}
	return atoll(out);
}

static long long endpoint_version(const char *site, const char *id)
{
	const char *const params[] = { site, id };
	return value_ll(fx.db, "SELECT version FROM endpoint WHERE site = $1 AND id = $2", 2,
			params);
}

static void test_versions_and_tombstones(void)
{
	char err[ERRLEN];
	static const char ins[] =
		"INSERT INTO endpoint (site, id, name, version) VALUES ($1, $2, $3, $4)";
	/* A version supplied by the writer is ignored: only the trigger assigns them. */
	const char *const r1[] = { "s1", "1", "first", "999999" };
	const char *const r2[] = { "s1", "2", "second", "0" };
	const char *const k1[] = { "s1", "1" };
	const char *const k2[] = { "s1", "2" };

	CU_ASSERT_EQUAL_FATAL(db_exec(fx.db, ins, 4, r1, err, sizeof(err)), 0);
	long long v1 = endpoint_version("s1", "1");
	CU_ASSERT_EQUAL_FATAL(db_exec(fx.db, ins, 4, r2, err, sizeof(err)), 0);
	long long v2 = endpoint_version("s1", "2");
	CU_ASSERT_TRUE(v1 > 0 && v1 < 999999);
	CU_ASSERT_TRUE(v2 > v1);

	CU_ASSERT_EQUAL(db_exec(fx.db,
				"UPDATE endpoint SET name = 'renamed' WHERE site = $1 AND id = $2",
				2, k1, err, sizeof(err)),
			0);
	long long v3 = endpoint_version("s1", "1");
	CU_ASSERT_TRUE(v3 > v2);

	CU_ASSERT_EQUAL(db_exec(fx.db, "DELETE FROM endpoint WHERE site = $1 AND id = $2", 2, k2,
				err, sizeof(err)),
			0);
	PGresult *res =
		db_query(fx.db, "SELECT version, stream, key FROM repl_tombstones ORDER BY version",
			 0, NULL, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	CU_ASSERT_EQUAL_FATAL(PQntuples(res), 1);
	CU_ASSERT_TRUE(atoll(PQgetvalue(res, 0, 0)) > v3);
	CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 1), "endpoints");
	CU_ASSERT_STRING_EQUAL(PQgetvalue(res, 0, 2), "s1:2");
	PQclear(res);

	/* Misdeclared tombstone triggers fail loudly instead of writing useless keys. */
	CU_ASSERT_EQUAL(db_exec(fx.db, "INSERT INTO bad_args (id) VALUES (1), (2)", 0, NULL, err,
				sizeof(err)),
			0);
	CU_ASSERT_EQUAL(
		db_exec(fx.db, "INSERT INTO bad_col (id) VALUES (1)", 0, NULL, err, sizeof(err)),
		0);
	CU_ASSERT_EQUAL(db_exec(fx.db, "DELETE FROM bad_args", 0, NULL, err, sizeof(err)), -1);
	CU_ASSERT_STRING_EQUAL(db_last_sqlstate(fx.db), "P0001");
	CU_ASSERT_EQUAL(db_exec(fx.db, "DELETE FROM bad_col", 0, NULL, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "no_such_column"));
	CU_ASSERT_EQUAL(value_ll(fx.db, "SELECT count(*) FROM repl_tombstones", 0, NULL), 1);
}

/* The sync client's view: what it shipped, in order, and its watermark. */
struct reader {
	const char *sql;
	long long watermark;
	int n;
	int ids[16];
	long long versions[16];
};

static void reader_run(struct db *db, struct reader *r)
{
	char err[ERRLEN], wm[32];
	snprintf(wm, sizeof(wm), "%lld", r->watermark);
	const char *const params[] = { wm };
	PGresult *res = db_query(db, r->sql, 1, params, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	for (int i = 0; i < PQntuples(res) && r->n < 16; i++) {
		r->ids[r->n] = atoi(PQgetvalue(res, i, 0));
		r->versions[r->n] = atoll(PQgetvalue(res, i, 1));
		if (r->versions[r->n] > r->watermark)
			r->watermark = r->versions[r->n];
		r->n++;
	}
	PQclear(res);
}

static bool reader_shipped(const struct reader *r, int id)
{
	for (int i = 0; i < r->n; i++)
		if (r->ids[i] == id)
			return true;
	return false;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	nanosleep(&ts, NULL);
}

enum writer_b { B_BLOCKED, B_DONE, B_STUCK };

/*
 * Polls until writer B either waits for the change-capture lock or has
 * finished; B_STUCK after the deadline (neither: the test cannot judge).
 */
static enum writer_b watch_writer_b(struct db *observer, PGconn *b)
{
	for (int i = 0; i < 500; i++) {
		if (PQconsumeInput(b) == 1 && !PQisBusy(b))
			return B_DONE;
		if (value_ll(observer,
			     "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'"
			     " AND classid = 0 AND objid = 7073001 AND NOT granted",
			     0, NULL) > 0)
			return B_BLOCKED;
		sleep_ms(20);
	}
	return B_STUCK;
}

/* Waits for B's asynchronous script; true when every statement succeeded. */
static bool finish_async(PGconn *conn)
{
	bool ok = true;
	PGresult *res;
	while ((res = PQgetResult(conn)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			fprintf(stderr, "writer B: %s", PQresultErrorMessage(res));
			ok = false;
		}
		PQclear(res);
	}
	return ok;
}

/*
 * Writer A takes a version and stays open; writer B starts after it and
 * commits; the reader runs before and after A commits. Returns what the
 * reader shipped. b_blocked tells whether B had to wait for A.
 */
static void interleave(const char *table, struct reader *r, bool *b_blocked)
{
	char err[ERRLEN], sql_a[128], sql_b[160];
	struct db *a = db_connect(fx.conninfo, 1, 0, err, sizeof(err));
	struct db *b = db_connect(fx.conninfo, 1, 0, err, sizeof(err));
	struct db *c = db_connect(fx.conninfo, 1, 0, err, sizeof(err));
	CU_ASSERT_TRUE_FATAL(a && b && c);
	snprintf(sql_a, sizeof(sql_a), "INSERT INTO %s (id) VALUES (1)", table);
	snprintf(sql_b, sizeof(sql_b), "BEGIN; INSERT INTO %s (id) VALUES (2); COMMIT", table);

	reader_run(c, r);
	CU_ASSERT_EQUAL(r->n, 0);

	CU_ASSERT_EQUAL_FATAL(db_begin(a, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(db_exec(a, sql_a, 0, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL_FATAL(PQsendQuery(db_conn(b), sql_b), 1);

	enum writer_b state = watch_writer_b(c, db_conn(b));
	CU_ASSERT_NOT_EQUAL(state, B_STUCK);
	*b_blocked = state == B_BLOCKED;
	if (*b_blocked) {
		/* Still waiting after the lock wait was seen: B has not committed. */
		CU_ASSERT_EQUAL(PQconsumeInput(db_conn(b)), 1);
		CU_ASSERT_EQUAL(PQisBusy(db_conn(b)), 1);
	} else if (state == B_DONE) {
		CU_ASSERT_TRUE(finish_async(db_conn(b)));
	}

	reader_run(c, r);
	CU_ASSERT_EQUAL(db_commit(a, err, sizeof(err)), 0);
	if (state != B_DONE)
		CU_ASSERT_TRUE(finish_async(db_conn(b)));
	reader_run(c, r);

	db_close(a);
	db_close(b);
	db_close(c);
}

static void test_hole_closed(void)
{
	struct reader r = {
		.sql = "SELECT id, version FROM hole_locked WHERE version > $1 ORDER BY version"
	};
	bool b_blocked = false;
	interleave("hole_locked", &r, &b_blocked);

	CU_ASSERT_TRUE(b_blocked);
	CU_ASSERT_TRUE(reader_shipped(&r, 1));
	CU_ASSERT_TRUE(reader_shipped(&r, 2));
	CU_ASSERT_EQUAL(r.n, 2);
	for (int i = 1; i < r.n; i++)
		CU_ASSERT_TRUE(r.versions[i] > r.versions[i - 1]);
	CU_ASSERT_EQUAL(value_ll(fx.db, "SELECT count(*) FROM hole_locked", 0, NULL), 2);
}

/*
 * The licence seat counter follows bulk inserts and deletes (one counter
 * update per statement) and single revocations, and always equals the
 * number of endpoints not revoked.
 */
static void test_seat_counter(void)
{
	static const char *const steps[] = {
		"INSERT INTO endpoints (uid, hostname) SELECT 'seat-' || g, 'h' || g "
		"FROM generate_series(1, 20000) g",
		"UPDATE endpoints SET revoked = true WHERE uid IN ('seat-1', 'seat-2', 'seat-3')",
		"DELETE FROM endpoints WHERE uid LIKE 'seat-1%'",
		"UPDATE endpoints SET revoked = false WHERE uid = 'seat-2'",
		"DELETE FROM endpoints WHERE uid LIKE 'seat-%'",
	};
	char err[ERRLEN];
	long long start = value_ll(fx.db, "SELECT used FROM agent_seats", 0, NULL);
	CU_ASSERT_EQUAL(start, value_ll(fx.db, "SELECT count(*) FROM endpoints WHERE NOT revoked",
					0, NULL));
	for (size_t i = 0; i < sizeof(steps) / sizeof(steps[0]); i++) {
		CU_ASSERT_EQUAL_FATAL(db_exec(fx.db, steps[i], 0, NULL, err, sizeof(err)), 0);
		CU_ASSERT_EQUAL(value_ll(fx.db, "SELECT used FROM agent_seats", 0, NULL),
				value_ll(fx.db, "SELECT count(*) FROM endpoints WHERE NOT revoked", 0,
					 NULL));
	}
	CU_ASSERT_EQUAL(value_ll(fx.db, "SELECT used FROM agent_seats", 0, NULL), start);
}

static void test_hole_without_lock(void)
{
	struct reader r = {
		.sql = "SELECT id, version FROM hole_bare WHERE version > $1 ORDER BY version"
	};
	bool b_blocked = true;
	interleave("hole_bare", &r, &b_blocked);

	/* B overtook A, the reader moved past A's version, and A's row is lost to it. */
	CU_ASSERT_FALSE(b_blocked);
	CU_ASSERT_TRUE(reader_shipped(&r, 2));
	CU_ASSERT_FALSE(reader_shipped(&r, 1));
	CU_ASSERT_EQUAL(value_ll(fx.db, "SELECT count(*) FROM hole_bare", 0, NULL), 2);
	const char *const id[] = { "1" };
	CU_ASSERT_TRUE(value_ll(fx.db, "SELECT version FROM hole_bare WHERE id = $1", 1, id) <
		       r.watermark);
}

int main(void)
{
	if (hpg_require() != 0)
		return 1;
	log_init("test_capture", false, LOG_LVL_WARN);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("capture", suite_init, suite_clean);
	CU_add_test(s, "versions and tombstones", test_versions_and_tombstones);
	CU_add_test(s, "version order equals commit order", test_hole_closed);
	CU_add_test(s, "a bare sequence skips a row", test_hole_without_lock);
	CU_add_test(s, "the seat counter follows bulk changes", test_seat_counter);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	unsigned init_fails = CU_get_run_summary()->nSuitesFailed;
	CU_cleanup_registry();
	return fails || init_fails ? 1 : 0;
}
