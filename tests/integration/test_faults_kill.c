/*
 * Kill points: the master or the slave is killed with SIGKILL at a named
 * point of a sync session (common/faultpoint.h: mid-frame, after the
 * master's commit before its acknowledgement, after the acknowledgement
 * before the slave records it, during a download, at session start and
 * end) or at a random moment of a session, then restarted. After every
 * round the link settles and master and slave must hold the same rows in
 * every stream (count and checksum), and the slave the master's policies
 * and tasks: none lost, none twice.
 *
 * STRATA_KILL_POINTS sets the number of rounds (default 20);
 * STRATA_KILL_SEED the random seed (default: the time).
 */
#include <CUnit/Basic.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "faultpoint.h"
#include "harness_faults.h"
#include "harness_pg.h"
#include "harness_proc.h"

#define KILL_POINTS_DEFAULT 20

static struct hnode master, slave;
static int slave_id;

/* Downloads: the master's live policies and tasks, as the slave holds them. */
#define SUM_SELECT(expr) "SELECT count(*) || '/' || coalesce(sum(hashtext(" expr ")), 0) FROM "
static const struct hf_stream downloads[] = {
	{ "download policies",
	  SUM_SELECT("master_id::text || '/' || name || settings::text") "policies WHERE owner <> "
									 "'local'",
	  SUM_SELECT("id::text || '/' || name || settings::text") "policies WHERE NOT deleted" },
	{ "download tasks",
	  SUM_SELECT("master_id::text || '/' || name || kind || params::text") "tasks WHERE owner "
									       "<> 'local'",
	  SUM_SELECT("id::text || '/' || name || kind || params::text") "tasks WHERE NOT deleted" },
};
#undef SUM_SELECT
#define NDOWNLOADS (sizeof(downloads) / sizeof(downloads[0]))

/* The replicated streams and the downloads; the rows compared, -1 on a difference. */
static long long compare_all(bool report)
{
	long long up = hf_compare(&master, &slave, slave_id, hf_streams, hf_nstreams, report);
	long long down = hf_compare(&master, &slave, slave_id, downloads, NDOWNLOADS, report);
	return up < 0 || down < 0 ? -1 : up + down;
}

static bool rows_same(void *arg)
{
	(void)arg;
	return compare_all(false) >= 0;
}

/* Compares every stream; returns the rows compared on the slave's side, -1 on a difference. */
static long long compare_streams(int round)
{
	(void)hp_wait(rows_same, NULL, 30);
	long long rows = compare_all(true);
	CU_ASSERT(rows >= 0);
	if (rows < 0)
		fprintf(stderr, "round %d: the streams above differ\n", round);
	return rows;
}

/* ---- work for every session ---- */

static const char *const slave_work_sql[] = {
	"INSERT INTO groups (name, path) VALUES ('r' || $1, '/r' || $1)",
	"INSERT INTO endpoints (uid, hostname, group_id) SELECT 'r' || $1 || '-' || g, 'host-' || "
	"g, "
	"(SELECT max(id) FROM groups) FROM generate_series(1, 40) g",
	"INSERT INTO events (endpoint_id, kind, severity, details) "
	"SELECT (SELECT max(id) FROM endpoints) - g % 40, "
	"(ARRAY['detection','heartbeat-missed','policy-applied'])[1 + g % 3], "
	"(ARRAY['info','low','high'])[1 + g % 3], jsonb_build_object('round', $1::int, 'n', g) "
	"FROM generate_series(1, 2500) g",
	"INSERT INTO task_results (task_id, endpoint_id, status, result) "
	"SELECT 1000 + $1::int, id, 'succeeded', jsonb_build_object('round', $1::int) "
	"FROM endpoints WHERE uid LIKE 'r' || $1 || '-%'",
	"INSERT INTO policies (name, settings) VALUES ('local-r' || $1, "
	"jsonb_build_object('heartbeat', 60 + $1::int % 100))",
	"INSERT INTO tasks (name, kind) VALUES ('local-t' || $1, 'inventory')",
	/* Updates and deletes too: the deletions stream has work. */
	"UPDATE endpoints SET hostname = hostname || 'u' WHERE id % 13 = $1::int % 13",
	"DELETE FROM events WHERE id IN (SELECT id FROM events WHERE $1::int > 0 "
	"ORDER BY id LIMIT 25)",
	"DELETE FROM task_results WHERE (task_id, endpoint_id) IN (SELECT task_id, endpoint_id "
	"FROM task_results WHERE $1::int > 0 ORDER BY version LIMIT 5)",
};

static int add_slave_work(int round)
{
	char r[16];
	snprintf(r, sizeof(r), "%d", round);
	const char *p[] = { r };
	for (size_t i = 0; i < sizeof(slave_work_sql) / sizeof(slave_work_sql[0]); i++)
		if (hf_exec(&slave, slave_work_sql[i], 1, p) != 0)
			return -1;
	return 0;
}

/*
 * A new policy and task on the master, an update, and now and then a
 * withdrawal. big_download adds a task of about 48 KiB for no endpoint,
 * so that the DOWNLOAD leaves in several TLS records and a kill in its
 * middle cuts it.
 */
static int add_master_work(int round, bool big_download)
{
	char name[64], settings[64], prev[64];
	int rc = 0;
	snprintf(name, sizeof(name), "kp-%d", round);
	snprintf(settings, sizeof(settings), "{\"heartbeat\": %d}", 30 + round % 200);
	rc |= hp_ctl(&master, NULL, "policy", "create", name, "--settings", settings, NULL);
	snprintf(name, sizeof(name), "kt-%d", round);
	rc |= hp_ctl(&master, NULL, "task", "create", name, "--kind", "inventory", NULL);
	if (big_download) {
		json_t *params = json_object();
		char *filler = malloc(48 * 1024 + 1), *text;
		if (!params || !filler)
			abort();
		memset(filler, 'k', 48 * 1024);
		filler[48 * 1024] = '\0';
		json_object_set_new(params, "note", json_string(filler));
		text = json_dumps(params, JSON_COMPACT);
		snprintf(name, sizeof(name), "kt-big-%d", round);
		rc |= hp_ctl(&master, NULL, "task", "create", name, "--kind", "scan", "--group",
			     "/kill-nobody", "--params", text, NULL);
		free(text);
		free(filler);
		json_decref(params);
	}
	if (round > 1) {
		snprintf(prev, sizeof(prev), "kp-%d", round - 1);
		snprintf(settings, sizeof(settings), "{\"heartbeat\": %d}", 300 + round % 200);
		rc |= hp_ctl(&master, NULL, "policy", "update", prev, "--settings", settings, NULL);
	}
	if (round > 3 && round % 3 == 0) {
		snprintf(prev, sizeof(prev), "kp-%d", round - 3);
		rc |= hp_ctl(&master, NULL, "policy", "delete", prev, NULL);
	}
	return rc;
}

/* ---- victims ---- */

static const char *daemon_bin(struct hnode *n)
{
	return n->master ? STRATA_BINARY_DIR "/strata-master" : STRATA_BINARY_DIR "/strata-slave";
}

/* Starts the node with STRATA_FAULTPOINT=point:pass; does not wait for it. */
static void start_armed(struct hnode *n, const char *point, int pass)
{
	char spec[96];
	snprintf(spec, sizeof(spec), "%s:%d", point, pass);
	setenv("STRATA_FAULTPOINT", spec, 1);
	n->pid = hf_spawn(daemon_bin(n), n->cfg, n->log);
	unsetenv("STRATA_FAULTPOINT");
}

/*
 * Drives sessions (`sync now` on the slave) until the victim exits;
 * returns its exit status, -1 when it still runs after timeout_s.
 */
static int sync_until_exit(struct hnode *victim, int timeout_s)
{
	time_t end = time(NULL) + timeout_s;
	int st;
	while (time(NULL) < end) {
		if (waitpid(victim->pid, &st, WNOHANG) == victim->pid) {
			victim->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		}
		if (hp_ctl(&slave, NULL, "sync", "now", NULL) != 0)
			usleep(100000);
	}
	return -1;
}

enum { KIND_RANDOM = -1 };

struct tally {
	int rounds, passed, random_kills, random_cut;
	int per_point[32];
	long long rows;
};

/* One round: returns 0 when it passed. */
static int kill_round(int round, int kind, struct tally *t)
{
	char label[96];
	struct hnode *victim;
	int pass = 1, rc = 0;
	bool big =
	    kind != KIND_RANDOM && strcmp(faultpoint_names[kind], "master.download.midframe") == 0;
	if (add_slave_work(round) != 0 || add_master_work(round, big) != 0) {
		CU_FAIL("cannot add work for the round");
		return -1;
	}
	if (kind == KIND_RANDOM) {
		victim = rand() % 2 ? &master : &slave;
		int delay_ms = rand() % 600;
		snprintf(label, sizeof(label), "random %s after %d ms",
			 victim->master ? "master" : "slave", delay_ms);
		pid_t sync = fork();
		if (sync == 0)
			_exit(hp_ctl(&slave, NULL, "sync", "now", NULL));
		usleep((useconds_t)delay_ms * 1000);
		hp_kill9(victim);
		int st = 0;
		waitpid(sync, &st, 0);
		/* A failed `sync now`: the kill cut the session; else it came after it. */
		bool cut = !WIFEXITED(st) || WEXITSTATUS(st) != 0;
		snprintf(label, sizeof(label), "random %s after %d ms (%s)",
			 victim->master ? "master" : "slave", delay_ms,
			 cut ? "cut a session" : "after the session");
		t->random_kills++;
		t->random_cut += cut;
	} else {
		const char *point = faultpoint_names[kind];
		victim = strncmp(point, "master.", 7) == 0 ? &master : &slave;
		/* Points passed once per batch may also fire at a later batch. */
		if (strstr(point, "midframe") || strstr(point, "batch") || strstr(point, "ack."))
			pass = 1 + rand() % 2;
		if (strstr(point, "download.midframe"))
			pass = 1;
		snprintf(label, sizeof(label), "%s:%d", point, pass);
		char line[96];
		snprintf(line, sizeof(line), "faultpoint %s: SIGKILL", point);
		int before = hf_file_count(victim->log, line);
		hp_stop(victim);
		start_armed(victim, point, pass);
		int st = sync_until_exit(victim, 90);
		if (st != 128 + SIGKILL || hf_file_count(victim->log, line) != before + 1) {
			fprintf(stderr,
				"round %d: %s: victim exit status %d, not killed at its point; see "
				"%s\n",
				round, label, st, victim->log);
			CU_FAIL("the victim was not killed at its faultpoint");
			if (victim->pid > 0)
				hp_kill9(victim);
			rc = -1;
		}
		t->per_point[kind]++;
	}
	if (hp_start(victim) != 0) {
		CU_FAIL("the victim does not restart");
		fprintf(stderr, "round %d: %s: %s does not restart; see %s\n", round, label,
			victim->name, victim->log);
		return -1;
	}
	/* The second session carries what the first one's download made (task results). */
	if (hf_sync_retry(&slave, 90) != 0 || hf_sync_retry(&slave, 30) != 0) {
		CU_FAIL("no sync after the restart");
		rc = -1;
	}
	long long rows = compare_streams(round);
	if (rows < 0)
		rc = -1;
	else
		t->rows += rows;
	t->rounds++;
	t->passed += rc == 0;
	printf("kill round %d: %s (%s): %s, %lld rows compared\n", round, label, victim->name,
	       rc == 0 ? "same rows" : "FAILED", rows < 0 ? 0 : rows);
	fflush(stdout);
	return rc;
}

static void test_kill_points(void)
{
	const char *env = getenv("STRATA_KILL_POINTS");
	const char *seed_env = getenv("STRATA_KILL_SEED");
	int k = env ? atoi(env) : KILL_POINTS_DEFAULT;
	unsigned seed = seed_env ? (unsigned)strtoul(seed_env, NULL, 10) : (unsigned)time(NULL);
	size_t npoints = 0;
	struct tally t = { 0 };
	time_t t0 = time(NULL);
	if (k < 1)
		k = KILL_POINTS_DEFAULT;
	while (faultpoint_names[npoints])
		npoints++;
	CU_ASSERT_FATAL(npoints < sizeof(t.per_point) / sizeof(t.per_point[0]));
	srand(seed);
	printf("\nkill points: %d rounds over %zu named points and random kills, seed %u\n", k,
	       npoints, seed);
	/* Every few rounds a random kill; the named points in turn otherwise. */
	size_t next_point = 0;
	for (int round = 1; round <= k; round++) {
		int kind;
		if (round % 4 == 0) {
			kind = KIND_RANDOM;
		} else {
			kind = (int)next_point;
			next_point = (next_point + 1) % npoints;
		}
		if (kill_round(round, kind, &t) != 0 && (master.pid <= 0 || slave.pid <= 0))
			break;
	}
	printf("kill points: %d run, %d passed; per point:", t.rounds, t.passed);
	for (size_t i = 0; i < npoints; i++)
		printf(" %s=%d", faultpoint_names[i], t.per_point[i]);
	printf(" random=%d (%d cut a session); %lld rows compared; %lld s\n", t.random_kills,
	       t.random_cut, t.rows, (long long)(time(NULL) - t0));
	CU_ASSERT_EQUAL(t.passed, k);
	hp_check_log(master.log);
	hp_check_log(slave.log);
}

static const char seed_sql[] =
    "INSERT INTO groups (name, path) SELECT 'g' || g, '/g' || g FROM generate_series(1, 20) g;"
    "INSERT INTO endpoints (uid, hostname, group_id) "
    "SELECT 'uid-' || g, 'host-' || g, 1 + g % 20 FROM generate_series(1, 500) g;"
    "INSERT INTO task_results (task_id, endpoint_id, status, result) "
    "SELECT 1 + g % 5, g, 'succeeded', jsonb_build_object('code', g % 3) "
    "FROM generate_series(1, 500) g;"
    "INSERT INTO events (endpoint_id, kind, severity, details) "
    "SELECT 1 + g % 500, 'detection', 'high', jsonb_build_object('n', g) "
    "FROM generate_series(1, 20000) g;"
    "INSERT INTO policies (name, settings) VALUES ('local-base', '{\"heartbeat\": 120}');"
    "INSERT INTO tasks (name, kind) VALUES ('local-inv', 'inventory')";

static int suite_init(void)
{
	char xml[256];
	if (hpg_require() != 0)
		return -1;
	if (hp_master_init(&master, "fk-master", NULL) != 0 || hp_start(&master) != 0)
		return -1;
	if (hp_slave_init(&slave, "fk-slave", master.port, 1800, NULL) != 0)
		return -1;
	/* Small batches: an upload is several frames of about 100 KiB, with a middle to hit. */
	snprintf(xml, sizeof(xml),
		 "  <master host=\"127.0.0.1\" port=\"%d\"/>\n"
		 "  <replication interval=\"1800\" retry-min=\"1\" retry-max=\"2\" "
		 "batch-rows=\"1000\"/>",
		 master.port);
	if (hp_write_config(&slave, xml) != 0 || hp_start(&slave) != 0 ||
	    hf_script(&slave, seed_sql) != 0 || hp_enrol(&master, &slave) != 0 ||
	    hf_sync_retry(&slave, 60) != 0)
		return -1;
	slave_id = hf_slave_id(&master, slave.name);
	return slave_id > 0 ? 0 : -1;
}

static int suite_clean(void)
{
	hp_cleanup(&slave);
	hp_cleanup(&master);
	return 0;
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("faults: kill points in sync sessions", suite_init, suite_clean);
	CU_add_test(s, "SIGKILL at named and random points, then the same rows", test_kill_points);
	return hp_run_suite();
}
