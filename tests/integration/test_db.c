#include <CUnit/Basic.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "db.h"
#include "harness_pg.h"
#include "log.h"
#include "migrate.h"

#define ERRLEN 1024

/* The suite's database and connection, set up once in suite_init. */
static struct {
	char *name;
	char *conninfo;
	struct db *db;
} fx;

static int suite_init(void)
{
	char err[ERRLEN];
	fx.name = hpg_create_db("strata_db");
	if (!fx.name)
		return -1;
	fx.conninfo = hpg_conninfo(fx.name);
	fx.db = db_connect(fx.conninfo, 1, 0, err, sizeof(err));
	if (!fx.db) {
		fprintf(stderr, "%s\n", err);
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

/* A connection to a database of its own, for tests that need a clean slate. */
struct fresh {
	char *name;
	char *conninfo;
	struct db *db;
};

static int fresh_open(struct fresh *f, const char *prefix)
{
	char err[ERRLEN];
	memset(f, 0, sizeof(*f));
	f->name = hpg_create_db(prefix);
	if (!f->name)
		return -1;
	f->conninfo = hpg_conninfo(f->name);
	f->db = db_connect(f->conninfo, 1, 0, err, sizeof(err));
	if (!f->db)
		fprintf(stderr, "%s\n", err);
	return f->db ? 0 : -1;
}

static void fresh_close(struct fresh *f)
{
	db_close(f->db);
	hpg_drop_db(f->name);
	free(f->conninfo);
	free(f->name);
}

static long count_rows(struct db *db, const char *sql, int nparams, const char *const *params)
{
	char err[ERRLEN], out[32];
	if (db_query_value(db, sql, nparams, params, out, sizeof(out), err, sizeof(err)) != 0) {
		fprintf(stderr, "%s: %s\n", sql, err);
		return -1;
	}
	return atol(out);
}

static bool still_usable(struct db *db)
{
	char err[ERRLEN], out[8];
	return db_query_value(db, "SELECT 41 + 1", 0, NULL, out, sizeof(out), err, sizeof(err)) ==
		       0 &&
	       strcmp(out, "42") == 0;
}

static void test_params_verbatim(void)
{
	char err[ERRLEN];
	static const char *const notes[] = {
		"'; DROP TABLE x; --",
		"plain",
		"quote \" backslash \\ dollar $1 $$ tab\there",
		"",
	};
	CU_ASSERT_EQUAL_FATAL(db_exec(fx.db, "CREATE TABLE x (id int PRIMARY KEY, note text)", 0,
				      NULL, err, sizeof(err)),
			      0);
	for (size_t i = 0; i < sizeof(notes) / sizeof(notes[0]); i++) {
		char id[16];
		snprintf(id, sizeof(id), "%zu", i);
		const char *const params[] = { id, notes[i] };
		CU_ASSERT_EQUAL(db_exec(fx.db, "INSERT INTO x (id, note) VALUES ($1, $2)", 2,
					params, err, sizeof(err)),
				0);
	}
	const char *const null_row[] = { "100", NULL };
	CU_ASSERT_EQUAL(db_exec(fx.db, "INSERT INTO x (id, note) VALUES ($1, $2)", 2, null_row, err,
				sizeof(err)),
			0);

	for (size_t i = 0; i < sizeof(notes) / sizeof(notes[0]); i++) {
		char id[16], out[256];
		snprintf(id, sizeof(id), "%zu", i);
		const char *const params[] = { id };
		CU_ASSERT_EQUAL(db_query_value(fx.db, "SELECT note FROM x WHERE id = $1", 1, params,
					       out, sizeof(out), err, sizeof(err)),
				0);
		CU_ASSERT_STRING_EQUAL(out, notes[i]);
	}
	PGresult *res =
		db_query(fx.db, "SELECT note FROM x WHERE id = $1", 1, null_row, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(res);
	CU_ASSERT_EQUAL(PQntuples(res), 1);
	CU_ASSERT_TRUE(PQgetisnull(res, 0, 0));
	PQclear(res);
	CU_ASSERT_EQUAL(count_rows(fx.db, "SELECT count(*) FROM x", 0, NULL), 5);
}

static void test_error_sqlstate(void)
{
	static const struct {
		const char *sql;
		const char *sqlstate;
	} cases[] = {
		{ "SELECT * FROM no_such_table", "42P01" },
		{ "SELEC 1", "42601" },
		{ "SELECT 1 / 0", "22012" },
		{ "INSERT INTO dup (id) VALUES (1)", "23505" },
		{ "SELECT 'abc'::int", "22P02" },
	};
	char err[ERRLEN];
	CU_ASSERT_EQUAL_FATAL(
		db_exec(fx.db, "CREATE TABLE dup (id int PRIMARY KEY)", 0, NULL, err, sizeof(err)),
		0);
	CU_ASSERT_EQUAL_FATAL(
		db_exec(fx.db, "INSERT INTO dup (id) VALUES (1)", 0, NULL, err, sizeof(err)), 0);
	CU_ASSERT_STRING_EQUAL(db_last_sqlstate(fx.db), "");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char prefix[16];
		err[0] = '\0';
		CU_ASSERT_EQUAL(db_exec(fx.db, cases[i].sql, 0, NULL, err, sizeof(err)), -1);
		CU_ASSERT_STRING_EQUAL(db_last_sqlstate(fx.db), cases[i].sqlstate);
		snprintf(prefix, sizeof(prefix), "%s: ", cases[i].sqlstate);
		CU_ASSERT_EQUAL(strncmp(err, prefix, strlen(prefix)), 0);
		CU_ASSERT_PTR_NULL(strchr(err, '\n'));
		CU_ASSERT_TRUE(strlen(err) > strlen(prefix));
	}
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "abc"));
	/* A success clears the state of the previous failure. */
	CU_ASSERT_TRUE(still_usable(fx.db));
	CU_ASSERT_STRING_EQUAL(db_last_sqlstate(fx.db), "");
}

static void test_transactions(void)
{
	char err[ERRLEN];
	CU_ASSERT_EQUAL_FATAL(
		db_exec(fx.db, "CREATE TABLE tx (id int PRIMARY KEY)", 0, NULL, err, sizeof(err)),
		0);

	CU_ASSERT_EQUAL(db_begin(fx.db, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(db_exec(fx.db, "INSERT INTO tx VALUES (1)", 0, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(db_commit(fx.db, err, sizeof(err)), 0);

	CU_ASSERT_EQUAL(db_begin(fx.db, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(db_exec(fx.db, "INSERT INTO tx VALUES (2)", 0, NULL, err, sizeof(err)), 0);
	db_rollback(fx.db);
	CU_ASSERT_EQUAL(count_rows(fx.db, "SELECT count(*) FROM tx", 0, NULL), 1);

	/* COMMIT after a failed statement is a silent ROLLBACK in PostgreSQL: it must fail here. */
	CU_ASSERT_EQUAL(db_begin(fx.db, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(db_exec(fx.db, "INSERT INTO tx VALUES (3)", 0, NULL, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(db_exec(fx.db, "INSERT INTO tx VALUES (1)", 0, NULL, err, sizeof(err)), -1);
	CU_ASSERT_EQUAL(db_commit(fx.db, err, sizeof(err)), -1);
	CU_ASSERT_STRING_EQUAL(db_last_sqlstate(fx.db), "25P02");
	CU_ASSERT_EQUAL(count_rows(fx.db, "SELECT count(*) FROM tx", 0, NULL), 1);

	/* Rollback outside a transaction is a no-op. */
	db_rollback(fx.db);
	CU_ASSERT_TRUE(still_usable(fx.db));
}

/* FNV-1a, to compare what went in with what came out without keeping both. */
static unsigned long long fnv(unsigned long long h, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)p[i];
		h *= 1099511628211ULL;
	}
	return h;
}

#define FNV_INIT 14695981039346656037ULL

struct sink {
	long rows;
	long stop_after;
	int stop_rc;
	bool bad_row;
	unsigned long long hash;
};

static int sink_row(const char *row, size_t len, void *arg)
{
	struct sink *s = arg;
	if (len == 0 || row[len - 1] != '\n')
		s->bad_row = true;
	s->rows++;
	s->hash = fnv(s->hash, row, len);
	if (s->stop_after && s->rows >= s->stop_after)
		return s->stop_rc;
	return 0;
}

#define COPY_ROWS 10000

static void test_copy_roundtrip(void)
{
	char err[ERRLEN];
	char pad[201];
	memset(pad, 'p', sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	CU_ASSERT_EQUAL_FATAL(db_exec(fx.db, "CREATE TABLE bulk (id int PRIMARY KEY, name text)", 0,
				      NULL, err, sizeof(err)),
			      0);

	/* About 2.2 MiB, so the data crosses the 1 MiB chunk boundary twice. */
	size_t cap = (size_t)COPY_ROWS * 256, len = 0;
	char *data = malloc(cap);
	CU_ASSERT_PTR_NOT_NULL_FATAL(data);
	for (int i = 1; i <= COPY_ROWS; i++)
		len += (size_t)snprintf(data + len, cap - len, "%d\tname %d \\t %s\n", i, i, pad);
	CU_ASSERT_TRUE(len > 2 * 1024 * 1024);
	unsigned long long in_hash = fnv(FNV_INIT, data, len);

	CU_ASSERT_EQUAL(
		db_copy_in(fx.db, "COPY bulk (id, name) FROM STDIN", data, len, err, sizeof(err)),
		0);
	free(data);
	CU_ASSERT_EQUAL(count_rows(fx.db, "SELECT count(*) FROM bulk", 0, NULL), COPY_ROWS);

	struct sink s = { .hash = FNV_INIT };
	CU_ASSERT_EQUAL(db_copy_out(fx.db, "COPY (SELECT id, name FROM bulk ORDER BY id) TO STDOUT",
				    sink_row, &s, err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(s.rows, COPY_ROWS);
	CU_ASSERT_FALSE(s.bad_row);
	CU_ASSERT_EQUAL(s.hash, in_hash);
}

static void test_copy_stop(void)
{
	char err[ERRLEN];
	struct sink s = { .hash = FNV_INIT, .stop_after = 5, .stop_rc = 7 };
	CU_ASSERT_EQUAL(db_copy_out(fx.db,
				    "COPY (SELECT g FROM generate_series(1, 1000) g) TO STDOUT",
				    sink_row, &s, err, sizeof(err)),
			7);
	CU_ASSERT_EQUAL(s.rows, 5);
	CU_ASSERT_TRUE(still_usable(fx.db));
}

static void test_copy_errors(void)
{
	char err[ERRLEN];
	static const char bad[] = "1\tok\nnot-a-number\tbad\n";
	struct sink s = { .hash = FNV_INIT };
	CU_ASSERT_EQUAL_FATAL(db_exec(fx.db, "CREATE TABLE cbad (id int PRIMARY KEY, name text)", 0,
				      NULL, err, sizeof(err)),
			      0);

	CU_ASSERT_EQUAL(db_copy_in(fx.db, "COPY cbad (id, name) FROM STDIN", bad, strlen(bad), err,
				   sizeof(err)),
			-1);
	CU_ASSERT_STRING_EQUAL(db_last_sqlstate(fx.db), "22P02");
	CU_ASSERT_TRUE(still_usable(fx.db));
	CU_ASSERT_EQUAL(count_rows(fx.db, "SELECT count(*) FROM cbad", 0, NULL), 0);

	/* Inside a transaction the failure aborts it; a rollback makes the link usable. */
	CU_ASSERT_EQUAL(db_begin(fx.db, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(db_copy_in(fx.db, "COPY cbad (id, name) FROM STDIN", bad, strlen(bad), err,
				   sizeof(err)),
			-1);
	db_rollback(fx.db);
	CU_ASSERT_TRUE(still_usable(fx.db));

	CU_ASSERT_EQUAL(
		db_copy_in(fx.db, "COPY no_such (id) FROM STDIN", "1\n", 2, err, sizeof(err)), -1);
	CU_ASSERT_STRING_EQUAL(db_last_sqlstate(fx.db), "42P01");
	CU_ASSERT_EQUAL(
		db_copy_out(fx.db, "COPY (SELECT 1 / 0) TO STDOUT", sink_row, &s, err, sizeof(err)),
		-1);
	CU_ASSERT_STRING_EQUAL(db_last_sqlstate(fx.db), "22012");
	CU_ASSERT_EQUAL(s.rows, 0);
	CU_ASSERT_TRUE(still_usable(fx.db));
}

static void test_query_value(void)
{
	char err[ERRLEN], out[4];
	CU_ASSERT_EQUAL(db_query_value(fx.db, "SELECT 1 WHERE false", 0, NULL, out, sizeof(out),
				       err, sizeof(err)),
			1);
	CU_ASSERT_EQUAL(
		db_query_value(fx.db, "SELECT 'abc'", 0, NULL, out, sizeof(out), err, sizeof(err)),
		0);
	CU_ASSERT_STRING_EQUAL(out, "abc");
	/* Truncating a value silently would hand the caller a wrong one. */
	CU_ASSERT_EQUAL(
		db_query_value(fx.db, "SELECT 'abcd'", 0, NULL, out, sizeof(out), err, sizeof(err)),
		-1);
}

static void test_lost_connection(void)
{
	char err[ERRLEN], pid[16];
	struct db *killer = db_connect(fx.conninfo, 1, 0, err, sizeof(err));
	CU_ASSERT_PTR_NOT_NULL_FATAL(killer);
	CU_ASSERT_EQUAL_FATAL(db_query_value(fx.db, "SELECT pg_backend_pid()", 0, NULL, pid,
					     sizeof(pid), err, sizeof(err)),
			      0);
	const char *const params[] = { pid };
	CU_ASSERT_EQUAL(db_exec(killer, "SELECT pg_terminate_backend($1::int, 10000)", 1, params,
				err, sizeof(err)),
			0);
	db_close(killer);

	CU_ASSERT_FALSE(still_usable(fx.db));
	CU_ASSERT_STRING_EQUAL(db_last_sqlstate(fx.db), "08006");
	CU_ASSERT_FALSE(db_alive(fx.db));
	CU_ASSERT_EQUAL(db_reconnect(fx.db, err, sizeof(err)), 0);
	CU_ASSERT_TRUE(db_alive(fx.db));
	CU_ASSERT_TRUE(still_usable(fx.db));
}

static void test_connect_failures(void)
{
	char err[ERRLEN] = "";
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t salen = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	CU_ASSERT_TRUE_FATAL(fd >= 0);
	CU_ASSERT_EQUAL_FATAL(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	CU_ASSERT_EQUAL_FATAL(getsockname(fd, (struct sockaddr *)&sa, &salen), 0);
	close(fd);

	char conninfo[128];
	snprintf(conninfo, sizeof(conninfo),
		 "host=127.0.0.1 port=%d user=postgres dbname=postgres connect_timeout=5",
		 ntohs(sa.sin_port));
	struct db *db = db_connect(conninfo, 2, 1, err, sizeof(err));
	CU_ASSERT_PTR_NULL(db);
	db_close(db);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "cannot connect after 2 attempts"));
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "127.0.0.1"));
	CU_ASSERT_PTR_NULL(strchr(err, '\n'));

	/* A malformed conninfo never gets better: no retries, even with attempts = 0. */
	err[0] = '\0';
	db = db_connect("host=127.0.0.1 nonsense_option=1", 0, 1, err, sizeof(err));
	CU_ASSERT_PTR_NULL(db);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "invalid conninfo"));
}

static long migration_count(const struct migration *list)
{
	long n = 0;
	while (list[n].name)
		n++;
	return n;
}

static void test_migrate_slave(void)
{
	struct fresh f;
	char err[ERRLEN];
	int version = -1;
	long n = migration_count(schema_slave);
	CU_ASSERT_TRUE_FATAL(n >= 1);
	CU_ASSERT_EQUAL_FATAL(fresh_open(&f, "strata_mig"), 0);

	CU_ASSERT_EQUAL(migrate_current(f.db, &version, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(version, 0);
	CU_ASSERT_EQUAL(migrate_run(f.db, schema_slave, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(migrate_current(f.db, &version, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(version, migrate_latest(schema_slave));
	CU_ASSERT_EQUAL(count_rows(f.db, "SELECT count(*) FROM schema_version", 0, NULL), n);
	for (const struct migration *m = schema_slave; m->name; m++) {
		const char *const params[] = { m->name };
		CU_ASSERT_EQUAL(count_rows(f.db,
					   "SELECT count(*) FROM schema_version WHERE name = $1 "
					   "AND version = substr($1, 1, 4)::int",
					   1, params),
				1);
	}
	CU_ASSERT_EQUAL(count_rows(f.db, "SELECT count(*) FROM repl_tombstones", 0, NULL), 0);

	/* A second run finds everything applied and changes nothing. */
	CU_ASSERT_EQUAL(migrate_run(f.db, schema_slave, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(count_rows(f.db, "SELECT count(*) FROM schema_version", 0, NULL), n);
	fresh_close(&f);
}

static void test_migrate_newer_refused(void)
{
	struct fresh f;
	char err[ERRLEN], version[16], expect[128];
	int latest = migrate_latest(schema_slave);
	CU_ASSERT_EQUAL_FATAL(fresh_open(&f, "strata_mig"), 0);
	CU_ASSERT_EQUAL_FATAL(migrate_run(f.db, schema_slave, err, sizeof(err)), 0);

	snprintf(version, sizeof(version), "%d", latest + 2);
	const char *const params[] = { version };
	CU_ASSERT_EQUAL(db_exec(f.db,
				"INSERT INTO schema_version (version, name) VALUES ($1, 'future')",
				1, params, err, sizeof(err)),
			0);
	CU_ASSERT_EQUAL(migrate_run(f.db, schema_slave, err, sizeof(err)), -1);
	snprintf(expect, sizeof(expect),
		 "database schema version %d is newer than this binary (%d)", latest + 2, latest);
	CU_ASSERT_STRING_EQUAL(err, expect);
	fresh_close(&f);
}

static void test_migrate_atomic(void)
{
	static const struct migration list[] = {
		{ 1, "0001_good", "CREATE TABLE good (id int);" },
		{ 2, "0002_broken",
		  "CREATE TABLE half (id int);\nINSERT INTO missing VALUES (1);" },
		{ 3, "0003_after", "CREATE TABLE after (id int);" },
		{ 0, NULL, NULL },
	};
	struct fresh f;
	char err[ERRLEN];
	int version = -1;
	CU_ASSERT_EQUAL_FATAL(fresh_open(&f, "strata_mig"), 0);

	CU_ASSERT_EQUAL(migrate_latest(list), 3);
	CU_ASSERT_EQUAL(migrate_run(f.db, list, err, sizeof(err)), -1);
	CU_ASSERT_PTR_NOT_NULL(strstr(err, "schema 0002_broken: 42P01: "));
	CU_ASSERT_EQUAL(migrate_current(f.db, &version, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(version, 1);
	CU_ASSERT_EQUAL(count_rows(f.db,
				   "SELECT count(*) FROM pg_tables WHERE tablename IN "
				   "('good', 'half', 'after')",
				   0, NULL),
			1);
	CU_ASSERT_TRUE(still_usable(f.db));
	fresh_close(&f);
}

/* Runs migrate_run on list from two processes released at the same moment. */
static void migrate_race(const char *conninfo, const struct migration *list, int status[2])
{
	int gate[2];
	pid_t pids[2];
	CU_ASSERT_EQUAL_FATAL(pipe(gate), 0);
	for (int i = 0; i < 2; i++) {
		pids[i] = fork();
		CU_ASSERT_TRUE_FATAL(pids[i] >= 0);
		if (pids[i] == 0) {
			char err[ERRLEN], byte;
			close(gate[1]);
			struct db *db = db_connect(conninfo, 1, 0, err, sizeof(err));
			/* EOF on the gate: both children start together. */
			int rc = db && read(gate[0], &byte, 1) == 0 ? 0 : -1;
			if (rc == 0)
				rc = migrate_run(db, list, err, sizeof(err));
			if (rc != 0)
				fprintf(stderr, "migrate child: %s\n", err);
			db_close(db);
			_exit(rc == 0 ? 0 : 1);
		}
	}
	close(gate[0]);
	close(gate[1]);
	for (int i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL(waitpid(pids[i], &status[i], 0), pids[i]);
	}
}

static void test_migrate_concurrent(void)
{
	/* The sleep keeps the first file open long enough for the second process to queue. */
	static const struct migration list[] = {
		{ 1, "0001_log",
		  "CREATE TABLE applied (name text);\n"
		  "INSERT INTO applied VALUES ('0001');\n"
		  "SELECT pg_sleep(0.5);" },
		{ 2, "0002_more", "INSERT INTO applied VALUES ('0002');" },
		{ 0, NULL, NULL },
	};
	const struct migration *lists[] = { list, schema_slave };
	for (size_t l = 0; l < 2; l++) {
		struct fresh f;
		int status[2] = { -1, -1 };
		CU_ASSERT_EQUAL_FATAL(fresh_open(&f, "strata_race"), 0);
		migrate_race(f.conninfo, lists[l], status);
		for (int i = 0; i < 2; i++) {
			CU_ASSERT_TRUE(WIFEXITED(status[i]) && WEXITSTATUS(status[i]) == 0);
		}
		CU_ASSERT_EQUAL(count_rows(f.db, "SELECT count(*) FROM schema_version", 0, NULL),
				migration_count(lists[l]));
		if (l == 0) {
			CU_ASSERT_EQUAL(count_rows(f.db, "SELECT count(*) FROM applied", 0, NULL),
					2);
			CU_ASSERT_EQUAL(count_rows(f.db, "SELECT count(DISTINCT name) FROM applied",
						   0, NULL),
					2);
		}
		fresh_close(&f);
	}
}

int main(void)
{
	if (hpg_require() != 0)
		return 1;
	log_init("test_db", false, LOG_LVL_NOTICE);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("db", suite_init, suite_clean);
	CU_add_test(s, "parameters are stored verbatim", test_params_verbatim);
	CU_add_test(s, "errors carry the SQLSTATE", test_error_sqlstate);
	CU_add_test(s, "begin, commit, rollback", test_transactions);
	CU_add_test(s, "COPY in and out round trip", test_copy_roundtrip);
	CU_add_test(s, "COPY out callback stops", test_copy_stop);
	CU_add_test(s, "failed COPY leaves the link usable", test_copy_errors);
	CU_add_test(s, "single value queries", test_query_value);
	CU_add_test(s, "lost connection and reconnect", test_lost_connection);
	CU_add_test(s, "connect failures", test_connect_failures);
	CU_pSuite m = CU_add_suite("migrate", NULL, NULL);
	CU_add_test(m, "slave schema applies once", test_migrate_slave);
	CU_add_test(m, "newer database refused", test_migrate_newer_refused);
	CU_add_test(m, "failed file leaves nothing behind", test_migrate_atomic);
	CU_add_test(m, "concurrent runs apply each file once", test_migrate_concurrent);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures();
	/* A suite whose set-up failed ran nothing: that is a failure, not a pass. */
	unsigned init_fails = CU_get_run_summary()->nSuitesFailed;
	CU_cleanup_registry();
	return fails || init_fails ? 1 : 0;
}
