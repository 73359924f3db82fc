/*
 * Shared pieces of the fault suites: SQL on a node with parameters,
 * waiting for a daemon to exit, and checking that the master still
 * serves a registered slave after an attack.
 */
#ifndef STRATA_HARNESS_FAULTS_H
#define STRATA_HARNESS_FAULTS_H

#include <stdbool.h>
#include <sys/types.h>

#include "harness_proc.h"

/* Runs one statement with text parameters on the node's database; 0 on success. */
int hf_exec(struct hnode *n, const char *sql, int nparams, const char *const *params);
/* Runs constant SQL of several statements (no parameters); 0 on success. */
int hf_script(struct hnode *n, const char *sql);
/* First value of a parameterised query as a malloc'd string, NULL on error or no row. */
char *hf_value(struct hnode *n, const char *sql, int nparams, const char *const *params);
/* Same as a number, -1 on error. */
long long hf_ll(struct hnode *n, const char *sql, int nparams, const char *const *params);
/* The master's id for a slave name (the live row), -1 when none. */
int hf_slave_id(struct hnode *master, const char *name);

/* Starts bin -c cfg with output appended to log; returns the child's pid. */
pid_t hf_spawn(const char *bin, const char *cfg, const char *log);
/* Waits up to timeout_s for pid to exit; its exit status, or -1 if it is still running. */
int hf_wait_exit(pid_t pid, int timeout_s);

/* True when the log file contains needle. */
bool hf_file_contains(const char *path, const char *needle);
/* Number of lines in the file that contain needle. */
int hf_file_count(const char *path, const char *needle);

/* `sync now` on the slave, retried for up to timeout_s (the slave may be in backoff). */
int hf_sync_retry(struct hnode *slave, int timeout_s);

/* One stream's row count and checksum: SQL on the slave, and on the master ($1: slave id). */
struct hf_stream {
	const char *stream;
	const char *slave_sql;
	const char *master_sql;
};

/*
 * The replicated streams (groups, endpoints, events, task_results, local
 * policies and tasks): the row count and a checksum over the replicated
 * columns on the slave and in the master's partition for the slave.
 */
extern const struct hf_stream hf_streams[];
extern const size_t hf_nstreams;

/*
 * Compares n streams of s between the slave and the master's rows for
 * slave id sid: the rows compared (the slave's counts summed) when every
 * stream agrees, else -1; with report, the streams that differ are
 * printed.
 */
long long hf_compare(struct hnode *master, struct hnode *slave, int sid, const struct hf_stream *s,
		     size_t n, bool report);
/* hf_compare over hf_streams: true when every replicated stream agrees. */
bool hf_rows_same(struct hnode *master, struct hnode *slave, int sid, bool report);

#endif
