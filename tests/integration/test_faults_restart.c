/*
 * Restarts under load. Push workers killed with SIGKILL at random moments
 * while real agents report numbered detections and task results, and the
 * slave's main process killed once: every event and result is stored on
 * the slave exactly once and reaches the master unchanged. Then
 * PostgreSQL restarted (fast and immediate) under the master and under
 * the slave during an upload, each side on a cluster of its own: the
 * daemons reconnect and both sides end with the same rows.
 *
 * STRATA_RESTART_ROUNDS sets the number of worker kills (default 5),
 * STRATA_RESTART_SEED the random seed (default: the time, printed).
 */
#include <CUnit/Basic.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "harness_agent.h"
#include "harness_faults.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "tls.h"

#define NAGENTS	       6
#define NWORKERS       2
#define FILES_PER_TASK 30
/* Scan tasks given to every agent before the kills start, and after each kill. */
#define TASKS_PER_ROUND 2

static const char marker[] = "strata restart test: blocked content";

static struct hnode master, slave;
static pid_t agents[NAGENTS];
static char agent_uid[NAGENTS][80];
static char scan_root[600];
static int ntasks; /* scan tasks given to every agent so far */

static int env_int(const char *name, int def, int min, int max)
{
	const char *v = getenv(name);
	if (!v || !v[0])
		return def;
	int n = atoi(v);
	return n < min ? min : n > max ? max : n;
}

static void agent_paths(int i, char *dir, size_t dirlen, char *log, size_t loglen)
{
	snprintf(dir, dirlen, "%s/agent-%d", hp_root(), i);
	snprintf(log, loglen, "%s/agent-%d.log", hp_root(), i);
}

static pid_t agent_start(int i)
{
	char dir[700], log[700];
	agent_paths(i, dir, sizeof(dir), log, sizeof(log));
	return hp_spawn_agent(log, "-v", "-s", dir, "run", "--scan-root", scan_root, NULL);
}

static bool all_workers(void *arg)
{
	pid_t pids[NWORKERS];
	return hp_worker_pids(slave.pid, pids, NWORKERS) == NWORKERS;
}

static bool all_online(void *arg)
{
	return hp_query_ll(&slave,
			   "SELECT count(*) FROM endpoints WHERE status = 'online' AND "
			   "policy_version <> 0 AND policy_version = policy_target") == NAGENTS;
}

static int suite_init(void)
{
	char sha[TLS_PIN_HEX_LEN + 1], settings[256], *out = NULL;
	if (hpg_require() != 0)
		return -1;
	if (hp_master_init(&master, "frs-master", NULL) != 0 || hp_start(&master) != 0)
		return -1;
	if (hp_slave_init(&slave, "frs-slave", master.port, 1800,
			  "  <push heartbeat=\"5\" workers=\"2\"/>") != 0 ||
	    hp_start(&slave) != 0 || hp_enrol(&master, &slave) != 0)
		return -1;
	snprintf(scan_root, sizeof(scan_root), "%s/scan", hp_root());
	if (mkdir(scan_root, 0755) != 0)
		return -1;
	/* Every endpoint's policy blocks the marker: each marker file scanned is one detection. */
	tls_sha256_hex(marker, strlen(marker), sha);
	snprintf(settings, sizeof(settings), "{\"heartbeat\": 5, \"block_sha256\": [\"%s\"]}", sha);
	int rc =
	    hp_ctl(&slave, &out, "policy", "create", "frs-block", "--settings", settings, NULL);
	free(out);
	return rc == 0 ? 0 : -1;
}

static int suite_clean(void)
{
	for (int i = 0; i < NAGENTS; i++)
		hp_reap(&agents[i], SIGTERM);
	hp_cleanup(&slave);
	hp_cleanup(&master);
	return 0;
}

/* Task frs-scan-T scans scan_root/T, which holds FILES_PER_TASK marker files. */
static int task_create(int t)
{
	char dir[700], path[800], name[32], params[800], *out = NULL;
	snprintf(dir, sizeof(dir), "%s/%d", scan_root, t);
	if (mkdir(dir, 0755) != 0)
		return -1;
	for (int k = 1; k <= FILES_PER_TASK; k++) {
		snprintf(path, sizeof(path), "%s/f-%d.bin", dir, k);
		FILE *f = fopen(path, "w");
		if (!f)
			return -1;
		fputs(marker, f);
		fclose(f);
	}
	snprintf(name, sizeof(name), "frs-scan-%d", t);
	snprintf(params, sizeof(params), "{\"path\": \"%s\"}", dir);
	int rc = hp_ctl(&slave, &out, "task", "create", name, "--kind", "scan", "--params", params,
			NULL);
	if (rc != 0)
		fprintf(stderr, "task create %s: %s\n", name, out ? out : "");
	free(out);
	return rc;
}

/* The next scan task, created and sent to every agent (to be run whenever it is connected). */
static int task_give(void)
{
	char args[64], *out = NULL;
	int t = ntasks + 1;
	if (task_create(t) != 0)
		return -1;
	snprintf(args, sizeof(args), "{\"task\": \"frs-scan-%d\"}", t);
	for (int i = 0; i < NAGENTS; i++) {
		int rc = hp_ctl(&slave, &out, "endpoint", "command", agent_uid[i], "run_task",
				"--args", args, NULL);
		if (rc != 0) {
			fprintf(stderr, "run_task on %s: %s\n", agent_uid[i], out ? out : "");
			free(out);
			return -1;
		}
		free(out);
	}
	ntasks = t;
	return 0;
}

static void test_agents_up(void)
{
	char dir[700], log[700], host[32];
	char *tok = ha_make_token(&slave, "/frs");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	CU_ASSERT_FATAL(hp_wait(all_workers, NULL, 30));
	for (int i = 0; i < NAGENTS; i++) {
		agent_paths(i, dir, sizeof(dir), log, sizeof(log));
		snprintf(host, sizeof(host), "frs-desk-%d", i);
		CU_ASSERT_EQUAL_FATAL(ha_agent_enrol(&slave, dir, tok, host, NULL), 0);
		const char *p[] = { host };
		char *uid = hf_value(&slave, "SELECT uid FROM endpoints WHERE hostname = $1", 1, p);
		CU_ASSERT_PTR_NOT_NULL_FATAL(uid);
		snprintf(agent_uid[i], sizeof(agent_uid[i]), "%s", uid);
		free(uid);
		agents[i] = agent_start(i);
		CU_ASSERT_FATAL(agents[i] > 0);
	}
	free(tok);
	CU_ASSERT_FATAL(hp_wait(all_online, NULL, 60));
}

static bool pid_gone(pid_t pid)
{
	return kill(pid, 0) != 0 && errno == ESRCH;
}

struct respawn {
	pid_t old;
	int index;
};

static bool worker_respawned(void *arg)
{
	struct respawn *r = arg;
	pid_t pids[NWORKERS];
	hp_worker_pids(slave.pid, pids, NWORKERS);
	return pids[r->index] != 0 && pids[r->index] != r->old;
}

/* A random pause of up to max_ms. */
static void pause_ms(int max_ms)
{
	usleep((useconds_t)(rand() % (max_ms + 1)) * 1000);
}

static void test_worker_kills(void)
{
	int rounds = env_int("STRATA_RESTART_ROUNDS", 5, 1, 1000);
	for (int t = 0; t < TASKS_PER_ROUND; t++)
		CU_ASSERT_EQUAL_FATAL(task_give(), 0);
	for (int r = 0; r < rounds; r++) {
		pid_t pids[NWORKERS];
		for (int t = 0; t < TASKS_PER_ROUND; t++)
			CU_ASSERT_EQUAL_FATAL(task_give(), 0);
		/* In the middle of the tasks' detections, results and acknowledgements. */
		pause_ms(300);
		CU_ASSERT_EQUAL_FATAL(hp_worker_pids(slave.pid, pids, NWORKERS), NWORKERS);
		struct respawn w = { 0, rand() % NWORKERS };
		w.old = pids[w.index];
		fprintf(stderr, "round %d: SIGKILL to push worker %d (pid %d)\n", r + 1,
			w.index + 1, (int)w.old);
		CU_ASSERT_EQUAL(kill(w.old, SIGKILL), 0);
		/* A worker that dies young restarts after a delay that doubles, up to 60 s;
		 * meanwhile its agents reconnect to the other one. */
		CU_ASSERT_FATAL(hp_wait(worker_respawned, &w, 75));
	}
}

static void test_slave_killed(void)
{
	pid_t pids[NWORKERS];
	CU_ASSERT_EQUAL_FATAL(task_give(), 0);
	pause_ms(300);
	CU_ASSERT_EQUAL_FATAL(hp_worker_pids(slave.pid, pids, NWORKERS), NWORKERS);
	fprintf(stderr, "SIGKILL to the slave's main process (pid %d)\n", (int)slave.pid);
	hp_kill9(&slave);
	/* Its workers notice and leave; the port is free for the next ones. */
	for (int i = 0; i < NWORKERS; i++) {
		time_t end = time(NULL) + 30;
		while (!pid_gone(pids[i]) && time(NULL) < end)
			usleep(100000);
		CU_ASSERT_TRUE(pid_gone(pids[i]));
	}
	CU_ASSERT_EQUAL_FATAL(hp_start(&slave), 0);
	CU_ASSERT_FATAL(hp_wait(all_workers, NULL, 30));
	for (int t = 0; t < TASKS_PER_ROUND; t++)
		CU_ASSERT_EQUAL_FATAL(task_give(), 0);
}

static const char detections_sql[] =
    "SELECT count(*) || '/' || count(DISTINCT v.details->>'path') FROM events v "
    "JOIN endpoints e ON e.id = v.endpoint_id WHERE e.uid = $1 AND v.kind = 'detection'";
static const char results_sql[] =
    "SELECT count(*) FROM task_results r JOIN endpoints e ON e.id = r.endpoint_id "
    "JOIN tasks t ON t.id = r.task_id WHERE e.uid = $1 AND t.name LIKE 'frs-scan-%' "
    "AND r.status = 'succeeded'";

/* Every agent's results are in and its queue is empty. */
static bool drained(void *arg)
{
	char dir[700], log[700], path[800];
	for (int i = 0; i < NAGENTS; i++) {
		const char *p[] = { agent_uid[i] };
		if (hf_ll(&slave, results_sql, 1, p) != ntasks)
			return false;
		struct stat st;
		agent_paths(i, dir, sizeof(dir), log, sizeof(log));
		snprintf(path, sizeof(path), "%s/queue.jsonl", dir);
		if (stat(path, &st) == 0 && st.st_size > 0)
			return false;
	}
	return true;
}

/* Lines of the agent's log saying it started task kind scan. */
static int scans_run(int i)
{
	char dir[700], log[700], line[4096];
	int n = 0;
	agent_paths(i, dir, sizeof(dir), log, sizeof(log));
	FILE *f = fopen(log, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		const char *t = strstr(line, "agent: task ");
		n += t && strstr(t, ": scan\n") != NULL;
	}
	fclose(f);
	return n;
}

static bool endpoints_offline(void *arg)
{
	return hp_query_ll(&slave, "SELECT count(*) FROM endpoints WHERE status = 'online'") == 0;
}

static bool synced_same(void *arg)
{
	struct hnode **nodes = arg;
	int sid = hf_slave_id(nodes[0], nodes[1]->name);
	return hf_sync_retry(nodes[1], 30) == 0 && hf_rows_same(nodes[0], nodes[1], sid, false);
}

static void test_nothing_lost_or_twice(void)
{
	char want[32];
	CU_ASSERT_TRUE(hp_wait(drained, NULL, 90));
	snprintf(want, sizeof(want), "%d/%d", ntasks * FILES_PER_TASK, ntasks * FILES_PER_TASK);
	for (int i = 0; i < NAGENTS; i++) {
		const char *p[] = { agent_uid[i] };
		char *got = hf_value(&slave, detections_sql, 1, p);
		/* Every marker file of every task once: none missing, none twice. */
		CU_ASSERT_STRING_EQUAL(got ? got : "", want);
		if (!got || strcmp(got, want) != 0)
			fprintf(stderr, "agent %d: detections (rows/distinct) %s, want %s\n", i,
				got ? got : "?", want);
		free(got);
		CU_ASSERT_EQUAL(hf_ll(&slave, results_sql, 1, p), ntasks);
		/* A command sent again after a lost acknowledgement is not run again. */
		CU_ASSERT_EQUAL(scans_run(i), ntasks);
	}
	fprintf(stderr, "%d scan tasks on %d agents: %d detections each\n", ntasks, NAGENTS,
		ntasks * FILES_PER_TASK);

	/* Quiet endpoints, then the master gets the same rows. */
	for (int i = 0; i < NAGENTS; i++)
		hp_reap(&agents[i], SIGTERM);
	CU_ASSERT_TRUE(hp_wait(endpoints_offline, NULL, 60));
	struct hnode *nodes[] = { &master, &slave };
	CU_ASSERT_TRUE(hp_wait(synced_same, nodes, 60));
	CU_ASSERT_TRUE(hf_rows_same(&master, &slave, hf_slave_id(&master, slave.name), true));
}

/* ---- PostgreSQL restarted during a sync session ---- */

/* A throwaway cluster of this suite's own (scripts/pg.sh), so restarting it disturbs no other test.
 */
struct cluster {
	char dir[600];
	int port;
	bool up;
};

static char clusters_root[64];
static struct cluster pg_master, pg_slave;
static struct hnode pmaster, pslave;
static char pg_ctl[128];

static int find_pg_ctl(void)
{
	static const char *const versions[] = { "17", "16", "15" };
	for (size_t i = 0; i < sizeof(versions) / sizeof(versions[0]); i++) {
		snprintf(pg_ctl, sizeof(pg_ctl), "/usr/lib/postgresql/%s/bin/pg_ctl", versions[i]);
		if (access(pg_ctl, X_OK) == 0)
			return 0;
	}
	fprintf(stderr, "no pg_ctl under /usr/lib/postgresql\n");
	return -1;
}

static int cluster_start(struct cluster *c, const char *name)
{
	char port_s[16], *out = NULL;
	snprintf(c->dir, sizeof(c->dir), "%s/%s", clusters_root, name);
	c->port = hp_free_port();
	snprintf(port_s, sizeof(port_s), "%d", c->port);
	int rc = hp_run(&out, "/usr/bin/bash", STRATA_SOURCE_DIR "/scripts/pg.sh", "start", c->dir,
			port_s, NULL);
	if (rc != 0)
		fprintf(stderr, "pg.sh start %s: %s\n", c->dir, out ? out : "");
	free(out);
	c->up = rc == 0;
	return rc;
}

static void cluster_stop(struct cluster *c)
{
	if (c->up)
		(void)hp_run(NULL, "/usr/bin/bash", STRATA_SOURCE_DIR "/scripts/pg.sh", "stop",
			     c->dir, NULL);
	c->up = false;
}

/* pg_ctl restart -m mode as the postgres user; 0 when the cluster is back. */
static int cluster_restart(struct cluster *c, const char *mode)
{
	char data[700], log[700], *out = NULL;
	snprintf(data, sizeof(data), "%s/data", c->dir);
	snprintf(log, sizeof(log), "%s/server.log", c->dir);
	int rc = hp_run(&out, "/usr/sbin/runuser", "-u", "postgres", "--", pg_ctl, "-D", data, "-l",
			log, "-m", mode, "-w", "-t", "60", "restart", NULL);
	if (rc != 0)
		fprintf(stderr, "pg_ctl restart -m %s: %s\n", mode, out ? out : "");
	free(out);
	return rc;
}

/* The node's database is created on cluster c and found there from now on. */
static int on_cluster(struct cluster *c, struct hnode *n, const char *name, int master_port)
{
	char port_s[16], *host = strdup(getenv("STRATA_TEST_PGHOST"));
	char *port = strdup(getenv("STRATA_TEST_PGPORT"));
	snprintf(port_s, sizeof(port_s), "%d", c->port);
	setenv("STRATA_TEST_PGHOST", c->dir, 1);
	setenv("STRATA_TEST_PGPORT", port_s, 1);
	int rc;
	if (master_port == 0)
		rc = hp_master_init(n, name, NULL);
	else
		rc = hp_slave_init(n, name, master_port, 1800, NULL);
	setenv("STRATA_TEST_PGHOST", host, 1);
	setenv("STRATA_TEST_PGPORT", port, 1);
	free(host);
	free(port);
	if (rc == 0 && n->dbname)
		rc = hpg_place(n->dbname, c->dir, c->port);
	return rc;
}

static const char pg_seed_sql[] =
    "INSERT INTO groups (name, path) SELECT 'g' || g, '/g' || g FROM generate_series(1, 20) g;"
    "INSERT INTO endpoints (uid, hostname, group_id) "
    "SELECT 'uid-' || g, 'host-' || g, 1 + g % 20 FROM generate_series(1, 500) g;"
    "INSERT INTO task_results (task_id, endpoint_id, status, result) "
    "SELECT 1 + g % 5, g, 'succeeded', jsonb_build_object('code', g % 3) "
    "FROM generate_series(1, 500) g";

/* A backlog per case: enough event batches that the upload has a middle. */
static const char pg_backlog_sql[] =
    "INSERT INTO events (endpoint_id, kind, severity, details) "
    "SELECT 1 + g % 500, (ARRAY['detection','heartbeat-missed','policy-applied'])[1 + g % 3], "
    "(ARRAY['info','low','high'])[1 + g % 3], jsonb_build_object('n', g) "
    "FROM generate_series(1, 100000) g";

static int pg_suite_init(void)
{
	char xml[256];
	if (hpg_require() != 0 || find_pg_ctl() != 0)
		return -1;
	snprintf(clusters_root, sizeof(clusters_root), "/tmp/strata-frs-XXXXXX");
	/* The postgres user runs the clusters: it must reach their directories. */
	if (!mkdtemp(clusters_root) || chmod(clusters_root, 0755) != 0)
		return -1;
	if (cluster_start(&pg_master, "master") != 0 || cluster_start(&pg_slave, "slave") != 0)
		return -1;
	if (on_cluster(&pg_master, &pmaster, "frs-pgm", 0) != 0 || hp_start(&pmaster) != 0)
		return -1;
	if (on_cluster(&pg_slave, &pslave, "frs-pgs", pmaster.port) != 0)
		return -1;
	/* Small batches: an upload takes many round trips, so there is a middle to hit. */
	snprintf(xml, sizeof(xml),
		 "  <master host=\"127.0.0.1\" port=\"%d\"/>\n"
		 "  <replication interval=\"1800\" retry-min=\"1\" retry-max=\"3\" "
		 "batch-rows=\"2000\"/>",
		 pmaster.port);
	if (hp_write_config(&pslave, xml) != 0 || hp_start(&pslave) != 0 ||
	    hf_script(&pslave, pg_seed_sql) != 0 || hp_enrol(&pmaster, &pslave) != 0)
		return -1;
	return hf_sync_retry(&pslave, 60);
}

static pid_t pg_agent;

static int pg_suite_clean(void)
{
	hp_reap(&pg_agent, SIGTERM);
	hp_cleanup(&pslave);
	hp_cleanup(&pmaster);
	cluster_stop(&pg_slave);
	cluster_stop(&pg_master);
	if (clusters_root[0])
		(void)hp_run(NULL, "/usr/bin/rm", "-rf", clusters_root, NULL);
	return 0;
}

struct upload_watch {
	int sid;
	long long from, to; /* the events versions of this upload */
};

static long long events_watermark(int sid)
{
	char sid_s[16];
	snprintf(sid_s, sizeof(sid_s), "%d", sid);
	const char *p[] = { sid_s };
	return hf_ll(
	    &pmaster,
	    "SELECT version FROM watermarks WHERE slave_id = $1::int AND stream = 'events'", 1, p);
}

/* The master has applied some but not all of this upload's event batches. */
static bool upload_midway(void *arg)
{
	struct upload_watch *w = arg;
	long long wm = events_watermark(w->sid);
	return wm > w->from && wm < w->to;
}

static bool pg_synced_same(void *arg)
{
	int *sid = arg;
	return hf_sync_retry(&pslave, 10) == 0 && hf_rows_same(&pmaster, &pslave, *sid, false);
}

/* Whether the daemon still runs; when it left, says how and starts it again. */
static bool survived(struct hnode *n)
{
	int st;
	if (n->pid > 0 && waitpid(n->pid, &st, WNOHANG) == 0)
		return true;
	fprintf(stderr, "%s exited (status %d); started again\n", n->name,
		WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
	n->pid = 0;
	CU_ASSERT_EQUAL(hp_start(n), 0);
	return false;
}

static void restart_during_upload(struct cluster *c, const char *side, const char *mode)
{
	struct upload_watch w;
	w.sid = hf_slave_id(&pmaster, pslave.name);
	CU_ASSERT_FATAL(w.sid > 0);
	CU_ASSERT_EQUAL_FATAL(hf_script(&pslave, pg_backlog_sql), 0);
	w.from = events_watermark(w.sid);
	w.to = hp_query_ll(&pslave, "SELECT max(version) FROM events");

	pid_t sync = fork();
	if (sync == 0)
		_exit(hp_ctl(&pslave, NULL, "sync", "now", NULL));
	CU_ASSERT_TRUE(hp_wait(upload_midway, &w, 60));
	time_t t0 = time(NULL);
	CU_ASSERT_EQUAL(cluster_restart(c, mode), 0);
	int st = 0;
	waitpid(sync, &st, 0);
	time_t t1 = time(NULL);
	bool master_up = survived(&pmaster), slave_up = survived(&pslave);
	CU_ASSERT_TRUE(master_up);
	CU_ASSERT_TRUE(slave_up);

	CU_ASSERT_TRUE(hp_wait(pg_synced_same, &w.sid, 120));
	CU_ASSERT_TRUE(hf_rows_same(&pmaster, &pslave, w.sid, true));
	fprintf(stderr,
		"%s database restarted (-m %s) during an upload: the session %s, master %s, "
		"slave %s; database back after %lds, same rows after %lds\n",
		side, mode, WIFEXITED(st) && WEXITSTATUS(st) == 0 ? "completed" : "failed",
		master_up ? "ran on" : "exited", slave_up ? "ran on" : "exited", (long)(t1 - t0),
		(long)(time(NULL) - t0));
}

static void test_master_db_fast(void)
{
	restart_during_upload(&pg_master, "master", "fast");
}

static void test_master_db_immediate(void)
{
	restart_during_upload(&pg_master, "master", "immediate");
}

static void test_slave_db_fast(void)
{
	restart_during_upload(&pg_slave, "slave", "fast");
}

static void test_slave_db_immediate(void)
{
	restart_during_upload(&pg_slave, "slave", "immediate");
}

static bool pg_agent_online(void *arg)
{
	return hp_query_ll(&pslave, "SELECT count(*) FROM endpoints WHERE hostname = 'frs-pg-desk' "
				    "AND status = 'online'") == 1;
}

static bool pg_agent_reported(void *arg)
{
	return hp_query_ll(&pslave,
			   "SELECT count(*) FROM task_results r JOIN tasks t ON t.id = r.task_id "
			   "JOIN endpoints e ON e.id = r.endpoint_id WHERE t.name = 'frs-pg-inv' "
			   "AND e.hostname = 'frs-pg-desk' AND r.status = 'succeeded'") == 1;
}

/* The push server's connections (its LISTEN one too) came back with the database. */
static void test_slave_serves_agents_after(void)
{
	char dir[700], log[700], *out = NULL;
	snprintf(dir, sizeof(dir), "%s/pg-agent", hp_root());
	snprintf(log, sizeof(log), "%s/pg-agent.log", hp_root());
	char *tok = ha_make_token(&pslave, "/frs-pg");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	int rc = ha_agent_enrol(&pslave, dir, tok, "frs-pg-desk", NULL);
	free(tok);
	CU_ASSERT_EQUAL_FATAL(rc, 0);
	pg_agent = hp_spawn_agent(log, "-v", "-s", dir, "run", NULL);
	CU_ASSERT_TRUE_FATAL(hp_wait(pg_agent_online, NULL, 30));
	char *uid = hp_query1(&pslave, "SELECT uid FROM endpoints WHERE hostname = 'frs-pg-desk'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(uid);
	CU_ASSERT_EQUAL(
	    hp_ctl(&pslave, &out, "task", "create", "frs-pg-inv", "--kind", "inventory", NULL), 0);
	free(out);
	/* Sent while the agent is connected: it arrives by the notification, not at A_AUTH. */
	CU_ASSERT_EQUAL(hp_ctl(&pslave, &out, "endpoint", "command", uid, "run_task", "--args",
			       "{\"task\": \"frs-pg-inv\"}", NULL),
			0);
	free(out);
	free(uid);
	CU_ASSERT_TRUE(hp_wait(pg_agent_reported, NULL, 20));
	hp_stop_checked(&pg_agent, log);
}

int main(void)
{
	const char *seed_s = getenv("STRATA_RESTART_SEED");
	unsigned seed =
	    seed_s && seed_s[0] ? (unsigned)strtoul(seed_s, NULL, 10) : (unsigned)time(NULL);
	fprintf(stderr, "STRATA_RESTART_SEED=%u\n", seed);
	srand(seed);
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("faults: push workers killed under agent traffic", suite_init,
				   suite_clean);
	CU_add_test(s, "agents enrol and come online", test_agents_up);
	CU_add_test(s, "push workers killed at random moments", test_worker_kills);
	CU_add_test(s, "the slave's main process killed", test_slave_killed);
	CU_add_test(s, "every event and result stored once, the master the same",
		    test_nothing_lost_or_twice);
	s = CU_add_suite("faults: PostgreSQL restarted during a sync session", pg_suite_init,
			 pg_suite_clean);
	CU_add_test(s, "master database, fast shutdown", test_master_db_fast);
	CU_add_test(s, "master database, immediate shutdown", test_master_db_immediate);
	CU_add_test(s, "slave database, fast shutdown", test_slave_db_fast);
	CU_add_test(s, "slave database, immediate shutdown", test_slave_db_immediate);
	CU_add_test(s, "the slave serves agents afterwards", test_slave_serves_agents_after);
	return hp_run_suite();
}
