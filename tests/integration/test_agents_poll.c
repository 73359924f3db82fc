/*
 * A real strata-agent in poll mode: it enrols with --mode poll, is
 * 'unreachable' (never 'online'), takes a command queued for it at its
 * next poll and acknowledges it, delivers the task's result and its
 * detection event, and holds no connection between polls.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "harness_agent.h"
#include "harness_faults.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "tls.h"

#define POLL_INTERVAL "2"

static struct hnode slave;
static char agent_dir[600], scan_dir[600], agent_log[700], uid[80];
static pid_t agent_pid;

static int suite_init(void)
{
	if (hpg_require() != 0)
		return -1;
	if (hp_slave_init(&slave, "poll-a", hp_free_port(), 1800, NULL) != 0 ||
	    hp_start(&slave) != 0)
		return -1;
	snprintf(agent_dir, sizeof(agent_dir), "%s/poll-agent", hp_root());
	snprintf(scan_dir, sizeof(scan_dir), "%s/poll-scan", hp_root());
	snprintf(agent_log, sizeof(agent_log), "%s/poll-agent.log", hp_root());
	return mkdir(scan_dir, 0755);
}

static int suite_clean(void)
{
	hp_reap(&agent_pid, SIGTERM);
	hp_cleanup(&slave);
	return 0;
}

static long long q(const char *sql)
{
	const char *p[] = { uid };
	return hf_ll(&slave, sql, 1, p);
}

static void test_enrol_poll(void)
{
	char *tok = ha_make_token(&slave, "/poll");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	CU_ASSERT_EQUAL(ha_agent_enrol(&slave, agent_dir, tok, "poll-01", "poll"), 0);
	free(tok);
	char *u = hp_query1(&slave, "SELECT uid FROM endpoints WHERE hostname = 'poll-01' AND "
				    "mode = 'poll'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	snprintf(uid, sizeof(uid), "%s", u);
	free(u);
}

static bool polled(void *arg)
{
	return q("SELECT count(*) FROM endpoints WHERE uid = $1 AND status = 'unreachable' AND "
		 "last_seen IS NOT NULL") == 1;
}

static void test_runs_unreachable(void)
{
	agent_pid = hp_spawn_agent(agent_log, "-v", "-s", agent_dir, "run", "--poll-interval",
				   POLL_INTERVAL, "--scan-root", scan_dir, NULL);
	CU_ASSERT_FATAL(agent_pid > 0);
	CU_ASSERT(hp_wait(polled, NULL, 20));
	CU_ASSERT_EQUAL(q("SELECT count(*) FROM events v JOIN endpoints e ON e.id = "
			  "v.endpoint_id WHERE e.uid = $1 AND v.kind = 'status' AND "
			  "v.details->>'to' = 'unreachable'"),
			1);
}

static bool scan_reported(void *arg)
{
	return q("SELECT count(*) FROM task_results r JOIN endpoints e ON e.id = r.endpoint_id "
		 "WHERE e.uid = $1 AND r.task_id = (SELECT id FROM tasks WHERE name = 'poll-scan') AND r.status = 'succeeded' AND "
		 "(r.result->>'detections')::int = 1") == 1 &&
	       q("SELECT count(*) FROM events v JOIN endpoints e ON e.id = v.endpoint_id "
		 "WHERE e.uid = $1 AND v.kind = 'detection' AND v.details->>'path' LIKE "
		 "'%blocked.bin'") == 1;
}

static bool commands_acked(void *arg)
{
	return q("SELECT count(*) FROM agent_commands c JOIN endpoints e ON e.id = "
		 "c.endpoint_id WHERE e.uid = $1 AND c.acked_at IS NULL") == 0;
}

static void test_command_at_next_poll(void)
{
	static const char bad[] = "blocked in poll mode";
	char path[700], sha[TLS_PIN_HEX_LEN + 1], settings[256], args[900];
	snprintf(path, sizeof(path), "%s/blocked.bin", scan_dir);
	FILE *f = fopen(path, "w");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	fputs(bad, f);
	fclose(f);
	tls_sha256_hex(bad, strlen(bad), sha);
	snprintf(settings, sizeof(settings), "{\"block_sha256\": [\"%s\"]}", sha);
	CU_ASSERT_EQUAL(hp_ctl(&slave, NULL, "policy", "create", "poll-blocklist", "--settings",
			       settings, NULL),
			0);
	CU_ASSERT_EQUAL(hp_ctl(&slave, NULL, "endpoint", "command", uid, "apply_policy", NULL), 0);
	snprintf(args, sizeof(args), "{\"path\": \"%s\"}", scan_dir);
	CU_ASSERT_EQUAL(hp_ctl(&slave, NULL, "task", "create", "poll-scan", "--kind", "scan",
			       "--params", args, NULL),
			0);
	CU_ASSERT_EQUAL(hp_ctl(&slave, NULL, "endpoint", "command", uid, "run_task", "--args",
			       "{\"task\": \"poll-scan\"}", NULL),
			0);
	CU_ASSERT(hp_wait(scan_reported, NULL, 20));
	CU_ASSERT(hp_wait(commands_acked, NULL, 10));
}

/*
 * Established TCP connections to port (the client's side: remote port is
 * port), from /proc. The server's side is not counted by its local port:
 * another program's outgoing connection may hold the same number as its
 * ephemeral local port (the listener binds with SO_REUSEADDR).
 */
static int established_to(int port)
{
	char line[512];
	unsigned rport, state;
	int n = 0;
	FILE *f = fopen("/proc/net/tcp", "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, " %*d: %*x:%*x %*x:%x %x", &rport, &state) == 2 &&
		    (int)rport == port && state == 1)
			n++;
	fclose(f);
	return n;
}

static bool no_connection(void *arg)
{
	return established_to(slave.push_port) == 0;
}

struct polls {
	int want;
};

static bool polls_reached(void *arg)
{
	struct polls *p = arg;
	return hf_file_count(slave.log, "authenticated (poll mode)") >= p->want;
}

static void test_no_connection_between_polls(void)
{
	int before = hf_file_count(slave.log, "authenticated (poll mode)");
	struct polls p = { before + 2 };
	/* Two more polls mean two new connections: the agent left in between. */
	CU_ASSERT(hp_wait(polls_reached, &p, 15));
	CU_ASSERT(hp_wait(no_connection, NULL, 10));
	int authed = hf_file_count(slave.log, "authenticated (poll mode)");
	int byes = hf_file_count(slave.log, "agent said bye");
	/* Every poll but perhaps the one running now ended with A_BYE. */
	CU_ASSERT(byes >= authed - 1);
	CU_ASSERT(byes >= 2);
	CU_ASSERT_EQUAL(q("SELECT count(*) FROM events v JOIN endpoints e ON e.id = "
			  "v.endpoint_id WHERE e.uid = $1 AND v.kind = 'status' AND "
			  "v.details->>'to' = 'online'"),
			0);
	CU_ASSERT_EQUAL(q("SELECT count(*) FROM endpoints WHERE uid = $1 AND status = "
			  "'unreachable'"),
			1);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("agents in poll mode", suite_init, suite_clean);
	CU_add_test(s, "an agent enrols in poll mode", test_enrol_poll);
	CU_add_test(s, "it polls and is unreachable, never online", test_runs_unreachable);
	CU_add_test(s, "a queued command is taken at the next poll", test_command_at_next_poll);
	CU_add_test(s, "no connection is held between polls", test_no_connection_between_polls);
	return hp_run_suite();
}
