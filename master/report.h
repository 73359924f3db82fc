/*
 * report: reports across slaves. Every report names each slave's data
 * age (seconds since its last successful sync) and answers for slaves
 * that are late, marking them: a slave is late when its sync health is
 * not 'active' (degraded after 2 missed intervals, failed after 4 or an
 * error) or when it has not synced yet. Results are the admin socket's
 * table shapes (ctl/render.h), so each report prints as a table, JSON or
 * CSV, and the same result answers the HTTP API.
 */
#ifndef STRATA_MASTER_REPORT_H
#define STRATA_MASTER_REPORT_H

#include <jansson.h>

#include "db.h"

/* Endpoints by slave and status, plus a total row. */
json_t *report_endpoints(struct db *db, char *err, size_t errlen);
/*
 * Events by day (UTC), kind and severity over args.days days (default 7,
 * 1..366), optionally only args.kind / args.severity; then the slaves'
 * data age. {"sections": [...]}.
 */
json_t *report_events(struct db *db, json_t *args, char *err, size_t errlen);
/*
 * Policy compliance per slave: endpoints running the latest effective
 * policy version their slave computed for them, those behind, the share;
 * plus a total row.
 */
json_t *report_compliance(struct db *db, char *err, size_t errlen);
/* Task results per task and slave: pending, running, succeeded, failed. */
json_t *report_tasks(struct db *db, char *err, size_t errlen);
/* Sync health per slave: state, interval, last sync and attempt, last error, data age. */
json_t *report_sync(struct db *db, char *err, size_t errlen);
/*
 * One master task (args.name): its definition, then per targeted slave the
 * results by status and the slave's data age, and a total row.
 */
json_t *report_task_status(struct db *db, json_t *args, char *err, size_t errlen);

/* Each slave's replicated licence and seats in use; a slave without one says so. */
json_t *report_licences(struct db *db, char *err, size_t errlen);

#endif
