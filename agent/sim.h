/*
 * sim: strata-agent --simulate N, a load generator of N agents for tests
 * and benchmarks.
 *
 * "enrol" makes N identities (an Ed25519 key each) and enrols them with
 * the push server over many parallel connections; they are kept in one
 * file, STATE_DIR/sim.jsonl (0600): a header line {host, port, ca} and
 * one line {id, key} per agent, key being the raw private key in hex.
 *
 * "run" forks P processes (default ceil(N / SIM_PER_PROC)); each runs its
 * share of the agents in one libevent loop, one small struct per agent:
 * a TLS connection, A_AUTH, heartbeats at the server's interval with a
 * random phase, A_COMMAND_ACK for every command and a tiny A_RESULT for
 * run_task. Nothing is written to disk. Each connection binds its source
 * address round-robin over --sources so that a single destination port
 * does not exhaust the ephemeral ports of one source address. Connections
 * start at a bounded rate per process and are retried with backoff. An
 * A_REDIRECT is followed through the same pacer and kept in memory only,
 * with the agent's fallback to the enrolment's push server (route.h).
 *
 * Every process prints stats to stderr every SIM_STATS_SEC and one JSON
 * line to stdout on SIGUSR1 and at exit. SIGUSR2 switches every agent to
 * a heartbeat each --fast-heartbeat seconds and back, to load the
 * server's heartbeat path beyond what its interval would.
 *
 * With --events-per-min K every connected agent sends about K A_EVENT
 * messages a minute (kind "sim", details {agent, seq}), numbered per
 * agent from 1 by its own sequence, and counts the A_EVENT_ACKs, which
 * arrive in order on the connection. Like the real agent, it keeps the
 * unacknowledged ones: after the next A_AUTH_OK it first sends them again,
 * unchanged (same seq, occurred_at and details), so the slave stores each
 * once: occurred_at follows from the seq (sim_event_time), so a resent
 * event meets its stored copy on (endpoint, seq, occurred_at). At most
 * SIM_EV_WINDOW events per agent wait for their ack; while the window is
 * full the agent's turns pass without a new event (counted). Events still
 * unacknowledged at exit are reported on stdout, one JSON line per agent,
 * {"unacked":{"agent":ID,"from":A,"to":B}}, since the server may or may
 * not have stored them. Every other event made was acknowledged.
 */
#ifndef STRATA_AGENT_SIM_H
#define STRATA_AGENT_SIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SIM_FILE	     "sim.jsonl"
#define SIM_PER_PROC	     15000 /* agents per process unless --procs says otherwise */
#define SIM_RATE_DEFAULT     2000  /* new connections per second and process */
#define SIM_INFLIGHT_DEFAULT 512   /* handshakes in progress per process */
#define SIM_STATS_SEC	     5
#define SIM_FAST_HEARTBEAT   2 /* seconds */
#define SIM_SOURCES_MAX	     65536
#define SIM_EV_WINDOW	     64 /* unacknowledged events per agent at most */

struct sim_opts {
	const char *dir;
	int n;		  /* agents */
	int procs;	  /* 0: sim_default_procs(n) */
	const char *host; /* enrol: the push server */
	int port;
	const char *token;   /* enrol: an agent-token of the slave */
	const char *sources; /* run: "A" or "A-B" IPv4 source addresses; NULL: the kernel picks */
	int rate;	     /* connections started per second and process; 0: default */
	int inflight;	     /* handshakes in progress per process; 0: default */
	int duration;	     /* run: seconds before stopping; 0: until SIGTERM/SIGINT */
	int fast_heartbeat;  /* run: seconds between heartbeats after SIGUSR2 (toggles) */
	int events_per_min;  /* run: A_EVENTs per agent and minute; 0: none */
};

/* Enrols n identities into dir/sim.jsonl; 0, or -1 with err. */
int sim_enrol(const struct sim_opts *o, char *err, size_t errlen);
/* Runs the simulated agents until stopped; 0, or -1 with err. */
int sim_run(const struct sim_opts *o, char *err, size_t errlen);

/* A range of IPv4 source addresses, host byte order. */
struct sim_sources {
	uint32_t first;
	uint32_t count; /* 0: no binding */
};
/* "127.0.0.2" or "127.0.0.2-127.0.0.50" (inclusive, first <= last, at most SIM_SOURCES_MAX). */
int sim_sources_parse(const char *text, struct sim_sources *out, char *err, size_t errlen);
/* The i-th address round-robin, host byte order; count must be > 0. */
uint32_t sim_sources_at(const struct sim_sources *s, uint64_t i);

/*
 * One agent's event numbers: sent is the last seq made, acked the last
 * acknowledged (acks arrive in order), both 0 before the first. The
 * events acked + 1 .. sent are pending: kept to be sent again after a
 * reconnect until their acks arrive.
 */
struct sim_evseq {
	uint32_t sent, acked;
};
/* The seq of the next event to make, or 0 when SIM_EV_WINDOW events are pending already. */
uint32_t sim_evseq_next(struct sim_evseq *s);
/* An A_EVENT_ACK for seq: 0 when it is the next one expected, else -1 (nothing changes). */
int sim_evseq_ack(struct sim_evseq *s, int64_t seq);
/* The pending range [*from, *to] and its size (0: none, from and to untouched); they stay
 * pending: to be sent again after a reconnect, or reported at exit. */
uint32_t sim_evseq_pending(const struct sim_evseq *s, uint32_t *from, uint32_t *to);
/* The occurred_at of event seq at per_min events a minute, "YYYY-MM-DDTHH:MM:SS.mmmZ": base_ms
 * (epoch ms, taken once at start) plus (seq - 1) minute / per_min, the time the event was due
 * at the earliest. The same for a resent event. 0, or -1 when out is too small. */
int sim_event_time(int64_t base_ms, int per_min, uint32_t seq, char *out, size_t outlen);
/* Events due in one tick of tick_ms for count agents at per_min each, carrying the fraction
 * in *credit (>= 0) to the next tick. */
int sim_events_due(double *credit, int count, int per_min, int tick_ms);

/* ceil(n / SIM_PER_PROC), at least 1. */
int sim_default_procs(int n);
/* Process index of procs takes agents [*start, *start + *count) of n; shares differ by at most 1.
 */
void sim_share(int n, int procs, int index, int *start, int *count);

#endif
