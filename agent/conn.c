#include "conn.h"

#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/bufferevent_ssl.h>
#include <openssl/rand.h>

#include "agentproto.h"
#include "cadence.h"
#include "log.h"
#include "proto.h"
#include "queue.h"
#include "route.h"
#include "state.h"
#include "tasks.h"
#include "tls.h"

enum aconn_state {
	CS_IDLE,       /* no connection; the retry timer decides when */
	CS_CONNECTING, /* TCP + TLS handshake */
	CS_AUTH_WAIT,  /* A_AUTH sent */
	CS_AUTHED,     /* commands, acks, policy */
	CS_BYE_WAIT,   /* poll mode: A_BYE sent, waiting for A_BYE_OK and the last acks */
	CS_STOPPED,    /* SIGTERM: nothing more */
};

static const char *const state_names[] = { "idle",   "connecting", "auth-wait",
					   "authed", "bye-wait",   "stopped" };

struct aconn {
	struct event_base *base;
	struct aconn_opts o;
	struct astate_identity id;
	EVP_PKEY *key;
	SSL_CTX *ctx;
	struct aqueue *q;
	struct chan *ch;
	enum aconn_state st;
	struct event *retry, *heartbeat;
	int heartbeat_s; /* interval of the heartbeat timer: A_AUTH_OK's, then the policy's */
	int backoff;
	int policy_pending; /* A_POLICY_GET sent, A_POLICY not yet received */
	json_t *apply_ids;  /* apply_policy commands acked when the policy is stored */
	/* Tasks that came after an apply_policy whose policy has not arrived:
	 * they run once it has, in order, so a scan uses the block list that
	 * was sent before it. Dropped with the connection (they are unacked,
	 * so the server sends them again). */
	json_t *held;
	bool bye_ok, poll_done;
	/* The push server A_REDIRECT assigned (route.h), where this attempt
	 * went, and the addresses of the redirects in a row for the warning
	 * about a loop. */
	struct aroute route;
	char push_host[256];
	int push_port;
	enum aroute_target target;
	bool redirected; /* this connection ended with A_REDIRECT: follow it at once */
	char trail[2048];
};

static void enter(struct aconn *c, enum aconn_state next)
{
	if (c->st != next)
		log_debug("agent: %s -> %s", state_names[c->st], state_names[next]);
	c->st = next;
}

static bool poll_mode(const struct aconn *c)
{
	return strcmp(c->id.mode, "poll") == 0;
}

static void send_empty(struct aconn *c, uint16_t type)
{
	json_t *e = json_object();
	chan_send_json(c->ch, type, e);
	json_decref(e);
}

/* ---- connection ---- */

struct chan *aconn_dial(struct event_base *base, SSL_CTX *ctx, const char *host, int port,
			bool check_host, const struct chan_cbs *cbs, void *arg, char *err,
			size_t errlen)
{
	char peer[300];
	SSL *ssl = SSL_new(ctx);
	if (!ssl) {
		tls_error(err, errlen, "TLS");
		return NULL;
	}
	/* SNI and, when asked, the name the server's certificate must carry. */
	SSL_set_tlsext_host_name(ssl, host);
	if (check_host && SSL_set1_host(ssl, host) != 1) {
		SSL_free(ssl);
		snprintf(err, errlen, "cannot set the expected host name %s", host);
		return NULL;
	}
	struct bufferevent *bev = bufferevent_openssl_socket_new(
	    base, -1, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (!bev) {
		SSL_free(ssl);
		snprintf(err, errlen, "cannot create a connection");
		return NULL;
	}
	snprintf(peer, sizeof(peer), "%s:%d", host, port);
	struct chan *ch = chan_new(base, bev, peer, ACONN_FRAME_PREAUTH, cbs, arg);
	if (!ch) {
		snprintf(err, errlen, "cannot create a connection");
		return NULL;
	}
	chan_set_timeout(ch, ACONN_HANDSHAKE_TIMEOUT);
	if (bufferevent_socket_connect_hostname(bev, NULL, AF_UNSPEC, host, port) != 0)
		chan_close(ch, "cannot connect"); /* on_close reports it */
	return ch;
}

static void on_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
		       void *arg);
static void on_connected(struct chan *ch, void *arg);
static void on_close(struct chan *ch, const char *reason, void *arg);

static const struct chan_cbs conn_cbs = {
	.on_message = on_message,
	.on_connected = on_connected,
	.on_close = on_close,
};

static void schedule(struct aconn *c, int seconds)
{
	struct timeval tv = { seconds, 0 };
	evtimer_add(c->retry, &tv);
}

static void schedule_retry(struct aconn *c)
{
	int cap = poll_mode(c) ? c->o.poll_interval : ACONN_RETRY_MAX;
	uint32_t rnd = 0;
	if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
		rnd = 0;
	c->backoff = aroute_retry_delay(c->backoff, ACONN_RETRY_MAX, cap, rnd);
	log_info("agent: next attempt in %d s", c->backoff);
	schedule(c, c->backoff);
}

static const char *target_host(const struct aconn *c)
{
	return c->target == AROUTE_ASSIGNED ? c->push_host : c->id.host;
}

static int target_port(const struct aconn *c)
{
	return c->target == AROUTE_ASSIGNED ? c->push_port : c->id.port;
}

static void connect_now(struct aconn *c)
{
	char err[512];
	if (c->st != CS_IDLE)
		return;
	c->target = aroute_target(&c->route);
	c->redirected = false;
	log_info("agent: connecting to %s:%d (%s mode)", target_host(c), target_port(c),
		 c->id.mode);
	c->bye_ok = c->poll_done = false;
	c->policy_pending = 0;
	json_array_clear(c->apply_ids);
	json_array_clear(c->held);
	/* A distribution point's certificate names its own address, so the host
	 * check holds for every push server the agent is sent to. */
	c->ch = aconn_dial(c->base, c->ctx, target_host(c), target_port(c), true, &conn_cbs, c, err,
			   sizeof(err));
	if (!c->ch) {
		log_warnx("agent: %s", err);
		aroute_failed(&c->route, c->target);
		schedule_retry(c);
		return;
	}
	enter(c, CS_CONNECTING);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	connect_now(arg);
}

static void on_heartbeat(evutil_socket_t fd, short what, void *arg)
{
	struct aconn *c = arg;
	if (c->ch && (c->st == CS_AUTHED || c->st == CS_BYE_WAIT))
		send_empty(c, A_HEARTBEAT);
}

static void on_connected(struct chan *ch, void *arg)
{
	struct aconn *c = arg;
	char sig[129];
	if (agentproto_sign(chan_ssl(ch), c->key, sig) != 0) {
		chan_close(ch, "cannot sign the session with the agent key");
		return;
	}
	json_t *m = json_pack("{s:i, s:s, s:s, s:s}", "proto", AGENT_PROTO_VERSION, "agent_id",
			      c->id.agent_id, "sig", sig, "mode", c->id.mode);
	chan_send_json(ch, A_AUTH, m);
	json_decref(m);
	enter(c, CS_AUTH_WAIT);
}

static void on_close(struct chan *ch, const char *reason, void *arg)
{
	struct aconn *c = arg;
	if (!c || ch != c->ch)
		return; /* released by aconn_free */
	c->ch = NULL;
	event_del(c->heartbeat);
	if (c->st == CS_STOPPED) {
		log_info("agent: connection closed: %s", reason);
		event_base_loopexit(c->base, NULL);
		return;
	}
	bool before_auth = c->st == CS_CONNECTING || c->st == CS_AUTH_WAIT;
	enter(c, CS_IDLE);
	if (c->redirected) {
		schedule(c, 0);
		return;
	}
	if (before_auth)
		aroute_failed(&c->route, c->target);
	if (c->poll_done) {
		log_info("agent: poll done; next in %d s", c->o.poll_interval);
		c->backoff = 0;
		schedule(c, c->o.poll_interval);
		return;
	}
	log_warnx("agent: connection to %s:%d closed: %s", target_host(c), target_port(c), reason);
	schedule_retry(c);
}

/* ---- the queue ---- */

static void send_queue(struct aconn *c)
{
	for (size_t i = 0; i < aqueue_count(c->q); i++) {
		uint16_t type;
		json_t *m = aqueue_get(c->q, i, &type);
		chan_send_json(c->ch, type, m);
	}
}

/* Gives msg the next seq, stores it, and sends it when connected. Steals msg. */
static void enqueue(struct aconn *c, uint16_t type, json_t *msg)
{
	char err[512];
	int64_t seq;
	if (astate_next_seq(c->o.state_dir, &seq, err, sizeof(err)) != 0) {
		log_error("agent: cannot queue %s: %s", agentproto_msg_name(type), err);
		json_decref(msg);
		return;
	}
	json_object_set_new(msg, "seq", json_integer((json_int_t)seq));
	if (aqueue_push(c->q, type, msg, err, sizeof(err)) != 0)
		log_error("agent: %s seq %" PRId64 " is not stored on disk: %s",
			  agentproto_msg_name(type), seq, err);
	if (c->ch && (c->st == CS_AUTHED || c->st == CS_BYE_WAIT))
		chan_send_json(c->ch, type, msg);
	json_decref(msg);
}

static bool outstanding(const struct aconn *c)
{
	return aqueue_count(c->q) > 0 || c->policy_pending > 0 || json_array_size(c->apply_ids);
}

/* Poll mode: A_BYE once nothing is outstanding, leave once A_BYE_OK and the acks are in. */
static void poll_progress(struct aconn *c)
{
	if (!poll_mode(c) || !c->ch)
		return;
	if (c->st == CS_AUTHED && !outstanding(c)) {
		send_empty(c, A_BYE);
		enter(c, CS_BYE_WAIT);
	} else if (c->st == CS_BYE_WAIT && c->bye_ok && !outstanding(c)) {
		c->poll_done = true;
		chan_close(c->ch, "poll done");
	}
}

/* ---- commands ---- */

static void ack_command(struct aconn *c, int64_t id)
{
	json_t *m = json_pack("{s:I}", "id", (json_int_t)id);
	chan_send_json(c->ch, A_COMMAND_ACK, m);
	json_decref(m);
}

static void iso_now(char *out, size_t outlen)
{
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(out, outlen, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* A scan may only walk below --scan-root when one is set. */
static int scan_allowed(const struct aconn *c, const char *path, char *err, size_t errlen)
{
	char root[PATH_MAX], real[PATH_MAX];
	if (!c->o.scan_root)
		return 0;
	if (!realpath(c->o.scan_root, root) || !realpath(path, real)) {
		snprintf(err, errlen, "%s: cannot resolve the path", path);
		return -1;
	}
	size_t n = strlen(root);
	if (strncmp(real, root, n) != 0 || (real[n] != '\0' && real[n] != '/' && n > 1)) {
		snprintf(err, errlen, "%s is outside the scan root %s", path, c->o.scan_root);
		return -1;
	}
	return 0;
}

static json_t *run_scan(struct aconn *c, json_t *params, char *err, size_t errlen)
{
	const char *path = c->o.scan_root;
	json_t *p = json_object_get(params, "path");
	if (json_is_string(p))
		path = json_string_value(p);
	if (!path) {
		snprintf(err, errlen, "scan: params.path is required");
		return NULL;
	}
	if (scan_allowed(c, path, err, errlen) != 0)
		return NULL;
	json_t *policy = astate_load_policy(c->o.state_dir);
	json_t *block = json_object_get(json_object_get(policy, "settings"), "block_sha256");
	json_t *detections;
	json_t *r = tasks_scan(path, json_is_array(block) ? block : NULL, &detections, err, errlen);
	size_t i;
	json_t *d;
	json_array_foreach (detections, i, d) {
		char at[32];
		iso_now(at, sizeof(at));
		log_notice("agent: detection: %s", json_string_value(json_object_get(d, "path")));
		enqueue(c, A_EVENT,
			json_pack("{s:s, s:s, s:s, s:O}", "kind", "detection", "severity", "high",
				  "occurred_at", at, "details", d));
	}
	json_decref(detections);
	json_decref(policy);
	return r;
}

static void run_task(struct aconn *c, int64_t id, json_t *args)
{
	json_int_t task_id;
	const char *kind;
	json_t *params = NULL;
	char err[512] = "";
	if (json_unpack(args, "{s:I, s:s, s?o}", "task_id", &task_id, "kind", &kind, "params",
			&params) != 0 ||
	    task_id < 1) {
		log_warnx("agent: command %" PRId64 ": run_task needs {task_id, kind, params}", id);
		ack_command(c, id);
		return;
	}
	if (astate_task_ran(c->o.state_dir, id) == 1) {
		/* Sent again: the server lost our acknowledgement. It ran and reported already. */
		log_info("agent: command %" PRId64 ": task %lld ran already", id,
			 (long long)task_id);
		ack_command(c, id);
		return;
	}
	log_info("agent: task %lld: %s", (long long)task_id, kind);
	json_t *r = NULL;
	if (strcmp(kind, "inventory") == 0)
		r = tasks_inventory(c->id.hostname, err, sizeof(err));
	else if (strcmp(kind, "scan") == 0)
		r = run_scan(c, params, err, sizeof(err));
	else
		snprintf(err, sizeof(err), "unknown task kind %s", kind);
	if (!r)
		log_warnx("agent: task %lld failed: %s", (long long)task_id, err);
	enqueue(c, A_RESULT,
		json_pack("{s:I, s:s, s:o}", "task_id", task_id, "status",
			  r ? "succeeded" : "failed", "result",
			  r ? r : json_pack("{s:s}", "error", err)));
	if (astate_task_record(c->o.state_dir, id, err, sizeof(err)) != 0)
		log_warnx("agent: command %" PRId64 ": cannot record that it ran: %s", id, err);
	/* Acked only now: the result is on disk, so the command is no longer needed. */
	ack_command(c, id);
}

static void run_command(struct aconn *c, const struct amsg_command *m);

static void on_command(struct aconn *c, json_t *o)
{
	struct amsg_command m;
	char err[512];
	if (agentproto_decode_command(o, &m, err, sizeof(err)) != 0) {
		chan_send_error(c->ch, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	log_debug("agent: command %" PRId64 ": %s", m.id, m.kind);
	if (strcmp(m.kind, "run_task") == 0 && c->policy_pending > 0) {
		json_array_append(c->held, o);
		return;
	}
	run_command(c, &m);
}

static void run_command(struct aconn *c, const struct amsg_command *m)
{
	if (strcmp(m->kind, "apply_policy") == 0) {
		json_array_append_new(c->apply_ids, json_integer((json_int_t)m->id));
		send_empty(c, A_POLICY_GET);
		c->policy_pending++;
	} else if (strcmp(m->kind, "run_task") == 0) {
		run_task(c, m->id, m->args);
	} else {
		send_empty(c, A_HEARTBEAT);
		send_queue(c);
		ack_command(c, m->id);
	}
}

/* Runs the tasks held back behind a policy fetch, now that it arrived. */
static void release_held(struct aconn *c)
{
	while (c->policy_pending == 0 && json_array_size(c->held) > 0) {
		json_t *o = json_incref(json_array_get(c->held, 0));
		struct amsg_command m;
		char err[512];
		json_array_remove(c->held, 0);
		if (agentproto_decode_command(o, &m, err, sizeof(err)) == 0)
			run_command(c, &m);
		json_decref(o);
	}
}

/* Beats at the interval of the policy just applied; a bad one leaves the timer as it is. */
static void adopt_heartbeat(struct aconn *c, const struct amsg_policy *m)
{
	char err[256];
	int seconds;
	int rc = agentproto_policy_heartbeat(m->settings, &seconds, err, sizeof(err));
	if (rc < 0)
		log_warnx("agent: policy %" PRId64 ": %s; heartbeat stays every %d s", m->version,
			  err, c->heartbeat_s);
	if (rc != 1 || seconds == c->heartbeat_s)
		return;
	log_notice("agent: heartbeat every %d s (was %d s), from policy %" PRId64, seconds,
		   c->heartbeat_s, m->version);
	c->heartbeat_s = seconds;
	/* Counted from now, as the slave counts the new interval from the policy fetch. */
	struct timeval tv = { seconds, 0 };
	event_add(c->heartbeat, &tv);
}

static void on_policy(struct aconn *c, json_t *o)
{
	struct amsg_policy m;
	char err[512];
	if (agentproto_decode_policy(o, &m, err, sizeof(err)) != 0) {
		chan_send_error(c->ch, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	if (c->policy_pending > 0)
		c->policy_pending--;
	if (astate_save_policy(c->o.state_dir, m.version, m.settings, err, sizeof(err)) != 0) {
		/* Unacked apply_policy commands come back on the next connection. */
		log_error("agent: cannot store policy %" PRId64 ": %s", m.version, err);
		json_array_clear(c->apply_ids);
		return;
	}
	log_notice("agent: policy %" PRId64 " applied", m.version);
	adopt_heartbeat(c, &m);
	size_t i;
	json_t *v;
	json_array_foreach (c->apply_ids, i, v)
		ack_command(c, (int64_t)json_integer_value(v));
	json_array_clear(c->apply_ids);
	release_held(c);
}

/*
 * A_REDIRECT: the agent belongs to another push server. It is stored, so
 * a restarted agent goes there directly, and followed once this
 * connection has closed.
 */
static void on_redirect(struct aconn *c, json_t *o)
{
	struct amsg_redirect m;
	char err[512];
	if (agentproto_decode_redirect(o, &m, err, sizeof(err)) != 0) {
		chan_send_error(c->ch, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	log_info("agent: %s:%d redirects to %s:%d", target_host(c), target_port(c), m.address,
		 m.port);
	size_t n = c->route.redirects == 0 ? 0 : strlen(c->trail);
	if (n == 0)
		n = (size_t)snprintf(c->trail, sizeof(c->trail), "%s:%d", target_host(c),
				     target_port(c));
	if (n < sizeof(c->trail))
		snprintf(c->trail + n, sizeof(c->trail) - n, " -> %s:%d", m.address, m.port);
	if (aroute_redirected(&c->route) == AROUTE_LOOP) {
		log_warnx("agent: more than %d redirects without authentication (%s); counted as a "
			  "failed attempt",
			  AROUTE_REDIRECTS_MAX, c->trail);
		chan_close(c->ch, "redirect loop");
		return;
	}
	snprintf(c->push_host, sizeof(c->push_host), "%s", m.address);
	c->push_port = m.port;
	if (astate_save_push(c->o.state_dir, m.address, m.port, err, sizeof(err)) != 0)
		log_error("agent: the assigned push server is not stored on disk: %s", err);
	c->redirected = true;
	chan_close(c->ch, "redirected");
}

/* The origin took the agent itself: the stored push server is stale. */
static void route_authed(struct aconn *c)
{
	char err[512];
	if (aroute_authed(&c->route, c->target) &&
	    astate_forget_push(c->o.state_dir, err, sizeof(err)) != 0)
		log_error("agent: %s", err);
}

static void on_auth_ok(struct aconn *c, json_t *o)
{
	struct amsg_auth_ok m;
	char err[512];
	if (agentproto_decode_auth_ok(o, &m, err, sizeof(err)) != 0) {
		chan_send_error(c->ch, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	log_notice("agent: authenticated as %s; heartbeat every %d s; %zu queued message(s) to "
		   "send",
		   c->id.agent_id, m.heartbeat, aqueue_count(c->q));
	c->backoff = 0;
	route_authed(c);
	enter(c, CS_AUTHED);
	chan_set_max_frame(c->ch, ACONN_FRAME_MAX);
	/* Push: the server may stay silent for hours; heartbeats keep the link alive. */
	chan_set_timeout(c->ch, poll_mode(c) ? ACONN_POLL_TIMEOUT : 0);
	c->heartbeat_s = m.heartbeat;
	struct timeval tv = { m.heartbeat, 0 };
	event_add(c->heartbeat, &tv);
	send_empty(c, A_HEARTBEAT);
	if (m.policy_version != astate_policy_version(c->o.state_dir)) {
		send_empty(c, A_POLICY_GET);
		c->policy_pending++;
	}
	send_queue(c);
}

static void on_ack(struct aconn *c, uint16_t type, json_t *o)
{
	int64_t seq;
	char err[512];
	if (agentproto_decode_ack(o, "seq", &seq, err, sizeof(err)) != 0) {
		chan_send_error(c->ch, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	uint16_t acked = type == A_EVENT_ACK ? A_EVENT : A_RESULT;
	int rc = aqueue_ack(c->q, acked, seq, err, sizeof(err));
	if (rc < 0)
		log_error("agent: %s", err);
	else if (rc == 0)
		log_debug("agent: %s for unknown seq %" PRId64, agentproto_msg_name(type), seq);
}

static void on_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
		       void *arg)
{
	struct aconn *c = arg;
	char err[512];
	enum agent_state ast = c->st == CS_AUTH_WAIT ? AST_AGENT_WAIT : AST_AGENT_AUTHED;
	if (c->st == CS_STOPPED)
		return;
	if (!agentproto_allowed(ast, type) || c->st < CS_AUTH_WAIT) {
		chan_send_error(ch, PROTO_ERR_PROTOCOL, "message %s (type %u) is not allowed now",
				agentproto_msg_name(type), type);
		return;
	}
	json_t *o = proto_parse_json(payload, len, err, sizeof(err));
	if (!o) {
		chan_send_error(ch, PROTO_ERR_PROTOCOL, "%s: %s", agentproto_msg_name(type), err);
		return;
	}
	log_debug("agent: <- %s", agentproto_msg_name(type));
	switch (type) {
	case MSG_ERROR: {
		struct msg_error e;
		if (proto_decode_error(o, &e, err, sizeof(err)) == 0) {
			log_error("agent: the server refused: %s: %s", e.code, e.message);
			chan_close(ch, e.message);
		} else {
			chan_close(ch, err);
		}
		break;
	}
	case A_AUTH_OK:
		on_auth_ok(c, o);
		break;
	case A_REDIRECT:
		on_redirect(c, o);
		break;
	case A_EVENT_ACK:
	case A_RESULT_ACK:
		on_ack(c, type, o);
		break;
	case A_COMMAND:
		on_command(c, o);
		break;
	case A_POLICY:
		on_policy(c, o);
		break;
	case A_BYE_OK:
		if (proto_decode_empty(o, type, err, sizeof(err)) != 0)
			chan_send_error(ch, PROTO_ERR_PROTOCOL, "%s", err);
		c->bye_ok = true;
		break;
	default:
		break;
	}
	json_decref(o);
	if (!chan_is_closed(ch))
		poll_progress(c);
}

/* ---- lifecycle ---- */

struct aconn *aconn_new(struct event_base *base, const struct aconn_opts *o, char *err,
			size_t errlen)
{
	X509 *ca = NULL;
	struct aconn *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->base = base;
	c->o = *o;
	c->apply_ids = json_array();
	c->held = json_array();
	c->retry = evtimer_new(base, on_retry, c);
	c->heartbeat = event_new(base, -1, EV_PERSIST, on_heartbeat, c);
	if (!c->apply_ids || !c->retry || !c->heartbeat) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (astate_load_identity(o->state_dir, &c->id, &c->key, &ca, err, errlen) != 0)
		goto fail;
	/* The agent presents no certificate: its key is proved by A_AUTH. */
	c->ctx = tls_client_ctx(NULL, NULL, ca, err, errlen);
	X509_free(ca);
	if (!c->ctx)
		goto fail;
	if (!(c->q = aqueue_open(o->state_dir, err, errlen)))
		goto fail;
	char perr[512];
	int rc = astate_load_push(o->state_dir, c->push_host, sizeof(c->push_host), &c->push_port,
				  perr, sizeof(perr));
	if (rc < 0)
		log_warnx("agent: %s; connecting to %s:%d to be routed again", perr, c->id.host,
			  c->id.port);
	c->route.assigned = rc == 1;
	return c;
fail:
	aconn_free(c);
	return NULL;
}

void aconn_start(struct aconn *c)
{
	connect_now(c);
}

void aconn_stop(struct aconn *c)
{
	enter(c, CS_STOPPED);
	event_del(c->retry);
	event_del(c->heartbeat);
	if (c->ch)
		chan_close(c->ch, "agent stopping");
	else
		event_base_loopexit(c->base, NULL);
}

void aconn_free(struct aconn *c)
{
	if (!c)
		return;
	if (c->ch) {
		chan_set_arg(c->ch, NULL);
		chan_close(c->ch, "agent stopping");
	}
	if (c->retry)
		event_free(c->retry);
	if (c->heartbeat)
		event_free(c->heartbeat);
	json_decref(c->apply_ids);
	json_decref(c->held);
	aqueue_free(c->q);
	SSL_CTX_free(c->ctx);
	EVP_PKEY_free(c->key);
	free(c);
}

size_t aconn_queued(const struct aconn *c)
{
	return aqueue_count(c->q);
}
