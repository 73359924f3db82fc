/*
 * link: the slave's connection to its master. It enrols (register), runs
 * sync sessions on a timer, on `sync now` and when the master asks over
 * the idle kept-open connection, retries with backoff after a failure,
 * and unregisters. Credentials live in the data directory: slave.key
 * (0600), slave.crt and master-ca.crt.
 */
#ifndef STRATA_SLAVE_LINK_H
#define STRATA_SLAVE_LINK_H

#include "admin.h"
#include "slave.h"

/* Upload batches in flight before waiting for an ACK. */
#define LINK_UPLOAD_WINDOW 2

struct link *link_new(struct slave *sl);
void link_free(struct link *l);
/* Starts the timer (and registration from server.xml's token when due). */
void link_start(struct link *l);
/* Settings changed (SIGHUP): reschedule. */
void link_reload(struct link *l);

/* Admin commands; each answers req when done. */
void link_register(struct link *l, struct admin_req *req, const char *master, const char *token);
void link_unregister(struct link *l, struct admin_req *req, bool force);
void link_sync_now(struct link *l, struct admin_req *req);
json_t *link_status(struct link *l, char *err, size_t errlen);

/* One upload stream's backlog (common/backlog.h). */
struct link_backlog {
	const char *stream; /* stream_defs[i].name */
	int64_t rows;	    /* above the acknowledged watermark */
	double age_s;	    /* 0 without a backlog; NAN when no session succeeded yet */
};

/*
 * Fills out[stream_count] (in stream_defs order) and *rate, the rows/s the
 * master acknowledged in the running session's upload, else in the last
 * session's (NAN before any). Counted at most every BACKLOG_CACHE_MS.
 */
int link_backlog(struct link *l, struct link_backlog *out, double *rate, char *err, size_t errlen)
    __attribute__((warn_unused_result));

#endif
