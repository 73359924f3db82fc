#include "enrol.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agentproto.h"
#include "chan.h"
#include "conn.h"
#include "log.h"
#include "proto.h"
#include "state.h"
#include "tasks.h"
#include "tls.h"

struct enrol {
	struct event_base *base;
	const struct aenrol_opts *o;
	struct enrol_token tok;
	char hostname[254];
	EVP_PKEY *key;
	bool done, ok;
	char err[1024];
};

static void finish(struct enrol *e, bool ok, const char *msg)
{
	if (e->done)
		return;
	e->done = true;
	e->ok = ok;
	if (msg)
		snprintf(e->err, sizeof(e->err), "%s", msg);
}

static void on_connected(struct chan *ch, void *arg)
{
	struct enrol *e = arg;
	char err[1024], pub[65], os[256];
	X509 *ca = NULL;
	if (tls_check_pin(chan_ssl(ch), e->tok.pin, &ca, err, sizeof(err)) != 0) {
		finish(e, false, err);
		chan_close(ch, "CA pin mismatch");
		return;
	}
	X509_free(ca);
	if (agentproto_pubkey_hex(e->key, pub) != 0) {
		finish(e, false, "cannot encode the agent's public key");
		chan_close(ch, "key");
		return;
	}
	tasks_os_name(os, sizeof(os));
	json_t *m = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s}", "proto", AGENT_PROTO_VERSION,
			      "token", e->o->token, "key", pub, "hostname", e->hostname, "os", os,
			      "agent_version", STRATA_VERSION, "mode", e->o->mode);
	chan_send_json(ch, A_ENROL, m);
	json_decref(m);
}

static void on_enrol_ok(struct enrol *e, json_t *o)
{
	struct amsg_enrol_ok m;
	char err[1024], pin[TLS_PIN_HEX_LEN + 1];
	if (agentproto_decode_enrol_ok(o, &m, err, sizeof(err)) != 0) {
		finish(e, false, err);
		return;
	}
	X509 *ca = tls_cert_from_pem(m.ca, err, sizeof(err));
	if (!ca) {
		finish(e, false, err);
		return;
	}
	tls_cert_pin(ca, pin);
	X509_free(ca);
	/* The CA this agent will trust from now on must be the one the token vouched for. */
	if (strcmp(pin, e->tok.pin) != 0) {
		finish(e, false, "the CA in A_ENROL_OK does not match the token's pin");
		return;
	}
	struct astate_identity id = { .port = e->o->port };
	snprintf(id.agent_id, sizeof(id.agent_id), "%s", m.agent_id);
	snprintf(id.host, sizeof(id.host), "%s", e->o->host);
	snprintf(id.mode, sizeof(id.mode), "%s", e->o->mode);
	snprintf(id.hostname, sizeof(id.hostname), "%s", e->hostname);
	if (astate_save_identity(e->o->state_dir, &id, e->key, m.ca, err, sizeof(err)) != 0) {
		finish(e, false, err);
		return;
	}
	/* The push server the slave assigned at enrolment, when not itself. */
	if (m.push_address &&
	    astate_save_push(e->o->state_dir, m.push_address, m.push_port, err, sizeof(err)) != 0) {
		finish(e, false, err);
		return;
	}
	log_notice("agent: enrolled as %s with %s:%d%s%s", m.agent_id, e->o->host, e->o->port,
		   m.push_address ? "; assigned to push server " : "",
		   m.push_address ? m.push_address : "");
	finish(e, true, NULL);
}

static void on_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
		       void *arg)
{
	struct enrol *e = arg;
	char err[1024];
	if (!agentproto_allowed(AST_AGENT_WAIT, type) || type == A_AUTH_OK) {
		snprintf(err, sizeof(err), "unexpected %s from the server",
			 agentproto_msg_name(type));
		finish(e, false, err);
		chan_close(ch, err);
		return;
	}
	json_t *o = proto_parse_json(payload, len, err, sizeof(err));
	if (!o) {
		finish(e, false, err);
		chan_close(ch, err);
		return;
	}
	if (type == MSG_ERROR) {
		struct msg_error m;
		if (proto_decode_error(o, &m, err, sizeof(err)) == 0)
			snprintf(err, sizeof(err), "the server refused the enrolment: %s",
				 m.message);
		finish(e, false, err);
	} else {
		on_enrol_ok(e, o);
	}
	json_decref(o);
	chan_close(ch, "enrolment over");
}

static void on_close(struct chan *ch, const char *reason, void *arg)
{
	char msg[1024];
	snprintf(msg, sizeof(msg), "connection closed before enrolment completed: %s", reason);
	struct enrol *e = arg;
	finish(e, false, msg);
	/* Only here: the chan is freed right after this callback, never left behind. */
	event_base_loopexit(e->base, NULL);
}

static const struct chan_cbs enrol_cbs = {
	.on_message = on_message,
	.on_connected = on_connected,
	.on_close = on_close,
};

int aenrol_run(struct event_base *base, const struct aenrol_opts *o, char *err, size_t errlen)
{
	struct enrol e = { .base = base, .o = o };
	if (astate_enrolled(o->state_dir)) {
		snprintf(err, errlen, "already enrolled; remove %s to enrol again", o->state_dir);
		return -1;
	}
	if (tls_token_parse(o->token, &e.tok, err, errlen) != 0 ||
	    astate_prepare_dir(o->state_dir, err, errlen) != 0)
		return -1;
	if (o->hostname)
		snprintf(e.hostname, sizeof(e.hostname), "%s", o->hostname);
	else if (gethostname(e.hostname, sizeof(e.hostname) - 1) != 0 || !e.hostname[0])
		snprintf(e.hostname, sizeof(e.hostname), "localhost");
	if (!(e.key = tls_key_generate(err, errlen)))
		return -1;
	SSL_CTX *ctx = tls_client_ctx_pinned(err, errlen);
	if (!ctx) {
		EVP_PKEY_free(e.key);
		return -1;
	}
	log_info("agent: enrolling with %s:%d", o->host, o->port);
	struct chan *ch =
	    aconn_dial(base, ctx, o->host, o->port, false, &enrol_cbs, &e, e.err, sizeof(e.err));
	if (ch)
		event_base_dispatch(base);
	SSL_CTX_free(ctx);
	EVP_PKEY_free(e.key);
	if (!ch || !e.ok) {
		snprintf(err, errlen, "%s", e.err);
		return -1;
	}
	return 0;
}
