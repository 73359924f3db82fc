#ifndef STRATA_HARNESS_RELAY_H
#define STRATA_HARNESS_RELAY_H

/*
 * A delaying TCP relay for tests: a real latency where the kernel has no
 * tc netem. A forked child, optionally inside a network namespace, listens
 * on an address; each accepted connection gets its own connection to the
 * target, and bytes go both ways, each chunk held back for delay ± jitter
 * milliseconds (never earlier than the chunk before it, so order holds).
 * The delay can change while the relay runs; it applies to chunks read
 * from then on. The child dies with the test process (PR_SET_PDEATHSIG).
 */
#include <stdint.h>

struct hrelay;

struct hrelay_stats {
	uint64_t conns;	       /* connections accepted */
	uint64_t chunks;       /* chunks forwarded, both ways */
	uint64_t delayed;      /* of which held back for 1 ms or more */
	uint64_t max_delay_ms; /* the longest a chunk was held back */
};

/*
 * Starts a relay in network namespace netns (a name under /run/netns, or
 * NULL for the caller's) listening on listen_addr with a free port, to
 * to_addr:to_port; 0 and *out set, or -1 with a message on stderr.
 */
int hrelay_start(struct hrelay **out, const char *netns, const char *listen_addr,
		 const char *to_addr, int to_port) __attribute__((warn_unused_result));

/* The port the relay listens on. */
int hrelay_port(const struct hrelay *r);

/* Chunks read from now on are held back delay_ms ± jitter_ms (at least 0). */
void hrelay_set_delay(struct hrelay *r, int delay_ms, int jitter_ms);

/* The counters since the start or the last reset. */
void hrelay_stats(const struct hrelay *r, struct hrelay_stats *out);
void hrelay_reset_stats(struct hrelay *r);

/* Kills the relay, closing all its connections; NULL is a no-op. */
void hrelay_stop(struct hrelay **r);

#endif
