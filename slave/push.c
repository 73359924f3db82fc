#include "push.h"

#include <arpa/inet.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>

#include "agentproto.h"
#include "agents.h"
#include "chan.h"
#include "clk.h"
#include "dps.h"
#include "iprange.h"
#include "log.h"
#include "net.h"
#include "proto.h"
#include "pushconn.h"
#include "pushdp.h"
#include "tally.h"
#include "tls.h"

#define FLUSH_MS 1000
/* Authentications and acknowledgements wait this long to share one commit. */
#define BATCH_MS 20
#define TALLY_LOG_S 10 /* one line per this many seconds for a flood's cuts and refusals */
#define HEARTBEAT_BURST 10 /* heartbeats allowed per connection per second */

static const char *conn_state_name(enum conn_state st)
{
	switch (st) {
	case CONN_PREAUTH:
		return "PREAUTH";
	case CONN_PROVING:
		return "PROVING";
	case CONN_AUTHING:
		return "AUTHING";
	case CONN_AUTHED:
		return "AUTHED";
	case CONN_CLOSING:
		return "CLOSING";
	case CONN_DP:
		return "DP";
	}
	return "?";
}

static size_t id_bucket(const struct push_server *ps, int64_t id)
{
	uint64_t h = (uint64_t)id * 0x9E3779B97F4A7C15ull;
	return (size_t)(h >> 32) & (ps->nbuckets - 1);
}

static struct agent_conn *hash_find(struct push_server *ps, int64_t id)
{
	if (!ps->byid)
		return NULL;
	for (struct agent_conn *c = ps->byid[id_bucket(ps, id)]; c; c = c->hnext)
		if (c->agent.id == id)
			return c;
	return NULL;
}

static void hash_remove(struct push_server *ps, struct agent_conn *c)
{
	if (!c->hashed)
		return;
	for (struct agent_conn **pp = &ps->byid[id_bucket(ps, c->agent.id)]; *pp;
	     pp = &(*pp)->hnext)
		if (*pp == c) {
			*pp = c->hnext;
			break;
		}
	c->hashed = false;
	c->hnext = NULL;
	ps->nhashed--;
}

/* Adds c under its id; the table doubles past two entries per bucket. */
static int hash_add(struct push_server *ps, struct agent_conn *c)
{
	if (ps->nhashed + 1 > 2 * ps->nbuckets) {
		size_t nb = ps->nbuckets ? 2 * ps->nbuckets : 1024;
		struct agent_conn **nt = calloc(nb, sizeof(*nt));
		if (!nt)
			return -1;
		struct agent_conn **old = ps->byid;
		size_t ob = ps->nbuckets;
		ps->byid = nt;
		ps->nbuckets = nb;
		for (size_t i = 0; i < ob; i++)
			for (struct agent_conn *e = old[i], *next; e; e = next) {
				next = e->hnext;
				size_t b = id_bucket(ps, e->agent.id);
				e->hnext = nt[b];
				nt[b] = e;
			}
		free(old);
	}
	size_t b = id_bucket(ps, c->agent.id);
	c->hnext = ps->byid[b];
	ps->byid[b] = c;
	c->hashed = true;
	ps->nhashed++;
	return 0;
}

static void batch_schedule(struct push_server *ps)
{
	struct timeval tv = { 0, BATCH_MS * 1000 };
	if (!evtimer_pending(ps->batch_ev, NULL))
		evtimer_add(ps->batch_ev, &tv);
}

/*
 * An endpoint's effective policy from the loaded set: its version, and the
 * interval its agent beats at (the policy's, else server.xml's).
 */
static json_t *effective_of(const struct push_server *ps, const struct effective_set *set,
			    const char *group, int64_t *version, int *heartbeat)
{
	json_t *eff = policy_effective(set->p, set->n, group, NULL);
	*version = policy_effective_version(eff);
	*heartbeat = effective_heartbeat(eff, ps->d->cfg.heartbeat_interval);
	return eff;
}

static void sweep_schedule(struct push_server *ps, int seconds)
{
	struct timeval tv = { seconds, 0 };
	ps->sweep_due_ms = clk_mono_ms() + (int64_t)seconds * 1000;
	evtimer_add(ps->sweep_ev, &tv);
}

/* An agent now beats every seconds: the sweep must come by then to notice its silence. */
static void sweep_within(struct push_server *ps, int seconds)
{
	if (ps->sweep_due_ms - clk_mono_ms() > (int64_t)seconds * 1000)
		sweep_schedule(ps, seconds);
}

void push_conn_enter(struct agent_conn *c, enum conn_state next)
{
	if (c->st != next)
		log_debug("push %s: %s -> %s", c->peer, conn_state_name(c->st),
			  conn_state_name(next));
	if (c->st == CONN_AUTHING && next != CONN_AUTHING)
		TAILQ_REMOVE(&c->ps->authing, c, qentry);
	if (c->st == CONN_PROVING && next != CONN_PROVING) {
		TAILQ_REMOVE(&c->ps->proving, c, qentry);
		free(c->claim);
		c->claim = NULL;
	}
	/* A closing connection no longer stands for its endpoint. */
	if (next == CONN_CLOSING)
		hash_remove(c->ps, c);
	c->st = next;
}

/* Sends one frame to the agent, directly or through its distribution point. */
static void conn_send_json(struct agent_conn *c, uint16_t type, json_t *o)
{
	if (!o)
		return;
	if (!c->via) {
		chan_send_json(c->ch, type, o);
		return;
	}
	pushdp_send(c, type, o);
}

void push_conn_close(struct agent_conn *c, const char *reason)
{
	if (c->via)
		pushdp_end(c, reason);
	else
		chan_close(c->ch, reason);
}

void push_conn_error(struct agent_conn *c, const char *code, const char *msg)
{
	if (!c->via) {
		chan_send_error(c->ch, code, "%s", msg);
		return;
	}
	json_t *o = json_pack("{s:s, s:s}", "code", code, "message", msg);
	conn_send_json(c, MSG_ERROR, o);
	json_decref(o);
	pushdp_end(c, msg);
}

bool push_version_ok(struct agent_conn *c, int proto)
{
	if (proto == AGENT_PROTO_VERSION)
		return true;
	push_conn_fail(c, PROTO_ERR_VERSION, "protocol %d is not supported (this slave speaks %d)",
		       proto, AGENT_PROTO_VERSION);
	return false;
}

/* Logs, sends ERROR {code, message} and closes once it is flushed. */
void push_conn_fail(struct agent_conn *c, const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("push %s: %s: %s", c->peer, code, msg);
	push_conn_enter(c, CONN_CLOSING);
	push_conn_error(c, code, msg);
}

/* A database failure: the agent retries later; reconnect for the next one. */
void push_conn_internal(struct agent_conn *c, const char *what, const char *err)
{
	log_warnx("push %s: %s: %s", c->peer, what, err);
	(void)daemon_db_ensure(c->ps->d);
	push_conn_enter(c, CONN_CLOSING);
	push_conn_error(c, PROTO_ERR_INTERNAL, "the slave's database failed; retry later");
}

void push_send_obj(struct agent_conn *c, uint16_t type, json_t *o)
{
	conn_send_json(c, type, o);
	json_decref(o);
}

/* Sends the endpoint's waiting commands (all unacknowledged ones, or only new ones). */
static void deliver(struct agent_conn *c, bool all)
{
	char err[512];
	json_t *list = agents_commands_take(c->ps->d->db, c->agent.id, all, err, sizeof(err));
	size_t i;
	json_t *cmd;
	if (!list) {
		log_warnx("push %s: cannot read commands for endpoint %" PRId64 ": %s", c->peer,
			  c->agent.id, err);
		(void)daemon_db_ensure(c->ps->d);
		return;
	}
	json_array_foreach(list, i, cmd)
	{
		log_debug("push %s: command %" PRId64 " (%s) sent", c->peer,
			  (int64_t)json_integer_value(json_object_get(cmd, "id")),
			  json_string_value(json_object_get(cmd, "kind")));
		conn_send_json(c, A_COMMAND, cmd);
	}
	json_decref(list);
}

/* Sends each command of [[endpoint_id, command]] to the connection holding it. */
static void dispatch(struct push_server *ps, json_t *list)
{
	size_t i;
	json_t *pair;
	json_array_foreach(list, i, pair)
	{
		int64_t id = (int64_t)json_integer_value(json_array_get(pair, 0));
		json_t *cmd = json_array_get(pair, 1);
		struct agent_conn *c = hash_find(ps, id);
		/* A connection gone meanwhile gets it again at its next A_AUTH. */
		if (!c || c->st != CONN_AUTHED)
			continue;
		log_debug("push %s: command %" PRId64 " (%s) sent", c->peer,
			  (int64_t)json_integer_value(json_object_get(cmd, "id")),
			  json_string_value(json_object_get(cmd, "kind")));
		conn_send_json(c, A_COMMAND, cmd);
	}
}

/* Takes the waiting commands of these endpoints (all unacknowledged ones,
 * or only the never delivered) and sends each to its connection. */
static void send_commands(struct push_server *ps, size_t n, const int64_t *ids, bool all)
{
	char err[512];
	if (n == 0)
		return;
	json_t *list = agents_commands_take_many(ps->d->db, n, ids, all, err, sizeof(err));
	if (!list) {
		log_warnx("push: cannot read commands for %zu endpoints: %s", n, err);
		(void)daemon_db_ensure(ps->d);
		return;
	}
	dispatch(ps, list);
	json_decref(list);
}

/* Takes the new commands of every authenticated agent of this process in one statement. */
static void deliver_new(struct push_server *ps)
{
	struct agent_conn *c;
	size_t n = 0;
	int64_t *ids = malloc(((size_t)ps->nconns + 1) * sizeof(*ids));
	if (!ids) {
		log_warnx("push: out of memory taking new commands");
		return;
	}
	TAILQ_FOREACH(c, &ps->conns, entry)
	if (c->st == CONN_AUTHED)
		ids[n++] = c->agent.id;
	send_commands(ps, n, ids, false);
	free(ids);
}

static void on_enrol(struct agent_conn *c, json_t *o)
{
	struct amsg_enrol m;
	char err[1024], uid[2 * AGENT_UID_HEX + 1];
	const char *code;
	if (agentproto_decode_enrol(o, &m, err, sizeof(err)) != 0) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	if (!push_version_ok(c, m.proto))
		return;
	int64_t eid;
	struct dps_route r = { 0 };
	int rc = agents_enrol(c->ps->d->db, c->ps->pki->pin, c->ps->d->cfg.seats, &m, c->ip, uid,
			      &eid, &code, err, sizeof(err));
	if (rc == 1) {
		push_conn_fail(c, code, "%s", err);
		return;
	}
	if (rc != 0) {
		push_conn_internal(c, "enrolment", err);
		return;
	}
	/* Assigned now, so the agent's first connection goes to its push server. */
	if (c->ps->dps_known && dps_route(c->ps->d->db, eid, &r, err, sizeof(err)) != 0) {
		log_warnx("push %s: no push server chosen at enrolment (the first connection "
			  "will choose): %s", c->peer, err);
		r.server = 0;
	}
	json_t *ok = json_pack("{s:s, s:s}", "agent_id", uid, "ca", c->ps->pki->ca_pem);
	if (ok && r.server != 0)
		json_object_set_new(ok, "push", json_pack("{s:s, s:i}", "address", r.address, "port",
							 r.port));
	push_send_obj(c, A_ENROL_OK, ok);
	push_conn_enter(c, CONN_CLOSING);
	push_conn_close(c, "enrolment done");
}

/*
 * Sends the agent to the push server it belongs to (dps.h) when that is
 * not this one: A_REDIRECT and close, return 1. 0: it stays; -1: failed
 * (the connection is closing).
 */
static int route(struct agent_conn *c)
{
	struct push_server *ps = c->ps;
	struct dps_route r;
	char err[512];
	if (!c->via && !ps->dps_known)
		return 0;
	if (dps_route(ps->d->db, c->agent.id, &r, err, sizeof(err)) != 0) {
		push_conn_internal(c, "push server choice", err);
		return -1;
	}
	int64_t here = c->via ? c->via->dp->id : 0;
	if (r.server == here)
		return 0;
	if (r.server == 0) {
		/* The slave's own push server, by the first name its certificate carries. */
		const char *hosts = ps->d->cfg.push_hosts;
		size_t n = strcspn(hosts, ",");
		snprintf(r.address, sizeof(r.address), "%.*s", (int)n, hosts);
		r.port = ps->d->cfg.push_port;
	}
	log_info("push %s: endpoint %" PRId64 " redirected to %s:%d", c->peer, c->agent.id,
		 r.address, r.port);
	push_send_obj(c, A_REDIRECT, json_pack("{s:s, s:i}", "address", r.address, "port", r.port));
	push_conn_enter(c, CONN_CLOSING);
	push_conn_close(c, "redirected");
	return 1;
}

static void on_auth(struct agent_conn *c, json_t *o)
{
	struct amsg_auth m;
	char err[1024];
	if (agentproto_decode_auth(o, &m, err, sizeof(err)) != 0) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	if (!push_version_ok(c, m.proto))
		return;
	c->claim = malloc(sizeof(*c->claim));
	if (!c->claim) {
		push_conn_internal(c, "authentication", "out of memory");
		return;
	}
	snprintf(c->claim->agent_id, sizeof(c->claim->agent_id), "%s", m.agent_id);
	snprintf(c->claim->sig, sizeof(c->claim->sig), "%s", m.sig);
	snprintf(c->mode, sizeof(c->mode), "%s", m.mode);
	/* The key lookup waits for the batch: one SELECT for every A_AUTH meanwhile. */
	push_conn_enter(c, CONN_PROVING);
	TAILQ_INSERT_TAIL(&c->ps->proving, c, qentry);
	batch_schedule(c->ps);
}

/* The claim's agent exists (rec): checks its key proof and queues its status write. */
static void auth_claimed(struct agent_conn *c, const struct agent_rec *rec)
{
	struct push_server *ps = c->ps;
	struct cfg *cfg = &ps->d->cfg;
	c->agent = *rec;
	int bad = c->via ? agentproto_verify_ekm(c->ekm, c->agent.key, c->claim->sig)
			 : agentproto_verify(chan_ssl(c->ch), c->agent.key, c->claim->sig);
	free(c->ekm);
	c->ekm = NULL;
	if (bad != 0) {
		push_conn_fail(c, AGENT_ERR_AUTH, "key proof failed for agent id %s",
			       c->claim->agent_id);
		return;
	}
	if (route(c) != 0)
		return;
	struct agent_conn *old = hash_find(ps, c->agent.id);
	if (old) {
		push_conn_enter(old, CONN_CLOSING);
		push_conn_error(old, PROTO_ERR_PROTOCOL, "replaced by a newer connection");
	}
	if (hash_add(ps, c) != 0) {
		push_conn_internal(c, "authentication", "out of memory");
		return;
	}
	/* The slave cannot open a connection into a polling agent's network or an
	 * unreachable range, so such an agent is never called online. */
	c->reachable = strcmp(c->mode, "poll") != 0 &&
		       !iprange_list_contains(cfg->unreachable, (size_t)cfg->n_unreachable, c->ip);
	/* A_AUTH_OK waits for the batch that records the status, so an agent
	 * told it is in is already online in the database. */
	push_conn_enter(c, CONN_AUTHING);
	TAILQ_INSERT_TAIL(&ps->authing, c, qentry);
}

/* Looks up the agents of every A_AUTH since the last batch in one statement and checks their proofs. */
static void prove_batch(struct push_server *ps)
{
	struct agent_conn *c, *next;
	size_t n = 0, i = 0;
	char err[512];
	TAILQ_FOREACH(c, &ps->proving, qentry)
	n++;
	if (n == 0)
		return;
	const char **uids = malloc(n * sizeof(*uids));
	struct agent_rec *recs = malloc(n * sizeof(*recs));
	bool *found = malloc(n * sizeof(*found));
	if (!uids || !recs || !found) {
		snprintf(err, sizeof(err), "out of memory");
		goto failed;
	}
	TAILQ_FOREACH(c, &ps->proving, qentry)
	uids[i++] = c->claim->agent_id;
	if (agents_lookup_many(ps->d->db, n, uids, recs, found, err, sizeof(err)) != 0)
		goto failed;
	i = 0;
	for (c = TAILQ_FIRST(&ps->proving); c; c = next, i++) {
		next = TAILQ_NEXT(c, qentry);
		if (found[i])
			auth_claimed(c, &recs[i]);
		else
			push_conn_fail(c, PROTO_ERR_UNREGISTERED, "agent id %s is unknown or revoked; "
				  "enrol again with a new token", c->claim->agent_id);
	}
	goto out;
failed:
	while ((c = TAILQ_FIRST(&ps->proving)) != NULL)
		push_conn_internal(c, "agent lookup", err);
out:
	free(uids);
	free(recs);
	free(found);
}

/* The authentication is recorded: the agent may talk. */
static void auth_done(struct agent_conn *c)
{
	struct cfg *cfg = &c->ps->d->cfg;
	/* A distribution point applies its own limits to the agents it relays. */
	if (!c->via) {
		chan_set_max_frame(c->ch, (uint32_t)cfg->frame_max);
		/* Three missed heartbeats end the connection as they end "online". */
		chan_set_timeout(c->ch, 3 * c->heartbeat + 5);
	}
	sweep_within(c->ps, c->heartbeat);
	push_conn_enter(c, CONN_AUTHED);
	c->ps->nauthed++;
	log_debug("push %s: endpoint %" PRId64 " authenticated (%s mode%s)", c->peer, c->agent.id,
		 c->mode, c->reachable || strcmp(c->mode, "poll") == 0 ? "" : ", unreachable range");
	push_send_obj(c, A_AUTH_OK,
		      json_pack("{s:i, s:I}", "heartbeat", c->heartbeat, "policy_version",
				(json_int_t)c->policy_effective));
}

/*
 * Writes the status of every agent that proved its key since the last
 * batch in one transaction, answers them, and sends all their waiting
 * commands from one more statement.
 */
static void auth_batch(struct push_server *ps)
{
	struct agent_conn *c, *next;
	size_t n = 0, i = 0;
	char err[512];
	TAILQ_FOREACH(c, &ps->authing, qentry)
	n++;
	if (n == 0)
		return;
	struct agent_auth *a = malloc(n * sizeof(*a));
	int64_t *ids = malloc(n * sizeof(*ids));
	bool *done = malloc(n * sizeof(*done));
	if (!a || !ids || !done) {
		snprintf(err, sizeof(err), "out of memory");
		goto failed;
	}
	/* One statement for the policies of the whole batch; each agent's
	 * effective policy is merged here from its group's path. */
	struct effective_set set;
	if (effective_load(ps->d->db, &set, &ps->policy_seen, err, sizeof(err)) != 0)
		goto failed;
	TAILQ_FOREACH (c, &ps->authing, qentry) {
		json_decref(
		    effective_of(ps, &set, c->agent.group, &c->policy_effective, &c->heartbeat));
		a[i].heartbeat = c->heartbeat;
		a[i].id = c->agent.id;
		a[i].mode = c->mode;
		a[i].reachable = c->reachable;
		a[i++].address = c->ip;
	}
	effective_free(&set);
	if (agents_auth_batch(ps->d->db, n, a, (int)getpid(), done, err, sizeof(err)) != 0)
		goto failed;
	size_t nok = 0;
	i = 0;
	for (c = TAILQ_FIRST(&ps->authing); c; c = next, i++) {
		next = TAILQ_NEXT(c, qentry);
		if (done[i]) {
			auth_done(c);
			ids[nok++] = c->agent.id;
		} else {
			push_conn_fail(c, PROTO_ERR_UNREGISTERED, "endpoint %" PRId64 " was revoked",
				  c->agent.id);
		}
	}
	send_commands(ps, nok, ids, true);
	goto out;
failed:
	/* Each agent retries; a connection without a recorded status must not stay. */
	while ((c = TAILQ_FIRST(&ps->authing)) != NULL)
		push_conn_internal(c, "status update", err);
out:
	free(a);
	free(ids);
	free(done);
}

/* Writes the acknowledgements received since the last batch in one statement. */
static void ack_batch(struct push_server *ps)
{
	char err[512];
	size_t matched;
	if (ps->nacks == 0)
		return;
	/* Lost acknowledgements only mean the commands are sent again at the
	 * next A_AUTH, which the agents already take as at-least-once. */
	if (agents_commands_ack_many(ps->d->db, ps->nacks, ps->ack_eid, ps->ack_cid, &matched, err,
				     sizeof(err)) != 0) {
		log_warnx("push: cannot record %zu command acknowledgements: %s", ps->nacks, err);
		(void)daemon_db_ensure(ps->d);
	} else if (matched < ps->nacks) {
		log_info("push: %zu of %zu command acknowledgements named no command of their "
			 "endpoint", ps->nacks - matched, ps->nacks);
	}
	ps->nacks = 0;
}

static void on_batch_timer(evutil_socket_t fd, short what, void *arg)
{
	struct push_server *ps = arg;
	prove_batch(ps);
	auth_batch(ps);
	ack_batch(ps);
}

static void on_heartbeat(struct agent_conn *c, json_t *o)
{
	int64_t t = clk_mono_ms();
	if (json_object_size(o) != 0) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "A_HEARTBEAT must be {}");
		return;
	}
	if (t - c->rate_window_ms >= 1000) {
		c->rate_window_ms = t;
		c->rate_count = 0;
	}
	if (++c->rate_count > HEARTBEAT_BURST) {
		push_conn_fail(c, AGENT_ERR_RATE, "more than %d heartbeats in one second",
			  HEARTBEAT_BURST);
		return;
	}
	c->last_seen = clk_epoch();
	if (!c->dirty) {
		TAILQ_INSERT_TAIL(&c->ps->dirty, c, qentry);
		c->ps->ndirty++;
		c->dirty = true;
	}
}

static void on_event(struct agent_conn *c, json_t *o)
{
	struct amsg_event m;
	char err[1024];
	if (agentproto_decode_event(o, &m, err, sizeof(err)) != 0) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	if (agents_event(c->ps->d->db, c->agent.id, &m, err, sizeof(err)) != 0) {
		/* A bad time string is the agent's fault, not the database's. */
		if (strncmp(db_last_sqlstate(c->ps->d->db), "22", 2) == 0)
			push_conn_fail(c, PROTO_ERR_PROTOCOL, "A_EVENT: %s", err);
		else
			push_conn_internal(c, "event", err);
		return;
	}
	push_send_obj(c, A_EVENT_ACK, json_pack("{s:I}", "seq", (json_int_t)m.seq));
}

static void on_result(struct agent_conn *c, json_t *o)
{
	struct amsg_result m;
	char err[1024];
	if (agentproto_decode_result(o, &m, err, sizeof(err)) != 0) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	if (agents_result(c->ps->d->db, c->agent.id, &m, err, sizeof(err)) != 0) {
		push_conn_internal(c, "task result", err);
		return;
	}
	push_send_obj(c, A_RESULT_ACK, json_pack("{s:I}", "seq", (json_int_t)m.seq));
}

static void on_command_ack(struct agent_conn *c, json_t *o)
{
	int64_t id;
	char err[1024];
	if (agentproto_decode_ack(o, "id", &id, err, sizeof(err)) != 0) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "A_COMMAND_ACK: %s", err);
		return;
	}
	struct push_server *ps = c->ps;
	if (ps->nacks == ps->acks_cap) {
		size_t cap = ps->acks_cap ? 2 * ps->acks_cap : 256;
		int64_t *e = realloc(ps->ack_eid, cap * sizeof(*e));
		if (e)
			ps->ack_eid = e;
		int64_t *k = e ? realloc(ps->ack_cid, cap * sizeof(*k)) : NULL;
		if (!k) {
			push_conn_internal(c, "command ack", "out of memory");
			return;
		}
		ps->ack_cid = k;
		ps->acks_cap = cap;
	}
	ps->ack_eid[ps->nacks] = c->agent.id;
	ps->ack_cid[ps->nacks++] = id;
	batch_schedule(ps);
}

static void on_policy_get(struct agent_conn *c, json_t *o)
{
	char err[1024];
	int64_t version;
	if (json_object_size(o) != 0) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "A_POLICY_GET must be {}");
		return;
	}
	struct effective_set set;
	int hb;
	if (effective_load(c->ps->d->db, &set, &c->ps->policy_seen, err, sizeof(err)) != 0) {
		push_conn_internal(c, "policy", err);
		return;
	}
	json_t *eff = effective_of(c->ps, &set, c->agent.group, &version, &hb);
	effective_free(&set);
	json_t *settings = policy_effective_settings(eff);
	json_decref(eff);
	/* The agent beats at what the policy says, server.xml's interval when it
	 * sets none: the settings always carry the one that holds. */
	json_object_set_new(settings, "heartbeat", json_integer(hb));
	if (hb != c->heartbeat || version != c->agent.policy_version) {
		if (agents_set_policy(c->ps->d->db, c->agent.id, version, hb, err, sizeof(err)) !=
		    0) {
			json_decref(settings);
			push_conn_internal(c, "policy", err);
			return;
		}
		c->agent.policy_version = version;
	}
	if (hb != c->heartbeat) {
		log_info("push %s: endpoint %" PRId64 " heartbeat %d s -> %d s", c->peer,
			 c->agent.id, c->heartbeat, hb);
		c->heartbeat = hb;
		/* A distribution point reads the interval from A_POLICY itself. */
		if (!c->via)
			chan_set_timeout(c->ch, 3 * hb + 5);
		sweep_within(c->ps, hb);
	}
	push_send_obj(c, A_POLICY, json_pack("{s:I, s:o}", "version", (json_int_t)version, "settings",
					settings));
}

static void on_bye(struct agent_conn *c, json_t *o)
{
	if (json_object_size(o) != 0) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "A_BYE must be {}");
		return;
	}
	deliver(c, false);
	push_send_obj(c, A_BYE_OK, json_object());
	/* The agent leaves once it has answered the commands sent before A_BYE_OK. */
	log_debug("push %s: agent said bye", c->peer);
}

static enum agent_state proto_state(enum conn_state st)
{
	return st == CONN_AUTHED ? AST_SERVER_AUTHED : AST_SERVER_PREAUTH;
}

/* A slave's frame sent to the agent port is named by the sync protocol in the log. */
static const char *msg_name(uint16_t type)
{
	const char *name = agentproto_msg_name(type);
	return strcmp(name, "UNKNOWN") == 0 ? proto_msg_name(type) : name;
}

void push_conn_message(struct agent_conn *c, uint16_t type, const uint8_t *payload, size_t len)
{
	char err[512];
	if (c->st == CONN_CLOSING)
		return;
	if (c->st == CONN_PROVING || c->st == CONN_AUTHING) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "message %s (type %u) before A_AUTH_OK",
			  agentproto_msg_name(type), type);
		return;
	}
	json_t *o = proto_parse_json(payload, len, err, sizeof(err));
	if (!o) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "%s: %s", agentproto_msg_name(type), err);
		return;
	}
	if (type == MSG_ERROR) {
		struct msg_error e;
		if (proto_decode_error(o, &e, err, sizeof(err)) == 0)
			log_info("push %s: agent reported %s: %s", c->peer, e.code, e.message);
		push_conn_enter(c, CONN_CLOSING);
		push_conn_close(c, "agent sent ERROR");
	} else if (!agentproto_allowed(proto_state(c->st), type) ||
		   (c->via && (type == A_DP_ENROL || type == A_DP_AUTH))) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "message %s (type %u) is not allowed in state %s",
			  msg_name(type), type, conn_state_name(c->st));
	} else {
		switch (type) {
		case A_ENROL:
			on_enrol(c, o);
			break;
		case A_AUTH:
			on_auth(c, o);
			break;
		case A_HEARTBEAT:
			on_heartbeat(c, o);
			break;
		case A_EVENT:
			on_event(c, o);
			break;
		case A_RESULT:
			on_result(c, o);
			break;
		case A_COMMAND_ACK:
			on_command_ack(c, o);
			break;
		case A_POLICY_GET:
			on_policy_get(c, o);
			break;
		case A_BYE:
			on_bye(c, o);
			break;
		case A_DP_ENROL:
			pushdp_enrol(c, o);
			break;
		case A_DP_AUTH:
			pushdp_auth(c, o);
			break;
		default:
			push_conn_fail(c, PROTO_ERR_PROTOCOL, "unexpected message %s",
				  agentproto_msg_name(type));
		}
	}
	json_decref(o);
}

void push_flush_one(struct push_server *ps, struct agent_conn *c)
{
	char err[512];
	if (agents_flush_seen(ps->d->db, 1, &c->agent.id, &c->last_seen, err, sizeof(err)) != 0)
		log_warnx("push %s: cannot record last_seen: %s", c->peer, err);
	TAILQ_REMOVE(&ps->dirty, c, qentry);
	ps->ndirty--;
	c->dirty = false;
}

static void on_message(struct chan *ch, uint16_t type, const uint8_t *payload, size_t len,
		       void *arg)
{
	struct agent_conn *c = arg;
	(void)ch;
	if (c->st == CONN_DP)
		pushdp_link_message(c, type, payload, len);
	else
		push_conn_message(c, type, payload, len);
}

/* Forgets a connection that ended; the last use of c. */
void push_conn_closed(struct agent_conn *c, const char *reason)
{
	struct push_server *ps = c->ps;
	if (c->dirty)
		push_flush_one(ps, c);
	if (c->st == CONN_AUTHING)
		TAILQ_REMOVE(&ps->authing, c, qentry);
	if (c->st == CONN_DP)
		pushdp_link_closed(c);
	if (c->st == CONN_PROVING) {
		TAILQ_REMOVE(&ps->proving, c, qentry);
		free(c->claim);
	}
	hash_remove(ps, c);
	ps->nclosed++;
	/* A close the server chose was logged with its reason, and a peer that
	 * hangs up is routine; a TLS error, a timeout or a bad frame is not. */
	if (c->st == CONN_CLOSING || strcmp(reason, "connection closed by peer") == 0) {
		log_debug("push %s: closed: %s", c->peer, reason);
	} else if (c->st == CONN_PREAUTH && c->ch && chan_timed_out(c->ch)) {
		/* Idle or half-open sockets come by the thousand in a flood: counted. */
		log_debug("push %s: closed: %s", c->peer, reason);
		tally_add(ps->preauth_cut);
	} else {
		log_info("push %s: closed: %s", c->peer, reason);
	}
	TAILQ_REMOVE(&ps->conns, c, entry);
	ps->nconns--;
	if (!c->via)
		ps->nsockets--;
	free(c->ekm);
	free(c->dp);
	free(c);
}

static void on_close(struct chan *ch, const char *reason, void *arg)
{
	(void)ch;
	push_conn_closed(arg, reason);
}

static void on_dead(evutil_socket_t fd, short what, void *arg)
{
	struct push_server *ps = arg;
	struct agent_conn *c;
	(void)fd;
	(void)what;
	while ((c = TAILQ_FIRST(&ps->dead)) != NULL) {
		TAILQ_REMOVE(&ps->dead, c, qentry);
		push_conn_closed(c, "ended by the slave");
	}
}

static const struct chan_cbs conn_cbs = {
	.on_message = on_message,
	.on_close = on_close,
};

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
		      void *arg)
{
	struct push_server *ps = arg;
	struct agent_conn *c = calloc(1, sizeof(*c));
	int port;
	if (!c) {
		evutil_closesocket(fd);
		return;
	}
	net_peer(sa, c->ip, sizeof(c->ip), &port);
	snprintf(c->peer, sizeof(c->peer), "%s:%d", c->ip, port);
	SSL *ssl = SSL_new(ps->pki->ctx);
	struct bufferevent *bev = ssl ? bufferevent_openssl_socket_new(ps->d->base, fd, ssl,
								       BUFFEREVENT_SSL_ACCEPTING,
								       BEV_OPT_CLOSE_ON_FREE)
				      : NULL;
	if (!bev) {
		log_warnx("push %s: cannot set up TLS", c->peer);
		SSL_free(ssl);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->ps = ps;
	c->st = CONN_PREAUTH;
	c->ch = chan_new(ps->d->base, bev, c->peer, (uint32_t)ps->d->cfg.frame_max_preauth,
			 &conn_cbs, c);
	if (!c->ch) {
		free(c);
		return;
	}
	TAILQ_INSERT_TAIL(&ps->conns, c, entry);
	ps->nconns++;
	ps->nsockets++;
	chan_set_timeout(c->ch, ps->d->cfg.handshake_timeout);
	if (ps->nsockets > ps->d->cfg.push_max_connections) {
		log_debug("push %s: refused, %d connections open (limit %d)", c->peer,
			  ps->nsockets - 1, ps->d->cfg.push_max_connections);
		tally_add(ps->refused);
		push_conn_enter(c, CONN_CLOSING);
		chan_send_error(c->ch, PROTO_ERR_BUSY, "the push server is full; retry later");
	}
}

/* Writes every changed last_seen in one statement; only the changed connections are visited. */
static void flush_seen(struct push_server *ps)
{
	struct agent_conn *c;
	size_t n = ps->ndirty, i = 0;
	char err[512];
	if (n == 0)
		return;
	int64_t *ids = malloc(n * sizeof(*ids));
	double *seen = malloc(n * sizeof(*seen));
	if (!ids || !seen)
		goto out;
	TAILQ_FOREACH(c, &ps->dirty, qentry)
	{
		ids[i] = c->agent.id;
		seen[i++] = c->last_seen;
	}
	if (agents_flush_seen(ps->d->db, n, ids, seen, err, sizeof(err)) != 0) {
		log_warnx("push: cannot record last_seen of %zu endpoints: %s", n, err);
		(void)daemon_db_ensure(ps->d);
		goto out;
	}
	while ((c = TAILQ_FIRST(&ps->dirty)) != NULL) {
		TAILQ_REMOVE(&ps->dirty, c, qentry);
		c->dirty = false;
	}
	ps->ndirty = 0;
out:
	free(ids);
	free(seen);
}

/* Whether distribution points exist decides if A_AUTH asks where an agent belongs. */
static void dps_check(struct push_server *ps)
{
	char err[512];
	int any = dps_any(ps->d->db, err, sizeof(err));
	if (any < 0)
		log_warnx("push: cannot look for distribution points: %s", err);
	else
		ps->dps_known = any == 1;
}

static void on_flush_timer(evutil_socket_t fd, short what, void *arg)
{
	flush_seen(arg);
}

static void listen_commands(struct push_server *ps);

static void on_sweep_timer(evutil_socket_t fd, short what, void *arg)
{
	struct push_server *ps = arg;
	char err[512];
	int changed, every = ps->d->cfg.heartbeat_interval, shortest = every;
	/* Heartbeats still in memory must count before anyone is called silent. */
	flush_seen(ps);
	if (agents_sweep(ps->d->db, every, &changed, &shortest, err, sizeof(err)) != 0) {
		log_warnx("push: offline sweep failed: %s", err);
		(void)daemon_db_ensure(ps->d);
	} else if (changed > 0) {
		log_info("push: %d endpoints went offline (no heartbeat for 3 intervals)", changed);
	}
	/* One line per interval instead of one per connection and per close. */
	if (ps->nauthed || ps->nclosed)
		log_info("push: %d connections open; %lu authenticated and %lu closed in the last "
			 "%d s", ps->nconns, ps->nauthed, ps->nclosed, ps->d->cfg.heartbeat_interval);
	ps->nauthed = ps->nclosed = 0;
	if (!ps->notify_ev)
		listen_commands(ps);
	sweep_schedule(ps, shortest < every ? shortest : every);
}

/*
 * "pid:id,id,...": these endpoints authenticated in process pid. A
 * connection of one of them held here is stale and must not take its
 * commands.
 */
static void on_auth_notice(struct push_server *ps, const char *payload)
{
	char *p;
	long pid = strtol(payload, &p, 10);
	if (*p != ':' || pid == (long)getpid())
		return;
	while (*p == ':' || *p == ',') {
		int64_t id = strtoll(p + 1, &p, 10);
		struct agent_conn *c = hash_find(ps, id);
		if (c)
			push_conn_fail(c, PROTO_ERR_PROTOCOL,
			  "replaced by a newer connection on another push worker");
	}
}

#define LISTEN_RETRY_MAX_S 30

/*
 * Without the LISTEN connection, commands wait for the agent's next
 * connection and revocations for its next heartbeat: it comes back in
 * seconds, not at the next sweep.
 */
static void listen_retry(struct push_server *ps)
{
	if (!ps->listen_retry_ev)
		return;
	if (ps->listen_retry_s < 1)
		ps->listen_retry_s = 1;
	struct timeval tv = { ps->listen_retry_s, 0 };
	evtimer_add(ps->listen_retry_ev, &tv);
	ps->listen_retry_s = ps->listen_retry_s * 2 > LISTEN_RETRY_MAX_S ? LISTEN_RETRY_MAX_S
									 : ps->listen_retry_s * 2;
}

static void on_listen_retry(evutil_socket_t fd, short what, void *arg)
{
	struct push_server *ps = arg;
	if (!ps->notify_ev)
		listen_commands(ps);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
	struct push_server *ps = arg;
	PGconn *conn = db_conn(ps->listen_db);
	PGnotify *n;
	if (PQconsumeInput(conn) != 1) {
		log_warnx("push: command listener connection lost: %s", PQerrorMessage(conn));
		event_free(ps->notify_ev);
		ps->notify_ev = NULL;
		listen_retry(ps);
		return;
	}
	bool commands = false;
	while ((n = PQnotifies(conn)) != NULL) {
		if (strcmp(n->relname, "strata_commands") == 0)
			commands = true;
		else if (strcmp(n->relname, "strata_agent_auth") == 0)
			on_auth_notice(ps, n->extra);
		else if (strcmp(n->relname, "strata_push_servers") == 0)
			dps_check(ps);
		else if (strcmp(n->relname, "strata_revoked") == 0) {
			struct agent_conn *c = hash_find(ps, strtoll(n->extra, NULL, 10));
			if (c)
				push_conn_fail(c, PROTO_ERR_UNREGISTERED,
					  "endpoint %" PRId64 " was revoked", c->agent.id);
		}
		PQfreemem(n);
	}
	/* However many INSERTs were announced, one statement takes their commands. */
	if (commands)
		deliver_new(ps);
}

/* (Re)opens the LISTEN connection; after a failure listen_retry (and the sweep) try again. */
static void listen_commands(struct push_server *ps)
{
	char err[512];
	if (!ps->listen_db) {
		ps->listen_db = db_connect(ps->d->cfg.db_conninfo, 1, 1, err, sizeof(err));
		if (!ps->listen_db) {
			log_warnx("push: command listener: %s", err);
			listen_retry(ps);
			return;
		}
	} else if (!db_alive(ps->listen_db) && db_reconnect(ps->listen_db, err, sizeof(err)) != 0) {
		log_warnx("push: command listener: %s", err);
		listen_retry(ps);
		return;
	}
	if (db_exec(ps->listen_db, "LISTEN strata_commands", 0, NULL, err, sizeof(err)) != 0 ||
	    db_exec(ps->listen_db, "LISTEN strata_revoked", 0, NULL, err, sizeof(err)) != 0 ||
	    db_exec(ps->listen_db, "LISTEN strata_agent_auth", 0, NULL, err, sizeof(err)) != 0 ||
	    db_exec(ps->listen_db, "LISTEN strata_push_servers", 0, NULL, err, sizeof(err)) != 0) {
		log_warnx("push: command listener: %s", err);
		listen_retry(ps);
		return;
	}
	ps->notify_ev = event_new(ps->d->base, PQsocket(db_conn(ps->listen_db)),
				  EV_READ | EV_PERSIST, on_notify, ps);
	if (!ps->notify_ev || event_add(ps->notify_ev, NULL) != 0) {
		log_warnx("push: command listener: cannot watch the socket");
		event_free(ps->notify_ev);
		ps->notify_ev = NULL;
		listen_retry(ps);
		return;
	}
	if (ps->listen_retry_s > 0)
		log_notice("push: command listener connected again");
	ps->listen_retry_s = 0;
	/* Notifications sent while nobody listened are lost: look again. */
	dps_check(ps);
	deliver_new(ps);
}

static int open_listener(struct push_server *ps, char *err, size_t errlen)
{
	const struct cfg *cfg = &ps->d->cfg;
	/* Workers share the port; the kernel spreads new connections over them. */
	ps->listener = net_listen(ps->d->base, "push", cfg->push_address, cfg->push_port,
				  ps->d->worker > 0, 512, on_accept, ps, err, errlen);
	return ps->listener ? 0 : -1;
}

struct push_server *push_start(struct daemon *d, const struct agent_pki *pki, char *err,
			       size_t errlen)
{
	struct push_server *ps = calloc(1, sizeof(*ps));
	struct timeval flush = { 0, FLUSH_MS * 1000 };
	if (!ps) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	ps->d = d;
	ps->pki = pki;
	TAILQ_INIT(&ps->conns);
	TAILQ_INIT(&ps->proving);
	TAILQ_INIT(&ps->authing);
	TAILQ_INIT(&ps->dirty);
	TAILQ_INIT(&ps->dead);
	if (open_listener(ps, err, errlen) != 0) {
		free(ps);
		return NULL;
	}
	ps->flush_ev = event_new(d->base, -1, EV_PERSIST, on_flush_timer, ps);
	ps->sweep_ev = evtimer_new(d->base, on_sweep_timer, ps);
	ps->batch_ev = evtimer_new(d->base, on_batch_timer, ps);
	ps->dead_ev = event_new(d->base, -1, 0, on_dead, ps);
	ps->preauth_cut = tally_new(d->base, TALLY_LOG_S, "push",
				    "connections closed by handshake-timeout before authenticating");
	ps->refused = tally_new(d->base, TALLY_LOG_S, "push",
				"connections refused (busy): max-connections reached");
	ps->listen_retry_ev = evtimer_new(d->base, on_listen_retry, ps);
	if (!ps->flush_ev || !ps->sweep_ev || !ps->batch_ev || !ps->dead_ev || !ps->preauth_cut ||
	    !ps->refused || !ps->listen_retry_ev) {
		snprintf(err, errlen, "out of memory");
		push_shutdown(ps);
		push_free(ps);
		return NULL;
	}
	event_add(ps->flush_ev, &flush);
	dps_check(ps);
	sweep_schedule(ps, d->cfg.heartbeat_interval);
	listen_commands(ps);
	log_notice("push: listening for agents on %s:%d (TLS 1.3), heartbeat %d s",
		   d->cfg.push_address, d->cfg.push_port, d->cfg.heartbeat_interval);
	return ps;
}

void push_shutdown(struct push_server *ps)
{
	struct agent_conn *c;
	if (!ps)
		return;
	if (ps->listener) {
		evconnlistener_free(ps->listener);
		ps->listener = NULL;
	}
	flush_seen(ps);
	ack_batch(ps);
	/* Relayed agents end with their link's close. */
	TAILQ_FOREACH(c, &ps->conns, entry)
	if (!c->via) {
		/* A link keeps its state so its close ends its relayed agents. */
		if (c->st != CONN_DP)
			push_conn_enter(c, CONN_CLOSING);
		chan_close(c->ch, "slave shutting down");
	}
}

void push_free(struct push_server *ps)
{
	if (!ps)
		return;
	if (ps->flush_ev)
		event_free(ps->flush_ev);
	if (ps->sweep_ev)
		event_free(ps->sweep_ev);
	if (ps->batch_ev)
		event_free(ps->batch_ev);
	if (ps->dead_ev)
		event_free(ps->dead_ev);
	tally_free(ps->preauth_cut);
	tally_free(ps->refused);
	free(ps->byid);
	free(ps->ack_eid);
	free(ps->ack_cid);
	if (ps->notify_ev)
		event_free(ps->notify_ev);
	if (ps->listen_retry_ev)
		event_free(ps->listen_retry_ev);
	if (ps->listen_db)
		db_close(ps->listen_db);
	free(ps);
}
