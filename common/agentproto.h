/*
 * agentproto: messages of the agent channel (the push server's port,
 * default 7074), in the same frames as the sync channel (frame.h, chan.h)
 * and with the same ERROR message (type 1, proto.h).
 *
 * An agent connects with TLS 1.3 and no client certificate. It either
 * enrols (A_ENROL with a token that pins the slave's agent CA) or proves
 * the key it registered at enrolment (A_AUTH: an Ed25519 signature over
 * this TLS session's exported keying material, so a captured exchange
 * cannot be replayed on another session). Nothing else is accepted before
 * that. Frames are limited to frame-max-preauth bytes until A_AUTH_OK.
 *
 * Decoders reject unknown and missing members, wrong types and values out
 * of range, and name the member; strings point into the json_t.
 */
#ifndef STRATA_AGENTPROTO_H
#define STRATA_AGENTPROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/ssl.h>

#define AGENT_PROTO_VERSION 1

enum agent_msg {
	A_ENROL = 100,	     /* agent -> server, pre-auth: {proto, token, key, hostname, os, agent_version, mode} */
	A_ENROL_OK = 101,    /* server -> agent: {agent_id, ca, push?: {address, port}} then closes */
	A_AUTH = 102,	     /* agent -> server, pre-auth: {proto, agent_id, sig, mode} */
	A_AUTH_OK = 103,     /* server -> agent: {heartbeat, policy_version} */
	A_HEARTBEAT = 110,   /* agent -> server: {} */
	A_EVENT = 112,	     /* agent -> server: {seq, kind, severity, occurred_at, details} */
	A_EVENT_ACK = 113,   /* server -> agent: {seq} (stored; the agent may forget it) */
	A_COMMAND = 120,     /* server -> agent: {id, kind, args} */
	A_COMMAND_ACK = 121, /* agent -> server: {id} */
	A_RESULT = 122,	     /* agent -> server: {seq, task_id, status, result} */
	A_RESULT_ACK = 123,  /* server -> agent: {seq} */
	A_POLICY_GET = 124,  /* agent -> server: {} */
	A_POLICY = 125,	     /* server -> agent: {version, settings} */
	A_BYE = 126,	     /* agent -> server (poll mode: nothing more to send): {} */
	A_BYE_OK = 127,	     /* server -> agent: {} (every pending command was sent) */
	A_REDIRECT = 104,    /* server -> agent, instead of A_AUTH_OK: {address, port} then closes */

	/* Distribution points (see below): a push server of its own that
	 * relays its agents' frames to the slave over one link. */
	A_DP_ENROL = 130,    /* dp -> slave, pre-auth: {proto, token, name, csr, address, port} */
	A_DP_ENROL_OK = 131, /* slave -> dp: {dp_id, cert, ca} then the slave closes */
	A_DP_AUTH = 132,     /* dp -> slave, pre-auth: {proto, dp_id, sig} */
	A_DP_AUTH_OK = 133,  /* slave -> dp: {heartbeat} */
	A_DP_OPEN = 134,     /* dp -> slave: {vid, address, ekm} an agent connected */
	A_DP_FRAME = 135,    /* both ways, binary: vid (8 bytes BE), type (2 bytes BE), payload */
	A_DP_CLOSE = 136,    /* both ways: {vid, reason} that agent connection ended / must end */
	A_DP_LOAD = 137,     /* dp -> slave every 5 s, and the answer: {connections} */
};

/*
 * A distribution point enrols like an agent (A_DP_ENROL with a token made
 * by "strata-ctl dp-token create", sending a CSR for the certificate of
 * its own push port, issued by the slave's agent CA for the address
 * agents use) and proves its key on each link like an agent (A_DP_AUTH:
 * Ed25519 over the link's exported keying material). On the link, every
 * agent connection it accepts is a virtual connection numbered vid:
 * A_DP_OPEN carries the agent's address and the exported keying material
 * of the agent's own TLS session, which the agent's A_AUTH signs, so the
 * slave checks the agent's proof itself; the agent's frames travel in
 * A_DP_FRAME both ways. The slave trusts the distribution point to report
 * the address and keying material truly, as it trusts its own workers.
 */
#define DP_FRAME_HDR 10 /* vid (8) + type (2) ahead of an A_DP_FRAME's inner payload */
#define DP_LOAD_S 5	/* a point's A_DP_LOAD period; the slave answers each */
#define DP_SILENCE_S 30 /* a link silent this long is dead at either end */

/* Receiver states of the agent channel. */
enum agent_state {
	AST_SERVER_PREAUTH, /* server side before A_AUTH_OK: A_ENROL, A_AUTH */
	AST_SERVER_AUTHED,  /* server side: heartbeat, event, command ack, result, policy get, bye */
	AST_AGENT_WAIT,	    /* agent side, A_ENROL or A_AUTH sent: A_ENROL_OK, A_AUTH_OK, ERROR */
	AST_AGENT_AUTHED,   /* agent side: event/result acks, commands, policy, bye ok, ERROR */
	AST_DP_WAIT,	    /* dp side, A_DP_ENROL or A_DP_AUTH sent */
	AST_DP_LINK,	    /* both ends of an authenticated dp link */
};

const char *agentproto_msg_name(uint16_t type);
bool agentproto_allowed(enum agent_state st, uint16_t type);

/* Label of the TLS exporter the A_AUTH signature covers (32 bytes, no context). */
#define AGENT_EXPORTER_LABEL "EXPORTER-strata-agent-auth"
#define AGENT_EXPORTER_LEN 32
/* Fills out with this session's exported keying material; 0 or -1. */
int agentproto_exporter(SSL *ssl, unsigned char out[AGENT_EXPORTER_LEN]);
/* Signs the exporter with key; sig_hex gets 128 hex chars + NUL. */
int agentproto_sign(SSL *ssl, EVP_PKEY *key, char sig_hex[129]);
/* Verifies sig_hex over the exporter with the hex public key; 0 valid, -1 not. */
int agentproto_verify(SSL *ssl, const char *pubkey_hex, const char *sig_hex);
/* The same over keying material exported elsewhere (a distribution point's session). */
int agentproto_verify_ekm(const unsigned char ekm[AGENT_EXPORTER_LEN], const char *pubkey_hex,
			  const char *sig_hex);
/* Hex <-> bytes for keying material; from_hex: 0, or -1 unless exactly 2n lowercase hex. */
void agentproto_to_hex(const unsigned char *in, size_t n, char *out);
int agentproto_from_hex(const char *in, unsigned char *out, size_t n);
/* An Ed25519 public key as 64 hex chars + NUL. */
int agentproto_pubkey_hex(EVP_PKEY *key, char out[65]);

struct amsg_enrol {
	int proto;
	const char *token, *key, *hostname, *os, *agent_version, *mode;
};
struct amsg_enrol_ok {
	const char *agent_id, *ca;
	const char *push_address; /* NULL: connect to the slave itself */
	int push_port;
};
struct amsg_auth {
	int proto;
	const char *agent_id, *sig, *mode; /* mode: "push" or "poll" */
};
struct amsg_auth_ok {
	int heartbeat;
	int64_t policy_version;
};
struct amsg_event {
	int64_t seq;
	const char *kind, *severity, *occurred_at;
	json_t *details; /* an object */
};
struct amsg_command {
	int64_t id;
	const char *kind;
	json_t *args; /* an object */
};
struct amsg_result {
	int64_t seq, task_id;
	const char *status;
	json_t *result; /* an object */
};
struct amsg_policy {
	int64_t version;
	json_t *settings; /* an object */
};

struct amsg_redirect {
	const char *address;
	int port;
};
struct amsg_dp_enrol {
	int proto;
	const char *token, *name, *csr, *address;
	int port;
};
struct amsg_dp_enrol_ok {
	int64_t dp_id;
	const char *cert, *ca;
};
struct amsg_dp_auth {
	int proto;
	int64_t dp_id;
	const char *sig;
};
struct amsg_dp_open {
	uint64_t vid;
	const char *address;
	unsigned char ekm[AGENT_EXPORTER_LEN];
};
struct amsg_dp_close {
	uint64_t vid;
	const char *reason;
};

int agentproto_decode_redirect(json_t *o, struct amsg_redirect *m, char *err, size_t errlen);
int agentproto_decode_dp_enrol(json_t *o, struct amsg_dp_enrol *m, char *err, size_t errlen);
int agentproto_decode_dp_enrol_ok(json_t *o, struct amsg_dp_enrol_ok *m, char *err,
				  size_t errlen);
int agentproto_decode_dp_auth(json_t *o, struct amsg_dp_auth *m, char *err, size_t errlen);
int agentproto_decode_dp_open(json_t *o, struct amsg_dp_open *m, char *err, size_t errlen);
int agentproto_decode_dp_close(json_t *o, struct amsg_dp_close *m, char *err, size_t errlen);
/* {heartbeat} of A_DP_AUTH_OK and {connections} of A_DP_LOAD. */
int agentproto_decode_count(json_t *o, const char *msg, const char *member, int64_t max,
			    int64_t *value, char *err, size_t errlen);
/*
 * A_DP_FRAME: the header ahead of an inner frame (hdr gets DP_FRAME_HDR
 * bytes) and its parse; split returns -1 when the payload is shorter
 * than the header.
 */
void agentproto_dp_frame_hdr(uint8_t hdr[DP_FRAME_HDR], uint64_t vid, uint16_t type);
int agentproto_dp_frame_split(const uint8_t *payload, size_t len, uint64_t *vid, uint16_t *type);
/* A host name or address fit for a certificate SAN and a connect: [A-Za-z0-9.:-], 1..253. */
bool agentproto_host_ok(const char *s);

int agentproto_decode_enrol(json_t *o, struct amsg_enrol *m, char *err, size_t errlen);
int agentproto_decode_enrol_ok(json_t *o, struct amsg_enrol_ok *m, char *err, size_t errlen);
int agentproto_decode_auth(json_t *o, struct amsg_auth *m, char *err, size_t errlen);
int agentproto_decode_auth_ok(json_t *o, struct amsg_auth_ok *m, char *err, size_t errlen);
int agentproto_decode_event(json_t *o, struct amsg_event *m, char *err, size_t errlen);
int agentproto_decode_command(json_t *o, struct amsg_command *m, char *err, size_t errlen);
int agentproto_decode_result(json_t *o, struct amsg_result *m, char *err, size_t errlen);
int agentproto_decode_policy(json_t *o, struct amsg_policy *m, char *err, size_t errlen);
/* {seq} and {id} acknowledgements. */
int agentproto_decode_ack(json_t *o, const char *member, int64_t *value, char *err, size_t errlen);

/* The bounds of a policy's "heartbeat" setting, those of <push heartbeat> too. */
#define AGENT_HEARTBEAT_MIN 5
#define AGENT_HEARTBEAT_MAX 86400
/*
 * The heartbeat interval a policy's settings ask for: 1 with *seconds
 * set; 0 when settings (an object, or NULL) have no "heartbeat"; -1 with
 * the reason in err when it is not a whole number of seconds from
 * AGENT_HEARTBEAT_MIN to AGENT_HEARTBEAT_MAX.
 */
int agentproto_policy_heartbeat(json_t *settings, int *seconds, char *err, size_t errlen);

#endif
