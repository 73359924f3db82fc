#include "pushdp.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentproto.h"
#include "dps.h"
#include "log.h"
#include "proto.h"
#include "tls.h"

#define DP_CERT_DAYS 825

static struct agent_conn **vid_slot(struct dp_link *dp, uint64_t vid)
{
	return &dp->byvid[(vid * 0x9E3779B97F4A7C15ull >> 40) % VID_BUCKETS];
}

static struct agent_conn *vid_find(struct dp_link *dp, uint64_t vid)
{
	for (struct agent_conn *v = *vid_slot(dp, vid); v; v = v->vnext)
		if (v->vid == vid)
			return v;
	return NULL;
}

static void vid_remove(struct agent_conn *v)
{
	struct dp_link *dp = v->via->dp;
	for (struct agent_conn **pp = vid_slot(dp, v->vid); *pp; pp = &(*pp)->vnext)
		if (*pp == v) {
			*pp = v->vnext;
			dp->nvirtual--;
			return;
		}
}

void pushdp_send(struct agent_conn *c, uint16_t type, json_t *o)
{
	char *text = json_dumps(o, JSON_COMPACT);
	size_t n = text ? strlen(text) : 0;
	uint8_t *buf = text ? malloc(DP_FRAME_HDR + n) : NULL;
	if (buf) {
		agentproto_dp_frame_hdr(buf, c->vid, type);
		memcpy(buf + DP_FRAME_HDR, text, n);
		chan_send(c->via->ch, A_DP_FRAME, buf, DP_FRAME_HDR + n);
	} else {
		log_warnx("push %s: out of memory relaying %s", c->peer, agentproto_msg_name(type));
	}
	free(buf);
	free(text);
}

/* Ends a relayed connection: tells its distribution point, frees it from the loop. */
void pushdp_end(struct agent_conn *c, const char *reason)
{
	vid_remove(c);
	json_t *o = json_pack("{s:I, s:s}", "vid", (json_int_t)c->vid, "reason", reason);
	if (o)
		chan_send_json(c->via->ch, A_DP_CLOSE, o);
	json_decref(o);
	/* qentry moves to the dead list: off the authing and dirty lists first. */
	if (c->st != CONN_CLOSING)
		push_conn_enter(c, CONN_CLOSING);
	if (c->dirty)
		push_flush_one(c->ps, c);
	TAILQ_INSERT_TAIL(&c->ps->dead, c, qentry);
	event_active(c->ps->dead_ev, EV_TIMEOUT, 0);
}

/* A distribution point enrols: its CSR becomes the certificate of its push port. */
void pushdp_enrol(struct agent_conn *c, json_t *o)
{
	struct amsg_dp_enrol m;
	struct push_server *ps = c->ps;
	char err[1024], key[65];
	int64_t id;
	if (agentproto_decode_dp_enrol(o, &m, err, sizeof(err)) != 0) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	if (!push_version_ok(c, m.proto))
		return;
	X509_REQ *req = tls_csr_from_pem(m.csr, err, sizeof(err));
	EVP_PKEY *pub = req ? X509_REQ_get0_pubkey(req) : NULL;
	if (!req || !pub || EVP_PKEY_id(pub) != EVP_PKEY_ED25519 ||
	    agentproto_pubkey_hex(pub, key) != 0) {
		X509_REQ_free(req);
		push_conn_fail(c, PROTO_ERR_PROTOCOL,
			       "A_DP_ENROL: member 'csr' must be an Ed25519 "
			       "certificate request%s%s",
			       req ? "" : ": ", req ? "" : err);
		return;
	}
	/* Signed before the row is written: a CSR that fails its own signature stores nothing. */
	X509 *cert = tls_sign_csr(ps->pki->ca, ps->pki->ca_key, req, m.name, 1, m.address,
				  DP_CERT_DAYS, err, sizeof(err));
	X509_REQ_free(req);
	if (!cert) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "A_DP_ENROL: %s", err);
		return;
	}
	int rc = dps_enrol(ps->d->db, ps->pki->pin, &m, key, &id, err, sizeof(err));
	char *pem = rc == 0 ? tls_cert_to_pem(cert) : NULL;
	X509_free(cert);
	if (rc == 1) {
		push_conn_fail(c, "token", "%s", err);
		return;
	}
	if (rc != 0 || !pem) {
		free(pem);
		push_conn_internal(c, "distribution point enrolment", rc ? err : "out of memory");
		return;
	}
	ps->dps_known = true;
	push_send_obj(c, A_DP_ENROL_OK,
		      json_pack("{s:I, s:s, s:s}", "dp_id", (json_int_t)id, "cert", pem, "ca",
				ps->pki->ca_pem));
	free(pem);
	push_conn_enter(c, CONN_CLOSING);
	push_conn_close(c, "distribution point enrolled");
}

/* A distribution point proves its key: this connection becomes its link. */
void pushdp_auth(struct agent_conn *c, json_t *o)
{
	struct amsg_dp_auth m;
	struct push_server *ps = c->ps;
	char err[1024], key[65], name[64];
	if (agentproto_decode_dp_auth(o, &m, err, sizeof(err)) != 0) {
		push_conn_fail(c, PROTO_ERR_PROTOCOL, "%s", err);
		return;
	}
	if (!push_version_ok(c, m.proto))
		return;
	int rc = dps_lookup(ps->d->db, m.dp_id, key, name, sizeof(name), err, sizeof(err));
	if (rc < 0) {
		push_conn_internal(c, "distribution point lookup", err);
		return;
	}
	if (rc == 1) {
		push_conn_fail(c, PROTO_ERR_UNREGISTERED,
			       "distribution point %" PRId64 " is unknown or "
			       "removed; enrol it again with a new token",
			       m.dp_id);
		return;
	}
	if (agentproto_verify(chan_ssl(c->ch), key, m.sig) != 0) {
		push_conn_fail(c, AGENT_ERR_AUTH, "key proof failed");
		return;
	}
	/* An older link of the same point in this process is a dead TCP connection. */
	struct agent_conn *old;
	TAILQ_FOREACH (old, &ps->conns, entry)
		if (old->st == CONN_DP && old->dp->id == m.dp_id) {
			push_conn_enter(old, CONN_CLOSING);
			chan_send_error(old->ch, PROTO_ERR_PROTOCOL, "replaced by a newer link");
			pushdp_link_closed(old);
		}
	c->dp = calloc(1, sizeof(*c->dp));
	if (!c->dp) {
		push_conn_internal(c, "distribution point link", "out of memory");
		return;
	}
	if (dps_set_online(ps->d->db, m.dp_id, true, (int)getpid(), err, sizeof(err)) != 0) {
		push_conn_internal(c, "distribution point status", err);
		return;
	}
	c->dp->id = m.dp_id;
	snprintf(c->dp->name, sizeof(c->dp->name), "%s", name);
	snprintf(c->peer, sizeof(c->peer), "dp %.60s", name);
	ps->dps_known = true;
	push_conn_enter(c, CONN_DP);
	chan_set_max_frame(c->ch, (uint32_t)ps->d->cfg.frame_max + DP_FRAME_HDR);
	chan_set_timeout(c->ch, DP_SILENCE_S);
	log_notice("push: distribution point %s (%" PRId64 ") linked", name, m.dp_id);
	push_send_obj(c, A_DP_AUTH_OK,
		      json_pack("{s:i}", "heartbeat", ps->d->cfg.heartbeat_interval));
}

/* Ends the link's relayed connections and marks the point offline (once). */
void pushdp_link_closed(struct agent_conn *l)
{
	struct dp_link *dp = l->dp;
	char err[512];
	if (!dp || dp->id == 0)
		return;
	for (size_t b = 0; b < VID_BUCKETS; b++) {
		struct agent_conn *v;
		while ((v = dp->byvid[b]) != NULL) {
			dp->byvid[b] = v->vnext;
			push_conn_closed(v, "the distribution point's link closed");
		}
	}
	dp->nvirtual = 0;
	if (dps_set_online(l->ps->d->db, dp->id, false, (int)getpid(), err, sizeof(err)) != 0)
		log_warnx("push: cannot mark distribution point %s offline: %s", dp->name, err);
	log_notice("push: distribution point %s unlinked", dp->name);
	dp->id = 0;
}

static void link_fail(struct agent_conn *l, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void link_fail(struct agent_conn *l, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warnx("push %s: %s", l->peer, msg);
	pushdp_link_closed(l);
	push_conn_enter(l, CONN_CLOSING);
	chan_send_error(l->ch, PROTO_ERR_PROTOCOL, "%s", msg);
}

static void link_open(struct agent_conn *l, json_t *o)
{
	struct amsg_dp_open m;
	char err[512];
	struct push_server *ps = l->ps;
	if (agentproto_decode_dp_open(o, &m, err, sizeof(err)) != 0) {
		link_fail(l, "%s", err);
		return;
	}
	if (vid_find(l->dp, m.vid)) {
		link_fail(l, "A_DP_OPEN: vid %" PRIu64 " is open already", m.vid);
		return;
	}
	struct agent_conn *v = calloc(1, sizeof(*v));
	unsigned char *ekm = malloc(AGENT_EXPORTER_LEN);
	if (!v || !ekm) {
		free(v);
		free(ekm);
		link_fail(l, "out of memory");
		return;
	}
	memcpy(ekm, m.ekm, AGENT_EXPORTER_LEN);
	v->ekm = ekm;
	v->ps = ps;
	v->via = l;
	v->vid = m.vid;
	v->st = CONN_PREAUTH;
	snprintf(v->ip, sizeof(v->ip), "%s", m.address);
	snprintf(v->peer, sizeof(v->peer), "%.24s via %.30s", m.address, l->dp->name);
	struct agent_conn **slot = vid_slot(l->dp, m.vid);
	v->vnext = *slot;
	*slot = v;
	l->dp->nvirtual++;
	TAILQ_INSERT_TAIL(&ps->conns, v, entry);
	ps->nconns++;
}

void pushdp_link_message(struct agent_conn *l, uint16_t type, const uint8_t *payload, size_t len)
{
	char err[512];
	struct push_server *ps = l->ps;
	if (type == A_DP_FRAME) {
		uint64_t vid;
		uint16_t inner;
		if (agentproto_dp_frame_split(payload, len, &vid, &inner) != 0) {
			link_fail(l, "A_DP_FRAME shorter than its header");
			return;
		}
		/* Gone: the slave ended it and the point has not read A_DP_CLOSE yet. */
		struct agent_conn *v = vid_find(l->dp, vid);
		if (!v)
			return;
		size_t n = len - DP_FRAME_HDR;
		if (v->st == CONN_PREAUTH && n > (size_t)ps->d->cfg.frame_max_preauth) {
			push_conn_fail(v, PROTO_ERR_PROTOCOL,
				       "frame of %zu bytes before authentication "
				       "(limit %d)",
				       n, ps->d->cfg.frame_max_preauth);
			return;
		}
		push_conn_message(v, inner, payload + DP_FRAME_HDR, n);
		return;
	}
	if (type == MSG_ERROR) {
		log_warnx("push %s: the distribution point sent ERROR; closing its link", l->peer);
		pushdp_link_closed(l);
		push_conn_enter(l, CONN_CLOSING);
		chan_close(l->ch, "distribution point sent ERROR");
		return;
	}
	if (!agentproto_allowed(AST_DP_LINK, type)) {
		link_fail(l, "message %s (type %u) is not allowed on a distribution point link",
			  agentproto_msg_name(type), type);
		return;
	}
	json_t *o = proto_parse_json(payload, len, err, sizeof(err));
	if (!o) {
		link_fail(l, "%s: %s", agentproto_msg_name(type), err);
		return;
	}
	if (type == A_DP_OPEN) {
		link_open(l, o);
	} else if (type == A_DP_CLOSE) {
		struct amsg_dp_close m;
		if (agentproto_decode_dp_close(o, &m, err, sizeof(err)) != 0) {
			link_fail(l, "%s", err);
		} else {
			struct agent_conn *v = vid_find(l->dp, m.vid);
			if (v) {
				vid_remove(v);
				push_conn_closed(v, m.reason[0] ? m.reason : "closed by the agent");
			}
		}
	} else if (type == A_DP_LOAD) {
		int64_t n;
		bool removed = false;
		if (agentproto_decode_count(o, "A_DP_LOAD", "connections", 10000000, &n, err,
					    sizeof(err)) != 0) {
			link_fail(l, "%s", err);
		} else if (dps_load(ps->d->db, l->dp->id, n, &removed, err, sizeof(err)) != 0) {
			log_warnx("push %s: cannot record its load: %s", l->peer, err);
			(void)daemon_db_ensure(ps->d);
		} else if (!removed) {
			/* The answer keeps the link alive both ways and shows what the slave holds.
			 */
			push_send_obj(
			    l, A_DP_LOAD,
			    json_pack("{s:I}", "connections", (json_int_t)l->dp->nvirtual));
		} else {
			log_notice("push %s: removed by the operator; closing its link", l->peer);
			pushdp_link_closed(l);
			push_conn_enter(l, CONN_CLOSING);
			chan_send_error(l->ch, PROTO_ERR_UNREGISTERED,
					"this distribution point was removed from the slave");
		}
	} else {
		link_fail(l, "unexpected message %s", agentproto_msg_name(type));
	}
	json_decref(o);
}
