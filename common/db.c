#include "db.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "sdnotify.h"

/* Bounded so one COPY frame never makes libpq buffer the whole payload twice. */
#define DB_COPY_CHUNK (1024 * 1024)

/* Reported when libpq has lost the server, whatever the server said last. */
#define DB_SQLSTATE_LINK_LOST "08006"

struct db {
	PGconn *conn;
	char sqlstate[6];
};

/* libpq messages end in newlines and may span lines; log lines and err may not. */
static void one_line(char *dst, size_t dstlen, const char *src)
{
	size_t o = 0;
	bool space = false;
	if (dstlen == 0)
		return;
	for (; src && *src && o + 1 < dstlen; src++) {
		if (*src == '\n' || *src == '\r' || *src == '\t') {
			space = true;
			continue;
		}
		if (space && o > 0 && o + 2 < dstlen)
			dst[o++] = ' ';
		space = false;
		dst[o++] = *src;
	}
	dst[o] = '\0';
}

static void set_sqlstate(struct db *db, const char *state)
{
	snprintf(db->sqlstate, sizeof(db->sqlstate), "%s", state ? state : "");
}

/*
 * Writes "SQLSTATE: message" for a failed call. res may be NULL (libpq
 * could not even build a result). A dead link wins over whatever the server
 * said, so callers can rely on 08006 to decide to reconnect.
 */
static void fail(struct db *db, const PGresult *res, const char *what, char *err, size_t errlen)
{
	char msg[1024];
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;

	if (PQstatus(db->conn) == CONNECTION_BAD)
		state = DB_SQLSTATE_LINK_LOST;
	if (!primary) {
		primary = res ? PQresultErrorMessage(res) : "";
		if (!primary[0])
			primary = PQerrorMessage(db->conn);
		if (!primary[0])
			primary = what;
		detail = NULL;
	}
	one_line(msg, sizeof(msg), primary);
	set_sqlstate(db, state);
	if (detail && detail[0]) {
		char d[512];
		one_line(d, sizeof(d), detail);
		snprintf(err, errlen, "%s%s%s (%s)", db->sqlstate, db->sqlstate[0] ? ": " : "", msg,
			 d);
	} else {
		snprintf(err, errlen, "%s%s%s", db->sqlstate, db->sqlstate[0] ? ": " : "", msg);
	}
}

/* Server NOTICEs ("relation exists, skipping") are routine; WARNINGs are not. */
static void notice_receiver(void *arg, const PGresult *res)
{
	char msg[1024];
	const char *severity = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
	one_line(msg, sizeof(msg), PQresultErrorMessage(res));
	if (severity && strcmp(severity, "WARNING") == 0)
		log_warnx("database: %s", msg);
	else
		log_debug("database: %s", msg);
}

/*
 * Consumes whatever results are still queued so the next command starts
 * from an idle connection, ending a COPY left half-way in either direction.
 */
static void drain(struct db *db)
{
	PGresult *res;
	while ((res = PQgetResult(db->conn)) != NULL) {
		ExecStatusType st = PQresultStatus(res);
		PQclear(res);
		if (st == PGRES_COPY_IN) {
			if (PQputCopyEnd(db->conn, "aborted by client") != 1)
				break;
		} else if (st == PGRES_COPY_OUT) {
			char *buf;
			int n;
			while ((n = PQgetCopyData(db->conn, &buf, 0)) > 0)
				PQfreemem(buf);
			if (n == -2)
				break;
		}
		if (PQstatus(db->conn) == CONNECTION_BAD)
			break;
	}
}

struct db *db_connect(const char *conninfo, int attempts, int retry_interval, char *err,
		      size_t errlen)
{
	char *perr = NULL;
	PQconninfoOption *opts = PQconninfoParse(conninfo, &perr);
	if (!opts) {
		char msg[512];
		one_line(msg, sizeof(msg), perr ? perr : "out of memory");
		snprintf(err, errlen, "database: invalid conninfo: %s", msg);
		PQfreemem(perr);
		return NULL;
	}
	PQconninfoFree(opts);

	for (int attempt = 1;; attempt++) {
		char msg[1024];
		PGconn *conn = PQconnectdb(conninfo);
		if (conn && PQstatus(conn) == CONNECTION_OK) {
			struct db *db = calloc(1, sizeof(*db));
			if (!db) {
				PQfinish(conn);
				snprintf(err, errlen, "database: out of memory");
				return NULL;
			}
			db->conn = conn;
			PQsetNoticeReceiver(conn, notice_receiver, NULL);
			return db;
		}
		one_line(msg, sizeof(msg), conn ? PQerrorMessage(conn) : "out of memory");
		PQfinish(conn);
		if (attempts > 0 && attempt >= attempts) {
			/* Every attempt gets its line, the last one too. */
			log_warnx("database: cannot connect (attempt %d): %s; giving up", attempt, msg);
			snprintf(err, errlen, "database: cannot connect after %d attempt%s: %s",
				 attempt, attempt == 1 ? "" : "s", msg);
			return NULL;
		}
		log_warnx("database: cannot connect (attempt %d): %s; retrying in %d s", attempt,
			  msg, retry_interval);
		/* Under a service manager: still starting, give the next attempt its time. */
		sdnotify_sendf("STATUS=waiting for the database (attempt %d failed)\n"
			       "EXTEND_TIMEOUT_USEC=%lld",
			       attempt, ((long long)retry_interval + 30) * 1000000LL);
		if (retry_interval > 0)
			sleep((unsigned)retry_interval);
	}
}

void db_close(struct db *db)
{
	if (!db)
		return;
	PQfinish(db->conn);
	free(db);
}

PGconn *db_conn(struct db *db) { return db->conn; }

bool db_alive(struct db *db) { return PQstatus(db->conn) == CONNECTION_OK; }

int db_reconnect(struct db *db, char *err, size_t errlen)
{
	set_sqlstate(db, "");
	PQreset(db->conn);
	if (PQstatus(db->conn) != CONNECTION_OK) {
		fail(db, NULL, "cannot reconnect", err, errlen);
		return -1;
	}
	PQsetNoticeReceiver(db->conn, notice_receiver, NULL);
	return 0;
}

const char *db_last_sqlstate(const struct db *db) { return db->sqlstate; }

PGresult *db_query(struct db *db, const char *sql, int nparams, const char *const *params,
		   char *err, size_t errlen)
{
	set_sqlstate(db, "");
	PGresult *res = PQexecParams(db->conn, sql, nparams, NULL, params, NULL, NULL, 0);
	ExecStatusType st = PQresultStatus(res);
	if (res && (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK))
		return res;
	if (st == PGRES_COPY_IN || st == PGRES_COPY_OUT) {
		PQclear(res);
		drain(db);
		snprintf(err, errlen, "COPY through db_query: %s", sql);
		return NULL;
	}
	fail(db, res, "query failed", err, errlen);
	PQclear(res);
	drain(db);
	return NULL;
}

int db_exec(struct db *db, const char *sql, int nparams, const char *const *params, char *err,
	    size_t errlen)
{
	PGresult *res = db_query(db, sql, nparams, params, err, errlen);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

int db_exec_script(struct db *db, const char *sql, char *err, size_t errlen)
{
	set_sqlstate(db, "");
	/* Several statements need the simple query protocol: PQsendQuery, then
	 * every result; the first failure is the one reported. */
	if (!PQsendQuery(db->conn, sql)) {
		fail(db, NULL, "script failed", err, errlen);
		return -1;
	}
	PGresult *res, *bad = NULL;
	while ((res = PQgetResult(db->conn))) {
		ExecStatusType st = PQresultStatus(res);
		if (!bad && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_EMPTY_QUERY)
			bad = res;
		else
			PQclear(res);
	}
	if (!bad)
		return 0;
	fail(db, bad, "script failed", err, errlen);
	PQclear(bad);
	drain(db);
	return -1;
}

int db_begin(struct db *db, char *err, size_t errlen)
{
	return db_exec(db, "BEGIN", 0, NULL, err, errlen);
}

int db_commit(struct db *db, char *err, size_t errlen)
{
	PGresult *res = db_query(db, "COMMIT", 0, NULL, err, errlen);
	if (!res)
		return -1;
	/* COMMIT of a failed transaction "succeeds" as a ROLLBACK: the work is lost. */
	if (strcmp(PQcmdStatus(res), "ROLLBACK") == 0) {
		PQclear(res);
		set_sqlstate(db, "25P02");
		snprintf(err, errlen,
			 "25P02: transaction was aborted by an earlier error; rolled back");
		return -1;
	}
	PQclear(res);
	return 0;
}

void db_rollback(struct db *db)
{
	char err[512];
	PGTransactionStatusType ts = PQtransactionStatus(db->conn);
	if (ts == PQTRANS_ACTIVE) {
		drain(db);
		ts = PQtransactionStatus(db->conn);
	}
	if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR)
		return;
	if (db_exec(db, "ROLLBACK", 0, NULL, err, sizeof(err)) != 0)
		log_warnx("database: rollback failed: %s", err);
}

int db_copy_in(struct db *db, const char *copy_sql, const char *data, size_t len, char *err,
	       size_t errlen)
{
	char put_err[512] = "";
	set_sqlstate(db, "");
	PGresult *res = PQexecParams(db->conn, copy_sql, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		fail(db, res, "COPY did not start", err, errlen);
		PQclear(res);
		drain(db);
		return -1;
	}
	PQclear(res);

	for (size_t off = 0; off < len;) {
		size_t n = len - off < DB_COPY_CHUNK ? len - off : DB_COPY_CHUNK;
		if (PQputCopyData(db->conn, data + off, (int)n) != 1) {
			one_line(put_err, sizeof(put_err), PQerrorMessage(db->conn));
			break;
		}
		off += n;
	}
	/* Ending with an error message makes the server abort the COPY, not commit half of it. */
	if (PQputCopyEnd(db->conn, put_err[0] ? "client could not send all rows" : NULL) != 1 &&
	    !put_err[0])
		one_line(put_err, sizeof(put_err), PQerrorMessage(db->conn));

	int rc = 0;
	res = PQgetResult(db->conn);
	if (PQresultStatus(res) != PGRES_COMMAND_OK) {
		fail(db, res, put_err[0] ? put_err : "COPY failed", err, errlen);
		rc = -1;
	} else if (put_err[0]) {
		fail(db, NULL, put_err, err, errlen);
		rc = -1;
	}
	PQclear(res);
	drain(db);
	return rc;
}

int db_copy_out(struct db *db, const char *copy_sql,
		int (*row_cb)(const char *row, size_t len, void *arg), void *arg, char *err,
		size_t errlen)
{
	set_sqlstate(db, "");
	PGresult *res = PQexecParams(db->conn, copy_sql, 0, NULL, NULL, NULL, NULL, 0);
	if (PQresultStatus(res) != PGRES_COPY_OUT) {
		fail(db, res, "COPY did not start", err, errlen);
		PQclear(res);
		drain(db);
		return -1;
	}
	PQclear(res);

	/*
	 * A stopped callback still lets the rows stream to the end: the
	 * protocol has no cheap way to stop a COPY OUT and keep the session.
	 */
	int cb_rc = 0;
	int n;
	char *row;
	while ((n = PQgetCopyData(db->conn, &row, 0)) > 0) {
		if (cb_rc == 0)
			cb_rc = row_cb(row, (size_t)n, arg);
		PQfreemem(row);
	}

	int rc = cb_rc;
	res = PQgetResult(db->conn);
	if (n == -2 || PQresultStatus(res) != PGRES_COMMAND_OK) {
		fail(db, res, "COPY failed", err, errlen);
		rc = -1;
	}
	PQclear(res);
	drain(db);
	return rc;
}

int db_query_value(struct db *db, const char *sql, int nparams, const char *const *params,
		   char *out, size_t outlen, char *err, size_t errlen)
{
	PGresult *res = db_query(db, sql, nparams, params, err, errlen);
	if (!res)
		return -1;
	if (PQntuples(res) == 0 || PQnfields(res) == 0) {
		PQclear(res);
		if (outlen)
			out[0] = '\0';
		return 1;
	}
	const char *v = PQgetvalue(res, 0, 0);
	size_t vlen = (size_t)PQgetlength(res, 0, 0);
	if (vlen >= outlen) {
		PQclear(res);
		snprintf(err, errlen, "database: value of %zu bytes does not fit in %zu", vlen,
			 outlen);
		return -1;
	}
	memcpy(out, v, vlen + 1);
	PQclear(res);
	return 0;
}
