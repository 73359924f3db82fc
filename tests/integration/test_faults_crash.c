/*
 * Faults in the middle of things: a slave removed on the master, the
 * master's database connections killed during an upload, the master
 * killed with SIGKILL during an upload. Afterwards master and slave must
 * hold exactly the same rows: none lost, none twice.
 */
#include <CUnit/Basic.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "harness_faults.h"
#include "harness_pg.h"
#include "harness_proc.h"

static struct hnode master;

static int suite_init(void)
{
	if (hpg_require() != 0)
		return -1;
	if (hp_master_init(&master, "fcr-master", NULL) != 0 || hp_start(&master) != 0) {
		hp_cleanup(&master);
		return -1;
	}
	return 0;
}

static int suite_clean(void)
{
	hp_cleanup(&master);
	return 0;
}

static const char small_seed_sql[] =
	"INSERT INTO groups (name, path) VALUES ('servers', '/servers');"
	"INSERT INTO endpoints (uid, hostname, group_id) "
	"SELECT 'uid-' || g, 'host-' || g, 1 FROM generate_series(1, 100) g";

/* Enough events for many batches, and some rows in every other stream. */
static const char big_seed_sql[] =
	"INSERT INTO groups (name, path) SELECT 'g' || g, '/g' || g FROM generate_series(1, 50) g;"
	"INSERT INTO endpoints (uid, hostname, group_id) "
	"SELECT 'uid-' || g, 'host-' || g, 1 + g % 50 FROM generate_series(1, 3000) g;"
	"INSERT INTO task_results (task_id, endpoint_id, status, result) "
	"SELECT 1 + g % 7, g, 'succeeded', jsonb_build_object('code', g % 3) "
	"FROM generate_series(1, 3000) g;"
	"INSERT INTO events (endpoint_id, kind, severity, details) "
	"SELECT 1 + g % 3000, (ARRAY['detection','heartbeat-missed','policy-applied'])[1 + g % 3], "
	"(ARRAY['info','low','high'])[1 + g % 3], jsonb_build_object('n', g) "
	"FROM generate_series(1, 300000) g";

struct same_ctx {
	struct hnode *slave;
	int sid;
};

/* Whether every stream's count and checksum agree now. */
static bool rows_same(void *arg)
{
	struct same_ctx *c = arg;
	return hf_rows_same(&master, c->slave, c->sid, false);
}

static void assert_same_rows(struct hnode *slave, int sid)
{
	/* A download that moves policy targets is followed by one more session. */
	struct same_ctx ctx = { slave, sid };
	(void)hp_wait(rows_same, &ctx, 15);
	CU_ASSERT(hf_rows_same(&master, slave, sid, true));
}

static long long master_rows(const char *table_sql, int sid)
{
	char sid_s[16];
	snprintf(sid_s, sizeof(sid_s), "%d", sid);
	const char *p[] = { sid_s };
	return hf_ll(&master, table_sql, 1, p);
}

static const char endpoints_count_sql[] = "SELECT count(*) FROM endpoints WHERE slave_id = $1::int";

/* A registered, synced slave with a small seed. */
static int small_slave(struct hnode *s, const char *name)
{
	if (hp_slave_init(s, name, master.port, 1800, NULL) != 0 || hp_start(s) != 0 ||
	    hf_script(s, small_seed_sql) != 0 || hp_enrol(&master, s) != 0)
		return -1;
	return hf_sync_retry(s, 30);
}

static char *policy_owner(struct hnode *s)
{
	return hp_query1(s, "SELECT owner FROM policies WHERE name = 'fcr-baseline'");
}

static void test_unregistered(void)
{
	struct hnode s;
	char *out = NULL, *owner;
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "policy", "create", "fcr-baseline", "--settings",
			       "{\"heartbeat\": 60}", NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL_FATAL(small_slave(&s, "fcr-gone"), 0);
	owner = policy_owner(&s);
	CU_ASSERT_PTR_NOT_NULL(owner ? strstr(owner, "master:") : NULL);
	free(owner);
	int sid = hf_slave_id(&master, s.name);
	CU_ASSERT_TRUE_FATAL(sid > 0);
	CU_ASSERT_EQUAL(master_rows(endpoints_count_sql, sid), 100);

	CU_ASSERT_EQUAL(hp_ctl(&master, NULL, "slave", "remove", s.name, NULL), 0);
	CU_ASSERT_NOT_EQUAL(hp_ctl(&s, &out, "sync", "now", NULL), 0);
	free(out);
	CU_ASSERT_TRUE(hp_wait_log(&s, "unregistered", 20));
	/* The master's policy stays on the slave, as a local copy. */
	CU_ASSERT_EQUAL(hp_ctl(&s, &out, "--json", "policy", "list", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "fcr-baseline"));
	CU_ASSERT_PTR_NULL(strstr(out ? out : "", "master:"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "local"));
	free(out);
	owner = policy_owner(&s);
	CU_ASSERT_STRING_EQUAL(owner ? owner : "", "local");
	free(owner);
	CU_ASSERT_EQUAL(master_rows(endpoints_count_sql, sid), 0);
	CU_ASSERT_EQUAL(master_rows("SELECT count(*) FROM events WHERE slave_id = $1::int", sid),
			0);

	/* Enrolling again takes a new token and starts from a clean slate. */
	hp_ctl(&s, NULL, "unregister", "--force", NULL);
	CU_ASSERT_EQUAL_FATAL(hp_enrol(&master, &s), 0);
	CU_ASSERT_EQUAL(hf_sync_retry(&s, 30), 0);
	int sid2 = hf_slave_id(&master, s.name);
	CU_ASSERT_TRUE(sid2 > 0 && sid2 != sid);
	assert_same_rows(&s, sid2);
	hp_cleanup(&s);
}

static void test_unregistered_keep_data(void)
{
	struct hnode s;
	CU_ASSERT_EQUAL_FATAL(small_slave(&s, "fcr-keep"), 0);
	int sid = hf_slave_id(&master, s.name);
	CU_ASSERT_TRUE_FATAL(sid > 0);
	CU_ASSERT_EQUAL(hp_ctl(&master, NULL, "slave", "remove", s.name, "--keep-data", NULL), 0);
	CU_ASSERT_EQUAL(hf_slave_id(&master, s.name), -1);
	CU_ASSERT_EQUAL(master_rows(endpoints_count_sql, sid), 100);
	hp_cleanup(&s);
}

/* ---- failures during a large upload ---- */

struct upload_watch {
	struct hnode *slave;
	int sid;
	long long events_max; /* the slave's highest event version */
};

static long long events_watermark(int sid)
{
	return master_rows("SELECT version FROM watermarks WHERE slave_id = $1::int "
			   "AND stream = 'events'",
			   sid);
}

/* The master has applied some but not all event batches. */
static bool upload_midway(void *arg)
{
	struct upload_watch *w = arg;
	long long wm = events_watermark(w->sid);
	return wm > 0 && wm < w->events_max;
}

/* A slave seeded with the big seed, registered, its first automatic sync not yet done. */
static int big_slave(struct hnode *s, const char *name, struct upload_watch *w)
{
	char xml[256];
	if (hp_slave_init(s, name, master.port, 1800, NULL) != 0)
		return -1;
	/* Small batches: the upload takes many round trips, so there is a middle to hit. */
	snprintf(xml, sizeof(xml),
		 "  <master host=\"127.0.0.1\" port=\"%d\"/>\n"
		 "  <replication interval=\"1800\" retry-min=\"1\" retry-max=\"3\" "
		 "batch-rows=\"2000\"/>",
		 master.port);
	if (hp_write_config(s, xml) != 0 || hp_start(s) != 0 || hf_script(s, big_seed_sql) != 0)
		return -1;
	w->slave = s;
	w->events_max = hp_query_ll(s, "SELECT max(version) FROM events");
	if (hp_enrol(&master, s) != 0)
		return -1;
	w->sid = hf_slave_id(&master, s->name);
	return w->sid > 0 ? 0 : -1;
}

/* `sync now` in a child process; returns its pid. */
static pid_t sync_in_background(struct hnode *s)
{
	pid_t pid = fork();
	if (pid == 0)
		_exit(hp_ctl(s, NULL, "sync", "now", NULL));
	return pid;
}

static int child_status(pid_t pid)
{
	int st = 0;
	waitpid(pid, &st, 0);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void test_database_lost(void)
{
	struct hnode s;
	struct upload_watch w;
	CU_ASSERT_EQUAL_FATAL(big_slave(&s, "fcr-pglost", &w), 0);
	pid_t sync = sync_in_background(&s);
	CU_ASSERT_TRUE(hp_wait(upload_midway, &w, 60));

	const char *p[] = { master.dbname };
	CU_ASSERT_TRUE(hf_ll(&master,
			     "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
			     "WHERE datname = $1 AND pid <> pg_backend_pid()",
			     1, p) >= 1);
	CU_ASSERT_NOT_EQUAL(child_status(sync), 0);

	/* Whole batches only: the master holds exactly the rows up to its watermark. */
	char wm_s[24];
	long long wm = events_watermark(w.sid);
	snprintf(wm_s, sizeof(wm_s), "%lld", wm);
	const char *pw[] = { wm_s };
	CU_ASSERT_TRUE(wm < w.events_max);
	CU_ASSERT_EQUAL(
		master_rows("SELECT count(*) FROM events WHERE slave_id = $1::int", w.sid),
		hf_ll(&s, "SELECT count(*) FROM events WHERE version <= $1::bigint", 1, pw));

	CU_ASSERT_EQUAL(hf_sync_retry(&s, 60), 0);
	assert_same_rows(&s, w.sid);
	hp_cleanup(&s);
}

static void test_master_killed(void)
{
	struct hnode s;
	struct upload_watch w;
	CU_ASSERT_EQUAL_FATAL(big_slave(&s, "fcr-kill9", &w), 0);
	pid_t sync = sync_in_background(&s);
	CU_ASSERT_TRUE(hp_wait(upload_midway, &w, 60));
	hp_kill9(&master);
	CU_ASSERT_NOT_EQUAL(child_status(sync), 0);
	CU_ASSERT_TRUE(events_watermark(w.sid) < w.events_max);
	CU_ASSERT_EQUAL_FATAL(hp_start(&master), 0);
	CU_ASSERT_EQUAL(hf_sync_retry(&s, 60), 0);
	assert_same_rows(&s, w.sid);
	hp_cleanup(&s);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("faults: crashes and removal", suite_init, suite_clean);
	CU_add_test(s, "slave removed on the master", test_unregistered);
	CU_add_test(s, "slave removed with --keep-data", test_unregistered_keep_data);
	CU_add_test(s, "master database lost during an upload", test_database_lost);
	CU_add_test(s, "master killed during an upload", test_master_killed);
	return hp_run_suite();
}
