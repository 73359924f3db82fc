/*
 * http: the daemons' HTTP API, libevent's evhttp over TLS 1.3.
 *
 * GET /livez and GET /readyz answer without authentication (probes);
 * everything else needs "Authorization: Bearer TOKEN" (the token-file's
 * content, compared in constant time) or a client certificate that the
 * client-ca signed for clientAuth. Unauthenticated requests get 401 and a
 * log line. GET /metrics is the Prometheus text format (metrics.h).
 * /api/v1/CMD runs the operator command CMD ("slave.list", also spelled
 * /api/v1/slave/list) through the admin socket's handler (admin.h
 * admin_dispatch) and answers the JSON strata-ctl gets: GET with query
 * parameters as args for read-only commands, POST with a JSON object body
 * for the others. Unknown resources are 404, a wrong method 405, bad JSON
 * or query 400, bodies above max-body 413 (evhttp), and reads and writes
 * of a request are bounded by timeout.
 *
 * The server uses the admin server it was given: free it with
 * http_free() after admin_server_free(), which answers the requests still
 * pending, and before the event base.
 */
#ifndef STRATA_HTTP_H
#define STRATA_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/x509.h>

#include "admin.h"
#include "cfg.h"

#define HTTP_TOKEN_MAX 4096

struct http_server;

struct http_hooks {
	/* Appends to not_ready (an array) the name of each part that is not ready. */
	void (*ready)(void *arg, json_t *not_ready);
	/* Appends the daemon's metric families to out; 0, or -1 with err. */
	int (*metrics)(void *arg, struct evbuffer *out, char *err, size_t errlen);
	void *arg;
	const struct admin_command *commands; /* ended by a NULL name */
	struct admin_server *admin;
	const char *role; /* "master" or "slave", for strata_build_info */
};

/*
 * Listens on cfg's http address and port with key and cert (chain_ca,
 * may be NULL, is sent in the chain so clients can verify against it).
 * NULL with err when the token file or client CA is unusable or the port
 * cannot be opened; the caller logs it and runs without the API.
 */
struct http_server *http_start(struct event_base *base, const struct cfg *cfg, EVP_PKEY *key,
			       X509 *cert, X509 *chain_ca, const struct http_hooks *hooks,
			       char *err, size_t errlen);
/* NULL is fine. */
void http_free(struct http_server *srv);

/* ---- pure parts, unit-tested ---- */

/*
 * Reads the bearer token from path: a regular file not accessible by
 * group or others, at most HTTP_TOKEN_MAX bytes, not empty once trailing
 * whitespace is dropped. Keeps only its SHA-256 in sha. 0 or -1 with err.
 */
__attribute__((warn_unused_result)) int http_token_load(const char *path, unsigned char sha[32],
							char *err, size_t errlen);
/* True when authorization is "Bearer T" with SHA-256(T) == sha (constant time). */
bool http_token_check(const unsigned char sha[32], const char *authorization);

enum http_route_kind {
	HTTP_ROUTE_LIVEZ,
	HTTP_ROUTE_READYZ,
	HTTP_ROUTE_METRICS,
	HTTP_ROUTE_COMMAND,
};

struct http_route {
	enum http_route_kind kind;
	int status;			 /* 0 when routed, else 404 or 405 */
	const struct admin_command *cmd; /* HTTP_ROUTE_COMMAND */
	const char *allow;		 /* the method to use, with 405 */
};

/* Maps a method and a path (without the query) to a route. */
void http_route(const struct admin_command *commands, enum evhttp_cmd_type method, const char *path,
		struct http_route *out);

/*
 * The args object of a GET: each query parameter as a member; "true" and
 * "false" become booleans, decimal integers numbers, anything else a
 * string. NULL with err on a malformed query or a repeated name.
 */
json_t *http_query_args(const char *query, char *err, size_t errlen);

#endif
