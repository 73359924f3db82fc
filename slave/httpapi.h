/*
 * httpapi: the slave's part of the HTTP API (common/http.h): its
 * readiness (database, schema, admin socket, push server) and its
 * metrics. Push workers are processes of their own, so what they know
 * is read from the database they all write (endpoint status and
 * last_seen, distribution points' connections), never from memory.
 */
#ifndef STRATA_SLAVE_HTTPAPI_H
#define STRATA_SLAVE_HTTPAPI_H

struct slave;

/* Starts the API when <http> is configured; logs and goes on when it cannot. */
void httpapi_start(struct slave *sl);

#endif
