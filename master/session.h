/*
 * session: the master's end of port 7073. One session per TLS connection.
 * A connection without a client certificate may only enrol; one with a
 * certificate is authorised by its serial and then runs sync sessions
 * (HELLO ... BYE) and idles between them, so the master can ask the
 * slave to sync at once.
 */
#ifndef STRATA_MASTER_SESSION_H
#define STRATA_MASTER_SESSION_H

#include "master.h"

__attribute__((warn_unused_result)) int session_listen(struct master *m, char *err,
						       size_t errlen);
void session_shutdown(struct master *m);
/* Asks an idle connected slave to sync now: 1 asked, 2 already syncing, 0 not connected. */
int session_request_sync(struct master *m, int slave_id);
/* Ends the slave's open connection (after removal). */
void session_kick(struct master *m, int slave_id, const char *reason);

#endif
