/*
 * pushconn: the push server's connection types and the connection
 * functions push.c lends to its distribution point part (pushdp.c). Not
 * an interface for anything else: slave/push.h is.
 */
#ifndef STRATA_SLAVE_PUSHCONN_H
#define STRATA_SLAVE_PUSHCONN_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include <event2/event.h>
#include <jansson.h>

#include "agentpki.h"
#include "agents.h"
#include "chan.h"
#include "daemon.h"
#include "effective.h"

struct tally;

/* ERROR codes of the agent channel beyond those of proto.h. */
#define AGENT_ERR_SEATS "seats"
#define AGENT_ERR_AUTH	"auth"
#define AGENT_ERR_RATE	"rate"

#define VID_BUCKETS 1024 /* relayed agents per link bucket array; chains grow past that */

enum conn_state {
	CONN_PREAUTH, /* TLS up; only A_ENROL or A_AUTH */
	CONN_PROVING, /* A_AUTH read; its key is looked up and checked in the next batch */
	CONN_AUTHING, /* the key is proven; the status is not written yet */
	CONN_AUTHED,  /* the agent proved its key and A_AUTH_OK went out */
	CONN_CLOSING, /* an answer or error is flushing; nothing more is read */
	CONN_DP,      /* the link of a distribution point (c->dp) */
};

/* What an A_AUTH claims, kept only until the batch that checks it. */
struct auth_claim {
	char agent_id[65];
	char sig[129];
};

struct agent_conn {
	TAILQ_ENTRY(agent_conn) entry;
	/* In ps->proving while CONN_PROVING, in ps->authing while
	 * CONN_AUTHING, in ps->dirty while dirty (only once authed): one link
	 * serves the three lists. */
	TAILQ_ENTRY(agent_conn) qentry;
	struct auth_claim *claim; /* while CONN_PROVING */
	struct agent_conn *hnext; /* bucket chain of ps->byid */
	bool hashed;		  /* in ps->byid under agent.id */
	bool reachable;		  /* 'online', else 'unreachable' */
	struct push_server *ps;
	struct chan *ch; /* NULL for an agent relayed by a distribution point */
	/* A relayed agent: the link it came by and its number there. */
	struct agent_conn *via, *vnext;
	uint64_t vid;
	unsigned char *ekm; /* its session's keying material, until A_AUTH */
	struct dp_link *dp; /* CONN_DP: the distribution point */
	char peer[64];
	char ip[INET6_ADDRSTRLEN];
	enum conn_state st;
	struct agent_rec agent; /* valid once authed */
	char mode[8];
	double last_seen;	  /* epoch seconds of the last heartbeat */
	int heartbeat;		  /* seconds; the interval this agent was last told */
	int64_t policy_effective; /* its effective policy's version at A_AUTH */
	bool dirty;		  /* last_seen not written yet */
	int64_t rate_window_ms;
	int rate_count;
};

TAILQ_HEAD(conn_list, agent_conn);

/* An authenticated distribution point's link: its relayed agents by vid. */
struct dp_link {
	int64_t id;
	char name[64];
	struct agent_conn *byvid[VID_BUCKETS];
	size_t nvirtual;
};

struct push_server {
	struct daemon *d;
	const struct agent_pki *pki;
	struct evconnlistener *listener;
	struct conn_list conns;
	int nconns;	       /* every connection, relayed ones included */
	int nsockets;	       /* this process's own sockets (max-connections) */
	bool dps_known;	       /* a distribution point is enrolled: route every A_AUTH
				  (strata_push_servers) */
	struct conn_list dead; /* relayed connections ended, to free from the loop */
	struct event *dead_ev;
	struct event *flush_ev, *sweep_ev, *notify_ev, *batch_ev;
	int64_t sweep_due_ms;		   /* now_ms() at which sweep_ev fires */
	struct effective_seen policy_seen; /* the policies last loaded, for their warnings */
	struct db *listen_db;		   /* LISTEN strata_commands */
	/* Reopens a lost LISTEN connection after listen_retry_s (1 s, doubling up to 30 s). */
	struct event *listen_retry_ev;
	int listen_retry_s;
	/* endpoint id -> its connection (from the key proof on), chained. */
	struct agent_conn **byid;
	size_t nbuckets, nhashed;
	struct conn_list proving; /* A_AUTH read, key to look up in the next batch */
	struct conn_list authing; /* key proven, status to write in the next batch */
	struct conn_list dirty;	  /* last_seen to write in the next flush */
	size_t ndirty;
	/* Acknowledgements to write in the next batch: (endpoint, command). */
	int64_t *ack_eid, *ack_cid;
	size_t nacks, acks_cap;
	/* Since the last summary: connections authenticated and closed. */
	unsigned long nauthed, nclosed;
	/* One line per 10 s, not one per connection, for what a flood brings. */
	struct tally *preauth_cut; /* silent before authenticating */
	struct tally *refused;	   /* over max-connections */
};

void push_conn_enter(struct agent_conn *c, enum conn_state next);
/* Logs, sends ERROR {code, message} and closes once it is flushed. */
void push_conn_fail(struct agent_conn *c, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* true for this slave's agent protocol version; else the connection fails with ERROR version. */
bool push_version_ok(struct agent_conn *c, int proto);
/* A database failure: the agent retries later. */
void push_conn_internal(struct agent_conn *c, const char *what, const char *err);
/* ERROR {code, message}, then the close. */
void push_conn_error(struct agent_conn *c, const char *code, const char *msg);
/* Sends o (stolen; NULL is fine) to the agent, directly or through its point. */
void push_send_obj(struct agent_conn *c, uint16_t type, json_t *o);
void push_conn_close(struct agent_conn *c, const char *reason);
/* Forgets a connection that ended; the last use of c. */
void push_conn_closed(struct agent_conn *c, const char *reason);
/* One agent-channel frame from c (a relayed agent's comes through its link). */
void push_conn_message(struct agent_conn *c, uint16_t type, const uint8_t *payload, size_t len);
/* Writes c's pending last_seen now. */
void push_flush_one(struct push_server *ps, struct agent_conn *c);

#endif
