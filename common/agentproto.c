#include "agentproto.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#include "proto.h"
#include "tls.h"

static const struct {
	uint16_t type;
	const char *name;
} names[] = {
	{ MSG_ERROR, "ERROR" },		  { A_ENROL, "A_ENROL" },
	{ A_ENROL_OK, "A_ENROL_OK" },	  { A_AUTH, "A_AUTH" },
	{ A_AUTH_OK, "A_AUTH_OK" },	  { A_HEARTBEAT, "A_HEARTBEAT" },
	{ A_EVENT, "A_EVENT" },		  { A_EVENT_ACK, "A_EVENT_ACK" },
	{ A_COMMAND, "A_COMMAND" },	  { A_COMMAND_ACK, "A_COMMAND_ACK" },
	{ A_RESULT, "A_RESULT" },	  { A_RESULT_ACK, "A_RESULT_ACK" },
	{ A_POLICY_GET, "A_POLICY_GET" }, { A_POLICY, "A_POLICY" },
	{ A_BYE, "A_BYE" },		  { A_BYE_OK, "A_BYE_OK" },
	{ A_REDIRECT, "A_REDIRECT" },	  { A_DP_ENROL, "A_DP_ENROL" },
	{ A_DP_ENROL_OK, "A_DP_ENROL_OK" }, { A_DP_AUTH, "A_DP_AUTH" },
	{ A_DP_AUTH_OK, "A_DP_AUTH_OK" }, { A_DP_OPEN, "A_DP_OPEN" },
	{ A_DP_FRAME, "A_DP_FRAME" },	  { A_DP_CLOSE, "A_DP_CLOSE" },
	{ A_DP_LOAD, "A_DP_LOAD" },
};

const char *agentproto_msg_name(uint16_t type)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].type == type)
			return names[i].name;
	return "UNKNOWN";
}

bool agentproto_allowed(enum agent_state st, uint16_t type)
{
	if (type == MSG_ERROR)
		return true;
	switch (st) {
	case AST_SERVER_PREAUTH:
		return type == A_ENROL || type == A_AUTH || type == A_DP_ENROL || type == A_DP_AUTH;
	case AST_SERVER_AUTHED:
		return type == A_HEARTBEAT || type == A_EVENT || type == A_COMMAND_ACK ||
		       type == A_RESULT || type == A_POLICY_GET || type == A_BYE;
	case AST_AGENT_WAIT:
		return type == A_ENROL_OK || type == A_AUTH_OK || type == A_REDIRECT;
	case AST_AGENT_AUTHED:
		return type == A_EVENT_ACK || type == A_COMMAND || type == A_RESULT_ACK ||
		       type == A_POLICY || type == A_BYE_OK;
	case AST_DP_WAIT:
		return type == A_DP_ENROL_OK || type == A_DP_AUTH_OK;
	case AST_DP_LINK:
		return type == A_DP_OPEN || type == A_DP_FRAME || type == A_DP_CLOSE ||
		       type == A_DP_LOAD;
	}
	return false;
}

int agentproto_exporter(SSL *ssl, unsigned char out[AGENT_EXPORTER_LEN])
{
	static const char label[] = AGENT_EXPORTER_LABEL;
	return SSL_export_keying_material(ssl, out, AGENT_EXPORTER_LEN, label, sizeof(label) - 1,
					  NULL, 0, 0) == 1
		       ? 0
		       : -1;
}

void agentproto_to_hex(const unsigned char *in, size_t n, char *out)
{
	static const char hex[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = hex[in[i] >> 4];
		out[2 * i + 1] = hex[in[i] & 15];
	}
	out[2 * n] = '\0';
}

int agentproto_from_hex(const char *in, unsigned char *out, size_t n)
{
	if (strlen(in) != 2 * n)
		return -1;
	for (size_t i = 0; i < n; i++) {
		int v = 0;
		for (int k = 0; k < 2; k++) {
			char c = in[2 * i + (size_t)k];
			int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
			if (d < 0)
				return -1;
			v = v * 16 + d;
		}
		out[i] = (unsigned char)v;
	}
	return 0;
}

int agentproto_pubkey_hex(EVP_PKEY *key, char out[65])
{
	unsigned char raw[32];
	size_t len = sizeof(raw);
	if (EVP_PKEY_get_raw_public_key(key, raw, &len) != 1 || len != sizeof(raw))
		return -1;
	agentproto_to_hex(raw, len, out);
	return 0;
}

int agentproto_sign(SSL *ssl, EVP_PKEY *key, char sig_hex[129])
{
	unsigned char ekm[AGENT_EXPORTER_LEN], sig[64];
	size_t siglen = sizeof(sig);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -1;
	if (ctx && agentproto_exporter(ssl, ekm) == 0 &&
	    EVP_DigestSignInit(ctx, NULL, NULL, NULL, key) == 1 &&
	    EVP_DigestSign(ctx, sig, &siglen, ekm, sizeof(ekm)) == 1 && siglen == sizeof(sig)) {
		agentproto_to_hex(sig, siglen, sig_hex);
		rc = 0;
	}
	EVP_MD_CTX_free(ctx);
	return rc;
}

int agentproto_verify(SSL *ssl, const char *pubkey_hex, const char *sig_hex)
{
	unsigned char ekm[AGENT_EXPORTER_LEN];
	if (agentproto_exporter(ssl, ekm) != 0)
		return -1;
	return agentproto_verify_ekm(ekm, pubkey_hex, sig_hex);
}

int agentproto_verify_ekm(const unsigned char ekm[AGENT_EXPORTER_LEN], const char *pubkey_hex,
			  const char *sig_hex)
{
	unsigned char raw[32], sig[64];
	if (agentproto_from_hex(pubkey_hex, raw, sizeof(raw)) != 0 ||
	    agentproto_from_hex(sig_hex, sig, sizeof(sig)) != 0)
		return -1;
	EVP_PKEY *pub = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, raw, sizeof(raw));
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int rc = -1;
	if (pub && ctx && EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub) == 1 &&
	    EVP_DigestVerify(ctx, sig, sizeof(sig), ekm, AGENT_EXPORTER_LEN) == 1)
		rc = 0;
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(pub);
	return rc;
}

/* ---- decoders ---- */

static int unpack(const char *msg, json_t *o, char *err, size_t errlen, const char *fmt, ...)
{
	json_error_t e;
	va_list ap;
	if (!json_is_object(o)) {
		snprintf(err, errlen, "%s: payload is not a JSON object", msg);
		return -1;
	}
	va_start(ap, fmt);
	int rc = json_vunpack_ex(o, &e, JSON_STRICT, fmt, ap);
	va_end(ap);
	if (rc != 0)
		snprintf(err, errlen, "%s: %s", msg, e.text);
	return rc;
}

static int bad(char *err, size_t errlen, const char *msg, const char *member, const char *rule)
{
	snprintf(err, errlen, "%s: member '%s' %s", msg, member, rule);
	return -1;
}

static bool text_ok(const char *s, size_t max)
{
	size_t n = strlen(s);
	return n >= 1 && n <= max;
}

static bool hex_ok(const char *s, size_t len)
{
	return strlen(s) == len && strspn(s, "0123456789abcdef") == len;
}

static bool mode_ok(const char *s)
{
	return strcmp(s, "push") == 0 || strcmp(s, "poll") == 0;
}

int agentproto_decode_enrol(json_t *o, struct amsg_enrol *m, char *err, size_t errlen)
{
	if (unpack("A_ENROL", o, err, errlen, "{s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "proto",
		   &m->proto, "token", &m->token, "key", &m->key, "hostname", &m->hostname, "os",
		   &m->os, "agent_version", &m->agent_version, "mode", &m->mode) != 0)
		return -1;
	if (!text_ok(m->token, 200))
		return bad(err, errlen, "A_ENROL", "token", "must be 1 to 200 characters");
	if (!hex_ok(m->key, 64))
		return bad(err, errlen, "A_ENROL", "key", "must be 64 lowercase hex characters");
	if (!text_ok(m->hostname, 253))
		return bad(err, errlen, "A_ENROL", "hostname", "must be 1 to 253 characters");
	if (strlen(m->os) > 200 || strlen(m->agent_version) > 64)
		return bad(err, errlen, "A_ENROL", "os/agent_version", "is too long");
	if (!mode_ok(m->mode))
		return bad(err, errlen, "A_ENROL", "mode", "must be \"push\" or \"poll\"");
	return 0;
}

int agentproto_decode_enrol_ok(json_t *o, struct amsg_enrol_ok *m, char *err, size_t errlen)
{
	m->push_address = NULL;
	m->push_port = 0;
	if (unpack("A_ENROL_OK", o, err, errlen, "{s:s, s:s, s?{s:s, s:i}}", "agent_id",
		   &m->agent_id, "ca", &m->ca, "push", "address", &m->push_address, "port",
		   &m->push_port) != 0)
		return -1;
	if (m->push_address && !agentproto_host_ok(m->push_address))
		return bad(err, errlen, "A_ENROL_OK", "push.address", "must be a host name or address");
	if (m->push_address && (m->push_port < 1 || m->push_port > 65535))
		return bad(err, errlen, "A_ENROL_OK", "push.port", "must be 1 to 65535");
	if (!text_ok(m->agent_id, 64))
		return bad(err, errlen, "A_ENROL_OK", "agent_id", "must be 1 to 64 characters");
	if (!text_ok(m->ca, 16384))
		return bad(err, errlen, "A_ENROL_OK", "ca", "must be a PEM certificate");
	return 0;
}

int agentproto_decode_auth(json_t *o, struct amsg_auth *m, char *err, size_t errlen)
{
	if (unpack("A_AUTH", o, err, errlen, "{s:i, s:s, s:s, s:s}", "proto", &m->proto,
		   "agent_id", &m->agent_id, "sig", &m->sig, "mode", &m->mode) != 0)
		return -1;
	if (!text_ok(m->agent_id, 64))
		return bad(err, errlen, "A_AUTH", "agent_id", "must be 1 to 64 characters");
	if (!hex_ok(m->sig, 128))
		return bad(err, errlen, "A_AUTH", "sig", "must be 128 lowercase hex characters");
	if (!mode_ok(m->mode))
		return bad(err, errlen, "A_AUTH", "mode", "must be \"push\" or \"poll\"");
	return 0;
}

int agentproto_decode_auth_ok(json_t *o, struct amsg_auth_ok *m, char *err, size_t errlen)
{
	json_int_t pv;
	if (unpack("A_AUTH_OK", o, err, errlen, "{s:i, s:I}", "heartbeat", &m->heartbeat,
		   "policy_version", &pv) != 0)
		return -1;
	if (m->heartbeat < 1 || m->heartbeat > 86400)
		return bad(err, errlen, "A_AUTH_OK", "heartbeat", "must be 1 to 86400 seconds");
	m->policy_version = (int64_t)pv;
	return 0;
}

static bool severity_ok(const char *s)
{
	static const char *const sev[] = { "info", "low", "medium", "high", "critical" };
	for (size_t i = 0; i < sizeof(sev) / sizeof(sev[0]); i++)
		if (strcmp(s, sev[i]) == 0)
			return true;
	return false;
}

int agentproto_decode_event(json_t *o, struct amsg_event *m, char *err, size_t errlen)
{
	json_int_t seq;
	if (unpack("A_EVENT", o, err, errlen, "{s:I, s:s, s:s, s:s, s:o}", "seq", &seq, "kind",
		   &m->kind, "severity", &m->severity, "occurred_at", &m->occurred_at, "details",
		   &m->details) != 0)
		return -1;
	if (seq < 0)
		return bad(err, errlen, "A_EVENT", "seq", "must not be negative");
	if (!text_ok(m->kind, 64))
		return bad(err, errlen, "A_EVENT", "kind", "must be 1 to 64 characters");
	if (!severity_ok(m->severity))
		return bad(err, errlen, "A_EVENT", "severity",
			   "must be info, low, medium, high or critical");
	if (!text_ok(m->occurred_at, 40))
		return bad(err, errlen, "A_EVENT", "occurred_at", "must be an ISO 8601 time");
	if (!json_is_object(m->details))
		return bad(err, errlen, "A_EVENT", "details", "must be an object");
	m->seq = (int64_t)seq;
	return 0;
}

int agentproto_decode_command(json_t *o, struct amsg_command *m, char *err, size_t errlen)
{
	json_int_t id;
	if (unpack("A_COMMAND", o, err, errlen, "{s:I, s:s, s:o}", "id", &id, "kind", &m->kind,
		   "args", &m->args) != 0)
		return -1;
	if (strcmp(m->kind, "apply_policy") != 0 && strcmp(m->kind, "run_task") != 0 &&
	    strcmp(m->kind, "sync_now") != 0)
		return bad(err, errlen, "A_COMMAND", "kind",
			   "must be apply_policy, run_task or sync_now");
	if (!json_is_object(m->args))
		return bad(err, errlen, "A_COMMAND", "args", "must be an object");
	m->id = (int64_t)id;
	return 0;
}

int agentproto_decode_result(json_t *o, struct amsg_result *m, char *err, size_t errlen)
{
	json_int_t seq, task;
	if (unpack("A_RESULT", o, err, errlen, "{s:I, s:I, s:s, s:o}", "seq", &seq, "task_id",
		   &task, "status", &m->status, "result", &m->result) != 0)
		return -1;
	if (seq < 0 || task < 1)
		return bad(err, errlen, "A_RESULT", "seq/task_id", "is out of range");
	if (strcmp(m->status, "running") != 0 && strcmp(m->status, "succeeded") != 0 &&
	    strcmp(m->status, "failed") != 0)
		return bad(err, errlen, "A_RESULT", "status", "must be running, succeeded or failed");
	if (!json_is_object(m->result))
		return bad(err, errlen, "A_RESULT", "result", "must be an object");
	m->seq = (int64_t)seq;
	m->task_id = (int64_t)task;
	return 0;
}

int agentproto_decode_policy(json_t *o, struct amsg_policy *m, char *err, size_t errlen)
{
	json_int_t v;
	if (unpack("A_POLICY", o, err, errlen, "{s:I, s:o}", "version", &v, "settings",
		   &m->settings) != 0)
		return -1;
	if (v < 0 || !json_is_object(m->settings))
		return bad(err, errlen, "A_POLICY", "version/settings", "is out of range");
	m->version = (int64_t)v;
	return 0;
}

int agentproto_policy_heartbeat(json_t *settings, int *seconds, char *err, size_t errlen)
{
	json_t *v = json_object_get(settings, "heartbeat");
	if (!v)
		return 0;
	/* A JSON real such as 30.0 is refused too: the interval is whole seconds. */
	if (!json_is_integer(v) || json_integer_value(v) < AGENT_HEARTBEAT_MIN ||
	    json_integer_value(v) > AGENT_HEARTBEAT_MAX) {
		snprintf(err, errlen,
			 "\"heartbeat\" must be a whole number of seconds from %d to %d",
			 AGENT_HEARTBEAT_MIN, AGENT_HEARTBEAT_MAX);
		return -1;
	}
	*seconds = (int)json_integer_value(v);
	return 1;
}

int agentproto_decode_ack(json_t *o, const char *member, int64_t *value, char *err,
			  size_t errlen)
{
	json_int_t v;
	if (unpack("ack", o, err, errlen, "{s:I}", member, &v) != 0)
		return -1;
	if (v < 0)
		return bad(err, errlen, "ack", member, "must not be negative");
	*value = (int64_t)v;
	return 0;
}

bool agentproto_host_ok(const char *s)
{
	size_t n = strlen(s);
	return n >= 1 && n <= 253 &&
	       strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.:-") == n;
}

int agentproto_decode_redirect(json_t *o, struct amsg_redirect *m, char *err, size_t errlen)
{
	if (unpack("A_REDIRECT", o, err, errlen, "{s:s, s:i}", "address", &m->address, "port",
		   &m->port) != 0)
		return -1;
	if (!agentproto_host_ok(m->address))
		return bad(err, errlen, "A_REDIRECT", "address", "must be a host name or address");
	if (m->port < 1 || m->port > 65535)
		return bad(err, errlen, "A_REDIRECT", "port", "must be 1 to 65535");
	return 0;
}

int agentproto_decode_dp_enrol(json_t *o, struct amsg_dp_enrol *m, char *err, size_t errlen)
{
	if (unpack("A_DP_ENROL", o, err, errlen, "{s:i, s:s, s:s, s:s, s:s, s:i}", "proto",
		   &m->proto, "token", &m->token, "name", &m->name, "csr", &m->csr, "address",
		   &m->address, "port", &m->port) != 0)
		return -1;
	if (!text_ok(m->token, 200))
		return bad(err, errlen, "A_DP_ENROL", "token", "must be 1 to 200 characters");
	size_t n = strlen(m->name);
	if (n < 1 || n > 63 ||
	    strspn(m->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
		return bad(err, errlen, "A_DP_ENROL", "name",
			   "must be 1 to 63 of A-Z a-z 0-9 . _ -");
	if (!text_ok(m->csr, 16384))
		return bad(err, errlen, "A_DP_ENROL", "csr", "must be a PEM certificate request");
	if (!agentproto_host_ok(m->address))
		return bad(err, errlen, "A_DP_ENROL", "address", "must be a host name or address");
	if (m->port < 1 || m->port > 65535)
		return bad(err, errlen, "A_DP_ENROL", "port", "must be 1 to 65535");
	return 0;
}

int agentproto_decode_dp_enrol_ok(json_t *o, struct amsg_dp_enrol_ok *m, char *err,
				  size_t errlen)
{
	json_int_t id;
	if (unpack("A_DP_ENROL_OK", o, err, errlen, "{s:I, s:s, s:s}", "dp_id", &id, "cert",
		   &m->cert, "ca", &m->ca) != 0)
		return -1;
	if (id < 1)
		return bad(err, errlen, "A_DP_ENROL_OK", "dp_id", "must be positive");
	if (!text_ok(m->cert, 16384) || !text_ok(m->ca, 16384))
		return bad(err, errlen, "A_DP_ENROL_OK", "cert/ca", "must be PEM certificates");
	m->dp_id = (int64_t)id;
	return 0;
}

int agentproto_decode_dp_auth(json_t *o, struct amsg_dp_auth *m, char *err, size_t errlen)
{
	json_int_t id;
	if (unpack("A_DP_AUTH", o, err, errlen, "{s:i, s:I, s:s}", "proto", &m->proto, "dp_id",
		   &id, "sig", &m->sig) != 0)
		return -1;
	if (id < 1)
		return bad(err, errlen, "A_DP_AUTH", "dp_id", "must be positive");
	if (!hex_ok(m->sig, 128))
		return bad(err, errlen, "A_DP_AUTH", "sig", "must be 128 lowercase hex characters");
	m->dp_id = (int64_t)id;
	return 0;
}

int agentproto_decode_dp_open(json_t *o, struct amsg_dp_open *m, char *err, size_t errlen)
{
	json_int_t vid;
	const char *ekm;
	if (unpack("A_DP_OPEN", o, err, errlen, "{s:I, s:s, s:s}", "vid", &vid, "address",
		   &m->address, "ekm", &ekm) != 0)
		return -1;
	if (vid < 1)
		return bad(err, errlen, "A_DP_OPEN", "vid", "must be positive");
	if (!text_ok(m->address, 45))
		return bad(err, errlen, "A_DP_OPEN", "address", "must be 1 to 45 characters");
	if (agentproto_from_hex(ekm, m->ekm, AGENT_EXPORTER_LEN) != 0)
		return bad(err, errlen, "A_DP_OPEN", "ekm", "must be 64 lowercase hex characters");
	m->vid = (uint64_t)vid;
	return 0;
}

int agentproto_decode_dp_close(json_t *o, struct amsg_dp_close *m, char *err, size_t errlen)
{
	json_int_t vid;
	if (unpack("A_DP_CLOSE", o, err, errlen, "{s:I, s:s}", "vid", &vid, "reason",
		   &m->reason) != 0)
		return -1;
	if (vid < 1)
		return bad(err, errlen, "A_DP_CLOSE", "vid", "must be positive");
	if (strlen(m->reason) > 512)
		return bad(err, errlen, "A_DP_CLOSE", "reason", "must be at most 512 characters");
	m->vid = (uint64_t)vid;
	return 0;
}

int agentproto_decode_count(json_t *o, const char *msg, const char *member, int64_t max,
			    int64_t *value, char *err, size_t errlen)
{
	json_int_t v;
	if (unpack(msg, o, err, errlen, "{s:I}", member, &v) != 0)
		return -1;
	if (v < 0 || v > max) {
		snprintf(err, errlen, "%s: member '%s' must be 0 to %lld", msg, member,
			 (long long)max);
		return -1;
	}
	*value = (int64_t)v;
	return 0;
}

void agentproto_dp_frame_hdr(uint8_t hdr[DP_FRAME_HDR], uint64_t vid, uint16_t type)
{
	for (int i = 0; i < 8; i++)
		hdr[i] = (uint8_t)(vid >> (56 - 8 * i));
	hdr[8] = (uint8_t)(type >> 8);
	hdr[9] = (uint8_t)type;
}

int agentproto_dp_frame_split(const uint8_t *payload, size_t len, uint64_t *vid, uint16_t *type)
{
	if (len < DP_FRAME_HDR)
		return -1;
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | payload[i];
	*vid = v;
	*type = (uint16_t)(payload[8] << 8 | payload[9]);
	return 0;
}
