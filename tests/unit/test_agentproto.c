/*
 * The agent channel's codec and key proof. The proof is checked over real
 * TLS 1.3 sessions (two SSL objects joined by a BIO pair): a signature
 * made for one session must not verify on another.
 */
#include <CUnit/Basic.h>

#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "agentproto.h"
#include "proto.h"
#include "tls.h"

static EVP_PKEY *ca_key, *srv_key, *agent_key, *other_key;
static X509 *ca, *srv;
static SSL_CTX *sctx, *cctx;

static int suite_init(void)
{
	char err[512];
	ca_key = tls_key_generate(err, sizeof(err));
	srv_key = tls_key_generate(err, sizeof(err));
	agent_key = tls_key_generate(err, sizeof(err));
	other_key = tls_key_generate(err, sizeof(err));
	if (!ca_key || !srv_key || !agent_key || !other_key)
		return -1;
	ca = tls_ca_create(ca_key, "agent CA", err, sizeof(err));
	X509_REQ *req = ca ? tls_csr_create(srv_key, "push", err, sizeof(err)) : NULL;
	srv = req ? tls_sign_csr(ca, ca_key, req, "push", 1, "localhost", 30, err, sizeof(err)) : NULL;
	X509_REQ_free(req);
	if (!srv)
		return -1;
	sctx = tls_server_ctx(srv_key, srv, ca, err, sizeof(err));
	cctx = tls_client_ctx_pinned(err, sizeof(err));
	return sctx && cctx ? 0 : -1;
}

static int suite_clean(void)
{
	SSL_CTX_free(sctx);
	SSL_CTX_free(cctx);
	X509_free(srv);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(srv_key);
	EVP_PKEY_free(agent_key);
	EVP_PKEY_free(other_key);
	return 0;
}

struct pair {
	SSL *server, *client;
};

static int connect_pair(struct pair *p)
{
	BIO *sbio, *cbio;
	int sok = 0, cok = 0;
	p->server = SSL_new(sctx);
	p->client = SSL_new(cctx);
	if (!p->server || !p->client || BIO_new_bio_pair(&sbio, 0, &cbio, 0) != 1)
		return -1;
	SSL_set_bio(p->server, sbio, sbio);
	SSL_set_bio(p->client, cbio, cbio);
	SSL_set_accept_state(p->server);
	SSL_set_connect_state(p->client);
	for (int round = 0; round < 50 && !(sok && cok); round++) {
		if (!cok && SSL_do_handshake(p->client) == 1)
			cok = 1;
		if (!sok && SSL_do_handshake(p->server) == 1)
			sok = 1;
	}
	ERR_clear_error();
	return sok && cok ? 0 : -1;
}

static void pair_free(struct pair *p)
{
	SSL_free(p->server);
	SSL_free(p->client);
}

static void test_proof(void)
{
	struct pair a, b;
	char sig[129], pub[65], other_pub[65];
	CU_ASSERT_EQUAL_FATAL(connect_pair(&a), 0);
	CU_ASSERT_EQUAL_FATAL(connect_pair(&b), 0);
	CU_ASSERT_EQUAL(agentproto_pubkey_hex(agent_key, pub), 0);
	CU_ASSERT_EQUAL(agentproto_pubkey_hex(other_key, other_pub), 0);
	CU_ASSERT_EQUAL(strlen(pub), 64);

	/* Both ends export the same material; two sessions export different material. */
	unsigned char ca_[AGENT_EXPORTER_LEN], sa_[AGENT_EXPORTER_LEN], cb_[AGENT_EXPORTER_LEN];
	CU_ASSERT_EQUAL(agentproto_exporter(a.client, ca_), 0);
	CU_ASSERT_EQUAL(agentproto_exporter(a.server, sa_), 0);
	CU_ASSERT_EQUAL(agentproto_exporter(b.client, cb_), 0);
	CU_ASSERT_EQUAL(memcmp(ca_, sa_, sizeof(ca_)), 0);
	CU_ASSERT_NOT_EQUAL(memcmp(ca_, cb_, sizeof(ca_)), 0);

	CU_ASSERT_EQUAL_FATAL(agentproto_sign(a.client, agent_key, sig), 0);
	CU_ASSERT_EQUAL(strlen(sig), 128);
	CU_ASSERT_EQUAL(agentproto_verify(a.server, pub, sig), 0);
	/* Replay on another session, another key, a flipped bit, garbage: refused. */
	CU_ASSERT_EQUAL(agentproto_verify(b.server, pub, sig), -1);
	CU_ASSERT_EQUAL(agentproto_verify(a.server, other_pub, sig), -1);
	sig[10] = sig[10] == '0' ? '1' : '0';
	CU_ASSERT_EQUAL(agentproto_verify(a.server, pub, sig), -1);
	CU_ASSERT_EQUAL(agentproto_verify(a.server, pub, "zz"), -1);
	CU_ASSERT_EQUAL(agentproto_verify(a.server, "not-hex", sig), -1);
	pair_free(&a);
	pair_free(&b);
}

typedef int (*decoder)(json_t *o, char *err, size_t errlen);

static int d_enrol(json_t *o, char *e, size_t n)
{
	struct amsg_enrol m;
	return agentproto_decode_enrol(o, &m, e, n);
}
static int d_auth(json_t *o, char *e, size_t n)
{
	struct amsg_auth m;
	return agentproto_decode_auth(o, &m, e, n);
}
static int d_auth_ok(json_t *o, char *e, size_t n)
{
	struct amsg_auth_ok m;
	return agentproto_decode_auth_ok(o, &m, e, n);
}
static int d_event(json_t *o, char *e, size_t n)
{
	struct amsg_event m;
	return agentproto_decode_event(o, &m, e, n);
}
static int d_command(json_t *o, char *e, size_t n)
{
	struct amsg_command m;
	return agentproto_decode_command(o, &m, e, n);
}
static int d_result(json_t *o, char *e, size_t n)
{
	struct amsg_result m;
	return agentproto_decode_result(o, &m, e, n);
}
static int d_policy(json_t *o, char *e, size_t n)
{
	struct amsg_policy m;
	return agentproto_decode_policy(o, &m, e, n);
}
static int d_ack(json_t *o, char *e, size_t n)
{
	int64_t v;
	return agentproto_decode_ack(o, "seq", &v, e, n);
}

static int d_enrol_ok(json_t *o, char *e, size_t n)
{
	struct amsg_enrol_ok m;
	return agentproto_decode_enrol_ok(o, &m, e, n);
}
static int d_redirect(json_t *o, char *e, size_t n)
{
	struct amsg_redirect m;
	return agentproto_decode_redirect(o, &m, e, n);
}
static int d_dp_enrol(json_t *o, char *e, size_t n)
{
	struct amsg_dp_enrol m;
	return agentproto_decode_dp_enrol(o, &m, e, n);
}
static int d_dp_enrol_ok(json_t *o, char *e, size_t n)
{
	struct amsg_dp_enrol_ok m;
	return agentproto_decode_dp_enrol_ok(o, &m, e, n);
}
static int d_dp_auth(json_t *o, char *e, size_t n)
{
	struct amsg_dp_auth m;
	return agentproto_decode_dp_auth(o, &m, e, n);
}
static int d_dp_open(json_t *o, char *e, size_t n)
{
	struct amsg_dp_open m;
	return agentproto_decode_dp_open(o, &m, e, n);
}
static int d_dp_close(json_t *o, char *e, size_t n)
{
	struct amsg_dp_close m;
	return agentproto_decode_dp_close(o, &m, e, n);
}
static int d_dp_load(json_t *o, char *e, size_t n)
{
	int64_t v;
	return agentproto_decode_count(o, "A_DP_LOAD", "connections", 10000000, &v, e, n);
}

#define KEY64 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SIG128 KEY64 KEY64

static void test_decoders(void)
{
	static const struct {
		decoder dec;
		const char *json, *err; /* err NULL: accepted; else a substring of the reason */
	} cases[] = {
		{ d_enrol, "{\"proto\":1,\"token\":\"t\",\"key\":\"" KEY64 "\",\"hostname\":\"h\","
			   "\"os\":\"Linux\",\"agent_version\":\"0.1\",\"mode\":\"push\"}", NULL },
		{ d_enrol, "{\"proto\":1,\"token\":\"t\",\"key\":\"ABC\",\"hostname\":\"h\","
			   "\"os\":\"\",\"agent_version\":\"\",\"mode\":\"push\"}", "'key'" },
		{ d_enrol, "{\"proto\":1,\"token\":\"t\",\"key\":\"" KEY64 "\",\"hostname\":\"\","
			   "\"os\":\"\",\"agent_version\":\"\",\"mode\":\"push\"}", "'hostname'" },
		{ d_enrol, "{\"proto\":1,\"token\":\"t\",\"key\":\"" KEY64 "\",\"hostname\":\"h\","
			   "\"os\":\"\",\"agent_version\":\"\",\"mode\":\"carrier-pigeon\"}", "'mode'" },
		{ d_enrol, "{\"proto\":1,\"token\":\"t\",\"key\":\"" KEY64 "\",\"hostname\":\"h\","
			   "\"os\":\"\",\"agent_version\":\"\",\"mode\":\"push\",\"x\":1}", "A_ENROL" },
		{ d_enrol, "[1]", "not a JSON object" },
		{ d_auth, "{\"proto\":1,\"agent_id\":\"abc\",\"sig\":\"" SIG128 "\",\"mode\":\"poll\"}",
		  NULL },
		{ d_auth, "{\"proto\":1,\"agent_id\":\"abc\",\"sig\":\"00\",\"mode\":\"poll\"}", "'sig'" },
		{ d_auth, "{\"proto\":1,\"sig\":\"" SIG128 "\",\"mode\":\"poll\"}", "agent_id" },
		{ d_auth_ok, "{\"heartbeat\":60,\"policy_version\":0}", NULL },
		{ d_auth_ok, "{\"heartbeat\":0,\"policy_version\":0}", "'heartbeat'" },
		{ d_event, "{\"seq\":3,\"kind\":\"detection\",\"severity\":\"high\","
			   "\"occurred_at\":\"2026-11-22T05:00:00Z\",\"details\":{}}", NULL },
		{ d_event, "{\"seq\":3,\"kind\":\"detection\",\"severity\":\"apocalyptic\","
			   "\"occurred_at\":\"2026-11-22T05:00:00Z\",\"details\":{}}", "'severity'" },
		{ d_event, "{\"seq\":-1,\"kind\":\"k\",\"severity\":\"low\","
			   "\"occurred_at\":\"t\",\"details\":{}}", "'seq'" },
		{ d_event, "{\"seq\":1,\"kind\":\"k\",\"severity\":\"low\","
			   "\"occurred_at\":\"t\",\"details\":[]}", "'details'" },
		{ d_command, "{\"id\":5,\"kind\":\"run_task\",\"args\":{\"task_id\":1}}", NULL },
		{ d_command, "{\"id\":5,\"kind\":\"rm -rf\",\"args\":{}}", "'kind'" },
		{ d_result, "{\"seq\":1,\"task_id\":9,\"status\":\"succeeded\",\"result\":{}}", NULL },
		{ d_result, "{\"seq\":1,\"task_id\":0,\"status\":\"succeeded\",\"result\":{}}",
		  "seq/task_id" },
		{ d_result, "{\"seq\":1,\"task_id\":9,\"status\":\"pending\",\"result\":{}}", "'status'" },
		{ d_policy, "{\"version\":4,\"settings\":{\"block_sha256\":[]}}", NULL },
		{ d_policy, "{\"version\":4,\"settings\":\"x\"}", "version/settings" },
		{ d_ack, "{\"seq\":7}", NULL },
		{ d_ack, "{\"seq\":7,\"id\":1}", "ack" },
		{ d_ack, "{\"id\":1}", "ack" },
		{ d_enrol_ok, "{\"agent_id\":\"a\",\"ca\":\"pem\"}", NULL },
		{ d_enrol_ok, "{\"agent_id\":\"a\",\"ca\":\"pem\",\"push\":{\"address\":"
			      "\"dp1.example\",\"port\":7074}}", NULL },
		{ d_enrol_ok, "{\"agent_id\":\"a\",\"ca\":\"pem\",\"push\":{\"address\":"
			      "\"dp1 example\",\"port\":7074}}", "push.address" },
		{ d_enrol_ok, "{\"agent_id\":\"a\",\"ca\":\"pem\",\"push\":{\"address\":"
			      "\"dp1\",\"port\":0}}", "push.port" },
		{ d_enrol_ok, "{\"agent_id\":\"a\",\"ca\":\"pem\",\"push\":{\"address\":"
			      "\"dp1\"}}", "A_ENROL_OK" },
		{ d_redirect, "{\"address\":\"10.1.2.3\",\"port\":7074}", NULL },
		{ d_redirect, "{\"address\":\"a/b\",\"port\":7074}", "'address'" },
		{ d_redirect, "{\"address\":\"h\",\"port\":65536}", "'port'" },
		{ d_dp_enrol, "{\"proto\":1,\"token\":\"t\",\"name\":\"dp-1\",\"csr\":\"pem\","
			      "\"address\":\"dp1.example\",\"port\":7074}", NULL },
		{ d_dp_enrol, "{\"proto\":1,\"token\":\"t\",\"name\":\"dp 1\",\"csr\":\"pem\","
			      "\"address\":\"dp1.example\",\"port\":7074}", "'name'" },
		{ d_dp_enrol, "{\"proto\":1,\"token\":\"t\",\"name\":\"dp\",\"csr\":\"pem\","
			      "\"address\":\"\",\"port\":7074}", "'address'" },
		{ d_dp_enrol_ok, "{\"dp_id\":3,\"cert\":\"c\",\"ca\":\"c\"}", NULL },
		{ d_dp_enrol_ok, "{\"dp_id\":0,\"cert\":\"c\",\"ca\":\"c\"}", "'dp_id'" },
		{ d_dp_auth, "{\"proto\":1,\"dp_id\":3,\"sig\":\"" SIG128 "\"}", NULL },
		{ d_dp_auth, "{\"proto\":1,\"dp_id\":3,\"sig\":\"xyz\"}", "'sig'" },
		{ d_dp_open, "{\"vid\":1,\"address\":\"10.0.0.9\",\"ekm\":\"" KEY64 "\"}", NULL },
		{ d_dp_open, "{\"vid\":0,\"address\":\"10.0.0.9\",\"ekm\":\"" KEY64 "\"}",
		  "'vid'" },
		{ d_dp_open, "{\"vid\":1,\"address\":\"10.0.0.9\",\"ekm\":\"00\"}", "'ekm'" },
		{ d_dp_close, "{\"vid\":1,\"reason\":\"\"}", NULL },
		{ d_dp_close, "{\"vid\":1}", "A_DP_CLOSE" },
		{ d_dp_load, "{\"connections\":12}", NULL },
		{ d_dp_load, "{\"connections\":-1}", "'connections'" },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[512] = "";
		json_t *o = json_loads(cases[i].json, 0, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(o);
		int rc = cases[i].dec(o, err, sizeof(err));
		if (!cases[i].err) {
			CU_ASSERT_EQUAL(rc, 0);
			if (rc != 0)
				fprintf(stderr, "\ncase %zu refused: %s\n", i, err);
		} else {
			CU_ASSERT_EQUAL(rc, -1);
			CU_ASSERT_PTR_NOT_NULL(strstr(err, cases[i].err));
			if (!strstr(err, cases[i].err))
				fprintf(stderr, "\ncase %zu: '%s' lacks '%s'\n", i, err, cases[i].err);
		}
		json_decref(o);
	}
}

/* A_DP_FRAME's header round trip, and a payload too short for it. */
static void test_dp_frame(void)
{
	uint8_t buf[DP_FRAME_HDR + 3];
	uint64_t vid;
	uint16_t type;
	agentproto_dp_frame_hdr(buf, 0x0102030405060708ull, A_HEARTBEAT);
	memcpy(buf + DP_FRAME_HDR, "{}x", 3);
	CU_ASSERT_EQUAL(agentproto_dp_frame_split(buf, sizeof(buf), &vid, &type), 0);
	CU_ASSERT_EQUAL(vid, 0x0102030405060708ull);
	CU_ASSERT_EQUAL(type, A_HEARTBEAT);
	CU_ASSERT_EQUAL(agentproto_dp_frame_split(buf, DP_FRAME_HDR - 1, &vid, &type), -1);
	CU_ASSERT_TRUE(agentproto_host_ok("dp-3.paris.example.com"));
	CU_ASSERT_TRUE(agentproto_host_ok("2001:db8::1"));
	CU_ASSERT_FALSE(agentproto_host_ok(""));
	CU_ASSERT_FALSE(agentproto_host_ok("a b"));
}

static void test_policy_heartbeat(void)
{
	static const struct {
		const char *settings;
		int rc, seconds; /* seconds: when rc is 1 */
	} cases[] = {
		{ "{}", 0, 0 },
		{ "{\"block_sha256\": []}", 0, 0 },
		{ "{\"heartbeat\": 5}", 1, 5 },
		{ "{\"heartbeat\": 60, \"block_sha256\": []}", 1, 60 },
		{ "{\"heartbeat\": 86400}", 1, 86400 },
		{ "{\"heartbeat\": 4}", -1, 0 },
		{ "{\"heartbeat\": 0}", -1, 0 },
		{ "{\"heartbeat\": -60}", -1, 0 },
		{ "{\"heartbeat\": 86401}", -1, 0 },
		{ "{\"heartbeat\": 4294967301}", -1, 0 }, /* 5 once truncated to 32 bits */
		{ "{\"heartbeat\": 30.0}", -1, 0 },
		{ "{\"heartbeat\": \"30\"}", -1, 0 },
		{ "{\"heartbeat\": null}", -1, 0 },
		{ "{\"heartbeat\": true}", -1, 0 },
		{ "{\"heartbeat\": [30]}", -1, 0 },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char err[256] = "";
		int seconds = -7;
		json_t *o = json_loads(cases[i].settings, 0, NULL);
		CU_ASSERT_PTR_NOT_NULL_FATAL(o);
		int rc = agentproto_policy_heartbeat(o, &seconds, err, sizeof(err));
		if (rc != cases[i].rc)
			fprintf(stderr, "case %zu (%s): rc %d, want %d\n", i, cases[i].settings, rc,
				cases[i].rc);
		CU_ASSERT_EQUAL(rc, cases[i].rc);
		/* Only a valid value is written out. */
		CU_ASSERT_EQUAL(seconds, cases[i].rc == 1 ? cases[i].seconds : -7);
		if (cases[i].rc < 0) {
			CU_ASSERT_PTR_NOT_NULL(strstr(err, "heartbeat"));
		}
		json_decref(o);
	}
	/* No settings at all: nothing set. */
	int seconds = -7;
	char err[64];
	CU_ASSERT_EQUAL(agentproto_policy_heartbeat(NULL, &seconds, err, sizeof(err)), 0);
	CU_ASSERT_EQUAL(seconds, -7);
}

static void test_allow_list(void)
{
	CU_ASSERT_TRUE(agentproto_allowed(AST_SERVER_PREAUTH, A_ENROL));
	CU_ASSERT_TRUE(agentproto_allowed(AST_SERVER_PREAUTH, A_AUTH));
	CU_ASSERT_FALSE(agentproto_allowed(AST_SERVER_PREAUTH, A_HEARTBEAT));
	CU_ASSERT_FALSE(agentproto_allowed(AST_SERVER_PREAUTH, A_EVENT));
	CU_ASSERT_FALSE(agentproto_allowed(AST_SERVER_PREAUTH, MSG_HELLO)); /* a slave's message */
	CU_ASSERT_TRUE(agentproto_allowed(AST_SERVER_AUTHED, A_HEARTBEAT));
	CU_ASSERT_FALSE(agentproto_allowed(AST_SERVER_AUTHED, A_ENROL));
	CU_ASSERT_FALSE(agentproto_allowed(AST_SERVER_AUTHED, A_COMMAND)); /* server -> agent only */
	CU_ASSERT_TRUE(agentproto_allowed(AST_AGENT_AUTHED, A_COMMAND));
	CU_ASSERT_FALSE(agentproto_allowed(AST_AGENT_WAIT, A_COMMAND));
	for (enum agent_state st = AST_SERVER_PREAUTH; st <= AST_AGENT_AUTHED; st++) {
		CU_ASSERT_TRUE(agentproto_allowed(st, MSG_ERROR));
		CU_ASSERT_FALSE(agentproto_allowed(st, 999));
	}
	CU_ASSERT_STRING_EQUAL(agentproto_msg_name(A_AUTH), "A_AUTH");
	CU_ASSERT_STRING_EQUAL(agentproto_msg_name(999), "UNKNOWN");
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("agentproto", suite_init, suite_clean);
	CU_add_test(s, "key proof bound to the TLS session", test_proof);
	CU_add_test(s, "decoders", test_decoders);
	CU_add_test(s, "allow-list", test_allow_list);
	CU_add_test(s, "distribution point frame header", test_dp_frame);
	CU_add_test(s, "policy heartbeat setting", test_policy_heartbeat);
	CU_basic_set_mode(CU_BRM_VERBOSE);
	CU_basic_run_tests();
	unsigned fails = CU_get_number_of_failures() + CU_get_number_of_suites_failed();
	CU_cleanup_registry();
	return fails ? 1 : 0;
}
