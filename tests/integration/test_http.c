/*
 * The HTTP API on real daemons: a master and a slave with <http>, the
 * probes, authentication by token and by client certificate, metrics
 * after an agent enrolled and a sync, commands answered as the admin
 * socket answers them, and bad input that leaves the daemon serving.
 * The client is OpenSSL on a blocking socket, so every byte sent is the
 * test's own.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <CUnit/Basic.h>
#include <jansson.h>
#include <openssl/ssl.h>

#include "admin.h"
#include "commands.h"
#include "harness_agent.h"
#include "harness_pg.h"
#include "harness_proc.h"
#include "harness_tls.h"
#include "tls.h"

#define TOKEN "api-token-0123456789abcdef"

static struct hnode master, slave;
static int master_http, slave_http;
static char token_path[600], ca_path[600], cert_path[600], key_path[600];
static char other_cert[600], other_key[600];
static struct hagent agent;
static SSL *agent_ssl;

struct reply {
	int status;
	char *head;
	char *body;
};

static void reply_free(struct reply *r)
{
	free(r->head);
	free(r->body);
	memset(r, 0, sizeof(*r));
}

/* The CA file a client trusts for the node's server certificate. */
static void server_ca(struct hnode *n, char *out, size_t len)
{
	snprintf(out, len, "%s/%s", n->dir, n->master ? "ca.crt" : "agent-ca.crt");
}

/* TLS 1.3 to 127.0.0.1:port, the server checked against the node's CA; client cert optional. */
static SSL *connect_tls(struct hnode *n, int port, const char *cert, const char *key)
{
	char ca[700];
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)port) };
	struct timeval tv = { .tv_sec = 10 };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return NULL;
	}
	server_ca(n, ca, sizeof(ca));
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1 ||
	    (cert && (SSL_CTX_use_certificate_file(ctx, cert, SSL_FILETYPE_PEM) != 1 ||
		      SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1))) {
		SSL_CTX_free(ctx);
		close(fd);
		return NULL;
	}
	SSL *ssl = SSL_new(ctx);
	SSL_CTX_free(ctx);
	X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), "127.0.0.1");
	SSL_set_fd(ssl, fd);
	if (SSL_connect(ssl) != 1) {
		ht_close(ssl);
		return NULL;
	}
	return ssl;
}

/* Sends raw bytes and reads the reply until the server closes; status 0 when none came. */
static int exchange(SSL *ssl, const char *req, size_t len, struct reply *r)
{
	size_t got = 0, cap = 1 << 16;
	char *buf = malloc(cap);

	memset(r, 0, sizeof(*r));
	if (len && SSL_write(ssl, req, (int)len) != (int)len) {
		free(buf);
		ht_close(ssl);
		return -1;
	}
	for (;;) {
		if (got + 1 >= cap)
			buf = realloc(buf, cap *= 2);
		int n = SSL_read(ssl, buf + got, (int)(cap - got - 1));
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	buf[got] = '\0';
	ht_close(ssl);
	char *sep = strstr(buf, "\r\n\r\n");
	if (strncmp(buf, "HTTP/1.1 ", 9) != 0 || !sep) {
		free(buf);
		return 0;
	}
	r->status = atoi(buf + 9);
	r->body = strdup(sep + 4);
	*sep = '\0';
	r->head = buf;
	return r->status;
}

/* One request; auth NULL for none, a client certificate when cert is set. */
static int request_as(struct hnode *n, int port, const char *method, const char *path,
		      const char *auth, const char *body, const char *cert, const char *key,
		      struct reply *r)
{
	char head[2048];
	memset(r, 0, sizeof(*r));
	SSL *ssl = connect_tls(n, port, cert, key);
	if (!ssl)
		return -1;
	size_t blen = body ? strlen(body) : 0;
	int hl = snprintf(head, sizeof(head),
			  "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
			  "%s%s%sContent-Length: %zu\r\n\r\n",
			  method, path, auth ? "Authorization: " : "", auth ? auth : "",
			  auth ? "\r\n" : "", blen);
	char *all = malloc((size_t)hl + blen + 1);
	memcpy(all, head, (size_t)hl);
	if (blen)
		memcpy(all + hl, body, blen);
	int rc = exchange(ssl, all, (size_t)hl + blen, r);
	free(all);
	return rc;
}

static int request(struct hnode *n, int port, const char *method, const char *path,
		   const char *auth, const char *body, struct reply *r)
{
	return request_as(n, port, method, path, auth, body, NULL, NULL, r);
}

#define BEARER "Bearer " TOKEN

static json_t *body_json(const struct reply *r)
{
	return r->body ? json_loads(r->body, 0, NULL) : NULL;
}

/* The value of the sample "name{labels}" (labels "" for none) in a scrape, or -1. */
static double sample(const char *text, const char *series)
{
	size_t n = strlen(series);
	for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	}
	return -1;
}

static int make_client_certs(void)
{
	char err[512];
	const char *dir = hp_root();
	snprintf(ca_path, sizeof(ca_path), "%s/ops-ca.crt", dir);
	snprintf(cert_path, sizeof(cert_path), "%s/ops.crt", dir);
	snprintf(key_path, sizeof(key_path), "%s/ops.key", dir);
	snprintf(other_cert, sizeof(other_cert), "%s/other.crt", dir);
	snprintf(other_key, sizeof(other_key), "%s/other.key", dir);
	int rc = -1;
	EVP_PKEY *ca_key = tls_key_generate(err, sizeof(err));
	EVP_PKEY *other_ca_key = tls_key_generate(err, sizeof(err));
	EVP_PKEY *key = tls_key_generate(err, sizeof(err));
	X509 *ca = ca_key ? tls_ca_create(ca_key, "ops CA", err, sizeof(err)) : NULL;
	X509 *other_ca =
	    other_ca_key ? tls_ca_create(other_ca_key, "other CA", err, sizeof(err)) : NULL;
	X509_REQ *csr = key ? tls_csr_create(key, "ops", err, sizeof(err)) : NULL;
	X509 *cert =
	    ca && csr ? tls_sign_csr(ca, ca_key, csr, "monitoring", 0, NULL, 30, err, sizeof(err))
		      : NULL;
	X509 *other = other_ca && csr ? tls_sign_csr(other_ca, other_ca_key, csr, "intruder", 0,
						     NULL, 30, err, sizeof(err))
				      : NULL;
	if (cert && other && tls_cert_save(ca, ca_path, err, sizeof(err)) == 0 &&
	    tls_cert_save(cert, cert_path, err, sizeof(err)) == 0 &&
	    tls_key_save(key, key_path, err, sizeof(err)) == 0 &&
	    tls_cert_save(other, other_cert, err, sizeof(err)) == 0 &&
	    tls_key_save(key, other_key, err, sizeof(err)) == 0)
		rc = 0;
	else
		fprintf(stderr, "client certificates: %s\n", err);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(other_ca_key);
	EVP_PKEY_free(key);
	X509_free(ca);
	X509_free(other_ca);
	X509_REQ_free(csr);
	X509_free(cert);
	X509_free(other);
	return rc;
}

static int write_token(mode_t mode)
{
	FILE *f = fopen(token_path, "w");
	if (!f)
		return -1;
	fprintf(f, "%s\n", TOKEN);
	if (fclose(f) != 0)
		return -1;
	return chmod(token_path, mode);
}

static int master_config(void)
{
	char xml[1024];
	snprintf(xml, sizeof(xml),
		 "  <http address=\"127.0.0.1\" port=\"%d\" token-file=\"%s\" max-body=\"1024\"/>",
		 master_http, token_path);
	return hp_write_config(&master, xml);
}

static int suite_init(void)
{
	char xml[2048];
	signal(SIGPIPE, SIG_IGN);
	if (hpg_require() != 0)
		return -1;
	snprintf(token_path, sizeof(token_path), "%s/api.token", hp_root());
	if (write_token(0600) != 0 || make_client_certs() != 0)
		return -1;
	master_http = hp_free_port();
	if (hp_master_init(&master, "http-m", NULL) != 0 || master_config() != 0 ||
	    hp_start(&master) != 0)
		return -1;
	slave_http = hp_free_port();
	snprintf(xml, sizeof(xml),
		 "  <http address=\"127.0.0.1\" port=\"%d\" token-file=\"%s\" client-ca=\"%s\"/>",
		 slave_http, token_path, ca_path);
	if (hp_slave_init(&slave, "http-s", master.port, 1800, xml) != 0 || hp_start(&slave) != 0)
		return -1;
	return hp_enrol(&master, &slave);
}

static int suite_clean(void)
{
	ht_close(agent_ssl);
	EVP_PKEY_free(agent.key);
	hp_cleanup(&slave);
	hp_cleanup(&master);
	return 0;
}

static void test_probes(void)
{
	struct reply r;
	struct hnode *nodes[] = { &master, &slave };
	int ports[] = { master_http, slave_http };

	for (int i = 0; i < 2; i++) {
		CU_ASSERT_EQUAL(request(nodes[i], ports[i], "GET", "/livez", NULL, NULL, &r), 200);
		CU_ASSERT_PTR_NOT_NULL(r.body && strstr(r.body, "\"live\""));
		reply_free(&r);
		CU_ASSERT_EQUAL(request(nodes[i], ports[i], "GET", "/readyz", NULL, NULL, &r), 200);
		CU_ASSERT_PTR_NOT_NULL(r.body && strstr(r.body, "\"ready\""));
		CU_ASSERT_PTR_NOT_NULL(r.head && strstr(r.head, "application/json"));
		reply_free(&r);
		/* Probes are GET only, and say so without authentication. */
		CU_ASSERT_EQUAL(request(nodes[i], ports[i], "POST", "/livez", NULL, NULL, &r), 405);
		reply_free(&r);
	}
}

static void test_auth(void)
{
	struct reply r;

	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/metrics", NULL, NULL, &r), 401);
	json_t *o = body_json(&r);
	CU_ASSERT_FALSE(json_is_true(json_object_get(o, "ok")));
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "error")),
			       "authentication required");
	json_decref(o);
	reply_free(&r);
	CU_ASSERT_TRUE(hp_wait_log(&master, "GET /metrics from 127.0.0.1", 5));
	CU_ASSERT_TRUE(hp_wait_log(&master, "401 (no token)", 5));

	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/metrics", "Bearer wrong", NULL, &r),
			401);
	reply_free(&r);
	CU_ASSERT_TRUE(hp_wait_log(&master, "401 (wrong token)", 5));
	CU_ASSERT_EQUAL(
	    request(&master, master_http, "GET", "/metrics", "Bearer " TOKEN "x", NULL, &r), 401);
	reply_free(&r);
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/metrics", "Basic " TOKEN, NULL, &r),
			401);
	reply_free(&r);
	/* A path cannot forge a log line. */
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/x%0aforged%0d", NULL, NULL, &r),
			401);
	reply_free(&r);
	CU_ASSERT_TRUE(hp_wait_log(&master, "GET /x?forged? from", 5));
	/* Unknown resources are not revealed before authentication. */
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/nothing", NULL, NULL, &r), 401);
	reply_free(&r);
	CU_ASSERT_EQUAL(request(&slave, slave_http, "GET", "/api/v1/status", NULL, NULL, &r), 401);
	reply_free(&r);

	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/metrics", BEARER, NULL, &r), 200);
	CU_ASSERT_PTR_NOT_NULL(r.head && strstr(r.head, "text/plain; version=0.0.4"));
	CU_ASSERT(sample(r.body, "strata_http_unauthorized_total") >= 5);
	reply_free(&r);
}

static bool slave_online(void *arg)
{
	struct reply r;
	bool ok = request(&slave, slave_http, "GET", "/metrics", BEARER, NULL, &r) == 200 &&
		  sample(r.body, "strata_slave_endpoints{status=\"online\"}") == 1;
	reply_free(&r);
	return ok;
}

static void test_slave_metrics(void)
{
	struct reply r;
	char dir[700];

	/* One agent connected and online, one enrolled by the real agent and offline. */
	char *token = ha_make_token(&slave, "/lab");
	CU_ASSERT_PTR_NOT_NULL_FATAL(token);
	CU_ASSERT_FATAL(ha_new(&agent));
	CU_ASSERT_FATAL(ha_enrol(&slave, &agent, token));
	agent_ssl = ha_auth(&slave, &agent, token, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(agent_ssl);
	snprintf(dir, sizeof(dir), "%s/agent2", hp_root());
	CU_ASSERT_EQUAL(ha_agent_enrol(&slave, dir, token, "second", NULL), 0);
	free(token);
	CU_ASSERT_TRUE_FATAL(hp_wait(slave_online, NULL, 15));

	CU_ASSERT_EQUAL_FATAL(request(&slave, slave_http, "GET", "/metrics", BEARER, NULL, &r),
			      200);
	const char *t = r.body;
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "# HELP strata_slave_endpoints "));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "# TYPE strata_slave_endpoints gauge\n"));
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "# TYPE strata_slave_sync_sessions_total counter\n"));
	CU_ASSERT_EQUAL(sample(t, "strata_slave_endpoints{status=\"offline\"}"), 1);
	CU_ASSERT_EQUAL(sample(t, "strata_slave_endpoints{status=\"unreachable\"}"), 0);
	CU_ASSERT_EQUAL(sample(t, "strata_slave_push_connections"), 1);
	CU_ASSERT_EQUAL(sample(t, "strata_slave_registered"), 1);
	CU_ASSERT_EQUAL(sample(t, "strata_slave_licence_seats"), 1000);
	CU_ASSERT_EQUAL(sample(t, "strata_metrics_complete"), 1);
	CU_ASSERT(sample(t, "strata_slave_heartbeat_newest_age_seconds") >= 0);
	CU_ASSERT_EQUAL(
	    sample(t, "strata_build_info{role=\"slave\",version=\"" STRATA_VERSION "\"}"), 1);
	reply_free(&r);
}

static void test_master_metrics(void)
{
	struct reply r;

	/* sync/now answers when the session has ended, as `strata-ctl sync now` does. */
	CU_ASSERT_EQUAL_FATAL(
	    request(&slave, slave_http, "POST", "/api/v1/sync/now", BEARER, NULL, &r), 200);
	json_t *o = body_json(&r);
	CU_ASSERT_TRUE(json_is_true(json_object_get(o, "ok")));
	json_decref(o);
	reply_free(&r);
	CU_ASSERT_EQUAL_FATAL(request(&master, master_http, "GET", "/metrics", BEARER, NULL, &r),
			      200);
	const char *t = r.body;
	CU_ASSERT_EQUAL(sample(t, "strata_master_endpoints{slave=\"http-s\",status=\"online\"}"),
			1);
	CU_ASSERT_EQUAL(sample(t, "strata_master_endpoints{slave=\"http-s\",status=\"offline\"}"),
			1);
	CU_ASSERT_EQUAL(sample(t, "strata_master_slave_state{slave=\"http-s\",state=\"active\"}"),
			1);
	CU_ASSERT_EQUAL(sample(t, "strata_master_slave_state{slave=\"http-s\",state=\"failed\"}"),
			0);
	CU_ASSERT(sample(t, "strata_master_sync_sessions_total{slave=\"http-s\",result=\"ok\"}") >=
		  1);
	CU_ASSERT(sample(t, "strata_master_sync_rows_received_total{slave=\"http-s\"}") >= 2);
	CU_ASSERT(sample(t, "strata_master_sync_last_duration_seconds{slave=\"http-s\"}") >= 0);
	CU_ASSERT_PTR_NOT_NULL(strstr(t, "# TYPE strata_master_sync_sessions_total counter\n"));
	reply_free(&r);

	/* The slave counts its side of the same session. */
	CU_ASSERT_EQUAL_FATAL(request(&slave, slave_http, "GET", "/metrics", BEARER, NULL, &r),
			      200);
	CU_ASSERT(sample(r.body, "strata_slave_sync_sessions_total{result=\"ok\"}") >= 1);
	CU_ASSERT(sample(r.body, "strata_slave_sync_rows_sent_total{stream=\"endpoints\"}") >= 2);
	CU_ASSERT(sample(r.body, "strata_slave_sync_last_success_timestamp_seconds") > 1.6e9);
	reply_free(&r);
}

/* The API's reply to GET path equals the admin socket's to cmd (what strata-ctl gets). */
static bool same_as_ctl(struct hnode *n, int port, const char *path, const char *cmd)
{
	struct reply r;
	char err[256];
	bool same = false;

	if (request(n, port, "GET", path, BEARER, NULL, &r) != 200)
		return false;
	json_t *api = body_json(&r);
	json_t *ctl = admin_call(n->sock, cmd, NULL, 10, err, sizeof(err));
	same = api && ctl && json_equal(api, ctl);
	if (!same)
		fprintf(stderr, "\napi: %s\nctl: %s\n", r.body, ctl ? json_dumps(ctl, 0) : err);
	json_decref(api);
	json_decref(ctl);
	reply_free(&r);
	return same;
}

static void test_commands(void)
{
	struct reply r;

	/* data_age_s may tick between the two calls: the same answer within a few tries. */
	bool same = false;
	for (int i = 0; i < 3 && !same; i++)
		same = same_as_ctl(&master, master_http, "/api/v1/report/endpoints",
				   "report.endpoints");
	CU_ASSERT_TRUE(same);

	CU_ASSERT_EQUAL(request(&slave, slave_http, "POST", "/api/v1/policy.create", BEARER,
				"{\"name\": \"web\", \"settings\": {\"heartbeat\": 30}}", &r),
			200);
	json_t *o = body_json(&r);
	CU_ASSERT_TRUE(json_is_true(json_object_get(o, "ok")));
	json_decref(o);
	reply_free(&r);
	CU_ASSERT_TRUE(same_as_ctl(&slave, slave_http, "/api/v1/policy/list", "policy.list"));
	CU_ASSERT_TRUE(same_as_ctl(&slave, slave_http, "/api/v1/endpoint.list", "endpoint.list"));

	/* A command's own error is the ctl's error, with 400. */
	CU_ASSERT_EQUAL(
	    request(&master, master_http, "POST", "/api/v1/slave.add", BEARER, "{}", &r), 400);
	CU_ASSERT_PTR_NOT_NULL(r.body && strstr(r.body, "slave add: NAME is required"));
	reply_free(&r);
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/api/v1/nothing", BEARER, NULL, &r),
			404);
	reply_free(&r);
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/api/v1/slave.add", BEARER, NULL, &r),
			405);
	CU_ASSERT_PTR_NOT_NULL(r.head && strstr(r.head, "Allow: POST"));
	reply_free(&r);
	CU_ASSERT_EQUAL(
	    request(&master, master_http, "POST", "/api/v1/slave.list", BEARER, NULL, &r), 405);
	reply_free(&r);
	CU_ASSERT_EQUAL(
	    request(&master, master_http, "POST", "/api/v1/slave.add", BEARER, "{\"name\": ", &r),
	    400);
	CU_ASSERT_PTR_NOT_NULL(r.body && strstr(r.body, "body is not valid JSON"));
	reply_free(&r);
	CU_ASSERT_EQUAL(
	    request(&master, master_http, "POST", "/api/v1/slave.add", BEARER, "[1]", &r), 400);
	CU_ASSERT_PTR_NOT_NULL(r.body && strstr(r.body, "must be a JSON object"));
	reply_free(&r);
	CU_ASSERT_EQUAL(
	    request(&master, master_http, "GET", "/api/v1/slave.list?a=1&a=2", BEARER, NULL, &r),
	    400);
	reply_free(&r);
}

/* Every command strata-ctl sends is a resource of one daemon at least:
 * a command left out of a daemon's table would answer 404 everywhere. */
static void test_every_command_is_a_resource(void)
{
	for (const struct ctl_command *c = ctl_commands(); c->words; c++) {
		if (strncmp(c->cmd, "local:", 6) == 0)
			continue;
		char path[128];
		struct reply r;
		snprintf(path, sizeof(path), "/api/v1/%s", c->cmd);
		int on_master = request(&master, master_http, "GET", path, BEARER, NULL, &r);
		reply_free(&r);
		int on_slave = request(&slave, slave_http, "GET", path, BEARER, NULL, &r);
		reply_free(&r);
		if (on_master == 404 && on_slave == 404)
			fprintf(stderr, "\n%s: no daemon serves it\n", c->cmd);
		CU_ASSERT(on_master > 0 && on_slave > 0);
		CU_ASSERT(on_master != 404 || on_slave != 404);
	}
	/* The reports across slaves answer with the ctl's result. */
	bool same = false;
	for (int i = 0; i < 3 && !same; i++)
		same = same_as_ctl(&master, master_http, "/api/v1/report/sync", "report.sync") &&
		       same_as_ctl(&master, master_http, "/api/v1/report/tasks", "report.tasks") &&
		       same_as_ctl(&master, master_http, "/api/v1/license/list", "license.list");
	CU_ASSERT_TRUE(same);
}

static void test_bad_input(void)
{
	struct reply r;
	char head[512];

	/* Not HTTP at all. */
	SSL *ssl = connect_tls(&master, master_http, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	int st = exchange(ssl, "\x01\x02garbage\r\n\r\n", 13, &r);
	CU_ASSERT_NOT_EQUAL(st, 200);
	reply_free(&r);

	/* A body announced beyond max-body (1024 here) is refused before it is read. */
	ssl = connect_tls(&master, master_http, NULL, NULL);
	CU_ASSERT_PTR_NOT_NULL_FATAL(ssl);
	int n = snprintf(head, sizeof(head),
			 "POST /api/v1/slave.add HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n"
			 "Content-Length: 100000\r\n\r\n",
			 BEARER);
	CU_ASSERT_EQUAL(exchange(ssl, head, (size_t)n, &r), 413);
	reply_free(&r);

	/* A body just above the limit, sent whole. */
	char *big = malloc(2048);
	memset(big, ' ', 2047);
	big[2047] = '\0';
	big[0] = '{';
	big[2046] = '}';
	st = request(&master, master_http, "POST", "/api/v1/slave.add", BEARER, big, &r);
	CU_ASSERT(st == 413 || st == 0 || st == -1);
	reply_free(&r);
	free(big);

	/* Plain HTTP on the TLS port gets nothing useful. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)master_http) };
	struct timeval tv = { .tv_sec = 10 };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	CU_ASSERT_EQUAL_FATAL(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	const char plain[] = "GET /livez HTTP/1.1\r\nHost: x\r\n\r\n";
	CU_ASSERT_EQUAL(write(fd, plain, sizeof(plain) - 1), (ssize_t)(sizeof(plain) - 1));
	char buf[64] = "";
	ssize_t got = read(fd, buf, sizeof(buf) - 1);
	CU_ASSERT(got <= 0 || strncmp(buf, "HTTP/1.1 200", 12) != 0);
	close(fd);

	/* Still serving. */
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/livez", NULL, NULL, &r), 200);
	reply_free(&r);
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/api/v1/status", BEARER, NULL, &r),
			200);
	reply_free(&r);
	CU_ASSERT_EQUAL(hp_ctl(&master, NULL, "status", NULL), 0);
}

static void test_client_cert(void)
{
	struct reply r;

	CU_ASSERT_EQUAL(
	    request_as(&slave, slave_http, "GET", "/metrics", NULL, NULL, cert_path, key_path, &r),
	    200);
	reply_free(&r);
	CU_ASSERT_EQUAL(request_as(&slave, slave_http, "GET", "/api/v1/status", NULL, NULL,
				   cert_path, key_path, &r),
			200);
	CU_ASSERT_PTR_NOT_NULL(r.body && strstr(r.body, "\"role\":\"slave\""));
	reply_free(&r);
	CU_ASSERT_TRUE(hp_wait_log(&slave, "status from http 127.0.0.1", 5));
	CU_ASSERT_TRUE(hp_log_contains(&slave, "(cert monitoring)"));
	/* A certificate from another CA never gets a reply. */
	CU_ASSERT_NOT_EQUAL(request_as(&slave, slave_http, "GET", "/metrics", NULL, NULL,
				       other_cert, other_key, &r),
			    200);
	reply_free(&r);
	/* The master has no client-ca: a certificate alone is not enough there. */
	CU_ASSERT_EQUAL(request_as(&master, master_http, "GET", "/metrics", NULL, NULL, cert_path,
				   key_path, &r),
			401);
	reply_free(&r);
	CU_ASSERT_EQUAL(request(&slave, slave_http, "GET", "/livez", NULL, NULL, &r), 200);
	reply_free(&r);
}

/* One statement as the cluster's superuser; arg is its $1 (NULL: none). */
static int exec_admin_sql(const char *sql, const char *arg)
{
	char *ci = hpg_conninfo("postgres");
	PGconn *c = PQconnectdb(ci);
	free(ci);
	const char *p[] = { arg };
	PGresult *res = PQexecParams(c, sql, arg ? 1 : 0, NULL, arg ? p : NULL, NULL, NULL, 0);
	int ok = PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK;
	if (!ok)
		fprintf(stderr, "sql: %s", PQerrorMessage(c));
	PQclear(res);
	PQfinish(c);
	return ok ? 0 : -1;
}

static void test_readyz_not_ready(void)
{
	struct reply r;
	char sql[512];

	/* The schema is not the one this binary expects. */
	PGconn *c = hp_db(&slave);
	CU_ASSERT_PTR_NOT_NULL_FATAL(c);
	PQclear(PQexec(c, "UPDATE schema_version SET version = version + 1000 "
			  "WHERE version = (SELECT max(version) FROM schema_version)"));
	CU_ASSERT_EQUAL(request(&slave, slave_http, "GET", "/readyz", NULL, NULL, &r), 503);
	json_t *o = body_json(&r);
	CU_ASSERT_STRING_EQUAL(json_string_value(json_object_get(o, "status")), "not ready");
	CU_ASSERT_STRING_EQUAL(
	    json_string_value(json_array_get(json_object_get(o, "not_ready"), 0)), "schema");
	json_decref(o);
	reply_free(&r);
	PQclear(PQexec(c, "UPDATE schema_version SET version = version - 1000 "
			  "WHERE version > 1000"));
	PQfinish(c);
	CU_ASSERT_EQUAL(request(&slave, slave_http, "GET", "/readyz", NULL, NULL, &r), 200);
	reply_free(&r);

	/* The database refuses the daemon: its connection is cut and no new one is allowed. */
	snprintf(sql, sizeof(sql), "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS false", master.dbname);
	CU_ASSERT_EQUAL_FATAL(exec_admin_sql(sql, NULL), 0);
	CU_ASSERT_EQUAL(exec_admin_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
				       "WHERE datname = $1",
				       master.dbname),
			0);
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/readyz", NULL, NULL, &r), 503);
	CU_ASSERT_PTR_NOT_NULL(r.body && strstr(r.body, "\"database\""));
	reply_free(&r);
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/livez", NULL, NULL, &r), 200);
	reply_free(&r);
	/* A scrape still answers, saying it is incomplete. */
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/metrics", BEARER, NULL, &r), 200);
	CU_ASSERT_EQUAL(sample(r.body, "strata_metrics_complete"), 0);
	reply_free(&r);
	snprintf(sql, sizeof(sql), "ALTER DATABASE \"%s\" ALLOW_CONNECTIONS true", master.dbname);
	CU_ASSERT_EQUAL_FATAL(exec_admin_sql(sql, NULL), 0);
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/readyz", NULL, NULL, &r), 200);
	reply_free(&r);
}

/* A token file others may read stops the API, not the daemon. */
static void test_token_file_refused(void)
{
	struct reply r;

	CU_ASSERT_EQUAL_FATAL(hp_stop(&master), 0);
	CU_ASSERT_EQUAL_FATAL(write_token(0644), 0);
	CU_ASSERT_EQUAL_FATAL(hp_start(&master), 0);
	CU_ASSERT_TRUE(hp_wait_log(&master, "http: API not started: token file", 5));
	CU_ASSERT_TRUE(hp_log_contains(&master, "accessible by group or others (mode 0644)"));
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/livez", NULL, NULL, &r), -1);
	reply_free(&r);
	CU_ASSERT_EQUAL(hp_ctl(&master, NULL, "status", NULL), 0);

	CU_ASSERT_EQUAL_FATAL(hp_stop(&master), 0);
	CU_ASSERT_EQUAL_FATAL(write_token(0600), 0);
	CU_ASSERT_EQUAL_FATAL(hp_start(&master), 0);
	CU_ASSERT_EQUAL(request(&master, master_http, "GET", "/livez", NULL, NULL, &r), 200);
	reply_free(&r);
}

/* Both daemons leave cleanly after all of the above (a leak or a sanitizer report fails). */
static void test_clean_stop(void)
{
	ht_close(agent_ssl);
	agent_ssl = NULL;
	CU_ASSERT_EQUAL(hp_stop(&slave), 0);
	CU_ASSERT_EQUAL(hp_stop(&master), 0);
	CU_ASSERT_FALSE(hp_log_contains(&slave, "Sanitizer"));
	CU_ASSERT_FALSE(hp_log_contains(&master, "Sanitizer"));
	CU_ASSERT_FALSE(hp_log_contains(&master, "runtime error:"));
}

int main(void)
{
	if (CU_initialize_registry() != CUE_SUCCESS)
		return 1;
	CU_pSuite s = CU_add_suite("http api", suite_init, suite_clean);
	CU_add_test(s, "livez and readyz", test_probes);
	CU_add_test(s, "401 without or with a wrong token", test_auth);
	CU_add_test(s, "slave metrics after agents enrolled", test_slave_metrics);
	CU_add_test(s, "master metrics after a sync", test_master_metrics);
	CU_add_test(s, "commands answer as strata-ctl's socket", test_commands);
	CU_add_test(s, "every ctl command is an API resource", test_every_command_is_a_resource);
	CU_add_test(s, "bad input, daemon keeps serving", test_bad_input);
	CU_add_test(s, "client certificates", test_client_cert);
	CU_add_test(s, "readyz 503: schema and database", test_readyz_not_ready);
	CU_add_test(s, "group-readable token file", test_token_file_refused);
	CU_add_test(s, "clean stop", test_clean_stop);
	return hp_run_suite();
}
