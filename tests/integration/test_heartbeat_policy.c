/*
 * The heartbeat interval from a policy: server.xml says 60 s, a local
 * policy says 5 s. A new agent is told 5 s in A_AUTH_OK and A_POLICY, a
 * policy with an invalid value is logged and ignored, a real strata-agent
 * beats at the policy's rate and takes a changed interval from the policy
 * it applies, and an agent that stops beating goes offline after 3 of the
 * policy's intervals, not 3 of server.xml's.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>

#include "agentproto.h"
#include "harness_agent.h"
#include "harness_faults.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "harness_tls.h"

static struct hnode slave;
static char agent_dir[600], agent_log[700], uid[80];
static pid_t agent_pid;
static double seen_before;

static int suite_init(void)
{
	if (hpg_require() != 0)
		return -1;
	/* server.xml says 60 s explicitly: every shorter interval below comes from a policy. */
	const char *xml = "<push heartbeat=\"60\"/>";
	if (hp_slave_init(&slave, "beat-a", hp_free_port(), 1800, xml) != 0 ||
	    hp_start(&slave) != 0)
		return -1;
	snprintf(agent_dir, sizeof(agent_dir), "%s/beat-agent", hp_root());
	snprintf(agent_log, sizeof(agent_log), "%s/beat-agent.log", hp_root());
	return 0;
}

static int suite_clean(void)
{
	hp_reap(&agent_pid, SIGKILL);
	hp_cleanup(&slave);
	return 0;
}

static long long q(const char *sql)
{
	const char *p[] = { uid };
	return hf_ll(&slave, sql, 1, p);
}

static int policy(const char *verb, const char *name, const char *settings)
{
	char *out = NULL;
	int rc = hp_ctl(&slave, &out, "policy", verb, name, "--settings", settings, NULL);
	if (rc != 0)
		fprintf(stderr, "policy %s %s: %s\n", verb, name, out ? out : "");
	free(out);
	return rc;
}

/* Enrols a harness agent and authenticates it: the interval A_AUTH_OK announced, -1 on failure. */
static int announced(const char *group, SSL **ssl_out, char *id, size_t idlen)
{
	struct hagent a = { 0 };
	int heartbeat = -1;
	char *tok = ha_make_token(&slave, group);
	if (tok && ha_new(&a) && ha_enrol(&slave, &a, tok)) {
		SSL *ssl = ha_auth(&slave, &a, tok, &heartbeat);
		if (ssl_out)
			*ssl_out = ssl;
		else
			ht_close(ssl);
		snprintf(id, idlen, "%s", a.id);
	}
	free(tok);
	EVP_PKEY_free(a.key);
	return heartbeat;
}

static void test_policy_overrides_server_xml(void)
{
	char id[80];
	/* No policy yet: server.xml's interval. */
	CU_ASSERT_EQUAL(announced("/beat", NULL, id, sizeof(id)), 60);

	CU_ASSERT_EQUAL_FATAL(policy("create", "fast-beat", "{\"heartbeat\": 5}"), 0);
	/* An invalid value is refused with the setting's name. */
	char *bad = NULL;
	CU_ASSERT_EQUAL(hp_ctl(&slave, &bad, "policy", "create", "beat-typo", "--settings",
			       "{\"heartbeat\": \"5s\"}", NULL),
			1);
	CU_ASSERT_PTR_NOT_NULL(bad ? strstr(bad, "setting 'heartbeat'") : NULL);
	free(bad);
	/* A row stored before the schema existed, created later so it would
	 * win the merge: its value is ignored with a log line and the slave
	 * keeps running. */
	CU_ASSERT_EQUAL_FATAL(hf_exec(&slave,
				      "INSERT INTO policies (name, settings) VALUES "
				      "('beat-typo', '{\"heartbeat\": \"5s\"}')",
				      0, NULL),
			      0);

	SSL *ssl = NULL;
	CU_ASSERT_EQUAL(announced("/beat", &ssl, id, sizeof(id)), 5);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_TRUE(hp_wait_log(&slave, "policy 'beat-typo' (local)", 10));
	const char *p[] = { id };
	CU_ASSERT_EQUAL(hf_ll(&slave, "SELECT heartbeat FROM endpoints WHERE uid = $1", 1, p), 5);

	/* A_POLICY carries the interval that holds, not the invalid value. */
	uint16_t type = 0;
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_POLICY_GET, json_object()), 0);
	json_t *o = ha_recv_json(ssl, &type);
	CU_ASSERT_EQUAL(type, A_POLICY);
	struct amsg_policy m;
	char err[256];
	int seconds = 0;
	CU_ASSERT_EQUAL(agentproto_decode_policy(o, &m, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(agentproto_policy_heartbeat(m.settings, &seconds, err, sizeof(err)), 1);
	CU_ASSERT_EQUAL(seconds, 5);
	json_decref(o);
	ht_close(ssl);

	/* The slave is still up and answering. */
	char *out = NULL;
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "policy", "list", NULL), 0);
	free(out);
}

static bool online(void *arg)
{
	return q("SELECT count(*) FROM endpoints WHERE uid = $1 AND status = 'online'") == 1;
}

static double last_seen(void)
{
	const char *p[] = { uid };
	char *v = hf_value(
	    &slave, "SELECT extract(epoch FROM last_seen) FROM endpoints WHERE uid = $1", 1, p);
	double t = v ? strtod(v, NULL) : 0;
	free(v);
	return t;
}

/* Two more beats after the first one: at 60 s this would take two minutes. */
static bool beat_twice(void *arg)
{
	return last_seen() >= seen_before + 9;
}

static void test_agent_beats_at_policy_rate(void)
{
	char *tok = ha_make_token(&slave, "/beat");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	CU_ASSERT_EQUAL_FATAL(ha_agent_enrol(&slave, agent_dir, tok, "beat-01", NULL), 0);
	free(tok);
	char *u = hp_query1(&slave, "SELECT uid FROM endpoints WHERE hostname = 'beat-01'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(u);
	snprintf(uid, sizeof(uid), "%s", u);
	free(u);

	agent_pid = hp_spawn_agent(agent_log, "-v", "-s", agent_dir, "run", NULL);
	CU_ASSERT_TRUE_FATAL(agent_pid > 0);
	CU_ASSERT_TRUE_FATAL(hp_wait(online, NULL, 20));
	/* Online in the database comes just before A_AUTH_OK reaches the agent. */
	CU_ASSERT_TRUE(hp_wait_file_contains(agent_log, "heartbeat every 5 s", 10));
	CU_ASSERT_EQUAL(q("SELECT heartbeat FROM endpoints WHERE uid = $1"), 5);
	seen_before = last_seen();
	CU_ASSERT_TRUE(seen_before > 0);
	CU_ASSERT_TRUE(hp_wait(beat_twice, NULL, 30));
}

static bool told_six(void *arg)
{
	return q("SELECT heartbeat FROM endpoints WHERE uid = $1") == 6 &&
	       hf_file_contains(agent_log, "heartbeat every 6 s (was 5 s)");
}

static void test_agent_adopts_changed_policy(void)
{
	char *out = NULL;
	CU_ASSERT_EQUAL_FATAL(policy("update", "fast-beat", "{\"heartbeat\": 6}"), 0);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "command", uid, "apply_policy", NULL), 0);
	free(out);
	CU_ASSERT_TRUE(hp_wait(told_six, NULL, 20));
	CU_ASSERT_TRUE(hp_log_contains(&slave, "heartbeat 5 s -> 6 s"));
}

static bool offline(void *arg)
{
	return q("SELECT count(*) FROM endpoints WHERE uid = $1 AND status = 'offline'") == 1;
}

static void test_silent_agent_goes_offline(void)
{
	CU_ASSERT_TRUE_FATAL(online(NULL));
	/* Frozen, not gone: the connection stays open and only the heartbeats stop. */
	CU_ASSERT_EQUAL_FATAL(kill(agent_pid, SIGSTOP), 0);
	/* 3 × 6 s plus one sweep; server.xml's 60 s would need more than 180 s. */
	CU_ASSERT_TRUE(hp_wait(offline, NULL, 60));
	CU_ASSERT_EQUAL(
	    q("SELECT count(*) FROM events v JOIN endpoints e ON e.id = v.endpoint_id "
	      "WHERE e.uid = $1 AND v.kind = 'status' AND v.details->>'from' = 'online' "
	      "AND v.details->>'to' = 'offline'"),
	    1);
	hp_reap(&agent_pid, SIGKILL);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("heartbeat_policy", suite_init, suite_clean);
	CU_add_test(s, "a policy's interval overrides server.xml's",
		    test_policy_overrides_server_xml);
	CU_add_test(s, "the agent beats at the policy's rate", test_agent_beats_at_policy_rate);
	CU_add_test(s, "the agent adopts a changed interval", test_agent_adopts_changed_policy);
	CU_add_test(s, "a silent agent goes offline after 3 policy intervals",
		    test_silent_agent_goes_offline);
	return hp_run_suite();
}
