/*
 * Distribution points: strata-dp enrols with a slave, links to it and
 * relays agents. Two points serve one group: agents enrolled into it are
 * spread over both (least loaded), commands reach agents through a point,
 * task results come back through it, and when one point is killed its
 * agents are back online on the other within 30 s. A token is single
 * use, an agent's token cannot enrol a point, and a removed point is
 * turned away.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CUnit/Basic.h>

#include "harness_agent.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "harness_tls.h"
#include "agentproto.h"
#include "proto.h"

#define NAGENTS 6

struct dp {
	char name[32];
	char dir[600], cfg[700], log[700];
	int port;
	pid_t pid;
};

static struct hnode master, slave;
static struct dp dpa, dpb;
static pid_t agents[NAGENTS];
static char adir[NAGENTS][600], alog[NAGENTS][700];

static long long q(const char *sql)
{
	return hp_query_ll(&slave, sql);
}

/* A token from "dp-token create" (or agent-token create when agent). */
static char *make_token(const char *kind, const char *group)
{
	char *out = NULL, *tok = NULL;
	if (hp_ctl(&slave, &out, kind, "create", "--group", group, NULL) == 0) {
		char *p = strstr(out, "stk1.");
		if (p)
			tok = strndup(p, strcspn(p, " \t\r\n\",|"));
	}
	free(out);
	return tok;
}

static int dp_init(struct dp *d, const char *name, const char *token)
{
	snprintf(d->name, sizeof(d->name), "%s", name);
	snprintf(d->dir, sizeof(d->dir), "%s/%s", hp_root(), name);
	snprintf(d->cfg, sizeof(d->cfg), "%s/dp.xml", d->dir);
	snprintf(d->log, sizeof(d->log), "%s/dp.log", d->dir);
	if (d->port == 0)
		d->port = hp_free_port();
	if (mkdir(d->dir, 0700) != 0 && access(d->dir, F_OK) != 0)
		return -1;
	FILE *f = fopen(d->cfg, "w");
	if (!f)
		return -1;
	fprintf(f,
		"<?xml version=\"1.0\"?>\n<server role=\"dp\" name=\"%s\">\n"
		"  <data-dir>%s</data-dir>\n  <log level=\"debug\"/>\n"
		"  <push address=\"127.0.0.1\" port=\"%d\" hosts=\"127.0.0.1\"/>\n"
		"  <slave host=\"127.0.0.1\" port=\"%d\"%s%s%s/>\n</server>\n",
		name, d->dir, d->port, slave.push_port, token ? " token=\"" : "",
		token ? token : "", token ? "\"" : "");
	return fclose(f);
}

static bool dp_online(void *arg)
{
	struct dp *d = arg;
	char sql[256];
	snprintf(sql, sizeof(sql), "SELECT count(*) FROM push_servers WHERE name = '%s' AND online",
		 d->name);
	return q(sql) == 1;
}

static int suite_init(void)
{
	if (hpg_require() != 0)
		return -1;
	if (hp_master_init(&master, "hq", NULL) != 0 || hp_start(&master) != 0)
		return -1;
	if (hp_slave_init(&slave, "site-a", master.port, 1800, NULL) != 0 || hp_start(&slave) != 0)
		return -1;
	return hp_enrol(&master, &slave);
}

static int suite_clean(void)
{
	for (int i = 0; i < NAGENTS; i++) {
		hp_reap(&agents[i], SIGTERM);
		if (alog[i][0])
			hp_check_log(alog[i]);
	}
	hp_stop_checked(&dpa.pid, dpa.log);
	hp_stop_checked(&dpb.pid, dpb.log);
	hp_cleanup(&slave);
	hp_cleanup(&master);
	return 0;
}

static void test_enrol_and_link(void)
{
	char *tok = make_token("dp-token", "/branch");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	CU_ASSERT_EQUAL_FATAL(dp_init(&dpa, "dp-a", tok), 0);
	dpa.pid = hp_spawn_dp(dpa.log, dpa.cfg);
	CU_ASSERT_TRUE(hp_wait(dp_online, &dpa, 20));
	/* Its identity is kept: the key private, the certificate from the slave's agent CA. */
	char path[800];
	struct stat st;
	snprintf(path, sizeof(path), "%s/dp.key", dpa.dir);
	CU_ASSERT_EQUAL(stat(path, &st), 0);
	CU_ASSERT_EQUAL(st.st_mode & 077, 0);
	CU_ASSERT_EQUAL(q("SELECT count(*) FROM push_servers WHERE name = 'dp-a' AND "
			  "group_path = '/branch'"),
			1);

	/* The same token again: refused, and the process says why. */
	struct dp again = { 0 };
	CU_ASSERT_EQUAL_FATAL(dp_init(&again, "dp-again", tok), 0);
	again.pid = hp_spawn_dp(again.log, again.cfg);
	CU_ASSERT_TRUE(hp_wait_file_contains(again.log, "used up", 20));
	hp_reap(&again.pid, SIGTERM);
	hp_check_log(again.log);
	free(tok);

	/* An agent token cannot enrol a distribution point. */
	tok = make_token("agent-token", "/branch");
	struct dp agent_tok = { 0 };
	CU_ASSERT_EQUAL_FATAL(dp_init(&agent_tok, "dp-agenttok", tok), 0);
	agent_tok.pid = hp_spawn_dp(agent_tok.log, agent_tok.cfg);
	CU_ASSERT_TRUE(
	    hp_wait_file_contains(agent_tok.log, "unknown distribution point token", 20));
	hp_reap(&agent_tok.pid, SIGTERM);
	hp_check_log(agent_tok.log);
	free(tok);
	CU_ASSERT_EQUAL(q("SELECT count(*) FROM push_servers"), 1);

	/* A restart links again with the kept identity (no token needed). */
	hp_stop_checked(&dpa.pid, dpa.log);
	CU_ASSERT_EQUAL_FATAL(dp_init(&dpa, "dp-a", NULL), 0);
	dpa.pid = hp_spawn_dp(dpa.log, dpa.cfg);
	CU_ASSERT_TRUE(hp_wait(dp_online, &dpa, 20));

	tok = make_token("dp-token", "/branch");
	CU_ASSERT_EQUAL_FATAL(dp_init(&dpb, "dp-b", tok), 0);
	free(tok);
	dpb.pid = hp_spawn_dp(dpb.log, dpb.cfg);
	CU_ASSERT_TRUE(hp_wait(dp_online, &dpb, 20));
}

static SSL *connect_to(int port, const char *token)
{
	struct hnode n = { 0 };
	n.push_port = port;
	return ha_connect_pinned(&n, token);
}

/* Sends bytes that are not TLS; true when the peer closes the connection. */
static bool plain_bytes_closed(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 15 };
	char buf[256];
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	bool closed = false;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    write(fd, "GET / HTTP/1.0\r\n\r\n", 18) == 18) {
		ssize_t n;
		while ((n = read(fd, buf, sizeof(buf))) > 0)
			;
		closed = n == 0 || (n < 0 && errno == ECONNRESET);
	}
	close(fd);
	return closed;
}

static json_t *dp_auth_msg(long long id)
{
	char sig[129];
	memset(sig, '0', 128);
	sig[128] = '\0';
	return json_pack("{s:i, s:I, s:s}", "proto", AGENT_PROTO_VERSION, "dp_id", (json_int_t)id,
			 "sig", sig);
}

/* The link's messages are refused from anyone who did not prove a point's key. */
static void test_bad_links(void)
{
	char *tok = make_token("agent-token", "/other");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	long long id = q("SELECT id FROM push_servers WHERE name = 'dp-a'");
	CU_ASSERT_TRUE_FATAL(id > 0);

	/* A wrong key proof for a known point. */
	SSL *ssl = connect_to(slave.push_port, tok);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_DP_AUTH, dp_auth_msg(id)), 0);
	CU_ASSERT_TRUE(ha_expect_error(ssl, "auth"));
	SSL_free(ssl);

	/* An unknown point. */
	ssl = connect_to(slave.push_port, tok);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_DP_AUTH, dp_auth_msg(99999)), 0);
	CU_ASSERT_TRUE(ha_expect_error(ssl, PROTO_ERR_UNREGISTERED));
	SSL_free(ssl);

	/* Relay messages before any proof. */
	ssl = connect_to(slave.push_port, tok);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_DP_OPEN,
				     json_pack("{s:I, s:s, s:s}", "vid", (json_int_t)1, "address",
					       "10.0.0.1", "ekm", "00")),
			0);
	CU_ASSERT_TRUE(ha_expect_error(ssl, PROTO_ERR_PROTOCOL));
	SSL_free(ssl);

	/* Through a point, an agent cannot pose as a point: the slave refuses it
	 * and the point closes that agent's connection. */
	ssl = connect_to(dpa.port, tok);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_DP_AUTH, dp_auth_msg(id)), 0);
	CU_ASSERT_TRUE(ha_expect_error(ssl, PROTO_ERR_PROTOCOL));
	SSL_free(ssl);

	/* Not TLS at all, at the point's port: closed, and the point keeps serving. */
	CU_ASSERT_TRUE(plain_bytes_closed(dpa.port));
	free(tok);
	CU_ASSERT_TRUE(dp_online(&dpa));
	CU_ASSERT_EQUAL(kill(dpa.pid, 0), 0);
}

static bool all_online(void *arg)
{
	(void)arg;
	return q("SELECT count(*) FROM endpoints WHERE status = 'online' AND hostname LIKE "
		 "'desk-%'") == NAGENTS;
}

/* Every agent is online and counted by the point it is assigned to. */
static bool spread_settled(void *arg)
{
	(void)arg;
	return all_online(NULL) &&
	       q("SELECT coalesce(sum(connections), 0) FROM push_servers WHERE online") == NAGENTS;
}

static void test_agents_spread(void)
{
	char *tok = make_token("agent-token", "/branch/desks");
	char host[32], *out = NULL;
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	for (int i = 0; i < NAGENTS; i++) {
		snprintf(adir[i], sizeof(adir[i]), "%s/agent%d", hp_root(), i);
		snprintf(alog[i], sizeof(alog[i]), "%s/agent%d.log", hp_root(), i);
		snprintf(host, sizeof(host), "desk-%02d", i);
		CU_ASSERT_EQUAL(ha_agent_enrol(&slave, adir[i], tok, host, NULL), 0);
	}
	free(tok);
	/* Assigned at enrolment, least loaded first: alternately, and each agent
	 * was told its push server (push.json) before it ever connected. */
	CU_ASSERT_EQUAL(q("SELECT count(*) FROM push_assignments"), NAGENTS);
	CU_ASSERT_EQUAL(q("SELECT max(assigned) - min(assigned) FROM push_servers"), 0);
	for (int i = 0; i < NAGENTS; i++) {
		char path[sizeof(adir[i]) + 16];
		int n = snprintf(path, sizeof(path), "%s/push.json", adir[i]);
		CU_ASSERT_TRUE(n > 0 && (size_t)n < sizeof(path) && access(path, F_OK) == 0);
		agents[i] = hp_spawn_agent(alog[i], "-v", "-s", adir[i], "run", NULL);
	}
	CU_ASSERT_TRUE(hp_wait(spread_settled, NULL, 30));
	/* Least loaded: 3 and 3. */
	CU_ASSERT_EQUAL(q("SELECT count(*) FROM push_assignments a JOIN push_servers p ON p.id = "
			  "a.server_id WHERE p.name = 'dp-a'"),
			NAGENTS / 2);
	CU_ASSERT_EQUAL(q("SELECT count(*) FROM push_assignments a JOIN push_servers p ON p.id = "
			  "a.server_id WHERE p.name = 'dp-b'"),
			NAGENTS / 2);
	CU_ASSERT_EQUAL(q("SELECT sum(assigned) FROM push_servers"), NAGENTS);
	/* The relayed agents' addresses are theirs, as the point saw them. */
	CU_ASSERT_EQUAL(q("SELECT count(*) FROM endpoints WHERE address = '127.0.0.1'"), NAGENTS);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "--json", "dp", "list", NULL), 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(out ? out : "", "dp-b"));
	free(out);
}

static bool inventories_done(void *arg)
{
	(void)arg;
	return q("SELECT count(*) FROM task_results WHERE task_id = (SELECT id FROM tasks "
		 "WHERE name = 'dp-inventory') AND status = 'succeeded'") ==
		   NAGENTS &&
	       q("SELECT count(*) FROM agent_commands WHERE acked_at IS NULL") == 0;
}

static void test_commands_through_points(void)
{
	char *out = NULL;
	char *uids = hp_query1(&slave, "SELECT string_agg(uid, ',' ORDER BY uid) FROM endpoints");
	CU_ASSERT_PTR_NOT_NULL_FATAL(uids);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "task", "create", "dp-inventory", "--kind", "inventory",
			       NULL),
			0);
	free(out);
	for (char *u = strtok(uids, ","); u; u = strtok(NULL, ",")) {
		CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "command", u, "run_task", "--args",
				       "{\"task\": \"dp-inventory\"}", NULL),
				0);
		free(out);
	}
	free(uids);
	CU_ASSERT_TRUE(hp_wait(inventories_done, NULL, 30));
}

static bool failed_over(void *arg)
{
	(void)arg;
	return all_online(NULL) &&
	       q("SELECT count(*) FROM push_assignments a JOIN push_servers p ON p.id = "
		 "a.server_id WHERE p.name = 'dp-b'") == NAGENTS &&
	       q("SELECT connections FROM push_servers WHERE name = 'dp-b'") == NAGENTS;
}

static void test_failover(void)
{
	hp_reap(&dpa.pid, SIGKILL);
	hp_check_log(dpa.log);
	/* The bound: back on another point of the group within 30 s. */
	CU_ASSERT_TRUE(hp_wait(failed_over, NULL, 30));
	CU_ASSERT_EQUAL(q("SELECT count(*) FROM push_servers WHERE name = 'dp-a' AND online"), 0);
}

/* Bytes a relayed agent sends at most while the slave reads nothing. */
#define FLOOD_LIMIT (64u << 20)
#define FLOOD_PAD   60000

/*
 * The slave stops reading (SIGSTOP) while an agent floods events through
 * its point: the point stops reading agents once its link is backed up,
 * so the agent's sending blocks long before FLOOD_LIMIT; when the slave
 * runs again the point reads again and the events arrive.
 */
static void test_backpressure(void)
{
	struct hagent a;
	struct hnode via = { 0 };
	char *tok = make_token("agent-token", "/branch");
	CU_ASSERT_PTR_NOT_NULL_FATAL(tok);
	CU_ASSERT_FATAL(ha_new(&a) && ha_enrol(&slave, &a, tok));
	via.push_port = dpb.port; /* the only point left online */
	SSL *ssl = ha_auth(&via, &a, tok, NULL);
	free(tok);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	struct timeval tv = { .tv_sec = 3 };
	setsockopt(SSL_get_fd(ssl), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	char *pad = malloc(FLOOD_PAD + 1);
	CU_ASSERT_PTR_NOT_NULL_FATAL(pad);
	memset(pad, 'x', FLOOD_PAD);
	pad[FLOOD_PAD] = '\0';

	CU_ASSERT_EQUAL_FATAL(kill(slave.pid, SIGSTOP), 0);
	size_t sent = 0;
	int seq = 0;
	while (sent < FLOOD_LIMIT) {
		json_t *e = json_pack("{s:i, s:s, s:s, s:s, s:{s:s}}", "seq", ++seq, "kind",
				      "flood", "severity", "info", "occurred_at",
				      "2026-11-22T00:00:00Z", "details", "pad", pad);
		if (ha_send_json(ssl, A_EVENT, e) != 0)
			break;
		sent += FLOOD_PAD;
	}
	bool paused = hp_file_contains(dpb.log, "not reading agents");
	CU_ASSERT_EQUAL(kill(slave.pid, SIGCONT), 0);
	fprintf(stderr, "flood: %zu bytes sent before the point stopped reading\n", sent);
	CU_ASSERT(sent < FLOOD_LIMIT);
	CU_ASSERT_TRUE(paused);
	CU_ASSERT_TRUE(hp_wait_file_contains(dpb.log, "reading agents again", 30));
	CU_ASSERT_TRUE(q("SELECT count(*) FROM events WHERE kind = 'flood'") > 0);
	ht_close(ssl);
	EVP_PKEY_free(a.key);
	free(pad);
}

static bool dp_b_gone(void *arg)
{
	(void)arg;
	return hp_file_contains(dpb.log, "refused this distribution point") &&
	       q("SELECT count(*) FROM push_assignments") == 0;
}

static void test_remove(void)
{
	char *out = NULL;
	/* A revoked endpoint no longer counts towards its point's load. */
	long long before = q("SELECT assigned FROM push_servers WHERE name = 'dp-b'");
	char *uid = hp_query1(&slave, "SELECT uid FROM endpoints WHERE hostname NOT LIKE 'desk-%'");
	CU_ASSERT_PTR_NOT_NULL_FATAL(uid);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "endpoint", "revoke", uid, NULL), 0);
	free(out);
	free(uid);
	CU_ASSERT_EQUAL(q("SELECT assigned FROM push_servers WHERE name = 'dp-b'"), before - 1);
	CU_ASSERT_EQUAL(q("SELECT assigned FROM push_servers WHERE name = 'dp-b'"),
			q("SELECT count(*) FROM push_assignments a JOIN push_servers p ON p.id = "
			  "a.server_id WHERE p.name = 'dp-b'"));

	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "dp", "remove", "dp-b", NULL), 0);
	free(out);
	CU_ASSERT_EQUAL(q("SELECT assigned FROM push_servers WHERE name = 'dp-b'"), 0);
	CU_ASSERT_NOT_EQUAL(hp_ctl(&slave, &out, "dp", "remove", "dp-b", NULL), 0);
	free(out);
	/* Its link is cut at its next load report and it is refused from then on;
	 * its agents come back to the slave's own push server. */
	CU_ASSERT_TRUE(hp_wait(dp_b_gone, NULL, 30));
	CU_ASSERT_TRUE(hp_wait(all_online, NULL, 30));
	/* Refused by the slave, it ended itself with status 1. */
	hp_reap(&dpb.pid, SIGTERM);
	hp_check_log(dpb.log);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("dp", suite_init, suite_clean);
	CU_add_test(s, "enrolment, link, single-use token", test_enrol_and_link);
	CU_add_test(s, "link messages need a point's proof", test_bad_links);
	CU_add_test(s, "agents spread over two points", test_agents_spread);
	CU_add_test(s, "commands and results through the points", test_commands_through_points);
	CU_add_test(s, "agents fail over when a point stops", test_failover);
	CU_add_test(s, "a point stops reading agents while the slave lags", test_backpressure);
	CU_add_test(s, "a removed point is turned away", test_remove);
	int rc = hp_run_suite();
	CU_cleanup_registry();
	return rc;
}
