#include "http.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/keyvalq_struct.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "log.h"
#include "metrics.h"
#include "tls.h"

#define HTTP_MAX_HEADERS 16384
#define HTTP_API_PREFIX	 "/api/v1/"
#define HTTP_CMD_MAX	 64

/* Replies counted by status, for strata_http_requests_total. */
static const int http_codes[] = { 200, 400, 401, 404, 405, 500, 503 };
#define HTTP_NCODES (sizeof(http_codes) / sizeof(http_codes[0]))

struct http_server {
	struct evhttp *http;
	SSL_CTX *ctx;
	struct http_hooks hooks;
	bool have_token;
	bool have_client_ca;
	unsigned char token_sha[32];
	unsigned long long replies[HTTP_NCODES + 1]; /* the last: any other status */
	unsigned long long unauthorized;
	unsigned long long metrics_errors;
};

/* A command request waiting for the admin handler's reply. */
struct http_pending {
	struct http_server *srv;
	struct evhttp_request *req;
};

/* ---- pure parts ---- */

int http_token_load(const char *path, unsigned char sha[32], char *err, size_t errlen)
{
	char buf[HTTP_TOKEN_MAX + 1];
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);

	if (fd < 0) {
		snprintf(err, errlen, "token file %s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "token file %s: not a regular file", path);
		close(fd);
		return -1;
	}
	if (st.st_mode & 077) {
		snprintf(err, errlen,
			 "token file %s: accessible by group or others (mode %04o); "
			 "chmod 600 it",
			 path, (unsigned)(st.st_mode & 07777));
		close(fd);
		return -1;
	}
	size_t len = 0;
	for (;;) {
		ssize_t r = read(fd, buf + len, sizeof(buf) - len);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(err, errlen, "token file %s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > HTTP_TOKEN_MAX) {
			snprintf(err, errlen, "token file %s: longer than %d bytes", path,
				 HTTP_TOKEN_MAX);
			close(fd);
			return -1;
		}
	}
	close(fd);
	while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
			   buf[len - 1] == '\t'))
		len--;
	if (len == 0) {
		snprintf(err, errlen, "token file %s: empty", path);
		return -1;
	}
	SHA256((const unsigned char *)buf, len, sha);
	OPENSSL_cleanse(buf, sizeof(buf));
	return 0;
}

bool http_token_check(const unsigned char sha[32], const char *authorization)
{
	unsigned char got[32];

	if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
		return false;
	const char *tok = authorization + 7;
	while (*tok == ' ')
		tok++;
	size_t len = strlen(tok);
	while (len > 0 && tok[len - 1] == ' ')
		len--;
	if (len == 0)
		return false;
	/* Hashing first makes the comparison's time independent of the token's length too. */
	SHA256((const unsigned char *)tok, len, got);
	return CRYPTO_memcmp(got, sha, sizeof(got)) == 0;
}

static bool http_cmd_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '/';
}

void http_route(const struct admin_command *commands, enum evhttp_cmd_type method, const char *path,
		struct http_route *out)
{
	static const struct {
		const char *path;
		enum http_route_kind kind;
	} fixed[] = {
		{ "/livez", HTTP_ROUTE_LIVEZ },
		{ "/readyz", HTTP_ROUTE_READYZ },
		{ "/metrics", HTTP_ROUTE_METRICS },
	};

	memset(out, 0, sizeof(*out));
	out->status = 404;
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
		if (strcmp(path, fixed[i].path) != 0)
			continue;
		out->kind = fixed[i].kind;
		out->allow = "GET";
		out->status = method == EVHTTP_REQ_GET ? 0 : 405;
		return;
	}
	if (strncmp(path, HTTP_API_PREFIX, strlen(HTTP_API_PREFIX)) != 0)
		return;
	const char *res = path + strlen(HTTP_API_PREFIX);
	char name[HTTP_CMD_MAX];
	size_t n = strlen(res);
	if (n == 0 || n >= sizeof(name))
		return;
	for (size_t i = 0; i < n; i++) {
		if (!http_cmd_char(res[i]))
			return;
		name[i] = res[i] == '/' ? '.' : res[i];
	}
	name[n] = '\0';
	for (const struct admin_command *c = commands; c && c->name; c++) {
		if (strcmp(c->name, name) != 0)
			continue;
		out->kind = HTTP_ROUTE_COMMAND;
		out->cmd = c;
		out->allow = c->read_only ? "GET" : "POST";
		enum evhttp_cmd_type want = c->read_only ? EVHTTP_REQ_GET : EVHTTP_REQ_POST;
		out->status = method == want ? 0 : 405;
		return;
	}
}

/* A decimal integer that fits a json_int_t, with an optional '-'. */
static bool http_is_integer(const char *s, json_int_t *out)
{
	const char *p = s;
	char *end;

	if (*p == '-')
		p++;
	if (*p < '0' || *p > '9' || strlen(p) > 18)
		return false;
	for (const char *q = p; *q; q++)
		if (*q < '0' || *q > '9')
			return false;
	errno = 0;
	long long v = strtoll(s, &end, 10);
	if (errno || *end)
		return false;
	*out = (json_int_t)v;
	return true;
}

json_t *http_query_args(const char *query, char *err, size_t errlen)
{
	struct evkeyvalq params;
	struct evkeyval *kv;
	json_t *args = json_object();

	if (!args) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (!query || !*query)
		return args;
	TAILQ_INIT(&params);
	if (evhttp_parse_query_str(query, &params) != 0) {
		snprintf(err, errlen, "malformed query string");
		json_decref(args);
		return NULL;
	}
	TAILQ_FOREACH (kv, &params, next) {
		json_int_t iv;
		json_t *v;
		if (kv->key[0] == '\0') {
			snprintf(err, errlen, "query parameter with an empty name");
			goto fail;
		}
		if (json_object_get(args, kv->key)) {
			snprintf(err, errlen, "query parameter \"%.64s\" given twice", kv->key);
			goto fail;
		}
		if (strcmp(kv->value, "true") == 0)
			v = json_true();
		else if (strcmp(kv->value, "false") == 0)
			v = json_false();
		else if (http_is_integer(kv->value, &iv))
			v = json_integer(iv);
		else
			v = json_string(kv->value);
		if (!v) {
			snprintf(err, errlen, "query parameter \"%.64s\" is not valid UTF-8",
				 kv->key);
			goto fail;
		}
		if (json_object_set_new(args, kv->key, v) != 0) {
			snprintf(err, errlen, "query parameter \"%.64s\" is not valid UTF-8",
				 kv->key);
			goto fail;
		}
	}
	evhttp_clear_headers(&params);
	return args;
fail:
	evhttp_clear_headers(&params);
	json_decref(args);
	return NULL;
}

/* ---- the server ---- */

static void http_count(struct http_server *srv, int code)
{
	size_t i;
	for (i = 0; i < HTTP_NCODES && http_codes[i] != code; i++)
		;
	srv->replies[i]++;
}

static void http_send(struct http_server *srv, struct evhttp_request *req, int code,
		      const char *type, struct evbuffer *body)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);

	evhttp_add_header(h, "Content-Type", type);
	evhttp_add_header(h, "Cache-Control", "no-store");
	http_count(srv, code);
	evhttp_send_reply(req, code, NULL, body);
}

/* Sends o (stolen) as the JSON body. */
static void http_send_json(struct http_server *srv, struct evhttp_request *req, int code, json_t *o)
{
	struct evbuffer *body = evbuffer_new();
	char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;

	json_decref(o);
	if (!body || !text) {
		free(text);
		if (body)
			evbuffer_free(body);
		http_count(srv, 500);
		evhttp_send_error(req, 500, NULL);
		return;
	}
	evbuffer_add(body, text, strlen(text));
	evbuffer_add(body, "\n", 1);
	free(text);
	http_send(srv, req, code, "application/json", body);
	evbuffer_free(body);
}

static void http_send_error(struct http_server *srv, struct evhttp_request *req, int code,
			    const char *msg)
{
	json_t *o = json_pack("{s:b,s:s}", "ok", 0, "error", msg);
	if (!o)
		o = json_pack("{s:b,s:s}", "ok", 0, "error", "error text is not valid UTF-8");
	http_send_json(srv, req, code, o);
}

static void http_peer(struct evhttp_request *req, char *out, size_t outlen)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *addr = NULL;
	ev_uint16_t port = 0;

	if (evcon)
		evhttp_connection_get_peer(evcon, &addr, &port);
	snprintf(out, outlen, "%s:%u", addr ? addr : "?", (unsigned)port);
}

/* The path as it may be logged: no byte that could forge a log line. */
static void http_log_path(const char *path, char *out, size_t outlen)
{
	size_t i;
	for (i = 0; path[i] && i + 1 < outlen; i++)
		out[i] = (unsigned char)path[i] < 0x20 || path[i] == 0x7f ? '?' : path[i];
	out[i] = '\0';
}

static const char *http_method_name(enum evhttp_cmd_type m)
{
	switch (m) {
	case EVHTTP_REQ_GET:
		return "GET";
	case EVHTTP_REQ_POST:
		return "POST";
	case EVHTTP_REQ_HEAD:
		return "HEAD";
	case EVHTTP_REQ_PUT:
		return "PUT";
	case EVHTTP_REQ_DELETE:
		return "DELETE";
	case EVHTTP_REQ_PATCH:
		return "PATCH";
	case EVHTTP_REQ_OPTIONS:
		return "OPTIONS";
	default:
		return "other";
	}
}

/* The request's verified client certificate's CN, or false. */
static bool http_client_cert(struct evhttp_request *req, char *cn, size_t cnlen)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev = evcon ? evhttp_connection_get_bufferevent(evcon) : NULL;
	SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
	X509 *cert = ssl ? tls_peer_cert(ssl) : NULL;

	if (!cert)
		return false;
	if (tls_cert_common_name(cert, cn, cnlen) != 0)
		snprintf(cn, cnlen, "(no CN)");
	X509_free(cert);
	return true;
}

/* Who the request comes from ("token" or "cert CN"), or false with why not. */
static bool http_authenticate(struct http_server *srv, struct evhttp_request *req, char *who,
			      size_t wholen, const char **why)
{
	const char *auth =
	    evhttp_find_header(evhttp_request_get_input_headers(req), "Authorization");
	char cn[256];

	if (srv->have_client_ca && http_client_cert(req, cn, sizeof(cn))) {
		snprintf(who, wholen, "cert %s", cn);
		return true;
	}
	if (!auth) {
		*why = srv->have_client_ca ? "no token and no client certificate" : "no token";
		return false;
	}
	if (!srv->have_token || !http_token_check(srv->token_sha, auth)) {
		*why = "wrong token";
		return false;
	}
	snprintf(who, wholen, "token");
	return true;
}

static void http_readyz(struct http_server *srv, struct evhttp_request *req)
{
	json_t *not_ready = json_array();

	if (!not_ready) {
		http_send_error(srv, req, 500, "out of memory");
		return;
	}
	srv->hooks.ready(srv->hooks.arg, not_ready);
	if (json_array_size(not_ready) == 0) {
		json_decref(not_ready);
		http_send_json(srv, req, 200, json_pack("{s:s}", "status", "ready"));
		return;
	}
	http_send_json(srv, req, 503,
		       json_pack("{s:s,s:o}", "status", "not ready", "not_ready", not_ready));
}

static void http_metrics(struct http_server *srv, struct evhttp_request *req)
{
	struct evbuffer *out = evbuffer_new();
	char err[512] = "";

	if (!out) {
		http_send_error(srv, req, 500, "out of memory");
		return;
	}
	int rc = srv->hooks.metrics(srv->hooks.arg, out, err, sizeof(err));
	if (rc != 0) {
		srv->metrics_errors++;
		log_warnx("http: metrics incomplete: %s", err);
	}
	metrics_family(out, "strata_build_info", METRICS_GAUGE,
		       "Always 1; the labels name the daemon's role and version.");
	metrics_sample(out, "strata_build_info", 1, "role", srv->hooks.role, "version",
		       STRATA_VERSION, NULL);
	metrics_family(out, "strata_metrics_complete", METRICS_GAUGE,
		       "1 when this scrape read everything it reports, 0 when a query failed.");
	metrics_sample(out, "strata_metrics_complete", rc == 0 ? 1 : 0, NULL);
	metrics_family(out, "strata_metrics_errors_total", METRICS_COUNTER,
		       "Scrapes whose database queries failed since the daemon started.");
	metrics_sample(out, "strata_metrics_errors_total", (double)srv->metrics_errors, NULL);
	metrics_family(out, "strata_http_requests_total", METRICS_COUNTER,
		       "HTTP API replies since the daemon started, by status code.");
	for (size_t i = 0; i <= HTTP_NCODES; i++) {
		char code[16];
		if (i < HTTP_NCODES)
			snprintf(code, sizeof(code), "%d", http_codes[i]);
		else
			snprintf(code, sizeof(code), "other");
		/* This reply is counted once sent; it is not in its own numbers. */
		metrics_sample(out, "strata_http_requests_total", (double)srv->replies[i], "code",
			       code, NULL);
	}
	metrics_family(out, "strata_http_unauthorized_total", METRICS_COUNTER,
		       "HTTP API requests refused for missing or wrong credentials.");
	metrics_sample(out, "strata_http_unauthorized_total", (double)srv->unauthorized, NULL);
	http_send(srv, req, 200, "text/plain; version=0.0.4; charset=utf-8", out);
	evbuffer_free(out);
}

static void http_command_done(json_t *reply, void *arg)
{
	struct http_pending *p = arg;
	int code = json_is_true(json_object_get(reply, "ok")) ? 200 : 400;

	http_send_json(p->srv, p->req, code, json_incref(reply));
	free(p);
}

/* The POST body as an args object; NULL with err. */
static json_t *http_body_args(struct evhttp_request *req, char *err, size_t errlen)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	json_error_t jerr;

	if (len == 0)
		return json_object();
	const char *data = (const char *)evbuffer_pullup(in, -1);
	if (!data) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	json_t *args = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!args) {
		snprintf(err, errlen, "body is not valid JSON: %s (line %d, column %d)", jerr.text,
			 jerr.line, jerr.column);
		return NULL;
	}
	if (!json_is_object(args)) {
		json_decref(args);
		snprintf(err, errlen, "body must be a JSON object of the command's arguments");
		return NULL;
	}
	return args;
}

static void http_command(struct http_server *srv, struct evhttp_request *req,
			 const struct admin_command *cmd, const char *who, const char *peer)
{
	char err[512];
	json_t *args;

	if (cmd->read_only)
		args = http_query_args(evhttp_uri_get_query(evhttp_request_get_evhttp_uri(req)),
				       err, sizeof(err));
	else
		args = http_body_args(req, err, sizeof(err));
	if (!args) {
		log_warnx("http: %s %s from %s: 400: %s", cmd->read_only ? "GET" : "POST",
			  cmd->name, peer, err);
		http_send_error(srv, req, 400, err);
		return;
	}
	struct http_pending *p = calloc(1, sizeof(*p));
	char origin[512];
	snprintf(origin, sizeof(origin), "http %s (%s)", peer, who);
	if (p) {
		p->srv = srv;
		p->req = req;
	}
	if (!p ||
	    admin_dispatch(srv->hooks.admin, cmd->name, args, origin, http_command_done, p) != 0) {
		free(p);
		http_send_error(srv, req, 500, "out of memory");
	}
	json_decref(args);
}

static void http_request_cb(struct evhttp_request *req, void *arg)
{
	struct http_server *srv = arg;
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *raw = uri ? evhttp_uri_get_path(uri) : NULL;
	struct http_route route;
	char peer[128], who[300];
	const char *why = "";

	http_peer(req, peer, sizeof(peer));
	char *path = raw ? evhttp_uridecode(raw, 0, NULL) : NULL;
	if (!path) {
		http_send_error(srv, req, 400, "malformed request path");
		return;
	}
	char shown[201];
	http_log_path(path, shown, sizeof(shown));
	http_route(srv->hooks.commands, method, path, &route);
	bool probe = route.status != 404 &&
		     (route.kind == HTTP_ROUTE_LIVEZ || route.kind == HTTP_ROUTE_READYZ);
	if (!probe && !http_authenticate(srv, req, who, sizeof(who), &why)) {
		srv->unauthorized++;
		log_warnx("http: %s %s from %s: 401 (%s)", http_method_name(method), shown, peer,
			  why);
		evhttp_add_header(evhttp_request_get_output_headers(req), "WWW-Authenticate",
				  "Bearer");
		http_send_error(srv, req, 401, "authentication required");
		free(path);
		return;
	}
	if (route.status == 404) {
		log_info("http: %s %s from %s: 404", http_method_name(method), shown, peer);
		http_send_error(srv, req, 404, "no such resource");
	} else if (route.status == 405) {
		char msg[128];
		snprintf(msg, sizeof(msg), "method %s not allowed here; use %s",
			 http_method_name(method), route.allow);
		evhttp_add_header(evhttp_request_get_output_headers(req), "Allow", route.allow);
		http_send_error(srv, req, 405, msg);
	} else if (route.kind == HTTP_ROUTE_LIVEZ) {
		http_send_json(srv, req, 200, json_pack("{s:s}", "status", "live"));
	} else if (route.kind == HTTP_ROUTE_READYZ) {
		http_readyz(srv, req);
	} else if (route.kind == HTTP_ROUTE_METRICS) {
		http_metrics(srv, req);
	} else {
		http_command(srv, req, route.cmd, who, peer);
	}
	free(path);
}

static struct bufferevent *http_bev_cb(struct event_base *base, void *arg)
{
	struct http_server *srv = arg;
	SSL *ssl = SSL_new(srv->ctx);
	struct bufferevent *bev = NULL;

	if (ssl)
		bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
						     BEV_OPT_CLOSE_ON_FREE);
	/* evhttp answers a NULL here with a plain-text connection, never acceptable. */
	if (!bev)
		log_fatalx("http: out of memory for a TLS connection");
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static SSL_CTX *http_tls_ctx(const struct cfg *cfg, EVP_PKEY *key, X509 *cert, X509 *chain_ca,
			     char *err, size_t errlen)
{
	SSL_CTX *ctx = tls_server_ctx(key, cert, NULL, err, errlen);

	if (!ctx)
		return NULL;
	if (chain_ca && SSL_CTX_add1_chain_cert(ctx, chain_ca) != 1) {
		tls_error(err, errlen, "http: certificate chain");
		goto fail;
	}
	if (cfg->http_client_ca[0]) {
		char lerr[512];
		X509 *ca = tls_cert_load(cfg->http_client_ca, lerr, sizeof(lerr));
		if (!ca) {
			snprintf(err, errlen, "client-ca %s: %s", cfg->http_client_ca, lerr);
			goto fail;
		}
		int ok = X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca) == 1 &&
			 SSL_CTX_add_client_CA(ctx, ca) == 1 &&
			 X509_VERIFY_PARAM_set_purpose(SSL_CTX_get0_param(ctx),
						       X509_PURPOSE_SSL_CLIENT) == 1;
		X509_free(ca);
		if (!ok) {
			tls_error(err, errlen, "client-ca");
			goto fail;
		}
		/* Requested, not required: a token is the other way in. */
		SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	}
	return ctx;
fail:
	SSL_CTX_free(ctx);
	return NULL;
}

struct http_server *http_start(struct event_base *base, const struct cfg *cfg, EVP_PKEY *key,
			       X509 *cert, X509 *chain_ca, const struct http_hooks *hooks,
			       char *err, size_t errlen)
{
	struct http_server *srv = calloc(1, sizeof(*srv));

	if (!srv) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	srv->hooks = *hooks;
	if (!cfg->http_token_file[0] && !cfg->http_client_ca[0]) {
		snprintf(err, errlen,
			 "<http> needs token-file or client-ca: refusing to serve "
			 "without authentication");
		goto fail;
	}
	if (cfg->http_token_file[0]) {
		if (http_token_load(cfg->http_token_file, srv->token_sha, err, errlen) != 0)
			goto fail;
		srv->have_token = true;
	}
	srv->have_client_ca = cfg->http_client_ca[0] != '\0';
	srv->ctx = http_tls_ctx(cfg, key, cert, chain_ca, err, errlen);
	if (!srv->ctx)
		goto fail;
	srv->http = evhttp_new(base);
	if (!srv->http) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	evhttp_set_bevcb(srv->http, http_bev_cb, srv);
	evhttp_set_gencb(srv->http, http_request_cb, srv);
	evhttp_set_timeout(srv->http, cfg->http_timeout);
	evhttp_set_max_body_size(srv->http, (ev_ssize_t)cfg->http_max_body);
	evhttp_set_max_headers_size(srv->http, HTTP_MAX_HEADERS);
	/* Every method reaches the callback, which answers 405 with the one to use. */
	evhttp_set_allowed_methods(srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
						  EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |
						  EVHTTP_REQ_PATCH | EVHTTP_REQ_OPTIONS);
	if (!evhttp_bind_socket_with_handle(srv->http, cfg->http_address,
					    (ev_uint16_t)cfg->http_port)) {
		snprintf(err, errlen, "cannot listen on %s:%d: %s", cfg->http_address,
			 cfg->http_port, strerror(errno));
		goto fail;
	}
	log_notice("http: API on https://%s:%d (TLS 1.3; %s%s%s)", cfg->http_address,
		   cfg->http_port, srv->have_token ? "bearer token" : "",
		   srv->have_token && srv->have_client_ca ? " or " : "",
		   srv->have_client_ca ? "client certificate" : "");
	return srv;
fail:
	http_free(srv);
	return NULL;
}

void http_free(struct http_server *srv)
{
	if (!srv)
		return;
	if (srv->http)
		evhttp_free(srv->http);
	SSL_CTX_free(srv->ctx);
	OPENSSL_cleanse(srv->token_sha, sizeof(srv->token_sha));
	free(srv);
}
