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

#endif
