/*
 * harness_agent: a small agent written with OpenSSL for the push server's
 * tests. It enrols with a token, proves its key on a pinned TLS session,
 * and sends and reads frames the real strata-agent would (or would not)
 * send. Blocking sockets with a 5 s receive timeout.
 */
#ifndef STRATA_HARNESS_AGENT_H
#define STRATA_HARNESS_AGENT_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#include "harness_proc.h"

struct hagent {
	EVP_PKEY *key;
	char pub[65];	  /* Ed25519 public key, hex */
	char id[65];	  /* endpoint uid after enrolment */
	const char *mode; /* "push" unless set before ha_auth */
};

/* A new agent token from strata-ctl agent-token create --group group, malloc'd; NULL on failure. */
char *ha_make_token(struct hnode *n, const char *group);

/*
 * Enrols the real strata-agent with its state in dir at node n's push port
 * (mode: NULL for push, or "poll"); the agent's exit status, its output
 * printed when it failed.
 */
int ha_agent_enrol(struct hnode *n, const char *dir, const char *token, const char *hostname,
		   const char *mode);

/* TCP + TLS to the node's push port, the chain checked against the token's pin. */
SSL *ha_connect_pinned(struct hnode *n, const char *token);

/* Sends o (reference stolen) as one frame; 0 on success. */
int ha_send_json(SSL *ssl, uint16_t type, json_t *o);
/* Next frame as JSON; *type 0 when the connection closed or timed out. */
json_t *ha_recv_json(SSL *ssl, uint16_t *type);
/* True when the next frame is ERROR with this code and the connection then closes. */
bool ha_expect_error(SSL *ssl, const char *code);

/* A fresh key; false on failure. Free a->key with EVP_PKEY_free. */
bool ha_new(struct hagent *a);
/* The A_ENROL payload for this agent and token (mode push). */
json_t *ha_enrol_msg(struct hagent *a, const char *token);
/* Enrols; true with a->id set. */
bool ha_enrol(struct hnode *n, struct hagent *a, const char *token);
/* The A_AUTH payload with the key proof bound to this session; NULL on failure. */
json_t *ha_auth_msg(SSL *ssl, struct hagent *a);
/*
 * Connects and authenticates; the SSL after A_AUTH_OK, or NULL.
 * *heartbeat (may be NULL) gets the interval the server announced.
 */
SSL *ha_auth(struct hnode *n, struct hagent *a, const char *token, int *heartbeat);

#endif
