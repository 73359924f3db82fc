/*
 * harness_proc: real daemons for integration tests. Writes server.xml
 * files, starts strata-master / strata-slave with their output in a log
 * file, runs strata-ctl, and polls for conditions with deadlines.
 * Every node gets its own directory under a per-test root.
 */
#ifndef STRATA_HARNESS_PROC_H
#define STRATA_HARNESS_PROC_H

#include <stdbool.h>
#include <sys/types.h>

#include <libpq-fe.h>

struct hnode {
	char name[64];
	bool master;
	char dir[512];	   /* data dir, config, socket, log */
	char cfg[600];	   /* server.xml path */
	char sock[600];	   /* admin socket */
	char log[600];	   /* daemon output */
	char *dbname;	   /* its database on the test cluster */
	int port;	   /* master: sync port */
	int push_port;	   /* slave: its push server's port */
	pid_t pid;
	/* Optional, set after hp_*_init (which clears them), then
	 * hp_write_config: the network namespace (a name under /run/netns)
	 * hp_start runs the daemon in, and the master's sync-listen address
	 * (127.0.0.1 when empty), also used by hp_enrol. */
	char netns[64];
	char sync_addr[64];
};

/* A fresh directory for this test run (mkdtemp under /tmp). */
const char *hp_root(void);
/* A TCP port on 127.0.0.1 that nobody listens on right now. */
int hp_free_port(void);

/* Master node with its own database; extra_xml goes inside <server>. */
int hp_master_init(struct hnode *n, const char *name, const char *extra_xml);
/* Slave node pointing at master_port, replication interval seconds. */
int hp_slave_init(struct hnode *n, const char *name, int master_port, int interval,
		  const char *extra_xml);
/*
 * Rewrites the node's server.xml (same settings, new extra_xml). A slave
 * always gets <push address="127.0.0.1" port="push_port">; a <push ...>
 * element in extra_xml gets those two attributes added instead.
 */
int hp_write_config(struct hnode *n, const char *extra_xml);

/* Starts the daemon and waits until its admin socket answers (30 s). */
int hp_start(struct hnode *n);
/* SIGTERM and wait; SIGKILL after 10 s. Returns the exit status or -1. */
int hp_stop(struct hnode *n);
/* SIGKILL and reap. */
void hp_kill9(struct hnode *n);
/* Stops (if running), drops the database. */
void hp_cleanup(struct hnode *n);

/*
 * Runs strata-ctl -s <node socket> args... (NULL-terminated). Returns the
 * exit status; *out (may be NULL) gets stdout+stderr, malloc'd.
 */
int hp_ctl(struct hnode *n, char **out, ...) __attribute__((sentinel));
/* Same with an explicit binary and argv, e.g. for strata-master -T. */
int hp_run(char **out, const char *bin, ...) __attribute__((sentinel));

/* Opens a libpq connection to the node's database (caller PQfinish). */
PGconn *hp_db(struct hnode *n);
/* First value of a query as a malloc'd string (NULL on error/no row). */
char *hp_query1(struct hnode *n, const char *sql);
long long hp_query_ll(struct hnode *n, const char *sql);

/* Polls cond every 100 ms until true or timeout_s passes. */
bool hp_wait(bool (*cond)(void *arg), void *arg, int timeout_s);
/* True when the node's log contains needle. */
bool hp_log_contains(struct hnode *n, const char *needle);
/* The same for any file, and waiting for it. */
bool hp_file_contains(const char *path, const char *needle);
bool hp_wait_file_contains(const char *path, const char *needle, int timeout_s);
/* Waits until the log contains needle. */
bool hp_wait_log(struct hnode *n, const char *needle, int timeout_s);

/* Registers slave with master: slave add + register. 0 on success. */
int hp_enrol(struct hnode *master, struct hnode *slave);
/* Runs `sync now` on the slave; 0 on success. */
int hp_sync(struct hnode *slave);

/* The agent binary of this build. */
#define HP_AGENT STRATA_BINARY_DIR "/strata-agent"
/* Starts HP_AGENT with the given arguments (NULL-terminated), its output
 * appended to log; returns the pid (-1 on failure). */
pid_t hp_spawn_agent(const char *log, ...) __attribute__((sentinel));
/* The distribution point binary; hp_spawn_dp starts it with -c cfg, output to log. */
#define HP_DP STRATA_BINARY_DIR "/strata-dp"
pid_t hp_spawn_dp(const char *log, const char *cfg);
/* A sanitizer report in log fails the suite. */
void hp_check_log(const char *log);
/* SIGTERM to *pid (when > 0), which must then exit 0, and hp_check_log(log). */
void hp_stop_checked(pid_t *pid, const char *log);
/* Sends sig to *pid (when > 0), reaps it and sets *pid to 0. */
void hp_reap(pid_t *pid, int sig);

/* Standard CUnit main: runs the registry, returns 1 on any failure. */
int hp_run_suite(void);

/*
 * The push workers of the slave whose main process is parent: its
 * children started with -W INDEX, found in /proc. pids[INDEX - 1] gets
 * the pid (0: none running) for INDEX 1..n; returns how many run.
 */
int hp_worker_pids(pid_t parent, pid_t *pids, int n);

#endif
