/*
 * acli: the command line of strata-agent, parsed without globals so the
 * table of accepted and refused command lines is a unit test.
 */
#ifndef STRATA_AGENT_CLI_H
#define STRATA_AGENT_CLI_H

#include <stdbool.h>
#include <stddef.h>

#define ACLI_USAGE                                                                                 \
	"usage: strata-agent [-v] -s STATE_DIR enrol --server HOST:PORT --token TOKEN\n"           \
	"                    [--mode push|poll] [--hostname NAME]\n"                               \
	"       strata-agent [-v] -s STATE_DIR run [--poll-interval S] [--scan-root DIR]\n"        \
	"       strata-agent -s DIR --simulate N enrol --server HOST:PORT --token TOKEN\n"         \
	"                    [--procs P] [--inflight K] [--sources A[-B]]\n"                       \
	"       strata-agent -s DIR --simulate N run [--procs P] [--sources A[-B]] [--rate R]\n"   \
	"                    [--inflight K] [--duration S] [--fast-heartbeat S]\n"                 \
	"                    [--events-per-min E]\n"                                               \
	"       strata-agent -h\n"

#define ACLI_POLL_DEFAULT 300

enum acli_cmd { ACLI_NONE, ACLI_ENROL, ACLI_RUN };

struct acli {
	bool help, verbose;
	enum acli_cmd cmd;
	const char *state_dir;
	char host[256];
	int port;
	const char *token, *mode, *hostname; /* mode defaults to "push" */
	int poll_interval;		     /* seconds, 1..86400 */
	const char *scan_root;		     /* NULL: any path may be scanned */
	/* --simulate N (sim.h): 0 = a real agent */
	int simulate;
	int procs, rate, inflight, duration, fast_heartbeat; /* 0: the simulator's defaults */
	int events_per_min;				     /* 0: no events */
	const char *sources;
};

/* 0, or -1 with the reason in err (a usage error: exit code 2). Strings point into argv. */
int acli_parse(int argc, char **argv, struct acli *o, char *err, size_t errlen);
/* "host:port" or "[v6]:port"; 0 or -1. */
int acli_split_hostport(const char *s, char *host, size_t hostlen, int *port);

#endif
