/*
 * store: the slave's policies and tasks. Local ones are created and
 * changed here; master-owned ones arrive by download, carry their owner
 * and are read-only. When the slave leaves its master, master-owned rows
 * become local copies so the endpoints stay protected.
 */
#ifndef STRATA_SLAVE_STORE_H
#define STRATA_SLAVE_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "db.h"

json_t *store_create(struct db *db, bool is_task, json_t *args, char *err, size_t errlen);
json_t *store_update(struct db *db, bool is_task, json_t *args, char *err, size_t errlen);
json_t *store_delete(struct db *db, bool is_task, json_t *args, char *err, size_t errlen);
json_t *store_list(struct db *db, bool is_task, char *err, size_t errlen);

/*
 * Applies one DOWNLOAD payload and records its version, in one
 * transaction. master: the master's name (owner 'master:NAME').
 * Returns 0 with *version and *items, -1 with err.
 */
__attribute__((warn_unused_result)) int store_apply_download(struct db *db, const char *master,
							     json_t *payload, int64_t *version,
							     int *items, char *err, size_t errlen);

/* Turns master-owned rows into local copies and marks the slave unregistered. */
__attribute__((warn_unused_result)) int store_detach_master(struct db *db, char *err,
							    size_t errlen);

#endif
