#include "relay.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>

#include "agentproto.h"
#include "chan.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "tls.h"

#define RETRY_MIN   1
#define RETRY_MAX   30
#define VID_BUCKETS 4096
/* Agents' frames queued for the slave beyond this pause every agent until
 * the link drains below the low mark: a slow slave costs the point bounded
 * memory, and agents keep what they could not send (their queue is on disk). */
#define LINK_HIGH_WATER (4u << 20)
#define LINK_LOW_WATER	(1u << 20)

/* One agent connection. */
struct agent {
	TAILQ_ENTRY(agent) entry;
	struct agent *vnext;
	struct relay *r;
	struct chan *ch;
	uint64_t vid; /* 0 until announced with A_DP_OPEN */
	bool ended;   /* the slave ended it: no A_DP_CLOSE back */
	char ip[INET6_ADDRSTRLEN];
	char peer[64];
};
TAILQ_HEAD(agent_list, agent);

struct relay {
	struct daemon *d;
	EVP_PKEY *key;
	X509 *cert, *ca;
	int64_t dp_id;
	SSL_CTX *server_ctx, *client_ctx;
	struct evconnlistener *listener;
	struct chan *link;
	bool link_up, enrolling, enrolled_now, stopping;
	bool paused; /* agents are not read: the link is past LINK_HIGH_WATER */
	int backoff;
	struct event *retry_ev, *load_ev;
	struct agent_list agents;
	int nagents;
	uint64_t next_vid;
	struct agent *byvid[VID_BUCKETS];
	char token[512];
};

static char *data_path(const struct relay *r, const char *name, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", r->d->cfg.data_dir, name);
	if (n < 0 || (size_t)n >= len)
		buf[0] = '\0'; /* cfg keeps data-dir below PATH_MAX: cannot happen */
	return buf;
}

/* The first of <push hosts>: the address agents are sent to. */
static void public_host(const struct cfg *cfg, char *out, size_t len)
{
	size_t n = strcspn(cfg->push_hosts, ",");
	snprintf(out, len, "%.*s", (int)n, cfg->push_hosts);
}

/* ---- agents ---- */

static struct agent **vid_slot(struct relay *r, uint64_t vid)
{
	return &r->byvid[vid % VID_BUCKETS];
}

static struct agent *vid_find(struct relay *r, uint64_t vid)
{
	for (struct agent *a = *vid_slot(r, vid); a; a = a->vnext)
		if (a->vid == vid)
			return a;
	return NULL;
}

static void vid_remove(struct agent *a)
{
	for (struct agent **pp = vid_slot(a->r, a->vid); *pp; pp = &(*pp)->vnext)
		if (*pp == a) {
			*pp = a->vnext;
			return;
		}
}

static void link_send_json(struct relay *r, uint16_t type, json_t *o)
{
	if (o && r->link && r->link_up)
		chan_send_json(r->link, type, o);
	json_decref(o);
}

static void agent_on_connected(struct chan *ch, void *arg)
{
	struct agent *a = arg;
	struct relay *r = a->r;
	unsigned char ekm[AGENT_EXPORTER_LEN];
	char hex[2 * AGENT_EXPORTER_LEN + 1];
	if (!r->link_up) {
		chan_close(ch, "no link to the slave");
		return;
	}
	if (agentproto_exporter(chan_ssl(ch), ekm) != 0) {
		chan_close(ch, "cannot export the session's keying material");
		return;
	}
	agentproto_to_hex(ekm, sizeof(ekm), hex);
	a->vid = ++r->next_vid;
	struct agent **slot = vid_slot(r, a->vid);
	a->vnext = *slot;
	*slot = a;
	link_send_json(
	    r, A_DP_OPEN,
	    json_pack("{s:I, s:s, s:s}", "vid", (json_int_t)a->vid, "address", a->ip, "ekm", hex));
}

/* Stops or resumes reading every agent while the link to the slave is backed up. */
static void set_paused(struct relay *r, bool paused)
{
	struct agent *a;
	if (r->paused == paused)
		return;
	r->paused = paused;
	TAILQ_FOREACH (a, &r->agents, entry)
		chan_set_reading(a->ch, !paused);
	if (paused)
		log_warnx(
		    "dp: %zu bytes wait for the slave; not reading agents until it catches up",
		    r->link ? chan_output_pending(r->link) : 0);
	else
		log_notice("dp: the slave caught up; reading agents again");
}

/* An agent's frame goes to the slave as it came. */
static void agent_on_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
			     void *arg)
{
	struct agent *a = arg;
	struct relay *r = a->r;
	if (a->vid == 0 || !r->link_up) {
		chan_close(ch, "no link to the slave");
		return;
	}
	uint8_t *buf = malloc(DP_FRAME_HDR + len);
	if (!buf) {
		chan_close(ch, "out of memory");
		return;
	}
	agentproto_dp_frame_hdr(buf, a->vid, type);
	memcpy(buf + DP_FRAME_HDR, payload, len);
	chan_send(r->link, A_DP_FRAME, buf, DP_FRAME_HDR + len);
	free(buf);
	if (!r->paused && chan_output_pending(r->link) > LINK_HIGH_WATER)
		set_paused(r, true);
}

static void agent_on_close(struct chan *ch, const char *reason, void *arg)
{
	struct agent *a = arg;
	struct relay *r = a->r;
	(void)ch;
	if (a->vid != 0) {
		vid_remove(a);
		if (!a->ended)
			link_send_json(
			    r, A_DP_CLOSE,
			    json_pack("{s:I, s:s}", "vid", (json_int_t)a->vid, "reason", reason));
	}
	log_debug("dp %s: closed: %s", a->peer, reason);
	TAILQ_REMOVE(&r->agents, a, entry);
	r->nagents--;
	free(a);
}

static const struct chan_cbs agent_cbs = {
	.on_message = agent_on_message,
	.on_connected = agent_on_connected,
	.on_close = agent_on_close,
};

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	struct relay *r = arg;
	(void)l;
	(void)salen;
	/* Without the slave nothing can be answered: the agent goes back to its slave. */
	if (!r->link_up || r->nagents >= r->d->cfg.push_max_connections) {
		evutil_closesocket(fd);
		return;
	}
	struct agent *a = calloc(1, sizeof(*a));
	if (!a) {
		evutil_closesocket(fd);
		return;
	}
	int port;
	net_peer(sa, a->ip, sizeof(a->ip), &port);
	snprintf(a->peer, sizeof(a->peer), "%s:%d", a->ip, port);
	SSL *ssl = SSL_new(r->server_ctx);
	struct bufferevent *bev =
	    ssl ? bufferevent_openssl_socket_new(r->d->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING,
						 BEV_OPT_CLOSE_ON_FREE)
		: NULL;
	if (!bev) {
		SSL_free(ssl);
		evutil_closesocket(fd);
		free(a);
		return;
	}
	a->r = r;
	a->ch = chan_new(r->d->base, bev, a->peer, (uint32_t)r->d->cfg.frame_max_preauth,
			 &agent_cbs, a);
	if (!a->ch) {
		free(a);
		return;
	}
	/* The slave's A_AUTH_OK (seen in relay) lifts the limit and the timeout. */
	chan_set_timeout(a->ch, r->d->cfg.handshake_timeout);
	if (r->paused)
		chan_set_reading(a->ch, false);
	TAILQ_INSERT_TAIL(&r->agents, a, entry);
	r->nagents++;
}

/* ---- the link ---- */

static void link_connect(struct relay *r);

static void schedule_retry(struct relay *r)
{
	struct timeval tv = { r->backoff, 0 };
	log_info("dp: next attempt to reach the slave in %d s", r->backoff);
	evtimer_add(r->retry_ev, &tv);
	r->backoff = r->backoff * 2 > RETRY_MAX ? RETRY_MAX : r->backoff * 2;
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	(void)fd;
	(void)what;
	link_connect(arg);
}

static void on_load(evutil_socket_t fd, short what, void *arg)
{
	struct relay *r = arg;
	(void)fd;
	(void)what;
	link_send_json(r, A_DP_LOAD, json_pack("{s:i}", "connections", r->nagents));
}

/* A frame from the slave for one agent. */
static void relay_down(struct relay *r, const uint8_t *payload, size_t len)
{
	uint64_t vid;
	uint16_t type;
	char err[256];
	if (agentproto_dp_frame_split(payload, len, &vid, &type) != 0) {
		log_warnx("dp: the slave sent an A_DP_FRAME shorter than its header");
		return;
	}
	struct agent *a = vid_find(r, vid);
	if (!a)
		return; /* that agent left meanwhile */
	const uint8_t *inner = payload + DP_FRAME_HDR;
	size_t n = len - DP_FRAME_HDR;
	/* The agent's heartbeat interval, from A_AUTH_OK and then from each
	 * policy, sets how long its connection may stay silent. */
	if (type == A_AUTH_OK) {
		json_t *o = proto_parse_json(inner, n, err, sizeof(err));
		struct amsg_auth_ok m;
		if (o && agentproto_decode_auth_ok(o, &m, err, sizeof(err)) == 0) {
			chan_set_max_frame(a->ch, (uint32_t)r->d->cfg.frame_max);
			chan_set_timeout(a->ch, 3 * m.heartbeat + 5);
		}
		json_decref(o);
	} else if (type == A_POLICY) {
		json_t *o = proto_parse_json(inner, n, err, sizeof(err));
		struct amsg_policy m;
		int hb;
		if (o && agentproto_decode_policy(o, &m, err, sizeof(err)) == 0 &&
		    agentproto_policy_heartbeat(m.settings, &hb, err, sizeof(err)) == 1)
			chan_set_timeout(a->ch, 3 * hb + 5);
		json_decref(o);
	}
	chan_send(a->ch, type, inner, n);
}

static void enrolled(struct relay *r, json_t *o)
{
	struct amsg_dp_enrol_ok m;
	char err[1024], path[4096], id[32];
	if (agentproto_decode_dp_enrol_ok(o, &m, err, sizeof(err)) != 0)
		log_fatalx("enrolment: %s", err);
	X509 *cert = tls_cert_from_pem(m.cert, err, sizeof(err));
	if (!cert)
		log_fatalx("enrolment: the slave's certificate: %s", err);
	/* The key is saved last: its presence means "enrolled". */
	snprintf(id, sizeof(id), "%" PRId64 "\n", m.dp_id);
	FILE *f = fopen(data_path(r, "dp.id", path, sizeof(path)), "w");
	if (!f || fputs(id, f) < 0 || fclose(f) != 0)
		log_fatalx("enrolment: cannot write %s", path);
	if (tls_cert_save(cert, data_path(r, "dp.crt", path, sizeof(path)), err, sizeof(err)) !=
		0 ||
	    tls_cert_save(r->ca, data_path(r, "ca.crt", path, sizeof(path)), err, sizeof(err)) !=
		0 ||
	    tls_key_save(r->key, data_path(r, "dp.key", path, sizeof(path)), err, sizeof(err)) != 0)
		log_fatalx("enrolment: %s", err);
	r->cert = cert;
	r->dp_id = m.dp_id;
	log_notice("dp: enrolled with the slave as distribution point %" PRId64, m.dp_id);
}

static int make_contexts(struct relay *r, char *err, size_t errlen);

static void link_on_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
			    void *arg)
{
	struct relay *r = arg;
	char err[1024];
	if (type == A_DP_FRAME && r->link_up) {
		relay_down(r, payload, len);
		return;
	}
	json_t *o = proto_parse_json(payload, len, err, sizeof(err));
	if (!o) {
		chan_send_error(ch, PROTO_ERR_PROTOCOL, "%s: %s", agentproto_msg_name(type), err);
		return;
	}
	if (type == MSG_ERROR) {
		struct msg_error e;
		if (proto_decode_error(o, &e, err, sizeof(err)) != 0)
			snprintf(err, sizeof(err), "(unreadable ERROR)");
		/* A refused token or a removed point will not get better by retrying. */
		if (r->enrolling || strcmp(e.code, PROTO_ERR_UNREGISTERED) == 0)
			log_fatalx("the slave refused this distribution point: %s: %s", e.code,
				   e.message);
		log_warnx("dp: the slave reported %s: %s", e.code, e.message);
		chan_close(ch, "slave sent ERROR");
	} else if (type == A_DP_ENROL_OK && r->enrolling) {
		enrolled(r, o);
		r->enrolling = false;
		r->enrolled_now = true;
		if (make_contexts(r, err, sizeof(err)) != 0)
			log_fatalx("%s", err);
		chan_close(ch, "enrolment done");
	} else if (type == A_DP_AUTH_OK && !r->link_up && !r->enrolling) {
		int64_t hb;
		if (agentproto_decode_count(o, "A_DP_AUTH_OK", "heartbeat", 86400, &hb, err,
					    sizeof(err)) != 0) {
			chan_send_error(ch, PROTO_ERR_PROTOCOL, "%s", err);
		} else {
			r->link_up = true;
			r->backoff = RETRY_MIN;
			chan_set_max_frame(ch, (uint32_t)r->d->cfg.frame_max + DP_FRAME_HDR);
			chan_set_drain(ch, LINK_LOW_WATER);
			chan_set_timeout(ch, DP_SILENCE_S);
			struct timeval tv = { DP_LOAD_S, 0 };
			event_add(r->load_ev, &tv);
			on_load(-1, 0, r);
			log_notice("dp: linked to the slave %s:%d; agents are welcome",
				   r->d->cfg.slave_host, r->d->cfg.slave_port);
		}
	} else if (type == A_DP_LOAD && r->link_up) {
		int64_t n;
		if (agentproto_decode_count(o, "A_DP_LOAD", "connections", 10000000, &n, err,
					    sizeof(err)) != 0)
			chan_send_error(ch, PROTO_ERR_PROTOCOL, "%s", err);
		else
			log_debug("dp: the slave holds %" PRId64 " of our %d agents", n,
				  r->nagents);
	} else if (type == A_DP_CLOSE && r->link_up) {
		struct amsg_dp_close m;
		if (agentproto_decode_dp_close(o, &m, err, sizeof(err)) != 0) {
			chan_send_error(ch, PROTO_ERR_PROTOCOL, "%s", err);
		} else {
			struct agent *a = vid_find(r, m.vid);
			if (a) {
				a->ended = true;
				chan_close(a->ch, m.reason);
			}
		}
	} else {
		chan_send_error(ch, PROTO_ERR_PROTOCOL, "unexpected message %s",
				agentproto_msg_name(type));
	}
	json_decref(o);
}

static void link_on_connected(struct chan *ch, void *arg)
{
	struct relay *r = arg;
	char err[1024], sig[129], host[256];
	json_t *m;
	if (r->enrolling) {
		struct enrol_token tok;
		X509 *ca = NULL;
		if (tls_token_parse(r->token, &tok, err, sizeof(err)) != 0)
			log_fatalx("slave/@token: %s", err);
		if (tls_check_pin(chan_ssl(ch), tok.pin, &ca, err, sizeof(err)) != 0) {
			log_warnx("dp: %s:%d is not the slave the token names: %s",
				  r->d->cfg.slave_host, r->d->cfg.slave_port, err);
			chan_close(ch, "CA pin mismatch");
			return;
		}
		X509_free(r->ca);
		r->ca = ca;
		X509_REQ *req = tls_csr_create(r->key, r->d->cfg.name, err, sizeof(err));
		char *csr = req ? tls_csr_to_pem(req) : NULL;
		X509_REQ_free(req);
		if (!csr)
			log_fatalx("cannot make a certificate request: %s", err);
		public_host(&r->d->cfg, host, sizeof(host));
		m = json_pack("{s:i, s:s, s:s, s:s, s:s, s:i}", "proto", AGENT_PROTO_VERSION,
			      "token", r->token, "name", r->d->cfg.name, "csr", csr, "address",
			      host, "port", r->d->cfg.push_port);
		free(csr);
		chan_send_json(ch, A_DP_ENROL, m);
		json_decref(m);
		return;
	}
	if (agentproto_sign(chan_ssl(ch), r->key, sig) != 0) {
		chan_close(ch, "cannot sign the session with the distribution point's key");
		return;
	}
	m = json_pack("{s:i, s:I, s:s}", "proto", AGENT_PROTO_VERSION, "dp_id",
		      (json_int_t)r->dp_id, "sig", sig);
	chan_send_json(ch, A_DP_AUTH, m);
	json_decref(m);
}

static void link_on_close(struct chan *ch, const char *reason, void *arg)
{
	struct relay *r = arg;
	struct agent *a;
	(void)ch;
	bool was_up = r->link_up;
	r->link = NULL;
	r->link_up = false;
	r->paused = false;
	event_del(r->load_ev);
	/* Its agents cannot be served: they go back to their slave. */
	TAILQ_FOREACH (a, &r->agents, entry) {
		a->ended = true;
		chan_close(a->ch, "the distribution point lost its slave");
	}
	if (r->stopping)
		return;
	if (r->enrolled_now) {
		r->enrolled_now = false;
		link_connect(r);
		return;
	}
	if (was_up)
		log_warnx("dp: link to the slave closed: %s", reason);
	else
		log_warnx("dp: cannot reach the slave %s:%d: %s", r->d->cfg.slave_host,
			  r->d->cfg.slave_port, reason);
	if (!r->enrolling && was_up)
		r->backoff = RETRY_MIN;
	schedule_retry(r);
}

static void link_on_drain(struct chan *ch, void *arg)
{
	struct relay *r = arg;
	(void)ch;
	if (r->paused)
		set_paused(r, false);
}

static const struct chan_cbs link_cbs = {
	.on_drain = link_on_drain,
	.on_message = link_on_message,
	.on_connected = link_on_connected,
	.on_close = link_on_close,
};

static void link_connect(struct relay *r)
{
	char peer[300];
	const struct cfg *cfg = &r->d->cfg;
	if (r->link || r->stopping)
		return;
	SSL *ssl = SSL_new(r->client_ctx);
	if (!ssl) {
		log_warnx("dp: cannot set up TLS");
		schedule_retry(r);
		return;
	}
	SSL_set_tlsext_host_name(ssl, cfg->slave_host);
	/* Enrolment checks the pin instead; the link checks the name too. */
	if (!r->enrolling && SSL_set1_host(ssl, cfg->slave_host) != 1) {
		SSL_free(ssl);
		log_warnx("dp: cannot set the expected host name %s", cfg->slave_host);
		schedule_retry(r);
		return;
	}
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    r->d->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		schedule_retry(r);
		return;
	}
	snprintf(peer, sizeof(peer), "%s:%d", cfg->slave_host, cfg->slave_port);
	r->link = chan_new(r->d->base, bev, peer, 65536, &link_cbs, r);
	if (!r->link) {
		schedule_retry(r);
		return;
	}
	chan_set_timeout(r->link, cfg->handshake_timeout);
	if (bufferevent_socket_connect_hostname(bev, NULL, AF_UNSPEC, cfg->slave_host,
						cfg->slave_port) != 0)
		chan_close(r->link, "cannot connect");
}

/* ---- identity ---- */

static int make_contexts(struct relay *r, char *err, size_t errlen)
{
	SSL_CTX_free(r->client_ctx);
	r->client_ctx = tls_client_ctx(NULL, NULL, r->ca, err, errlen);
	if (!r->client_ctx)
		return -1;
	r->server_ctx = tls_server_ctx(r->key, r->cert, r->ca, err, errlen);
	if (!r->server_ctx)
		return -1;
	/* Agents prove a key after the handshake; they send no certificate. */
	SSL_CTX_set_verify(r->server_ctx, SSL_VERIFY_NONE, NULL);
	return 0;
}

static int load_identity(struct relay *r, char *err, size_t errlen)
{
	char path[PATH_MAX + 16], id[32] = "";
	if (access(data_path(r, "dp.key", path, sizeof(path)), F_OK) != 0)
		return 1;
	r->key = tls_key_load(path, err, errlen);
	if (!r->key)
		return -1;
	r->cert = tls_cert_load(data_path(r, "dp.crt", path, sizeof(path)), err, errlen);
	if (!r->cert)
		return -1;
	r->ca = tls_cert_load(data_path(r, "ca.crt", path, sizeof(path)), err, errlen);
	if (!r->ca)
		return -1;
	FILE *f = fopen(data_path(r, "dp.id", path, sizeof(path)), "r");
	char *end = NULL;
	if (f) {
		if (!fgets(id, sizeof(id), f))
			id[0] = '\0';
		fclose(f);
	}
	r->dp_id = strtoll(id, &end, 10);
	if (r->dp_id < 1 || (end && *end != '\n' && *end != '\0')) {
		snprintf(err, errlen, "%s does not hold a distribution point id", path);
		return -1;
	}
	return 0;
}

static int open_listener(struct relay *r, char *err, size_t errlen)
{
	const struct cfg *cfg = &r->d->cfg;
	r->listener = net_listen(r->d->base, "push", cfg->push_address, cfg->push_port, false, 512,
				 on_accept, r, err, errlen);
	return r->listener ? 0 : -1;
}

struct relay *relay_start(struct daemon *d, char *err, size_t errlen)
{
	struct relay *r = calloc(1, sizeof(*r));
	if (!r) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	r->d = d;
	r->backoff = RETRY_MIN;
	TAILQ_INIT(&r->agents);
	r->retry_ev = evtimer_new(d->base, on_retry, r);
	r->load_ev = event_new(d->base, -1, EV_PERSIST, on_load, r);
	if (!r->retry_ev || !r->load_ev) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	int rc = load_identity(r, err, errlen);
	if (rc < 0)
		goto fail;
	if (rc == 1) {
		if (d->cfg.slave_token[0] == '\0') {
			snprintf(err, errlen,
				 "not enrolled yet: set <slave token=\"...\"> to a "
				 "token from \"strata-ctl dp-token create\" on the slave");
			goto fail;
		}
		snprintf(r->token, sizeof(r->token), "%s", d->cfg.slave_token);
		r->key = tls_key_generate(err, errlen);
		r->client_ctx = r->key ? tls_client_ctx_pinned(err, errlen) : NULL;
		if (!r->client_ctx)
			goto fail;
		r->enrolling = true;
		log_notice("dp: enrolling with the slave %s:%d", d->cfg.slave_host,
			   d->cfg.slave_port);
	} else if (make_contexts(r, err, errlen) != 0) {
		goto fail;
	}
	if (open_listener(r, err, errlen) != 0)
		goto fail;
	link_connect(r);
	return r;
fail:
	relay_free(r);
	return NULL;
}

void relay_shutdown(struct relay *r)
{
	if (!r)
		return;
	r->stopping = true;
	if (r->listener) {
		evconnlistener_free(r->listener);
		r->listener = NULL;
	}
	if (r->link)
		chan_close(r->link, "distribution point shutting down");
	else {
		struct agent *a;
		TAILQ_FOREACH (a, &r->agents, entry)
			chan_close(a->ch, "distribution point shutting down");
	}
}

void relay_free(struct relay *r)
{
	if (!r)
		return;
	if (r->listener)
		evconnlistener_free(r->listener);
	if (r->retry_ev)
		event_free(r->retry_ev);
	if (r->load_ev)
		event_free(r->load_ev);
	SSL_CTX_free(r->server_ctx);
	SSL_CTX_free(r->client_ctx);
	X509_free(r->cert);
	X509_free(r->ca);
	EVP_PKEY_free(r->key);
	free(r);
}
