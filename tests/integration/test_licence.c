/*
 * Licences on a real slave and master: a key pair and licences made with
 * strata-ctl, install and refusal (the old licence stays), seats enforced
 * with real agents, the 90/100/110 % events, an expired licence refusing
 * new enrolments while an enrolled agent keeps working, and the master's
 * `license list` after a sync.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "harness_agent.h"
#include "harness_pg.h"
#include "harness_proc.h"

#define HP_CTL STRATA_BINARY_DIR "/strata-ctl"

static struct hnode master, slave;
static char keydir[600], keyfile[700], pubfile[700];
static char *token;
static pid_t agent_pid;
static char agent_log[700];

static int suite_init(void)
{
	char xml[1400];
	if (hpg_require() != 0)
		return -1;
	snprintf(keydir, sizeof(keydir), "%s/lickeys", hp_root());
	snprintf(keyfile, sizeof(keyfile), "%s/licence.key", keydir);
	snprintf(pubfile, sizeof(pubfile), "%s/licence.pub", keydir);
	if (mkdir(keydir, 0700) != 0)
		return -1;
	if (hp_run(NULL, HP_CTL, "license", "keygen", "--out", keydir, NULL) != 0)
		return -1;
	snprintf(xml, sizeof(xml), "<licence seats=\"1000\" public-key=\"%s\"/>", pubfile);
	if (hp_master_init(&master, "hq", NULL) != 0 || hp_start(&master) != 0)
		return -1;
	if (hp_slave_init(&slave, "site-l", master.port, 1800, xml) != 0 || hp_start(&slave) != 0)
		return -1;
	if (hp_enrol(&master, &slave) != 0)
		return -1;
	token = ha_make_token(&slave, "/lic");
	snprintf(agent_log, sizeof(agent_log), "%s/agent-lic.log", hp_root());
	return token ? 0 : -1;
}

static int suite_clean(void)
{
	hp_reap(&agent_pid, SIGTERM);
	free(token);
	hp_cleanup(&slave);
	hp_cleanup(&master);
	return 0;
}

/* Signs a licence into path; from/until as strata-ctl takes them. */
static int sign(const char *path, const char *id, const char *seats, const char *from,
		const char *until)
{
	char *out = NULL;
	int rc = hp_run(&out, HP_CTL, "license", "sign", "--key", keyfile, "--id", id, "--holder",
			"Example Corp", "--seats", seats, "--valid-from", from, "--valid-until",
			until, "--features", "push,reports", "--out", path, NULL);
	if (rc != 0)
		fprintf(stderr, "sign: %s\n", out ? out : "");
	free(out);
	return rc;
}

static void lic_path(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s.lic", keydir, name);
}

static int enrol(int i)
{
	char dir[700], host[32];
	snprintf(dir, sizeof(dir), "%s/agent-lic-%d", hp_root(), i);
	snprintf(host, sizeof(host), "lic-%02d", i);
	return ha_agent_enrol(&slave, dir, token, host, NULL);
}

static long long events(int threshold)
{
	char sql[200];
	snprintf(sql, sizeof(sql),
		 "SELECT count(*) FROM events WHERE kind = 'licence' AND "
		 "(details->>'threshold')::int = %d",
		 threshold);
	return hp_query_ll(&slave, sql);
}

static void test_install(void)
{
	char path[800], *out = NULL;
	lic_path(path, sizeof(path), "first");
	CU_ASSERT_EQUAL_FATAL(sign(path, "LIC-A", "10", "2020-01-01", "2099-01-01"), 0);
	/* A slave without a licence shows the <licence seats> limit. */
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "license", "show", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "(none)"));
	CU_ASSERT_PTR_NOT_NULL(strstr(out, "1000"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "license", "install", path, NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "LIC-A"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "--json", "license", "show", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "\"LIC-A\""));
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "2099-01-01T00:00:00Z"));
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "push,reports"));
	free(out);
	char *id = hp_query1(&slave, "SELECT licence_id FROM licence");
	CU_ASSERT_PTR_NOT_NULL(id && strstr(id, "LIC-A"));
	free(id);
}

static void test_refused(void)
{
	char good[800], bad[800], *out = NULL, *text = NULL;
	lic_path(good, sizeof(good), "second");
	lic_path(bad, sizeof(bad), "tampered");
	CU_ASSERT_EQUAL_FATAL(sign(good, "LIC-B", "500", "2020-01-01", "2099-01-01"), 0);
	/* Tamper: one character of the base64 payload changed. */
	FILE *f = fopen(good, "r");
	CU_ASSERT_PTR_NOT_NULL_FATAL(f);
	text = calloc(1, 8192);
	size_t n = fread(text, 1, 8191, f);
	fclose(f);
	char *p = strstr(text, "\"payload\": \"");
	CU_ASSERT_PTR_NOT_NULL_FATAL(p);
	p += strlen("\"payload\": \"") + 10;
	*p = *p == 'A' ? 'B' : 'A';
	f = fopen(bad, "w");
	CU_ASSERT_EQUAL(fwrite(text, 1, n, f), n);
	fclose(f);
	free(text);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "license", "install", bad, NULL), 1);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "signature does not verify"));
	free(out);
	/* Garbage, a licence from the future and a missing file. */
	f = fopen(bad, "w");
	fputs("{\"payload\": 1}", f);
	fclose(f);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "license", "install", bad, NULL), 1);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "'payload' is not a string"));
	free(out);
	CU_ASSERT_EQUAL_FATAL(sign(bad, "LIC-F", "500", "2098-01-01", "2099-01-01"), 0);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "license", "install", bad, NULL), 1);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "not valid before 2098-01-01"));
	free(out);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "license", "install", "/nonexistent.lic", NULL), 1);
	free(out);
	/* The first licence is still in force. */
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "license", "show", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "LIC-A"));
	free(out);
	CU_ASSERT_TRUE(hp_log_contains(&slave, "licence: install refused"));
}

static void test_seats_and_events(void)
{
	char *out = NULL, dir[700], server[64];
	for (int i = 1; i <= 8; i++)
		CU_ASSERT_EQUAL(enrol(i), 0);
	CU_ASSERT_EQUAL(events(90), 0);
	CU_ASSERT_EQUAL(enrol(9), 0);
	CU_ASSERT_EQUAL(events(90), 1);
	CU_ASSERT_EQUAL(events(100), 0);
	CU_ASSERT_EQUAL(enrol(10), 0);
	CU_ASSERT_EQUAL(events(100), 1);
	/* The 11th of 10 seats is refused, with the licence named. */
	snprintf(dir, sizeof(dir), "%s/agent-lic-11", hp_root());
	snprintf(server, sizeof(server), "127.0.0.1:%d", slave.push_port);
	CU_ASSERT_NOT_EQUAL(hp_run(&out, HP_AGENT, "-s", dir, "enrol", "--server", server,
				   "--token", token, "--hostname", "lic-11", NULL),
			    0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "licence LIC-A seats exhausted (10 of 10"));
	free(out);
	CU_ASSERT_EQUAL(hp_query_ll(&slave, "SELECT count(*) FROM endpoints"), 10);
	/* A smaller licence: 10 of 9 is above 110 %; 90 and 100 are not raised again. */
	char path[800];
	lic_path(path, sizeof(path), "smaller");
	CU_ASSERT_EQUAL_FATAL(sign(path, "LIC-C", "9", "2020-01-01", "2099-01-01"), 0);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "license", "install", path, NULL), 0);
	free(out);
	CU_ASSERT_EQUAL(events(110), 1);
	CU_ASSERT_EQUAL(events(100), 1);
	CU_ASSERT_EQUAL(events(90), 1);
	/* Revoking one endpoint (10 -> 9 of 9) and enrolling none does not raise again. */
	char *uid = hp_query1(&slave, "SELECT uid FROM endpoints WHERE hostname = 'lic-10'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(uid);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "revoke", uid, NULL), 0);
	free(out);
	free(uid);
	CU_ASSERT_EQUAL(hp_query_ll(&slave, "SELECT seats_used FROM licence"), 9);
	CU_ASSERT_EQUAL(events(110), 1);
	CU_ASSERT_EQUAL(events(100), 1);
}

static void test_master_list(void)
{
	char *out = NULL;
	CU_ASSERT_EQUAL_FATAL(hp_sync(&slave), 0);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "--csv", "license", "list", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "site-l,LIC-C,Example Corp,9,9,100,"
						  "2099-01-01T00:00:00Z,no"));
	if (out && !strstr(out, "site-l,LIC-C"))
		fprintf(stderr, "license list: %s\n", out);
	free(out);
	/* The threshold events replicated too. */
	CU_ASSERT_EQUAL(hp_query_ll(&master, "SELECT count(*) FROM events WHERE kind = 'licence'"),
			3);
}

static bool agent_online(void *arg)
{
	(void)arg;
	return hp_query_ll(&slave, "SELECT count(*) FROM endpoints WHERE hostname = 'lic-01' AND "
				   "status = 'online'") == 1;
}

static void test_expired(void)
{
	char path[800], from[32], until[32], *out = NULL, dir[700], server[64];
	time_t now = time(NULL), end = now + 4;
	struct tm tm;
	gmtime_r(&(time_t){ now - 3600 }, &tm);
	strftime(from, sizeof(from), "%Y-%m-%dT%H:%M:%SZ", &tm);
	gmtime_r(&end, &tm);
	strftime(until, sizeof(until), "%Y-%m-%dT%H:%M:%SZ", &tm);
	lic_path(path, sizeof(path), "short");
	CU_ASSERT_EQUAL_FATAL(sign(path, "LIC-S", "100", from, until), 0);
	CU_ASSERT_EQUAL_FATAL(hp_ctl(&slave, &out, "license", "install", path, NULL), 0);
	free(out);
	while (time(NULL) <= end + 1)
		sleep(1);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "license", "show", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "expired"));
	free(out);
	/* Expired: a new enrolment is refused, naming the licence and its expiry. */
	snprintf(dir, sizeof(dir), "%s/agent-lic-12", hp_root());
	snprintf(server, sizeof(server), "127.0.0.1:%d", slave.push_port);
	CU_ASSERT_NOT_EQUAL(hp_run(&out, HP_AGENT, "-s", dir, "enrol", "--server", server,
				   "--token", token, "--hostname", "lic-12", NULL),
			    0);
	char want[128];
	snprintf(want, sizeof(want), "licence LIC-S expired at %s", until);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, want));
	free(out);
	CU_ASSERT_TRUE(hp_log_contains(&slave, want));
	/* An enrolled agent still connects and is managed. */
	snprintf(dir, sizeof(dir), "%s/agent-lic-1", hp_root());
	agent_pid = hp_spawn_agent(agent_log, "-v", "-s", dir, "run", NULL);
	CU_ASSERT_TRUE(agent_pid > 0);
	CU_ASSERT_TRUE(hp_wait(agent_online, NULL, 30));
	hp_reap(&agent_pid, SIGTERM);
	/* And the master lists the licence as expired after a sync. */
	CU_ASSERT_EQUAL_FATAL(hp_sync(&slave), 0);
	CU_ASSERT_EQUAL(hp_ctl(&master, &out, "--csv", "license", "list", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, "site-l,LIC-S,"));
	CU_ASSERT_PTR_NOT_NULL(out && strstr(out, ",yes,"));
	free(out);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("licence", suite_init, suite_clean);
	CU_add_test(s, "install a licence", test_install);
	CU_add_test(s, "tampered, garbage and future licences are refused", test_refused);
	CU_add_test(s, "seats enforced; 90/100/110 % events", test_seats_and_events);
	CU_add_test(s, "license list on the master", test_master_list);
	CU_add_test(s, "an expired licence refuses new enrolments only", test_expired);
	return hp_run_suite();
}
