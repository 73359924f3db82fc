/*
 * The slave's push server against a small agent written here with
 * OpenSSL: enrolment, the key proof, heartbeats written in batches,
 * commands live and after reconnecting, events, refusals, the heartbeat
 * rate limit and the offline sweep.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>

#include "agentproto.h"
#include "harness_agent.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "harness_tls.h"
#include "proto.h"
#include "tls.h"

static struct hnode slave, small; /* small: one licence seat */

static int suite_init(void)
{
	if (hpg_require() != 0)
		return -1;
	if (hp_slave_init(&slave, "push-a", hp_free_port(), 1800, "  <push heartbeat=\"5\"/>") !=
		    0 ||
	    hp_start(&slave) != 0)
		return -1;
	if (hp_slave_init(&small, "push-b", hp_free_port(), 1800, "  <licence seats=\"1\"/>") != 0 ||
	    hp_start(&small) != 0)
		return -1;
	return 0;
}

static int suite_clean(void)
{
	hp_cleanup(&slave);
	hp_cleanup(&small);
	return 0;
}

/* Tokens put their endpoints into /lab/rack1. */
static char *make_token(struct hnode *n)
{
	return ha_make_token(n, "/lab/rack1");
}

/* Authenticates and checks the slave's configured heartbeat came back. */
static SSL *agent_auth(struct hnode *n, struct hagent *a, const char *token)
{
	int hb = 0;
	SSL *ssl = ha_auth(n, a, token, &hb);
	if (ssl && hb != 5) {
		fprintf(stderr, "A_AUTH_OK announced heartbeat %d, not 5\n", hb);
		ht_close(ssl);
		return NULL;
	}
	return ssl;
}

static long long q_ll(struct hnode *n, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static long long q_ll(struct hnode *n, const char *fmt, ...)
{
	char sql[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(sql, sizeof(sql), fmt, ap);
	va_end(ap);
	return hp_query_ll(n, sql);
}

static void test_enrol_auth_online(void)
{
	struct hagent a;
	char *out = NULL;
	uint16_t type;
	char *token = make_token(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	CU_ASSERT_FATAL(ha_new(&a));
	CU_ASSERT_FATAL(ha_enrol(&slave, &a, token));
	CU_ASSERT_EQUAL(strlen(a.id), 32);
	SSL *ssl = agent_auth(&slave, &a, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(hp_ctl(&slave, &out, "--json", "endpoint", "list", NULL), 0);
	json_t *list = json_loads(out ? out : "", 0, NULL);
	char *dump = json_dumps(list, JSON_COMPACT);
	CU_ASSERT_PTR_NOT_NULL(dump && strstr(dump, a.id));
	CU_ASSERT_PTR_NOT_NULL(dump && strstr(dump, "online"));
	CU_ASSERT_PTR_NOT_NULL(dump && strstr(dump, "/lab/rack1"));
	free(dump);
	json_decref(list);
	free(out);
	CU_ASSERT_EQUAL(q_ll(&slave, "SELECT count(*) FROM events e JOIN endpoints p ON "
			     "p.id = e.endpoint_id WHERE p.uid = '%s' AND e.kind = 'status' AND "
			     "e.details->>'to' = 'online'", a.id), 1);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_POLICY_GET, json_object()), 0);
	json_t *o = ha_recv_json(ssl, &type);
	CU_ASSERT_EQUAL(type, A_POLICY);
	json_decref(o);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_BYE, json_object()), 0);
	o = ha_recv_json(ssl, &type);
	CU_ASSERT_EQUAL(type, A_BYE_OK);
	json_decref(o);
	/* The agent, not the server, closes after A_BYE_OK: it may still answer commands. */
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_POLICY_GET, json_object()), 0);
	o = ha_recv_json(ssl, &type);
	CU_ASSERT_EQUAL(type, A_POLICY);
	json_decref(o);
	ht_close(ssl);
	EVP_PKEY_free(a.key);
	free(token);
}

static long long commits(void)
{
	return q_ll(&slave, "SELECT xact_commit FROM pg_stat_database WHERE datname = '%s'",
		    slave.dbname);
}

#define HB_AGENTS 25
#define HB_EACH 8

static void test_heartbeats_batched(void)
{
	struct hagent a[HB_AGENTS];
	SSL *ssl[HB_AGENTS] = { 0 };
	char *token = make_token(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	for (int i = 0; i < HB_AGENTS; i++) {
		CU_ASSERT_FATAL(ha_new(&a[i]) && ha_enrol(&slave, &a[i], token));
		ssl[i] = agent_auth(&slave, &a[i], token);
		CU_ASSERT_PTR_NOT_NULL_FATAL(ssl[i]);
	}
	/* Statistics arrive late: wait until the enrolments' commits are all counted. */
	long long before = commits(), prev;
	for (int i = 0; i < 20; i++) {
		prev = before;
		usleep(1200 * 1000);
		before = commits();
		if (before - prev <= 2)
			break;
	}
	/* A mark in the database's own clock: last_seen after it comes from these heartbeats. */
	char *mark = hp_query1(&slave, "SELECT clock_timestamp()::text");
	CU_ASSERT_PTR_NOT_NULL_FATAL(mark);
	long long seen0 = q_ll(&slave, "SELECT count(*) FROM endpoints WHERE last_seen >= '%s'", mark);
	for (int k = 0; k < HB_EACH; k++)
		for (int i = 0; i < HB_AGENTS; i++)
			CU_ASSERT_EQUAL(ht_send_str(ssl[i], A_HEARTBEAT, "{}"), 0);
	/* The flush runs every second; a loaded machine may need a few. */
	long long seen1 = 0;
	for (int tries = 0; tries < 15 && seen1 < HB_AGENTS; tries++) {
		sleep(1);
		seen1 = q_ll(&slave, "SELECT count(*) FROM endpoints WHERE last_seen >= '%s'", mark);
	}
	long long after = commits();
	free(mark);
	CU_ASSERT_EQUAL(seen0, 0);
	CU_ASSERT(seen1 >= HB_AGENTS); /* other agents of this slave may beat too */
	/*
	 * 200 heartbeats. A commit per heartbeat would show 200 or more; the
	 * flush timer (one per second), a sweep, this test's own queries and
	 * statistics that arrive late make a few dozen at most on a loaded
	 * machine, so a quarter of the heartbeats is a safe line between them.
	 */
	CU_ASSERT(after - before < HB_AGENTS * HB_EACH / 4);
	fprintf(stderr, "heartbeats: %d sent, %lld commits\n", HB_AGENTS * HB_EACH, after - before);
	for (int i = 0; i < HB_AGENTS; i++) {
		ht_close(ssl[i]);
		EVP_PKEY_free(a[i].key);
	}
	free(token);
}

static char *wait_uid;
static bool command_acked(void *arg)
{
	return q_ll(&slave, "SELECT count(*) FROM agent_commands c JOIN endpoints e ON e.id = "
		    "c.endpoint_id WHERE e.uid = '%s' AND acked_at IS NOT NULL", wait_uid) >= *(int *)arg;
}

/* Reads the next A_COMMAND (5 s), checks its kind and acknowledges it. */
static bool take_command(SSL *ssl, const char *kind)
{
	uint16_t type;
	struct amsg_command m;
	char err[256];
	json_t *o = ha_recv_json(ssl, &type);
	bool ok = type == A_COMMAND && agentproto_decode_command(o, &m, err, sizeof(err)) == 0 &&
		  strcmp(m.kind, kind) == 0;
	if (ok)
		ok = ha_send_json(ssl, A_COMMAND_ACK, json_pack("{s:I}", "id", (json_int_t)m.id)) == 0;
	json_decref(o);
	return ok;
}

static void test_commands(void)
{
	struct hagent a;
	int one = 1, two = 2;
	char *token = make_token(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	CU_ASSERT_FATAL(ha_new(&a) && ha_enrol(&slave, &a, token));
	wait_uid = a.id;
	SSL *ssl = agent_auth(&slave, &a, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(hp_ctl(&slave, NULL, "endpoint", "command", a.id, "sync_now", "--args",
			       "{\"why\":\"test\"}", NULL),
			0);
	CU_ASSERT(take_command(ssl, "sync_now"));
	CU_ASSERT(hp_wait(command_acked, &one, 10));
	ht_close(ssl);

	/* Queued while the agent is away, delivered after its next A_AUTH. */
	CU_ASSERT_EQUAL(hp_ctl(&slave, NULL, "endpoint", "command", a.id, "apply_policy", NULL), 0);
	ssl = agent_auth(&slave, &a, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT(take_command(ssl, "apply_policy"));
	CU_ASSERT(hp_wait(command_acked, &two, 10));
	CU_ASSERT_NOT_EQUAL(hp_ctl(&slave, NULL, "endpoint", "command", a.id, "reboot", NULL), 0);
	ht_close(ssl);
	EVP_PKEY_free(a.key);
	free(token);
}

static void test_event(void)
{
	struct hagent a;
	uint16_t type;
	char *token = make_token(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	CU_ASSERT_FATAL(ha_new(&a) && ha_enrol(&slave, &a, token));
	SSL *ssl = agent_auth(&slave, &a, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_EVENT,
				  json_pack("{s:i, s:s, s:s, s:s, s:{s:s}}", "seq", 7, "kind",
					    "malware", "severity", "high", "occurred_at",
					    "2024-05-01T10:00:00Z", "details", "file", "/tmp/x")),
			0);
	json_t *o = ha_recv_json(ssl, &type);
	CU_ASSERT_EQUAL(type, A_EVENT_ACK);
	CU_ASSERT_EQUAL(json_integer_value(json_object_get(o, "seq")), 7);
	json_decref(o);
	CU_ASSERT_EQUAL(q_ll(&slave, "SELECT count(*) FROM events e JOIN endpoints p ON p.id = "
			     "e.endpoint_id WHERE p.uid = '%s' AND kind = 'malware' AND "
			     "severity = 'high' AND details->>'file' = '/tmp/x'", a.id), 1);
	ht_close(ssl);
	EVP_PKEY_free(a.key);
	free(token);
}

static void test_token_refused(void)
{
	struct hagent a;
	char bad[256];
	char *token = make_token(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	CU_ASSERT_FATAL(ha_new(&a));
	/* Same id and pin, another secret. */
	snprintf(bad, sizeof(bad), "%s", token);
	char *secret = strchr(strchr(bad, '.') + 1, '.') + 1;
	secret[0] = secret[0] == 'a' ? 'b' : 'a';
	SSL *ssl = ha_connect_pinned(&slave, bad);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_ENROL, ha_enrol_msg(&a, bad)), 0);
	CU_ASSERT(ha_expect_error(ssl, "token"));
	ht_close(ssl);

	CU_ASSERT_EQUAL(q_ll(&slave, "UPDATE agent_tokens SET expires_at = now() - interval "
			     "'1 minute' WHERE id = split_part('%s', '.', 2) RETURNING 1", token), 1);
	ssl = ha_connect_pinned(&slave, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_ENROL, ha_enrol_msg(&a, token)), 0);
	CU_ASSERT(ha_expect_error(ssl, "token"));
	ht_close(ssl);
	EVP_PKEY_free(a.key);
	free(token);
}

static void test_seats(void)
{
	struct hagent a, b;
	char *token = make_token(&small);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	CU_ASSERT_FATAL(ha_new(&a) && ha_new(&b));
	CU_ASSERT(ha_enrol(&small, &a, token));
	SSL *ssl = ha_connect_pinned(&small, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_ENROL, ha_enrol_msg(&b, token)), 0);
	CU_ASSERT(ha_expect_error(ssl, "seats"));
	ht_close(ssl);
	CU_ASSERT(hp_wait_log(&small, "licence seats exhausted (1 of 1 used)", 5));
	EVP_PKEY_free(a.key);
	EVP_PKEY_free(b.key);
	free(token);
}

static void test_auth_refused(void)
{
	struct hagent a, ghost;
	char *token = make_token(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	CU_ASSERT_FATAL(ha_new(&a) && ha_enrol(&slave, &a, token) && ha_new(&ghost));
	snprintf(ghost.id, sizeof(ghost.id), "00000000000000000000000000000000");
	SSL *ssl = ha_connect_pinned(&slave, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_AUTH, ha_auth_msg(ssl, &ghost)), 0);
	CU_ASSERT(ha_expect_error(ssl, "unregistered"));
	ht_close(ssl);

	/* A proof made for one TLS session does not open another. */
	SSL *first = ha_connect_pinned(&slave, token), *second = ha_connect_pinned(&slave, token);
	CU_ASSERT_FATAL(first && second);
	CU_ASSERT_EQUAL(ha_send_json(second, A_AUTH, ha_auth_msg(first, &a)), 0);
	CU_ASSERT(ha_expect_error(second, "auth"));
	ht_close(first);
	ht_close(second);
	EVP_PKEY_free(a.key);
	EVP_PKEY_free(ghost.key);
	free(token);
}

static void test_heartbeat_preauth(void)
{
	char *token = make_token(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	SSL *ssl = ha_connect_pinned(&slave, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ht_send_str(ssl, A_HEARTBEAT, "{}"), 0);
	CU_ASSERT(ha_expect_error(ssl, "protocol"));
	ht_close(ssl);
	free(token);
}

static void test_heartbeat_flood(void)
{
	struct hagent a;
	char *token = make_token(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	CU_ASSERT_FATAL(ha_new(&a) && ha_enrol(&slave, &a, token));
	SSL *ssl = agent_auth(&slave, &a, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	for (int i = 0; i < 30; i++)
		(void)ht_send_str(ssl, A_HEARTBEAT, "{}");
	CU_ASSERT(ha_expect_error(ssl, "rate"));
	ht_close(ssl);
	EVP_PKEY_free(a.key);
	free(token);
}

static char *offline_uid;
static bool went_offline(void *arg)
{
	return q_ll(&slave, "SELECT count(*) FROM endpoints WHERE uid = '%s' AND status = "
		    "'offline'", offline_uid) == 1;
}

static void test_offline_sweep(void)
{
	struct hagent a;
	char *token = make_token(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	CU_ASSERT_FATAL(ha_new(&a) && ha_enrol(&slave, &a, token));
	SSL *ssl = agent_auth(&slave, &a, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	offline_uid = a.id;
	/* Heartbeat 5 s: offline after 15 s of silence, found by a sweep within 5 s more. */
	CU_ASSERT(hp_wait(went_offline, NULL, 30));
	CU_ASSERT_EQUAL(q_ll(&slave, "SELECT count(*) FROM events e JOIN endpoints p ON p.id = "
			     "e.endpoint_id WHERE p.uid = '%s' AND e.kind = 'status' AND "
			     "e.details->>'to' = 'offline'", a.id), 1);
	ht_close(ssl);
	EVP_PKEY_free(a.key);
	free(token);
}

#define FAN_AGENTS 40
#define FAN_EACH 5

static bool fanout_acked(void *arg)
{
	return q_ll(&slave, "SELECT count(*) FROM agent_commands c JOIN endpoints e ON e.id = "
		    "c.endpoint_id JOIN groups g ON g.id = e.group_id WHERE g.path = '/fanout' "
		    "AND c.acked_at IS NOT NULL%s", "") == FAN_AGENTS * FAN_EACH;
}

/* Sends A_AUTH on every connection before reading any answer, so they share batches. */
static bool auth_all(struct hagent *a, SSL **ssl, const char *token)
{
	bool ok = true;
	for (int i = 0; i < FAN_AGENTS; i++) {
		ssl[i] = ha_connect_pinned(&slave, token);
		json_t *m = ssl[i] ? ha_auth_msg(ssl[i], &a[i]) : NULL;
		ok = ok && m && ha_send_json(ssl[i], A_AUTH, m) == 0;
	}
	for (int i = 0; i < FAN_AGENTS && ok; i++) {
		uint16_t type;
		json_t *o = ha_recv_json(ssl[i], &type);
		ok = type == A_AUTH_OK;
		json_decref(o);
	}
	return ok;
}

static long long fanout_status_events(void)
{
	return q_ll(&slave, "SELECT count(*) FROM events v JOIN endpoints e ON e.id = "
		    "v.endpoint_id JOIN groups g ON g.id = e.group_id WHERE g.path = '/fanout' "
		    "AND v.kind = 'status'%s", "");
}

static void test_batch_auth_fanout(void)
{
	struct hagent a[FAN_AGENTS];
	SSL *ssl[FAN_AGENTS] = { 0 };
	char *token = ha_make_token(&slave, "/fanout");
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	for (int i = 0; i < FAN_AGENTS; i++)
		CU_ASSERT_FATAL(ha_new(&a[i]) && ha_enrol(&slave, &a[i], token));
	CU_ASSERT_FATAL(auth_all(a, ssl, token));
	/* Online as soon as A_AUTH_OK arrives, with exactly one transition each. */
	CU_ASSERT_EQUAL(q_ll(&slave, "SELECT count(*) FROM endpoints e JOIN groups g ON g.id = "
			     "e.group_id WHERE g.path = '/fanout' AND e.status = 'online'%s", ""),
			FAN_AGENTS);
	CU_ASSERT_EQUAL(fanout_status_events(), FAN_AGENTS);

	/* One INSERT for all of them: each agent gets its own commands, all acknowledged. */
	CU_ASSERT_EQUAL(q_ll(&slave, "WITH i AS (INSERT INTO agent_commands (endpoint_id, kind, "
			     "args) SELECT e.id, 'sync_now', jsonb_build_object('n', k) FROM "
			     "endpoints e JOIN groups g ON g.id = e.group_id, generate_series(1, %d) "
			     "k WHERE g.path = '/fanout' RETURNING 1) SELECT count(*) FROM i",
			     FAN_EACH),
			FAN_AGENTS * FAN_EACH);
	for (int i = 0; i < FAN_AGENTS; i++)
		for (int k = 0; k < FAN_EACH; k++)
			CU_ASSERT(take_command(ssl[i], "sync_now"));
	CU_ASSERT(hp_wait(fanout_acked, NULL, 10));
	CU_ASSERT_EQUAL(q_ll(&slave, "SELECT count(*) FROM agent_commands c JOIN endpoints e ON "
			     "e.id = c.endpoint_id JOIN groups g ON g.id = e.group_id WHERE "
			     "g.path = '/fanout' AND c.delivered_at IS NULL%s", ""),
			0);

	/* Back again, all at once: still online, so no new transition is recorded. */
	for (int i = 0; i < FAN_AGENTS; i++)
		ht_close(ssl[i]);
	CU_ASSERT_FATAL(auth_all(a, ssl, token));
	CU_ASSERT_EQUAL(fanout_status_events(), FAN_AGENTS);
	for (int i = 0; i < FAN_AGENTS; i++) {
		ht_close(ssl[i]);
		EVP_PKEY_free(a[i].key);
	}
	free(token);
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("push server", suite_init, suite_clean);
	CU_add_test(s, "enrol, authenticate, online", test_enrol_auth_online);
	CU_add_test(s, "heartbeats written in batches", test_heartbeats_batched);
	CU_add_test(s, "commands live and after reconnecting", test_commands);
	CU_add_test(s, "event stored and acknowledged", test_event);
	CU_add_test(s, "wrong and expired tokens", test_token_refused);
	CU_add_test(s, "licence seats exhausted", test_seats);
	CU_add_test(s, "unknown agent and a proof from another session", test_auth_refused);
	CU_add_test(s, "heartbeat before authentication", test_heartbeat_preauth);
	CU_add_test(s, "heartbeat flood", test_heartbeat_flood);
	CU_add_test(s, "offline after missed heartbeats", test_offline_sweep);
	CU_add_test(s, "authentications in one batch, a fan-out acknowledged",
		    test_batch_auth_fanout);
	return hp_run_suite();
}
