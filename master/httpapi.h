/*
 * httpapi: the master's part of the HTTP API (common/http.h): its
 * readiness (database, schema, admin socket, sync listener) and its
 * metrics, per slave from the registry and the replicated rows.
 */
#ifndef STRATA_MASTER_HTTPAPI_H
#define STRATA_MASTER_HTTPAPI_H

struct master;

/* Starts the API when <http> is configured; logs and goes on when it cannot. */
void httpapi_start(struct master *m);

#endif
