#include "harness_agent.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "agentproto.h"
#include "harness_tls.h"
#include "proto.h"
#include "tls.h"

char *ha_make_token(struct hnode *n, const char *group)
{
	char *out = NULL, *tok = NULL;
	if (hp_ctl(n, &out, "agent-token", "create", "--group", group, NULL) == 0) {
		char *p = strstr(out, "stk1.");
		if (p)
			tok = strndup(p, strcspn(p, " \t\r\n\",|"));
	}
	free(out);
	return tok;
}

int ha_agent_enrol(struct hnode *n, const char *dir, const char *token, const char *hostname,
		   const char *mode)
{
	char server[64], *out = NULL;
	snprintf(server, sizeof(server), "127.0.0.1:%d", n->push_port);
	int rc = hp_run(&out, HP_AGENT, "-s", dir, "enrol", "--server", server, "--token", token,
			"--hostname", hostname, "--mode", mode ? mode : "push", NULL);
	if (rc != 0)
		fprintf(stderr, "enrol %s: %s\n", hostname, out ? out : "");
	free(out);
	return rc;
}

SSL *ha_connect_pinned(struct hnode *n, const char *token)
{
	char err[512] = "";
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons((uint16_t)n->push_port) };
	struct timeval tv = { .tv_sec = 5 };
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return NULL;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		close(fd);
		return NULL;
	}
	SSL_CTX *ctx = tls_client_ctx_pinned(err, sizeof(err));
	SSL *ssl = ctx ? SSL_new(ctx) : NULL;
	SSL_CTX_free(ctx);
	X509 *ca = NULL;
	const char *pin = token + strlen(token) - TLS_PIN_HEX_LEN;
	if (!ssl || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1 ||
	    tls_check_pin(ssl, pin, &ca, err, sizeof(err)) != 0) {
		fprintf(stderr, "test agent: TLS to the push port failed: %s\n", err);
		SSL_free(ssl);
		close(fd);
		return NULL;
	}
	X509_free(ca);
	return ssl;
}

int ha_send_json(SSL *ssl, uint16_t type, json_t *o)
{
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	int rc = s ? ht_send_str(ssl, type, s) : -1;
	free(s);
	json_decref(o);
	return rc;
}

json_t *ha_recv_json(SSL *ssl, uint16_t *type)
{
	char *payload = NULL;
	size_t len;
	*type = 0;
	if (ht_recv(ssl, type, &payload, &len) != 0) {
		*type = 0;
		return NULL;
	}
	json_t *o = json_loads(payload, 0, NULL);
	free(payload);
	return o;
}

bool ha_expect_error(SSL *ssl, const char *code)
{
	uint16_t type;
	json_t *o = ha_recv_json(ssl, &type);
	const char *c = json_string_value(json_object_get(o, "code"));
	bool ok = type == MSG_ERROR && c && strcmp(c, code) == 0;
	if (!ok)
		fprintf(stderr, "expected ERROR %s, got type %u %s\n", code, type,
			c ? c : "(no code)");
	json_decref(o);
	return ok && ht_wait_closed(ssl, NULL);
}

bool ha_new(struct hagent *a)
{
	char err[256];
	memset(a, 0, sizeof(*a));
	a->mode = "push";
	a->key = tls_key_generate(err, sizeof(err));
	return a->key && agentproto_pubkey_hex(a->key, a->pub) == 0;
}

json_t *ha_enrol_msg(struct hagent *a, const char *token)
{
	return json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "proto", AGENT_PROTO_VERSION,
			 "token", token, "key", a->pub, "hostname", "host-test", "os", "linux",
			 "agent_version", "1.0.0", "mode", a->mode ? a->mode : "push");
}

bool ha_enrol(struct hnode *n, struct hagent *a, const char *token)
{
	uint16_t type;
	SSL *ssl = ha_connect_pinned(n, token);
	if (!ssl || ha_send_json(ssl, A_ENROL, ha_enrol_msg(a, token)) != 0) {
		ht_close(ssl);
		return false;
	}
	json_t *o = ha_recv_json(ssl, &type);
	struct amsg_enrol_ok m;
	char err[256];
	bool ok = type == A_ENROL_OK && agentproto_decode_enrol_ok(o, &m, err, sizeof(err)) == 0 &&
		  strstr(m.ca, "BEGIN CERTIFICATE");
	if (ok)
		snprintf(a->id, sizeof(a->id), "%s", m.agent_id);
	json_decref(o);
	ok = ok && ht_wait_closed(ssl, NULL);
	ht_close(ssl);
	return ok;
}

json_t *ha_auth_msg(SSL *ssl, struct hagent *a)
{
	char sig[129];
	if (agentproto_sign(ssl, a->key, sig) != 0)
		return NULL;
	return json_pack("{s:i, s:s, s:s, s:s}", "proto", AGENT_PROTO_VERSION, "agent_id", a->id,
			 "sig", sig, "mode", a->mode ? a->mode : "push");
}

SSL *ha_auth(struct hnode *n, struct hagent *a, const char *token, int *heartbeat)
{
	uint16_t type;
	SSL *ssl = ha_connect_pinned(n, token);
	if (!ssl || ha_send_json(ssl, A_AUTH, ha_auth_msg(ssl, a)) != 0) {
		ht_close(ssl);
		return NULL;
	}
	json_t *o = ha_recv_json(ssl, &type);
	struct amsg_auth_ok m;
	char err[256];
	bool ok = type == A_AUTH_OK && agentproto_decode_auth_ok(o, &m, err, sizeof(err)) == 0;
	json_decref(o);
	if (!ok) {
		fprintf(stderr, "A_AUTH answered with type %u\n", type);
		ht_close(ssl);
		return NULL;
	}
	if (heartbeat)
		*heartbeat = m.heartbeat;
	return ssl;
}
