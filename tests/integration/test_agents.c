/*
 * Real agents against a real slave (and its master): enrolment with a
 * token, the push connection, heartbeats and status, commands delivered
 * while connected and after a reconnect, inventory and scan tasks with
 * their results and detection events, nothing lost while the agent is
 * cut off, and all of it replicated to the master.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>
#include <openssl/evp.h>

#include "harness_agent.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "tls.h"

static struct hnode master, slave;
static char agent_dir[600], scan_dir[600], agent_log[700];
static pid_t agent_pid;
static char agent_uid[80];

static pid_t start_agent(void)
{
	return hp_spawn_agent(agent_log, "-v", "-s", agent_dir, "run", "--scan-root", scan_dir,
			      NULL);
}

static void stop_agent(int sig)
{
	hp_reap(&agent_pid, sig);
}

/* One number from a query whose $1 is arg. */
static long long q(struct hnode *n, const char *sql, const char *arg)
{
	PGconn *c = hp_db(n);
	long long v = -1;
	if (!c)
		return -1;
	const char *p[] = { arg };
	PGresult *r = PQexecParams(c, sql, 1, NULL, p, NULL, NULL, 0);
	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	else
		fprintf(stderr, "q: %s", PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(c);
	return v;
}

static int suite_init(void)
{
	if (hpg_require() != 0)
		return -1;
	if (hp_master_init(&master, "hq", NULL) != 0 || hp_start(&master) != 0)
		return -1;
	if (hp_slave_init(&slave, "site-a", master.port, 1800, NULL) != 0 || hp_start(&slave) != 0)
		return -1;
	if (hp_enrol(&master, &slave) != 0)
		return -1;
	snprintf(agent_dir, sizeof(agent_dir), "%s/agent1", hp_root());
	snprintf(scan_dir, sizeof(scan_dir), "%s/scan", hp_root());
	snprintf(agent_log, sizeof(agent_log), "%s/agent1.log", hp_root());
	if (mkdir(scan_dir, 0755) != 0)
		return -1;
	return 0;
}

static int suite_clean(void)
{
	stop_agent(SIGTERM);
	hp_cleanup(&slave);
	hp_cleanup(&master);
	return 0;
}

static void test_enrol(void)
{
	char server[64], *out = NULL;
	char *tok = ha_make_token(&slave, "/branch/desks");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	snprintf(server, sizeof(server), "127.0.0.1:%d", slave.push_port);
	CU_ASSERT_EQUAL(ha_agent_enrol(&slave, agent_dir, tok, "desk-01", NULL), 0);
	/* Enrolling twice with the same state is refused. */
	CU_ASSERT_EQUAL(hp_run(&out, HP_AGENT, "-s", agent_dir, "enrol", "--server", server,
			       "--token", tok, NULL),
			1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "already enrolled"));
	free(out);
	free(tok);
	char *uid = hp_query1(&slave, "SELECT uid FROM endpoints WHERE hostname = 'desk-01'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(uid);
	snprintf(agent_uid, sizeof(agent_uid), "%s", uid);
	free(uid);
	CU_ASSERT_EQUAL(q(&slave, "SELECT count(*) FROM endpoints e JOIN groups g ON g.id = "
				  "e.group_id WHERE e.hostname = 'desk-01' AND g.path = $1",
			  "/branch/desks"),
			1);
	/* The key is private. */
	char path[700];
	struct stat st;
	snprintf(path, sizeof(path), "%s/agent.key", agent_dir);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 077, 0);
}

static bool online(void *arg)
{
	return q(&slave, "SELECT count(*) FROM endpoints WHERE uid = $1 AND status = 'online'",
		 agent_uid) == 1;
}

static void test_connects_online(void)
{
	agent_pid = start_agent();
	CU_ASSERT_TRUE(hp_wait(online, NULL, 20));
	char *out = NULL;
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "--json", "endpoint", "list", "--status", "online",
			       NULL),
			0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", agent_uid));
	free(out);
}

static bool inventory_done(void *arg)
{
	return q(&slave, "SELECT count(*) FROM task_results r JOIN endpoints e ON e.id = "
			 "r.endpoint_id WHERE e.uid = $1 AND r.task_id = (SELECT id FROM tasks WHERE name = 'inv-1') AND r.status = "
			 "'succeeded' AND r.result->>'hostname' = 'desk-01'",
		 agent_uid) == 1;
}

static bool commands_acked(void *arg)
{
	return q(&slave, "SELECT count(*) FROM agent_commands c JOIN endpoints e ON "
			 "e.id = c.endpoint_id WHERE e.uid = $1 AND c.acked_at IS NULL",
		 agent_uid) == 0;
}

static void test_inventory_task(void)
{
	char *out = NULL;
	/* A task that does not exist here is refused: its result would be nobody's. */
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "command", agent_uid, "run_task", "--args",
			       "{\"task\": \"inv-1\"}", NULL),
			1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "no task named inv-1 on this slave"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "command", agent_uid, "run_task", "--args",
			       "{\"task_id\": 1, \"kind\": \"inventory\", \"params\": {}}", NULL),
			1);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "its kind and params come from the task"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "task", "create", "inv-1", "--kind", "inventory", NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "command", agent_uid, "run_task", "--args",
			       "{\"task\": \"inv-1\"}", NULL),
			0);
	free(out);
	CU_ASSERT_TRUE(hp_wait(inventory_done, NULL, 15));
	/* The agent acknowledges after queueing the result; the push server
	 * writes acknowledgements in batches, so the ack may follow the result. */
	CU_ASSERT_TRUE(hp_wait(commands_acked, NULL, 15));
}

static bool detected(void *arg)
{
	return q(&slave, "SELECT count(*) FROM events v JOIN endpoints e ON e.id = v.endpoint_id "
			 "WHERE e.uid = $1 AND v.kind = 'detection' AND v.details->>'path' LIKE "
			 "'%bad.bin'",
		 agent_uid) == 1;
}

static void test_scan_with_block_list(void)
{
	static const char bad[] = "this file is on the block list";
	char path[700], sha[TLS_PIN_HEX_LEN + 1], settings[256], *out = NULL;
	snprintf(path, sizeof(path), "%s/bad.bin", scan_dir);
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(bad, f);
	fclose(f);
	snprintf(path, sizeof(path), "%s/good.txt", scan_dir);
	f = fopen(path, "w");
	fputs("harmless", f);
	fclose(f);
	tls_sha256_hex(bad, strlen(bad), sha);
	snprintf(settings, sizeof(settings), "{\"block_sha256\": [\"%s\"]}", sha);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "policy", "create", "blocklist", "--settings", settings,
			       NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "command", agent_uid, "apply_policy", NULL),
			0);
	free(out);
	char params[800];
	snprintf(params, sizeof(params), "{\"path\": \"%s\"}", scan_dir);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "task", "create", "scan-2", "--kind", "scan", "--params",
			       params, NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "command", agent_uid, "run_task", "--args",
			       "{\"task\": \"scan-2\"}", NULL),
			0);
	free(out);
	CU_ASSERT_TRUE(hp_wait(detected, NULL, 15));
	CU_ASSERT_EQUAL(q(&slave, "SELECT (r.result->>'detections')::int FROM task_results r "
				  "JOIN endpoints e ON e.id = r.endpoint_id WHERE e.uid = $1 "
				  "AND r.task_id = (SELECT id FROM tasks WHERE name = 'scan-2')",
			  agent_uid),
			1);
}

static bool event_count_at_least(void *arg)
{
	long long *want = arg;
	return q(&slave, "SELECT count(*) FROM task_results r JOIN endpoints e ON e.id = "
			 "r.endpoint_id WHERE e.uid = $1 AND r.task_id = (SELECT id FROM tasks WHERE name = 'inv-3') AND r.status <> 'pending'",
		 agent_uid) >= *want;
}

/* A command queued while the agent is down reaches it when it comes back. */
static void test_command_waits_for_reconnect(void)
{
	char *out = NULL;
	stop_agent(SIGTERM);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "task", "create", "inv-3", "--kind", "inventory", NULL),
			0);
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "command", agent_uid, "run_task", "--args",
			       "{\"task\": \"inv-3\"}", NULL),
			0);
	free(out);
	sleep(1);
	CU_ASSERT_EQUAL(q(&slave, "SELECT count(*) FROM agent_commands c JOIN endpoints e ON "
				  "e.id = c.endpoint_id WHERE e.uid = $1 AND c.acked_at IS NULL",
			  agent_uid),
			1);
	agent_pid = start_agent();
	long long one = 1;
	CU_ASSERT_TRUE(hp_wait(event_count_at_least, &one, 20));
}

static bool master_has(void *arg)
{
	char sql[512];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM events v JOIN slaves s ON s.id = v.slave_id "
		 "WHERE s.name = 'site-a' AND v.kind = 'detection'");
	return hp_query_ll(&master, sql) == 1;
}

static void test_replicates_to_master(void)
{
	CU_ASSERT_EQUAL(hp_sync(&slave), 0);
	CU_ASSERT_TRUE(hp_wait(master_has, NULL, 10));
	CU_ASSERT_EQUAL(hp_query_ll(&master, "SELECT count(*) FROM endpoints WHERE hostname = "
					     "'desk-01' AND status = 'online'"),
			1);
	CU_ASSERT_EQUAL(hp_query_ll(&master, "SELECT count(*) FROM task_results WHERE task_id IN "
					     "(1, 2, 3) AND status = 'succeeded'"),
			3);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("agents", suite_init, suite_clean);
	CU_add_test(s, "an agent enrols with a token", test_enrol);
	CU_add_test(s, "it connects and is online", test_connects_online);
	CU_add_test(s, "an inventory task runs and reports", test_inventory_task);
	CU_add_test(s, "a scan finds a blocked file", test_scan_with_block_list);
	CU_add_test(s, "a command waits for the agent's reconnect", test_command_waits_for_reconnect);
	CU_add_test(s, "agent data replicates to the master", test_replicates_to_master);
	return hp_run_suite();
}
