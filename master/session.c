#include "session.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent_ssl.h>

#include "agentproto.h"
#include "apply.h"
#include "chan.h"
#include "faultpoint.h"
#include "log.h"
#include "net.h"
#include "migrate.h"
#include "proto.h"
#include "publish.h"
#include "registry.h"
#include "stream.h"
#include "tally.h"

struct session {
	TAILQ_ENTRY(session) entry;
	struct master *m;
	struct chan *ch;
	char peer[64];
	enum proto_state pst;
	bool identified; /* first frame seen: certificate checked */
	bool authed;
	struct slave_ref slave;
	/* The current sync session, between HELLO and BYE. */
	bool in_sync;
	time_t started;
	json_t *watermarks; /* at HELLO: a stream at 0 may be copied straight in */
	json_t *rows;	    /* rows received per stream */
	int64_t pub_version; /* the slave's applied publication version */
	int64_t pub_pending; /* version of the DOWNLOAD awaiting its ACK */
	bool pub_more;
	int items_sent;
};

static void session_enter(struct session *s, enum proto_state next)
{
	if (s->pst != next)
		log_debug("session %s: %s -> %s", s->peer, proto_state_name(s->pst),
			  proto_state_name(next));
	s->pst = next;
}

static void record_outcome(struct session *s, bool ok, const char *error)
{
	struct db *db = s->m->d.db;
	char err[512], sid[16], started[24], items[16];
	char *rows = s->rows ? json_dumps(s->rows, JSON_COMPACT) : strdup("{}");
	snprintf(sid, sizeof(sid), "%d", s->slave.id);
	snprintf(started, sizeof(started), "%lld", (long long)s->started);
	snprintf(items, sizeof(items), "%d", s->items_sent);
	const char *p[] = { sid, started, ok ? "true" : "false", error, rows, items };
	if (db_exec(db,
		    "INSERT INTO sync_history (slave_id, started_at, ok, error, rows_received, "
		    "items_sent) VALUES ($1::int, to_timestamp($2::bigint), $3::boolean, $4, "
		    "$5::jsonb, $6::int)",
		    6, p, err, sizeof(err)) != 0 ||
	    db_exec(db,
		    "UPDATE slaves SET last_error = $2, last_sync_at = CASE WHEN $3::boolean "
		    "THEN now() ELSE last_sync_at END WHERE id = $1::int",
		    3, (const char *[]){ sid, error, ok ? "true" : "false" }, err, sizeof(err)) != 0)
		log_warnx("session %s: cannot record the sync outcome: %s", s->peer, err);
	free(rows);
}

static void session_fail(struct session *s, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Refuses, logs, records a failed sync when one was running, and closes. */
static void session_fail(struct session *s, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("session %s%s%s: %s", s->peer, s->authed ? " slave " : "",
		  s->authed ? s->slave.name : "", msg);
	if (s->in_sync) {
		record_outcome(s, false, msg);
		s->in_sync = false;
	}
	chan_send_error(s->ch, code, "%s", msg);
}

static void on_enrol(struct session *s, json_t *o)
{
	struct msg_enrol msg;
	char err[1024];
	char *cert = NULL;
	struct slave_ref ref;
	if (proto_decode_enrol(o, &msg, err, sizeof(err)) != 0) {
		session_fail(s, PROTO_ERR_PROTOCOL, "ENROL: %s", err);
		return;
	}
	int rc = reg_enrol(s->m->d.db, &s->m->pki, msg.token, msg.name, msg.csr, s->peer, &cert,
			   &ref, err, sizeof(err));
	if (rc == -1) {
		chan_send_error(s->ch, PROTO_ERR_TOKEN, "%s", err);
		return;
	}
	if (rc != 0) {
		(void)daemon_db_ensure(&s->m->d);
		session_fail(s, PROTO_ERR_INTERNAL, "enrolment failed on the master: %s", err);
		return;
	}
	char *ca = tls_cert_to_pem(s->m->pki.ca);
	json_t *reply = json_pack("{s:s, s:s}", "cert", cert, "ca", ca);
	chan_send_json(s->ch, MSG_ENROL_OK, reply);
	json_decref(reply);
	free(cert);
	free(ca);
	chan_close(s->ch, "enrolment done");
}

static void on_hello(struct session *s, json_t *o)
{
	struct msg_hello msg;
	char err[1024], sid[16], interval[16];
	FAULTPOINT("master.session.start");
	if (proto_decode_hello(o, &msg, err, sizeof(err)) != 0) {
		session_fail(s, PROTO_ERR_PROTOCOL, "HELLO: %s", err);
		return;
	}
	if (msg.proto != PROTO_VERSION) {
		session_fail(s, PROTO_ERR_VERSION, "protocol version %d is not supported (this "
			     "master speaks %d)", msg.proto, PROTO_VERSION);
		return;
	}
	if (strcmp(msg.slave, s->slave.name) != 0) {
		session_fail(s, PROTO_ERR_PROTOCOL, "HELLO names slave '%s' but the certificate "
			     "is for '%s'", msg.slave, s->slave.name);
		return;
	}
	if (msg.schema != migrate_latest(schema_slave)) {
		session_fail(s, PROTO_ERR_VERSION, "slave schema version %d differs from the "
			     "master's expected %d; upgrade both to the same release",
			     msg.schema, migrate_latest(schema_slave));
		return;
	}
	/* Temporary tables live as long as the database connection, which
	 * may have been re-established since the last session. */
	if (daemon_db_ensure(&s->m->d) != 0 || apply_prepare(s->m->d.db, err, sizeof(err)) != 0) {
		(void)daemon_db_ensure(&s->m->d);
		session_fail(s, PROTO_ERR_INTERNAL, "master database: %s",
			     db_alive(s->m->d.db) ? err : "not reachable");
		return;
	}
	json_decref(s->watermarks);
	s->watermarks = apply_watermarks(s->m->d.db, s->slave.id, err, sizeof(err));
	if (!s->watermarks) {
		(void)daemon_db_ensure(&s->m->d);
		session_fail(s, PROTO_ERR_INTERNAL, "master database: %s", err);
		return;
	}
	snprintf(sid, sizeof(sid), "%d", s->slave.id);
	snprintf(interval, sizeof(interval), "%d", msg.interval);
	const char *p[] = { sid, s->peer, interval };
	if (db_exec(s->m->d.db,
		    "UPDATE slaves SET last_attempt_at = now(), address = $2, "
		    "sync_interval = $3::int WHERE id = $1::int",
		    3, p, err, sizeof(err)) != 0)
		log_warnx("session %s: %s", s->peer, err);

	s->in_sync = true;
	s->started = time(NULL);
	json_decref(s->rows);
	s->rows = json_object();
	s->pub_version = msg.publication;
	s->items_sent = 0;
	json_t *w = json_pack("{s:O, s:s}", "watermarks", s->watermarks, "master",
			      s->m->d.cfg.name);
	chan_send_json(s->ch, MSG_WELCOME, w);
	json_decref(w);
	session_enter(s, PST_MASTER_UPLOAD);
	log_info("session %s: slave '%s' sync started", s->peer, s->slave.name);
}

static void on_upload_batch(struct session *s, const uint8_t *payload, size_t len)
{
	struct msg_upload_hdr hdr;
	struct upload_batch b;
	char err[1024];
	const char *copy;
	size_t copy_len;
	int64_t wm;
	json_t *o = proto_parse_bulk(payload, len, &copy, &copy_len, err, sizeof(err));
	if (!o) {
		session_fail(s, PROTO_ERR_PROTOCOL, "UPLOAD_BATCH: %s", err);
		return;
	}
	if (proto_decode_upload_hdr(o, &hdr, err, sizeof(err)) != 0) {
		json_decref(o);
		session_fail(s, PROTO_ERR_PROTOCOL, "UPLOAD_BATCH: %s", err);
		return;
	}
	b.stream = stream_find(hdr.stream);
	if (!b.stream) {
		session_fail(s, PROTO_ERR_PROTOCOL, "UPLOAD_BATCH: unknown stream '%s'", hdr.stream);
		json_decref(o);
		return;
	}
	b.from = hdr.from;
	b.to = hdr.to;
	b.rows = hdr.rows;
	b.copy = copy;
	b.copy_len = copy_len;
	bool fresh = json_integer_value(json_object_get(s->watermarks, b.stream->name)) == 0;
	int rc = apply_batch(s->m->d.db, s->slave.id, &b, fresh || b.stream->append_only, &wm, err,
			     sizeof(err));
	if (rc == -1) {
		session_fail(s, PROTO_ERR_PROTOCOL, "%s", err);
	} else if (rc != 0) {
		(void)daemon_db_ensure(&s->m->d);
		session_fail(s, PROTO_ERR_INTERNAL, "master database: %s", err);
	} else {
		FAULTPOINT("master.batch.committed");
		json_t *n = json_object_get(s->rows, b.stream->name);
		json_object_set_new(s->rows, b.stream->name,
				    json_integer(json_integer_value(n) + b.rows));
		json_t *ack = json_pack("{s:s, s:I}", "stream", b.stream->name, "watermark",
					(json_int_t)wm);
		chan_send_json(s->ch, MSG_UPLOAD_ACK, ack);
		json_decref(ack);
	}
	json_decref(o);
}

static void send_download(struct session *s)
{
	char err[1024];
	int items;
	json_t *d = publish_chunk(s->m->d.db, s->slave.name, s->pub_version, &s->pub_pending,
				  &s->pub_more, &items, err, sizeof(err));
	if (!d) {
		(void)daemon_db_ensure(&s->m->d);
		session_fail(s, PROTO_ERR_INTERNAL, "master database: %s", err);
		return;
	}
	s->items_sent += items;
	chan_send_json(s->ch, MSG_DOWNLOAD, d);
	if (faultpoint_armed) {
		char *text = json_dumps(d, JSON_COMPACT);
		chan_faultpoint_midframe(s->ch, "master.download.midframe",
					 text ? strlen(text) : 0);
		free(text);
	}
	json_decref(d);
}

static void on_download_ack(struct session *s, json_t *o)
{
	json_int_t v;
	char err[512], sid[16], vs[24];
	if (json_unpack(o, "{s:I !}", "version", &v) != 0 || v != s->pub_pending) {
		session_fail(s, PROTO_ERR_PROTOCOL, "DOWNLOAD_ACK must carry {\"version\": %" PRId64
			     "}", s->pub_pending);
		return;
	}
	FAULTPOINT("master.download.acked");
	s->pub_version = v;
	snprintf(sid, sizeof(sid), "%d", s->slave.id);
	snprintf(vs, sizeof(vs), "%" PRId64, (int64_t)v);
	const char *p[] = { sid, vs };
	if (db_exec(s->m->d.db, "UPDATE slaves SET publication_version = $2::bigint WHERE id = $1::int",
		    2, p, err, sizeof(err)) != 0)
		log_warnx("session %s: %s", s->peer, err);
	if (s->pub_more)
		send_download(s);
}

static void on_bye(struct session *s)
{
	FAULTPOINT("master.session.end");
	json_t *empty = json_object();
	record_outcome(s, true, NULL);
	s->in_sync = false;
	char *rows = json_dumps(s->rows, JSON_COMPACT);
	log_notice("session %s: slave '%s' sync done in %lld s: rows %s, %d items sent", s->peer,
		   s->slave.name, (long long)(time(NULL) - s->started), rows, s->items_sent);
	free(rows);
	chan_send_json(s->ch, MSG_BYE_OK, empty);
	json_decref(empty);
	session_enter(s, PST_MASTER_AUTHED);
}

static void on_unregister(struct session *s)
{
	char err[512];
	int id;
	if (reg_slave_remove(s->m->d.db, s->slave.name, false, &id, err, sizeof(err)) != 0) {
		session_fail(s, PROTO_ERR_INTERNAL, "unregister failed: %s", err);
		return;
	}
	s->authed = false;
	json_t *empty = json_object();
	chan_send_json(s->ch, MSG_BYE_OK, empty);
	json_decref(empty);
	chan_close(s->ch, "slave unregistered itself");
}

/* The first frame tells which kind of peer this is. */
static int identify(struct session *s)
{
	char err[1024];
	X509 *cert = tls_peer_cert(chan_ssl(s->ch));
	s->identified = true;
	if (!cert) {
		session_enter(s, PST_MASTER_PREAUTH);
		return 0;
	}
	int rc = reg_authorize(s->m->d.db, cert, &s->slave, err, sizeof(err));
	X509_free(cert);
	if (rc == -1) {
		session_fail(s, PROTO_ERR_UNREGISTERED, "%s", err);
		return -1;
	}
	if (rc != 0) {
		(void)daemon_db_ensure(&s->m->d);
		session_fail(s, PROTO_ERR_INTERNAL, "master database: %s", err);
		return -1;
	}
	s->authed = true;
	chan_set_max_frame(s->ch, (uint32_t)s->m->d.cfg.frame_max);
	session_enter(s, PST_MASTER_AUTHED);
	log_info("session %s: authenticated as slave '%s'", s->peer, s->slave.name);
	return 0;
}

/* An agent's frame sent to the sync port is named by the agent protocol in the log. */
static const char *msg_name(uint16_t type)
{
	const char *name = proto_msg_name(type);
	return strcmp(name, "UNKNOWN") == 0 ? agentproto_msg_name(type) : name;
}

static void on_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
		       void *arg)
{
	struct session *s = arg;
	char err[512];
	if (!s->identified) {
		chan_set_timeout(ch, s->m->d.cfg.session_timeout);
		if (identify(s) != 0)
			return;
	}
	if (type == MSG_ERROR) {
		json_t *o = proto_parse_json(payload, len, err, sizeof(err));
		struct msg_error e;
		if (o && proto_decode_error(o, &e, err, sizeof(err)) == 0)
			session_fail(s, PROTO_ERR_PROTOCOL, "slave reported %s: %s", e.code,
				     e.message);
		else
			session_fail(s, PROTO_ERR_PROTOCOL, "malformed ERROR from slave");
		json_decref(o);
		return;
	}
	if (!proto_allowed(s->pst, type)) {
		session_fail(s, PROTO_ERR_PROTOCOL, "message %s (type %u) is not allowed in state %s",
			     msg_name(type), type, proto_state_name(s->pst));
		return;
	}
	if (type == MSG_UPLOAD_BATCH) {
		on_upload_batch(s, payload, len);
		return;
	}
	json_t *o = proto_parse_json(payload, len, err, sizeof(err));
	if (!o) {
		session_fail(s, PROTO_ERR_PROTOCOL, "%s: %s", proto_msg_name(type), err);
		return;
	}
	int bad = 0;
	if (type == MSG_UPLOAD_DONE || type == MSG_PING || type == MSG_UNREGISTER)
		bad = proto_decode_empty(o, type, err, sizeof(err));
	else if (type == MSG_BYE)
		bad = proto_decode_bye(o, err, sizeof(err));
	if (bad) {
		json_decref(o);
		session_fail(s, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	switch (type) {
	case MSG_ENROL:
		on_enrol(s, o);
		break;
	case MSG_HELLO:
		on_hello(s, o);
		break;
	case MSG_UPLOAD_DONE:
		session_enter(s, PST_MASTER_DOWNLOAD);
		send_download(s);
		break;
	case MSG_DOWNLOAD_ACK:
		on_download_ack(s, o);
		break;
	case MSG_BYE:
		on_bye(s);
		break;
	case MSG_PING: {
		json_t *e = json_object();
		chan_send_json(ch, MSG_PONG, e);
		json_decref(e);
		break;
	}
	case MSG_UNREGISTER:
		on_unregister(s);
		break;
	default:
		session_fail(s, PROTO_ERR_PROTOCOL, "unexpected message %s", proto_msg_name(type));
	}
	json_decref(o);
}

static void on_close(struct chan *ch, const char *reason, void *arg)
{
	struct session *s = arg;
	if (s->in_sync) {
		log_warnx("session %s: slave '%s' sync aborted: %s", s->peer, s->slave.name, reason);
		record_outcome(s, false, reason);
	} else if (!s->authed && chan_timed_out(ch)) {
		/* Idle or half-open sockets come by the thousand in a flood: counted. */
		log_debug("session %s: closed: %s", s->peer, reason);
		tally_add(s->m->preauth_cut);
	} else {
		log_info("session %s: closed: %s", s->peer, reason);
	}
	TAILQ_REMOVE(&s->m->sessions, s, entry);
	s->m->nsessions--;
	json_decref(s->watermarks);
	json_decref(s->rows);
	free(s);
}

static const struct chan_cbs session_cbs = {
	.on_message = on_message,
	.on_close = on_close,
};

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	struct master *m = arg;
	char host[INET6_ADDRSTRLEN];
	int port;
	net_peer(sa, host, sizeof(host), &port);
	SSL *ssl = SSL_new(m->pki.ctx);
	if (!ssl) {
		log_warnx("session: cannot create a TLS session for %s", host);
		evutil_closesocket(fd);
		return;
	}
	struct bufferevent *bev = bufferevent_openssl_socket_new(
		m->d.base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		return;
	}
	struct session *s = calloc(1, sizeof(*s));
	if (!s) {
		bufferevent_free(bev);
		return;
	}
	s->m = m;
	snprintf(s->peer, sizeof(s->peer), "%s:%d", host, port);
	s->pst = PST_MASTER_PREAUTH;
	s->ch = chan_new(m->d.base, bev, s->peer, (uint32_t)m->d.cfg.frame_max_preauth,
			 &session_cbs, s);
	if (!s->ch) {
		free(s);
		return;
	}
	TAILQ_INSERT_TAIL(&m->sessions, s, entry);
	m->nsessions++;
	chan_set_timeout(s->ch, m->d.cfg.handshake_timeout);
	if (m->nsessions > m->d.cfg.max_sessions) {
		log_debug("session %s: refused, %d sessions open (limit %d)", s->peer,
			  m->nsessions - 1, m->d.cfg.max_sessions);
		tally_add(m->refused);
		chan_send_error(s->ch, PROTO_ERR_BUSY, "the master has too many sessions; retry later");
	}
}

int session_listen(struct master *m, char *err, size_t errlen)
{
	TAILQ_INIT(&m->sessions);
	m->preauth_cut = tally_new(m->d.base, 10, "session",
				   "connections closed by handshake-timeout before HELLO");
	m->refused = tally_new(m->d.base, 10, "session",
			       "connections refused (busy): max-sessions reached");
	if (!m->preauth_cut || !m->refused) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	m->listener = net_listen(m->d.base, "sync-listen", m->d.cfg.listen_address,
				 m->d.cfg.listen_port, false, 128, on_accept, m, err, errlen);
	if (!m->listener)
		return -1;
	log_notice("session: listening for slaves on %s:%d (TLS 1.3)", m->d.cfg.listen_address,
		   m->d.cfg.listen_port);
	return 0;
}

void session_shutdown(struct master *m)
{
	struct session *s;
	if (m->listener) {
		evconnlistener_free(m->listener);
		m->listener = NULL;
	}
	/* Logs what it still counts; sessions closed after this are not counted. */
	tally_free(m->preauth_cut);
	m->preauth_cut = NULL;
	tally_free(m->refused);
	m->refused = NULL;
	TAILQ_FOREACH(s, &m->sessions, entry)
	chan_close(s->ch, "master shutting down");
}

static struct session *find_slave(struct master *m, int slave_id)
{
	struct session *s;
	TAILQ_FOREACH(s, &m->sessions, entry)
	if (s->authed && s->slave.id == slave_id && !chan_is_closed(s->ch))
		return s;
	return NULL;
}

int session_request_sync(struct master *m, int slave_id)
{
	struct session *s = find_slave(m, slave_id);
	if (!s)
		return 0;
	if (s->in_sync)
		return 2;
	json_t *e = json_object();
	chan_send_json(s->ch, MSG_SYNC_REQUEST, e);
	json_decref(e);
	return 1;
}

void session_kick(struct master *m, int slave_id, const char *reason)
{
	struct session *s = find_slave(m, slave_id);
	if (s) {
		s->in_sync = false;
		s->authed = false;
		chan_send_error(s->ch, PROTO_ERR_UNREGISTERED, "%s", reason);
	}
}
