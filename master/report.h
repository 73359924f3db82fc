/*
 * report: reports across slaves. Every report names each slave's data
 * age (seconds since its last successful sync) and answers for slaves
 * that are late, marking their state.
 */
#ifndef STRATA_MASTER_REPORT_H
#define STRATA_MASTER_REPORT_H

#include <jansson.h>

#include "db.h"

/* Endpoints by slave and status, plus a total row. */
json_t *report_endpoints(struct db *db, char *err, size_t errlen);

/* Each slave's replicated licence and seats in use; a slave without one says so. */
json_t *report_licences(struct db *db, char *err, size_t errlen);

#endif
