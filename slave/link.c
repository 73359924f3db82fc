#include "link.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/rand.h>

#include "backlog.h"
#include "chan.h"
#include "clk.h"
#include "dbjson.h"
#include "effective.h"
#include "faultpoint.h"
#include "log.h"
#include "migrate.h"
#include "proto.h"
#include "cadence.h"
#include "store.h"
#include "stream.h"
#include "tls.h"

#define MAX_WAITERS 32

enum link_mode { LM_NONE, LM_ENROL, LM_SYNC, LM_UNREGISTER };

struct link {
	struct slave *sl;
	struct chan *ch;
	enum proto_state pst;
	enum link_mode mode;
	bool connected;
	bool in_session;
	struct event *timer;
	struct event *ping;
	SSL_CTX *ctx;
	char host[256];
	int port;
	char master_name[64];

	/* register / unregister in progress */
	struct admin_req *req;
	struct enrol_token tok;
	char token[512];
	EVP_PKEY *enrol_key;

	struct admin_req *waiters[MAX_WAITERS];
	int nwaiters;
	/* "sync now" during a session: answered by the session after it, so
	 * everything changed before the command goes up. */
	struct admin_req *next_waiters[MAX_WAITERS];
	int nnext;

	/* the running sync session */
	json_t *wm;
	size_t stream_idx;
	int64_t next_from;
	int inflight;
	/* Streams of the batches in flight, oldest first: ACKs come in order. */
	const char *inflight_stream[LINK_UPLOAD_WINDOW];
	int64_t inflight_rows[LINK_UPLOAD_WINDOW];
	bool uploads_done, upload_done_sent;
	/* A download moved endpoints' policy targets after they went up: the
	 * next session follows at once to send them. */
	bool targets_moved;
	bool wait_drain; /* the next batch is read once queued output has gone out */
	json_t *sent;
	int received;
	time_t started;
	int backoff;

	/* Backlog figures (backlog.h): the session's upload, and the counts
	 * served to `sync status` and /metrics for BACKLOG_CACHE_MS. */
	int64_t acked_rows;   /* rows the master acknowledged in this session */
	int64_t upload_t0_ms; /* WELCOME of this session; 0 outside an upload */
	double rate_last;     /* rows/s of the last session's upload, NAN before one */
	int64_t *backlog;     /* per stream_defs entry */
	double caught_up;     /* epoch start of the last successful session, NAN unknown */
	int64_t backlog_at_ms;
};

static void link_enter(struct link *l, enum proto_state next)
{
	if (l->pst != next)
		log_debug("link: %s -> %s", proto_state_name(l->pst), proto_state_name(next));
	l->pst = next;
}

static struct db *link_db(struct link *l)
{
	return l->sl->d.db;
}

static const struct cfg *link_cfg(struct link *l)
{
	return &l->sl->d.cfg;
}

static void path_in_data(struct link *l, const char *file, char *out, size_t outlen)
{
	/* data_dir was checked at start-up to leave room for these names. */
	if (snprintf(out, outlen, "%s/%s", link_cfg(l)->data_dir, file) >= (int)outlen)
		out[0] = '\0';
}

/* ---- scheduling ---- */

static void schedule_in(struct link *l, int seconds)
{
	struct timeval tv = { seconds, 0 };
	char err[256], s[16];
	event_del(l->timer);
	evtimer_add(l->timer, &tv);
	snprintf(s, sizeof(s), "%d", seconds);
	const char *p[] = { s };
	if (db_exec(link_db(l), "UPDATE sync_state SET next_due = now() + make_interval(secs => $1::int)",
		    1, p, err, sizeof(err)) != 0)
		log_warnx("link: %s", err);
}

static void schedule_next(struct link *l)
{
	uint32_t r = 0;
	if (RAND_bytes((unsigned char *)&r, sizeof(r)) != 1)
		r = (uint32_t)time(NULL);
	schedule_in(l, cadence_jitter(link_cfg(l)->repl_interval, link_cfg(l)->repl_jitter, r));
}

static void schedule_retry(struct link *l)
{
	const struct cfg *c = link_cfg(l);
	l->backoff = cadence_backoff(l->backoff, c->repl_retry_min, c->repl_retry_max,
				   c->repl_interval);
	log_info("link: next attempt in %d s", l->backoff);
	schedule_in(l, l->backoff);
}

/* ---- waiters ---- */

static void answer_waiters(struct link *l, bool ok, const char *msg)
{
	for (int i = 0; i < l->nwaiters; i++) {
		if (ok)
			admin_reply(l->waiters[i], json_pack("{s:s}", "message", msg));
		else
			admin_reply_error(l->waiters[i], "%s", msg);
	}
	l->nwaiters = 0;
}

static void answer_req(struct link *l, bool ok, const char *msg)
{
	if (!l->req)
		return;
	if (ok)
		admin_reply(l->req, json_pack("{s:s}", "message", msg));
	else
		admin_reply_error(l->req, "%s", msg);
	l->req = NULL;
}

/* ---- session outcome ---- */

static void record_session(struct link *l, bool ok, const char *error)
{
	char err[512], started[24], items[16];
	/* A session that failed before HELLO (e.g. in the TLS handshake) sent nothing. */
	char *sent = l->sent ? json_dumps(l->sent, JSON_COMPACT) : strdup("{}");
	snprintf(started, sizeof(started), "%lld", (long long)l->started);
	snprintf(items, sizeof(items), "%d", l->received);
	const char *p[] = { started, ok ? "true" : "false", error, sent, items };
	if (db_exec(link_db(l),
		    "INSERT INTO sync_history (started_at, ok, error, rows_sent, items_received) "
		    "VALUES (to_timestamp($1::bigint), $2::boolean, $3, $4::jsonb, $5::int)",
		    5, p, err, sizeof(err)) != 0 ||
	    db_exec(link_db(l),
		    "UPDATE sync_state SET last_attempt = to_timestamp($1::bigint), "
		    "last_success = CASE WHEN $2::boolean THEN now() ELSE last_success END, "
		    "last_error = $3",
		    3, p, err, sizeof(err)) != 0)
		log_warnx("link: cannot record the sync outcome: %s", err);
	if (ok && l->sent) {
		const char *k;
		json_t *v;
		json_object_foreach(l->sent, k, v)
		{
			char n[24];
			snprintf(n, sizeof(n), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
			const char *q[] = { k, n };
			if (db_exec(link_db(l),
				    "INSERT INTO sync_stream_stats (stream, rows_last, rows_total) "
				    "VALUES ($1, $2::bigint, $2::bigint) ON CONFLICT (stream) DO UPDATE "
				    "SET rows_last = EXCLUDED.rows_last, "
				    "rows_total = sync_stream_stats.rows_total + EXCLUDED.rows_last",
				    2, q, err, sizeof(err)) != 0)
				log_warnx("link: %s", err);
		}
	}
	free(sent);
}

static void session_done(struct link *l, bool ok, const char *error)
{
	char msg[512];
	if (!l->in_session)
		return;
	l->in_session = false;
	if (l->upload_t0_ms > 0) { /* ended during the upload */
		l->rate_last = backlog_rate(l->acked_rows, clk_mono_ms() - l->upload_t0_ms);
		l->upload_t0_ms = 0;
	}
	record_session(l, ok, error);
	l->backlog_at_ms = 0; /* the next question counts again */
	if (ok) {
		int64_t total = 0;
		const char *k;
		json_t *v;
		json_object_foreach(l->sent, k, v) total += json_integer_value(v);
		snprintf(msg, sizeof(msg), "sync done in %lld s: %" PRId64 " rows sent, %d items received",
			 (long long)(time(NULL) - l->started), total, l->received);
		log_notice("link: %s", msg);
		l->backoff = 0;
		if (l->targets_moved) {
			l->targets_moved = false;
			log_info("link: the download moved endpoints' policy targets; they go up "
				 "with a session in 1 s");
			schedule_in(l, 1);
		} else {
			schedule_next(l);
		}
		answer_waiters(l, true, msg);
	} else {
		snprintf(msg, sizeof(msg), "sync failed: %s", error);
		log_warnx("link: %s", msg);
		schedule_retry(l);
		answer_waiters(l, false, msg);
	}
	if (l->nnext > 0) {
		memcpy(l->waiters, l->next_waiters, (size_t)l->nnext * sizeof(l->waiters[0]));
		l->nwaiters = l->nnext;
		l->nnext = 0;
		schedule_in(l, 0);
	}
}

/* ---- connection ---- */

static void on_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
		       void *arg);
static void on_connected(struct chan *ch, void *arg);
static void on_close(struct chan *ch, const char *reason, void *arg);
static void on_drain(struct chan *ch, void *arg);

static const struct chan_cbs link_cbs = {
	.on_message = on_message,
	.on_connected = on_connected,
	.on_drain = on_drain,
	.on_close = on_close,
};

static int link_connect(struct link *l, SSL_CTX *ctx, bool check_host, char *err, size_t errlen)
{
	char peer[300];
	SSL *ssl = SSL_new(ctx);
	if (!ssl) {
		tls_error(err, errlen, "TLS");
		return -1;
	}
	if (check_host && SSL_set1_host(ssl, l->host) != 1) {
		SSL_free(ssl);
		snprintf(err, errlen, "cannot set the expected host name %s", l->host);
		return -1;
	}
	struct bufferevent *bev = bufferevent_openssl_socket_new(
		l->sl->d.base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		snprintf(err, errlen, "cannot create a connection");
		return -1;
	}
	snprintf(peer, sizeof(peer), "%s:%d", l->host, l->port);
	l->ch = chan_new(l->sl->d.base, bev, peer, (uint32_t)link_cfg(l)->frame_max_preauth,
			 &link_cbs, l);
	if (!l->ch) {
		snprintf(err, errlen, "cannot create a connection");
		return -1;
	}
	l->connected = false;
	chan_set_timeout(l->ch, link_cfg(l)->handshake_timeout);
	if (bufferevent_socket_connect_hostname(bev, NULL, AF_UNSPEC, l->host, l->port) != 0) {
		/* on_close reports it */
		chan_close(l->ch, "cannot connect");
	}
	return 0;
}

static int load_credentials(struct link *l, EVP_PKEY **key, X509 **cert, X509 **ca, char *err,
			    size_t errlen)
{
	char path[PATH_MAX];
	path_in_data(l, "slave.key", path, sizeof(path));
	*key = tls_key_load(path, err, errlen);
	if (!*key)
		return -1;
	path_in_data(l, "slave.crt", path, sizeof(path));
	*cert = tls_cert_load(path, err, errlen);
	if (!*cert) {
		EVP_PKEY_free(*key);
		return -1;
	}
	path_in_data(l, "master-ca.crt", path, sizeof(path));
	*ca = tls_cert_load(path, err, errlen);
	if (!*ca) {
		EVP_PKEY_free(*key);
		X509_free(*cert);
		return -1;
	}
	return 0;
}

/* registration, master address; returns 0 and fills l->host/port when registered. */
static int load_state(struct link *l, char *reg, size_t reglen, char *err, size_t errlen)
{
	PGresult *res = db_query(link_db(l),
				 "SELECT registration, coalesce(master_host, ''), "
				 "coalesce(master_port, 7073), coalesce(master_name, '') FROM sync_state",
				 0, NULL, err, errlen);
	if (!res)
		return -1;
	snprintf(reg, reglen, "%s", PQgetvalue(res, 0, 0));
	/* The configured address wins: a master that moved is re-pointed in server.xml. */
	if (link_cfg(l)->master_host[0]) {
		snprintf(l->host, sizeof(l->host), "%s", link_cfg(l)->master_host);
		l->port = link_cfg(l)->master_port;
	} else {
		snprintf(l->host, sizeof(l->host), "%s", PQgetvalue(res, 0, 1));
		l->port = atoi(PQgetvalue(res, 0, 2));
	}
	snprintf(l->master_name, sizeof(l->master_name), "%s", PQgetvalue(res, 0, 3));
	PQclear(res);
	return 0;
}

/* Opens a mutual-TLS connection for mode (sync or unregister). */
static int connect_authenticated(struct link *l, enum link_mode mode, char *err, size_t errlen)
{
	EVP_PKEY *key;
	X509 *cert, *ca;
	char reg[32];
	if (load_state(l, reg, sizeof(reg), err, errlen) != 0)
		return -1;
	if (strcmp(reg, "registered") != 0) {
		snprintf(err, errlen, "this slave is not registered with a master (state %s); use "
			 "'strata-ctl register --master HOST:PORT --token TOKEN'", reg);
		return -1;
	}
	if (!l->host[0]) {
		snprintf(err, errlen, "no master address known");
		return -1;
	}
	if (load_credentials(l, &key, &cert, &ca, err, errlen) != 0)
		return -1;
	SSL_CTX_free(l->ctx);
	l->ctx = tls_client_ctx(key, cert, ca, err, errlen);
	EVP_PKEY_free(key);
	X509_free(cert);
	X509_free(ca);
	if (!l->ctx)
		return -1;
	l->mode = mode;
	return link_connect(l, l->ctx, true, err, errlen);
}

static void send_empty(struct link *l, uint16_t type)
{
	json_t *e = json_object();
	chan_send_json(l->ch, type, e);
	json_decref(e);
}

static void send_hello(struct link *l)
{
	char pub[24] = "0", err[256];
	FAULTPOINT("slave.session.start");
	if (db_query_value(link_db(l), "SELECT publication_version FROM sync_state", 0, NULL, pub,
			   sizeof(pub), err, sizeof(err)) != 0)
		log_warnx("link: %s", err);
	json_t *h = json_pack("{s:i, s:s, s:i, s:I, s:i}", "proto", PROTO_VERSION, "slave",
			      link_cfg(l)->name, "schema", migrate_latest(schema_slave),
			      "publication", (json_int_t)strtoll(pub, NULL, 10), "interval",
			      link_cfg(l)->repl_interval);
	l->in_session = true;
	l->started = time(NULL);
	json_decref(l->sent);
	l->sent = json_object();
	l->received = 0;
	l->inflight = 0;
	l->uploads_done = l->upload_done_sent = false;
	l->wait_drain = false;
	chan_send_json(l->ch, MSG_HELLO, h);
	json_decref(h);
	link_enter(l, PST_SLAVE_HELLO);
	event_del(l->ping);
}

/* Starts a sync session: over the idle connection, or a new one. */
static void start_sync(struct link *l)
{
	char err[1024];
	if (l->in_session || (l->ch && l->mode != LM_SYNC))
		return;
	if (l->ch && l->connected && l->pst == PST_SLAVE_IDLE) {
		send_hello(l);
		return;
	}
	if (l->ch)
		return; /* connecting: on_connected sends HELLO */
	if (daemon_db_ensure(&l->sl->d) != 0) {
		l->in_session = true;
		l->started = time(NULL);
		session_done(l, false, "the slave's database is not reachable");
		return;
	}
	if (connect_authenticated(l, LM_SYNC, err, sizeof(err)) != 0) {
		l->in_session = true;
		l->started = time(NULL);
		session_done(l, false, err);
		return;
	}
	/* Count the attempt from the connect, so a refused connection is a failed sync. */
	l->in_session = true;
	l->started = time(NULL);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	start_sync(l);
}

static void on_ping(evutil_socket_t fd, short what, void *arg)
{
	struct link *l = arg;
	if (l->ch && l->connected && l->pst == PST_SLAVE_IDLE) {
		send_empty(l, MSG_PING);
		struct timeval tv = { link_cfg(l)->session_timeout / 3 + 1, 0 };
		evtimer_add(l->ping, &tv);
	}
}

/* ---- upload ---- */

struct batch_buf {
	char *data;
	size_t len, cap, limit;
	int64_t rows;
	size_t last_row;
};

static int batch_row(const char *row, size_t len, void *arg)
{
	struct batch_buf *b = arg;
	if (b->rows > 0 && b->len + len > b->limit)
		return 1;
	if (b->len + len > b->cap) {
		size_t cap = b->cap ? b->cap : 65536;
		while (cap < b->len + len)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d)
			return 2;
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, row, len);
	b->last_row = b->len;
	b->len += len;
	b->rows++;
	return 0;
}

/* The last field of the last row is its version. */
static int64_t batch_last_version(const struct batch_buf *b)
{
	const char *row = b->data + b->last_row;
	const char *end = b->data + b->len;
	const char *tab = row;
	for (const char *p = row; p < end; p++)
		if (*p == '\t')
			tab = p + 1;
	return strtoll(tab, NULL, 10);
}

static int read_batch(struct link *l, const struct stream_def *sd, int64_t from,
		      struct batch_buf *b, char *err, size_t errlen)
{
	char from_s[24], limit_s[16];
	snprintf(from_s, sizeof(from_s), "%" PRId64, from);
	snprintf(limit_s, sizeof(limit_s), "%d", link_cfg(l)->repl_batch_rows);
	const char *p[] = { from_s, limit_s };
	/* Cleared first: the caller frees b->data whatever happens, also when the database is gone. */
	memset(b, 0, sizeof(*b));
	if (db_exec(link_db(l),
		    "SELECT set_config('strata.from', $1, false), set_config('strata.limit', $2, false)",
		    2, p, err, errlen) != 0)
		return -1;
	b->limit = (size_t)link_cfg(l)->frame_max / 2;
	int rc = db_copy_out(link_db(l), sd->slave_copy, batch_row, b, err, errlen);
	if (rc < 0 || rc == 2) {
		if (rc == 2)
			snprintf(err, errlen, "out of memory reading %s", sd->name);
		return -1;
	}
	return 0;
}

static void fail_session(struct link *l, const char *code, const char *msg)
{
	session_done(l, false, msg);
	if (l->ch)
		chan_send_error(l->ch, code, "%s", msg);
}

static void pump_upload(struct link *l)
{
	char err[1024];
	while (!l->uploads_done && l->inflight < LINK_UPLOAD_WINDOW) {
		/*
		 * Reading a batch blocks this loop, and with it the sending of
		 * the batch already queued: the master, done with the batch
		 * before, would wait for those bytes. Let them go out first.
		 */
		if (l->inflight > 0 && chan_output_pending(l->ch) > 0) {
			l->wait_drain = true;
			return;
		}
		const struct stream_def *sd = &stream_defs[l->stream_idx];
		struct batch_buf b;
		if (read_batch(l, sd, l->next_from, &b, err, sizeof(err)) != 0) {
			free(b.data);
			fail_session(l, PROTO_ERR_INTERNAL, err);
			return;
		}
		if (b.rows > 0) {
			int64_t to = batch_last_version(&b);
			json_t *hdr = json_pack("{s:s, s:I, s:I, s:I}", "stream", sd->name, "from",
						(json_int_t)l->next_from, "to", (json_int_t)to, "rows",
						(json_int_t)b.rows);
			chan_send_bulk(l->ch, MSG_UPLOAD_BATCH, hdr, b.data, b.len);
			if (faultpoint_armed)
				chan_faultpoint_midframe(l->ch, "slave.upload.midframe", b.len);
			json_decref(hdr);
			json_t *n = json_object_get(l->sent, sd->name);
			json_object_set_new(l->sent, sd->name,
					    json_integer(json_integer_value(n) + b.rows));
			l->next_from = to;
			l->inflight_rows[l->inflight] = b.rows;
			l->inflight_stream[l->inflight++] = sd->name;
		}
		bool exhausted = b.rows < link_cfg(l)->repl_batch_rows && b.len <= b.limit &&
				 !(b.rows > 0 && b.len + 1 > b.limit);
		free(b.data);
		if (b.rows == 0 || exhausted) {
			l->stream_idx++;
			if (l->stream_idx == stream_count) {
				l->uploads_done = true;
				break;
			}
			l->next_from = json_integer_value(
				json_object_get(l->wm, stream_defs[l->stream_idx].name));
		}
	}
	if (l->uploads_done && l->inflight == 0 && !l->upload_done_sent) {
		l->upload_done_sent = true;
		/* The upload is over: its rate leaves the download out. */
		l->rate_last = backlog_rate(l->acked_rows, clk_mono_ms() - l->upload_t0_ms);
		l->upload_t0_ms = 0;
		send_empty(l, MSG_UPLOAD_DONE);
	}
}

/*
 * Every endpoint's policy target follows the policies (effective.h). Its
 * failure only delays the compliance figures and the agents' fetch, so
 * it is logged and the session goes on.
 */
static long long targets_update(struct link *l, const char *when)
{
	char err[512];
	long long moved = 0;
	if (effective_targets(link_db(l), &moved, err, sizeof(err)) != 0)
		log_warnx("link: endpoints' policy targets not updated after the %s: %s", when,
			  err);
	else if (moved > 0)
		log_info("link: %lld endpoint(s) told to fetch their new effective policy", moved);
	return moved;
}

/*
 * The master's watermarks are what it holds: an ACK lost with a cut
 * connection, or a master restored from an older backup, moves the
 * backlog's base (sync status, /metrics) to the truth.
 */
static void record_watermarks(struct link *l, json_t *wm)
{
	char err[512], v[24];
	for (size_t i = 0; i < stream_count; i++) {
		snprintf(v, sizeof(v), "%" JSON_INTEGER_FORMAT,
			 json_integer_value(json_object_get(wm, stream_defs[i].name)));
		const char *p[] = { stream_defs[i].name, v };
		if (db_exec(link_db(l),
			    "INSERT INTO sync_stream_stats (stream, acked_version) "
			    "VALUES ($1, $2::bigint) ON CONFLICT (stream) DO UPDATE "
			    "SET acked_version = EXCLUDED.acked_version "
			    "WHERE sync_stream_stats.acked_version <> EXCLUDED.acked_version",
			    2, p, err, sizeof(err)) != 0)
			log_warnx("link: %s", err);
	}
	l->backlog_at_ms = 0;
}

static void on_welcome(struct link *l, json_t *o)
{
	json_t *wm;
	const char *master;
	if (json_unpack(o, "{s:o, s:s !}", "watermarks", &wm, "master", &master) != 0 ||
	    !json_is_object(wm)) {
		fail_session(l, PROTO_ERR_PROTOCOL, "WELCOME must be {watermarks, master}");
		return;
	}
	for (size_t i = 0; i < stream_count; i++) {
		json_t *v = json_object_get(wm, stream_defs[i].name);
		if (!json_is_integer(v) || json_integer_value(v) < 0) {
			fail_session(l, PROTO_ERR_PROTOCOL, "WELCOME lacks a watermark for a stream");
			return;
		}
	}
	if (strcmp(master, l->master_name) != 0) {
		char err[256];
		const char *p[] = { master };
		snprintf(l->master_name, sizeof(l->master_name), "%s", master);
		if (db_exec(link_db(l), "UPDATE sync_state SET master_name = $1", 1, p, err,
			    sizeof(err)) != 0)
			log_warnx("link: %s", err);
	}
	json_decref(l->wm);
	l->wm = json_incref(wm);
	record_watermarks(l, wm);
	/* Endpoints enrolled since the last session get their target before it goes up. */
	l->targets_moved = false;
	targets_update(l, "welcome");
	l->stream_idx = 0;
	l->acked_rows = 0;
	l->upload_t0_ms = clk_mono_ms();
	l->next_from = json_integer_value(json_object_get(wm, stream_defs[0].name));
	link_enter(l, PST_SLAVE_UPLOAD);
	pump_upload(l);
}

static void on_drain(struct chan *ch, void *arg)
{
	struct link *l = arg;
	if (!l->wait_drain || !l->in_session || l->pst != PST_SLAVE_UPLOAD)
		return;
	l->wait_drain = false;
	pump_upload(l);
}

static void on_upload_ack(struct link *l, json_t *o)
{
	const char *stream;
	json_int_t wm;
	char err[512], wm_s[24];
	FAULTPOINT("slave.ack.received");
	if (json_unpack(o, "{s:s, s:I !}", "stream", &stream, "watermark", &wm) != 0 ||
	    l->inflight == 0 || strcmp(stream, l->inflight_stream[0]) != 0) {
		fail_session(l, PROTO_ERR_PROTOCOL, "unexpected UPLOAD_ACK");
		return;
	}
	l->inflight--;
	l->acked_rows += l->inflight_rows[0];
	memmove(&l->inflight_stream[0], &l->inflight_stream[1],
		(size_t)l->inflight * sizeof(l->inflight_stream[0]));
	memmove(&l->inflight_rows[0], &l->inflight_rows[1],
		(size_t)l->inflight * sizeof(l->inflight_rows[0]));
	snprintf(wm_s, sizeof(wm_s), "%" PRId64, (int64_t)wm);
	const char *p[] = { stream, wm_s };
	if (db_exec(link_db(l),
		    "INSERT INTO sync_stream_stats (stream, acked_version) VALUES ($1, $2::bigint) "
		    "ON CONFLICT (stream) DO UPDATE SET acked_version = EXCLUDED.acked_version",
		    2, p, err, sizeof(err)) != 0)
		log_warnx("link: %s", err);
	/* The master holds every delete up to wm: those tombstones have done their job. */
	if (strcmp(stream, STREAM_DELETIONS) == 0 &&
	    db_exec(link_db(l), "DELETE FROM repl_tombstones WHERE version <= $1::bigint", 1, &p[1],
		    err, sizeof(err)) != 0)
		log_warnx("link: %s", err);
	pump_upload(l);
}

static void on_download(struct link *l, json_t *o)
{
	char err[1024];
	int64_t version;
	int items;
	bool more = json_is_true(json_object_get(o, "more"));
	FAULTPOINT("slave.download.received");
	if (store_apply_download(link_db(l), l->master_name, o, &version, &items, err,
				 sizeof(err)) != 0) {
		fail_session(l, PROTO_ERR_INTERNAL, err);
		return;
	}
	FAULTPOINT("slave.download.committed");
	l->received += items;
	if (items > 0 && targets_update(l, "download") > 0)
		l->targets_moved = true;
	json_t *ack = json_pack("{s:I}", "version", (json_int_t)version);
	chan_send_json(l->ch, MSG_DOWNLOAD_ACK, ack);
	json_decref(ack);
	if (!more) {
		json_t *bye = json_pack("{s:O, s:i}", "sent", l->sent, "received", l->received);
		chan_send_json(l->ch, MSG_BYE, bye);
		json_decref(bye);
		link_enter(l, PST_SLAVE_BYE);
	}
}

/* ---- enrolment ---- */

static void enrol_finish(struct link *l, bool ok, const char *msg)
{
	EVP_PKEY_free(l->enrol_key);
	l->enrol_key = NULL;
	OPENSSL_cleanse(l->token, sizeof(l->token));
	OPENSSL_cleanse(&l->tok, sizeof(l->tok));
	if (ok)
		log_notice("link: %s", msg);
	else
		log_warnx("link: registration failed: %s", msg);
	answer_req(l, ok, msg);
}

static void on_enrol_ok(struct link *l, json_t *o)
{
	struct msg_enrol_ok m;
	char err[1024], path[PATH_MAX], port[8];
	X509 *cert = NULL, *ca = NULL;
	if (proto_decode_enrol_ok(o, &m, err, sizeof(err)) != 0)
		goto bad;
	cert = tls_cert_from_pem(m.cert, err, sizeof(err));
	ca = cert ? tls_cert_from_pem(m.ca, err, sizeof(err)) : NULL;
	if (!cert || !ca)
		goto bad;
	char pin[TLS_PIN_HEX_LEN + 1];
	tls_cert_pin(ca, pin);
	if (strcmp(pin, l->tok.pin) != 0) {
		snprintf(err, sizeof(err), "the CA in the answer does not match the token's pin");
		goto bad;
	}
	if (X509_check_private_key(cert, l->enrol_key) != 1 ||
	    X509_verify(cert, X509_get0_pubkey(ca)) != 1) {
		snprintf(err, sizeof(err), "the certificate in the answer is not for this slave's key "
			 "or not signed by the master's CA");
		goto bad;
	}
	path_in_data(l, "slave.key", path, sizeof(path));
	if (tls_key_save(l->enrol_key, path, err, sizeof(err)) != 0)
		goto bad;
	path_in_data(l, "slave.crt", path, sizeof(path));
	if (tls_cert_save(cert, path, err, sizeof(err)) != 0)
		goto bad;
	path_in_data(l, "master-ca.crt", path, sizeof(path));
	if (tls_cert_save(ca, path, err, sizeof(err)) != 0)
		goto bad;
	snprintf(port, sizeof(port), "%d", l->port);
	const char *p[] = { l->host, port };
	if (db_exec(link_db(l),
		    "UPDATE sync_state SET registration = 'registered', master_host = $1, "
		    "master_port = $2::int, registered_at = now(), last_error = NULL, "
		    "publication_version = 0",
		    2, p, err, sizeof(err)) != 0)
		goto bad;
	X509_free(cert);
	X509_free(ca);
	char msg[400];
	snprintf(msg, sizeof(msg), "registered with the master at %s:%d", l->host, l->port);
	enrol_finish(l, true, msg);
	chan_close(l->ch, "enrolment done");
	l->backoff = 0;
	schedule_in(l, 1);
	return;
bad:
	X509_free(cert);
	X509_free(ca);
	enrol_finish(l, false, err);
	chan_close(l->ch, "enrolment failed");
}

/* ---- chan callbacks ---- */

static void on_connected(struct chan *ch, void *arg)
{
	struct link *l = arg;
	char err[1024];
	l->connected = true;
	chan_set_timeout(ch, link_cfg(l)->session_timeout);
	switch (l->mode) {
	case LM_ENROL: {
		X509 *ca = NULL;
		if (tls_check_pin(chan_ssl(ch), l->tok.pin, &ca, err, sizeof(err)) != 0) {
			enrol_finish(l, false, err);
			chan_close(ch, "CA pin mismatch");
			return;
		}
		X509_free(ca);
		X509_REQ *req = tls_csr_create(l->enrol_key, link_cfg(l)->name, err, sizeof(err));
		if (!req) {
			enrol_finish(l, false, err);
			chan_close(ch, "cannot make a CSR");
			return;
		}
		char *csr = tls_csr_to_pem(req);
		X509_REQ_free(req);
		json_t *m = json_pack("{s:s, s:s, s:s}", "token", l->token, "name",
				      link_cfg(l)->name, "csr", csr);
		chan_send_json(ch, MSG_ENROL, m);
		json_decref(m);
		free(csr);
		link_enter(l, PST_SLAVE_ENROL);
		break;
	}
	case LM_SYNC:
		chan_set_max_frame(ch, (uint32_t)link_cfg(l)->frame_max);
		chan_set_drain(ch, 0);
		send_hello(l);
		break;
	case LM_UNREGISTER:
		send_empty(l, MSG_UNREGISTER);
		link_enter(l, PST_SLAVE_BYE);
		break;
	case LM_NONE:
		chan_close(ch, "no purpose");
		break;
	}
}

static void detach(struct link *l, const char *why)
{
	char err[512], path[PATH_MAX], old[PATH_MAX + 16];
	if (store_detach_master(link_db(l), err, sizeof(err)) != 0)
		log_warnx("link: %s", err);
	/* The certificate is useless now; keep it for the record, out of the way. */
	path_in_data(l, "slave.crt", path, sizeof(path));
	snprintf(old, sizeof(old), "%s.revoked", path);
	if (rename(path, old) != 0)
		log_warn("link: cannot move %s aside", path);
	event_del(l->timer);
	log_notice("link: unregistered: %s", why);
}

static void on_error_msg(struct link *l, json_t *o)
{
	struct msg_error e;
	char err[512], msg[1200];
	if (!o || proto_decode_error(o, &e, err, sizeof(err)) != 0) {
		e.code = PROTO_ERR_PROTOCOL;
		e.message = "malformed ERROR from the master";
	}
	snprintf(msg, sizeof(msg), "master refused (%s): %s", e.code, e.message);
	if (l->mode == LM_ENROL) {
		enrol_finish(l, false, msg);
	} else if (strcmp(e.code, PROTO_ERR_UNREGISTERED) == 0) {
		log_error("link: %s", msg);
		session_done(l, false, msg);
		detach(l, e.message);
		answer_req(l, true, "unregistered (the master had already revoked this slave)");
	} else {
		session_done(l, false, msg);
		answer_req(l, false, msg);
	}
	chan_close(l->ch, msg);
}

static void on_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
		       void *arg)
{
	struct link *l = arg;
	char err[512];
	if (!proto_allowed(l->pst, type)) {
		char msg[256];
		snprintf(msg, sizeof(msg), "message %s (type %u) is not allowed in state %s",
			 proto_msg_name(type), type, proto_state_name(l->pst));
		fail_session(l, PROTO_ERR_PROTOCOL, msg);
		return;
	}
	json_t *o = proto_parse_json(payload, len, err, sizeof(err));
	if (!o && type != MSG_ERROR) {
		char msg[600];
		snprintf(msg, sizeof(msg), "%s: %s", proto_msg_name(type), err);
		fail_session(l, PROTO_ERR_PROTOCOL, msg);
		return;
	}
	if ((type == MSG_BYE_OK || type == MSG_SYNC_REQUEST || type == MSG_PONG) &&
	    proto_decode_empty(o, type, err, sizeof(err)) != 0) {
		json_decref(o);
		fail_session(l, PROTO_ERR_PROTOCOL, err);
		return;
	}
	switch (type) {
	case MSG_ERROR:
		on_error_msg(l, o);
		break;
	case MSG_ENROL_OK:
		on_enrol_ok(l, o);
		break;
	case MSG_WELCOME:
		on_welcome(l, o);
		break;
	case MSG_UPLOAD_ACK:
		on_upload_ack(l, o);
		break;
	case MSG_DOWNLOAD:
		on_download(l, o);
		break;
	case MSG_BYE_OK:
		if (l->mode == LM_UNREGISTER) {
			detach(l, "on this slave's request");
			answer_req(l, true, "unregistered; master-owned policies and tasks are kept "
				   "as local copies");
			chan_close(ch, "unregistered");
			break;
		}
		FAULTPOINT("slave.session.end");
		session_done(l, true, NULL);
		link_enter(l, PST_SLAVE_IDLE);
		on_ping(-1, 0, l);
		break;
	case MSG_SYNC_REQUEST:
		/* Crossed with a HELLO of ours: the session it asks for is under way. */
		if (l->pst != PST_SLAVE_IDLE)
			break;
		log_info("link: the master asked for a sync");
		send_hello(l);
		break;
	case MSG_PONG:
		break;
	}
	json_decref(o);
}

static void on_close(struct chan *ch, const char *reason, void *arg)
{
	struct link *l = arg;
	if (l && ch != l->ch) {
		/* An earlier connection, closed on purpose before this one opened. */
		log_debug("link: earlier connection closed: %s", reason);
		return;
	}
	if (!l)
		return; /* closed by link_free() */
	enum link_mode mode = l->mode;
	l->ch = NULL;
	l->connected = false;
	l->mode = LM_NONE;
	link_enter(l, PST_SLAVE_IDLE);
	event_del(l->ping);
	if (mode == LM_ENROL && l->enrol_key)
		enrol_finish(l, false, reason);
	if (mode == LM_UNREGISTER && l->req) {
		answer_req(l, false, reason);
	}
	if (l->in_session)
		session_done(l, false, reason);
	else
		log_info("link: connection to the master closed: %s", reason);
}

/* ---- public ---- */

struct link *link_new(struct slave *sl)
{
	struct link *l = calloc(1, sizeof(*l));
	if (!l)
		return NULL;
	l->sl = sl;
	l->pst = PST_SLAVE_IDLE;
	l->rate_last = NAN;
	l->caught_up = NAN;
	l->backlog = calloc(stream_count, sizeof(*l->backlog));
	if (!l->backlog) {
		free(l);
		return NULL;
	}
	l->timer = evtimer_new(sl->d.base, on_timer, l);
	l->ping = evtimer_new(sl->d.base, on_ping, l);
	return l;
}

void link_free(struct link *l)
{
	if (!l)
		return;
	if (l->ch) {
		/* The channel is reaped on a later loop pass, after l is gone. */
		chan_set_arg(l->ch, NULL);
		chan_close(l->ch, "slave shutting down");
	}
	answer_waiters(l, false, "slave shutting down");
	for (int i = 0; i < l->nnext; i++)
		admin_reply_error(l->next_waiters[i], "slave shutting down");
	l->nnext = 0;
	answer_req(l, false, "slave shutting down");
	event_free(l->timer);
	event_free(l->ping);
	SSL_CTX_free(l->ctx);
	EVP_PKEY_free(l->enrol_key);
	json_decref(l->wm);
	json_decref(l->sent);
	free(l->backlog);
	free(l);
}

void link_register(struct link *l, struct admin_req *req, const char *master, const char *token)
{
	char err[1024], reg[32];
	const char *colon = strrchr(master, ':');
	if (l->req || l->ch || l->in_session) {
		admin_reply_error(req, "the link to the master is busy; try again in a moment");
		return;
	}
	if (load_state(l, reg, sizeof(reg), err, sizeof(err)) != 0) {
		admin_reply_error(req, "%s", err);
		return;
	}
	if (strcmp(reg, "registered") == 0) {
		admin_reply_error(req, "this slave is already registered with %s:%d; unregister "
				  "first", l->host, l->port);
		return;
	}
	if (!colon || colon == master || (size_t)(colon - master) >= sizeof(l->host) ||
	    atoi(colon + 1) < 1 || atoi(colon + 1) > 65535 ||
	    strspn(colon + 1, "0123456789") != strlen(colon + 1)) {
		admin_reply_error(req, "--master must be HOST:PORT (got '%s')", master);
		return;
	}
	if (tls_token_parse(token, &l->tok, err, sizeof(err)) != 0) {
		admin_reply_error(req, "%s", err);
		return;
	}
	snprintf(l->host, sizeof(l->host), "%.*s", (int)(colon - master), master);
	l->port = atoi(colon + 1);
	snprintf(l->token, sizeof(l->token), "%s", token);
	l->enrol_key = tls_key_generate(err, sizeof(err));
	SSL_CTX_free(l->ctx);
	l->ctx = l->enrol_key ? tls_client_ctx_pinned(err, sizeof(err)) : NULL;
	l->req = req;
	l->mode = LM_ENROL;
	if (!l->ctx || link_connect(l, l->ctx, false, err, sizeof(err)) != 0) {
		l->mode = LM_NONE;
		enrol_finish(l, false, err);
		return;
	}
	log_info("link: registering with %s:%d", l->host, l->port);
}

void link_unregister(struct link *l, struct admin_req *req, bool force)
{
	char err[1024], reg[32];
	if (load_state(l, reg, sizeof(reg), err, sizeof(err)) != 0) {
		admin_reply_error(req, "%s", err);
		return;
	}
	if (strcmp(reg, "registered") != 0) {
		admin_reply_error(req, "this slave is not registered (state %s)", reg);
		return;
	}
	if (l->req) {
		admin_reply_error(req, "the link to the master is busy; try again in a moment");
		return;
	}
	if (l->ch)
		chan_close(l->ch, "unregistering");
	if (force) {
		detach(l, "forced locally; remove it on the master with 'strata-ctl slave remove'");
		admin_reply(req, json_pack("{s:s}", "message",
					   "unregistered locally; the master was not told: run "
					   "'strata-ctl slave remove NAME' there"));
		return;
	}
	l->req = req;
	if (connect_authenticated(l, LM_UNREGISTER, err, sizeof(err)) != 0) {
		l->mode = LM_NONE;
		answer_req(l, false, err);
	}
}

void link_sync_now(struct link *l, struct admin_req *req)
{
	char err[1024], reg[32];
	if (load_state(l, reg, sizeof(reg), err, sizeof(err)) != 0) {
		admin_reply_error(req, "%s", err);
		return;
	}
	if (strcmp(reg, "registered") != 0) {
		admin_reply_error(req, "this slave is not registered with a master (state %s)", reg);
		return;
	}
	if (l->in_session) {
		/* The running session may have sent its rows already. */
		if (l->nnext == MAX_WAITERS) {
			admin_reply_error(req, "too many sync requests waiting");
			return;
		}
		l->next_waiters[l->nnext++] = req;
		return;
	}
	if (l->nwaiters == MAX_WAITERS) {
		admin_reply_error(req, "too many sync requests waiting");
		return;
	}
	l->waiters[l->nwaiters++] = req;
	if (l->ch && l->mode != LM_SYNC)
		return; /* after the register/unregister exchange; answered on its outcome */
	start_sync(l);
}

json_t *link_status(struct link *l, char *err, size_t errlen)
{
	PGresult *res = db_query(
		link_db(l),
		"SELECT registration, master_host || ':' || master_port AS master, master_name, "
		"to_char(last_success AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_success, "
		"to_char(last_attempt AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS last_attempt, "
		"last_error, "
		"to_char(next_due AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') AS next_due, "
		"publication_version FROM sync_state",
		0, NULL, err, errlen);
	if (!res)
		return NULL;
	json_t *fields = dbjson_row(res, 0);
	PQclear(res);
	json_object_set_new(fields, "in_progress", json_boolean(l->in_session));
	json_object_set_new(fields, "connected", json_boolean(l->connected));
	json_object_set_new(fields, "interval_s", json_integer(link_cfg(l)->repl_interval));
	struct link_backlog *bl = calloc(stream_count, sizeof(*bl));
	double rate;
	if (!bl || link_backlog(l, bl, &rate, err, errlen) != 0) {
		if (!bl)
			snprintf(err, errlen, "out of memory");
		free(bl);
		json_decref(fields);
		return NULL;
	}
	json_object_set_new(fields, "upload_rate_rows_s",
			    isnan(rate) ? json_null() : json_real(round(rate * 10) / 10));
	res = db_query(link_db(l),
		       "SELECT stream, rows_last, rows_total, acked_version FROM sync_stream_stats "
		       "ORDER BY stream",
		       0, NULL, err, errlen);
	if (!res) {
		free(bl);
		json_decref(fields);
		return NULL;
	}
	/* Every stream is listed, also one that never went up. */
	json_t *rows = json_array();
	for (size_t i = 0; i < stream_count; i++) {
		json_t *row = json_pack(
		    "[s, i, i, i, I, o]", bl[i].stream, 0, 0, 0, (json_int_t)bl[i].rows,
		    isnan(bl[i].age_s) ? json_null() : json_integer((json_int_t)bl[i].age_s));
		for (int r = 0; r < PQntuples(res); r++) {
			if (strcmp(PQgetvalue(res, r, 0), bl[i].stream) != 0)
				continue;
			for (int c = 1; c <= 3; c++)
				json_array_set_new(
				    row, (size_t)c,
				    json_integer(strtoll(PQgetvalue(res, r, c), NULL, 10)));
		}
		json_array_append_new(rows, row);
	}
	PQclear(res);
	free(bl);
	json_t *t = json_pack("{s:[s, s, s, s, s, s], s:o, s:o}", "columns", "stream", "rows_last",
			      "rows_total", "acked_version", "backlog_rows", "backlog_age_s",
			      "rows", rows, "fields", fields);
	return t;
}

/* Counts every stream's rows above its acknowledged watermark (backlog.h). */
static int backlog_count(struct link *l, char *err, size_t errlen)
{
	PGresult *res = db_query(link_db(l), "SELECT stream, acked_version FROM sync_stream_stats",
				 0, NULL, err, errlen);
	if (!res)
		return -1;
	for (size_t i = 0; i < stream_count; i++) {
		const char *acked = "0", *sql = backlog_count_sql(stream_defs[i].name);
		char n[24];
		for (int r = 0; r < PQntuples(res); r++)
			if (strcmp(PQgetvalue(res, r, 0), stream_defs[i].name) == 0)
				acked = PQgetvalue(res, r, 1);
		if (!sql ||
		    db_query_value(link_db(l), sql, 1, &acked, n, sizeof(n), err, errlen) != 0) {
			if (!sql)
				snprintf(err, errlen, "no backlog count for stream %s",
					 stream_defs[i].name);
			PQclear(res);
			return -1;
		}
		l->backlog[i] = strtoll(n, NULL, 10);
	}
	PQclear(res);
	res = db_query(link_db(l),
		       "SELECT extract(epoch FROM started_at) FROM sync_history WHERE ok "
		       "ORDER BY id DESC LIMIT 1",
		       0, NULL, err, errlen);
	if (!res)
		return -1;
	l->caught_up = PQntuples(res) == 1 ? strtod(PQgetvalue(res, 0, 0), NULL) : NAN;
	PQclear(res);
	l->backlog_at_ms = clk_mono_ms();
	return 0;
}

int link_backlog(struct link *l, struct link_backlog *out, double *rate, char *err, size_t errlen)
{
	int64_t now_ms = clk_mono_ms();
	if (!backlog_fresh(now_ms, l->backlog_at_ms, BACKLOG_CACHE_MS) &&
	    backlog_count(l, err, errlen) != 0)
		return -1;
	double now = clk_epoch();
	for (size_t i = 0; i < stream_count; i++) {
		out[i].stream = stream_defs[i].name;
		out[i].rows = l->backlog[i];
		out[i].age_s = backlog_age(l->backlog[i], now, l->caught_up);
	}
	*rate = l->upload_t0_ms > 0 ? backlog_rate(l->acked_rows, now_ms - l->upload_t0_ms)
				    : l->rate_last;
	return 0;
}

void link_start(struct link *l)
{
	char err[1024], reg[32];
	if (load_state(l, reg, sizeof(reg), err, sizeof(err)) != 0) {
		log_warnx("link: %s", err);
		return;
	}
	if (strcmp(reg, "registered") == 0) {
		/* First sync soon after start, then on the interval. */
		schedule_in(l, 1);
		return;
	}
	if (strcmp(reg, "none") == 0 && link_cfg(l)->master_token[0]) {
		char master[300];
		snprintf(master, sizeof(master), "%s:%d", link_cfg(l)->master_host,
			 link_cfg(l)->master_port);
		if (tls_token_parse(link_cfg(l)->master_token, &l->tok, err, sizeof(err)) != 0) {
			log_warnx("link: server.xml master/@token: %s", err);
			return;
		}
		snprintf(l->host, sizeof(l->host), "%s", link_cfg(l)->master_host);
		l->port = link_cfg(l)->master_port;
		snprintf(l->token, sizeof(l->token), "%s", link_cfg(l)->master_token);
		l->enrol_key = tls_key_generate(err, sizeof(err));
		l->ctx = l->enrol_key ? tls_client_ctx_pinned(err, sizeof(err)) : NULL;
		l->mode = LM_ENROL;
		if (!l->ctx || link_connect(l, l->ctx, false, err, sizeof(err)) != 0) {
			l->mode = LM_NONE;
			enrol_finish(l, false, err);
		}
		return;
	}
	log_notice("link: standalone (registration %s); register with 'strata-ctl register'", reg);
}

void link_reload(struct link *l)
{
	if (!l->in_session && evtimer_pending(l->timer, NULL))
		schedule_next(l);
}
