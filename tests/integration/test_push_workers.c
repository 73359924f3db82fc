/*
 * The push server as several worker processes on one port: real agents
 * spread over three workers, a killed worker restarted with its agents
 * back online, commands reaching an agent whichever worker holds it, and
 * no worker left behind when the slave stops. Then unreachable ranges: an
 * agent connecting from a listed range is 'unreachable', never 'online'.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "agentproto.h"
#include "proto.h"
#include "harness_agent.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "harness_tls.h"

#define NAGENTS	 30
#define NWORKERS 3

static struct hnode slave, ranged;
static pid_t agents[NAGENTS];
static pid_t ranged_agent;

static const char *agent_bin(void)
{
	return STRATA_BINARY_DIR "/strata-agent";
}

static char *token_create(struct hnode *n)
{
	char *out = NULL, *tok = NULL;
	if (hp_ctl(n, &out, "--json", "agent-token", "create", NULL) == 0) {
		char *p = strstr(out, "stk1.");
		if (p) {
			p[strcspn(p, "\"\n ")] = '\0';
			tok = strdup(p);
		}
	}
	free(out);
	return tok;
}

/* Enrols agent NAME of node n with its state in ROOT/NAME; 0 on success. */
static int agent_enrol(struct hnode *n, const char *name, const char *token)
{
	char dir[700], server[64], *out = NULL;
	snprintf(dir, sizeof(dir), "%s/%s", hp_root(), name);
	snprintf(server, sizeof(server), "127.0.0.1:%d", n->push_port);
	int rc = hp_run(&out, agent_bin(), "-s", dir, "enrol", "--server", server, "--token", token,
			"--hostname", name, NULL);
	if (rc != 0)
		fprintf(stderr, "enrol %s: %s\n", name, out ? out : "");
	free(out);
	return rc;
}

static pid_t agent_run(const char *name)
{
	char dir[700], log[700];
	snprintf(dir, sizeof(dir), "%s/%s", hp_root(), name);
	snprintf(log, sizeof(log), "%s/%s.log", hp_root(), name);
	pid_t pid = fork();
	if (pid == 0) {
		FILE *f = fopen(log, "a");
		if (f) {
			dup2(fileno(f), 1);
			dup2(fileno(f), 2);
		}
		execl(agent_bin(), agent_bin(), "-v", "-s", dir, "run", (char *)NULL);
		_exit(127);
	}
	return pid;
}

static void agent_stop(pid_t *pid)
{
	if (*pid > 0) {
		kill(*pid, SIGTERM);
		waitpid(*pid, NULL, 0);
		*pid = 0;
	}
}

static bool all_workers(void *arg)
{
	pid_t pids[NWORKERS];
	return hp_worker_pids(slave.pid, pids, NWORKERS) == NWORKERS;
}

static int suite_init(void)
{
	if (hpg_require() != 0)
		return -1;
	if (hp_slave_init(&slave, "workers", hp_free_port(), 1800,
			  "  <push heartbeat=\"5\" workers=\"3\"/>") != 0 ||
	    hp_start(&slave) != 0)
		return -1;
	if (hp_slave_init(&ranged, "ranged", hp_free_port(), 1800,
			  "  <push heartbeat=\"5\"/>\n  <unreachable-ranges>\n"
			  "    <range cidr=\"192.168.0.0/16\"/>\n"
			  "    <range cidr=\"127.0.0.0/8\"/>\n  </unreachable-ranges>") != 0 ||
	    hp_start(&ranged) != 0)
		return -1;
	return 0;
}

static int suite_clean(void)
{
	for (int i = 0; i < NAGENTS; i++)
		agent_stop(&agents[i]);
	agent_stop(&ranged_agent);
	hp_cleanup(&slave);
	hp_cleanup(&ranged);
	return 0;
}

/* True when one line of the node's log contains both a and b. */
static bool log_line_has(struct hnode *n, const char *a, const char *b)
{
	char line[4096];
	bool found = false;
	FILE *f = fopen(n->log, "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = strstr(line, a) && strstr(line, b);
	fclose(f);
	return found;
}

static bool all_online(void *arg)
{
	return hp_query_ll(&slave, "SELECT count(*) FROM endpoints WHERE status = 'online'") ==
	       NAGENTS;
}

static void test_agents_spread(void)
{
	pid_t pids[NWORKERS];
	char name[32], needle[64];
	CU_ASSERT_FATAL(hp_wait(all_workers, NULL, 30));
	CU_ASSERT_EQUAL(hp_worker_pids(slave.pid, pids, NWORKERS), NWORKERS);
	for (int i = 0; i < NWORKERS; i++) {
		snprintf(needle, sizeof(needle), "push worker %d started (pid %d)", i + 1,
			 (int)pids[i]);
		CU_ASSERT(hp_log_contains(&slave, needle));
	}
	/* The main process holds no push listener: only the workers answer. */
	CU_ASSERT_FALSE(hp_log_contains(&slave, "notice: push: listening"));

	char *token = token_create(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	for (int i = 0; i < NAGENTS; i++) {
		snprintf(name, sizeof(name), "desk-%02d", i);
		CU_ASSERT_EQUAL_FATAL(agent_enrol(&slave, name, token), 0);
	}
	free(token);
	for (int i = 0; i < NAGENTS; i++) {
		snprintf(name, sizeof(name), "desk-%02d", i);
		agents[i] = agent_run(name);
	}
	CU_ASSERT_FATAL(hp_wait(all_online, NULL, 60));
	/* The kernel spread the agents: every worker authenticated some. */
	for (int i = 0; i < NWORKERS; i++) {
		snprintf(needle, sizeof(needle), "push worker %d: push ", i + 1);
		CU_ASSERT(log_line_has(&slave, needle, "authenticated (push mode)"));
	}
	CU_ASSERT_EQUAL(hp_query_ll(&slave, "SELECT count(*) FROM events WHERE kind = 'status' "
					    "AND details->>'to' = 'online'"),
			NAGENTS);
}

struct restarted {
	pid_t old;
};

static bool worker2_restarted(void *arg)
{
	struct restarted *r = arg;
	pid_t pids[NWORKERS];
	hp_worker_pids(slave.pid, pids, NWORKERS);
	return pids[1] != 0 && pids[1] != r->old;
}

/* Every agent is online and was heard from after the kill. */
static bool all_back(void *arg)
{
	return hp_query_ll(&slave, "SELECT count(*) FROM endpoints WHERE status = 'online' AND "
				   "last_seen > (SELECT t FROM kill_time)") == NAGENTS;
}

static void test_worker_killed(void)
{
	pid_t pids[NWORKERS];
	char needle[128];
	CU_ASSERT_EQUAL_FATAL(hp_worker_pids(slave.pid, pids, NWORKERS), NWORKERS);
	PGconn *db = hp_db(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	PQclear(PQexec(db, "CREATE TABLE kill_time AS SELECT now() AS t"));
	PQfinish(db);
	CU_ASSERT_EQUAL_FATAL(kill(pids[1], SIGKILL), 0);
	snprintf(needle, sizeof(needle), "push worker 2 (pid %d) died: signal 9; restarting in 1 s",
		 (int)pids[1]);
	CU_ASSERT(hp_wait_log(&slave, needle, 30));
	struct restarted r = { pids[1] };
	CU_ASSERT_FATAL(hp_wait(worker2_restarted, &r, 30));
	/* The other two were not disturbed. */
	pid_t now[NWORKERS];
	CU_ASSERT_EQUAL(hp_worker_pids(slave.pid, now, NWORKERS), NWORKERS);
	CU_ASSERT_EQUAL(now[0], pids[0]);
	CU_ASSERT_EQUAL(now[2], pids[2]);
	CU_ASSERT(hp_wait(all_back, NULL, 30));
	/* Every agent process kept running and reconnected by itself. */
	for (int i = 0; i < NAGENTS; i++)
		CU_ASSERT_EQUAL(waitpid(agents[i], NULL, WNOHANG), 0);
}

static bool all_acked(void *arg)
{
	return hp_query_ll(&slave, "SELECT count(*) FROM agent_commands WHERE acked_at IS NOT "
				   "NULL") == NAGENTS;
}

static void test_commands_any_worker(void)
{
	PGresult *res;
	PGconn *db = hp_db(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(db);
	res = PQexec(db, "SELECT uid FROM endpoints ORDER BY uid");
	CU_ASSERT_EQUAL_FATAL(PQntuples(res), NAGENTS);
	for (int i = 0; i < PQntuples(res); i++)
		CU_ASSERT_EQUAL(hp_ctl(&slave, NULL, "endpoint", "command", PQgetvalue(res, i, 0),
				       "sync_now", NULL),
				0);
	PQclear(res);
	PQfinish(db);
	/* Each agent is held by one of three workers; every one of them delivered. */
	CU_ASSERT(hp_wait(all_acked, NULL, 30));
}

/*
 * An agent that reconnects (its old connection half-dead, say) may land on
 * another worker: the older connection is cut wherever it is held, so it
 * cannot take the agent's commands. Twelve reconnects over three workers
 * cross workers with near certainty; the log shows that they did.
 */
static void test_stale_connection_elsewhere(void)
{
	struct hagent a = { 0 };
	char *tok = ha_make_token(&slave, "/stale");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	CU_ASSERT_FATAL(ha_new(&a) && ha_enrol(&slave, &a, tok));
	SSL *prev = ha_auth(&slave, &a, tok, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(prev);
	for (int i = 0; i < 12; i++) {
		SSL *next = ha_auth(&slave, &a, tok, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(next);
		CU_ASSERT_TRUE(ha_expect_error(prev, PROTO_ERR_PROTOCOL));
		ht_close(prev);
		prev = next;
	}
	CU_ASSERT_TRUE(hp_log_contains(&slave, "replaced by a newer connection on another push "
					       "worker"));
	/* The command goes to the live connection. */
	CU_ASSERT_EQUAL(hp_ctl(&slave, NULL, "endpoint", "command", a.id, "sync_now", NULL), 0);
	uint16_t type = 0;
	json_t *o = ha_recv_json(prev, &type);
	CU_ASSERT_EQUAL(type, A_COMMAND);
	json_decref(o);
	ht_close(prev);
	EVP_PKEY_free(a.key);
	free(tok);
}

static void test_stop_leaves_no_worker(void)
{
	pid_t pids[NWORKERS];
	CU_ASSERT_EQUAL_FATAL(hp_worker_pids(slave.pid, pids, NWORKERS), NWORKERS);
	CU_ASSERT_EQUAL(hp_stop(&slave), 0);
	for (int i = 0; i < NWORKERS; i++) {
		errno = 0;
		CU_ASSERT_EQUAL(kill(pids[i], 0), -1);
		CU_ASSERT_EQUAL(errno, ESRCH);
	}
	CU_ASSERT(hp_log_contains(&slave, "push worker 1: stopped"));
	for (int i = 0; i < NAGENTS; i++)
		agent_stop(&agents[i]);
}

static bool ranged_seen(void *arg)
{
	return hp_query_ll(&ranged, "SELECT count(*) FROM endpoints WHERE status = 'unreachable' "
				    "AND mode = 'push' AND address = '127.0.0.1'") == 1;
}

static void test_unreachable_range(void)
{
	char *token = token_create(&ranged);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	CU_ASSERT_EQUAL_FATAL(agent_enrol(&ranged, "branch-desk", token), 0);
	free(token);
	ranged_agent = agent_run("branch-desk");
	CU_ASSERT_FATAL(hp_wait(ranged_seen, NULL, 30));
	CU_ASSERT(hp_wait_log(&ranged, "(push mode, unreachable range)", 10));
	CU_ASSERT_EQUAL(hp_query_ll(&ranged, "SELECT count(*) FROM events WHERE kind = 'status' "
					     "AND details->>'to' = 'unreachable'"),
			1);
	CU_ASSERT_EQUAL(hp_query_ll(&ranged, "SELECT count(*) FROM events WHERE kind = 'status' "
					     "AND details->>'to' = 'online'"),
			0);
	CU_ASSERT_EQUAL(hp_query_ll(&ranged, "SELECT count(*) FROM endpoints WHERE status = "
					     "'online'"),
			0);
	agent_stop(&ranged_agent);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("push workers", suite_init, suite_clean);
	CU_add_test(s, "agents spread over three workers, all online", test_agents_spread);
	CU_add_test(s, "a killed worker is restarted, its agents come back", test_worker_killed);
	CU_add_test(s, "a command reaches an agent on any worker", test_commands_any_worker);
	CU_add_test(s, "a stale connection on another worker is cut", test_stale_connection_elsewhere);
	CU_add_test(s, "SIGTERM stops every worker", test_stop_leaves_no_worker);
	CU_add_test(s, "an agent in an unreachable range is never online", test_unreachable_range);
	return hp_run_suite();
}
