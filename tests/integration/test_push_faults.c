/*
 * Hostile input on the agent port: bytes that are not TLS, handshakes
 * that never finish (a thousand of them while a real agent works),
 * oversized frames before and after authentication, malformed JSON,
 * unknown and out-of-order messages, unknown and revoked agents, an
 * agent's A_AUTH sent to a master's sync port, and a slave's certificate
 * offered to the push port. Each refusal is checked on the wire and in
 * the slave's log, and the push server must keep serving a well-behaved
 * agent afterwards.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>

#include "agentproto.h"
#include "harness_agent.h"
#include "harness_faults.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "harness_tls.h"
#include "proto.h"

#define PREAUTH_MAX 1024
#define FRAME_MAX   65536
#define HALF_OPEN   1000
#define ROUND_TRIPS 50

static struct hnode master, slave, small; /* small: one licence seat */
static struct hagent good;		  /* the well-behaved agent */
static char *token;

/* Enough descriptors for the half-open flood, for this process and the slave it starts. */
static int half_open_target(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 100;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	rlim_t room = rl.rlim_cur > 300 ? rl.rlim_cur - 200 : 100;
	return room >= HALF_OPEN ? HALF_OPEN : (int)room;
}

static int suite_init(void)
{
	char xml[512];
	if (hpg_require() != 0)
		return -1;
	/* A refused oversized frame closes the socket under a write: an error, not a signal. */
	signal(SIGPIPE, SIG_IGN);
	(void)half_open_target();
	if (hp_master_init(&master, "pf-hq", NULL) != 0 || hp_start(&master) != 0)
		return -1;
	snprintf(xml, sizeof(xml),
		 "  <limits frame-max-preauth=\"%d\" frame-max=\"%d\" handshake-timeout=\"2\"/>",
		 PREAUTH_MAX, FRAME_MAX);
	if (hp_slave_init(&slave, "pf-a", master.port, 1800, xml) != 0 || hp_start(&slave) != 0)
		return -1;
	if (hp_slave_init(&small, "pf-b", master.port, 1800, "  <licence seats=\"1\"/>") != 0 ||
	    hp_start(&small) != 0)
		return -1;
	token = ha_make_token(&slave, "/faults");
	if (!token || !ha_new(&good) || !ha_enrol(&slave, &good, token))
		return -1;
	return 0;
}

static int suite_clean(void)
{
	hp_cleanup(&small);
	hp_cleanup(&slave);
	hp_cleanup(&master);
	EVP_PKEY_free(good.key);
	free(token);
	return 0;
}

struct log_wait {
	struct hnode *n;
	const char *needle;
	int want;
};

static bool log_reached(void *arg)
{
	struct log_wait *w = arg;
	return hf_file_count(w->n->log, w->needle) >= w->want;
}

/* Waits until the log has more lines with needle than it had (before). */
static bool log_grew(struct hnode *n, const char *needle, int before)
{
	struct log_wait w = { n, needle, before + 1 };
	bool ok = hp_wait(log_reached, &w, 10);
	if (!ok)
		fprintf(stderr, "%s: no new log line with '%s'\n", n->name, needle);
	return ok;
}

/* One A_POLICY_GET -> A_POLICY round trip; true when the answer came. */
static bool policy_round_trip(SSL *ssl)
{
	uint16_t type;
	if (ha_send_json(ssl, A_POLICY_GET, json_object()) != 0)
		return false;
	json_t *o = ha_recv_json(ssl, &type);
	json_decref(o);
	return type == A_POLICY;
}

/* The well-behaved agent authenticates and gets its policy on a new connection. */
static bool still_serves(void)
{
	SSL *ssl = ha_auth(&slave, &good, token, NULL);
	bool ok = ssl && policy_round_trip(ssl);
	ht_close(ssl);
	if (!ok)
		fprintf(stderr, "the push server no longer serves a well-behaved agent\n");
	return ok;
}

static char *status_of(const char *uid)
{
	const char *p[] = { uid };
	return hf_value(&slave, "SELECT status FROM endpoints WHERE uid = $1", 1, p);
}

static void test_not_tls(void)
{
	static const char http[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
	int before = hf_file_count(slave.log, "closed: error:");
	CU_ASSERT(ht_plain_closed_after(slave.push_port, http, sizeof(http) - 1));
	CU_ASSERT(log_grew(&slave, "closed: error:", before));
	CU_ASSERT(still_serves());
}

/* The first bytes of a ClientHello: a handshake record header and part of its body. */
static const unsigned char partial_hello[] = { 0x16, 0x03, 0x01, 0x02, 0x00, 0x01,
					       0x00, 0x01, 0xfc, 0x03, 0x03 };

static int tcp_open(int port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

/* True when the server closed fd (EOF or reset), without waiting. */
static bool peer_closed(int fd)
{
	char junk[256];
	ssize_t n;
	while ((n = recv(fd, junk, sizeof(junk), MSG_DONTWAIT)) > 0)
		;
	return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK);
}

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

/* ROUND_TRIPS policy round trips, a heartbeat every tenth (both runs stay within the
 * heartbeat rate limit together); mean ms, or -1 when one failed. */
static double measure(SSL *ssl, int pause_ms)
{
	double spent = 0;
	for (int i = 0; i < ROUND_TRIPS; i++) {
		double t = now_ms();
		if (!policy_round_trip(ssl))
			return -1;
		spent += now_ms() - t;
		if (i % 10 == 0 && ht_send_str(ssl, A_HEARTBEAT, "{}") != 0)
			return -1;
		if (pause_ms > 0)
			usleep((useconds_t)pause_ms * 1000);
	}
	return spent / ROUND_TRIPS;
}

static int half_open;
static int *flood_fds;

static bool flood_cut(void *arg)
{
	int closed = 0;
	for (int i = 0; i < half_open; i++)
		closed += flood_fds[i] >= 0 && peer_closed(flood_fds[i]);
	*(int *)arg = closed;
	return closed == half_open;
}

static void test_half_open_flood(void)
{
	int closed = 0, opened = 0;
	half_open = half_open_target();
	flood_fds = calloc((size_t)half_open, sizeof(int));
	CU_ASSERT_PTR_NOT_NULL_FATAL(flood_fds);
	int cut_before = hf_file_count(slave.log, "closed: no data for 2 s");
	SSL *ssl = ha_auth(&slave, &good, token, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	double quiet = measure(ssl, 0);
	CU_ASSERT(quiet >= 0);

	/* Half say nothing after the TCP handshake, half stop inside the ClientHello. */
	for (int i = 0; i < half_open; i++) {
		flood_fds[i] = tcp_open(slave.push_port);
		if (flood_fds[i] < 0)
			continue;
		opened++;
		if (i % 2 == 1 && write(flood_fds[i], partial_hello, sizeof(partial_hello)) !=
				      sizeof(partial_hello))
			fprintf(stderr, "partial ClientHello %d not written\n", i);
	}
	CU_ASSERT_EQUAL(opened, half_open);
	/* Spread over about a second, inside the 2 s handshake timeout of the flood. */
	double loaded = measure(ssl, 20);
	CU_ASSERT(loaded >= 0);
	fprintf(stderr,
		"agent port: A_POLICY_GET round trip %.3f ms quiet, %.3f ms with %d half-open "
		"connections\n",
		quiet, loaded, half_open);

	CU_ASSERT(hp_wait(flood_cut, &closed, 30));
	if (closed != half_open)
		fprintf(stderr, "%d of %d half-open connections cut\n", closed, half_open);
	struct log_wait w = { &slave, "closed: no data for 2 s", cut_before + half_open };
	CU_ASSERT(hp_wait(log_reached, &w, 10));
	for (int i = 0; i < half_open; i++)
		if (flood_fds[i] >= 0)
			close(flood_fds[i]);
	free(flood_fds);
	flood_fds = NULL;

	/* The agent's own connection outlived the flood and it is still online. */
	CU_ASSERT(policy_round_trip(ssl));
	char *st = status_of(good.id);
	CU_ASSERT_STRING_EQUAL(st ? st : "", "online");
	free(st);
	ht_close(ssl);
	CU_ASSERT(still_serves());
}

/* A frame header announcing len bytes of payload, then len bytes. */
static int send_big(SSL *ssl, uint16_t type, size_t len)
{
	char *buf = malloc(len);
	if (!buf)
		return -1;
	memset(buf, ' ', len);
	buf[0] = '{';
	buf[len - 1] = '}';
	int rc = ht_send(ssl, type, buf, len);
	free(buf);
	return rc;
}

static void test_oversized_preauth(void)
{
	char needle[96];
	snprintf(needle, sizeof(needle), "exceeds the limit of %d", PREAUTH_MAX);
	int before = hf_file_count(slave.log, needle);
	SSL *ssl = ha_connect_pinned(&slave, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	(void)send_big(ssl, A_ENROL, PREAUTH_MAX * 4);
	CU_ASSERT(ht_wait_closed(ssl, NULL));
	ht_close(ssl);
	CU_ASSERT(log_grew(&slave, needle, before));
	CU_ASSERT(still_serves());
}

static void test_oversized_authed(void)
{
	char needle[96];
	snprintf(needle, sizeof(needle), "exceeds the limit of %d", FRAME_MAX);
	int before = hf_file_count(slave.log, needle);
	SSL *ssl = ha_auth(&slave, &good, token, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	/* Above the pre-auth limit but within frame-max: a heartbeat {} padded with spaces. */
	CU_ASSERT_EQUAL(send_big(ssl, A_HEARTBEAT, PREAUTH_MAX * 2), 0);
	CU_ASSERT(policy_round_trip(ssl));
	(void)send_big(ssl, A_EVENT, FRAME_MAX * 2);
	CU_ASSERT(ht_wait_closed(ssl, NULL));
	ht_close(ssl);
	CU_ASSERT(log_grew(&slave, needle, before));
	CU_ASSERT(still_serves());
}

/* Sends one raw frame on an authenticated connection and expects ERROR protocol and a log line. */
static void refused_after_auth(uint16_t type, const char *payload, const char *log_needle)
{
	int before = hf_file_count(slave.log, log_needle);
	SSL *ssl = ha_auth(&slave, &good, token, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ht_send_str(ssl, type, payload), 0);
	CU_ASSERT(ha_expect_error(ssl, "protocol"));
	ht_close(ssl);
	CU_ASSERT(log_grew(&slave, log_needle, before));
	CU_ASSERT(still_serves());
}

static void test_malformed_json(void)
{
	refused_after_auth(A_EVENT, "{\"seq\": 1, \"kind\": ", "protocol: A_EVENT:");
	refused_after_auth(A_POLICY_GET, "[]", "protocol: A_POLICY_GET:");
}

static void test_unknown_type(void)
{
	refused_after_auth(999, "{}", "(type 999) is not allowed in state AUTHED");
	/* A server-to-agent message sent by an agent is as unknown to the server. */
	refused_after_auth(A_AUTH_OK, "{\"heartbeat\": 5, \"policy_version\": 0}",
			   "(type 103) is not allowed in state AUTHED");
}

static void test_heartbeat_preauth(void)
{
	const char *needle = "A_HEARTBEAT (type 110) is not allowed in state PREAUTH";
	int before = hf_file_count(slave.log, needle);
	SSL *ssl = ha_connect_pinned(&slave, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ht_send_str(ssl, A_HEARTBEAT, "{}"), 0);
	CU_ASSERT(ha_expect_error(ssl, "protocol"));
	ht_close(ssl);
	CU_ASSERT(log_grew(&slave, needle, before));
	CU_ASSERT(still_serves());
}

static void test_unknown_agent(void)
{
	struct hagent ghost;
	const char *needle = "agent id 0123456789abcdef0123456789abcdef is unknown or revoked";
	int before = hf_file_count(slave.log, needle);
	CU_ASSERT_FATAL(ha_new(&ghost));
	snprintf(ghost.id, sizeof(ghost.id), "0123456789abcdef0123456789abcdef");
	SSL *ssl = ha_connect_pinned(&slave, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_AUTH, ha_auth_msg(ssl, &ghost)), 0);
	CU_ASSERT(ha_expect_error(ssl, "unregistered"));
	ht_close(ssl);
	CU_ASSERT(log_grew(&slave, needle, before));
	EVP_PKEY_free(ghost.key);
	CU_ASSERT(still_serves());
}

static bool listed(struct hnode *n, const char *uid)
{
	char *out = NULL;
	bool found =
	    hp_ctl(n, &out, "--json", "endpoint", "list", NULL) == 0 && out && strstr(out, uid);
	free(out);
	return found;
}

static void test_revoked_agent(void)
{
	struct hagent r;
	CU_ASSERT_FATAL(ha_new(&r) && ha_enrol(&slave, &r, token));
	SSL *ssl = ha_auth(&slave, &r, token, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT(listed(&slave, r.id));
	int before = hf_file_count(slave.log, "was revoked");

	/* The open connection is cut with ERROR unregistered. */
	CU_ASSERT_EQUAL(hp_ctl(&slave, NULL, "endpoint", "revoke", r.id, NULL), 0);
	CU_ASSERT(ha_expect_error(ssl, "unregistered"));
	ht_close(ssl);
	CU_ASSERT(log_grew(&slave, "was revoked", before));

	/* The next A_AUTH is refused. */
	before = hf_file_count(slave.log, "is unknown or revoked");
	ssl = ha_connect_pinned(&slave, token);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_AUTH, ha_auth_msg(ssl, &r)), 0);
	CU_ASSERT(ha_expect_error(ssl, "unregistered"));
	ht_close(ssl);
	CU_ASSERT(log_grew(&slave, "is unknown or revoked", before));

	const char *p[] = { r.id };
	CU_ASSERT_EQUAL(hf_ll(&slave,
			      "SELECT count(*) FROM events e JOIN endpoints p ON p.id = "
			      "e.endpoint_id WHERE p.uid = $1 AND e.kind = 'status' AND "
			      "e.details->>'to' = 'revoked'",
			      1, p),
			1);
	CU_ASSERT_FALSE(listed(&slave, r.id));
	/* Revoking twice or an unknown uid is an error for the operator. */
	CU_ASSERT_NOT_EQUAL(hp_ctl(&slave, NULL, "endpoint", "revoke", r.id, NULL), 0);
	CU_ASSERT_NOT_EQUAL(hp_ctl(&slave, NULL, "endpoint", "revoke", "nosuchuid", NULL), 0);
	EVP_PKEY_free(r.key);
	CU_ASSERT(still_serves());
}

static void test_revoked_frees_seat(void)
{
	struct hagent a, b;
	char *t = ha_make_token(&small, "/seats");
	CU_ASSERT_PTR_NOT_NULL_FATAL(t);
	CU_ASSERT_FATAL(ha_new(&a) && ha_new(&b));
	CU_ASSERT(ha_enrol(&small, &a, t));
	SSL *ssl = ha_connect_pinned(&small, t);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_ENROL, ha_enrol_msg(&b, t)), 0);
	CU_ASSERT(ha_expect_error(ssl, "seats"));
	ht_close(ssl);
	CU_ASSERT_EQUAL(hp_ctl(&small, NULL, "endpoint", "revoke", a.id, NULL), 0);
	CU_ASSERT(ha_enrol(&small, &b, t));
	EVP_PKEY_free(a.key);
	EVP_PKEY_free(b.key);
	free(t);
}

static void test_auth_on_master_sync_port(void)
{
	uint16_t type;
	const char *needle = "(type 102) is not allowed in state";
	int before = hf_file_count(master.log, needle);
	SSL *ssl = ht_connect(master.port, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ht_send_str(ssl, A_AUTH,
				    "{\"proto\": 1, \"agent_id\": \"0123456789abcdef\", \"sig\": "
				    "\"00\", \"mode\": \"push\"}"),
			0);
	json_t *o = ha_recv_json(ssl, &type);
	CU_ASSERT_EQUAL(type, MSG_ERROR);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "code")) ?: "", "protocol");
	json_decref(o);
	CU_ASSERT(ht_wait_closed(ssl, NULL));
	ht_close(ssl);
	CU_ASSERT(log_grew(&master, needle, before));
}

static void test_slave_cert_on_push_port(void)
{
	char key[700], cert[700];
	uint16_t type;
	CU_ASSERT_EQUAL_FATAL(hp_enrol(&master, &small), 0);
	snprintf(key, sizeof(key), "%s/slave.key", small.dir);
	snprintf(cert, sizeof(cert), "%s/slave.crt", small.dir);
	/* The certificate of a registered slave is not an agent's credential: the push
	 * server asks for no client certificate, so the handshake succeeds and nothing
	 * but A_AUTH can authenticate. */
	SSL *ssl = ht_connect(slave.push_port, key, cert);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	CU_ASSERT_EQUAL(ht_send_str(ssl, A_POLICY_GET, "{}"), 0);
	CU_ASSERT(ha_expect_error(ssl, "protocol"));
	ht_close(ssl);

	/* With a real agent id but a proof it cannot make, A_AUTH fails. */
	ssl = ht_connect(slave.push_port, key, cert);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	char sig[129];
	memset(sig, 'a', 128);
	sig[128] = '\0';
	json_t *m = json_pack("{s:i, s:s, s:s, s:s}", "proto", AGENT_PROTO_VERSION, "agent_id",
			      good.id, "sig", sig, "mode", "push");
	CU_ASSERT_EQUAL(ha_send_json(ssl, A_AUTH, m), 0);
	json_t *o = ha_recv_json(ssl, &type);
	CU_ASSERT_NOT_EQUAL(type, A_AUTH_OK);
	CU_ASSERT_EQUAL(type, MSG_ERROR);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "code")) ?: "", "auth");
	json_decref(o);
	ht_close(ssl);
	CU_ASSERT(still_serves());
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("push server faults", suite_init, suite_clean);
	CU_add_test(s, "bytes that are not TLS", test_not_tls);
	CU_add_test(s, "half-open handshakes while an agent works", test_half_open_flood);
	CU_add_test(s, "oversized frame before authentication", test_oversized_preauth);
	CU_add_test(s, "oversized frame after authentication", test_oversized_authed);
	CU_add_test(s, "malformed JSON", test_malformed_json);
	CU_add_test(s, "unknown message type", test_unknown_type);
	CU_add_test(s, "heartbeat before authentication", test_heartbeat_preauth);
	CU_add_test(s, "unknown agent id", test_unknown_agent);
	CU_add_test(s, "revoked agent: cut now, refused next time", test_revoked_agent);
	CU_add_test(s, "a revoked endpoint frees its seat", test_revoked_frees_seat);
	CU_add_test(s, "agent A_AUTH on a master's sync port", test_auth_on_master_sync_port);
	CU_add_test(s, "a slave certificate on the push port", test_slave_cert_on_push_port);
	return hp_run_suite();
}
