/*
 * db: PostgreSQL access through libpq. Every value goes through
 * PQexecParams; SQL text is always a constant of the program.
 *
 * A struct db is one connection plus the reason of its last error. The
 * functions are blocking. db_connect() retries with a log line per failed
 * attempt. Errors are written to err with the SQLSTATE, and
 * db_last_sqlstate() lets callers tell a unique violation (23505) or a
 * lost connection (08xxx / PQstatus bad) from the rest.
 */
#ifndef STRATA_DB_H
#define STRATA_DB_H

#include <stdbool.h>
#include <stddef.h>

#include <libpq-fe.h>

#define DB_WUR __attribute__((warn_unused_result))

struct db;

/* attempts: 0 = retry forever; retry_interval in seconds. */
DB_WUR struct db *db_connect(const char *conninfo, int attempts, int retry_interval, char *err,
			     size_t errlen);
void db_close(struct db *db);
PGconn *db_conn(struct db *db);
/* true when the connection is usable (PQstatus OK). */
bool db_alive(struct db *db);
/* Re-establishes a broken connection once; 0 or -1. */
DB_WUR int db_reconnect(struct db *db, char *err, size_t errlen);
/* SQLSTATE of the last failed call ("" when none, "08006" when the link is gone). */
const char *db_last_sqlstate(const struct db *db);

/* Query returning rows or a command; NULL on error (nothing to clear).
 * params may be NULL entries for SQL NULL. Caller PQclear()s. */
DB_WUR PGresult *db_query(struct db *db, const char *sql, int nparams, const char *const *params,
			  char *err, size_t errlen);
/* Same, result discarded; 0 or -1. */
DB_WUR int db_exec(struct db *db, const char *sql, int nparams, const char *const *params,
		   char *err, size_t errlen);

/*
 * Runs several statements in one round trip (PQexec, no parameters). Only
 * for SQL compiled into the program, such as the schema files; never for
 * text that contains a value. 0 or -1.
 */
DB_WUR int db_exec_script(struct db *db, const char *sql, char *err, size_t errlen);

DB_WUR int db_begin(struct db *db, char *err, size_t errlen);
DB_WUR int db_commit(struct db *db, char *err, size_t errlen);
/* Rolls back if a transaction is open; never fails loudly (logs). */
void db_rollback(struct db *db);

/* Runs copy_sql ("COPY t (cols) FROM STDIN") and feeds data. 0 or -1. */
DB_WUR int db_copy_in(struct db *db, const char *copy_sql, const char *data, size_t len,
		      char *err, size_t errlen);
/*
 * Runs copy_sql ("COPY (...) TO STDOUT") and calls row_cb once per row
 * (len includes the trailing '\n'). A non-zero return from row_cb stops
 * reading (the COPY is drained) and is returned. -1 on database error.
 */
DB_WUR int db_copy_out(struct db *db, const char *copy_sql,
		       int (*row_cb)(const char *row, size_t len, void *arg), void *arg, char *err,
		       size_t errlen);

/* Convenience: first column of the first row as text into out; 0, 1 (no row) or -1. */
DB_WUR int db_query_value(struct db *db, const char *sql, int nparams, const char *const *params,
			  char *out, size_t outlen, char *err, size_t errlen);

#endif
